//! The JSON report. Schema (stable; new fields may be added, none removed or renamed):
//!
//! ```json
//! {
//!   "version": 1,
//!   "summary": {"files": 2, "objects": 5, "rejected": 1, "findings": 2, "errors": 0},
//!   "findings": [{"file": "deploy/db.yaml", "line": 21, "apiVersion": "apps/v1",
//!                 "kind": "StatefulSet", "namespace": "db", "name": "pg",
//!                 "policy": "run-as-non-root",
//!                 "path": "spec.template.spec.securityContext.runAsUser",
//!                 "message": "container 'pg' runs as root"}],
//!   "errors": [{"file": "bad.yaml", "line": 3, "message": "invalid YAML: …"}]
//! }
//! ```

use super::Report;
use serde_json::json;

pub fn render(r: &Report) -> String {
    let errors: Vec<_> = r
        .errors
        .iter()
        .map(|e| json!({"file": e.file, "line": e.line, "message": e.message}))
        .collect();
    let doc = json!({
        "version": 1,
        "summary": {
            "files": r.files,
            "objects": r.objects,
            "rejected": r.rejected,
            "findings": r.findings.len(),
            "errors": r.errors.len(),
        },
        "findings": r.findings,
        "errors": errors,
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}
