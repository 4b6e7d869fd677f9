//! `stackguard audit` against objects in the API server: the same findings as `check` on the
//! same manifests (live ConfigMaps as context), config and formats, paging, Secrets and RBAC,
//! and the OpenReports/PolicyReport objects it writes.

use crate::support::{Ctx, assert_no_secret};
use serde_json::{Value, json};
use stackguard::config::Config;
use stackguard::deploy::stack::read_objects;
use stackguard::engine::Engine;
use stackguard::manifest::Object;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A finding without where it was read: what must be equal between `check` and `audit`.
type Essence = (String, String, String, String, Option<String>, String);

fn essence(report: &Value) -> Vec<Essence> {
    let mut v: Vec<Essence> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            (
                s("kind"),
                s("namespace"),
                s("name"),
                s("policy"),
                f["path"].as_str().map(str::to_string),
                s("message"),
            )
        })
        .collect();
    v.sort();
    v
}

/// `fixtures/broken-stack` moved to namespace `ns`, as files (for `check`) and created in the
/// cluster (for `audit`). Returns the directory of the files.
fn broken_stack(ctx: &Ctx, ns: &str) -> PathBuf {
    let dir = ctx.cluster.dir.join(format!("broken-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["postgres.yaml", "redis.yaml"] {
        let text = std::fs::read_to_string(ctx.path("fixtures/broken-stack").join(f)).unwrap();
        std::fs::write(dir.join(f), text.replace("sos-data", ns)).unwrap();
    }
    ctx.ensure_namespace(ns);
    for f in ["postgres.yaml", "redis.yaml"] {
        for m in read_objects(&dir.join(f)).unwrap() {
            ctx.create(&m.object);
        }
    }
    dir
}

fn audit(ctx: &Ctx, ns: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["audit", "-n", ns];
    args.extend(extra);
    ctx.sg(&args)
}

pub fn reference_stack_is_clean(ctx: &Ctx) {
    let run = audit(ctx, "sos-data", &["--format", "json"]);
    assert_eq!(
        run.code, 0,
        "the deployed reference stack passes every policy"
    );
    let r = run.json();
    assert_eq!(r["findings"], json!([]));
    assert_eq!(r["summary"]["namespaces"], 1);
    assert_eq!(r["summary"]["context"], ctx.context.as_str());
    // Workloads, ConfigMaps and Secrets of the stack (a full cluster adds its own, e.g. the
    // kube-root-ca.crt ConfigMap and the controllers' ReplicaSets and Pods).
    let stack = stackguard::deploy::stack::Stack::load(&ctx.path("deploy/stack"), None).unwrap();
    let guarded = stack
        .objects
        .iter()
        .filter(|m| matches!(m.kind(), "ConfigMap" | "StatefulSet" | "Deployment" | "Job"))
        .count()
        + stack.secret_templates.len();
    let objects = r["summary"]["objects"].as_u64().unwrap() as usize;
    assert!(objects >= guarded, "{objects}");
    if ctx.own {
        assert_eq!(objects, guarded);
    }
    let text = audit(ctx, "sos-data", &[]);
    assert_eq!(text.code, 0);
    assert_eq!(
        text.stdout.trim(),
        format!(
            "✓ {objects} objects in 1 namespace of {}: all accepted",
            ctx.context
        )
    );
    // The default namespace is the context's (`default`): the stack is not there.
    let default = ctx.sg(&["audit", "--format", "json"]);
    assert_eq!(default.code, 0);
    assert!(
        default.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["namespace"] == "default")
    );
}

