//! Settings of `pod-anti-affinity` (reference: the policy README).

use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;

/// # Settings of pod-anti-affinity
///
/// From which replica count workloads must spread, and what counts as spreading.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// # Minimum replicas
    ///
    /// Workloads with at least this many replicas must spread their pods (an unset `replicas`
    /// means 1).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub min_replicas: i64,
    /// # Topology keys
    ///
    /// Topology keys a `podAntiAffinity` term or a `topologySpreadConstraints` entry may use;
    /// at least one, none empty.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "stackguard_common::schema::non_empty_strings")
    )]
    pub topology_keys: Vec<String>,
    /// # Require hard anti-affinity
    ///
    /// Only `requiredDuringSchedulingIgnoredDuringExecution` terms (and `DoNotSchedule` spread
    /// constraints) count.
    pub require_hard: bool,
    /// # Accept topology spread constraints
    ///
    /// A matching `topologySpreadConstraints` entry counts as spreading.
    pub accept_topology_spread_constraints: bool,
    /// # Default topology key
    ///
    /// Topology key of the preferred term mutation adds; with `mutate: true` it must be one of
    /// `topologyKeys`.
    pub default_topology_key: String,
    /// # Mutate
    ///
    /// Add a preferred anti-affinity term (weight 100, the pod template's own labels) instead of
    /// rejecting (a mutating policy); `false`: validation only, exactly as without the setting.
    pub mutate: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_replicas: 2,
            topology_keys: vec![
                "kubernetes.io/hostname".to_string(),
                "topology.kubernetes.io/zone".to_string(),
            ],
            require_hard: false,
            accept_topology_spread_constraints: true,
            default_topology_key: "kubernetes.io/hostname".to_string(),
            mutate: false,
        }
    }
}

impl SettingsTrait for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.min_replicas < 1 {
            return Err(format!(
                "minReplicas must be at least 1, not {}",
                self.min_replicas
            ));
        }
        if self.topology_keys.is_empty() {
            return Err(
                "topologyKeys must list at least one topology key: with none, no workload could comply"
                    .to_string(),
            );
        }
        if self.topology_keys.iter().any(|k| k.trim().is_empty()) {
            return Err("topologyKeys: an empty topology key is not allowed".to_string());
        }
        if self.mutate {
            if self.require_hard {
                return Err(
                    "mutate: true adds a preferred term, which does not count with requireHard: true"
                        .to_string(),
                );
            }
            if !self.topology_keys.contains(&self.default_topology_key) {
                return Err(format!(
                    "defaultTopologyKey {:?} is not one of topologyKeys ({}): the term mutation \
                     adds would not count",
                    self.default_topology_key,
                    self.topology_keys.join(", ")
                ));
            }
        }
        Ok(())
    }
}
