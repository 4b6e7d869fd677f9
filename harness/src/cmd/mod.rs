//! One module per subcommand.

#[cfg(feature = "host")]
pub mod annotate;
#[cfg(feature = "host")]
pub mod bench;
#[cfg(feature = "schema")]
pub mod bump;
pub mod check;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "deploy")]
pub mod down;
pub mod fix;
#[cfg(feature = "schema")]
pub mod generate;
pub mod playground;
#[cfg(feature = "oci")]
pub mod pull;
#[cfg(feature = "oci")]
pub mod push;
#[cfg(feature = "host")]
pub mod run;
#[cfg(feature = "deploy")]
pub mod verify;
