//! `redis-pubsub-noeviction`: a Redis (Valkey, KeyDB) instance used for pub/sub never evicts
//! keys, does not persist, and keeps `maxmemory` below the container's memory limit.
//!
//! The effective configuration is computed as Redis computes it: the config file (found through
//! the container's volume mounts, fetched from the cluster context when it is not in the
//! request), its `include`s, then the command-line options, last occurrence winning, Redis 7
//! defaults for what is never set.

pub mod settings;

use serde::Deserialize;
use settings::Settings;
use stackguard_common::de::null_default;
use stackguard_common::mounts::{self, Mounted, Provider};
use stackguard_common::quantity::Quantity;
use stackguard_common::redisconf::{self, RedisConfig};
use stackguard_common::request::Metadata;
use stackguard_common::workload::{self, ContainerRef, ContainerRole, Workload};
use stackguard_common::{ClusterContext, Policy, Request, Verdict, glob, shell};
use std::collections::BTreeMap;

pub struct RedisPubsubNoeviction;

/// Workload kinds and ConfigMaps.
pub const KINDS: &[&str] = stackguard_common::workload_kinds_and!("ConfigMap");

impl Policy for RedisPubsubNoeviction {
    const NAME: &'static str = "redis-pubsub-noeviction";
    const KINDS: &'static [&'static str] = KINDS;
    const CONTEXT_AWARE: bool = true;
    type Settings = Settings;

    fn evaluate(req: &Request<'_>, settings: &Settings, ctx: &dyn ClusterContext) -> Verdict {
        let selector = match settings.selector() {
            Ok(s) => s,
            Err(e) => return Verdict::reject("", e),
        };
        let mut verdict = Verdict::accept();
        if req.kind == "ConfigMap" {
            match req.object.parse::<ConfigMap>() {
                Ok(cm) if selector.matches(&cm.metadata.labels) => {
                    config_map(&cm, settings, &mut verdict)
                }
                Ok(_) => {}
                Err(e) => verdict.push("", e),
            }
            return verdict;
        }
        let workload = match Workload::from_request(req) {
            Ok(Some(w)) => w,
            Ok(None) => return verdict,
            Err(e) => return Verdict::reject("", e),
        };
        if !mounts::selects_workload(&selector, &workload) {
            return verdict;
        }
        let namespace = if req.namespace.is_empty() {
            workload.metadata.namespace.as_str()
        } else {
            req.namespace
        };
        for c in workload.containers() {
            if c.role == ContainerRole::App && is_redis_image(&c.container.image, settings) {
                container(&workload, &c, namespace, settings, ctx, &mut verdict);
            }
        }
        verdict
    }
}

#[derive(Deserialize)]
struct ConfigMap {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default, deserialize_with = "null_default")]
    data: BTreeMap<String, String>,
}

fn is_redis_image(image: &str, s: &Settings) -> bool {
    let repo = mounts::image_repository(image);
    let name = repo.rsplit('/').next().unwrap_or(repo);
    glob::any_match(&s.image_names, name)
}

/// A labelled ConfigMap: every `*.conf` key is a redis.conf; `include`s resolve to sibling keys.
fn config_map(cm: &ConfigMap, s: &Settings, v: &mut Verdict) {
    for (key, text) in cm.data.iter().filter(|(k, _)| k.ends_with(".conf")) {
        let mut resolve = |path: &str| {
            let base = path.rsplit('/').next().unwrap_or(path);
            cm.data.get(base).cloned()
        };
        let cfg = RedisConfig::parse(text, key, &mut resolve);
        let mut check = Check {
            who: format!("redis.conf key {key}"),
            path: format!("data.{key}"),
            verdict: v,
        };
        check.effective(&cfg, true, s, None);
    }
}

/// One word of a command line: `None` when its value only exists at run time (a shell
/// expansion, a Kubernetes `$(VAR)` reference to a value that is not in the manifest).
type Arg = Option<String>;

