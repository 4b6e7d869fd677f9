//! `stackguard down`: stop the stack; keep its data unless `--purge`.

use super::deploy::{Common, DEFAULT_STACK, Target, runtime};
use anyhow::Result;
use stackguard::deploy::{Progress, kube, local};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Also delete the data and the secrets (local: the state directory; kube: the namespace).
    #[arg(long)]
    pub purge: bool,
}

pub fn main(args: Args) -> Result<i32> {
    let progress = Progress::default();
    match args.common.target {
        Target::Local => {
            local::down(
                &args.common.state_dir(),
                args.purge,
                args.common.timeout(),
                &progress,
            )?;
            Ok(0)
        }
        Target::Kube => {
            let stack = args.common.load_stack(Path::new(DEFAULT_STACK))?;
            let failures = runtime()?.block_on(kube::down(
                &stack,
                &args.common.access(),
                args.purge,
                &progress,
            ))?;
            Ok(if failures == 0 { 0 } else { 1 })
        }
    }
}
