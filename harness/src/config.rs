//! `.stackguard.yaml`: per-policy settings, disabled policies, path excludes and exemptions.
//!
//! ```yaml
//! policies:
//!   run-as-non-root:
//!     enabled: true
//!     settings: {exemptImages: ["registry.k8s.io/pause:*"]}
//! exclude: ["vendor/*"]
//! exemptions:
//!   - {policy: run-as-non-root, kind: DaemonSet, namespace: kube-system, name: "node-*"}
//! ```
//!
//! Unknown keys are errors. Settings are validated by each policy itself when the engine is
//! built. Exemptions live only here: an object can never exempt itself.

use crate::manifest::Object;
use crate::yaml;
use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The file `check` reads by default, from the current directory.
pub const DEFAULT_FILE: &str = ".stackguard.yaml";

/// `.stackguard.yaml`: per-policy settings, disabled policies, path excludes and exemptions.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Per policy, by name: whether it runs and its settings.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Globs (`*`, `?`) over paths as given on the command line; a match skips the file or
    /// the whole directory.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Objects a policy skips (exemptions live only here: an object can never exempt itself).
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
    /// Where the config came from, for messages.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The policy's settings, exactly as policy-server would pass them.
    #[serde(default)]
    pub settings: Value,
}

fn enabled() -> bool {
    true
}

/// Skip `policy` (a glob; `*` for every policy) for objects matching every given field (globs).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// The policy (a glob; `*`: every policy).
    pub policy: String,
    /// The object's kind (a glob; absent: any).
    #[serde(default)]
    pub kind: Option<String>,
    /// The object's namespace (a glob; absent: any).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The object's name (a glob; absent: any).
    #[serde(default)]
    pub name: Option<String>,
}

impl Exemption {
    fn covers(&self, policy: &str, object: &Object) -> bool {
        let m = |pat: &Option<String>, v: &str| {
            pat.as_deref()
                .is_none_or(|p| stackguard_common::glob::matches(p, v))
        };
        stackguard_common::glob::matches(&self.policy, policy)
            && m(&self.kind, object.kind())
            && m(&self.namespace, object.namespace())
            && m(&self.name, object.name())
    }
}

impl Config {
    /// Read a config file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Config> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| anyhow!("{origin}: cannot read: {e}"))?;
        let text = crate::manifest::decode(&bytes).map_err(|(_, m)| anyhow!("{origin}: {m}"))?;
        Config::parse(&text, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let stream = yaml::parse_stream(text);
        if let Some(e) = stream.errors.first() {
            return Err(anyhow!("{origin}:{}: invalid YAML: {}", e.line, e.message));
        }
        let Some(doc) = stream.documents.into_iter().find(|d| !d.value.is_null()) else {
            return Ok(Config {
                origin: origin.to_string(),
                ..Default::default()
            });
        };
        let mut config: Config = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
            let path = e.path().to_string();
            let lines = yaml::locate_paths(text, &[doc.index]);
            let line = lines
                .get(&doc.index)
                .and_then(|l| yaml::line_of(l, &path))
                .unwrap_or(doc.line);
            let reason = stackguard_common::de::describe_error(&path, e.inner());
            anyhow!("{origin}:{line}: {reason}")
        })?;
        config.origin = origin.to_string();
        Ok(config)
    }

    /// The config's file name for messages (`config` for the built-in defaults).
    pub fn origin_name(&self) -> &str {
        if self.origin.is_empty() {
            "config"
        } else {
            &self.origin
        }
    }

    /// Is `policy` enabled (policies not mentioned are)?
    pub fn enabled(&self, policy: &str) -> bool {
        self.policies.get(policy).is_none_or(|p| p.enabled)
    }

    /// The settings for `policy` (`None`: the policy's defaults).
    pub fn settings(&self, policy: &str) -> Option<&Value> {
        self.policies
            .get(policy)
            .map(|p| &p.settings)
            .filter(|v| !v.is_null())
    }

    /// Does an exemption skip `policy` for `object`?
    pub fn exempt(&self, policy: &str, object: &Object) -> bool {
        self.exemptions.iter().any(|e| e.covers(policy, object))
    }

    /// Every policy the config names must exist.
    pub fn check_names(&self, known: &[&str]) -> Result<()> {
        for name in self.policies.keys() {
            if !known.contains(&name.as_str()) {
                return Err(anyhow!(
                    "{}: policies.{name}: unknown policy (known: {})",
                    self.origin_name(),
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let e = Config::parse(
            "policies:\n  p:\n    enabled: true\n    bogus: 1\n",
            "c.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml:4:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e = Config::parse("exclud: []\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exclud"), "{e}");
    }

    #[test]
    fn exemptions_and_enabled() {
        let c = Config::parse(
            "policies: {a: {enabled: false}}\nexemptions:\n- {policy: b, kind: Deployment, name: 'x-*'}\n",
            "c",
        )
        .unwrap();
        assert!(!c.enabled("a"));
        assert!(c.enabled("b"));
        let obj = |name: &str| Object {
            file: 0,
            doc: 0,
            prefix: String::new(),
            line: 1,
            value: serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}}),
        };
        assert!(c.exempt("b", &obj("x-1")));
        assert!(!c.exempt("b", &obj("y")));
        assert!(!c.exempt("a", &obj("x-1")));
    }
}
