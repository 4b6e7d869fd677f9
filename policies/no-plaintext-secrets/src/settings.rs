//! Settings of `no-plaintext-secrets` (reference: the policy README).
//!
//! User regexes and JSONPath expressions are compiled once per module instance: policy-server
//! sends the same settings with every request, so the compiled form is cached by its source.

use regex_lite::Regex;
use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::jsonpath::Query;
use std::sync::{Arc, Mutex};

/// # Settings of no-plaintext-secrets
///
/// Extra sensitive names, exceptions, weak-value rules and extra fields to scan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// # Sensitive name patterns
    ///
    /// Extra regexes (`regex-lite` syntax, matched case-insensitively against the whole name)
    /// that make a name sensitive, in addition to the built-in word rules, e.g. `[".*_pin"]`.
    pub sensitive_name_patterns: Vec<String>,
    /// # Allowed names
    ///
    /// Globs (case-insensitive) of names never treated as sensitive, e.g.
    /// `["*_TOKEN_AUDIENCE"]`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "stackguard_common::schema::non_blank_strings")
    )]
    pub allowed_names: Vec<String>,
    /// # Reject weak Secret values
    ///
    /// Judge the values under password-like keys of Secrets: weak or placeholder values are
    /// rejected.
    pub reject_weak_secret_values: bool,
    /// # Minimum Secret length
    ///
    /// Shorter Secret passwords are weak (at most 1024).
    #[cfg_attr(
        feature = "schema",
        schemars(range(max = 1024), extend("x-show-if" = "rejectWeakSecretValues=true"))
    )]
    pub min_secret_length: usize,
    /// # Weak values
    ///
    /// More weak values, in addition to the built-in list, compared ignoring case, `_`, `-`
    /// and spaces.
    #[cfg_attr(
        feature = "schema",
        schemars(extend("x-show-if" = "rejectWeakSecretValues=true"))
    )]
    pub weak_values: Vec<String>,
    /// # Extra paths
    ///
    /// JSONPath expressions (RFC 9535) selecting more strings to scan in every object the
    /// policy sees, e.g. `["$.metadata.annotations"]`. Supported: `$`, `.name`, `['name']`,
    /// `.*`/`[*]`, `[i]` (negative from the end), `[start:end:step]`, comma lists, `..`
    /// descendants; filter selectors (`[?…]`) are rejected.
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
