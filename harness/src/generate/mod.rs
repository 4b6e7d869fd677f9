//! `stackguard generate`: the files derived from the one definition of each policy's settings
//! (`policies/<name>/src/settings.rs`: the struct, its doc comments and its `Default`), from
//! `metadata.yml` and from Cargo's version:
//!
//! - `policies/<name>/settings.schema.json` (JSON Schema, draft-07)
//! - `policies/<name>/questions-ui.yml` (the Rancher UI form)
//! - the settings table of `policies/<name>/README.md` (between markers)
//! - `policies/<name>/artifacthub-pkg.yml` (as `kwctl scaffold artifacthub` writes it)
//! - `harness/stackguard.schema.json` (`.stackguard.yaml`)
//!
//! `--check` (run by the test suite) fails when any of them is stale, or when a version
//! reference disagrees with Cargo's version.

pub mod artifacthub;
pub mod questions;
pub mod readme;
pub mod schema;
pub mod versions;
mod yaml;

use crate::metadata::Metadata;
use crate::policies::{ALL, Entry};
use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use std::path::Path;

pub type Result<T> = anyhow::Result<T>;

/// The workspace version (Cargo), which every policy and module carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One generated file, its path relative to the repository root.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub path: String,
    pub content: String,
}

/// One top-level setting, in declaration order.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The JSON name (`minReplicas`).
    pub name: String,
    /// A short label: the doc comment's `# heading`, else made from the name.
    pub label: String,
    pub schema: Value,
    /// What `Settings::default()` gives.
    pub default: Value,
}

/// The properties of an object schema: those listed in `x-order` first, in that order, then the
/// others alphabetically.
pub fn properties(schema: &Value) -> Result<Vec<(String, Value)>> {
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("not an object schema with properties"))?;
    let order: Vec<&str> = schema
        .get("x-order")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out: Vec<(String, Value)> = order
        .iter()
        .filter_map(|k| props.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    out.extend(
        props
            .iter()
            .filter(|(k, _)| !order.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(out)
}

/// The top-level settings of a settings schema; every one must be documented.
pub fn settings(schema: &Value) -> Result<Vec<Setting>> {
    properties(schema)?
        .into_iter()
        .map(|(name, s)| {
            if s.get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                bail!(
                    "setting `{name}` has no doc comment: document it in src/settings.rs \
                     (`/// # Label`, a blank line, then what it does)"
                );
            }
            Ok(Setting {
                label: label(&name, &s),
                default: s.get("default").cloned().unwrap_or(Value::Null),
                name,
                schema: s,
            })
        })
        .collect()
}

/// The schema's `title`, else the name in words: `minReplicas` → `Min replicas`.
pub fn label(name: &str, schema: &Value) -> String {
    if let Some(t) = schema.get("title").and_then(Value::as_str) {
        return t.to_string();
    }
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The type of a list's items.
pub fn kind_of_items(items: &Value) -> &str {
    questions::kind(items)
}

/// Every generated file, from the sources under `root`.
pub fn outputs(root: &Path) -> Result<Vec<Output>> {
    let created = versions::release_date(root)?;
    let mut out = Vec::new();
    let mut schemas = Vec::new();
    for entry in ALL {
        let schema = (entry.schema)();
        let dir = format!("policies/{}", entry.name);
        let meta = metadata(root, entry)?;
        let description = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("io.kubewarden.policy.description"))
            .ok_or_else(|| anyhow!("{dir}/metadata.yml: no io.kubewarden.policy.description"))?;
        let context = |e: anyhow::Error| e.context(format!("{dir}/src/settings.rs"));
        let questions = questions::render(description, &schema).map_err(context)?;
        let readme_path = format!("{dir}/README.md");
        let readme = read(root, &readme_path)?;
        out.push(Output {
            path: schema::settings_path(entry.name),
            content: pretty(&schema::published(
                &schema,
                &schema::raw_url(&schema::settings_path(entry.name)),
            )),
        });
        out.push(Output {
            content: readme::render(&readme, &schema)
                .map_err(context)
                .with_context(|| readme_path.clone())?,
            path: readme_path,
        });
        out.push(Output {
            path: artifacthub::path(entry.name),
            content: artifacthub::render(entry.name, &meta, &questions, &created)
                .with_context(|| format!("{dir}/metadata.yml"))?,
        });
        out.push(Output {
            path: questions::path(entry.name),
            content: questions,
        });
        schemas.push((entry, schema));
    }
    out.push(Output {
        path: schema::CONFIG_PATH.to_string(),
        content: pretty(&schema::config_schema(&schemas)?),
    });
    Ok(out)
}

/// A policy's `metadata.yml` as it is on disk.
pub fn metadata(root: &Path, entry: &Entry) -> Result<Metadata> {
    let path = format!("policies/{}/metadata.yml", entry.name);
    Metadata::from_yaml(&read(root, &path)?, &path)
}

fn read(root: &Path, path: &str) -> Result<String> {
    std::fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The outputs whose file differs from what is generated (or is missing).
pub fn stale(root: &Path, outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter(|o| std::fs::read_to_string(root.join(&o.path)).ok().as_deref() != Some(&o.content))
        .map(|o| o.path.clone())
        .collect()
}

/// Write the stale outputs; returns their paths.
pub fn write(root: &Path, outputs: &[Output]) -> Result<Vec<String>> {
    let changed = stale(root, outputs);
    for o in outputs.iter().filter(|o| changed.contains(&o.path)) {
        std::fs::write(root.join(&o.path), &o.content)
            .with_context(|| format!("writing {}", o.path))?;
    }
    Ok(changed)
}
