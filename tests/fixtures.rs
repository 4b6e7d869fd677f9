//! Every fixture under `fixtures/<policy>/` runs through the compiled `dist/<policy>.wasm` in our
//! waPC host and through the native rule code; both must give the expected verdict, the expected
//! message fragments, and the very same message and warnings.
//!
//! Fixture file: a YAML stream. Document 1 is the case header:
//!
//! ```yaml
//! description: what the case shows
//! expect: reject            # accept | reject | mutate
//! message: [runAsUser: 0]   # fragments the rejection message must contain (string or list)
//! warning: could not check  # optional fragment expected among the admission warnings
//! forbidden: [s3cr3t]       # optional strings that must appear in no message or warning
//! operation: CREATE         # optional, default CREATE
//! settings: {}              # the policy settings for this case
//! ```
//!
//! Document 2 is the object under review; documents 3 and later are cluster state, served to the
//! module through the `kubernetes/get_resource` host capability and to native code as context.
//! For `expect: mutate` document 3 is the object the policy must turn it into (accepted with a
//! patch: the module's response as policy-server sends it has `patchType: JSONPatch`, and its
//! patch applied to document 2 gives document 3; natively the same mutated object), and cluster
//! state follows from document 4. Every other case must come back without a mutation.
//!
//! Every fixture of a mutating policy also runs with `mutate: true` added to its settings, through
//! the module and natively (the same answer both ways), and must keep the mutation property of
//! `support/mutation.rs` (fix-then-check: only rejected objects are mutated, only by additions,
//! into objects the same policy accepts).
//!
//! `fixtures/<policy>/settings.yaml` lists settings cases (`settings`, `valid`, `message`,
//! optionally `schemaGap`), each checked through the module's `validate_settings` and the native
//! settings parser (tests/settings_schema.rs checks them against the settings JSON Schema too).
//!
//! Modules run with only the host capabilities their `metadata.yml` declares.

#[path = "support/mod.rs"]
mod support;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use stackguard::admission::{Op, request_for, response};
use stackguard::context::ObjectStore;
use stackguard::host::{Evaluator, Host, HostData, ValidationResponse};
use stackguard::policies;
use stackguard_common::request::Operation;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::{module_path, root};

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    description: String,
    expect: String,
    #[serde(default)]
    message: Option<OneOrMany>,
    #[serde(default)]
    warning: Option<OneOrMany>,
    #[serde(default)]
    forbidden: Vec<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    settings: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsCase {
    settings: Value,
    valid: bool,
    #[serde(default)]
    message: Option<String>,
    /// Why the settings schema accepts these invalid settings (a check JSON Schema cannot
    /// express; tests/settings_schema.rs holds both sides to it).
    #[serde(default, rename = "schemaGap")]
    schema_gap: Option<String>,
}

fn load_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    stackguard::yaml::values(&text)
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

