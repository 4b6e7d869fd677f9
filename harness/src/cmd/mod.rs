//! One module per subcommand.

#[cfg(feature = "host")]
pub mod annotate;
#[cfg(feature = "host")]
pub mod run;
