//! The settings JSON Schemas (`policies/<name>/settings.schema.json`, what editors and the
//! Rancher UI validate with) and `validate_settings` (what policy-server runs) agree.
//!
//! Each policy's cases: every `fixtures/<policy>/settings.yaml` case, the settings of every
//! fixture, the settings of its `ClusterAdmissionPolicy` in `deploy/kubewarden/`, the settings a
//! Rancher form submits with its `questions-ui.yml` defaults, and generated invalid ones (each
//! setting with a value of the wrong JSON type, and an unknown key). The schema is checked with
//! Python's `jsonschema` (Draft 7), `validate_settings` through the compiled module. They must
//! give the same verdict, except on cases marked `schemaGap` (a check JSON Schema cannot express:
//! cross-field bounds, regex and JSONPath syntax, quantity signs), where the schema must accept
//! and the policy reject.

use serde_json::{Value, json};
use stackguard::host::{Host, HostData};
use stackguard::policies;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    stackguard::yaml::values(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Case {
    origin: String,
    settings: Value,
    /// The verdict the case expects, when it states one.
    valid: Option<bool>,
    schema_gap: Option<String>,
}

/// Validate every instance against `schema` with Python's jsonschema (Draft 7): one verdict
/// (and the first error) per instance.
fn schema_verdicts(schema: &Path, instances: &[Value]) -> Vec<(bool, String)> {
    let input = root().join(format!(
        "target/schema-cases-{}.json",
        schema
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    ));
    std::fs::write(&input, serde_json::to_vec(instances).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft7Validator.check_schema(schema)\n\
             v = jsonschema.Draft7Validator(schema)\n\
             out = []\n\
             for i in json.load(open(sys.argv[2])):\n\
             \x20   errs = sorted(v.iter_errors(i), key=lambda e: list(e.path))\n\
             \x20   out.append([not errs, errs[0].message if errs else ''])\n\
             print(json.dumps(out))\n",
        )
        .arg(schema)
        .arg(&input)
        .output()
        .expect("python3 (tests/setup.sh installs jsonschema)");
    assert!(
        out.status.success(),
        "jsonschema failed on {}: {}",
        schema.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<(bool, String)>>(&out.stdout).unwrap()
}

/// A value of a JSON type the property's schema does not allow.
fn wrong_type(schema: &Value) -> Value {
    let mut types: Vec<String> = Vec::new();
    let mut collect = |s: &Value| match s.get("type") {
        Some(Value::String(t)) => types.push(t.clone()),
        Some(Value::Array(ts)) => {
            types.extend(ts.iter().filter_map(|t| t.as_str().map(String::from)))
        }
        _ => {}
    };
    collect(schema);
    for alt in schema
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect(alt);
    }
    let allowed = |t: &str| {
        types
            .iter()
            .any(|x| x == t || (t == "integer" && x == "number"))
    };
    [
        ("boolean", json!(true)),
        ("string", json!("x")),
        ("number", json!(12.5)),
        ("array", json!(["x"])),
        ("object", json!({"x": 1})),
    ]
    .into_iter()
    .find(|(t, _)| !allowed(t))
    .map(|(_, v)| v)
    .expect("some JSON type is not allowed")
}

/// The settings a Rancher form submits when the user keeps every default of questions-ui.yml.
fn form_defaults(questions: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for q in questions {
        let variable = q["variable"].as_str().unwrap();
        if variable == "description" || q.get("default").is_none() || q["default"].is_null() {
            continue;
        }
        let value = match q.get("subquestions").and_then(Value::as_array) {
            Some(subs) => {
                let nested: Vec<Value> = subs
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        let name = s["variable"]
                            .as_str()
                            .unwrap()
                            .rsplit('.')
                            .next()
                            .unwrap()
                            .to_string();
                        s["variable"] = json!(name);
                        s
                    })
                    .collect();
                form_defaults(&nested)
            }
            None => q["default"].clone(),
        };
        out.insert(variable.to_string(), value);
    }
    Value::Object(out)
}

fn cases(policy: &str, schema: &Value) -> Vec<Case> {
    let dir = root().join("fixtures").join(policy);
    let mut cases = Vec::new();
    let settings_cases = yaml_docs(&dir.join("settings.yaml")).remove(0);
    for (i, c) in settings_cases.as_array().unwrap().iter().enumerate() {
        cases.push(Case {
            origin: format!("fixtures/{policy}/settings.yaml case {i}"),
            settings: c["settings"].clone(),
            valid: c["valid"].as_bool(),
            schema_gap: c.get("schemaGap").and_then(Value::as_str).map(String::from),
        });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("settings.yaml"))
        .collect();
    files.sort();
    for f in files {
        let header = yaml_docs(&f).remove(0);
        let settings = header.get("settings").cloned().unwrap_or(json!({}));
        cases.push(Case {
            origin: f.strip_prefix(root()).unwrap().display().to_string(),
            settings: if settings.is_null() {
                json!({})
            } else {
                settings
            },
            valid: Some(true),
            schema_gap: None,
        });
    }
    for doc in yaml_docs(&root().join(format!("deploy/kubewarden/{policy}.yaml"))) {
        cases.push(Case {
            origin: format!("deploy/kubewarden/{policy}.yaml"),
            settings: doc["spec"]["settings"].clone(),
            valid: Some(true),
            schema_gap: None,
        });
    }
    let questions =
        yaml_docs(&root().join(format!("policies/{policy}/questions-ui.yml"))).remove(0);
    cases.push(Case {
        origin: format!("policies/{policy}/questions-ui.yml defaults"),
        settings: form_defaults(questions["questions"].as_array().unwrap()),
        valid: Some(true),
        schema_gap: None,
    });
    for (name, prop) in schema["properties"].as_object().unwrap() {
        cases.push(Case {
            origin: format!("generated: {name} of the wrong type"),
            settings: json!({ name.as_str(): wrong_type(prop) }),
            valid: Some(false),
            schema_gap: None,
        });
    }
    cases.push(Case {
        origin: "generated: unknown key".to_string(),
        settings: json!({"noSuchSetting": true}),
        valid: Some(false),
        schema_gap: None,
    });
    cases
}

