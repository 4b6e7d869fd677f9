//! Settings of `resource-limits` (reference: the policy README).

use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::glob;
use stackguard_common::quantity::Spelled;

/// # Settings of resource-limits
///
/// Which requests and limits every container must declare, and the bounds they must respect.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// # Require a CPU request
    ///
    /// Require `resources.requests.cpu`.
    pub require_cpu_request: bool,
    /// # Require a memory request
    ///
    /// Require `resources.requests.memory`.
    pub require_memory_request: bool,
    /// # Require a CPU limit
    ///
    /// Require `resources.limits.cpu`.
    pub require_cpu_limit: bool,
    /// # Require a memory limit
    ///
    /// Require `resources.limits.memory`.
    pub require_memory_limit: bool,
    /// # Maximum limits
    ///
    /// Declared limits may not exceed these quantities (each must be above zero).
    pub max_limits: Bounds,
    /// # Minimum requests
    ///
    /// Declared requests may not be below these quantities (none negative, none above the
    /// matching `maxLimits`).
    pub min_requests: Bounds,
    /// # Exempt images
    ///
    /// Containers whose image matches one of these globs (`*`, `?`) are skipped.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "stackguard_common::schema::globs")
    )]
    pub exempt_images: Vec<String>,
    /// # Default requests
    ///
    /// Requests filled in where a required request is missing (with `mutate: true`); never above
    /// the container's own limit, and within `minRequests`…`defaultLimits`.
    pub default_requests: Bounds,
    /// # Default limits
    ///
    /// Limits filled in where a required limit is missing (with `mutate: true`); above zero,
    /// within `defaultRequests`…`maxLimits`.
    pub default_limits: Bounds,
    /// # Mutate
    ///
    /// Fill in missing requests and limits from the defaults instead of rejecting (a mutating
    /// policy); `false`: validation only, exactly as without the setting.
    pub mutate: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            require_cpu_request: true,
            require_memory_request: true,
            require_cpu_limit: true,
            require_memory_limit: true,
            max_limits: Bounds::default(),
            min_requests: Bounds::default(),
            exempt_images: Vec::new(),
            default_requests: Bounds::default(),
            default_limits: Bounds::default(),
            mutate: false,
        }
    }
}

/// `cpu` and `memory` quantities, either optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// # CPU
    ///
    /// A CPU quantity, e.g. `500m` or `2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Spelled>,
    /// # Memory
    ///
    /// A memory quantity, e.g. `512Mi` or `2Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Spelled>,
}

impl Bounds {
    pub fn get(&self, resource: &str) -> Option<&Spelled> {
        match resource {
            "cpu" => self.cpu.as_ref(),
            "memory" => self.memory.as_ref(),
            _ => None,
        }
    }
}

impl SettingsTrait for Settings {
    fn validate(&self) -> Result<(), String> {
        for resource in ["cpu", "memory"] {
            let max = self.max_limits.get(resource);
            let min = self.min_requests.get(resource);
            if let Some(max) = max
                && max.value.nanos() <= 0
            {
                return Err(format!(
                    "maxLimits.{resource} must be above zero, not {max}"
                ));
            }
            if let Some(min) = min
                && min.value.is_negative()
            {
                return Err(format!(
                    "minRequests.{resource} must not be negative, not {min}"
                ));
            }
            if let (Some(max), Some(min)) = (max, min)
                && max.value < min.value
            {
                return Err(format!(
                    "maxLimits.{resource} ({max}) is below minRequests.{resource} ({min}): \
                     no container could satisfy both"
                ));
            }
        }
        self.validate_defaults()?;
        glob::validate_patterns("exemptImages", &self.exempt_images)
    }
}

impl Settings {
    /// Defaults must be values a container could keep: a default request within
    /// `minRequests`…`maxLimits` and not above the default limit, a default limit above zero and
    /// within `minRequests`…`maxLimits`.
    fn validate_defaults(&self) -> Result<(), String> {
        for resource in ["cpu", "memory"] {
            let request = self.default_requests.get(resource);
            let limit = self.default_limits.get(resource);
            let min = self.min_requests.get(resource);
            let max = self.max_limits.get(resource);
            if let Some(r) = request
                && r.value.is_negative()
            {
                return Err(format!(
                    "defaultRequests.{resource} must not be negative, not {r}"
                ));
            }
            if let Some(l) = limit
                && l.value.nanos() <= 0
            {
                return Err(format!(
                    "defaultLimits.{resource} must be above zero, not {l}"
                ));
            }
            // Every pair of minRequests ≤ defaultRequests ≤ defaultLimits ≤ maxLimits.
            let chain = [
                ("minRequests", min),
                ("defaultRequests", request),
                ("defaultLimits", limit),
                ("maxLimits", max),
            ];
            for (i, (low_name, low)) in chain.iter().enumerate() {
                for (high_name, high) in &chain[i + 1..] {
                    if let (Some(low), Some(high)) = (low, high)
                        && low.value > high.value
                    {
                        return Err(format!(
                            "{low_name}.{resource} ({low}) is above {high_name}.{resource} \
                             ({high}): the settings must keep minRequests ≤ defaultRequests ≤ \
                             defaultLimits ≤ maxLimits"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
