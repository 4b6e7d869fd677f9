//! The JSON report. Schema (stable; new fields may be added, none removed or renamed):
//!
//! ```json
//! {
//!   "version": 1,
//!   "findings": [{"file": "deploy/db.yaml", "line": 21, "apiVersion": "apps/v1",
//!                 "kind": "StatefulSet", "namespace": "db", "name": "pg",
//!                 "policy": "run-as-non-root",
//!                 "path": "spec.template.spec.securityContext.runAsUser",
//!                 "message": "container 'pg' runs as root"}],
//!   "errors": [{"file": "bad.yaml", "line": 3, "message": "invalid YAML: …"}],
//!   "summary": {"files": 2, "objects": 5, "rejected": 1, "findings": 2, "errors": 0}
//! }
//! ```
//!
//! `audit` writes the same document: `file` is `cluster://<context>/<namespace>/<kind>/<name>`
//! (`cluster://<context>/<kind>/<name>` for cluster-scoped objects), `line` is 0, `files`
//! counts the objects (each is its own source) and `summary` adds `context` and `namespaces`.

use super::{Finding, Totals, indent_rest};
use crate::manifest::InputError;
use serde_json::json;

pub fn begin() -> String {
    "{\n  \"version\": 1,\n  \"findings\": [".to_string()
}

pub fn finding(out: &mut String, first: bool, f: &Finding) {
    if !first {
        out.push(',');
    }
    out.push_str("\n    ");
    out.push_str(&indent_rest(
        &serde_json::to_string_pretty(f).unwrap_or_default(),
        4,
    ));
}

pub fn finish(out: &mut String, any_findings: bool, errors: &[InputError], t: &Totals) {
    if any_findings {
        out.push_str("\n  ");
    }
    let errors: Vec<_> = errors
        .iter()
        .map(|e| json!({"file": e.file, "line": e.line, "message": e.message}))
        .collect();
    let mut summary = json!({
        "files": t.files,
        "objects": t.objects,
        "rejected": t.rejected,
        "findings": t.findings,
        "errors": t.errors,
    });
    if let Some(c) = &t.cluster {
        summary["context"] = json!(c.context);
        summary["namespaces"] = json!(c.namespaces);
    }
    let pretty = |v: &serde_json::Value| {
        indent_rest(&serde_json::to_string_pretty(v).unwrap_or_default(), 2)
    };
    out.push_str("],\n  \"errors\": ");
    out.push_str(&pretty(&json!(errors)));
    out.push_str(",\n  \"summary\": ");
    out.push_str(&pretty(&summary));
    out.push_str("\n}\n");
}
