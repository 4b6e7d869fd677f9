//! The reference stack in `deploy/`, checked without a cluster: it loads as `stackguard deploy`
//! loads it, every policy accepts every object under the settings of `deploy/kubewarden/`, the
//! ClusterAdmissionPolicies match the policies' metadata, no secret value is committed, and the
//! manifests validate against the official Kubernetes schemas (the real `kubernetes-validate`).

use serde_json::Value;
use stackguard::context::ObjectStore;
use stackguard::deploy::secrets::SecretSpec;
use stackguard::deploy::stack::{Manifest, Stack, read_objects};
use stackguard::metadata::{ContextAwareResource, Metadata, Rule};
use stackguard::policies;
use stackguard_common::request::Operation;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy_dir() -> PathBuf {
    root().join("deploy")
}

/// Every YAML file under `deploy/`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn stack() -> Stack {
    Stack::load(&deploy_dir().join("stack"), None).expect("deploy/stack loads")
}

fn policy_objects() -> Vec<Manifest> {
    let mut v = Vec::new();
    for f in yaml_files(&deploy_dir().join("kubewarden")) {
        v.extend(
            read_objects(&f)
                .unwrap()
                .into_iter()
                .filter(|m| m.kind() == "ClusterAdmissionPolicy"),
        );
    }
    v
}

#[test]
fn the_stack_loads_in_one_namespace_with_every_component() {
    let s = stack();
    assert_eq!(s.namespace(), Some("sos-data"));
    for m in &s.objects {
        if m.kind() != "Namespace" {
            assert_eq!(m.namespace(), "sos-data", "{} ({})", m.id(), m.source);
        }
    }
    for (kind, name) in [
        ("StatefulSet", "postgres"),
        ("StatefulSet", "timescaledb"),
        ("StatefulSet", "mongodb"),
        ("StatefulSet", "redis-cache"),
        ("Deployment", "redis-pubsub"),
        ("Job", "mongodb-init-replicaset"),
        ("PodDisruptionBudget", "postgres"),
        ("NetworkPolicy", "redis-pubsub-clients"),
        ("Service", "postgres-headless"),
        ("Service", "postgres"),
    ] {
        assert!(s.find(kind, name).is_some(), "missing {kind} {name}");
    }
    // What the local target reads.
    let init = s.config_map("postgres-init").unwrap();
    assert!(init.keys().any(|k| k.ends_with(".sql")));
    let sql: String = init.values().cloned().collect();
    for db in [
        "sos_app_auth",
        "sos_app_users",
        "sos_app_emergency",
        "sos_app_medical",
        "sos_app_devices",
    ] {
        assert!(sql.contains(&format!("CREATE DATABASE {db} ")), "{db}");
    }
    assert!(
        s.config_value("redis-pubsub-config", "redis.conf")
            .unwrap()
            .contains("maxmemory-policy noeviction")
    );
    // The namespace override moves everything, templates included.
    let mut moved = stack();
    moved.set_namespace("elsewhere");
    assert_eq!(moved.namespace(), Some("elsewhere"));
    assert!(
        moved
            .secret_templates
            .iter()
            .all(|t| t.namespace() == "elsewhere")
    );
}

#[test]
fn overlays_that_need_kustomize_are_refused_with_the_command_to_render_them() {
    let e = Stack::load(&deploy_dir().join("overlays/ha-postgres"), None).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("patches") && msg.contains("kubectl kustomize"),
        "{msg}"
    );
}

