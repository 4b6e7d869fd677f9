//! `stackguard annotate`: embed `metadata.yml` into a module, as `kwctl annotate` does.
//!
//! As kwctl: the protocol version comes from the module, `-u README.md` becomes the
//! `io.kubewarden.policy.usage` annotation, and the host capabilities the module can call are
//! compared with the `hostCapabilities` it declares (a warning each way; errors with
//! `--strict`). Beyond kwctl: a module built from this workspace carries its Cargo version
//! (custom section `stackguard.version`), which becomes `io.kubewarden.policy.version` and
//! `com.github.release.tag`; a `metadata.yml` that says otherwise is an error.

use anyhow::{Context, Result, bail};
use stackguard::capabilities;
use stackguard::host::{Host, HostData};
use stackguard::metadata::{self, Metadata};
use std::path::PathBuf;
use std::time::Duration;

/// The annotations kwctl and Artifact Hub read.
const USAGE: &str = "io.kubewarden.policy.usage";
const VERSION: &str = "io.kubewarden.policy.version";
const RELEASE_TAG: &str = "com.github.release.tag";
/// The custom section in which our modules carry their Cargo version.
const CARGO_VERSION_SECTION: &str = "stackguard.version";

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
    /// A file (the policy README) to embed as the `io.kubewarden.policy.usage` annotation.
    #[arg(short, long)]
    pub usage_path: Option<PathBuf>,
    /// Fail, instead of warning, when the host capabilities the module can call differ from
    /// the metadata's `hostCapabilities`.
    #[arg(long)]
    pub strict: bool,
}

pub fn main(args: Args) -> Result<i32> {
    let text = std::fs::read_to_string(&args.metadata_path)
        .with_context(|| format!("reading {}", args.metadata_path.display()))?;
    let origin = args.metadata_path.display().to_string();
    let mut meta = Metadata::from_yaml(&text, &origin)?;
    let bytes = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let module_name = args.module.display().to_string();

    // As kwctl: the protocol version comes from the module itself.
    let host = Host::new(None, Duration::from_secs(10))?;
    let module = host.load(&args.module)?;
    let version = host
        .evaluator(&module, HostData::None)?
        .protocol_version()
        .with_context(|| format!("{module_name}: cannot read protocol_version"))?;
    if version != "v1" {
        bail!("{module_name}: unsupported protocol version {version:?}");
    }
    meta.protocol_version = Some(version);

    let annotations = meta.annotations.get_or_insert_with(Default::default);
    if let Some(raw) = metadata::custom_section(&bytes, CARGO_VERSION_SECTION)? {
        let cargo = std::str::from_utf8(raw).with_context(|| {
            format!("{module_name}: section {CARGO_VERSION_SECTION} is not UTF-8")
        })?;
        for (key, value) in [
            (VERSION, cargo.to_string()),
            (RELEASE_TAG, format!("v{cargo}")),
        ] {
            match annotations.get(key) {
                Some(written) if *written != value => bail!(
                    "{origin}: {key} is {written:?}, but the module was built as version \
                     {cargo} (Cargo): update it with `make bump VERSION={cargo}`"
                ),
                _ => {
                    annotations.insert(key.to_string(), value);
                }
            }
        }
    }
    if let Some(path) = &args.usage_path {
        let usage = std::fs::read_to_string(path)
            .with_context(|| format!("reading usage file {}", path.display()))?;
        annotations.insert(USAGE.to_string(), usage);
    }

    let detected = capabilities::detect(&bytes).with_context(|| module_name.clone())?;
    let declared = meta.host_capabilities.clone().unwrap_or_default();
    let (undeclared, unused) = capabilities::mismatch(&detected, &declared);
    let mut problems = Vec::new();
    if !undeclared.is_empty() {
        problems.push(format!(
            "host capabilities used by the policy but not declared in metadata: {}",
            undeclared.join(", ")
        ));
    }
    if !unused.is_empty() {
        problems.push(format!(
            "host capabilities declared in metadata but not detected in the policy: {}",
            unused.join(", ")
        ));
    }
    if args.strict && !problems.is_empty() {
        bail!(
            "{module_name} and {origin}: {} (fix hostCapabilities in {origin})",
            problems.join("; ")
        );
    }
    for p in &problems {
        eprintln!("warning: {module_name}: {p}");
    }

    let annotated = metadata::embed(&bytes, &meta)?;
    std::fs::write(&args.output_path, annotated)
        .with_context(|| format!("writing {}", args.output_path.display()))?;
    Ok(0)
}
