//! The `stackguard` command line.

mod cmd;

/// See the workspace Cargo.toml: `check` frees on one thread what it parsed on another.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "stackguard",
    version,
    about = "Guard the data stack: check manifests, run policy modules, deploy and verify"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests (files, directories, `-` for stdin) against the policies.
    Check(cmd::check::Args),
    /// Fill in what the mutating policies would (securityContext, resources, anti-affinity) in
    /// manifest files, in place with minimal edits; `--diff` shows the changes instead.
    Fix(cmd::fix::Args),
    /// Serve the browser playground on 127.0.0.1 (build it first: `make playground`).
    Playground(cmd::playground::Args),
    /// Evaluate one admission request with a waPC policy module (like `kwctl run`).
    #[cfg(feature = "host")]
    Run(cmd::run::Args),
    /// Evaluations per second and mean/p50/p99 latency of each policy (native or module).
    #[cfg(feature = "host")]
    Bench(cmd::bench::Args),
    /// Embed metadata.yml into a policy module (like `kwctl annotate`).
    #[cfg(feature = "host")]
    Annotate(cmd::annotate::Args),
    /// Push an annotated policy module to an OCI registry (like `kwctl push`).
    #[cfg(feature = "oci")]
    Push(cmd::push::Args),
    /// Pull a policy module from an OCI registry (like `kwctl pull`).
    #[cfg(feature = "oci")]
    Pull(cmd::pull::Args),
    /// Regenerate the settings schemas, questions-ui.yml, README tables and Artifact Hub files.
    #[cfg(feature = "schema")]
    Generate(cmd::generate::Args),
    /// Set the release version in Cargo, metadata and every reference (maintainers).
    #[cfg(feature = "schema")]
    Bump(cmd::bump::Args),
    /// Bring the reference stack up: on this machine (`--target local`) or a cluster (`kube`).
    #[cfg(feature = "deploy")]
    Deploy(cmd::deploy::Args),
    /// Prove the stack's invariants live with real clients; prints a table of checks.
    #[cfg(feature = "deploy")]
    Verify(cmd::verify::Args),
    /// Stop the stack (data kept unless --purge).
    #[cfg(feature = "deploy")]
    Down(cmd::down::Args),
    /// Check what already runs in a cluster with the same rules; optionally write
    /// OpenReports/PolicyReports.
    #[cfg(feature = "deploy")]
    Audit(cmd::audit::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => cmd::check::main(a),
        Command::Fix(a) => cmd::fix::main(a),
        Command::Playground(a) => cmd::playground::main(a),
        #[cfg(feature = "host")]
        Command::Run(a) => cmd::run::main(a),
        #[cfg(feature = "host")]
        Command::Bench(a) => cmd::bench::main(a),
        #[cfg(feature = "host")]
        Command::Annotate(a) => cmd::annotate::main(a),
        #[cfg(feature = "oci")]
        Command::Push(a) => cmd::push::main(a),
        #[cfg(feature = "oci")]
        Command::Pull(a) => cmd::pull::main(a),
        #[cfg(feature = "schema")]
        Command::Generate(a) => cmd::generate::main(a),
        #[cfg(feature = "schema")]
        Command::Bump(a) => cmd::bump::main(a),
        #[cfg(feature = "deploy")]
        Command::Deploy(a) => cmd::deploy::main(a),
        #[cfg(feature = "deploy")]
        Command::Verify(a) => cmd::verify::main(a),
        #[cfg(feature = "deploy")]
        Command::Down(a) => cmd::down::main(a),
        #[cfg(feature = "deploy")]
        Command::Audit(a) => cmd::audit::main(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
