//! `stackguard-hook`: the lean `stackguard check` (native policies only, no wasmtime, no kube)
//! that the pre-commit hook installs with `cargo install --path .` from the repository root.

fn main() {
    std::process::exit(stackguard::check::hook_main());
}
