//! The audit benchmark (figures, not a timed assertion): 10,000 objects created in the API
//! server, audited with the JSON output and with reports written; 1,000 objects for
//! comparison, to show that memory follows the page size, not the cluster's size, and for the
//! cost of updating reports.

use crate::support::{Ctx, MANAGER};
use futures_util::stream::{self, StreamExt};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Instant;

/// Objects created at once.
const CREATORS: usize = 32;

fn deployment(ns: &str, i: usize) -> Value {
    // Every other one breaks run-as-non-root and resource-limits.
    let mut c = json!({"name": "app", "image": format!("registry.example/app:{i}")});
    if i.is_multiple_of(2) {
        c["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 1000,
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
        c["resources"] = json!({"requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"}});
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("app-{i:05}"), "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("app-{i:05}")}},
                 "template": {"metadata": {"labels": {"app": format!("app-{i:05}")}},
                              "spec": {"containers": [c],
                                       "volumes": [{"name": "conf", "configMap": {"name": format!("conf-{i:05}")}}]}}}})
}

fn config_map(ns: &str, i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("conf-{i:05}"), "namespace": ns},
        "data": {"app.properties": format!("name=app-{i}\nthreads=4\n")}})
}

/// Create `n` objects (half Deployments, half the ConfigMaps they mount) in a new namespace.
fn populate(ctx: &Ctx, ns: &str, n: usize) -> f64 {
    ctx.ensure_namespace(ns);
    let start = Instant::now();
    let objects: Vec<Value> = (0..n / 2)
        .flat_map(|i| [config_map(ns, i), deployment(ns, i)])
        .collect();
    let cms = ctx.api("v1", "ConfigMap", Some(ns));
    let deps = ctx.api("apps/v1", "Deployment", Some(ns));
    let pp = PostParams {
        dry_run: false,
        field_manager: Some(MANAGER.into()),
    };
    let failures: Vec<String> = ctx.rt.block_on(
        stream::iter(objects)
            .map(|o| {
                let api = if o["kind"] == "ConfigMap" {
                    &cms
                } else {
                    &deps
                };
                let pp = &pp;
                async move {
                    let d: DynamicObject = serde_json::from_value(o).expect("object");
                    api.create(pp, &d).await.err().map(|e| e.to_string())
                }
            })
            .buffer_unordered(CREATORS)
            .filter_map(|e| async move { e })
            .collect(),
    );
    assert!(failures.is_empty(), "{failures:?}");
    start.elapsed().as_secs_f64()
}

/// Python's view of its child: wall time and `ru_maxrss` of `RUSAGE_CHILDREN`. The child is
/// started from this small process, because Linux counts the parent's resident memory at fork
/// into a child's peak (and this test process holds thousands of objects).
const MEASURE: &str = "import resource, subprocess, sys, time
t = time.monotonic()
with open(sys.argv[2], 'w') as out, open(sys.argv[3], 'w') as err:
    code = subprocess.run(sys.argv[4:], stdout=out, stderr=err).returncode
print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code, file=open(sys.argv[1], 'w'))
";

/// Wall time, peak RSS (MiB), exit code and standard output of one `stackguard` run.
fn measure(ctx: &Ctx, args: &[&str]) -> (f64, f64, i32, String) {
    let dir = &ctx.cluster.dir;
    let (stats, out, err) = (
        dir.join("bench.stats"),
        dir.join("bench.out"),
        dir.join("bench.err"),
    );
    let status = Command::new("python3")
        .args(["-c", MEASURE])
        .args([&stats, &out, &err])
        .arg(env!("CARGO_BIN_EXE_stackguard"))
        .args(args)
        .env("KUBECONFIG", &ctx.cluster.admin)
        .current_dir(&ctx.root)
        .status()
        .expect("python3");
    assert!(status.success());
    let stats = std::fs::read_to_string(&stats).expect("stats");
    let f: Vec<&str> = stats.split_whitespace().collect();
    let secs: f64 = f[0].parse().expect("seconds");
    let rss = f[1].parse::<f64>().expect("maxrss") / 1024.0;
    let code: i32 = f[2].parse().expect("exit code");
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    println!(
        "$ stackguard {}   [exit {code}, {secs:.2} s, peak RSS {rss:.1} MiB]",
        args.join(" ")
    );
    for l in stderr.lines().filter(|l| !l.starts_with("note: ")) {
        println!("  stderr: {l}");
    }
    (secs, rss, code, stdout)
}

