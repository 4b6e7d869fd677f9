//! What `check` found, and its three renderings: text (people), JSON (scripts), SARIF (code
//! scanning).

pub mod json;
pub mod sarif;
pub mod text;

use crate::engine::PolicyInfo;
use crate::manifest::InputError;

/// One rejected field (or object) with everything a reader needs to find it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub policy: String,
    /// Field path inside the object (`null` when the policy names none).
    pub path: Option<String>,
    pub message: String,
}

/// The outcome of one `check` run.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub objects: usize,
    /// Objects rejected by at least one policy.
    pub rejected: usize,
    pub findings: Vec<Finding>,
    pub errors: Vec<InputError>,
    /// The policies that took part (SARIF rules).
    pub policies: Vec<PolicyInfo>,
}

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

impl Report {
    pub fn render(&self, format: Format, color: bool) -> String {
        match format {
            Format::Text => text::render(self, color),
            Format::Json => json::render(self),
            Format::Sarif => sarif::render(self),
        }
    }
}
