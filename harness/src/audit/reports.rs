//! Audit results as Kubewarden's audit scanner writes them: one report per audited resource
//! (named after the resource's uid, owned by it, `scope` pointing at it), one result per
//! policy that applies to it, in the OpenReports format (`openreports.io/v1alpha1` `Report`
//! and `ClusterReport`, the default) or the legacy policy working group one
//! (`wgpolicyk8s.io/v1alpha2` `PolicyReport` and `ClusterPolicyReport`). Every report of a run
//! carries the run's label; reports of audited kinds left from other runs are stale.
//!
//! Building a report is pure (this module); writing them is in `audit::cluster`.

use crate::engine::PolicyInfo;
use serde_json::{Value, json};

/// `source` of every report and result.
pub const SOURCE: &str = "stackguard";
/// The field manager of the reports' server-side applies.
pub const FIELD_MANAGER: &str = "stackguard-audit";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The run that wrote a report.
pub const RUN_LABEL: &str = "stackguard.io/audit-run";
/// The kind of the audited resource (stale reports are only looked for among audited kinds).
pub const KIND_LABEL: &str = "stackguard.io/resource-kind";
/// The severities the report CRDs accept.
const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "info"];

/// Which report format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    /// `openreports.io/v1alpha1` `Report` and `ClusterReport` (Kubewarden's default).
    Openreports,
    /// `wgpolicyk8s.io/v1alpha2` `PolicyReport` and `ClusterPolicyReport` (legacy).
    Policyreport,
}

impl ReportKind {
    /// (apiVersion, kind, plural) of the report for a namespaced or a cluster-scoped resource.
    pub fn resource(self, namespaced: bool) -> (&'static str, &'static str, &'static str) {
        match (self, namespaced) {
            (ReportKind::Openreports, true) => ("openreports.io/v1alpha1", "Report", "reports"),
            (ReportKind::Openreports, false) => {
                ("openreports.io/v1alpha1", "ClusterReport", "clusterreports")
            }
            (ReportKind::Policyreport, true) => {
                ("wgpolicyk8s.io/v1alpha2", "PolicyReport", "policyreports")
            }
            (ReportKind::Policyreport, false) => (
                "wgpolicyk8s.io/v1alpha2",
                "ClusterPolicyReport",
                "clusterpolicyreports",
            ),
        }
    }
}

/// The outcome of one policy on one resource.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    pub policy: &'a PolicyInfo,
    /// (field path, message) of every finding; empty: the policy accepts the resource.
    pub findings: Vec<(Option<&'a str>, &'a str)>,
}

