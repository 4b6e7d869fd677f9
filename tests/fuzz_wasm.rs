//! The compiled policy modules (`dist/*.wasm`) in our waPC host on the fuzz corpora (issue 11
//! §3): every payload the fuzz targets built (`tests/fuzz/run.sh export` writes them to
//! `target/fuzz/wasm/`) goes through the module's `validate` or `validate_settings`. No call may
//! trap or fail in the host, and the module must answer exactly as the same rules compiled
//! natively: the structure-aware payloads (consistent AdmissionRequests) are compared with
//! `stackguard check`'s evaluation, settings with the native settings parser.
//!
//! `make test` checks a bounded sample (`FUZZ_WASM_SAMPLE` files per directory, default 150);
//! `make fuzz-wasm` replays the whole corpora (`FUZZ_WASM_ALL=1`).

use serde_json::Value;
use stackguard::context::ObjectStore;
use stackguard::host::{Host, HostData, ValidationResponse};
use stackguard::policies;
use stackguard_common::request::Operation;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of `dir` (sorted: the names are hashes, so a prefix is an unbiased sample).
fn sample(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    if std::env::var_os("FUZZ_WASM_ALL").is_none() {
        let n = std::env::var("FUZZ_WASM_SAMPLE")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(150);
        files.truncate(n);
    }
    files
}

/// What the same rules answer natively for a structure-aware payload (`None`: not one): the
/// verdict, message, warnings and the mutated object (settings with `mutate: true`).
fn native_response(entry: &policies::Entry, payload: &Value) -> Option<ValidationResponse> {
    let request = payload.get("request")?;
    let operation = match request.get("operation")?.as_str()? {
        "CREATE" => Operation::Create,
        "UPDATE" => Operation::Update,
        "DELETE" => Operation::Delete,
        _ => return None,
    };
    let settings = payload.get("settings").filter(|s| !s.is_null());
    let prepared = (entry.prepare)(settings.map(Value::to_string).as_deref()).ok()?;
    let object = request.get("object").unwrap_or(&Value::Null);
    let r = policies::respond_object(prepared.as_ref(), object, operation, &ObjectStore::new());
    Some(ValidationResponse {
        accepted: r.accepted,
        message: r.message,
        warnings: (!r.warnings.is_empty()).then_some(r.warnings),
        mutated_object: r.mutated_object,
        ..Default::default()
    })
}

/// Where the module's response differs from the native one, without the values of the
/// mutated objects (a payload may hold secret-looking data): the verdicts, the policies' own
/// messages and warnings, and the operation and path of each JSON Patch step between the
/// native and the module's mutated object.
fn difference(module: &ValidationResponse, native: &ValidationResponse) -> String {
    let mut parts = Vec::new();
    if module.accepted != native.accepted || module.message != native.message {
        parts.push(format!(
            "module {} {:?}, native {} {:?}",
            module.accepted, module.message, native.accepted, native.message
        ));
    }
    if module.warnings != native.warnings {
        parts.push(format!(
            "warnings: module {:?}, native {:?}",
            module.warnings, native.warnings
        ));
    }
    if module.code != native.code || module.audit_annotations != native.audit_annotations {
        parts.push(format!(
            "code/audit annotations: module {:?}/{:?}, native {:?}/{:?}",
            module.code, module.audit_annotations, native.code, native.audit_annotations
        ));
    }
    match (&module.mutated_object, &native.mutated_object) {
        (Some(m), Some(n)) if m != n => {
            let steps: Vec<String> = json_patch::diff(n, m)
                .0
                .iter()
                .map(|op| {
                    // The step's own name ("add", "replace", …), without its value.
                    let step = serde_json::to_value(op).unwrap_or_default();
                    format!("{} {}", step["op"].as_str().unwrap_or("?"), op.path())
                })
                .collect();
            parts.push(format!(
                "mutated objects differ (native → module: {})",
                steps.join(", ")
            ));
        }
        (m, n) if m.is_some() != n.is_some() => parts.push(format!(
            "mutated object: module {}, native {}",
            if m.is_some() { "some" } else { "none" },
            if n.is_some() { "some" } else { "none" }
        )),
        _ => {}
    }
    parts.join("; ")
}

#[test]
fn modules_never_trap_on_the_fuzz_corpora() {
    let base = root().join("target/fuzz/wasm");
    assert!(
        base.join("validate").is_dir(),
        "{} is missing: run `make fuzz-smoke` (make test does) to build the fuzz payloads",
        base.display()
    );
    let host = Host::new(None, Duration::from_secs(20)).expect("waPC host");
    let mut failures = Vec::new();
    let (mut validated, mut compared, mut mutations, mut settings) = (0, 0, 0, 0);
    for entry in policies::ALL {
        let path = root().join("dist").join(format!("{}.wasm", entry.name));
        let module = host.load(&path).expect("module (make policies)");
        let store = HostData::Store(Arc::new(ObjectStore::new()));
        let eval = host.evaluator(&module, store).expect("instantiate");
        let own = sample(&base.join("validate").join(entry.name));
        let raw = sample(&base.join("validate/any"));
        for (file, structured) in own
            .iter()
            .map(|f| (f, true))
            .chain(raw.iter().map(|f| (f, false)))
        {
            let bytes = std::fs::read(file).expect("payload");
            let resp = eval.validate_raw(&bytes);
            validated += 1;
            if resp.code == Some(500) {
                failures.push(format!(
                    "{} on {}: {:?}",
                    entry.name,
                    file.display(),
                    resp.message
                ));
                continue;
            }
            let native = structured
                .then(|| serde_json::from_slice::<Value>(&bytes).ok())
                .flatten()
                .and_then(|p| native_response(entry, &p));
            if let Some(native) = native {
                compared += 1;
                mutations += usize::from(native.mutated_object.is_some());
                if native != resp {
                    failures.push(format!(
                        "{} on {}: {}",
                        entry.name,
                        file.display(),
                        difference(&resp, &native)
                    ));
                }
            }
        }
        for file in sample(&base.join("settings").join(entry.name)) {
            let bytes = std::fs::read(file.as_path()).expect("settings payload");
            settings += 1;
            match eval.validate_settings_raw(&bytes) {
                Err(e) => failures.push(format!("{} on {}: {e:#}", entry.name, file.display())),
                Ok(sv) => {
                    let text = std::str::from_utf8(&bytes).unwrap_or("");
                    let native = (entry.prepare)(Some(text)).err();
                    if sv.valid != native.is_none() || (!sv.valid && sv.message != native) {
                        failures.push(format!(
                            "{} settings {}: module {sv:?}, native {native:?}",
                            entry.name,
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "fuzz payloads through the modules: {validated} validate calls ({compared} compared with native, {mutations} of them mutated), {settings} validate_settings calls"
    );
    assert!(
        validated > 0,
        "no fuzz payload found under {}",
        base.display()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
