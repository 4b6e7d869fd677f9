//! What a rule says about one object.

use crate::mutate::Fix;
use serde::Serialize;

/// One violation: the offending field path and a message that never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Field path inside the object, e.g. `spec.template.spec.containers[0].securityContext.runAsUser`.
    pub path: String,
    /// Human-readable explanation, naming the container or key where relevant.
    pub message: String,
}

impl Finding {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The outcome of evaluating one object: rejected when any finding is present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub findings: Vec<Finding>,
    /// Admission warnings: returned to the client on acceptance as well as rejection.
    pub warnings: Vec<String>,
    /// How to repair the findings that filling in a missing value repairs (applied only when
    /// the policy mutates: see `mutate::repair`).
    #[serde(skip)]
    pub fixes: Vec<Fix>,
}

impl Verdict {
    pub fn accept() -> Self {
        Verdict::default()
    }

    pub fn reject(path: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict {
            findings: vec![Finding::new(path, message)],
            ..Default::default()
        }
    }

    pub fn accepted(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding::new(path, message));
    }

    /// A finding that `fix` repairs.
    pub fn push_fixable(&mut self, path: impl Into<String>, message: impl Into<String>, fix: Fix) {
        self.push(path, message);
        self.fixes.push(fix);
    }

    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// The rejection message policy-server returns: the object, then every finding.
    pub fn message(&self, object: &crate::ObjectRef) -> Option<String> {
        if self.findings.is_empty() {
            return None;
        }
        let details: Vec<String> = self
            .findings
            .iter()
            .map(|f| {
                if f.path.is_empty() {
                    f.message.clone()
                } else {
                    format!("{}: {}", f.path, f.message)
                }
            })
            .collect();
        Some(format!("{object}: {}", details.join("; ")))
    }
}