pub fn audit_equals_check(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-broken");
    let dir = broken_stack(ctx, &ns);
    let check = ctx.sg(&["check", "--format", "json", dir.to_str().unwrap()]);
    assert_eq!(check.code, 1);
    let run = audit(ctx, &ns, &["--format", "json"]);
    assert_eq!(run.code, 1, "findings: exit 1 as check");
    let (c, a) = (check.json(), run.json());
    assert_eq!(
        essence(&a),
        essence(&c),
        "audit finds exactly what check finds"
    );
    assert!(!essence(&a).is_empty());
    if ctx.own {
        assert_eq!(a["summary"]["objects"], c["summary"]["objects"]);
    }
    assert_eq!(a["summary"]["rejected"], c["summary"]["rejected"]);
    for f in a["findings"].as_array().unwrap() {
        assert_eq!(
            f["file"],
            format!(
                "cluster://{}/{ns}/{}/{}",
                ctx.context,
                f["kind"].as_str().unwrap(),
                f["name"].as_str().unwrap()
            )
            .as_str()
        );
        assert_eq!(f["line"], 0);
    }
    // The Deployment's maxmemory finding needs the ConfigMap it mounts: live context.
    let needs_context = |r: &Value| {
        essence(r).iter().any(|e| {
            e.0 == "Deployment"
                && e.3 == "redis-pubsub-noeviction"
                && e.5.contains("not below the container memory limit")
        })
    };
    assert!(needs_context(&a));
    // The text report: one heading per object with findings, the same count as check.
    let text = audit(ctx, &ns, &[]);
    assert_eq!(text.code, 1);
    let headings = text
        .stdout
        .lines()
        .filter(|l| l.starts_with("cluster://"))
        .count();
    assert_eq!(
        headings,
        a["summary"]["rejected"].as_u64().unwrap() as usize
    );
    // One object per page: a workload never shares a page with its ConfigMap.
    let paged = audit(ctx, &ns, &["--format", "json", "--page-size", "1"]);
    assert_eq!(essence(&paged.json()), essence(&a));

    // Without the ConfigMaps in the cluster, audit and check (without them in the files)
    // agree again: the rules say what they could not check.
    ctx.delete("v1", "ConfigMap", Some(&ns), "redis-pubsub-config");
    ctx.delete("v1", "ConfigMap", Some(&ns), "postgres-init");
    let bare = ctx.cluster.dir.join(format!("broken-{ns}-workloads"));
    std::fs::create_dir_all(&bare).unwrap();
    let mut docs = Vec::new();
    for f in ["postgres.yaml", "redis.yaml"] {
        for m in read_objects(&dir.join(f)).unwrap() {
            if m.kind() != "ConfigMap" {
                docs.push(m.object.to_string());
            }
        }
    }
    std::fs::write(bare.join("workloads.yaml"), docs.join("\n---\n")).unwrap();
    let check = ctx.sg(&["check", "--format", "json", bare.to_str().unwrap()]);
    let run = audit(ctx, &ns, &["--format", "json"]);
    assert_eq!(essence(&run.json()), essence(&check.json()));
    assert!(
        !needs_context(&run.json()),
        "no ConfigMap, no maxmemory to compare"
    );
}

