//! One module per subcommand.

#[cfg(feature = "host")]
pub mod annotate;
pub mod check;
#[cfg(feature = "host")]
pub mod run;
