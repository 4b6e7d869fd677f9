//! `stackguard check`: read manifests, apply the policies, report. Lives in the library so the
//! lean pre-commit binary (no wasmtime) shares it with the full CLI.
//!
//! Exit codes: 0 everything accepted; 1 something rejected, or a manifest could not be parsed
//! (reported with file and line; the other files are still checked); 2 usage errors: bad flags,
//! a bad config, a path that does not exist.

use crate::config::{self, Config};
use crate::engine::{Engine, par_map};
use crate::manifest::{self, Input, Object, SourceFile};
use crate::report::{self, Format, Report};
use crate::yaml;
use anyhow::{Result, anyhow};
use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Files or directories (recursive: .yaml, .yml, .json) to check; `-` reads stdin.
    /// Default: the current directory.
    pub paths: Vec<PathBuf>,
    /// Config file (default: .stackguard.yaml in the current directory, if present).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Evaluate these compiled waPC modules instead of the built-in policies (repeatable).
    #[arg(long = "policy", value_name = "MODULE.wasm")]
    #[cfg_attr(not(feature = "host"), arg(hide = true))]
    pub modules: Vec<PathBuf>,
    /// Colour: auto (only on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Only read and parse the manifests, then print counts and timing (benchmarks).
    #[arg(long, hide = true)]
    pub parse_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Colour stdout? `auto`: only on a terminal, unless NO_COLOR is set.
    pub fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// Run `check`; returns the exit code. An `Err` is a usage or config error (exit 2).