fn agree(policy: &str) {
    let path = root().join(format!("policies/{policy}/settings.schema.json"));
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let cases = cases(policy, &schema);
    let verdicts = schema_verdicts(
        &path,
        &cases.iter().map(|c| c.settings.clone()).collect::<Vec<_>>(),
    );
    let module = root().join(format!("dist/{policy}.wasm"));
    assert!(
        module.exists(),
        "{} is missing: run `make policies`",
        module.display()
    );
    let host = Host::new(None, Duration::from_secs(10)).unwrap();
    let eval = host
        .evaluator(&host.load(&module).unwrap(), HostData::None)
        .unwrap();
    let mut problems = Vec::new();
    let mut gaps = 0;
    for (case, (schema_ok, why)) in cases.iter().zip(&verdicts) {
        let policy_ok = eval.validate_settings(&case.settings).unwrap();
        let label = format!("{}: {}", case.origin, case.settings);
        if let Some(expected) = case.valid
            && policy_ok.valid != expected
        {
            problems.push(format!(
                "{label}: validate_settings says valid={}, the case says {expected}: {:?}",
                policy_ok.valid, policy_ok.message
            ));
        }
        match &case.schema_gap {
            Some(gap) => {
                gaps += 1;
                if !*schema_ok || policy_ok.valid {
                    problems.push(format!(
                        "{label}: marked schemaGap ({gap}) but schema valid={schema_ok}, policy valid={}: remove the marker",
                        policy_ok.valid
                    ));
                }
            }
            None if *schema_ok != policy_ok.valid => problems.push(format!(
                "{label}: the schema says valid={schema_ok} ({why}), validate_settings says valid={} ({:?})",
                policy_ok.valid, policy_ok.message
            )),
            None => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{policy}: schema and validate_settings disagree:\n{}",
        problems.join("\n")
    );
    eprintln!(
        "{policy}: {} cases agree ({gaps} documented schema gaps)",
        cases.len()
    );
    assert!(cases.len() >= 20, "{policy}: only {} cases", cases.len());
}

macro_rules! agreement_tests {
    ($($test:ident => $policy:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            agree($policy);
        }
    )*};
}

agreement_tests! {
    run_as_non_root => "run-as-non-root",
    resource_limits => "resource-limits",
    pod_anti_affinity => "pod-anti-affinity",
    no_plaintext_secrets => "no-plaintext-secrets",
    postgres_extensions => "postgres-extensions",
    redis_pubsub_noeviction => "redis-pubsub-noeviction",
}

#[test]
fn every_policy_has_an_agreement_test() {
    let names: Vec<&str> = policies::ALL.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "run-as-non-root",
            "resource-limits",
            "pod-anti-affinity",
            "no-plaintext-secrets",
            "postgres-extensions",
            "redis-pubsub-noeviction"
        ]
    );
}

/// `.stackguard.yaml` configs the CLI accepts validate against harness/stackguard.schema.json,
/// and configs it rejects do not.
#[test]
fn the_config_schema_agrees_with_the_cli() {
    let configs = [
        (json!({}), true),
        (
            json!({
                "policies": {
                    "run-as-non-root": {"enabled": true, "settings": {"exemptImages": ["registry.k8s.io/pause:*"]}},
                    "pod-anti-affinity": {"enabled": false},
                    "postgres-extensions": {"settings": null}
                },
                "exclude": ["vendor/*"],
                "exemptions": [{"policy": "run-as-non-root", "kind": "DaemonSet", "namespace": "kube-system", "name": "node-*"}]
            }),
            true,
        ),
        (json!({"policies": {"no-such-policy": {}}}), false),
        (
            json!({"policies": {"run-as-non-root": {"settings": {"bogus": 1}}}}),
            false,
        ),
        (
            json!({"policies": {"pod-anti-affinity": {"settings": {"minReplicas": 0}}}}),
            false,
        ),
        (
            json!({"policies": {"run-as-non-root": {"enable": true}}}),
            false,
        ),
        (json!({"exclud": []}), false),
        (json!({"exemptions": [{"kind": "Pod"}]}), false),
    ];
    let schema = root().join("harness/stackguard.schema.json");
    let instances: Vec<Value> = configs.iter().map(|(c, _)| c.clone()).collect();
    let verdicts = schema_verdicts(&schema, &instances);
    let dir = root().join("target/config-schema-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("empty.yaml"), "").unwrap();
    for ((config, expected), (schema_ok, why)) in configs.iter().zip(verdicts) {
        let file = dir.join(".stackguard.yaml");
        std::fs::write(&file, serde_json::to_string(config).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_stackguard"))
            .args(["check", "--config"])
            .arg(&file)
            .arg(dir.join("empty.yaml"))
            .output()
            .unwrap();
        let cli_ok = out.status.code() == Some(0);
        assert_eq!(
            cli_ok,
            *expected,
            "{config}: CLI exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            schema_ok, *expected,
            "{config}: the schema says {schema_ok} ({why})"
        );
    }
}
