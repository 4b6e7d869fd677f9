//! `stackguard run`: evaluate one request with a waPC policy module, like `kwctl run`.
//! Prints the AdmissionResponse JSON on stdout (logs on stderr), with the `patchType: JSONPatch`
//! and base64 `patch` policy-server sends when the policy mutates; exit 0 for allow and deny.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use stackguard::admission::unwrap_review;
use stackguard::context::ObjectStore;
use stackguard::host::{Host, HostData};
use stackguard::replay::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The policy module (.wasm).
    pub module: PathBuf,
    /// An AdmissionRequest, or a whole AdmissionReview, as JSON or YAML (`-`: stdin).
    #[arg(short = 'r', long)]
    pub request_path: PathBuf,
    /// Settings as inline JSON.
    #[arg(long, conflicts_with = "settings_path")]
    pub settings_json: Option<String>,
    /// Settings from a JSON or YAML file.
    #[arg(long)]
    pub settings_path: Option<PathBuf>,
    /// Manifests (files or directories) that stand in for cluster state (context-aware policies).
    #[arg(long, num_args = 1..)]
    pub context: Vec<PathBuf>,
    /// Answer host-capability calls from a session recorded with
    /// `kwctl run --record-host-capabilities-interactions`.
    #[arg(long, value_name = "FILE", conflicts_with = "context")]
    pub replay_host_capabilities_interactions: Option<PathBuf>,
    /// Evaluation time limit in seconds.
    #[arg(long, default_value_t = 2)]
    pub timeout: u64,
    /// Host capabilities the policy may call, as kwctl takes them (`*`: all; `kubernetes/*`,
    /// `kubernetes/get_resource`, ...; repeat the flag or give several). A restricted
    /// PolicyServer grants namespaced policies only its `namespacedPoliciesCapabilities`.
    #[arg(long, num_args = 0.., default_values_t = ["*".to_string()])]
    pub allowed_host_capabilities: Vec<String>,
}

/// One JSON or YAML document from a file (or stdin).
pub fn read_doc(path: &Path) -> Result<Value> {
    let input = if path.as_os_str() == "-" {
        stackguard::manifest::Input::Stdin
    } else {
        stackguard::manifest::Input::File(path.to_path_buf())
    };
    let src = stackguard::manifest::read(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
    stackguard::yaml::value(&src.text)
        .with_context(|| format!("{}: not valid JSON or YAML", path.display()))
}

/// Cluster state from manifests (files and directories, as `check` reads them).
pub fn context_store(paths: &[PathBuf]) -> Result<ObjectStore> {
    let (inputs, missing) = stackguard::manifest::discover(paths, &[]);
    if let Some(e) = missing.first() {
        bail!("--context: {e}");
    }
    let loaded = stackguard::check::load(&inputs);
    if let Some(e) = loaded.errors.first() {
        bail!("--context: {e}");
    }
    let store = ObjectStore::new();
    for o in loaded.objects {
        store.insert(o.value);
    }
    Ok(store)
}

/// Settings from `--settings-json` / `--settings-path` (default: `{}`).
pub fn settings(json: Option<&str>, path: Option<&Path>) -> Result<Value> {
    Ok(match (json, path) {
        (Some(s), _) => serde_json::from_str(s).context("--settings-json is not valid JSON")?,
        (None, Some(p)) => match read_doc(p)? {
            Value::Null => Value::Object(Default::default()),
            v => v,
        },
        (None, None) => Value::Object(Default::default()),
    })
}

pub fn main(args: Args) -> Result<i32> {
    let request = unwrap_review(read_doc(&args.request_path)?);
    if !request.is_object() {
        bail!(
            "{}: the request must be an object",
            args.request_path.display()
        );
    }
    let settings = settings(args.settings_json.as_deref(), args.settings_path.as_deref())?;
    let mut replay = None;
    let data = if let Some(path) = &args.replay_host_capabilities_interactions {
        let session = Arc::new(Session::load(path)?);
        replay = Some(session.clone());
        HostData::Replay(session)
    } else if args.context.is_empty() {
        HostData::None
    } else {
        HostData::Store(Arc::new(context_store(&args.context)?))
    };
    let host = Host::new(None, Duration::from_secs(args.timeout))?;
    let module = host.load(&args.module)?;
    let eval = host.restricted_evaluator(&module, data, args.allowed_host_capabilities)?;
    let sv = eval.validate_settings(&settings)?;
    if !sv.valid {
        bail!(
            "{}: settings rejected by the policy: {}",
            args.module.display(),
            sv.message.unwrap_or_default()
        );
    }
    let resp = eval.validate(&request, &settings);
    if let Some(n) = replay.map(|s| s.remaining()).filter(|&n| n > 0) {
        eprintln!("warning: {n} recorded host-capability exchange(s) were not replayed");
    }
    let out = stackguard::admission::response(&request, &resp)?;
    println!("{}", serde_json::to_string(&out)?);
    Ok(0)
}
