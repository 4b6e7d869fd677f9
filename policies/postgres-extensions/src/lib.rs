//! `postgres-extensions`: the init scripts of every guarded Postgres instance create the required
//! extensions (in the required databases), and the instance runs an image that ships them.
//!
//! Scripts are read from labelled ConfigMaps, from the ConfigMaps a guarded workload mounts at
//! `/docker-entrypoint-initdb.d` (fetched from the cluster context when not in the request), and
//! from guarded CloudNativePG `Cluster`s (`postInit*SQL` and the ConfigMaps `postInit*SQLRefs`
//! name). They are replayed as Postgres would run them: files in name order, `\connect`
//! switching database, `CREATE DATABASE` copying its template's extensions.

pub mod replay;
pub mod settings;

use replay::{Presence, Replay};
use serde::Deserialize;
use settings::Settings;
use stackguard_common::de::null_default;
use stackguard_common::mounts::{self, Provider};
use stackguard_common::request::Metadata;
use stackguard_common::workload::{ContainerRef, ContainerRole, Workload};
use stackguard_common::{ClusterContext, Policy, Request, Verdict, cnpg, glob};
use std::collections::{BTreeMap, BTreeSet};

pub struct PostgresExtensions;

/// Where the official image runs init scripts from.
pub const INIT_DIR: &str = "/docker-entrypoint-initdb.d";

/// The image CloudNativePG runs when a `Cluster` names none (no PostGIS).
pub const CNPG_DEFAULT_IMAGE: &str = "ghcr.io/cloudnative-pg/postgresql";

/// Workload kinds, ConfigMaps and CloudNativePG `Cluster`s.
pub const KINDS: &[&str] = stackguard_common::workload_kinds_and!("ConfigMap", "Cluster");

impl Policy for PostgresExtensions {
    const NAME: &'static str = "postgres-extensions";
    const KINDS: &'static [&'static str] = KINDS;
    const CONTEXT_AWARE: bool = true;
    type Settings = Settings;

    fn evaluate(req: &Request<'_>, settings: &Settings, ctx: &dyn ClusterContext) -> Verdict {
        let selector = match settings.selector() {
            Ok(s) => s,
            Err(e) => return Verdict::reject("", e),
        };
        let mut v = Verdict::accept();
        match req.kind {
            "ConfigMap" => match req.object.parse::<ConfigMap>() {
                Ok(cm) if selector.matches(&cm.metadata.labels) => {
                    let mut run = Run::new(&BTreeMap::new());
                    run.replay.init_dir(&cm.data);
                    run.check(settings, "data", "init scripts", &mut v);
                }
                Ok(_) => {}
                Err(e) => v.push("", e),
            },
            "Cluster" => match req.object.parse::<Cluster>() {
                Ok(c) if selector.matches(&c.metadata.labels) => {
                    let ns = namespace(req, &c.metadata);
                    cluster(&c, ns, settings, ctx, &mut v)
                }
                Ok(_) => {}
                Err(e) => v.push("", e),
            },
            _ => match Workload::from_request(req) {
                Ok(Some(w)) if mounts::selects_workload(&selector, &w) => {
                    let ns = namespace(req, &w.metadata);
                    workload(&w, ns, settings, ctx, &mut v)
                }
                Ok(_) => {}
                Err(e) => v.push("", e),
            },
        }
        v
    }
}

fn namespace<'a>(req: &'a Request<'_>, meta: &'a Metadata) -> &'a str {
    if req.namespace.is_empty() {
        &meta.namespace
    } else {
        req.namespace
    }
}

fn qualified(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

#[derive(Deserialize)]
struct ConfigMap {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default, deserialize_with = "null_default")]
    data: BTreeMap<String, String>,
}

/// The init scripts of one instance, replayed.
struct Run {
    replay: Replay,
    /// Something could not be read: missing extensions are not conclusive.
    incomplete: bool,
}

impl Run {
    /// A replay in the environment the container gives the scripts.
    fn new(env: &BTreeMap<String, String>) -> Run {
        Run {
            replay: Replay::new(env),
            incomplete: false,
        }
    }

