//! `no-plaintext-secrets`: credentials live in Secrets, not in env values, command lines,
//! ConfigMap files or CRD fields, and the Secrets that hold them are not placeholders.
//!
//! Every message names the object, the container or key, and the kind of credential found; no
//! message ever contains the value (not even partly).

pub mod settings;

use serde::Deserialize;
use settings::{Compiled, Settings};
use stackguard_common::de::null_default;
use stackguard_common::secrets::{self, ValueForm};
use stackguard_common::workload::{EnvVar, WORKLOAD_KINDS, Workload};
use stackguard_common::{ClusterContext, Policy, Request, Verdict, glob, redisconf, shell, sql};
use std::collections::BTreeMap;

pub struct NoPlaintextSecrets;

/// Workload kinds, ConfigMaps, Secrets and CloudNativePG `Cluster`s.
pub const KINDS: &[&str] = stackguard_common::workload_kinds_and!("ConfigMap", "Secret", "Cluster");

impl Policy for NoPlaintextSecrets {
    const NAME: &'static str = "no-plaintext-secrets";
    const KINDS: &'static [&'static str] = KINDS;
    type Settings = Settings;

    fn evaluate(req: &Request<'_>, settings: &Settings, _ctx: &dyn ClusterContext) -> Verdict {
        let compiled = match settings.compiled() {
            Ok(c) => c,
            Err(e) => return Verdict::reject("", e),
        };
        let mut scan = Scan {
            settings,
            compiled: &compiled,
            verdict: Verdict::accept(),
        };
        let parsed = match req.kind {
            "ConfigMap" => req
                .object
                .parse::<ConfigMap>()
                .map(|cm| scan.config_map(&cm)),
            "Secret" => req.object.parse::<Secret>().map(|s| scan.secret(&s)),
            "Cluster" => req
                .object
                .parse::<CnpgCluster>()
                .map(|c| scan.cnpg_cluster(&c)),
            k if WORKLOAD_KINDS.contains(&k) => Workload::from_request(req).map(|w| {
                if let Some(w) = w {
                    scan.workload(&w)
                }
            }),
            _ => Ok(()),
        };
        if let Err(e) = parsed {
            return Verdict::reject("", e);
        }
        if !compiled.extra_paths.is_empty() {
            match req.object.to_value() {
                Ok(v) => scan.extra_paths(&v),
                Err(e) => scan.verdict.push("", e),
            }
        }
        scan.verdict
    }
}

#[derive(Deserialize)]
struct ConfigMap {
    #[serde(default, deserialize_with = "null_default")]
    data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Secret {
    #[serde(default, deserialize_with = "null_default")]
    data: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    string_data: BTreeMap<String, String>,
}

/// CloudNativePG `Cluster`: the fields that carry SQL or environment.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CnpgCluster {
    #[serde(default, deserialize_with = "null_default")]
    spec: CnpgSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CnpgSpec {
    #[serde(default, deserialize_with = "null_default")]
    env: Vec<EnvVar>,
    #[serde(default, deserialize_with = "null_default")]
    bootstrap: stackguard_common::cnpg::Bootstrap,
}

/// Shells whose `-c` argument is a script.
const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh", "ksh"];

struct Scan<'a> {
    settings: &'a Settings,
    compiled: &'a Compiled,
    verdict: Verdict,
}

/// What a text holds: URLs with a password, and well-known token formats.
struct Found {
    urls: Vec<secrets::UrlPassword>,
    tokens: Vec<&'static str>,
}

impl Found {
    fn in_text(text: &str) -> Found {
        Found {
            urls: secrets::url_passwords(text),
            tokens: secrets::token_kinds(text),
        }
    }

    fn is_empty(&self) -> bool {
        self.urls.is_empty() && self.tokens.is_empty()
    }
}

/// The environment of the container a string belongs to (to follow `$(VAR)` references).
type Env<'a> = &'a [EnvVar];

