//! `stackguard verify`: prove the guarded invariants on the running stack.

use super::deploy::{Common, DEFAULT_STACK, Target, runtime};
use anyhow::{Context, Result};
use stackguard::deploy::verify::{self, Expectations};
use stackguard::deploy::{kube, local};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Directory with the Kubewarden policies whose settings say what must hold
    /// [default: `kubewarden` next to the stack directory, else deploy/kubewarden].
    #[arg(long)]
    pub policies: Option<PathBuf>,
}

fn policies_dir(args: &Args, stack_root: &Path) -> PathBuf {
    if let Some(p) = &args.policies {
        return p.clone();
    }
    match stack_root.parent().map(|p| p.join("kubewarden")) {
        Some(sibling) if stack_root.is_dir() && sibling.is_dir() => sibling,
        _ => PathBuf::from("deploy/kubewarden"),
    }
}

pub fn main(args: Args) -> Result<i32> {
    let start = Instant::now();
    let rt = runtime()?;
    let checks = match args.common.target {
        Target::Local => {
            let state_dir = args.common.state_dir();
            let state = local::State::load(&state_dir)?.with_context(|| {
                format!(
                    "nothing deployed in {}; run `stackguard deploy` first",
                    state_dir.display()
                )
            })?;
            let stack = args.common.load_stack(&state.stack)?;
            let ex = Expectations::load(&stack, &policies_dir(&args, &stack.root))?;
            let ep = local::endpoints(&state_dir, &state, &ex)?;
            rt.block_on(verify::run(&ep, &ex))
        }
        Target::Kube => {
            let stack = args.common.load_stack(Path::new(DEFAULT_STACK))?;
            let ex = Expectations::load(&stack, &policies_dir(&args, &stack.root))?;
            rt.block_on(async {
                let ep = kube::endpoints(&stack, &args.common.access(), &ex).await?;
                anyhow::Ok(verify::run(&ep, &ex).await)
            })?
        }
    };
    let ok = verify::print_table(&checks);
    println!("verify took {:.1} s", start.elapsed().as_secs_f64());
    Ok(if ok { 0 } else { 1 })
}