/// The `hostCapabilities` of a policy's metadata.yml.
fn declared_capabilities(entry: &policies::Entry) -> Vec<String> {
    stackguard::metadata::Metadata::from_yaml(entry.metadata_yml, entry.name)
        .expect("metadata.yml")
        .host_capabilities
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn host() -> Host {
    Host::new(None, Duration::from_secs(10)).expect("waPC host")
}

fn settings_text(settings: &Value) -> Option<String> {
    (!settings.is_null()).then(|| settings.to_string())
}

/// Run every fixture of `policy`; returns the number of cases.
fn run_policy(policy: &str) -> usize {
    let dir = root().join("fixtures").join(policy);
    let entry = policies::find(policy).unwrap_or_else(|| panic!("no native policy {policy}"));
    let host = host();
    let module = host.load(&module_path(policy)).expect("module loads");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "settings.yaml")
        })
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let mut docs = load_docs(file).into_iter();
        let header: Header = serde_json::from_value(docs.next().expect("header"))
            .unwrap_or_else(|e| panic!("{name}: bad header: {e}"));
        let object = docs
            .next()
            .unwrap_or_else(|| panic!("{name}: no object document"));
        let (want_accept, patched) = match header.expect.as_str() {
            "accept" => (true, None),
            "reject" => (false, None),
            "mutate" => (
                true,
                Some(
                    docs.next()
                        .unwrap_or_else(|| panic!("{name}: a mutate case needs document 3")),
                ),
            ),
            other => panic!("{name}: expect must be accept, reject or mutate, not {other}"),
        };
        let store = ObjectStore::new();
        docs.for_each(|d| store.insert(d));
        let store = Arc::new(store);
        let op = Op::parse(header.operation.as_deref().unwrap_or("CREATE"))
            .unwrap_or_else(|| panic!("{name}: bad operation"));
        let operation = match op {
            Op::Create => Operation::Create,
            Op::Update => Operation::Update,
            Op::Delete => Operation::Delete,
        };
        if !want_accept && header.message.is_none() {
            panic!("{name}: a reject case needs a message fragment");
        }

        // Through the compiled module, granted only the host capabilities its metadata declares
        // (as a PolicyServer restricted to them): the declaration must be enough.
        let eval = host
            .restricted_evaluator(
                &module,
                HostData::Store(store.clone()),
                declared_capabilities(entry),
            )
            .expect("instantiate");
        let request = request_for(&object, op, "fixture");
        let wasm = validate(&eval, &request, &header.settings, &name);

        // Natively.
        let prepared = (entry.prepare)(settings_text(&header.settings).as_deref())
            .unwrap_or_else(|e| panic!("{name}: native settings rejected: {e}"));
        let native =
            policies::respond_object(prepared.as_ref(), &object, operation, store.as_ref());

        let mut problems = Vec::new();
        if wasm.accepted != want_accept {
            problems.push(format!(
                "module: accepted={} message={:?}",
                wasm.accepted, wasm.message
            ));
        }
        if native.accepted != want_accept {
            problems.push(format!(
                "native: accepted={} message={:?}",
                native.accepted, native.message
            ));
        }
        if wasm.message != native.message {
            problems.push(format!(
                "module and native messages differ:\n  module: {:?}\n  native: {:?}",
                wasm.message, native.message
            ));
        }
        let wasm_warnings = wasm.warnings.clone().unwrap_or_default();
        if wasm_warnings != native.warnings {
            problems.push(format!(
                "module and native warnings differ: {wasm_warnings:?} vs {:?}",
                native.warnings
            ));
        }
        if wasm.mutated_object != native.mutated_object {
            problems.push(format!(
                "module and native mutated objects differ:\n  module: {:?}\n  native: {:?}",
                wasm.mutated_object, native.mutated_object
            ));
        }
        match &patched {
            Some(expected) => {
                if native.mutated_object.as_ref() != Some(expected) {
                    problems.push(format!(
                        "native: mutated object is not document 3: {:?}",
                        native.mutated_object
                    ));
                }
                match patched_by_response(&request, &wasm) {
                    Ok(Some(got)) if &got == expected => {}
                    Ok(Some(got)) => {
                        problems.push(format!("module: the JSONPatch gives {got}, not document 3"))
                    }
                    Ok(None) => problems.push("module: no patchType: JSONPatch".to_string()),
                    Err(e) => problems.push(format!("module: bad patch: {e}")),
                }
            }
            None => {
                if let Ok(Some(_)) | Err(_) = patched_by_response(&request, &wasm) {
                    problems.push("module: a patch for a case that expects none".to_string());
                }
            }
        }
        problems.extend(mutation_property(
            entry,
            &header.settings,
            (&object, operation),
            &store,
            &eval,
            &request,
        ));
        let message = wasm.message.clone().unwrap_or_default();
        for frag in header
            .message
            .as_ref()
            .map(OneOrMany::list)
            .unwrap_or_default()
        {
            if !message.contains(&frag) {
                problems.push(format!("message lacks {frag:?}: {message:?}"));
            }
        }
        for frag in header
            .warning
            .as_ref()
            .map(OneOrMany::list)
            .unwrap_or_default()
        {
            if !wasm_warnings.iter().any(|w| w.contains(&frag)) {
                problems.push(format!("no warning contains {frag:?}: {wasm_warnings:?}"));
            }
        }
        for secret in &header.forbidden {
            let leaked = message.contains(secret.as_str())
                || wasm_warnings.iter().any(|w| w.contains(secret.as_str()));
            if leaked {
                problems.push("a forbidden value appears in the message or warnings".to_string());
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name} ({}):\n  {}",
                header.description,
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{policy}: {} failing fixture(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    files.len()
}

/// `validate_settings`, then `validate`, through the module.
fn validate(eval: &Evaluator, request: &Value, settings: &Value, name: &str) -> ValidationResponse {
    let sv = eval.validate_settings(settings).expect("validate_settings");
    assert!(sv.valid, "{name}: settings rejected: {:?}", sv.message);
    eval.validate(request, settings)
}

/// The object the AdmissionResponse policy-server would send patches the request's object into
/// (`None`: no patch).
fn patched_by_response(
    request: &Value,
    resp: &ValidationResponse,
) -> Result<Option<Value>, String> {
    let out = response(request, resp).map_err(|e| e.to_string())?;
    let Some(b64) = out.get("patch").and_then(Value::as_str) else {
        return match out.get("patchType") {
            None => Ok(None),
            Some(t) => Err(format!("patchType {t} without a patch")),
        };
    };
    if out["patchType"] != "JSONPatch" {
        return Err(format!("patchType is {}", out["patchType"]));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| e.to_string())?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let mut object = request["object"].clone();
    json_patch::patch(&mut object, &patch).map_err(|e| e.to_string())?;
    Ok(Some(object))
}

/// The fixture again with `mutate: true`: natively the mutation property holds, and the module
/// gives the very same answer.
fn mutation_property(
    entry: &policies::Entry,
    settings: &Value,
    (object, operation): (&Value, Operation),
    store: &ObjectStore,
    eval: &Evaluator,
    request: &Value,
) -> Vec<String> {
    let Some(pair) = support::mutation::prepare_pair(entry, settings) else {
        return Vec::new();
    };
    let on_settings = &pair.on_settings;
    let native = match support::mutation::check(
        pair.off.as_ref(),
        pair.on.as_ref(),
        object,
        operation,
        store,
    ) {
        Ok(r) => r,
        Err(e) => return vec![format!("with mutate: true: {e}")],
    };
    let wasm = eval.validate(request, on_settings);
    let same = wasm.accepted == native.accepted
        && wasm.message == native.message
        && wasm.warnings.unwrap_or_default() == native.warnings
        && wasm.mutated_object == native.mutated_object;
    if same {
        Vec::new()
    } else {
        vec![format!(
            "with mutate: true the module and native answers differ (native: {native:?})"
        )]
    }
}

/// `fixtures/<policy>/settings.yaml` through the module and natively.
fn run_settings(policy: &str) -> usize {
    let path = root().join("fixtures").join(policy).join("settings.yaml");
    let cases: Vec<SettingsCase> = serde_json::from_value(load_docs(&path).remove(0))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let entry = policies::find(policy).unwrap();
    let host = host();
    let module = host.load(&module_path(policy)).unwrap();
    let eval = host.evaluator(&module, HostData::None).unwrap();
    for (i, case) in cases.iter().enumerate() {
        assert!(
            case.schema_gap.is_none() || !case.valid,
            "{policy} settings case {i}: a schemaGap is only for invalid settings"
        );
        let wasm = eval.validate_settings(&case.settings).unwrap();
        let native = (entry.prepare)(settings_text(&case.settings).as_deref());
        assert_eq!(
            wasm.valid, case.valid,
            "{policy} settings case {i}: module said {:?}",
            wasm.message
        );
        assert_eq!(
            native.is_ok(),
            case.valid,
            "{policy} settings case {i}: native disagrees"
        );
        if let Some(frag) = &case.message {
            let msg = wasm.message.clone().unwrap_or_default();
            assert!(
                msg.contains(frag.as_str()),
                "{policy} settings case {i}: {msg:?} lacks {frag:?}"
            );
            assert_eq!(
                native.err().as_deref(),
                Some(msg.as_str()),
                "{policy} settings case {i}"
            );
        }
    }
    assert_eq!(eval.protocol_version().unwrap(), "v1");
    cases.len()
}

macro_rules! policy_tests {
    ($($test:ident => $policy:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let n = run_policy($policy);
            assert!(n >= 15, "{}: only {n} fixtures (at least 15 wanted)", $policy);
            run_settings($policy);
        }
    )*};
}

policy_tests! {
    run_as_non_root => "run-as-non-root",
    resource_limits => "resource-limits",
    pod_anti_affinity => "pod-anti-affinity",
    no_plaintext_secrets => "no-plaintext-secrets",
    postgres_extensions => "postgres-extensions",
    redis_pubsub_noeviction => "redis-pubsub-noeviction",
}
