//! `stackguard check`: the implementation lives in the library (`stackguard::check`) so the
//! lean pre-commit binary shares it.

pub use stackguard::check::{Args, main};