impl Scan<'_> {
    fn sensitive(&self, name: &str) -> bool {
        if self
            .settings
            .allowed_names
            .iter()
            .any(|p| glob::matches(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()))
        {
            return false;
        }
        secrets::is_sensitive_name(name)
            || self.compiled.name_patterns.iter().any(|r| r.is_match(name))
    }

    fn workload(&mut self, w: &Workload) {
        for c in w.containers() {
            let who = c.describe();
            self.env(&c.path, &who, &c.container.env);
            let argv: Vec<(String, &String)> = c
                .container
                .command
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{}.command[{i}]", c.path), s))
                .chain(
                    c.container
                        .args
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (format!("{}.args[{i}]", c.path), s)),
                )
                .collect();
            self.command_line(&argv, &who, &c.container.env);
        }
    }

    fn env(&mut self, base: &str, who: &str, env: Env<'_>) {
        for (i, var) in env.iter().enumerate() {
            let Some(value) = var.value.as_deref() else {
                continue;
            };
            let form = match self.sensitive(&var.name) {
                true => secrets::classify(value),
                false => ValueForm::NotSecret,
            };
            let found = Found::in_text(value);
            if found.is_empty() && matches!(form, ValueForm::Reference | ValueForm::NotSecret) {
                // Most variables: nothing to report, so no path or description is made.
                continue;
            }
            let path = format!("{base}.env[{i}].value");
            let what = format!("{who}: env {}", var.name);
            match form {
                ValueForm::Literal => self.verdict.push(
                    &path,
                    format!(
                        "{what} holds a plaintext password; reference a Secret with valueFrom.secretKeyRef"
                    ),
                ),
                ValueForm::KubeRef(r) => self.kube_ref(&path, &what, &r, env),
                ValueForm::Reference | ValueForm::NotSecret => {}
            }
            self.found(&path, &what, found, Some(env));
        }
    }

    /// A `$(VAR)` reference: fine when VAR comes from a Secret.
    fn kube_ref(&mut self, path: &str, what: &str, var: &str, env: Env<'_>) {
        let from_secret = env.iter().any(|e| {
            e.name == var
                && e.value_from
                    .as_ref()
                    .is_some_and(|f| f.secret_key_ref.is_some())
        });
        if !from_secret {
            self.verdict.push(
                path,
                format!(
                    "{what} takes its password from $({var}), which does not come from a Secret (valueFrom.secretKeyRef)"
                ),
            );
        }
    }

    /// URLs with passwords and well-known token formats anywhere in `text`.
    fn text(&mut self, path: &str, what: &str, text: &str, env: Option<Env<'_>>) {
        self.found(path, what, Found::in_text(text), env);
    }

    /// Report what [`Found::in_text`] found in the text at `path`.
    fn found(&mut self, path: &str, what: &str, found: Found, env: Option<Env<'_>>) {
        for u in found.urls {
            match (&u.form, env) {
                (ValueForm::Literal, _) | (ValueForm::KubeRef(_), None) => self.verdict.push(
                    path,
                    format!(
                        "{what} holds a {} URL with a plaintext password; take the password from a Secret",
                        u.scheme
                    ),
                ),
                (ValueForm::KubeRef(r), Some(env)) => {
                    self.kube_ref(path, &format!("{what}: {} URL", u.scheme), r, env)
                }
                _ => {}
            }
        }
        for kind in found.tokens {
            self.verdict.push(
                path,
                format!("{what} contains {kind}; store it in a Secret"),
            );
        }
    }

    /// A container's command line: password flags, and `sh -c` scripts.
    fn command_line(&mut self, argv: &[(String, &String)], who: &str, env: Env<'_>) {
        let words: Vec<String> = argv.iter().map(|(_, w)| (*w).clone()).collect();
        for f in secrets::flag_passwords(&words) {
            let path = argv
                .iter()
                .find(|(_, w)| w.starts_with(&f.flag))
                .map_or(String::new(), |(p, _)| p.clone());
            self.flag(&path, who, &f, Some(env));
        }
        let program = words
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or("");
        let script_at = SHELLS
            .contains(&program)
            .then(|| {
                words
                    .iter()
                    .position(|w| w.starts_with('-') && w.contains('c'))
            })
            .flatten()
            .map(|i| i + 1);
        for (i, (path, w)) in argv.iter().enumerate() {
            if Some(i) == script_at {
                self.script(path, who, w, Some(env));
            } else {
                self.text(path, &format!("{who}: argument"), w, Some(env));
            }
        }
    }

    fn flag(&mut self, path: &str, who: &str, f: &secrets::FlagPassword, env: Option<Env<'_>>) {
        match (&f.form, env) {
            (ValueForm::Literal, _) | (ValueForm::KubeRef(_), None) => self.verdict.push(
                path,
                format!(
                    "{who}: {} is given a plaintext password on the command line; read it from a Secret",
                    f.flag
                ),
            ),
            (ValueForm::KubeRef(r), Some(env)) => {
                self.kube_ref(path, &format!("{who}: flag {}", f.flag), r, env)
            }
            _ => {}
        }
    }

    /// A shell script: credential assignments (`PGPASSWORD=…`), password flags, psql SQL.
    fn script(&mut self, path: &str, who: &str, text: &str, env: Option<Env<'_>>) {
        let commands = shell::parse(text);
        for c in &commands {
            for (name, value) in &c.assignments {
                if self.sensitive(name)
                    && !value.expands()
                    && secrets::classify(&value.text) == ValueForm::Literal
                {
                    self.verdict.push(
                        path,
                        format!(
                            "{who}: script line {} sets {name} to a plaintext password; take it from a Secret",
                            c.line
                        ),
                    );
                }
            }
            let argv: Vec<String> = c.words.iter().map(|w| w.text.clone()).collect();
            for f in secrets::flag_passwords(&argv) {
                self.flag(path, &format!("{who}: script line {}", c.line), &f, env);
            }
        }
        for call in shell::psql_calls(&commands, &BTreeMap::new()) {
            for (text, line) in call.sql() {
                self.sql_events(
                    path,
                    &format!("{who}: psql input at script line {line}"),
                    sql::scan_shell(text),
                );
            }
        }
        self.text(path, &format!("{who}: script"), text, env);
    }

    /// SQL: roles created or altered with a plaintext password.
    fn sql(&mut self, path: &str, what: &str, text: &str) {
        self.sql_events(path, what, sql::scan(text));
    }

    fn sql_events(&mut self, path: &str, what: &str, events: Vec<sql::Event>) {
        for e in events {
            if let sql::Event::RolePassword {
                role,
                password: sql::PasswordValue::Plain(_),
                line,
            } = e
            {
                self.verdict.push(
                    path,
                    format!(
                        "{what}: SQL line {line} gives role '{role}' a plaintext PASSWORD; use a psql variable (:'{role}_password') fed from a Secret, or a SCRAM verifier"
                    ),
                );
            }
        }
    }

    fn config_map(&mut self, cm: &ConfigMap) {
        for (key, value) in &cm.data {
            let path = format!("data.{key}");
            let what = format!("key {key}");
            let lower = key.to_ascii_lowercase();
            if !value.contains('\n') && self.sensitive(key) {
                if secrets::classify(value) == ValueForm::Literal {
                    self.verdict.push(
                        &path,
                        format!("{what} holds a plaintext password; move it to a Secret"),
                    );
                }
            } else if lower.ends_with(".sql") {
                self.sql(&path, &what, value);
            } else if lower.ends_with(".sh") {
                self.script(&path, &what, value, None);
                continue;
            } else {
                if lower.ends_with(".conf") {
                    self.redis_conf(&path, &what, value);
                }
                for (line, k, v) in secrets::key_value_lines(value) {
                    if self.sensitive(k) && secrets::classify(v) == ValueForm::Literal {
                        self.verdict.push(
                            &path,
                            format!(
                                "{what} line {line}: {k} holds a plaintext password; move it to a Secret"
                            ),
                        );
                    }
                }
            }
            for (n, line) in value.lines().enumerate() {
                let at = if value.contains('\n') {
                    format!("{what} line {}", n + 1)
                } else {
                    what.clone()
                };
                self.text(&path, &at, line, None);
            }
        }
    }

    /// redis.conf: `requirepass`/`masterauth` with a value and ACL `user` rules with
    /// `>password` (every line counts, even one a later line overrides).
    fn redis_conf(&mut self, path: &str, what: &str, text: &str) {
        for (n, line) in text.lines().enumerate() {
            let Ok(args) = redisconf::split_args(line.trim()) else {
                continue;
            };
            let Some((name, rest)) = args.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            let plaintext = match name.as_str() {
                "requirepass" | "masterauth" => rest.first().is_some_and(|a| !a.is_empty()),
                "user" => rest.iter().any(|r| r.len() > 1 && r.starts_with('>')),
                _ => false,
            };
            if plaintext {
                self.verdict.push(
                    path,
                    format!(
                        "{what} line {}: {name} holds a plaintext password; mount redis.conf from a Secret or pass it from one",
                        n + 1
                    ),
                );
            }
        }
    }

    fn secret(&mut self, s: &Secret) {
        if !self.settings.reject_weak_secret_values {
            return;
        }
        let decoded = s.data.iter().map(|(k, v)| {
            (
                format!("data.{k}"),
                k,
                secrets::decode_base64(v).map(|b| String::from_utf8_lossy(&b).into_owned()),
            )
        });
        let plain = s
            .string_data
            .iter()
            .map(|(k, v)| (format!("stringData.{k}"), k, Some(v.clone())));
        for (path, key, value) in decoded.chain(plain).collect::<Vec<_>>() {
            if !self.sensitive(key) {
                continue;
            }
            match value {
                None => self.verdict.push(&path, "is not valid base64"),
                Some(v) => {
                    if let Some(why) = secrets::weakness(
                        &v,
                        self.settings.min_secret_length,
                        &self.settings.weak_values,
                    ) {
                        let why = if why == "too short" {
                            format!(
                                "too short (fewer than {} characters)",
                                self.settings.min_secret_length
                            )
                        } else {
                            why.to_string()
                        };
                        self.verdict.push(
                            &path,
                            format!("the password under key {key} is weak: {why}"),
                        );
                    }
                }
            }
        }
    }

    fn cnpg_cluster(&mut self, c: &CnpgCluster) {
        self.env("spec", "cluster", &c.spec.env);
        let Some(initdb) = &c.spec.bootstrap.initdb else {
            return;
        };
        for phase in initdb.phases() {
            let field = phase.field;
            for (i, stmt) in phase.inline.iter().enumerate() {
                let path = format!("spec.bootstrap.initdb.{field}[{i}]");
                self.sql(&path, field, stmt);
                self.text(&path, field, stmt, None);
            }
        }
    }

    fn extra_paths(&mut self, object: &serde_json::Value) {
        let compiled = self.compiled;
        // Each node is read once, however many selected nodes hold it (`$..*` selects a node
        // and every ancestor of it).
        let mut seen = std::collections::HashSet::new();
        for (text, query) in &compiled.extra_paths {
            let found = match query.select(object) {
                Ok(found) => found,
                Err(e) => {
                    self.verdict.warn(format!(
                        "extraPaths {text}: {e}; its fields were not scanned"
                    ));
                    continue;
                }
            };
            for (found_path, found) in found {
                let mut strings = Vec::new();
                collect_strings(found, &found_path, &mut seen, &mut strings);
                for (path, s) in strings {
                    self.text(&path, &format!("field {path}"), s, None);
                    for (line, k, v) in secrets::key_value_lines(s) {
                        if self.sensitive(k) && secrets::classify(v) == ValueForm::Literal {
                            self.verdict.push(
                                &path,
                                format!("line {line}: {k} holds a plaintext password; move it to a Secret"),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Every string in `v` (recursively), with a JSONPath-like location; nodes in `seen` (read
/// before) are skipped.
fn collect_strings<'a>(
    v: &'a serde_json::Value,
    path: &str,
    seen: &mut std::collections::HashSet<*const serde_json::Value>,
    out: &mut Vec<(String, &'a str)>,
) {
    if !seen.insert(v) {
        return;
    }
    match v {
        serde_json::Value::String(s) => out.push((path.to_string(), s)),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_strings(x, &format!("{path}[{i}]"), seen, out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                collect_strings(x, &format!("{path}['{k}']"), seen, out);
            }
        }
        _ => {}
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    stackguard_common::guest::register::<NoPlaintextSecrets>();
}

#[cfg(test)]
mod tests {
    use super::KINDS;

    /// The extraPaths evaluator agrees with jsonpath-rust (the reference implementation) on
    /// every query form it supports.
    #[test]
    fn extra_paths_match_jsonpath_rust() {
        let object = serde_json::json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "pg", "annotations": {"a.example/x": "1", "it's": "2"}},
            "spec": {
                "instances": 3,
                "bootstrap": {"initdb": {"postInitSQL": ["CREATE ROLE a", "SELECT 1", "x"]}},
                "externalClusters": [
                    {"name": "one", "connectionParameters": {"host": "h1", "user": "u"}},
                    {"name": "two", "connectionParameters": {"host": "h2"}}
                ]
            }
        });
        let queries = [
            "$.metadata.annotations",
            "$.metadata.annotations.*",
            "$['metadata']['annotations']['it\\'s']",
            "$.spec.bootstrap.initdb.postInitSQL[*]",
            "$.spec.bootstrap.initdb.postInitSQL[1]",
            "$.spec.bootstrap.initdb.postInitSQL[-1]",
            "$.spec.bootstrap.initdb.postInitSQL[0:2]",
            "$.spec.bootstrap.initdb.postInitSQL[::-1]",
            "$.spec.externalClusters[*].connectionParameters",
            "$.spec.externalClusters[0,1].name",
            "$..host",
            "$..connectionParameters.*",
            "$..[0]",
            "$.spec.missing",
            "$",
        ];
        for q in queries {
            let mut ours: Vec<(String, serde_json::Value)> =
                stackguard_common::jsonpath::Query::parse(q)
                    .unwrap_or_else(|e| panic!("{q}: {e}"))
                    .select(&object)
                    .unwrap()
                    .into_iter()
                    .map(|(p, v)| (p, v.clone()))
                    .collect();
            let parsed = jsonpath_rust::parser::parse_json_path(q)
                .unwrap_or_else(|e| panic!("jsonpath-rust rejects {q}: {e}"));
            let mut theirs: Vec<(String, serde_json::Value)> =
                jsonpath_rust::query::js_path_process(&parsed, &object)
                    .unwrap_or_else(|e| panic!("jsonpath-rust fails on {q}: {e}"))
                    .into_iter()
                    .map(|r| (r.path.clone(), r.val.clone()))
                    .collect();
            ours.sort_by(|a, b| a.0.cmp(&b.0));
            theirs.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(ours, theirs, "{q}");
        }
    }

    #[test]
    fn kinds_cover_every_workload_kind() {
        for k in stackguard_common::workload::WORKLOAD_KINDS {
            assert!(KINDS.contains(k), "{k}");
        }
    }
}
