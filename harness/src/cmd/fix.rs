//! `stackguard fix`: the implementation lives in the library (`stackguard::fix`) so the lean
//! pre-commit binary and the playground share it.

pub use stackguard::fix::{Args, main};