#[test]
fn no_secret_value_is_committed_and_templates_generate_every_referenced_key() {
    let s = stack();
    let specs: Vec<SecretSpec> = s
        .secret_templates
        .iter()
        .map(|t| SecretSpec::from_template(t).unwrap())
        .collect();
    // Every secretKeyRef and secret volume of the stack is covered by a template.
    let mut referenced: BTreeSet<(String, String)> = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<(String, String)>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("secretKeyRef") {
                    out.insert((
                        r["name"].as_str().unwrap_or("").into(),
                        r["key"].as_str().unwrap_or("").into(),
                    ));
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    for m in &s.objects {
        walk(&m.object, &mut referenced);
    }
    assert!(!referenced.is_empty());
    for (name, key) in &referenced {
        let spec = specs
            .iter()
            .find(|sp| &sp.name == name)
            .unwrap_or_else(|| panic!("Secret {name} has no template"));
        assert!(
            spec.keys().any(|k| k == key),
            "Secret {name}: key {key} is never generated"
        );
    }
    // Anywhere under deploy/: Secrets carry no data, only non-secret user names.
    for f in yaml_files(&deploy_dir()) {
        for m in read_objects(&f).unwrap() {
            if m.kind() != "Secret" {
                continue;
            }
            assert!(
                m.object.get("data").is_none(),
                "{}: Secret with data",
                m.source
            );
            if let Some(sd) = m.object.get("stringData").and_then(Value::as_object) {
                for k in sd.keys() {
                    assert!(k.ends_with("username"), "{}: stringData.{k}", m.source);
                }
            }
            SecretSpec::from_template(&m).unwrap();
        }
    }
}

#[test]
fn a_cluster_admission_policy_per_policy_matching_its_metadata() {
    let caps = policy_objects();
    let names: BTreeSet<&str> = caps.iter().map(|m| m.name()).collect();
    let expected: BTreeSet<&str> = [
        "run-as-non-root",
        "resource-limits",
        "pod-anti-affinity",
        "no-plaintext-secrets",
        "postgres-extensions",
        "redis-pubsub-noeviction",
    ]
    .into();
    assert_eq!(names, expected);
    for cap in &caps {
        let name = cap.name();
        let spec = &cap.object["spec"];
        assert_eq!(
            spec["module"],
            format!(
                "registry://ghcr.io/stackguard/policies/{name}:v{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(spec["mode"], "protect", "{name}");
        assert_eq!(spec["backgroundAudit"], true, "{name}");
        assert_eq!(spec["mutating"], false, "{name}");
        let excluded = &spec["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(excluded["operator"], "NotIn", "{name}");
        assert!(
            excluded["values"]
                .as_array()
                .unwrap()
                .contains(&Value::from("kube-system")),
            "{name}"
        );
        let entry =
            policies::find(name).unwrap_or_else(|| panic!("{name}: not a stackguard policy"));
        let meta = Metadata::from_yaml(entry.metadata_yml, name).unwrap();
        let rules: Vec<Rule> = serde_json::from_value(spec["rules"].clone()).unwrap();
        assert_eq!(rules, meta.rules, "{name}: rules differ from metadata.yml");
        let ctx: BTreeSet<ContextAwareResource> = serde_json::from_value(
            spec.get("contextAwareResources")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
        )
        .unwrap();
        assert_eq!(
            ctx, meta.context_aware_resources,
            "{name}: contextAwareResources"
        );
        let settings = serde_json::to_string(&spec["settings"]).unwrap();
        if let Err(e) = (entry.prepare)(Some(&settings)) {
            panic!(
                "{name}: the policy rejects the settings of {}: {e}",
                cap.source
            );
        }
    }
}

/// `deploy/kubewarden/components/mutating` applied to the policies as kustomize applies it (its
/// RFC 6902 patches, by the json-patch crate): exactly the three workload policies become
/// mutating (`mutating: true` in the policy, `mutate: true` in its settings, a policy whose
/// `metadata.yml` says it mutates), their settings are valid, and `overlays/mutating` uses it.
/// Under those settings the reference stack is accepted as it is, without a patch.
#[test]
fn the_mutating_component_switches_the_workload_policies_to_mutation() {
    let dir = deploy_dir().join("kubewarden");
    let component = &read_objects(&dir.join("components/mutating/kustomization.yaml")).unwrap()[0];
    assert_eq!(component.kind(), "Component");
    let mut caps = policy_objects();
    let mut switched = BTreeSet::new();
    for p in component.object["patches"].as_array().unwrap() {
        let target = &p["target"];
        assert_eq!(target["kind"], "ClusterAdmissionPolicy");
        let cap = caps
            .iter_mut()
            .find(|c| c.name() == target["name"])
            .unwrap_or_else(|| panic!("no policy {}", target["name"]));
        let ops = stackguard::yaml::value(p["patch"].as_str().unwrap()).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(ops).unwrap();
        json_patch::patch(&mut cap.object, &patch)
            .unwrap_or_else(|e| panic!("{}: the patch does not apply: {e}", cap.name()));
        switched.insert(cap.name().to_string());
    }
    let expected: BTreeSet<String> = ["run-as-non-root", "resource-limits", "pod-anti-affinity"]
        .map(String::from)
        .into();
    assert_eq!(switched, expected);
    let mut objects: Vec<Manifest> = stack().objects;
    objects.extend(stack().secret_templates);
    let store = ObjectStore::new();
    for cap in &caps {
        let name = cap.name();
        let spec = &cap.object["spec"];
        let mutating = switched.contains(name);
        assert_eq!(spec["mutating"], mutating, "{name}");
        let entry = policies::find(name).unwrap();
        let meta = Metadata::from_yaml(entry.metadata_yml, name).unwrap();
        assert_eq!(meta.mutating, mutating, "{name}: metadata.yml mutating");
        let policy = (entry.prepare)(Some(&spec["settings"].to_string()))
            .unwrap_or_else(|e| panic!("{name}: settings of the mutating variant: {e}"));
        if mutating {
            assert_eq!(spec["settings"]["mutate"], true, "{name}");
        }
        for m in &objects {
            let r = policies::respond_object(policy.as_ref(), &m.object, Operation::Create, &store);
            assert!(
                r.accepted && r.mutated_object.is_none(),
                "{name} on {}: {r:?}",
                m.id()
            );
        }
    }
    let overlay = &read_objects(&dir.join("overlays/mutating/kustomization.yaml")).unwrap()[0];
    assert_eq!(overlay.object["resources"], serde_json::json!(["../.."]));
    assert_eq!(
        overlay.object["components"],
        serde_json::json!(["../../components/mutating"])
    );
}

/// Every rejection of `objects` by the six policies under the settings of
/// `deploy/kubewarden/`, with `objects` as cluster state for context-aware rules.
fn rejections(objects: &[Manifest]) -> Vec<(String, String)> {
    let store = ObjectStore::new();
    for m in objects {
        store.insert(m.object.clone());
    }
    let mut out = Vec::new();
    for cap in policy_objects() {
        let entry = policies::find(cap.name()).unwrap();
        let settings = serde_json::to_string(&cap.object["spec"]["settings"]).unwrap();
        let policy = (entry.prepare)(Some(&settings)).unwrap();
        for m in objects {
            let r = policies::respond_object(policy.as_ref(), &m.object, Operation::Create, &store);
            if !r.accepted {
                out.push((
                    cap.name().to_string(),
                    format!(
                        "{} ({}): {}",
                        m.id(),
                        m.source,
                        r.message.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    out
}

/// `stackguard check deploy/` in miniature: every object of the stack (and of the HA overlay's
/// own files) is accepted by every policy under the cluster's settings.
#[test]
fn every_policy_accepts_the_stack() {
    let mut objects: Vec<Manifest> = stack().objects;
    objects.extend(stack().secret_templates);
    for f in yaml_files(&deploy_dir().join("overlays")) {
        objects.extend(
            read_objects(&f)
                .unwrap()
                .into_iter()
                .filter(|m| m.kind() != "Kustomization" && m.object.get("$patch").is_none()),
        );
    }
    let failures: Vec<String> = rejections(&objects)
        .into_iter()
        .map(|(p, what)| format!("{p} rejects {what}"))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The control: under the very same settings, the broken stack of `fixtures/broken-stack`
/// is rejected by every one of the six policies.
#[test]
fn the_same_settings_reject_the_broken_stack() {
    let mut objects = Vec::new();
    for f in yaml_files(&root().join("fixtures/broken-stack")) {
        objects.extend(read_objects(&f).unwrap());
    }
    let found: BTreeSet<String> = rejections(&objects).into_iter().map(|(p, _)| p).collect();
    let all: BTreeSet<String> = policy_objects()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    assert_eq!(
        found, all,
        "policies that found nothing in the broken stack"
    );
}

/// Kinds whose schemas are not part of Kubernetes: validated by their operators' CRDs only.
const CRD_KINDS: &[(&str, &str)] = &[
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("policies.kubewarden.io/v1", "ClusterAdmissionPolicy"),
    ("policies.kubewarden.io/v1", "PolicyServer"),
];

fn validator() -> PathBuf {
    let venv = root().join("target/kubernetes-validate-venv");
    let bin = venv.join("bin/kubernetes-validate");
    if !bin.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "kubernetes-validate"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not install kubernetes-validate (pip) into {}",
            venv.display()
        );
    }
    bin
}

#[test]
fn manifests_validate_against_the_official_kubernetes_schemas() {
    let out_dir = root().join("target/tmp/deploy-schemas");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for f in yaml_files(&deploy_dir()) {
        for (i, m) in read_objects(&f).unwrap().into_iter().enumerate() {
            let crd = CRD_KINDS.contains(&(m.api_version(), m.kind()));
            let kustomize = m.api_version().starts_with("kustomize.config.k8s.io/");
            if kustomize || crd || m.object.get("$patch").is_some() {
                let why = match () {
                    _ if crd => {
                        "custom resource: no offline schema, its operator's CRD validates it"
                    }
                    _ if kustomize => "kustomize configuration, not an API object",
                    _ => "kustomize delete patch, not an object",
                };
                skipped.push(format!("{} {}: {why}", m.source, m.id()));
                continue;
            }
            let rel = f
                .strip_prefix(deploy_dir())
                .unwrap()
                .to_string_lossy()
                .replace('/', "__");
            let p = out_dir.join(format!("{rel}.{i}.json"));
            std::fs::write(&p, serde_json::to_vec_pretty(&m.object).unwrap()).unwrap();
            files.push(p);
        }
    }
    assert!(files.len() > 20, "only {} objects found", files.len());
    println!("skipped (explicitly):\n  {}", skipped.join("\n  "));
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.33.0", "--no-warn"])
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    assert_eq!(
        text.matches("passed for resource").count(),
        files.len(),
        "every object must be validated:\n{text}"
    );
}

/// The acceptance criterion as users run it: `stackguard check deploy/` reports nothing.
#[test]
fn stackguard_check_deploy_reports_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_stackguard"))
        .args(["check", "deploy/"])
        .current_dir(root())
        .output()
        .expect("running stackguard check");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
}

/// `deploy/kubewarden` runs on a restricted PolicyServer with least privileges: every
/// ClusterAdmissionPolicy names the PolicyServer defined there, which grants namespaced policies
/// exactly the host capabilities the modules declare (`hostCapabilities`, checked against the
/// modules by `stackguard annotate --strict`), and whose service account may read every
/// `contextAwareResources` kind the policies use.
#[test]
fn the_policies_run_on_a_least_privilege_policy_server() {
    let mut objects = Vec::new();
    for f in yaml_files(&deploy_dir().join("kubewarden")) {
        objects.extend(read_objects(&f).unwrap());
    }
    let of_kind =
        |kind: &str| -> Vec<&Manifest> { objects.iter().filter(|m| m.kind() == kind).collect() };
    let servers = of_kind("PolicyServer");
    assert_eq!(servers.len(), 1, "one PolicyServer in deploy/kubewarden");
    let spec = &servers[0].object["spec"];
    let granted: BTreeSet<String> =
        serde_json::from_value(spec["namespacedPoliciesCapabilities"].clone()).unwrap();
    let account = spec["serviceAccountName"].as_str().unwrap();
    let mut needed = BTreeSet::new();
    let mut readable = BTreeSet::new();
    for cap in policy_objects() {
        assert_eq!(
            cap.object["spec"]["policyServer"],
            servers[0].name(),
            "{}",
            cap.name()
        );
        let entry = policies::find(cap.name()).unwrap();
        let meta = Metadata::from_yaml(entry.metadata_yml, cap.name()).unwrap();
        needed.extend(meta.host_capabilities.clone().unwrap_or_default());
        for r in &meta.context_aware_resources {
            let (group, _) = stackguard::admission::group_version(&r.api_version);
            readable.insert((
                group.to_string(),
                stackguard::admission::resource_name(&r.kind),
            ));
        }
    }
    assert_eq!(
        granted, needed,
        "namespacedPoliciesCapabilities: exactly what the modules call"
    );
    // The service account, bound to a ClusterRole that reads every context-aware resource.
    assert!(
        of_kind("ServiceAccount")
            .iter()
            .any(|m| m.name() == account)
    );
    let bound: Vec<&str> = of_kind("ClusterRoleBinding")
        .iter()
        .filter(|b| {
            b.object["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account)
        })
        .map(|b| b.object["roleRef"]["name"].as_str().unwrap())
        .collect();
    for (group, resource) in &readable {
        let allowed = of_kind("ClusterRole").iter().any(|role| {
            bound.contains(&role.name())
                && role.object["rules"].as_array().unwrap().iter().any(|rule| {
                    let has = |key: &str, v: &str| {
                        rule[key]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x == v || x == "*")
                    };
                    has("apiGroups", group)
                        && has("resources", resource)
                        && ["get", "list", "watch"].iter().all(|v| has("verbs", v))
                })
        });
        assert!(
            allowed,
            "the PolicyServer cannot read {resource} ({group:?})"
        );
    }
    assert!(!readable.is_empty());
}
