//! Settings of `postgres-extensions` (reference: the policy README).

use serde::{Deserialize, Serialize};
use stackguard_common::Settings as SettingsTrait;
use stackguard_common::selector::Selector;
use stackguard_common::workload::LabelSelector;
use std::collections::BTreeMap;

/// The label that puts a Postgres instance (or its init ConfigMap) in scope by default.
pub const DEFAULT_GUARD_LABEL: (&str, &str) = ("stackguard.io/postgres-init", "true");

/// Images known to ship an extension (globs against the image repository or the full reference).
pub fn default_extension_images() -> BTreeMap<String, Vec<String>> {
    let postgis = [
        "postgis/postgis",
        "*/postgis/postgis",
        "timescale/timescaledb-ha",
        "*/timescale/timescaledb-ha",
        "ghcr.io/cloudnative-pg/postgis",
        "bitnami/postgresql",
        "*/bitnami/postgresql",
    ];
    let timescaledb = [
        "timescale/timescaledb",
        "*/timescale/timescaledb",
        "timescale/timescaledb-ha",
        "*/timescale/timescaledb-ha",
        "ghcr.io/cloudnative-pg/timescaledb*",
    ];
    [
        ("postgis", &postgis[..]),
        ("postgis_topology", &postgis[..]),
        ("postgis_raster", &postgis[..]),
        ("timescaledb", &timescaledb[..]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
    .collect()
}

/// # Settings of postgres-extensions
///
/// Which instances are guarded, which extensions their init scripts must create and where, and
/// which images ship them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// # Required extensions
    ///
    /// Extensions the init scripts must create in some database.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::extensions"))]
    pub required_extensions: Vec<String>,
    /// # Selector
    ///
    /// Label selector of the guarded workloads (object or pod-template labels), init ConfigMaps
    /// and CloudNativePG Clusters.
    pub selector: LabelSelector,
    /// # Extensions per database
    ///
    /// Database → extensions that must be created in that database, e.g.
    /// `{sos_app_emergency: [postgis]}`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::per_database"))]
    pub per_database: BTreeMap<String, Vec<String>>,
    /// # Extension images
    ///
    /// Extension → image globs (matched against the repository, e.g. `postgis/postgis`, and
    /// the full reference) that ship it. An entry replaces the built-in list for that
    /// extension; extensions without an entry need no special image.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::extension_images"))]
    pub extension_images: BTreeMap<String, Vec<String>>,
}

/// Schemas of the settings that are specific to this policy.
#[cfg(feature = "schema")]
mod schema {
    use schemars::{Schema, SchemaGenerator, json_schema};

    /// An extension name: not empty, no whitespace.
    const EXTENSION: &str = r"^\S+$";

    pub fn extensions(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "array", "items": {"type": "string", "pattern": EXTENSION}})
    }

    pub fn per_database(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-yaml-only": true,
            "propertyNames": {"pattern": r"\S"},
            "additionalProperties": {"type": "array", "items": {"type": "string", "pattern": EXTENSION}}
        })
    }

    pub fn extension_images(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-yaml-only": true,
            "propertyNames": {"pattern": EXTENSION},
            "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "string"}}
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            required_extensions: vec!["postgis".to_string(), "pgcrypto".to_string()],
            selector: LabelSelector {
                match_labels: [(
                    DEFAULT_GUARD_LABEL.0.to_string(),
                    DEFAULT_GUARD_LABEL.1.to_string(),
                )]
                .into(),
                match_expressions: Vec::new(),
            },
            per_database: BTreeMap::new(),
            extension_images: BTreeMap::new(),
        }
    }
}

impl Settings {
    pub fn selector(&self) -> Result<Selector, String> {
        Selector::from_api(&self.selector).map_err(|e| format!("selector: {e}"))
    }

    /// Image globs for `extension` (settings first, then the defaults); `None`: any image.
    pub fn images_for(&self, extension: &str) -> Option<Vec<String>> {
        self.extension_images
            .get(extension)
            .cloned()
            .or_else(|| default_extension_images().remove(extension))
    }
}

impl SettingsTrait for Settings {
    fn validate(&self) -> Result<(), String> {
        self.selector()?;
        let names = self
            .required_extensions
            .iter()
            .map(|e| ("requiredExtensions", e))
            .chain(
                self.per_database
                    .values()
                    .flatten()
                    .map(|e| ("perDatabase", e)),
            )
            .chain(self.extension_images.keys().map(|e| ("extensionImages", e)));
        for (setting, name) in names {
            if name.trim().is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("{setting}: {name:?} is not an extension name"));
            }
        }
        if let Some(db) = self.per_database.keys().find(|d| d.trim().is_empty()) {
            return Err(format!("perDatabase: {db:?} is not a database name"));
        }
        if let Some((ext, _)) = self.extension_images.iter().find(|(_, v)| v.is_empty()) {
            return Err(format!(
                "extensionImages: {ext} lists no image; remove the entry to accept any image"
            ));
        }
        Ok(())
    }
}
