//! `stackguard annotate`: embed `metadata.yml` into a module, as `kwctl annotate` does.

use anyhow::{Context, Result, bail};
use stackguard::host::{Host, HostData};
use stackguard::metadata::{self, Metadata};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The policy module to annotate.
    pub module: PathBuf,
    /// The policy's metadata.yml.
    #[arg(short, long)]
    pub metadata_path: PathBuf,
    /// Where to write the annotated module.
    #[arg(short, long)]
    pub output_path: PathBuf,
}

pub fn main(args: Args) -> Result<i32> {
    let text = std::fs::read_to_string(&args.metadata_path)
        .with_context(|| format!("reading {}", args.metadata_path.display()))?;
    let mut meta = Metadata::from_yaml(&text, &args.metadata_path.display().to_string())?;
    // As kwctl: the protocol version comes from the module itself.
    let host = Host::new(None, Duration::from_secs(10))?;
    let module = host.load(&args.module)?;
    let version = host
        .evaluator(&module, HostData::None)?
        .protocol_version()
        .with_context(|| format!("{}: cannot read protocol_version", args.module.display()))?;
    if version != "v1" {
        bail!(
            "{}: unsupported protocol version {version:?}",
            args.module.display()
        );
    }
    meta.protocol_version = Some(version);
    let bytes = std::fs::read(&args.module)?;
    let annotated = metadata::embed(&bytes, &meta)?;
    std::fs::write(&args.output_path, annotated)
        .with_context(|| format!("writing {}", args.output_path.display()))?;
    Ok(0)
}
