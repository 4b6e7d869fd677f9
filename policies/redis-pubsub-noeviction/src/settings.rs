//! Settings of `redis-pubsub-noeviction` (reference: the policy README).

use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::selector::Selector;
use stackguard_common::workload::LabelSelector;

/// The label that marks pub/sub instances by default.
pub const DEFAULT_ROLE_LABEL: (&str, &str) = ("stackguard.io/redis-role", "pubsub");

/// # Settings of redis-pubsub-noeviction
///
/// Which Redis instances are pub/sub instances, and how strictly their configuration is judged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// # Selector
    ///
    /// Label selector of the pub/sub instances (workload or pod-template labels, ConfigMap
    /// labels).
    pub selector: LabelSelector,
    /// # Require an explicit maxmemory-policy
    ///
    /// Reject an unset `maxmemory-policy` instead of accepting Redis' default with a warning.
    pub require_explicit_policy: bool,
    /// # Require no persistence
    ///
    /// Also require `appendonly no` and no save points.
    pub require_no_persistence: bool,
    /// # Check maxmemory against the memory limit
    ///
    /// Require `maxmemory` below the container's memory limit.
    pub check_maxmemory_against_limit: bool,
    /// # Image names
    ///
    /// Globs matched against the image's last path component without tag
    /// (`docker.io/library/redis:7.2` → `redis`, `valkey/valkey:8` → `valkey`); at least one.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "stackguard_common::schema::non_empty_strings")
    )]
    pub image_names: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            selector: LabelSelector {
                match_labels: [(
                    DEFAULT_ROLE_LABEL.0.to_string(),
                    DEFAULT_ROLE_LABEL.1.to_string(),
                )]
                .into(),
                match_expressions: Vec::new(),
            },
            require_explicit_policy: false,
            require_no_persistence: true,
            check_maxmemory_against_limit: true,
            image_names: ["redis", "redis-stack*", "valkey", "keydb"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Settings {
    pub fn selector(&self) -> Result<Selector, String> {
        Selector::from_api(&self.selector).map_err(|e| format!("selector: {e}"))
    }
}

impl SettingsTrait for Settings {
    fn validate(&self) -> Result<(), String> {
        self.selector()?;
        if self.image_names.is_empty() {
            return Err("imageNames: at least one image name pattern is needed".to_string());
        }
        if let Some(p) = self.image_names.iter().find(|p| p.trim().is_empty()) {
            return Err(format!("imageNames: empty pattern {p:?} is not allowed"));
        }
        Ok(())
    }
}
