//! `deploy`/`down --target kube` against the API server: dry run on a fresh cluster, per-object
//! outcomes, Secrets, `down` by field manager, `--namespace`, an admission denial, RBAC, and
//! the Kubewarden policies without their CRDs.

use crate::support::{Ctx, MANAGER, assert_no_secret};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};
use stackguard::deploy::stack::{Manifest, Stack};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NS: &str = "sos-data";

/// The reference stack as `deploy` loads it, moved to `ns`.
fn stack(ctx: &Ctx, ns: &str) -> Stack {
    let mut s = Stack::load(&ctx.path("deploy/stack"), None).expect("deploy/stack");
    s.set_namespace(ns);
    s
}

/// Every step `deploy` reports: the objects and the generated Secrets.
fn steps(s: &Stack) -> usize {
    s.objects.len() + s.secret_templates.len()
}

fn namespace_args(ns: &str) -> Vec<String> {
    match ns {
        NS => Vec::new(),
        other => vec!["--namespace".into(), other.into()],
    }
}

fn deploy(ctx: &Ctx, ns: &str, extra: &[&str]) -> crate::support::Run {
    let nsa = namespace_args(ns);
    let mut args = vec!["deploy", "--target", "kube"];
    args.extend(nsa.iter().map(String::as_str));
    args.extend(extra);
    ctx.sg(&args)
}

/// Write objects as a manifest file (JSON documents in a YAML stream).
fn write_stack(ctx: &Ctx, name: &str, objects: &[Value]) -> PathBuf {
    let p = ctx.cluster.dir.join(name);
    let text: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    std::fs::write(&p, text.join("\n---\n")).expect("stack file");
    p
}

fn live(ctx: &Ctx, m: &Manifest) -> Option<Value> {
    let ns = Some(m.namespace()).filter(|n| !n.is_empty());
    ctx.get(m.api_version(), m.kind(), ns, m.name())
}

pub fn dry_run_on_a_fresh_cluster(ctx: &Ctx) {
    let ns = match ctx.get("v1", "Namespace", None, NS) {
        None => NS.to_string(),
        Some(_) => {
            println!("namespace {NS} exists (not a fresh cluster): using a fresh namespace");
            ctx.fresh_namespace("e2e-fresh")
        }
    };
    let s = stack(ctx, &ns);
    let run = deploy(ctx, &ns, &["--dry-run"]);
    assert_eq!(run.code, 0, "a dry run on a fresh cluster fails nothing");
    assert!(run.lines_starting("FAILED").is_empty());
    assert!(
        run.stdout
            .contains(&format!("created    Namespace {ns} (server dry run)")),
        "the Namespace itself is dry-run applied"
    );
    let partly = run.lines_starting("partly");
    assert_eq!(
        partly.len(),
        steps(&s) - 1,
        "every namespaced object and Secret is checked in another namespace"
    );
    for l in &partly {
        assert!(
            l.contains(&format!(
                "namespace {ns} does not exist yet; validated in namespace default (server dry run)"
            )),
            "{l}"
        );
    }
    assert!(run.stdout.contains("only partly checked"));
    // Nothing was written: no namespace, nothing in the substitute namespace.
    assert!(ctx.get("v1", "Namespace", None, &ns).is_none());
    assert!(
        ctx.get("v1", "ConfigMap", Some("default"), "postgres-init")
            .is_none()
    );
    assert!(
        ctx.get("apps/v1", "StatefulSet", Some("default"), "postgres")
            .is_none()
    );
    assert!(
        ctx.secret_values("default").is_empty()
            || !ctx
                .secret_values("default")
                .contains_key("postgres-credentials")
    );

    // A schema error is still a real failure, with the server's message.
    let bad_ns = ctx.fresh_namespace("e2e-invalid");
    let file = write_stack(
        ctx,
        "invalid-stack.yaml",
        &[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bad_ns}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "fine", "namespace": bad_ns}, "data": {"a": "b"}}),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "bad-port", "namespace": bad_ns},
                   "spec": {"ports": [{"port": 70000}]}}),
        ],
    );
    let run = ctx.sg(&[
        "deploy",
        "--target",
        "kube",
        "--dry-run",
        "--stack",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    let failed = run.lines_starting("FAILED");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains(&format!("Service {bad_ns}/bad-port"))
            && failed[0].contains("70000")
            && failed[0].contains("rejected by the API server"),
        "{}",
        failed[0]
    );
    assert_eq!(run.lines_starting("partly").len(), 1);
    assert!(ctx.get("v1", "Namespace", None, &bad_ns).is_none());
}

