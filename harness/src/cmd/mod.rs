//! One module per subcommand.

#[cfg(feature = "host")]
pub mod annotate;
#[cfg(feature = "host")]
pub mod bench;
pub mod check;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "deploy")]
pub mod down;
pub mod fix;
pub mod playground;
#[cfg(feature = "host")]
pub mod run;
#[cfg(feature = "deploy")]
pub mod verify;