    /// Required and per-database extensions, and scripts that stop; findings at `path`,
    /// messages about `what`.
    fn check(&self, s: &Settings, path: &str, what: &str, v: &mut Verdict) {
        let r = &self.replay;
        if let Some(stop) = &r.stopped {
            v.push(
                path,
                format!(
                    "{what} stop at {}: {}; they run with ON_ERROR_STOP, so the initialization fails there and nothing after it runs",
                    stop.at, stop.reason
                ),
            );
        }
        if !r.uncertain.is_empty() {
            let shown: Vec<&str> = r.uncertain.iter().take(3).map(String::as_str).collect();
            let more = r.uncertain.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            v.warn(format!(
                "{what}: could not tell everything they do: {}{more}",
                shown.join("; ")
            ));
        }
        if self.incomplete {
            return;
        }
        let (missing, maybe) = by_presence(r, None, &s.required_extensions);
        if !missing.is_empty() {
            v.push(
                path,
                format!(
                    "{what} never create the required extension(s) {}; add CREATE EXTENSION IF NOT EXISTS for each",
                    missing.join(", ")
                ),
            );
        }
        if !maybe.is_empty() {
            v.warn(format!(
                "{what} may not create the required extension(s) {}",
                maybe.join(", ")
            ));
        }
        for (db, exts) in &s.per_database {
            let (missing, maybe) = by_presence(r, Some(db), exts);
            if !maybe.is_empty() {
                v.warn(format!(
                    "{what} may not create extension(s) {} in database {db}",
                    maybe.join(", ")
                ));
            }
            if missing.is_empty() {
                continue;
            }
            let hint = if r.databases.contains_key(db) {
                String::new()
            } else {
                format!(" (the scripts never create or connect to database {db})")
            };
            v.push(
                path,
                format!(
                    "{what} do not create extension(s) {} in database {db}{hint}; \\connect {db} and CREATE EXTENSION there",
                    missing.join(", ")
                ),
            );
        }
    }

    /// The extensions an image has to provide: required, per-database and created.
    fn needed<'a>(&'a self, s: &'a Settings) -> BTreeSet<&'a str> {
        let mut needed: BTreeSet<&str> = s.required_extensions.iter().map(String::as_str).collect();
        needed.extend(s.per_database.values().flatten().map(String::as_str));
        needed.extend(self.replay.all_possible());
        needed
    }
}

/// The extensions of `exts` absent from `db` (`None`: from every database), and those maybe
/// present.
fn by_presence<'a>(
    r: &Replay,
    db: Option<&str>,
    exts: &'a [String],
) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut missing = Vec::new();
    let mut maybe = Vec::new();
    for e in exts {
        match r.presence(db, e) {
            Presence::Yes => {}
            Presence::Maybe => maybe.push(e.as_str()),
            Presence::No => missing.push(e.as_str()),
        }
    }
    (missing, maybe)
}

/// Reject an image that does not ship an extension the scripts need.
fn check_image(image: &str, run: &Run, s: &Settings, path: &str, who: &str, v: &mut Verdict) {
    let repo = mounts::image_repository(image);
    for ext in run.needed(s) {
        let Some(globs) = s.images_for(ext) else {
            continue;
        };
        if !glob::any_match(&globs, repo) && !glob::any_match(&globs, image) {
            v.push(
                path,
                format!(
                    "{who} runs image {image}, which does not ship extension {ext}; use an image matching {}",
                    globs.join(", ")
                ),
            );
        }
    }
}

/// The Postgres container of a guarded workload: the one mounting init scripts, else the first
/// app container whose image looks like Postgres.
fn postgres_container<'a>(w: &'a Workload) -> Option<ContainerRef<'a>> {
    let app = || w.containers().filter(|c| c.role == ContainerRole::App);
    app()
        .find(|c| {
            mounts::mounts_of(&w.spec, c.container)
                .iter()
                .any(|m| m.feeds_dir(INIT_DIR))
        })
        .or_else(|| {
            app().find(|c| {
                let repo = mounts::image_repository(&c.container.image);
                ["postgres", "postgis", "timescale"]
                    .iter()
                    .any(|k| repo.contains(k))
            })
        })
}

fn workload(w: &Workload, ns: &str, s: &Settings, ctx: &dyn ClusterContext, v: &mut Verdict) {
    let Some(c) = postgres_container(w) else {
        v.warn("guarded by postgres-extensions, but no Postgres container was found");
        return;
    };
    let who = c.describe();
    // The official image runs the scripts in $POSTGRES_DB (default: $POSTGRES_USER, postgres).
    let env: BTreeMap<String, String> = ["POSTGRES_DB", "POSTGRES_USER"]
        .into_iter()
        .filter_map(|n| {
            let e = c.container.env.iter().find(|e| e.name == n)?;
            Some((n.to_string(), e.value.clone()?))
        })
        .collect();
    let mut run = Run::new(&env);
    let mut files = BTreeMap::new();
    let mut sources = Vec::new();
    for m in mounts::mounts_of(&w.spec, c.container)
        .iter()
        .filter(|m| m.feeds_dir(INIT_DIR))
    {
        match &m.provider {
            Provider::ConfigMap { name, .. } => {
                sources.push(format!("ConfigMap '{}'", qualified(ns, name)));
                let Some(data) = mounts::fetch_config_map(ctx, ns, name) else {
                    v.warn(format!(
                        "{who}: init-script ConfigMap '{}' could not be fetched; the extensions it creates were not checked",
                        qualified(ns, name)
                    ));
                    run.incomplete = true;
                    continue;
                };
                for (key, text) in data {
                    let Some(p) = m.path_of(&key) else { continue };
                    // The entrypoint runs only files directly inside the directory.
                    if let Some(file) = p.strip_prefix(INIT_DIR).and_then(|r| r.strip_prefix('/'))
                        && !file.contains('/')
                    {
                        files.insert(file.to_string(), text);
                    }
                }
            }
            Provider::Secret { name } => {
                v.warn(format!(
                    "{who}: init scripts from Secret '{}' were not read; the extensions they create were not checked",
                    qualified(ns, name)
                ));
                run.incomplete = true;
            }
            Provider::Other { volume } => {
                v.warn(format!(
                    "{who}: init scripts from volume '{volume}' cannot be read; the extensions they create were not checked"
                ));
                run.incomplete = true;
            }
        }
    }
    run.replay.init_dir(&files);
    let what = if sources.is_empty() {
        format!("{who} mounts no init scripts at {INIT_DIR}, so its scripts")
    } else {
        format!("{who}: the init scripts ({})", sources.join(", "))
    };
    run.check(s, &c.path, &what, v);
    check_image(
        &c.container.image,
        &run,
        s,
        &format!("{}.image", c.path),
        &who,
        v,
    );
}

