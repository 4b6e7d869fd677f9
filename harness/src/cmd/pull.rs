//! `stackguard pull registry://HOST/REPO:TAG -o FILE`: fetch a policy module, as `kwctl pull`
//! does. See `stackguard::oci`.

use anyhow::{Context, Result};
use stackguard::metadata;
use stackguard::oci::{self, Sources};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// What to pull: registry://HOST[:PORT]/REPOSITORY:TAG (or @sha256:…).
    pub uri: String,
    /// Where to write the module.
    #[arg(short, long)]
    pub output_path: PathBuf,
    /// kwctl's sources.yaml (insecure_sources, source_authorities); default
    /// ~/.config/kwctl/sources.yaml when it exists.
    #[arg(long)]
    pub sources_path: Option<PathBuf>,
}

pub fn main(args: Args) -> Result<i32> {
    let sources = Sources::load(args.sources_path.as_deref())?;
    let pulled = oci::pull(&args.uri, &sources)?;
    // Written next to the target and renamed: a failed pull never leaves half a module.
    let tmp = args.output_path.with_extension("wasm.partial");
    std::fs::write(&tmp, &pulled.module).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output_path)
        .with_context(|| format!("writing {}", args.output_path.display()))?;
    let about = metadata::read(&pulled.module)
        .ok()
        .flatten()
        .and_then(|m| m.annotations)
        .map(|a| {
            let get = |k: &str| a.get(k).cloned().unwrap_or_default();
            format!(
                " ({} {})",
                get("io.kubewarden.policy.title"),
                get("io.kubewarden.policy.version")
            )
        })
        .unwrap_or_default();
    println!(
        "Pulled {}{about} {} to {} ({} bytes)",
        args.uri,
        pulled.digest,
        args.output_path.display(),
        pulled.module.len()
    );
    Ok(0)
}
