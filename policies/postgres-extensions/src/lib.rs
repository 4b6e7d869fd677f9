//! `postgres-extensions`: the init scripts of every guarded Postgres instance create the required
//! extensions (in the required databases), and the instance runs an image that ships them.
//!
//! Scripts are read from labelled ConfigMaps, from the ConfigMaps a guarded workload mounts at
//! `/docker-entrypoint-initdb.d` (fetched from the cluster context when not in the request), and
//! from guarded CloudNativePG `Cluster`s (`postInit*SQL` and the ConfigMaps `postInit*SQLRefs`
//! name). They are replayed as Postgres would run them: files in name order, `\connect`
//! switching database, `CREATE DATABASE` copying its template's extensions.

pub mod settings;

use serde::Deserialize;
use settings::Settings;
use stackguard_common::de::null_default;
use stackguard_common::mounts::{self, Provider};
use stackguard_common::request::Metadata;
use stackguard_common::workload::{ContainerRef, ContainerRole, Workload};
use stackguard_common::{ClusterContext, Policy, Request, Verdict, cnpg, glob, shell, sql};
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
                    let mut run = Run::new("postgres");
                    run.files(&cm.data);
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

/// The databases and the extensions each holds, as the scripts leave them.
struct Run {
    dbs: BTreeMap<String, BTreeSet<String>>,
    default_db: String,
    current: String,
    /// Something could not be read: missing extensions are not conclusive.
    incomplete: bool,
}

impl Run {
    fn new(default_db: &str) -> Run {
        let mut dbs = BTreeMap::new();
        for db in ["postgres", "template1", default_db] {
            dbs.insert(db.to_string(), BTreeSet::new());
        }
        Run {
            dbs,
            default_db: default_db.to_string(),
            current: default_db.to_string(),
            incomplete: false,
        }
    }

    /// Run SQL text starting in `database`.
    fn sql(&mut self, text: &str, database: &str) {
        self.switch(database);
        for e in sql::scan(text) {
            match e {
                sql::Event::Connect { database, .. } => self.switch(&database),
                sql::Event::CreateDatabase { name, template, .. } => {
                    let from = template.unwrap_or_else(|| "template1".to_string());
                    let exts = self.dbs.get(&from).cloned().unwrap_or_default();
                    self.dbs.insert(name, exts);
                }
                sql::Event::CreateExtension { name, .. } => {
                    self.dbs
                        .entry(self.current.clone())
                        .or_default()
                        .insert(name);
                }
                sql::Event::RolePassword { .. } => {}
            }
        }
    }

    fn switch(&mut self, database: &str) {
        let template = self.dbs.get("template1").cloned().unwrap_or_default();
        self.dbs.entry(database.to_string()).or_insert(template);
        self.current = database.to_string();
    }

    /// The files of one init directory, in name order, as the official entrypoint runs them.
    fn files(&mut self, files: &BTreeMap<String, String>) {
        for (name, text) in files {
            if name.ends_with(".sql") {
                let db = self.default_db.clone();
                self.sql(text, &db);
            } else if name.ends_with(".sh") {
                for input in shell::psql_inputs(&shell::parse(text)) {
                    let db = match input.database {
                        Some(d) if !d.contains('$') => d,
                        _ => self.default_db.clone(),
                    };
                    self.sql(&input.sql, &db);
                }
            }
        }
    }

    fn created(&self, ext: &str) -> bool {
        self.dbs.values().any(|e| e.contains(ext))
    }

    /// Every extension created anywhere.
    fn all_created(&self) -> BTreeSet<&str> {
        self.dbs.values().flatten().map(String::as_str).collect()
    }

    /// Required and per-database extensions; findings at `path`, messages about `what`.
    fn check(&self, s: &Settings, path: &str, what: &str, v: &mut Verdict) {
        if self.incomplete {
            return;
        }
        let missing: Vec<&str> = s
            .required_extensions
            .iter()
            .filter(|e| !self.created(e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let list = missing.join(", ");
            v.push(
                path,
                format!(
                    "{what} never create the required extension(s) {list}; add CREATE EXTENSION IF NOT EXISTS for each"
                ),
            );
        }
        for (db, exts) in &s.per_database {
            let have = self.dbs.get(db);
            let missing: Vec<&str> = exts
                .iter()
                .filter(|e| !have.is_some_and(|h| h.contains(e.as_str())))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let list = missing.join(", ");
            let hint = if have.is_none() {
                format!(" (the scripts never create or connect to database {db})")
            } else {
                String::new()
            };
            v.push(
                path,
                format!(
                    "{what} do not create extension(s) {list} in database {db}{hint}; \\connect {db} and CREATE EXTENSION there"
                ),
            );
        }
    }

    /// The extensions an image has to provide: required, per-database and created.
    fn needed<'a>(&'a self, s: &'a Settings) -> BTreeSet<&'a str> {
        let mut needed: BTreeSet<&str> = s.required_extensions.iter().map(String::as_str).collect();
        needed.extend(s.per_database.values().flatten().map(String::as_str));
        needed.extend(self.all_created());
        needed
    }
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
    let env = |n: &str| {
        c.container
            .env
            .iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    let default_db = env("POSTGRES_DB")
        .or_else(|| env("POSTGRES_USER"))
        .unwrap_or_else(|| "postgres".to_string());
    let mut run = Run::new(&default_db);
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
    run.files(&files);
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
    let app_db = i.app_database();
    let mut run = Run::new(app_db);
    // CloudNativePG runs the inline queries, then the referenced ones, in this order.
    for cnpg::Phase {
        field,
        database: db,
        inline,
        refs,
    } in i.phases()
    {
        for stmt in inline.iter() {
            run.sql(stmt, db);
        }
        let Some(refs) = refs else { continue };
        for r in &refs.config_map_refs {
            match mounts::fetch_config_map(ctx, ns, &r.name).and_then(|d| d.get(&r.key).cloned()) {
                Some(text) => run.sql(&text, db),
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
        let mut run = Run::new("postgres");
        run.sql(
            "\\c template1\nCREATE EXTENSION pgcrypto;\nCREATE DATABASE a;\nCREATE DATABASE b TEMPLATE template0;\n\\c a\nCREATE EXTENSION postgis;",
            "postgres",
        );
        assert!(run.dbs["a"].contains("pgcrypto") && run.dbs["a"].contains("postgis"));
        assert!(run.dbs["b"].is_empty());
        assert!(run.dbs["postgres"].is_empty());
    }
}
