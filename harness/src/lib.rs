//! `stackguard`: check manifests with the stackguard policies, evaluate any waPC policy module the
//! way policy-server does, and deploy and verify the reference stack.

pub mod admission;
pub mod context;
pub mod metadata;
pub mod policies;

#[cfg(feature = "host")]
pub mod guest_log;
#[cfg(feature = "host")]
pub mod host;
