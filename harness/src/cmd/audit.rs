//! `stackguard audit`: check the objects already in a cluster with the rule code of `check`;
//! optionally write the results as OpenReports or PolicyReports.

use super::deploy::runtime;
use anyhow::{Result, bail};
use stackguard::audit::reports::ReportKind;
use stackguard::audit::{self, Namespaces, Options};
use stackguard::check::{Color, build_engine, load_config};
use stackguard::kubeclient::Access;
use stackguard::report::{Format, Writer};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// kubeconfig file [default: KUBECONFIG, else ~/.kube/config, else in-cluster].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context [default: the current one].
    #[arg(long)]
    pub context: Option<String>,
    /// Audit this namespace [default: the context's namespace].
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Audit every namespace, and the cluster-scoped kinds the policies name.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Evaluate these compiled waPC modules instead of the built-in policies (repeatable).
    #[arg(long = "policy", value_name = "MODULE.wasm")]
    pub modules: Vec<PathBuf>,
    /// Config file (default: .stackguard.yaml in the current directory, if present).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write the results into the cluster, as Kubewarden's audit scanner does.
    #[arg(long, value_enum, value_name = "KIND")]
    pub report: Option<ReportKind>,
    /// Leave Secrets out (for users whose RBAC forbids reading them).
    #[arg(long)]
    pub skip_secrets: bool,
    /// Objects per list request (the audit holds one page in memory at a time).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub page_size: u32,
    /// Colour: auto (only on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

pub fn main(args: Args) -> Result<i32> {
    let start = Instant::now();
    let config = load_config(args.config.as_deref())?;
    let engine = build_engine(&args.modules, &config)?;
    if engine.policies.is_empty() {
        bail!(
            "every policy is disabled in {}: nothing to audit",
            config.origin_name()
        );
    }
    let opts = Options {
        access: Access {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
        namespaces: match (&args.namespace, args.all_namespaces) {
            (Some(ns), _) => Namespaces::One(ns.clone()),
            (None, true) => Namespaces::All,
            (None, false) => Namespaces::Context,
        },
        skip_secrets: args.skip_secrets,
        page_size: args.page_size,
        report: args.report,
    };
    let stdout = std::io::stdout().lock();
    let mut out = Writer::new(stdout, args.format, args.color.enabled(), &engine.policies)?;
    let audit = runtime()?.block_on(audit::run(&opts, &engine, &config, &mut out))?;
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.finish(&audit.errors, &audit.totals);
    eprintln!(
        "listed {} objects in {} pages of at most {}",
        audit.totals.objects, audit.pages, args.page_size
    );
    if let Some(kind) = args.report {
        let (api_version, k, _) = kind.resource(true);
        eprintln!(
            "wrote {} {api_version} report(s) ({k} per namespaced object, its cluster kind for the others); removed {} stale",
            audit.written, audit.removed
        );
    }
    eprintln!("audit took {:.1} s", start.elapsed().as_secs_f64());
    Ok(audit.totals.exit_code())
}