/// How a container starts redis-server: (config file, options).
enum Invocation {
    Server {
        /// `Some(None)`: a config file whose name is not known.
        config: Option<Arg>,
        options: Vec<Arg>,
    },
    /// Not a server (redis-cli, sentinel, an exporter's command…).
    NotServer,
    /// A shell script in which no redis-server command was found.
    Unknown,
}

const SERVERS: &[&str] = &["redis-server", "valkey-server", "keydb-server"];
const SHELLS: &[&str] = &["sh", "bash", "ash", "dash"];

fn invocation(argv: &[Arg]) -> Invocation {
    let Some(first) = argv.first() else {
        // The image's default command: `redis-server` without arguments.
        return Invocation::Server {
            config: None,
            options: Vec::new(),
        };
    };
    let Some(first) = first else {
        return Invocation::Unknown;
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    let rest = argv.get(1..).unwrap_or(&[]);
    if SERVERS.contains(&program) {
        // Redis reads its first argument as the config file unless it starts with `-`.
        let (config, options) = match rest.first() {
            Some(f) if f.as_ref().is_none_or(|f| !f.starts_with('-')) => {
                (Some(f.clone()), rest[1..].to_vec())
            }
            _ => (None, rest.to_vec()),
        };
        return Invocation::Server { config, options };
    }
    if program == "docker-entrypoint.sh" {
        return invocation(rest);
    }
    if SHELLS.contains(&program) {
        let script = rest
            .iter()
            .position(|a| {
                a.as_ref()
                    .is_some_and(|a| a.starts_with('-') && a.contains('c'))
            })
            .and_then(|i| rest.get(i + 1))
            .cloned()
            .flatten();
        let Some(script) = script else {
            return Invocation::Unknown;
        };
        return shell::parse(&script)
            .into_iter()
            .find(|c| c.program().is_some_and(|p| SERVERS.contains(&p)))
            .map_or(Invocation::Unknown, |c| {
                let words: Vec<Arg> = c
                    .words
                    .iter()
                    .map(|w| w.as_literal().map(str::to_string))
                    .collect();
                invocation(&words)
            });
    }
    // The official entrypoint runs redis-server for `-…` or `*.conf` first arguments.
    if first.starts_with('-') || first.ends_with(".conf") {
        let mut with_server = vec![Some("redis-server".to_string())];
        with_server.extend_from_slice(argv);
        return invocation(&with_server);
    }
    Invocation::NotServer
}

/// The command-line options whose values are known, and the names of those that are not
/// (they are left out: Redis gets values the manifest does not show).
fn known_options(options: &[Arg]) -> (Vec<String>, Vec<String>) {
    let mut groups: Vec<(Option<String>, Vec<Arg>)> = Vec::new();
    for o in options {
        match o {
            Some(w) if w.starts_with("--") => groups.push((Some(w.clone()), Vec::new())),
            _ => match groups.last_mut() {
                Some((_, args)) => args.push(o.clone()),
                None => groups.push((None, vec![o.clone()])),
            },
        }
    }
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (name, args) in groups {
        if args.iter().any(Option::is_none) {
            unknown.push(name.unwrap_or_else(|| "an argument".to_string()));
            continue;
        }
        known.extend(name);
        known.extend(args.into_iter().flatten());
    }
    (known, unknown)
}

/// ConfigMaps fetched for one container, by name (`None`: could not be fetched).
struct Files<'a> {
    mounts: Vec<Mounted<'a>>,
    namespace: &'a str,
    ctx: &'a dyn ClusterContext,
    fetched: BTreeMap<String, Option<BTreeMap<String, String>>>,
    warnings: Vec<String>,
}

