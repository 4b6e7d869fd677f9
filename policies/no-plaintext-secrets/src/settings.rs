//! Settings of `no-plaintext-secrets` (reference: the policy README).
//!
//! User regexes and JSONPath expressions are compiled once per module instance: policy-server
//! sends the same settings with every request, so the compiled form is cached by its source.

use regex_lite::Regex;
use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::jsonpath::Query;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Extra regexes (matched case-insensitively against the whole name) that make a name
    /// sensitive, in addition to the built-in word rules.
    pub sensitive_name_patterns: Vec<String>,
    /// Names (globs, case-insensitive) never treated as sensitive.
    pub allowed_names: Vec<String>,
    /// Reject weak or placeholder values under password-like keys of Secrets.
    pub reject_weak_secret_values: bool,
    /// Shorter Secret passwords are weak.
    pub min_secret_length: usize,
    /// More weak values, in addition to the built-in list.
    pub weak_values: Vec<String>,
    /// JSONPath expressions selecting more strings to scan (e.g. fields of a CRD).
    pub extra_paths: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sensitive_name_patterns: Vec::new(),
            allowed_names: Vec::new(),
            reject_weak_secret_values: true,
            min_secret_length: 12,
            weak_values: Vec::new(),
            extra_paths: Vec::new(),
        }
    }
}

/// The compiled forms of the settings' patterns.
pub struct Compiled {
    sources: (Vec<String>, Vec<String>),
    pub name_patterns: Vec<Regex>,
    pub extra_paths: Vec<(String, Query)>,
}

impl Settings {
    /// Compile (or fetch from the cache) the name patterns and JSONPath expressions.
    pub fn compiled(&self) -> Result<Arc<Compiled>, String> {
        static CACHE: Mutex<Option<Arc<Compiled>>> = Mutex::new(None);
        let sources = (
            self.sensitive_name_patterns.clone(),
            self.extra_paths.clone(),
        );
        if let Ok(guard) = CACHE.lock()
            && let Some(c) = guard.as_ref()
            && c.sources == sources
        {
            return Ok(c.clone());
        }
        let name_patterns = self
            .sensitive_name_patterns
            .iter()
            .map(|p| {
                Regex::new(&format!("(?i)^(?:{p})$"))
                    .map_err(|e| format!("sensitiveNamePatterns: invalid regex {p:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let extra_paths = self
            .extra_paths
            .iter()
            .map(|p| {
                Query::parse(p)
                    .map(|q| (p.clone(), q))
                    .map_err(|e| format!("extraPaths: invalid JSONPath {p:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let compiled = Arc::new(Compiled {
            sources,
            name_patterns,
            extra_paths,
        });
        if let Ok(mut guard) = CACHE.lock() {
            *guard = Some(compiled.clone());
        }
        Ok(compiled)
    }
}

impl SettingsTrait for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.min_secret_length > 1024 {
            return Err(format!(
                "minSecretLength: {} is not a sensible minimum (at most 1024)",
                self.min_secret_length
            ));
        }
        if let Some(p) = self.allowed_names.iter().find(|p| p.trim().is_empty()) {
            return Err(format!("allowedNames: empty name {p:?} is not allowed"));
        }
        self.compiled().map(|_| ())
    }
}
