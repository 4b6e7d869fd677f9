//! Replay a host-capabilities session recorded by `kwctl run
//! --record-host-capabilities-interactions FILE`, so CI can reuse kwctl recordings.
//!
//! The file is a YAML list of exchanges, answered strictly in order, each request compared with
//! the one the policy makes now (as kwctl does):
//!
//! ```yaml
//! - type: Exchange
//!   request: |
//!     !KubernetesGetResource
//!     api_version: v1
//!     kind: Namespace
//!     name: demo
//!     namespace: null
//!     disable_cache: false
//!   response:
//!     type: Success          # or: type: Error + message
//!     payload: '{"apiVersion":"v1","kind":"Namespace",...}'
//! ```

use crate::yaml;
use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Mutex;

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Response {
    Success { payload: String },
    Error { message: String },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Entry {
    Exchange { request: String, response: Response },
}

/// A recorded request: the host capability (kwctl's `CallbackRequestType` variant) and its fields.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    variant: String,
    fields: Map<String, Value>,
}

#[derive(Debug)]
struct Exchange {
    request: Request,
    response: Response,
}

/// A session being replayed.
#[derive(Debug)]
pub struct Session {
    origin: String,
    exchanges: Mutex<VecDeque<Exchange>>,
}

impl Session {
    pub fn load(path: &std::path::Path) -> Result<Session> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{origin}: {e}"))?;
        Session::parse(&text, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Session> {
        let doc = yaml::value(text).map_err(|e| anyhow!("{origin}: invalid YAML: {e}"))?;
        let entries: Vec<Entry> = match doc {
            Value::Null => Vec::new(),
            v => serde_json::from_value(v)
                .map_err(|e| anyhow!("{origin}: not a kwctl host-capabilities session: {e}"))?,
        };
        let mut exchanges = VecDeque::new();
        for (i, Entry::Exchange { request, response }) in entries.into_iter().enumerate() {
            let variant = yaml::root_tag(&request)
                .ok_or_else(|| anyhow!("{origin}: exchange {i}: the request has no `!Type` tag"))?;
            let fields = match yaml::value(&request)
                .map_err(|e| anyhow!("{origin}: exchange {i}: invalid request: {e}"))?
            {
                Value::Object(m) => m,
                _ => bail!("{origin}: exchange {i}: the request is not a mapping"),
            };
            exchanges.push_back(Exchange {
                request: Request { variant, fields },
                response,
            });
        }
        Ok(Session {
            origin: origin.to_string(),
            exchanges: Mutex::new(exchanges),
        })
    }

    /// Exchanges not replayed yet.
    pub fn remaining(&self) -> usize {
        self.exchanges.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Answer a waPC host call (binding `kubewarden`) with the next recorded response.
    pub fn answer(
        &self,
        ns: &str,
        op: &str,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, String> {
        let actual = to_request(ns, op, payload)?;
        let mut queue = self
            .exchanges
            .lock()
            .map_err(|_| "replay session poisoned".to_string())?;
        let Some(next) = queue.pop_front() else {
            return Err(format!(
                "{}: the list of recorded responses is empty (the policy made a {} request)",
                self.origin, actual.variant
            ));
        };
        if !same_request(&next.request, &actual) {
            return Err(format!(
                "{}: replay error: unexpected request: expected {} {}, got {} {}",
                self.origin,
                next.request.variant,
                Value::Object(next.request.fields.clone()),
                actual.variant,
                Value::Object(actual.fields)
            ));
        }
        match next.response {
            Response::Success { payload } => Ok(payload.into_bytes()),
            Response::Error { message } => Err(message),
        }
    }
}

/// Fields absent from a recording count as `null` (kwctl writes optional fields as `null`).
fn same_request(recorded: &Request, actual: &Request) -> bool {
    recorded.variant == actual.variant
        && actual
            .fields
            .iter()
            .all(|(k, v)| recorded.fields.get(k).unwrap_or(&Value::Null) == v)
        && recorded
            .fields
            .iter()
            .all(|(k, v)| actual.fields.get(k).unwrap_or(&Value::Null) == v)
}

/// The guest's host call as kwctl's `CallbackRequestType`.
fn to_request(ns: &str, op: &str, payload: &[u8]) -> std::result::Result<Request, String> {
    let json: Value =
        serde_json::from_slice(payload).map_err(|e| format!("malformed {ns}/{op} request: {e}"))?;
    let field = |name: &str| json.get(name).cloned().unwrap_or(Value::Null);
    let pick = |names: &[&str]| -> Map<String, Value> {
        names.iter().map(|n| (n.to_string(), field(n))).collect()
    };
    let (variant, fields) = match (ns, op) {
        ("kubernetes", "get_resource") => {
            let mut f = pick(&["api_version", "kind", "name", "namespace"]);
            f.insert(
                "disable_cache".into(),
                Value::Bool(field("disable_cache").as_bool().unwrap_or(false)),
            );
            ("KubernetesGetResource", f)
        }
        ("kubernetes", "list_resources_by_namespace") => (
            "KubernetesListResourceNamespace",
            pick(&[
                "api_version",
                "kind",
                "namespace",
                "label_selector",
                "field_selector",
            ]),
        ),
        ("kubernetes", "list_resources_all") => (
            "KubernetesListResourceAll",
            pick(&["api_version", "kind", "label_selector", "field_selector"]),
        ),
        ("oci", "v1/manifest_digest") => ("OciManifestDigest", string_field("image", json)?),
        ("oci", "v1/oci_manifest") => ("OciManifest", string_field("image", json)?),
        ("net", "v1/dns_lookup_host") => ("DNSLookupHost", string_field("host", json)?),
        _ => {
            return Err(format!(
                "host capability '{ns}/{op}' cannot be replayed by stackguard"
            ));
        }
    };
    Ok(Request {
        variant: variant.to_string(),
        fields,
    })
}

/// These capabilities send a bare JSON string.
fn string_field(name: &str, json: Value) -> std::result::Result<Map<String, Value>, String> {
    match json {
        Value::String(_) => Ok([(name.to_string(), json)].into_iter().collect()),
        _ => Err(format!("expected a JSON string for `{name}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = r#"
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: Namespace
    name: demo
    namespace: null
    disable_cache: false
  response:
    type: Success
    payload: '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}'
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: Namespace
    name: gone
    namespace: null
    disable_cache: false
  response:
    type: Error
    message: Cannot find v1/Namespace named 'gone'
"#;

    #[test]
    fn replays_in_order_and_checks_requests() {
        let s = Session::parse(SESSION, "s.yml").unwrap();
        assert_eq!(s.remaining(), 2);
        let ok = s
            .answer(
                "kubernetes",
                "get_resource",
                br#"{"api_version":"v1","kind":"Namespace","name":"demo","disable_cache":false}"#,
            )
            .unwrap();
        assert!(String::from_utf8(ok).unwrap().contains("\"demo\""));
        let err = s
            .answer(
                "kubernetes",
                "get_resource",
                br#"{"api_version":"v1","kind":"Namespace","name":"other"}"#,
            )
            .unwrap_err();
        assert!(err.contains("unexpected request"), "{err}");
        let err = s
            .answer(
                "kubernetes",
                "list_resources_all",
                br#"{"api_version":"v1","kind":"Pod"}"#,
            )
            .unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn bad_sessions_are_errors() {
        assert!(Session::parse("- type: Bogus\n", "s").is_err());
        assert!(
            Session::parse(
                "- type: Exchange\n  request: 'x: 1'\n  response: {type: Success, payload: ''}\n",
                "s"
            )
            .is_err()
        );
    }
}