pub fn deploy_twice(ctx: &Ctx) {
    let s = stack(ctx, NS);
    let n = steps(&s);
    let run = deploy(ctx, NS, &["--no-wait"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.lines_starting("created").len(),
        n,
        "every object created"
    );
    assert!(run.stdout.contains(&format!("{n} created")));
    for m in &s.objects {
        let o = live(ctx, m).unwrap_or_else(|| panic!("{} was not applied", m.id()));
        assert!(
            stackguard::deploy::kube::applied_by_stackguard(&o),
            "{} has the stackguard field manager",
            m.id()
        );
    }
    let secrets = ctx.secret_values(NS);
    assert_eq!(secrets.len(), s.secret_templates.len());
    assert_no_secret(&run.text(), &secrets);

    let again = deploy(ctx, NS, &["--no-wait"]);
    assert_eq!(again.code, 0);
    assert_eq!(
        again.lines_starting("unchanged").len(),
        n,
        "nothing changed"
    );
    assert!(
        again.lines_starting("created").is_empty() && again.lines_starting("configured").is_empty()
    );
    assert!(again.stdout.contains("no change"));

    // With the namespace in place the dry run checks everything fully.
    let dry = deploy(ctx, NS, &["--dry-run"]);
    assert_eq!(dry.code, 0);
    assert_eq!(dry.lines_starting("unchanged").len(), n);
    assert!(dry.lines_starting("partly").is_empty());
    assert!(dry.stdout.contains("no change"));

    // One changed ConfigMap: `configured`, the rest unchanged; and back.
    let mut objects: Vec<Value> = s.objects.iter().map(|m| m.object.clone()).collect();
    let settings = objects
        .iter_mut()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "stack-settings")
        .expect("stack-settings");
    settings["data"]["e2e-marker"] = json!("changed");
    let file = write_stack(ctx, "changed-stack.yaml", &objects);
    let template = ctx.path("deploy/stack/secrets.template.yaml");
    let changed = ctx.sg(&[
        "deploy",
        "--target",
        "kube",
        "--no-wait",
        "--stack",
        file.to_str().unwrap(),
        "--secrets-template",
        template.to_str().unwrap(),
    ]);
    assert_eq!(changed.code, 0);
    assert_eq!(
        changed.lines_starting("configured"),
        [format!("configured ConfigMap {NS}/stack-settings")]
    );
    assert_eq!(changed.lines_starting("unchanged").len(), n - 1);
    let back = deploy(ctx, NS, &["--no-wait"]);
    assert_eq!(back.lines_starting("configured").len(), 1);
    let live = ctx
        .get("v1", "ConfigMap", Some(NS), "stack-settings")
        .unwrap();
    assert!(
        live["data"].get("e2e-marker").is_none(),
        "the applied key was removed again"
    );
}

pub fn secrets(ctx: &Ctx) {
    let before = ctx.secret_values(NS);
    let key = "readonly-password";
    let old = before["postgres-credentials"][key].clone();
    ctx.merge_patch(
        "v1",
        "Secret",
        Some(NS),
        "postgres-credentials",
        json!({"data": {key: null}}),
    );
    let run = deploy(ctx, NS, &["--no-wait"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.lines_starting("configured"),
        [format!(
            "configured Secret {NS}/postgres-credentials: added missing key(s) {key} (existing values kept)"
        )]
    );
    let after = ctx.secret_values(NS);
    for (secret, data) in &before {
        for (k, v) in data {
            if !(secret == "postgres-credentials" && k == key) {
                assert_eq!(&after[secret][k], v, "{secret}/{k} was kept");
            }
        }
    }
    let new = &after["postgres-credentials"][key];
    assert_eq!(new.len(), 32);
    assert_ne!(new, &old, "a missing key gets a fresh value");
    assert_no_secret(&run.text(), &before);
    assert_no_secret(&run.text(), &after);
    // The Secrets carry the label `down --purge` relies on.
    let s = ctx
        .get("v1", "Secret", Some(NS), "postgres-credentials")
        .unwrap();
    assert_eq!(
        s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "stackguard"
    );
}

pub fn down(ctx: &Ctx) {
    let s = stack(ctx, NS);
    // Someone else's object in the namespace, and a stack-named object someone else created.
    ctx.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "e2e-user-notes", "namespace": NS}, "data": {"note": "mine"}}));
    let svc = s.find("Service", "postgres").expect("Service postgres");
    ctx.delete("v1", "Service", Some(NS), "postgres");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.get("v1", "Service", Some(NS), "postgres").is_some() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    ctx.create(&svc.object);

    let run = ctx.sg(&["down", "--target", "kube"]);
    assert_eq!(run.code, 0);
    let deleted = run.lines_starting("deleted");
    let expected = s
        .objects
        .iter()
        .filter(|m| m.kind() != "Namespace" && !(m.kind() == "Service" && m.name() == "postgres"))
        .count();
    assert_eq!(deleted.len(), expected, "{deleted:#?}");
    assert!(run.stdout.contains(&format!(
        "kept       Service {NS}/postgres: not applied by stackguard (managed by {MANAGER})"
    )));
    for m in &s.objects {
        let present = live(ctx, m).is_some_and(|o| o["metadata"]["deletionTimestamp"].is_null());
        let should = m.kind() == "Namespace" || (m.kind() == "Service" && m.name() == "postgres");
        assert_eq!(present, should, "{}", m.id());
    }
    assert!(
        ctx.get("v1", "ConfigMap", Some(NS), "e2e-user-notes")
            .is_some()
    );
    assert_eq!(
        ctx.secret_values(NS).len(),
        s.secret_templates.len(),
        "Secrets kept"
    );

    let again = ctx.sg(&["down", "--target", "kube"]);
    assert_eq!(again.code, 0);
    assert!(again.lines_starting("deleted").is_empty());

    let purge = ctx.sg(&["down", "--target", "kube", "--purge"]);
    assert_eq!(purge.code, 0);
    let deleted = purge.lines_starting("deleted");
    for t in &s.secret_templates {
        assert!(
            deleted.contains(&format!("deleted    Secret {NS}/{}", t.name()).as_str()),
            "{deleted:?}"
        );
    }
    assert!(
        deleted.contains(&format!("deleted    Namespace {NS}").as_str()),
        "{deleted:?}"
    );
    assert!(ctx.namespace_gone(NS));
}