pub fn config_and_formats(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-formats");
    let dir = broken_stack(ctx, &ns);
    let cfg = ctx.cluster.dir.join("audit-config.yaml");
    std::fs::write(
        &cfg,
        "policies:\n  redis-pubsub-noeviction:\n    enabled: false\n  resource-limits:\n    settings:\n      requireCpuLimit: false\n\
         exemptions:\n  - {policy: run-as-non-root, kind: StatefulSet, name: postgres}\n",
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let check = ctx.sg(&[
        "check",
        "--config",
        cfg_s,
        "--format",
        "json",
        dir.to_str().unwrap(),
    ]);
    let run = audit(ctx, &ns, &["--config", cfg_s, "--format", "json"]);
    let found = essence(&run.json());
    assert_eq!(found, essence(&check.json()));
    assert!(found.iter().all(|e| e.3 != "redis-pubsub-noeviction"));
    assert!(
        !found
            .iter()
            .any(|e| e.3 == "run-as-non-root" && e.2 == "postgres")
    );
    assert!(!found.iter().any(|e| e.5.contains("limits.cpu")));

    // Text: one heading per object (its cluster URI), no file:line, a summary of namespaces.
    let text = audit(ctx, &ns, &[]);
    assert_eq!(text.code, 1);
    let heading = format!("cluster://{}/{ns}/StatefulSet/postgres", ctx.context);
    assert!(text.stdout.lines().any(|l| l == heading), "{}", text.stdout);
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with(&format!("  StatefulSet {ns}/postgres  [run-as-non-root]  ")))
    );
    let last = text.stdout.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("✗ ") && last.contains(&format!("in 1 namespace of {}: ", ctx.context)),
        "{last}"
    );

    // SARIF 2.1.0, valid against the official schema; objects located by their URI.
    let sarif = audit(ctx, &ns, &["--format", "sarif"]);
    assert_eq!(sarif.code, 1);
    let doc = sarif.json();
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        essence(&audit(ctx, &ns, &["--format", "json"]).json()).len()
    );
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("cluster://")
        );
        assert!(loc["artifactLocation"].get("uriBaseId").is_none());
    }
    let schema = ctx.path("target/sarif-schema/package/lib/schemas/sarif-2.1.0-rtm.5.json");
    let file = ctx.cluster.dir.join("audit.sarif");
    std::fs::write(&file, &sarif.stdout).unwrap();
    let v = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')",
            file.to_str().unwrap(),
            schema.to_str().unwrap(),
        ])
        .output()
        .expect("python3");
    assert!(
        v.status.success(),
        "SARIF invalid: {}",
        String::from_utf8_lossy(&v.stderr)
    );

    // Exit codes: a clean namespace 0, an unusable kubeconfig 2.
    let empty = ctx.fresh_namespace("e2e-empty");
    ctx.ensure_namespace(&empty);
    let clean = audit(ctx, &empty, &[]);
    assert_eq!(clean.code, 0);
    assert!(clean.stdout.contains("✓ 0 objects in 0 namespaces"));
    // --kubeconfig and --context: a kubeconfig whose current context points nowhere, and the
    // admin's context under another name.
    let kc = kube::config::Kubeconfig::read_from(&ctx.cluster.admin).unwrap();
    let mut kc = serde_json::to_value(&kc).unwrap();
    let current = kc["current-context"].as_str().unwrap().to_string();
    let contexts = kc["contexts"].as_array_mut().unwrap();
    let mut mine = contexts
        .iter()
        .find(|c| c["name"] == current.as_str())
        .unwrap()
        .clone();
    mine["name"] = json!("e2e-second");
    let mut nowhere = mine.clone();
    nowhere["name"] = json!("nowhere");
    nowhere["context"]["cluster"] = json!("nowhere");
    contexts.push(mine);
    contexts.push(nowhere);
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}}));
    kc["current-context"] = json!("nowhere");
    let two = ctx.cluster.dir.join("two-contexts.kubeconfig");
    std::fs::write(&two, serde_json::to_vec(&kc).unwrap()).unwrap();
    let two_s = two.to_str().unwrap();
    let by_context = ctx.sg(&[
        "audit",
        "--kubeconfig",
        two_s,
        "--context",
        "e2e-second",
        "-n",
        &ns,
        "--config",
        cfg_s,
        "--format",
        "json",
    ]);
    assert_eq!(by_context.code, 1);
    let r = by_context.json();
    assert_eq!(r["summary"]["context"], "e2e-second");
    assert_eq!(essence(&r), found);
    assert!(r["findings"].as_array().unwrap().iter().all(|f| {
        f["file"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cluster://e2e-second/{ns}/"))
    }));
    let unreachable = ctx.sg(&["audit", "--kubeconfig", two_s, "-n", &ns]);
    assert_eq!(
        unreachable.code, 2,
        "the current context's server does not answer"
    );
    assert!(
        !unreachable.stderr.contains("panicked"),
        "{}",
        unreachable.stderr
    );

    let bad = ctx.sg(&["audit", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("/nonexistent/kubeconfig"),
        "{}",
        bad.stderr
    );
}

pub fn paging_and_progress(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-pages");
    ctx.ensure_namespace(&ns);
    let total: usize = 250;
    for i in 0..total {
        let mut data = json!({"app.properties": format!("name=app-{i}\n")});
        if i.is_multiple_of(5) {
            data["app.properties"] =
                json!(format!("name=app-{i}\ndb.password=Plain{i}TextValue\n"));
        }
        ctx.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:03}"), "namespace": ns}, "data": data}));
    }
    let run = audit(ctx, &ns, &["--format", "json", "--page-size", "7"]);
    assert_eq!(run.code, 1);
    let r = run.json();
    assert_eq!(r["summary"]["objects"], total);
    let names: BTreeSet<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = (0..total)
        .step_by(5)
        .map(|i| format!("cm-{i:03}"))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        r["findings"].as_array().unwrap().len(),
        expected.len(),
        "each object once"
    );
    let pages = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("listed "))
        .expect("a `listed … pages` line");
    let n: usize = pages
        .split(" in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("a page count");
    assert!(n >= total.div_ceil(7), "{pages}");
    let big = audit(ctx, &ns, &["--format", "json", "--page-size", "500"]);
    assert_eq!(essence(&big.json()), essence(&r));
    assert!(
        !run.stderr.contains("auditing"),
        "no progress bar when stderr is not a terminal"
    );

    // On a terminal (a pty from `script`), stderr shows the bar.
    let cmd = format!(
        "{} audit -n {ns} --page-size 7 --format json",
        env!("CARGO_BIN_EXE_stackguard")
    );
    let out = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("KUBECONFIG", &ctx.cluster.admin)
        .current_dir(&ctx.root)
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.contains("auditing configmaps"),
        "no progress bar on a terminal:\n{tty}"
    );
    assert!(tty.contains("objects"), "{tty}");
}

