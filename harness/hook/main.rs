//! `stackguard-hook`: the lean `stackguard check` (native policies only, no wasmtime, no kube)
//! that the pre-commit hook installs with `cargo install --path .` from the repository root.

/// As the full CLI's (harness/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(stackguard::check::hook_main());
}
