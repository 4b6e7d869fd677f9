//! Settings of `run-as-non-root` (reference: the policy README).

use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::glob;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Insist on `runAsNonRoot: true` itself, as Pod Security Standards `restricted` does.
    pub require_run_as_non_root: bool,
    /// Require `allowPrivilegeEscalation: false`.
    pub disallow_privilege_escalation: bool,
    /// Reject `privileged: true`.
    pub disallow_privileged: bool,
    /// Require `capabilities.drop` to contain `ALL`.
    pub require_drop_all_capabilities: bool,
    /// Require `readOnlyRootFilesystem: true`.
    pub require_read_only_root_filesystem: bool,
    /// Images (globs) exempt from every check.
    pub exempt_images: Vec<String>,
    /// Fill in the missing `runAsNonRoot`, `allowPrivilegeEscalation` and `capabilities.drop`
    /// instead of rejecting (a mutating policy; off: validation only).
    pub mutate: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            require_run_as_non_root: false,
            disallow_privilege_escalation: true,
            disallow_privileged: true,
            require_drop_all_capabilities: true,
            require_read_only_root_filesystem: false,
            exempt_images: Vec::new(),
            mutate: false,
        }
    }
}

impl SettingsTrait for Settings {
    fn validate(&self) -> Result<(), String> {
        glob::validate_patterns("exemptImages", &self.exempt_images)
    }
}