pub fn secrets(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-secrets");
    ctx.ensure_namespace(&ns);
    let weak = "Zq9short";
    let strong = "k3Jq8ZpX2vN7wR4tY6uB1mC5dF9gH0sL";
    for (name, v) in [("weak", weak), ("strong", strong)] {
        ctx.create(&json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"stringData\":{{\"password\":\"{v}\"}}}}")}},
            "stringData": {"password": v}}));
    }
    ctx.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": "on"}}));
    let values = ctx.secret_values(&ns);
    let mut outputs = String::new();
    for format in ["text", "json", "sarif"] {
        let run = audit(ctx, &ns, &["--format", format]);
        assert_eq!(run.code, 1);
        outputs.push_str(&run.text());
    }
    assert_no_secret(&outputs, &values);
    assert!(!outputs.contains("WnE5c2hvcnQ="), "nor base64-encoded");
    let r = audit(ctx, &ns, &["--format", "json"]).json();
    let found = essence(&r);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].0.as_str(), found[0].2.as_str()),
        ("Secret", "weak")
    );
    assert!(
        found[0]
            .5
            .contains("the password under key password is weak: too short")
    );

    // --skip-secrets: no Secret listed.
    let skip = audit(ctx, &ns, &["--format", "json", "--skip-secrets"]);
    assert_eq!(skip.code, 0);
    assert_eq!(skip.json()["summary"]["objects"], 1);

    // A user who may not read Secrets: one clear error for them, everything else audited.
    let read = json!(["get", "list"]);
    ctx.grant(
        &ns,
        json!([
            {"apiGroups": [""], "resources": ["pods", "replicationcontrollers", "configmaps"], "verbs": read},
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"], "verbs": read},
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": read},
        ]),
    );
    let dev = ctx.dev_kubeconfig();
    let denied = ctx.sg_as(&dev, &["audit", "-n", &ns]);
    assert_eq!(denied.code, 1);
    let error = format!(
        "error: cluster://{}/{ns}/Secret: cannot list secrets: ",
        ctx.context
    );
    assert!(
        denied.stdout.lines().any(|l| l.starts_with(&error)
            && l.contains("forbidden")
            && l.ends_with("pass --skip-secrets to audit without Secrets")),
        "{}",
        denied.stdout
    );
    assert!(
        denied.stdout.contains("1 object in 1 namespace"),
        "the ConfigMap was audited"
    );
    let ok = ctx.sg_as(&dev, &["audit", "-n", &ns, "--skip-secrets"]);
    assert_eq!(ok.code, 0, "nothing else to report");

    // The report of the weak Secret holds the finding, never the value.
    ctx.install_report_crds();
    let rep = audit(ctx, &ns, &["--report", "openreports"]);
    assert_eq!(rep.code, 1);
    let reports = ctx.list("openreports.io/v1alpha1", "Report", Some(&ns));
    assert_eq!(reports.len(), 3);
    let all = serde_json::to_string(&reports).unwrap();
    assert_no_secret(&all, &values);
    assert!(all.contains("the password under key password is weak"));
}

