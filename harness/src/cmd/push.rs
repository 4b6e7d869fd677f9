//! `stackguard push MODULE registry://HOST/REPO:TAG`: publish an annotated policy module, as
//! `kwctl push` does. See `stackguard::oci`.

use anyhow::{Context, Result};
use stackguard::oci::{self, Sources};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The annotated policy module (`make policies` writes dist/<name>.wasm).
    pub module: PathBuf,
    /// Where to push it: registry://HOST[:PORT]/REPOSITORY:TAG.
    pub uri: String,
    /// kwctl's sources.yaml (insecure_sources, source_authorities); default
    /// ~/.config/kwctl/sources.yaml when it exists.
    #[arg(long)]
    pub sources_path: Option<PathBuf>,
    /// Push a module without embedded metadata too.
    #[arg(long)]
    pub force: bool,
    /// `text` or `json` (`{"immutable_ref": …}`, as `kwctl push -o json`).
    #[arg(short, long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub fn main(args: Args) -> Result<i32> {
    let module = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let sources = Sources::load(args.sources_path.as_deref())?;
    let pushed = oci::push(&module, &args.uri, &sources, args.force)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.module.display()))?;
    if args.output == "json" {
        println!("{}", serde_json::to_string(&pushed)?);
    } else {
        println!("Policy successfully pushed: {}", pushed.immutable_ref);
    }
    Ok(0)
}
