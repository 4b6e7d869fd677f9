//! The mutating policies end to end (run-as-non-root, resource-limits, pod-anti-affinity):
//!
//! - every workload kind, CronJob included: the same patched object natively and through the
//!   compiled module, the pod spec patched in the kind's own place and nothing else touched;
//! - Kubewarden `e2e.bats` style through `stackguard run` (our waPC host, as `kwctl run`): every
//!   `mutate-*` fixture answers `patchType: JSONPatch` and the patch gives the fixture's object;
//!   a compliant object gets no patch;
//! - the mutation property of `support/mutation.rs` on every object of `../shared/corpus`, and the
//!   module's answer equal to the native one there too.

#[path = "support/mod.rs"]
mod support;

use base64::Engine;
use serde_json::{Value, json};
use stackguard::admission::{Op, request_for};
use stackguard::context::ObjectStore;
use stackguard::host::{Evaluator, Host, HostData};
use stackguard::policies::{self, Entry};
use stackguard_common::request::Operation;
use stackguard_common::workload::WORKLOAD_KINDS;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{module_path, root};

const MUTATING: [&str; 3] = ["run-as-non-root", "resource-limits", "pod-anti-affinity"];

/// The settings each policy is exercised with: mutation on, defaults to fill in.
fn settings(policy: &str) -> Value {
    match policy {
        "resource-limits" => json!({
            "mutate": true,
            "defaultRequests": {"cpu": "100m", "memory": "128Mi"},
            "defaultLimits": {"cpu": "500m", "memory": "256Mi"},
        }),
        _ => json!({"mutate": true}),
    }
}

fn entry(policy: &str) -> &'static Entry {
    policies::find(policy).unwrap()
}

/// A module evaluator with `settings` validated.
fn evaluator(host: &Host, policy: &str, settings: &Value) -> Evaluator {
    let module = host.load(&module_path(policy)).expect("module loads");
    let eval = host
        .evaluator(&module, HostData::None)
        .expect("instantiate");
    let sv = eval.validate_settings(settings).unwrap();
    assert!(sv.valid, "{policy}: {:?}", sv.message);
    eval
}

// ------------------------------------------------------------------ every workload kind

/// A pod template (labels and spec) that every mutating policy has something to fill in.
fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "w", "pod-template-hash": "5f7d"}},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": "ghcr.io/acme/app:1", "ports": [{"containerPort": 8080}]}],
            "terminationGracePeriodSeconds": 30,
        },
    })
}

/// `template` inside an object of `kind`.
fn wrap(kind: &str, template: &Value) -> Value {
    let labels = &template["metadata"]["labels"];
    let meta = json!({"name": "w", "namespace": "ns", "labels": {"app": "w"}});
    let (api_version, spec) = match kind {
        "Pod" => {
            let mut meta = meta;
            meta["labels"] = labels.clone();
            return json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]});
        }
        "Job" => ("batch/v1", json!({"template": template})),
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}),
        ),
        "ReplicationController" => (
            "v1",
            json!({"replicas": 3, "selector": {"app": "w"}, "template": template}),
        ),
        _ => (
            "apps/v1",
            json!({"replicas": 3, "selector": {"matchLabels": {"app": "w"}}, "template": template}),
        ),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec})
}

/// Where the pod spec of `kind` lives.
fn pod_spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => "/spec/template/spec",
    }
}

/// The pod spec of `template()` once `policy` has filled it in.
fn expected_spec(policy: &str) -> Value {
    let mut spec = template()["spec"].clone();
    for list in ["initContainers", "containers"] {
        let c = &mut spec[list][0];
        match policy {
            "run-as-non-root" => {
                c["securityContext"] = json!({
                    "runAsNonRoot": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                });
            }
            "resource-limits" => {
                c["resources"] = json!({
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                });
            }
            _ => {}
        }
    }
    if policy == "pod-anti-affinity" {
        spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": "kubernetes.io/hostname"},
        }]}});
    }
    spec
}

#[test]
fn every_workload_kind_is_patched_in_its_own_place_natively_and_through_the_module() {
    let host = Host::new(None, Duration::from_secs(10)).unwrap();
    let mut patched = 0;
    for policy in MUTATING {
        let s = settings(policy);
        let native = (entry(policy).prepare)(Some(&s.to_string())).unwrap();
        let eval = evaluator(&host, policy, &s);
        for kind in WORKLOAD_KINDS.iter().copied() {
            let object = wrap(kind, &template());
            let store = ObjectStore::new();
            let got = policies::respond_object(native.as_ref(), &object, Operation::Create, &store);
            let wasm = eval.validate(&request_for(&object, Op::Create, "kinds"), &s);
            assert_eq!(
                wasm.mutated_object, got.mutated_object,
                "{policy} {kind}: module and native patch differently"
            );
            assert!(got.accepted && wasm.accepted, "{policy} {kind}: {got:?}");
            if !entry_reviews(policy, kind) {
                assert!(
                    got.mutated_object.is_none(),
                    "{policy} {kind}: not its kind"
                );
                continue;
            }
            let mutated = got
                .mutated_object
                .unwrap_or_else(|| panic!("{policy} {kind}: nothing patched"));
            let at = pod_spec_pointer(kind);
            assert_eq!(
                mutated.pointer(at),
                Some(&expected_spec(policy)),
                "{policy} {kind}: pod spec at {at}"
            );
            // Nothing but the pod spec changed.
            let mut rest = mutated.clone();
            *rest.pointer_mut(at).unwrap() = object.pointer(at).unwrap().clone();
            assert_eq!(
                rest, object,
                "{policy} {kind}: changed outside the pod spec"
            );
            patched += 1;
        }
    }
    // run-as-non-root and resource-limits: 8 kinds each; pod-anti-affinity: 4.
    assert_eq!(patched, 20);
}

