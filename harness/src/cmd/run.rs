//! `stackguard run`: evaluate one request with a waPC policy module, like `kwctl run`.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use stackguard::admission::unwrap_review;
use stackguard::context::ObjectStore;
use stackguard::host::{Host, HostData};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The policy module (.wasm).
    pub module: PathBuf,
    /// An AdmissionRequest, or a whole AdmissionReview, as JSON or YAML.
    #[arg(short = 'r', long)]
    pub request_path: PathBuf,
    /// Settings as inline JSON.
    #[arg(long, conflicts_with = "settings_path")]
    pub settings_json: Option<String>,
    /// Settings from a JSON or YAML file.
    #[arg(long)]
    pub settings_path: Option<PathBuf>,
    /// Manifests that stand in for cluster state (context-aware policies).
    #[arg(long, num_args = 1..)]
    pub context: Vec<PathBuf>,
    /// Evaluation time limit in seconds.
    #[arg(long, default_value_t = 2)]
    pub timeout: u64,
}

fn read_doc(path: &PathBuf) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{}: not valid JSON or YAML", path.display()))
}

pub fn main(args: Args) -> Result<i32> {
    let request = unwrap_review(read_doc(&args.request_path)?);
    if !request.is_object() {
        bail!(
            "{}: the request must be an object",
            args.request_path.display()
        );
    }
    let settings = match (&args.settings_json, &args.settings_path) {
        (Some(s), _) => serde_json::from_str(s).context("--settings-json is not valid JSON")?,
        (None, Some(p)) => read_doc(p)?,
        (None, None) => Value::Object(Default::default()),
    };
    let data = if args.context.is_empty() {
        HostData::None
    } else {
        let mut store = ObjectStore::new();
        for path in &args.context {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("{}: invalid YAML", path.display()))?;
                if v.is_object() {
                    store.insert(v);
                }
            }
        }
        HostData::Store(Arc::new(store))
    };
    let host = Host::new(None, Duration::from_secs(args.timeout))?;
    let module = host.load(&args.module)?;
    let eval = host.evaluator(&module, data)?;
    let sv = eval.validate_settings(&settings)?;
    if !sv.valid {
        bail!(
            "{}: settings rejected by the policy: {}",
            args.module.display(),
            sv.message.unwrap_or_default()
        );
    }
    let resp = eval.validate(&request, &settings);
    let uid = request
        .get("uid")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let mut out = serde_json::json!({
        "uid": uid,
        "allowed": resp.accepted,
    });
    if let Some(msg) = resp.message {
        out["status"] = serde_json::json!({"message": msg, "code": resp.code.unwrap_or(400)});
    }
    if let Some(w) = resp.warnings {
        out["warnings"] = serde_json::json!(w);
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(0)
}
