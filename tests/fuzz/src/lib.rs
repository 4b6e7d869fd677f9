//! What the stackguard fuzz targets share: the six policies behind one table (the waPC entry
//! points, exactly as the modules run them), their fixture settings, the evaluation of one
//! object through both the module path and the CLI path (which must agree), and the export of
//! generated payloads so that the compiled modules replay them (`tests/fuzz_wasm.rs`).

pub mod seeds;
pub mod shapes;

use serde_json::Value;
use stackguard::admission::{Op, request_for};
use stackguard::context::ObjectStore;
use stackguard_common::policy::{Response, parse_settings, validate_payload};
use stackguard_common::request::Operation;
use stackguard_common::{ClusterContext, Policy};
use std::sync::OnceLock;

/// One policy's waPC entry points.
pub struct Entry {
    pub name: &'static str,
    /// `validate`: the payload bytes policy-server sends, the response the module returns.
    pub validate: fn(&[u8], &dyn ClusterContext) -> Response,
    /// `validate_settings`: `Err` with the message for invalid settings.
    pub settings: fn(Option<&str>) -> Result<(), String>,
}

fn settings_of<P: Policy>(text: Option<&str>) -> Result<(), String> {
    parse_settings::<P::Settings>(text).map(drop)
}

macro_rules! entries {
    ($($name:literal => $policy:ty),* $(,)?) => {
        &[$(Entry {
            name: $name,
            validate: validate_payload::<$policy>,
            settings: settings_of::<$policy>,
        }),*]
    };
}

/// Every policy, in the order of `stackguard::policies::ALL`.
pub const POLICIES: &[Entry] = entries! {
    "run-as-non-root" => run_as_non_root::RunAsNonRoot,
    "resource-limits" => resource_limits::ResourceLimits,
    "pod-anti-affinity" => pod_anti_affinity::PodAntiAffinity,
    "no-plaintext-secrets" => no_plaintext_secrets::NoPlaintextSecrets,
    "postgres-extensions" => postgres_extensions::PostgresExtensions,
    "redis-pubsub-noeviction" => redis_pubsub_noeviction::RedisPubsubNoeviction,
};

/// The valid settings cases of `fixtures/<policy>/settings.yaml`, per policy (in
/// [`POLICIES`] order), with `null` (the defaults) first.
pub fn fixture_settings() -> &'static [Vec<Value>] {
    static CACHE: OnceLock<Vec<Vec<Value>>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let files = [
            include_str!("../../../fixtures/run-as-non-root/settings.yaml"),
            include_str!("../../../fixtures/resource-limits/settings.yaml"),
            include_str!("../../../fixtures/pod-anti-affinity/settings.yaml"),
            include_str!("../../../fixtures/no-plaintext-secrets/settings.yaml"),
            include_str!("../../../fixtures/postgres-extensions/settings.yaml"),
            include_str!("../../../fixtures/redis-pubsub-noeviction/settings.yaml"),
        ];
        files
            .iter()
            .map(|text| {
                let cases = stackguard::yaml::value(text).expect("fixture settings are YAML");
                let valid = cases
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["valid"] == true);
                std::iter::once(Value::Null)
                    .chain(valid.map(|c| c["settings"].clone()))
                    .collect()
            })
            .collect()
    })
}

fn operation(op: Op) -> Operation {
    match op {
        Op::Create => Operation::Create,
        Op::Update => Operation::Update,
        Op::Delete => Operation::Delete,
    }
}

/// Evaluate `object` with policy `index` and `settings`, through the module path (the
/// AdmissionRequest payload as bytes, as the waPC guest reads it) and the CLI path (the parsed
/// value, as `stackguard check` does): both must answer the same. Returns the payload.
pub fn evaluate_both(
    index: usize,
    object: &Value,
    op: Op,
    settings: &Value,
    ctx: &ObjectStore,
) -> Vec<u8> {
    let entry = &POLICIES[index];
    let payload = serde_json::json!({
        "request": request_for(object, op, "fuzz"),
        "settings": settings,
    });
    let bytes = serde_json::to_vec(&payload).expect("JSON values serialise");
    let module = (entry.validate)(&bytes, ctx);
    let text = (!settings.is_null()).then(|| settings.to_string());
    let native = stackguard::policies::find(entry.name).expect("registered policy");
    let prepared = (native.prepare)(text.as_deref()).expect("fixture settings are valid");
    let cli = stackguard::policies::respond_object(prepared.as_ref(), object, operation(op), ctx);
    assert_eq!(
        module, cli,
        "{}: the module path and the CLI path disagree",
        entry.name
    );
    bytes
}

/// With `STACKGUARD_FUZZ_EXPORT=<dir>`, write `bytes` to `<dir>/<kind>/<hash>.json` (the
/// compiled modules replay these files in `tests/fuzz_wasm.rs`). A no-op otherwise.
pub fn export(kind: &str, bytes: &[u8]) {
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    let Some(dir) = DIR.get_or_init(|| std::env::var_os("STACKGUARD_FUZZ_EXPORT").map(Into::into))
    else {
        return;
    };
    let dir = dir.join(kind);
    std::fs::create_dir_all(&dir).expect("export directory");
    std::fs::write(dir.join(format!("{:016x}.json", hash(bytes))), bytes).expect("export");
}

/// A stable 64-bit hash (file names of seeds and exported payloads).
pub fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The `init` of every target: with `STACKGUARD_FUZZ_SEEDS=<dir>`, write the target's seed
/// corpus to `<dir>` and exit instead of fuzzing.
pub fn init(target: &str) {
    if let Some(dir) = std::env::var_os("STACKGUARD_FUZZ_SEEDS") {
        let n = seeds::write(target, std::path::Path::new(&dir));
        eprintln!(
            "{target}: {n} seeds in {}",
            std::path::Path::new(&dir).display()
        );
        std::process::exit(0);
    }
}

/// Evaluate `object` (a CREATE, no cluster state) with the named policies and their default
/// settings through [`evaluate_both`], exporting each payload.
pub fn evaluate_with(names: &[&str], object: &Value) {
    let store = ObjectStore::new();
    for name in names {
        let index = POLICIES
            .iter()
            .position(|e| e.name == *name)
            .expect("a policy name");
        let payload = evaluate_both(index, object, Op::Create, &Value::Null, &store);
        export(&format!("validate/{name}"), &payload);
    }
}

/// A ConfigMap `name` in namespace `db` with `labels` and one data key.
pub fn config_map(labels: Value, key: &str, text: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "fuzz", "namespace": "db", "labels": labels},
        "data": {key: text},
    })
}

/// A Deployment in namespace `db` with `labels` on the pod template and one container.
pub fn deployment(labels: Value, container: Value) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fuzz", "namespace": "db", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    })
}