pub fn namespace_moves_the_stack(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-moved");
    let s = stack(ctx, &ns);
    let run = deploy(ctx, &ns, &["--no-wait"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.lines_starting("created").len(), steps(&s));
    for m in &s.objects {
        if m.kind() != "Namespace" {
            assert_eq!(m.namespace(), ns);
        }
        assert!(live(ctx, m).is_some(), "{} is in {ns}", m.id());
    }
    let live_ns = ctx.get("v1", "Namespace", None, &ns).unwrap();
    assert_eq!(
        live_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "the stack's Namespace object was moved, labels and all"
    );
    assert_eq!(ctx.secret_values(&ns).len(), s.secret_templates.len());
    let down = ctx.sg(&["down", "--target", "kube", "--namespace", &ns, "--purge"]);
    assert_eq!(down.code, 0);
    assert!(ctx.namespace_gone(&ns));
}

/// Dry-run create `obj` until the API server denies it with `message` (a new admission policy
/// takes a moment to be enforced).
fn wait_until_denied(ctx: &Ctx, obj: &Value, message: &str) {
    let api = ctx.api("v1", "ConfigMap", Some("default"));
    let o: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
    let pp = PostParams {
        dry_run: true,
        field_manager: Some(MANAGER.into()),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ctx.rt.block_on(api.create(&pp, &o)) {
            Err(e) if e.to_string().contains(message) => return,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "the admission policy is not enforced after 30 s"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

pub fn admission_denial(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-deny");
    let s = stack(ctx, &ns);
    let message = format!("e2e: mongodb may not run in {ns}");
    ctx.apply(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "e2e-deny-mongodb"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["statefulsets"]},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]},
            "validations": [{
                "expression": format!("!(object.metadata.name == 'e2e-vap-probe' || (object.metadata.namespace == '{ns}' && object.metadata.name == 'mongodb'))"),
                "message": message,
            }],
        },
    }));
    ctx.apply(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "e2e-deny-mongodb"},
        "spec": {"policyName": "e2e-deny-mongodb", "validationActions": ["Deny"]},
    }));
    wait_until_denied(
        ctx,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e2e-vap-probe", "namespace": "default"}}),
        &message,
    );
    let run = deploy(ctx, &ns, &["--no-wait"]);
    assert_eq!(run.code, 1, "a denial fails the deploy");
    let failed = run.lines_starting("FAILED");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with(&format!(
        "FAILED     StatefulSet {ns}/mongodb (deploy/stack/mongodb/statefulset.yaml:"
    )));
    assert!(
        failed[0].contains("rejected by the API server: "),
        "{}",
        failed[0]
    );
    assert!(
        failed[0].contains(&message),
        "the server's own message: {}",
        failed[0]
    );
    assert!(
        failed[0].contains("ValidatingAdmissionPolicy"),
        "{}",
        failed[0]
    );
    assert_eq!(
        run.lines_starting("created").len(),
        steps(&s) - 1,
        "the others are applied"
    );
    assert!(
        ctx.get("batch/v1", "Job", Some(&ns), "mongodb-init-replicaset")
            .is_some()
    );
    assert!(
        ctx.get("apps/v1", "StatefulSet", Some(&ns), "mongodb")
            .is_none()
    );

    ctx.delete(
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
        None,
        "e2e-deny-mongodb",
    );
    ctx.delete(
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
        None,
        "e2e-deny-mongodb",
    );
    let down = ctx.sg(&["down", "--target", "kube", "--namespace", &ns, "--purge"]);
    assert_eq!(down.code, 0);
}

