//! Helpers shared by the integration tests that include this module
//! (`#[path = "support/mod.rs"] mod support;`).

pub mod mutation;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `dist/<policy>.wasm`, which `make policies` builds.
pub fn module_path(policy: &str) -> PathBuf {
    let p = root().join("dist").join(format!("{policy}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: build the modules first with `make policies`",
        p.display()
    );
    p
}
