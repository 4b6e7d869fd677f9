//! Build the AdmissionRequest that the API server would send for a manifest.

use serde_json::{Value, json};

/// `kind` → resource (plural, lower case), as the API server names it.
pub fn resource_name(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.as_str() {
        "endpoints" => lower,
        _ if lower.ends_with("ss")
            || lower.ends_with("sh")
            || lower.ends_with("ch")
            || lower.ends_with('x') =>
        {
            format!("{lower}es")
        }
        _ if lower.ends_with('s') => format!("{lower}es"),
        _ if lower.ends_with('y')
            && !matches!(
                lower.chars().rev().nth(1),
                Some('a' | 'e' | 'i' | 'o' | 'u')
            ) =>
        {
            format!("{}ies", &lower[..lower.len() - 1])
        }
        _ => format!("{lower}s"),
    }
}

/// Split `apiVersion` into (group, version): `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
pub fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The admission operation to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "CREATE",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s.to_ascii_uppercase().as_str() {
            "CREATE" => Some(Op::Create),
            "UPDATE" => Some(Op::Update),
            "DELETE" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// An AdmissionRequest for `object` (for DELETE the object goes to `oldObject`).
pub fn request_for(object: &Value, op: Op, uid: &str) -> Value {
    serde_json::to_value(Request::new(object, op, uid)).unwrap_or(Value::Null)
}

/// The AdmissionRequest of [`request_for`], borrowing the object: serialize it to send a large
/// object to a module without copying it first.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    uid: &'a str,
    kind: GroupVersion<'a>,
    resource: GroupVersion<'a>,
    request_kind: GroupVersion<'a>,
    request_resource: GroupVersion<'a>,
    name: &'a str,
    namespace: &'a str,
    operation: &'static str,
    user_info: Value,
    object: Option<&'a Value>,
    old_object: Option<&'a Value>,
    dry_run: bool,
    options: Value,
}

/// A `kind` (`{group, version, kind}`) or a `resource` (`{group, version, resource}`).
#[derive(Clone, serde::Serialize)]
struct GroupVersion<'a> {
    group: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
}

impl<'a> Request<'a> {
    pub fn new(object: &'a Value, op: Op, uid: &'a str) -> Request<'a> {
        let text = |v: Option<&'a Value>| v.and_then(Value::as_str).unwrap_or("");
        let (group, version) = group_version(text(object.get("apiVersion")));
        let kind = text(object.get("kind"));
        let meta = object.get("metadata");
        let gvk = GroupVersion {
            group,
            version,
            kind: Some(kind),
            resource: None,
        };
        let gvr = GroupVersion {
            group,
            version,
            kind: None,
            resource: Some(resource_name(kind)),
        };
        let (obj, old) = match op {
            Op::Delete => (None, Some(object)),
            Op::Update => (Some(object), Some(object)),
            Op::Create => (Some(object), None),
        };
        Request {
            uid,
            kind: gvk.clone(),
            resource: gvr.clone(),
            request_kind: gvk,
            request_resource: gvr,
            name: text(meta.and_then(|m| m.get("name"))),
            namespace: text(meta.and_then(|m| m.get("namespace"))),
            operation: op.as_str(),
            user_info: json!({"username": "stackguard", "groups": ["system:authenticated"]}),
            object: obj,
            old_object: old,
            dry_run: false,
            options: json!({"apiVersion": "meta.k8s.io/v1", "kind": format!("{}Options", titled(op))}),
        }
    }
}

fn titled(op: Op) -> &'static str {
    match op {
        Op::Create => "Create",
        Op::Update => "Update",
        Op::Delete => "Delete",
    }
}

/// Accept a bare AdmissionRequest or a whole AdmissionReview (as `kwctl run` does).
pub fn unwrap_review(v: Value) -> Value {
    match v.get("request") {
        Some(req) if v.get("kind").and_then(Value::as_str) == Some("AdmissionReview") => {
            req.clone()
        }
        _ => v,
    }
}

/// The AdmissionResponse policy-server sends for a module's `ValidationResponse`, computed as
/// policy-evaluator does: a mutated object becomes an RFC 6902 JSONPatch from the request's
/// object (json-patch's `diff`), serialised and base64-encoded, with `patchType: JSONPatch`; a
/// mutated object identical to the request's is no patch; a mutation of a request without an
/// object (DELETE) is refused.
#[cfg(feature = "host")]
pub fn response(
    request: &Value,
    resp: &crate::host::ValidationResponse,
) -> Result<Value, serde_json::Error> {
    use base64::Engine;
    let uid = request.get("uid").cloned().unwrap_or(json!(""));
    let object = request.get("object").filter(|o| !o.is_null());
    let mut out = json!({"uid": uid, "allowed": resp.accepted});
    let status =
        |message: &str, code: Option<u16>| json!({"message": message, "code": code.unwrap_or(400)});
    match (&resp.mutated_object, object) {
        (Some(_), None) => {
            out["allowed"] = json!(false);
            out["status"] = status(
                "Incoming object is null, which happens only with DELETE operations, but the \
                 policy is attempting a mutation. This is not allowed",
                None,
            );
            return Ok(out);
        }
        (Some(mutated), Some(object)) => {
            let patch = json_patch::diff(object, mutated);
            if !patch.0.is_empty() {
                let text = serde_json::to_string(&patch)?;
                out["patchType"] = json!("JSONPatch");
                out["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(text));
            }
        }
        (None, _) => {}
    }
    if resp.message.is_some() || resp.code.is_some() {
        out["status"] = status(resp.message.as_deref().unwrap_or(""), resp.code);
    }
    if let Some(w) = &resp.warnings {
        out["warnings"] = json!(w);
    }
    if let Some(a) = &resp.audit_annotations {
        out["auditAnnotations"] = json!(a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        for (k, r) in [
            ("Deployment", "deployments"),
            ("StatefulSet", "statefulsets"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
            ("Endpoints", "endpoints"),
            ("Gateway", "gateways"),
            ("ConfigMap", "configmaps"),
            ("Pod", "pods"),
        ] {
            assert_eq!(resource_name(k), r);
        }
    }

    #[test]
    fn review_is_unwrapped() {
        let v = json!({"kind": "AdmissionReview", "request": {"uid": "1"}});
        assert_eq!(unwrap_review(v), json!({"uid": "1"}));
    }
}