pub fn rbac_forbidden(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-rbac");
    ctx.ensure_namespace(&ns);
    let verbs = json!(["get", "list", "create", "patch", "update", "delete"]);
    ctx.grant(
        &ns,
        json!([{"apiGroups": [""], "resources": ["configmaps", "services", "secrets"], "verbs": verbs}]),
    );
    let dev = ctx.dev_kubeconfig();
    let s = stack(ctx, &ns);
    let mut args: Vec<String> = ["deploy", "--target", "kube", "--no-wait"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(namespace_args(&ns));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ctx.sg_as(&dev, &args);
    assert_eq!(run.code, 1);
    let allowed = |m: &Manifest| matches!(m.kind(), "ConfigMap" | "Service");
    let forbidden: Vec<&Manifest> = s.objects.iter().filter(|m| !allowed(m)).collect();
    let failed = run.lines_starting("FAILED");
    assert_eq!(
        failed.len(),
        forbidden.len(),
        "one line per forbidden object: {failed:#?}"
    );
    for m in &forbidden {
        let line = failed
            .iter()
            .find(|l| l.starts_with(&format!("FAILED     {} (", m.id())))
            .unwrap_or_else(|| panic!("no line for {}", m.id()));
        assert!(line.contains("is forbidden: User"), "{line}");
        assert!(line.contains("(Forbidden, 403)"), "{line}");
    }
    let created = run.lines_starting("created");
    assert_eq!(
        created.len(),
        s.objects.iter().filter(|m| allowed(m)).count() + s.secret_templates.len()
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("error:"),
        "{}",
        run.stderr
    );

    // The admin cleans up; the Namespace (created by the admin) is not stackguard's to delete.
    let down = ctx.sg(&["down", "--target", "kube", "--namespace", &ns, "--purge"]);
    assert_eq!(down.code, 0);
    assert!(down.stdout.contains(&format!(
        "kept       Namespace {ns}: not created by stackguard alone"
    )));
    ctx.delete("v1", "Namespace", None, &ns);
}

pub fn kubewarden_without_crds(ctx: &Ctx) {
    let crd = "clusteradmissionpolicies.policies.kubewarden.io";
    if ctx
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            crd,
        )
        .is_some()
    {
        println!("Kubewarden is installed on this cluster: nothing to check");
        return;
    }
    let policies = Stack::load(&ctx.path("deploy/kubewarden"), None).expect("deploy/kubewarden");
    let run = ctx.sg(&[
        "deploy",
        "--target",
        "kube",
        "--stack",
        "deploy/kubewarden",
        "--no-wait",
    ]);
    assert_eq!(run.code, 1);
    let failed = run.lines_starting("FAILED");
    assert_eq!(
        failed.len(),
        1,
        "one line for the missing CRDs: {failed:#?}"
    );
    let line = failed[0];
    let kubewarden: Vec<_> = policies
        .objects
        .iter()
        .filter(|m| m.api_version().starts_with("policies.kubewarden.io/"))
        .collect();
    assert!(kubewarden.len() > 1);
    for m in &kubewarden {
        assert!(line.contains(m.name()), "{line}");
        let crd = format!(
            "{}.policies.kubewarden.io",
            stackguard::admission::resource_name(m.kind())
        );
        assert!(line.contains(&crd), "{line}");
    }
    assert!(line.contains(crd), "{line}");
    assert!(line.contains("helm install --wait -n kubewarden --create-namespace kubewarden-crds kubewarden/kubewarden-crds"), "{line}");
    assert!(run.stdout.contains(&format!("{} failed", kubewarden.len())));
    assert!(run.stdout.contains("nothing applied"));
    // Nothing else of deploy/kubewarden (its RBAC objects) was written.
    for m in policies.objects.iter().filter(|m| m.namespace().is_empty()) {
        if !kubewarden.iter().any(|k| k.id() == m.id()) {
            assert!(
                ctx.get(m.api_version(), m.kind(), None, m.name()).is_none(),
                "{} was applied",
                m.id()
            );
        }
    }
}
