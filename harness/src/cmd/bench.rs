//! `stackguard bench`: evaluations per second and mean/p50/p99 latency of each policy, natively
//! or through its waPC module, on a request or on the objects of manifests. One thread, a
//! warm-up first, every evaluation timed on its own.

use anyhow::{Result, bail};
use serde_json::{Value, json};
use stackguard::admission::{Op, request_for, unwrap_review};
use stackguard::config::Config;
use stackguard::context::ObjectStore;
use stackguard::host::{Evaluator, Host, HostData};
use stackguard::manifest;
use stackguard::metadata::Metadata;
use stackguard::policies;
use stackguard_common::policy::Prepared;
use stackguard_common::request::Operation;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Manifests (files or directories) whose objects are the requests (as CREATE).
    pub paths: Vec<PathBuf>,
    /// One AdmissionRequest or AdmissionReview (JSON or YAML) instead of manifests.
    #[arg(short = 'r', long, conflicts_with = "paths")]
    pub request_path: Option<PathBuf>,
    /// Benchmark these modules through the waPC host (repeatable); default: the native rules.
    #[arg(long = "policy", value_name = "MODULE.wasm")]
    pub modules: Vec<PathBuf>,
    /// Config with per-policy settings (as `check` reads it).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Timed rounds over all requests.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub iterations: usize,
    /// Untimed rounds first.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One way to evaluate one policy.
enum Target {
    Native(Box<dyn Prepared>),
    Module(Evaluator, Value),
}

struct Bench {
    name: String,
    metadata: Metadata,
    target: Target,
}

/// A request to evaluate: the AdmissionRequest and the object it carries.
struct Case {
    request: Value,
    object: Value,
    operation: Operation,
}

fn cases(args: &Args) -> Result<Vec<Case>> {
    if let Some(path) = &args.request_path {
        let request = unwrap_review(super::run::read_doc(path)?);
        let object = request.get("object").cloned().unwrap_or(Value::Null);
        let operation =
            serde_json::from_value(request.get("operation").cloned().unwrap_or(json!("CREATE")))
                .unwrap_or(Operation::Create);
        return Ok(vec![Case {
            request,
            object,
            operation,
        }]);
    }
    if args.paths.is_empty() {
        bail!("give manifests or --request-path");
    }
    let (inputs, missing) = manifest::discover(&args.paths, &[]);
    if let Some(e) = missing.first() {
        bail!("{e}");
    }
    let loaded = stackguard::check::load(&inputs);
    for e in &loaded.errors {
        eprintln!("warning: {e}");
    }
    Ok(loaded
        .objects
        .into_iter()
        .enumerate()
        .map(|(i, o)| Case {
            request: request_for(&o.value, Op::Create, &format!("bench-{i}")),
            object: o.value,
            operation: Operation::Create,
        })
        .collect())
}

fn targets(args: &Args, config: &Config, store: &Arc<ObjectStore>) -> Result<Vec<Bench>> {
    let mut out = Vec::new();
    if args.modules.is_empty() {
        for e in policies::ALL.iter().filter(|e| config.enabled(e.name)) {
            let settings = config.settings(e.name).map(Value::to_string);
            let p = (e.prepare)(settings.as_deref())
                .map_err(|err| anyhow::anyhow!("policies.{}.settings: {err}", e.name))?;
            out.push(Bench {
                name: e.name.to_string(),
                metadata: Metadata::from_yaml(e.metadata_yml, e.name)?,
                target: Target::Native(p),
            });
        }
        return Ok(out);
    }
    let host = Host::new(None, Duration::from_secs(10))?;
    for path in &args.modules {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        let Some(metadata) = stackguard::metadata::read(&bytes)? else {
            bail!("{}: the module has no embedded metadata", path.display());
        };
        let module = host.load(path)?;
        let eval = host.evaluator(&module, HostData::Store(store.clone()))?;
        let settings = config.settings(&name).cloned().unwrap_or(json!({}));
        let sv = eval.validate_settings(&settings)?;
        if !sv.valid {
            bail!(
                "{}: settings rejected: {}",
                path.display(),
                sv.message.unwrap_or_default()
            );
        }
        out.push(Bench {
            name,
            metadata,
            target: Target::Module(eval, settings),
        });
    }
    Ok(out)
}

fn evaluate(target: &Target, case: &Case, store: &ObjectStore) -> bool {
    match target {
        // As the module answers: with the mutation its settings ask for.
        Target::Native(p) => {
            policies::respond_object(p.as_ref(), &case.object, case.operation, store).accepted
        }
        Target::Module(eval, settings) => eval.validate(&case.request, settings).accepted,
    }
}

/// Latency statistics of one policy.
struct Stats {
    evaluations: usize,
    total: Duration,
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    let n = samples.len().max(1);
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        evaluations: samples.len(),
        total,
        mean: total / n as u32,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn main(args: Args) -> Result<i32> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let cases = cases(&args)?;
    let store = ObjectStore::new();
    for c in &cases {
        if c.object.is_object() {
            store.insert(c.object.clone());
        }
    }
    let store = Arc::new(store);
    let mut rows = Vec::new();
    for bench in targets(&args, &config, &store)? {
        let applicable: Vec<&Case> = cases
            .iter()
            .filter(|c| {
                let s = |k: &str| c.object.get(k).and_then(Value::as_str).unwrap_or("");
                bench
                    .metadata
                    .matches(s("apiVersion"), s("kind"), op_name(c.operation))
            })
            .collect();
        if applicable.is_empty() {
            continue;
        }
        for _ in 0..args.warmup {
            for c in &applicable {
                std::hint::black_box(evaluate(&bench.target, c, &store));
            }
        }
        let mut samples = Vec::with_capacity(args.iterations * applicable.len());
        for _ in 0..args.iterations {
            for c in &applicable {
                let t = Instant::now();
                std::hint::black_box(evaluate(&bench.target, c, &store));
                samples.push(t.elapsed());
            }
        }
        let mode = match bench.target {
            Target::Native(_) => "native",
            Target::Module(..) => "wasm",
        };
        rows.push((bench.name, mode, applicable.len(), stats(samples)));
    }
    if rows.is_empty() {
        bail!("no policy applies to the given objects");
    }
    if args.json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(name, mode, objects, s)| {
                json!({
                    "policy": name,
                    "mode": mode,
                    "objects": objects,
                    "evaluations": s.evaluations,
                    "evaluationsPerSecond": s.evaluations as f64 / s.total.as_secs_f64().max(1e-12),
                    "meanMicros": micros(s.mean),
                    "p50Micros": micros(s.p50),
                    "p99Micros": micros(s.p99),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<26} {:<6} {:>7} {:>11} {:>12} {:>10} {:>10} {:>10}",
            "policy", "mode", "objects", "evaluations", "evals/s", "mean µs", "p50 µs", "p99 µs"
        );
        for (name, mode, objects, s) in &rows {
            println!(
                "{:<26} {:<6} {:>7} {:>11} {:>12.0} {:>10.2} {:>10.2} {:>10.2}",
                name,
                mode,
                objects,
                s.evaluations,
                s.evaluations as f64 / s.total.as_secs_f64().max(1e-12),
                micros(s.mean),
                micros(s.p50),
                micros(s.p99)
            );
        }
    }
    Ok(0)
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
