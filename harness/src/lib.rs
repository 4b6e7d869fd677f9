//! `stackguard`: check manifests with the stackguard policies, evaluate any waPC policy module the
//! way policy-server does, and deploy and verify the reference stack.

pub mod admission;
pub mod capabilities;
pub mod check;
pub mod config;
pub mod context;
pub mod engine;
pub mod fix;
pub mod manifest;
pub mod metadata;
pub mod policies;
pub mod replay;
pub mod report;
pub mod stream;
pub mod yaml;
pub mod yaml_edit;

#[cfg(feature = "deploy")]
pub mod audit;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "schema")]
pub mod generate;
#[cfg(feature = "host")]
pub mod guest_log;
#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "deploy")]
pub mod kubeclient;
#[cfg(feature = "oci")]
pub mod oci;