/// Does `policy` review `kind` at all (its `KINDS`)?
fn entry_reviews(policy: &str, kind: &str) -> bool {
    (entry(policy).prepare)(None)
        .unwrap()
        .kinds()
        .contains(&kind)
}

// ------------------------------------------------------------------ e2e.bats style

const BIN: &str = env!("CARGO_BIN_EXE_stackguard");

/// `stackguard run MODULE -r REQUEST --settings-json SETTINGS`: (exit code, stdout).
fn kw_run(policy: &str, request: &Value, settings: &Value, tag: &str) -> (i32, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mutation-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{policy}-{tag}.json"));
    std::fs::write(&file, serde_json::to_vec(request).unwrap()).unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(module_path(policy))
        .arg("--request-path")
        .arg(&file)
        .args(["--settings-json", &settings.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Fixture files of `policy` whose name starts with `prefix`: (file name, documents).
fn fixtures(policy: &str, prefix: &str) -> Vec<(String, Vec<Value>)> {
    let dir = root().join("fixtures").join(policy);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let docs = stackguard::yaml::values(&std::fs::read_to_string(&f).unwrap()).unwrap();
            (f.file_name().unwrap().to_string_lossy().into_owned(), docs)
        })
        .collect()
}

#[test]
fn e2e_run_answers_json_patch_for_each_mutating_case_and_none_for_compliant_objects() {
    let mut mutating_cases = 0;
    let mut compliant_cases = 0;
    for policy in MUTATING {
        for (name, docs) in fixtures(policy, "mutate-") {
            let settings = &docs[0]["settings"];
            let request = request_for(&docs[1], Op::Create, &name);
            let (code, stdout) = kw_run(policy, &request, settings, &name);
            assert_eq!(code, 0, "{name}: {stdout}");
            // As e2e.bats does: the raw output says allowed and JSONPatch …
            assert!(stdout.contains(r#""allowed":true"#), "{name}: {stdout}");
            assert!(
                stdout.contains(r#""patchType":"JSONPatch""#),
                "{name}: {stdout}"
            );
            // … and the patch, decoded and applied, gives the fixture's expected object.
            let out: Value = serde_json::from_str(&stdout).unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(out["patch"].as_str().unwrap())
                .unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
            let mut object = docs[1].clone();
            json_patch::patch(&mut object, &patch).unwrap();
            assert_eq!(object, docs[2], "{name}: patched object");
            mutating_cases += 1;
        }
        // Every accepted fixture, with mutation switched on: allowed, and no patch at all.
        for (name, docs) in fixtures(policy, "accept-") {
            let settings = support::mutation::with_mutate(&docs[0]["settings"], true);
            let op = docs[0]["operation"].as_str().unwrap_or("CREATE");
            let request = request_for(&docs[1], Op::parse(op).unwrap(), &name);
            let (code, stdout) = kw_run(policy, &request, &settings, &name);
            if code == 2 {
                continue; // settings that refuse mutation (e.g. requireHard)
            }
            assert!(stdout.contains(r#""allowed":true"#), "{name}: {stdout}");
            assert!(!stdout.contains("patchType"), "{name}: {stdout}");
            assert!(!stdout.contains(r#""patch""#), "{name}: {stdout}");
            compliant_cases += 1;
        }
    }
    assert!(mutating_cases >= 12, "{mutating_cases} mutating cases");
    assert!(compliant_cases >= 30, "{compliant_cases} compliant cases");
}

// ------------------------------------------------------------------ the shared corpus

#[test]
fn corpus_objects_keep_the_mutation_property_natively_and_through_the_modules() {
    let corpus = root().join("../shared/corpus");
    assert!(
        corpus.is_dir(),
        "{} is missing: the real-world corpus ships beside the repository",
        corpus.display()
    );
    let (inputs, _) = stackguard::manifest::discover(&[corpus], &[]);
    let loaded = stackguard::check::load(&inputs);
    let objects: Vec<&Value> = loaded.objects.iter().map(|o| &o.value).collect();
    assert!(
        objects.len() > 3000,
        "only {} corpus objects",
        objects.len()
    );
    let host = Host::new(None, Duration::from_secs(10)).unwrap();
    let store = ObjectStore::new();
    for policy in MUTATING {
        let started = Instant::now();
        let pair = support::mutation::prepare_pair(entry(policy), &settings(policy))
            .expect("a mutating policy");
        let (off, on, on_settings) = (&pair.off, &pair.on, &pair.on_settings);
        let eval = evaluator(&host, policy, on_settings);
        let kinds = on.kinds();
        let (mut reviewed, mut mutated, mut rejected) = (0, 0, 0);
        let mut failures = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let kind = object["kind"].as_str().unwrap_or("");
            if !kinds.contains(&kind) {
                continue;
            }
            reviewed += 1;
            let name = format!("{kind} {} (object {i})", object["metadata"]["name"]);
            let native = match support::mutation::check(
                off.as_ref(),
                on.as_ref(),
                object,
                Operation::Create,
                &store,
            ) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let wasm = eval.validate(&request_for(object, Op::Create, "corpus"), on_settings);
            if wasm.mutated_object != native.mutated_object
                || wasm.accepted != native.accepted
                || wasm.message != native.message
            {
                failures.push(format!("{name}: module and native answers differ"));
            }
            mutated += usize::from(native.mutated_object.is_some());
            rejected += usize::from(!native.accepted);
        }
        eprintln!(
            "{policy}: {reviewed} corpus objects, {mutated} mutated, {rejected} still rejected ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        assert!(
            failures.is_empty(),
            "{policy}: {} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(mutated > 0, "{policy}: no corpus object was mutated");
    }
}