/// CloudNativePG `Cluster`, the fields this policy reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default, deserialize_with = "null_default")]
    spec: ClusterSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ClusterSpec {
    #[serde(default)]
    image_name: Option<String>,
    #[serde(default)]
    image_catalog_ref: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_default")]
    bootstrap: cnpg::Bootstrap,
}

fn cluster(c: &Cluster, ns: &str, s: &Settings, ctx: &dyn ClusterContext, v: &mut Verdict) {
    let empty = cnpg::Initdb::default();
    let i = c.spec.bootstrap.initdb.as_ref().unwrap_or(&empty);
    // CloudNativePG creates the application database with the cluster, before the post-init SQL.
    let env = BTreeMap::from([("POSTGRES_DB".to_string(), i.app_database().to_string())]);
    let mut run = Run::new(&env);
    // CloudNativePG runs the inline queries, then the referenced ones, in this order.
    for cnpg::Phase {
        field,
        database: db,
        inline,
        refs,
    } in i.phases()
    {
        for stmt in inline.iter() {
            run.replay.sql(stmt, db, field);
        }
        let Some(refs) = refs else { continue };
        for r in &refs.config_map_refs {
            match mounts::fetch_config_map(ctx, ns, &r.name).and_then(|d| d.get(&r.key).cloned()) {
                Some(text) => run.replay.sql(&text, db, &format!("{field}Refs {}", r.key)),
                None => {
                    v.warn(format!(
                        "{field}Refs: key {} of ConfigMap '{}' could not be fetched; the extensions it creates were not checked",
                        r.key,
                        qualified(ns, &r.name)
                    ));
                    run.incomplete = true;
                }
            }
        }
        for r in &refs.secret_refs {
            v.warn(format!(
                "{field}Refs: Secret '{}' (key {}) was not read; the extensions it creates were not checked",
                qualified(ns, &r.name),
                r.key
            ));
            run.incomplete = true;
        }
    }
    run.check(s, "spec.bootstrap.initdb", "the cluster's post-init SQL", v);
    if c.spec.image_catalog_ref.is_some() && c.spec.image_name.is_none() {
        v.warn(
            "spec.imageCatalogRef is used: the image was not checked for the required extensions",
        );
        return;
    }
    let image = c.spec.image_name.as_deref().unwrap_or(CNPG_DEFAULT_IMAGE);
    check_image(image, &run, s, "spec.imageName", "the cluster", v);
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    stackguard_common::guest::register::<PostgresExtensions>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_cover_every_workload_kind() {
        for k in stackguard_common::workload::WORKLOAD_KINDS {
            assert!(KINDS.contains(k), "{k}");
        }
    }

    #[test]
    fn create_database_copies_its_template() {
        let mut run = Run::new(&BTreeMap::new());
        run.replay.sql(
            "\\c template1\nCREATE EXTENSION pgcrypto;\n\\c postgres\nCREATE DATABASE a;\nCREATE DATABASE b TEMPLATE template0;\n\\c a\nCREATE EXTENSION postgis;",
            "postgres",
            "init.sql",
        );
        let dbs = &run.replay.databases;
        assert!(
            dbs["a"].extensions.contains_key("pgcrypto")
                && dbs["a"].extensions.contains_key("postgis")
        );
        assert!(dbs["b"].extensions.is_empty());
        assert!(dbs["postgres"].extensions.is_empty());
        assert!(run.replay.stopped.is_none());
    }

    #[test]
    fn a_failing_statement_stops_the_scripts() {
        let mut run = Run::new(&BTreeMap::new());
        run.replay.sql(
            "CREATE EXTENSION pgcrypto;\nBEGIN;\nCREATE EXTENSION postgis;\nCREATE EXTENSION pgcrypto;\nCOMMIT;",
            "postgres",
            "init.sql",
        );
        let stop = run.replay.stopped.as_ref().unwrap();
        assert_eq!(stop.at, "init.sql line 4");
        // The open transaction is rolled back with the session.
        assert!(
            !run.replay.databases["postgres"]
                .extensions
                .contains_key("postgis")
        );
        assert!(
            run.replay.databases["postgres"]
                .extensions
                .contains_key("pgcrypto")
        );
    }
}