impl Files<'_> {
    /// The content of `path` in the container, or `None` with a warning saying why.
    fn read(&mut self, path: &str) -> Option<String> {
        let mounts: Vec<Mounted<'_>> = self
            .mounts
            .iter()
            .filter(|m| m.covers(path))
            .cloned()
            .collect();
        if mounts.is_empty() {
            self.warnings.push(format!(
                "{path} is not in any mounted volume (it would come from the image)"
            ));
            return None;
        }
        for m in &mounts {
            match &m.provider {
                Provider::ConfigMap { name, .. } => {
                    let data = self.fetched.entry(name.to_string()).or_insert_with(|| {
                        mounts::fetch_config_map(self.ctx, self.namespace, name)
                    });
                    match data {
                        Some(data) => {
                            let found = data
                                .iter()
                                .find(|(k, _)| m.path_of(k).as_deref() == Some(path));
                            if let Some((_, text)) = found {
                                return Some(text.clone());
                            }
                        }
                        None => {
                            self.warnings.push(format!(
                                "ConfigMap '{}' providing {path} could not be fetched",
                                qualified(self.namespace, name)
                            ));
                            return None;
                        }
                    }
                }
                Provider::Secret { name } => {
                    self.warnings.push(format!(
                        "{path} comes from Secret '{}', which this policy does not read",
                        qualified(self.namespace, name)
                    ));
                    return None;
                }
                Provider::Other { volume } => {
                    self.warnings.push(format!(
                        "{path} comes from volume '{volume}', whose content is unknown"
                    ));
                    return None;
                }
            }
        }
        self.warnings.push(format!(
            "no mounted ConfigMap has a key that appears at {path}"
        ));
        None
    }
}