pub fn audit_10000(ctx: &Ctx) {
    let small = ctx.fresh_namespace("e2e-bench-1k");
    let large = ctx.fresh_namespace("e2e-bench-10k");
    let t_small = populate(ctx, &small, 1_000);
    let t_large = populate(ctx, &large, 10_000);
    println!(
        "created 1,000 objects in {t_small:.1} s and 10,000 in {t_large:.1} s ({:.0} objects/s)",
        10_000.0 / t_large
    );
    // (what, objects, seconds, peak RSS in MiB)
    let mut rows: Vec<(String, usize, f64, f64)> = Vec::new();
    for (ns, n) in [(&small, 1_000), (&large, 10_000)] {
        for page in ["100", "500"] {
            let (secs, rss, code, out) = measure(
                ctx,
                &["audit", "-n", ns, "--format", "json", "--page-size", page],
            );
            assert_eq!(code, 1, "half the Deployments are broken");
            let r: Value = serde_json::from_str(&out).expect("JSON");
            assert_eq!(r["summary"]["objects"], n);
            assert_eq!(r["summary"]["rejected"], n / 4);
            rows.push((
                format!("{n:>6} objects, --page-size {page:>3}, JSON"),
                n,
                secs,
                rss,
            ));
        }
    }
    ctx.install_report_crds();
    // Writing reports is bound by the API server's writes (one report per object): 10,000
    // written once, and 1,000 written then updated by a second audit.
    for (ns, n, run) in [
        (&large, 10_000, "written"),
        (&small, 1_000, "written"),
        (&small, 1_000, "updated"),
    ] {
        let (secs, rss, code, _) = measure(
            ctx,
            &[
                "audit",
                "-n",
                ns,
                "--format",
                "json",
                "--report",
                "openreports",
            ],
        );
        assert_eq!(code, 1);
        rows.push((
            format!("{n:>6} objects, --report openreports ({run})"),
            n,
            secs,
            rss,
        ));
        assert_eq!(
            ctx.list("openreports.io/v1alpha1", "Report", Some(ns))
                .len(),
            n
        );
    }
    println!("\naudit benchmark (2 cores, wall time and peak RSS of the stackguard process):");
    for (what, n, secs, rss) in &rows {
        println!(
            "  {what:<48} {secs:>7.2} s  {:>6.0} objects/s  {rss:>6.1} MiB",
            *n as f64 / secs
        );
    }
    // Leave the cluster lighter for whatever runs next.
    for ns in [&small, &large] {
        ctx.delete("v1", "Namespace", None, ns);
    }
}

/// About 1 MB (the API server takes ConfigMaps up to 1 MiB) of lines that look like the
/// tokens no-plaintext-secrets looks for but are not: one character short, public keys,
/// URLs without a password, two-part JWTs.
fn near_misses(seed: usize) -> String {
    let lines = [
        "aws_key_id_{i}=AKIAIOSFODNN7EXAMP",
        "gh_{i}=ghp_abcdefghijklmnopqrstuvwxyz012345678",
        "slack_{i}=xoxb-123",
        "cert_{i}=-----BEGIN PUBLIC KEY-----",
        "db_url_{i}=postgresql://app@db-{i}.example:5432/app",
        "jwt_{i}=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0",
        "redis_{i}=redis://cache-{i}:6379/0",
    ];
    let mut out = String::new();
    let mut i = seed;
    while out.len() < 1_000_000 {
        out.push_str(&lines[i % lines.len()].replace("{i}", &i.to_string()));
        out.push('\n');
        i += 1;
    }
    out
}

/// About 1 MB of init SQL that never creates the required extensions.
fn big_init_sql() -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < 1_000_000 {
        out.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS t_{i} (id bigint PRIMARY KEY, note text DEFAULT 'row {i}; -- not a comment');\n\
             INSERT INTO t_{i} (id, note) VALUES ({i}, $q${i}$q$) ON CONFLICT DO NOTHING;\n"
        ));
        i += 1;
    }
    out
}

/// Hostile objects in the cluster (issue 11: bounds hold for `audit` too): ConfigMaps near
/// the 1 MiB limit full of near-miss tokens, and a Postgres init ConfigMap of 1 MB of SQL
/// mounted by a workload (fetched as live context). Figures, not timed assertions.
pub fn audit_hostile(ctx: &Ctx) {
    let ns = ctx.fresh_namespace("e2e-hostile");
    ctx.ensure_namespace(&ns);
    let big = 8;
    for n in 0..big {
        ctx.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("near-miss-{n}"), "namespace": ns},
            "data": {"tokens.properties": near_misses(n * 100_000)}}));
    }
    ctx.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "pg-init", "namespace": ns,
                     "labels": {"stackguard.io/postgres-init": "true"}},
        "data": {"01-schema.sql": big_init_sql()}}));
    ctx.create(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "pg", "namespace": ns},
        "spec": {"replicas": 1, "serviceName": "pg", "selector": {"matchLabels": {"app": "pg"}},
                 "template": {"metadata": {"labels": {"app": "pg", "stackguard.io/postgres-init": "true"}},
                              "spec": {"containers": [{"name": "postgres", "image": "postgis/postgis:16-3.4",
                                         "volumeMounts": [{"name": "init", "mountPath": "/docker-entrypoint-initdb.d"}]}],
                                       "volumes": [{"name": "init", "configMap": {"name": "pg-init"}}]}}}}));
    let mut rows = Vec::new();
    for page in ["100", "1"] {
        let (secs, rss, code, out) = measure(
            ctx,
            &["audit", "-n", &ns, "--format", "json", "--page-size", page],
        );
        assert_eq!(code, 1, "the init SQL never creates postgis and pgcrypto");
        let r: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(r["summary"]["objects"], big + 2);
        let findings = r["findings"].as_array().expect("findings");
        for name in ["pg-init", "pg"] {
            assert!(
                findings.iter().any(|f| f["name"] == name
                    && f["policy"] == "postgres-extensions"
                    && f["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("never create the required extension"))),
                "{name}: {findings:#?}"
            );
        }
        let near = findings
            .iter()
            .filter(|f| {
                f["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("near-miss"))
            })
            .count();
        rows.push((page, secs, rss, findings.len(), near));
    }
    println!(
        "\nhostile objects ({big} ConfigMaps of ~1 MB of near-miss tokens, 1 MB of init SQL mounted by a StatefulSet):"
    );
    for (page, secs, rss, n, near) in rows {
        println!(
            "  --page-size {page:>3}: {secs:>6.2} s  peak RSS {rss:>6.1} MiB  {n} findings ({near} on the near-miss ConfigMaps)"
        );
    }
    ctx.delete("v1", "Namespace", None, &ns);
}