/// What each audited object's report must hold: (kind, name) → policy → fail message (None:
/// pass), from the JSON findings and the policies' rules.
fn expected_results(
    ctx: &Ctx,
    ns: &str,
    findings: &Value,
) -> BTreeMap<(String, String), BTreeMap<String, Option<String>>> {
    let engine = Engine::native(&Config::default()).unwrap();
    let config = Config::default();
    let mut out = BTreeMap::new();
    for kind in ["ConfigMap", "StatefulSet", "Deployment"] {
        let av = if kind == "ConfigMap" { "v1" } else { "apps/v1" };
        for live in ctx.list(av, kind, Some(ns)) {
            let mut value = live.clone();
            value["apiVersion"] = json!(av);
            value["kind"] = json!(kind);
            let o = Object {
                file: 0,
                doc: 0,
                prefix: String::new(),
                line: 0,
                value,
            };
            let name = o.name().to_string();
            let mut per_policy = BTreeMap::new();
            for p in engine.applicable(&o, &config) {
                let policy = engine.policies[p].name.clone();
                let msgs: Vec<String> = findings
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| {
                        f["kind"] == kind
                            && f["name"] == name.as_str()
                            && f["policy"] == policy.as_str()
                    })
                    .map(|f| match f["path"].as_str() {
                        Some(p) => format!("{p}: {}", f["message"].as_str().unwrap()),
                        None => f["message"].as_str().unwrap().to_string(),
                    })
                    .collect();
                per_policy.insert(policy, (!msgs.is_empty()).then(|| msgs.join("; ")));
            }
            out.insert((kind.to_string(), name), per_policy);
        }
    }
    out
}

fn check_reports(
    ctx: &Ctx,
    ns: &str,
    api_version: &str,
    kind: &str,
    findings: &Value,
) -> BTreeMap<String, Value> {
    let expected = expected_results(ctx, ns, findings);
    let reports = ctx.list(api_version, kind, Some(ns));
    assert_eq!(
        reports.len(),
        expected.len(),
        "one report per audited object"
    );
    let engine = Engine::native(&Config::default()).unwrap();
    let mut by_name = BTreeMap::new();
    for r in reports {
        let scope = &r["scope"];
        let key = (
            scope["kind"].as_str().unwrap().to_string(),
            scope["name"].as_str().unwrap().to_string(),
        );
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected report {key:?}"));
        assert_eq!(
            r["metadata"]["name"],
            format!("stackguard-{}", scope["uid"].as_str().unwrap()).as_str()
        );
        assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], scope["uid"]);
        let results = r["results"].as_array().unwrap();
        assert_eq!(
            results.len(),
            want.len(),
            "one result per (policy, resource): {key:?}"
        );
        let (mut pass, mut fail) = (0, 0);
        for res in results {
            let policy = res["policy"].as_str().unwrap();
            match &want[policy] {
                None => {
                    pass += 1;
                    assert_eq!(res["result"], "pass");
                }
                Some(msg) => {
                    fail += 1;
                    assert_eq!(res["result"], "fail");
                    assert_eq!(res["message"], msg.as_str());
                }
            }
            let info = engine.policies.iter().find(|p| p.name == policy).unwrap();
            let ann = info.metadata.annotations.as_ref().unwrap();
            assert_eq!(
                res["severity"],
                ann["io.kubewarden.policy.severity"].as_str()
            );
            assert_eq!(
                res["category"],
                ann["io.kubewarden.policy.category"].as_str()
            );
            assert_eq!(res["source"], "stackguard");
            assert!(res["timestamp"]["seconds"].as_i64().unwrap() > 1_600_000_000);
            assert_eq!(res["resources"][0], *scope);
        }
        assert_eq!(r["summary"]["pass"], pass);
        assert_eq!(r["summary"]["fail"], fail);
        by_name.insert(r["metadata"]["name"].as_str().unwrap().to_string(), r);
    }
    by_name
}