fn qualified(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

fn container(
    w: &Workload,
    c: &ContainerRef<'_>,
    namespace: &str,
    s: &Settings,
    ctx: &dyn ClusterContext,
    v: &mut Verdict,
) {
    let who = c.describe();
    let argv: Vec<Arg> = c
        .container
        .command
        .iter()
        .chain(&c.container.args)
        .map(|a| workload::kube_expand(a, &c.container.env))
        .collect();
    let (config, options) = match invocation(&argv) {
        Invocation::Server { config, options } => (config, options),
        Invocation::NotServer => return,
        Invocation::Unknown => {
            v.warn(format!(
                "{who}: no redis-server command found in its shell command; its configuration was not checked"
            ));
            return;
        }
    };
    let mut files = Files {
        mounts: mounts::mounts_of(&w.spec, c.container),
        namespace,
        ctx,
        fetched: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let (options, unknown) = known_options(&options);
    for name in unknown {
        v.warn(format!(
            "{who}: {name} is given a value that only exists at run time; it was not checked"
        ));
    }
    let (text, path, known) = match &config {
        None => (Some(String::new()), String::new(), true),
        Some(Some(path)) => (files.read(path), path.clone(), true),
        Some(None) => {
            files
                .warnings
                .push("the config file is named by a run-time value".to_string());
            (None, String::new(), false)
        }
    };
    let known = known && text.is_some();
    let mut resolve = |p: &str| files.read(p);
    let cfg = RedisConfig::load(&text.unwrap_or_default(), &path, &options, &mut resolve);
    // When the file itself was read, unfollowed includes are reported by the check below.
    if !known {
        for w in files.warnings {
            v.warn(format!(
                "{who}: {w}; only its command-line options were checked"
            ));
        }
    }
    let limit = c
        .container
        .resources
        .as_ref()
        .and_then(|r| r.limits.get("memory"))
        .map(|q| (q.0.clone(), Quantity::parse(&q.0)));
    let limit = match limit {
        Some((text, Ok(q))) => Some((text, u64::try_from(q.nanos() / 1_000_000_000).unwrap_or(0))),
        Some((_, Err(e))) => {
            v.push(
                format!("{}.resources.limits.memory", c.path),
                format!("{who}: {e}"),
            );
            None
        }
        None => None,
    };
    let mut check = Check {
        who,
        path: c.path.clone(),
        verdict: v,
    };
    check.effective(&cfg, known, s, limit);
}

struct Check<'a> {
    who: String,
    path: String,
    verdict: &'a mut Verdict,
}

impl Check<'_> {
    fn reject(&mut self, msg: String) {
        self.verdict
            .push(self.path.clone(), format!("{}: {msg}", self.who));
    }

    /// Check the effective configuration. `known`: the config file was read (absent directives
    /// take Redis defaults); otherwise only what was set explicitly is judged.
    fn effective(
        &mut self,
        cfg: &RedisConfig,
        known: bool,
        s: &Settings,
        limit: Option<(String, u64)>,
    ) {
        if let Some(e) = &cfg.error {
            // Redis stops at this line: what follows was never applied.
            self.reject(format!(
                "{e}: Redis would not load the file and refuses to start"
            ));
            return;
        }
        for inc in &cfg.unresolved_includes {
            self.verdict.warn(format!(
                "{}: include {inc} could not be followed; its directives were not checked",
                self.who
            ));
        }
        match (cfg.get("maxmemory-policy"), known) {
            (Some(d), _) => {
                let policy = d
                    .args
                    .first()
                    .map(|a| a.to_ascii_lowercase())
                    .unwrap_or_default();
                if policy != redisconf::DEFAULT_MAXMEMORY_POLICY {
                    self.reject(format!(
                        "maxmemory-policy is {policy} ({}); a pub/sub instance must not evict keys: set maxmemory-policy noeviction",
                        d.origin
                    ));
                }
            }
            (None, true) if s.require_explicit_policy => self.reject(
                "maxmemory-policy is not set; set maxmemory-policy noeviction explicitly"
                    .to_string(),
            ),
            (None, true) => self.verdict.warn(format!(
                "{}: maxmemory-policy is not set; Redis' default noeviction applies",
                self.who
            )),
            (None, false) => {}
        }
        if s.require_no_persistence {
            if let Some(d) = cfg.get("appendonly")
                && d.args
                    .first()
                    .is_some_and(|a| a.eq_ignore_ascii_case("yes"))
            {
                self.reject(format!(
                    "appendonly yes ({}); a pub/sub instance must not persist: set appendonly no",
                    d.origin
                ));
            }
            let points = cfg.save_points();
            if !points.is_empty() && (known || cfg.save_is_explicit()) {
                let list: Vec<String> = points.iter().map(|(a, b)| format!("{a} {b}")).collect();
                let from = match cfg.get("save") {
                    Some(d) => d.origin.clone(),
                    None => "Redis 7 default, no save directive".to_string(),
                };
                self.reject(format!(
                    "RDB snapshots are enabled (save {}; {from}); set save \"\"",
                    list.join(" ")
                ));
            }
        }
        if s.check_maxmemory_against_limit
            && let Some((limit_text, limit_bytes)) = limit
        {
            let maxmemory = cfg.get("maxmemory");
            match maxmemory.and_then(|d| d.args.first().map(|a| (a, &d.origin))) {
                Some((text, origin)) => match redisconf::parse_memory(text) {
                    Some(0) => self.reject(format!(
                        "maxmemory 0 ({origin}) means no limit; set it below the container memory limit {limit_text} ({limit_bytes} bytes)"
                    )),
                    Some(bytes) if bytes >= limit_bytes => self.reject(format!(
                        "maxmemory {text} ({bytes} bytes, {origin}) is not below the container memory limit {limit_text} ({limit_bytes} bytes)"
                    )),
                    Some(_) => {}
                    None => self.reject(format!(
                        "maxmemory ({origin}) is not a valid Redis memory size (e.g. 200mb, 1gb)"
                    )),
                },
                None if known => self.reject(format!(
                    "maxmemory is not set (no limit); set it below the container memory limit {limit_text} ({limit_bytes} bytes)"
                )),
                None => {}
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    stackguard_common::guest::register::<RedisPubsubNoeviction>();
}

#[cfg(test)]
mod tests {
    use super::KINDS;

    #[test]
    fn kinds_cover_every_workload_kind() {
        for k in stackguard_common::workload::WORKLOAD_KINDS {
            assert!(KINDS.contains(k), "{k}");
        }
    }
}
