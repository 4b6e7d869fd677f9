//! The admission request as policy-server hands it to a policy, typed only as far as rules read it.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::fmt;

/// Admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Operation {
    #[default]
    #[serde(rename = "CREATE")]
    Create,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "CONNECT")]
    Connect,
}

/// Where the object under review comes from: raw JSON (inside the module) or an already parsed
/// value (CLI and tests). Rules parse only the fields they read from either.
#[derive(Clone, Copy)]
pub enum Object<'a> {
    Raw(&'a RawValue),
    Value(&'a serde_json::Value),
}

impl Object<'_> {
    /// Deserialize the fields `T` declares; the error names the field path.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        match self {
            Object::Raw(raw) => crate::de::from_str_with_path(raw.get()),
            Object::Value(v) => crate::de::from_value_with_path(v),
        }
    }

    /// The whole object as a generic value (for rules that walk arbitrary content).
    pub fn to_value(&self) -> Result<serde_json::Value, String> {
        match self {
            Object::Raw(raw) => crate::de::from_str_with_path(raw.get()),
            Object::Value(v) => Ok((*v).clone()),
        }
    }
}

/// One object under review.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub operation: Operation,
    /// `kind.kind` of the request, e.g. `Deployment`.
    pub kind: &'a str,
    /// The request's namespace (may be empty for cluster-scoped objects or a bare manifest).
    pub namespace: &'a str,
    /// The request's name (may be empty when the object uses `generateName`).
    pub name: &'a str,
    pub object: Object<'a>,
}

impl Request<'_> {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind.to_string(),
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
        }
    }
}

/// Kind, namespace and name of an object, as printed in every message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        if self.namespace.is_empty() {
            write!(f, "{} '{}'", self.kind, name)
        } else {
            write!(f, "{} '{}/{}'", self.kind, self.namespace, name)
        }
    }
}

/// The `metadata` fields of any object that rules need to identify it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub generate_name: String,
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The payload of waPC `validate`: `{"request": AdmissionRequest, "settings": …}`.
#[derive(Deserialize)]
pub struct ValidationPayload<'a> {
    #[serde(borrow)]
    pub request: AdmissionRequest<'a>,
    #[serde(borrow, default)]
    pub settings: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
pub struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    pub group: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    pub kind: std::borrow::Cow<'a, str>,
}

/// Kubernetes `AdmissionRequest`, only the fields stackguard reads.
#[derive(Deserialize)]
pub struct AdmissionRequest<'a> {
    #[serde(borrow, default)]
    pub kind: GroupVersionKind<'a>,
    #[serde(default)]
    pub operation: Operation,
    #[serde(borrow, default)]
    pub namespace: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub object: Option<&'a RawValue>,
}

impl<'a> AdmissionRequest<'a> {
    /// The object under review, or `None` (DELETE, CONNECT, `object: null`).
    pub fn as_request(&'a self) -> Option<Request<'a>> {
        let raw = self.object?;
        if raw.get() == "null" {
            return None;
        }
        Some(Request {
            operation: self.operation,
            kind: &self.kind.kind,
            namespace: self.namespace.as_deref().unwrap_or(""),
            name: self.name.as_deref().unwrap_or(""),
            object: Object::Raw(raw),
        })
    }
}