fn reports_round_trip(ctx: &Ctx, flag: &str, api_version: &str, kind: &str) {
    ctx.install_report_crds();
    let ns = ctx.fresh_namespace(&format!("e2e-{flag}"));
    broken_stack(ctx, &ns);
    let run = audit(ctx, &ns, &["--report", flag, "--format", "json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("wrote 4 ") && run.stderr.contains("removed 0 stale"),
        "{}",
        run.stderr
    );
    let first = check_reports(ctx, &ns, api_version, kind, &run.json()["findings"]);
    let example = first
        .values()
        .find(|r| r["scope"]["kind"] == "Deployment")
        .expect("the Deployment's report");
    println!(
        "the Deployment's {kind}:\n{}",
        serde_json::to_string_pretty(example).unwrap()
    );

    // Fix the Deployment (drop the password argument), delete a ConfigMap: a second audit
    // updates the reports in place and removes the stale one.
    ctx.merge_patch(
        "apps/v1",
        "Deployment",
        Some(&ns),
        "redis-pubsub",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis:7.2",
            "args": ["redis-server", "/etc/redis/redis.conf"]}]}}}}),
    );
    ctx.delete("v1", "ConfigMap", Some(&ns), "postgres-init");
    let again = audit(ctx, &ns, &["--report", flag, "--format", "json"]);
    assert!(again.stderr.contains("wrote 3 "), "{}", again.stderr);
    let second = check_reports(ctx, &ns, api_version, kind, &again.json()["findings"]);
    assert_eq!(second.len(), 3);
    for (name, r) in &second {
        let before = first.get(name).expect("the same report, updated in place");
        assert_ne!(
            r["metadata"]["resourceVersion"],
            before["metadata"]["resourceVersion"]
        );
        assert_eq!(r["metadata"]["uid"], before["metadata"]["uid"]);
    }
    let removed = again.stderr.contains("removed 1 stale");
    // With a garbage collector (a full cluster) the owner reference may have been quicker.
    assert!(removed || !ctx.own, "{}", again.stderr);
    let dep = second
        .values()
        .find(|r| r["scope"]["kind"] == "Deployment")
        .unwrap();
    let nps = dep["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == "no-plaintext-secrets")
        .unwrap();
    assert_eq!(nps["result"], "pass", "the fixed Deployment passes now");
}

pub fn openreports(ctx: &Ctx) {
    reports_round_trip(ctx, "openreports", "openreports.io/v1alpha1", "Report");
    let r = &ctx.list("openreports.io/v1alpha1", "Report", None)[0];
    assert_eq!(r["source"], "stackguard");
}

pub fn policyreports(ctx: &Ctx) {
    reports_round_trip(
        ctx,
        "policyreport",
        "wgpolicyk8s.io/v1alpha2",
        "PolicyReport",
    );
    let r = &ctx.list("wgpolicyk8s.io/v1alpha2", "PolicyReport", None)[0];
    assert!(
        r.get("source").is_none(),
        "the legacy format has no report-level source"
    );
}

pub fn cluster_reports_with_a_module(ctx: &Ctx) {
    ctx.install_report_crds();
    let module = ctx.path("dist/run-as-non-root.wasm");
    assert!(module.is_file(), "make policies first (make e2e does)");
    let wasm = ctx.cluster.dir.join("namespaces-policy.wasm");
    let annotate = ctx.sg(&[
        "annotate",
        module.to_str().unwrap(),
        "-m",
        "tests/data/e2e/namespaces-metadata.yml",
        "-o",
        wasm.to_str().unwrap(),
    ]);
    assert_eq!(annotate.code, 0);
    let run = ctx.sg(&[
        "audit",
        "-A",
        "--policy",
        wasm.to_str().unwrap(),
        "--report",
        "openreports",
        "--format",
        "json",
    ]);
    assert_eq!(
        run.code, 0,
        "namespaces are not workloads: the module accepts them"
    );
    let namespaces = ctx.list("v1", "Namespace", None);
    assert_eq!(run.json()["summary"]["objects"], namespaces.len());
    let reports = ctx.list("openreports.io/v1alpha1", "ClusterReport", None);
    for ns in &namespaces {
        let uid = ns["metadata"]["uid"].as_str().unwrap();
        let r = reports
            .iter()
            .find(|r| r["metadata"]["name"] == format!("stackguard-{uid}").as_str())
            .unwrap_or_else(|| panic!("no ClusterReport for {}", ns["metadata"]["name"]));
        assert_eq!(r["scope"]["kind"], "Namespace");
        assert_eq!(r["results"].as_array().unwrap().len(), 1);
        let res = &r["results"][0];
        assert_eq!(res["policy"], "namespaces-policy");
        assert_eq!(res["result"], "pass");
        assert_eq!(res["severity"], "low");
        assert_eq!(res["category"], "Namespaces");
    }
    assert!(Path::new(&wasm).exists());
}
