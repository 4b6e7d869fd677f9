//! The live-cluster suite (`make e2e`): the real `stackguard` binary against a real API server,
//! never a mock. It runs against `E2E_KUBECONFIG` (an existing, disposable cluster) or starts its
//! own control plane from `KUBE_APISERVER` (a kube-apiserver binary) and Debian's etcd; see
//! `cluster.rs`. Scenarios run in order on one cluster; a failed one does not stop the others,
//! and the control plane is stopped at the end whatever happened.
//!
//! There is no kubelet: pods never run. The scenarios use what the API server itself does:
//! schema validation, defaulting, server-side apply and field managers, dry run, RBAC, and
//! admission (a native ValidatingAdmissionPolicy gives a real denial without a webhook server).

mod audit;
mod bench;
mod cluster;
mod deploy;
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;
use support::Ctx;

type Scenario = (&'static str, fn(&Ctx));

const SCENARIOS: &[Scenario] = &[
    (
        "deploy --dry-run on a fresh cluster",
        deploy::dry_run_on_a_fresh_cluster,
    ),
    ("deploy, then deploy again: unchanged", deploy::deploy_twice),
    (
        "secrets: kept, missing keys added, never printed",
        deploy::secrets,
    ),
    (
        "audit: the deployed reference stack is clean",
        audit::reference_stack_is_clean,
    ),
    (
        "down deletes only what deploy applied; --purge",
        deploy::down,
    ),
    (
        "--namespace moves the whole stack",
        deploy::namespace_moves_the_stack,
    ),
    (
        "a ValidatingAdmissionPolicy denies one object",
        deploy::admission_denial,
    ),
    (
        "RBAC: one forbidden line per object",
        deploy::rbac_forbidden,
    ),
    (
        "deploy/kubewarden without the Kubewarden CRDs",
        deploy::kubewarden_without_crds,
    ),
    (
        "audit equals check, live context",
        audit::audit_equals_check,
    ),
    (
        "audit: config, exemptions, formats",
        audit::config_and_formats,
    ),
    ("audit: paging and progress bar", audit::paging_and_progress),
    (
        "audit: secrets never printed, --skip-secrets, RBAC",
        audit::secrets,
    ),
    ("audit --report openreports", audit::openreports),
    ("audit --report policyreport", audit::policyreports),
    (
        "audit -A with a module: ClusterReports",
        audit::cluster_reports_with_a_module,
    ),
    (
        "audit: hostile objects (1 MB ConfigMaps)",
        bench::audit_hostile,
    ),
    ("benchmark: audit 10,000 objects", bench::audit_10000),
];

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
        .to_path_buf();
    let scratch = root
        .join("target/e2e")
        .join(format!("run-{}", std::process::id()));
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let ctx = match Ctx::from_env(root, scratch) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    };
    println!(
        "e2e: {} ({}), scratch {}",
        ctx.describe(),
        ctx.cluster.version,
        ctx.cluster.dir.display()
    );
    let started = Instant::now();
    let mut results: Vec<(&str, bool, f64)> = Vec::new();
    for (name, f) in SCENARIOS {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        println!("\n=== {name}");
        let t = Instant::now();
        let ok = catch_unwind(AssertUnwindSafe(|| f(&ctx))).is_ok();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "--- {name}: {} ({secs:.1} s)",
            if ok { "ok" } else { "FAILED" }
        );
        results.push((name, ok, secs));
    }
    let total = started.elapsed().as_secs_f64();
    println!("\ne2e summary ({}):", ctx.describe());
    if let Some(s) = ctx.cluster.startup {
        println!(
            "  {:<55} {s:>6.1} s",
            "control plane start (etcd + kube-apiserver, /readyz)"
        );
    }
    for (name, ok, secs) in &results {
        println!(
            "  {:<55} {secs:>6.1} s  {}",
            name,
            if *ok { "ok" } else { "FAILED" }
        );
    }
    let failed = results.iter().filter(|r| !r.1).count();
    println!("  {:<55} {total:>6.1} s", "scenarios in total");
    let scratch = ctx.cluster.dir.clone();
    drop(ctx);
    // Certificates, kubeconfigs and the servers' logs: kept for a look when something failed.
    if failed == 0 {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        println!("logs and kubeconfigs kept in {}", scratch.display());
    }
    println!("e2e: {} passed, {failed} failed", results.len() - failed);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
