//! `stackguard deploy`: bring the reference stack up on this machine or on a cluster.

use anyhow::{Context, Result};
use stackguard::deploy::stack::Stack;
use stackguard::deploy::{Progress, kube, local};
use stackguard::kubeclient::Access;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEFAULT_STACK: &str = "deploy/stack";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// PostgreSQL + PostGIS and both Redis servers from Debian packages, on 127.0.0.1.
    Local,
    /// The whole stack on the cluster of the current kubeconfig context.
    Kube,
}

/// Options shared by `deploy`, `verify` and `down`.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Where to run the stack.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// The stack: a kustomization directory or a rendered manifest file [default: deploy/stack;
    /// for local verify/down: the one recorded at deploy].
    #[arg(long)]
    pub stack: Option<PathBuf>,
    /// Secrets template [default: secrets.template.yaml next to the kustomization].
    #[arg(long)]
    pub secrets_template: Option<PathBuf>,
    /// Local target: state directory (data, logs, secrets, PIDs)
    /// [default: ~/.local/state/stackguard; /var/lib/stackguard for root].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Kube target: put the stack in this namespace instead of its own.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Kube target: kubeconfig file [default: KUBECONFIG, else ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kube target: kubeconfig context [default: the current one].
    #[arg(long)]
    pub context: Option<String>,
    /// Longest wait for a server or rollout, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

impl Common {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(local::default_state_dir)
    }

    /// The cluster of the kube target.
    pub fn access(&self) -> Access {
        Access {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// Load the stack (`fallback` when --stack is not given), namespace override applied.
    pub fn load_stack(&self, fallback: &Path) -> Result<Stack> {
        let path = self.stack.as_deref().unwrap_or(fallback);
        let mut stack = Stack::load(path, self.secrets_template.as_deref())?;
        if let Some(ns) = &self.namespace {
            stack.set_namespace(ns);
        }
        Ok(stack)
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Local target: ports base, base+1, base+2 for PostgreSQL, the cache and pub/sub
    /// (0: any free ports) [default: the recorded ports, else 15432, 16379, 16380 when free].
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Kube target: server-side dry run (the API server and admission check, nothing persists).
    #[arg(long)]
    pub dry_run: bool,
    /// Kube target: do not wait for the rollouts.
    #[arg(long)]
    pub no_wait: bool,
}

pub fn main(args: Args) -> Result<i32> {
    let start = Instant::now();
    let progress = Progress::default();
    let stack = args.common.load_stack(Path::new(DEFAULT_STACK))?;
    let rt = runtime()?;
    let code = match args.common.target {
        Target::Local => {
            let opts = local::DeployOptions {
                state_dir: args.common.state_dir(),
                base_port: args.base_port,
                timeout: args.common.timeout(),
            };
            let changed = rt.block_on(local::deploy(&stack, &opts, &progress))?;
            if !changed {
                progress.line("no change: the stack was already deployed with this configuration");
            }
            0
        }
        Target::Kube => {
            let opts = kube::KubeOptions {
                access: args.common.access(),
                dry_run: args.dry_run,
                wait: !args.no_wait,
                timeout: args.common.timeout(),
            };
            let tally = rt.block_on(kube::deploy(&stack, &opts, &progress))?;
            if tally.failed == 0 && tally.changed() == 0 && tally.partly == 0 {
                progress.line("no change: the cluster already has the stack as it is");
            } else {
                progress.line(&tally.summary());
            }
            if tally.failed == 0 { 0 } else { 1 }
        }
    };
    progress.line(&format!(
        "deploy took {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    Ok(code)
}