pub fn main(args: Args) -> Result<i32> {
    let config = load_config(args.config.as_deref())?;
    let inputs = inputs(&args.paths, &config)?;

    let started = Instant::now();
    if args.parse_only {
        let loaded = load(&inputs);
        let objects: usize = loaded.objects.len();
        eprintln!(
            "parsed {} files, {objects} objects, {} errors in {:.1} ms",
            loaded.files.len(),
            loaded.errors.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        return Ok(0);
    }

    let engine = build_engine(&args.modules, &config)?;
    let (loaded, findings) =
        crate::stream::check(&inputs, &|_, i| manifest::read(i), &engine, &config);
    let report = build_report(&loaded, &engine, findings);
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(report.render(args.format, args.color.enabled()).as_bytes());
    let _ = out.flush();
    Ok(report.totals().exit_code())
}

/// The config `--config` names, else `.stackguard.yaml` in the current directory if present,
/// else the defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => {
            let p = Path::new(config::DEFAULT_FILE);
            if p.exists() {
                Config::load(p)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// The inputs `paths` name (default: the current directory) minus the config's excludes; a
/// path that does not exist is a usage error.
pub fn inputs(paths: &[PathBuf], config: &Config) -> Result<Vec<Input>> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let (inputs, missing) = manifest::discover(&paths, &config.exclude);
    if !missing.is_empty() {
        let text: Vec<String> = missing.iter().map(ToString::to_string).collect();
        return Err(anyhow!(text.join("\n")));
    }
    Ok(inputs)
}

/// Entry point of the lean `stackguard-hook` binary: `stackguard check` (the default), or
/// `stackguard fix` as `stackguard-hook fix …` (the `stackguard-fix` pre-commit hook).
#[cfg(not(target_arch = "wasm32"))]
pub fn hook_main() -> i32 {
    #[derive(clap::Parser)]
    #[command(
        name = "stackguard-hook",
        version,
        about = "stackguard check for pre-commit: check manifests against the stackguard policies \
                 (`stackguard-hook fix …`: fix them)",
        args_conflicts_with_subcommands = true
    )]
    struct Hook {
        #[command(subcommand)]
        fix: Option<HookCommand>,
        #[command(flatten)]
        args: Args,
    }
    #[derive(clap::Subcommand)]
    enum HookCommand {
        /// Fill in what the mutating policies would, in place (stackguard fix); exit 1 when
        /// something changed or findings remain.
        Fix(crate::fix::Args),
    }
    let hook = <Hook as clap::Parser>::parse();
    let result = match hook.fix {
        Some(HookCommand::Fix(args)) => crate::fix::main(args),
        None => main(hook.args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// The built-in policies, or the given compiled modules (`--policy`).
#[cfg(feature = "host")]
pub fn build_engine(modules: &[PathBuf], config: &Config) -> Result<Engine> {
    if modules.is_empty() {
        Engine::native(config)
    } else {
        Engine::modules(modules, config)
    }
}

/// The built-in policies (`--policy` needs the waPC host).
#[cfg(not(feature = "host"))]
pub fn build_engine(modules: &[PathBuf], config: &Config) -> Result<Engine> {
    if !modules.is_empty() {
        return Err(anyhow!(
            "--policy needs the waPC host: this stackguard was built without the `host` feature"
        ));
    }
    Engine::native(config)
}

/// Every input read and parsed (in parallel), objects in input order.
#[derive(Default)]
pub struct Loaded {
    pub files: Vec<SourceFile>,
    pub objects: Vec<Object>,
    pub errors: Vec<manifest::InputError>,
}

pub fn load(inputs: &[Input]) -> Loaded {
    let parsed = par_map(
        inputs,
        || (),
        |_, i, input| manifest::read(input).map(|src| (manifest::parse(i, &src), src)),
    );
    let mut loaded = Loaded {
        files: Vec::new(),
        objects: Vec::new(),
        errors: Vec::new(),
    };
    // File indices in `parse` are input indices: renumber to positions in `files`.
    for result in parsed {
        match result {
            Ok((p, src)) => {
                let idx = loaded.files.len();
                loaded
                    .objects
                    .extend(p.objects.into_iter().map(|o| Object { file: idx, ..o }));
                loaded.errors.extend(p.errors);
                loaded.files.push(src);
            }
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

/// Turn engine findings into located report findings (field lines only for files with
/// findings, one pass per such file, in parallel).
pub fn build_report(
    loaded: &Loaded,
    engine: &Engine,
    findings: Vec<crate::engine::Finding>,
) -> Report {
    // Per file: the objects with findings, and per document the paths the findings name.
    type Wanted<'o> = (Vec<&'o Object>, HashMap<usize, HashSet<String>>);
    let mut by_file: HashMap<usize, Wanted<'_>> = HashMap::new();
    let mut last: Option<usize> = None;
    for f in &findings {
        let o = &loaded.objects[f.object];
        let (objects, paths) = by_file.entry(o.file).or_default();
        if last != Some(f.object) {
            objects.push(o);
            last = Some(f.object);
        }
        if let Some(path) = &f.path {
            let full = manifest::full_path(o, path);
            let doc = paths.entry(o.doc).or_default();
            doc.extend(yaml::with_ancestors(&full).map(str::to_string));
        }
    }
    let files: Vec<(usize, Wanted<'_>)> = by_file.into_iter().collect();
    let located: HashMap<usize, _> = par_map(
        &files,
        || (),
        |_, _, (file, (objs, paths))| (*file, manifest::locate(&loaded.files[*file], objs, paths)),
    )
    .into_iter()
    .collect();
    let mut rejected: Vec<usize> = findings.iter().map(|f| f.object).collect();
    rejected.dedup();
    let mut out: Vec<(usize, report::Finding)> = findings
        .into_iter()
        .map(|f| {
            let o = &loaded.objects[f.object];
            let line = located
                .get(&o.file)
                .map_or(o.line, |l| manifest::field_line(l, o, f.path.as_deref()));
            let finding = report::Finding {
                file: loaded.files[o.file].name.clone(),
                line,
                api_version: o.api_version().to_string(),
                kind: o.kind().to_string(),
                namespace: o.namespace().to_string(),
                name: o.name().to_string(),
                policy: engine.policies[f.policy].name.clone(),
                path: f.path,
                message: f.message,
            };
            (o.file, finding)
        })
        .collect();
    // By file, then by line (stable: same-line findings keep policy order).
    out.sort_by_key(|(file, f)| (*file, f.line));
    let out = out.into_iter().map(|(_, f)| f).collect();
    Report {
        files: loaded.files.len(),
        objects: loaded.objects.len(),
        rejected: rejected.len(),
        findings: out,
        errors: loaded.errors.clone(),
        policies: engine.policies.clone(),
    }
}
