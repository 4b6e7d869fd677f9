//! One module per subcommand.

#[cfg(feature = "host")]
pub mod annotate;
#[cfg(feature = "deploy")]
pub mod audit;
#[cfg(feature = "host")]
pub mod bench;
pub mod check;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "deploy")]
pub mod down;
pub mod playground;
#[cfg(feature = "host")]
pub mod run;
#[cfg(feature = "deploy")]
pub mod verify;
