//! Shared plumbing for the stackguard policies.
//!
//! Every rule is pure: an admission [`request::Request`] and typed settings go in, a
//! [`verdict::Verdict`] comes out. The same code runs inside the waPC modules (see `guest`),
//! natively in the `stackguard` CLI and in the tests.

pub mod cnpg;
pub mod context;
pub mod de;
pub mod glob;
pub mod jsonpath;
pub mod mounts;
pub mod mutate;
pub mod policy;
pub mod quantity;
pub mod redisconf;
pub mod request;
#[cfg(feature = "schema")]
pub mod schema;
pub mod secrets;
pub mod selector;
pub mod shell;
pub mod sql;
pub mod verdict;
pub mod workload;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod guest;

pub use context::ClusterContext;
pub use policy::{Policy, Settings};
pub use request::{ObjectRef, Operation, Request};
pub use verdict::{Finding, Verdict};
