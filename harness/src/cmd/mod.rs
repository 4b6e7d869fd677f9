//! One module per subcommand.

#[cfg(feature = "host")]
pub mod annotate;
pub mod check;
pub mod playground;
#[cfg(feature = "host")]
pub mod run;