impl Outcome<'_> {
    /// The findings as one message, `path: message; …` (empty when it passes).
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .findings
            .iter()
            .map(|(path, msg)| match path {
                Some(p) => format!("{p}: {msg}"),
                None => msg.to_string(),
            })
            .collect();
        parts.join("; ")
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |cur, p| cur.get(p))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn annotation<'a>(p: &'a PolicyInfo, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The report name for a resource (its uid, as Kubewarden names them, behind our prefix so
/// the two scanners never write the same object).
pub fn report_name(uid: &str) -> String {
    format!("{SOURCE}-{uid}")
}

/// The report of one resource, ready for a server-side apply; `None` when no policy applies to
/// it or it has no uid (it is not from a cluster).
pub fn report(
    kind: ReportKind,
    run: &str,
    resource: &Value,
    outcomes: &[Outcome<'_>],
    now_seconds: i64,
) -> Option<Value> {
    let uid = str_at(resource, &["metadata", "uid"]);
    if uid.is_empty() || outcomes.is_empty() {
        return None;
    }
    let namespace = str_at(resource, &["metadata", "namespace"]);
    let (api_version, report_kind, _) = kind.resource(!namespace.is_empty());
    let mut reference = json!({
        "apiVersion": str_at(resource, &["apiVersion"]),
        "kind": str_at(resource, &["kind"]),
        "namespace": namespace,
        "name": str_at(resource, &["metadata", "name"]),
        "uid": uid,
        "resourceVersion": str_at(resource, &["metadata", "resourceVersion"]),
    });
    if let (true, Some(o)) = (namespace.is_empty(), reference.as_object_mut()) {
        o.remove("namespace");
    }
    let (mut pass, mut fail) = (0, 0);
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let passed = o.findings.is_empty();
            if passed {
                pass += 1;
            } else {
                fail += 1;
            }
            let mut properties = serde_json::Map::new();
            let kind_key = if o.policy.metadata.mutating {
                "mutating"
            } else {
                "validating"
            };
            properties.insert(kind_key.into(), json!("true"));
            if !o.policy.metadata.context_aware_resources.is_empty() {
                properties.insert("context-aware".into(), json!("true"));
            }
            let mut r = json!({
                "source": SOURCE,
                "policy": o.policy.name,
                "result": if passed { "pass" } else { "fail" },
                "scored": true,
                "timestamp": {"seconds": now_seconds, "nanos": 0},
                "resources": [reference.clone()],
                "properties": properties,
            });
            if !passed {
                r["message"] = json!(o.message());
            }
            if let Some(c) = annotation(o.policy, "io.kubewarden.policy.category") {
                r["category"] = json!(c);
            }
            if let Some(s) = annotation(o.policy, "io.kubewarden.policy.severity")
                .filter(|s| SEVERITIES.contains(s))
            {
                r["severity"] = json!(s);
            }
            r
        })
        .collect();
    let mut metadata = json!({
        "name": report_name(uid),
        "labels": {
            MANAGED_BY: SOURCE,
            RUN_LABEL: run,
            KIND_LABEL: str_at(resource, &["kind"]),
        },
        "ownerReferences": [{
            "apiVersion": str_at(resource, &["apiVersion"]),
            "kind": str_at(resource, &["kind"]),
            "name": str_at(resource, &["metadata", "name"]),
            "uid": uid,
        }],
    });
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    let mut doc = json!({
        "apiVersion": api_version,
        "kind": report_kind,
        "metadata": metadata,
        "scope": reference,
        "summary": {"pass": pass, "fail": fail, "warn": 0, "error": 0, "skip": 0},
        "results": results,
    });
    if kind == ReportKind::Openreports {
        doc["source"] = json!(SOURCE);
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Metadata;

    fn policy(name: &str, severity: &str) -> PolicyInfo {
        let yml = format!(
            "rules: [{{apiGroups: [apps], apiVersions: [v1], resources: [deployments], operations: [CREATE]}}]\n\
             annotations: {{io.kubewarden.policy.category: PSP, io.kubewarden.policy.severity: {severity}}}\n"
        );
        PolicyInfo {
            name: name.into(),
            metadata: Metadata::from_yaml(&yml, name).unwrap(),
        }
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42"}})
    }

    #[test]
    fn one_result_per_policy_with_severity_category_and_the_resource() {
        let a = policy("run-as-non-root", "high");
        let b = policy("resource-limits", "bogus");
        let outcomes = [
            Outcome {
                policy: &a,
                findings: vec![(Some("spec.x"), "bad"), (None, "worse")],
            },
            Outcome {
                policy: &b,
                findings: vec![],
            },
        ];
        let r = report(ReportKind::Openreports, "run1", &deployment(), &outcomes, 7).unwrap();
        assert_eq!(r["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(r["kind"], "Report");
        assert_eq!(r["metadata"]["name"], "stackguard-u-1");
        assert_eq!(r["metadata"]["namespace"], "shop");
        assert_eq!(r["metadata"]["labels"][RUN_LABEL], "run1");
        assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(r["scope"]["resourceVersion"], "42");
        assert_eq!(r["source"], "stackguard");
        assert_eq!(
            r["summary"],
            json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
        );
        let res = r["results"].as_array().unwrap();
        assert_eq!(res.len(), 2);
        assert_eq!(res[0]["result"], "fail");
        assert_eq!(res[0]["message"], "spec.x: bad; worse");
        assert_eq!(res[0]["severity"], "high");
        assert_eq!(res[0]["category"], "PSP");
        assert_eq!(res[0]["timestamp"], json!({"seconds": 7, "nanos": 0}));
        assert_eq!(res[0]["resources"][0]["name"], "web");
        assert_eq!(res[1]["result"], "pass");
        assert!(res[1].get("message").is_none());
        // A severity outside the CRD's enum is left out rather than rejected by the server.
        assert!(res[1].get("severity").is_none());
    }

    #[test]
    fn cluster_scoped_resources_get_cluster_reports_and_legacy_kinds_have_no_source() {
        let a = policy("p", "low");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "uid": "u-2"}});
        let outcomes = [Outcome {
            policy: &a,
            findings: vec![],
        }];
        let r = report(ReportKind::Policyreport, "r", &ns, &outcomes, 1).unwrap();
        assert_eq!(r["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(r["kind"], "ClusterPolicyReport");
        assert!(r["metadata"].get("namespace").is_none());
        assert!(r["scope"].get("namespace").is_none());
        assert!(r.get("source").is_none());
        let r = report(ReportKind::Openreports, "r", &ns, &outcomes, 1).unwrap();
        assert_eq!(r["kind"], "ClusterReport");
        // Nothing applies, or not from a cluster: no report.
        assert!(report(ReportKind::Openreports, "r", &ns, &[], 1).is_none());
        let no_uid = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
        assert!(report(ReportKind::Openreports, "r", &no_uid, &outcomes, 1).is_none());
    }
}
