//! Settings of `run-as-non-root` (reference: the policy README).

use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::glob;

/// # Settings of run-as-non-root
///
/// Which of the container security checks apply, and which images are exempt.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// # Require runAsNonRoot
    ///
    /// Insist on `runAsNonRoot: true` itself, as Pod Security Standards `restricted` does; a
    /// `runAsUser` above 0 alone no longer suffices.
    pub require_run_as_non_root: bool,
    /// # Disallow privilege escalation
    ///
    /// Require `allowPrivilegeEscalation: false` on every container.
    pub disallow_privilege_escalation: bool,
    /// # Disallow privileged containers
    ///
    /// Reject `privileged: true`.
    pub disallow_privileged: bool,
    /// # Require dropping all capabilities
    ///
    /// Require `ALL` in `capabilities.drop`.
    pub require_drop_all_capabilities: bool,
    /// # Require a read-only root filesystem
    ///
    /// Require `readOnlyRootFilesystem: true`.
    pub require_read_only_root_filesystem: bool,
    /// # Exempt images
    ///
    /// Containers whose image matches one of these globs (`*`, `?`) are skipped by every check.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "stackguard_common::schema::globs")
    )]
    pub exempt_images: Vec<String>,
    /// # Mutate
    ///
    /// Fill in the missing `runAsNonRoot`, `allowPrivilegeEscalation` and `capabilities.drop`
    /// instead of rejecting (a mutating policy); `false`: validation only, exactly as without
    /// the setting. Explicit violations are never rewritten.
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
