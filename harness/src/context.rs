//! Cluster state built from manifests: what context-aware rules see in the CLI and in tests,
//! and what the waPC host answers `kubernetes/*` host calls from.

use serde::Deserialize;
use serde_json::Value;
use stackguard_common::ClusterContext;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// An object's identity: (apiVersion, kind, namespace, name).
pub type Key = (String, String, String, String);

/// Objects indexed by (apiVersion, kind, namespace, name). Lookups of objects it does not hold
/// are remembered ([`ObjectStore::take_misses`]), so a caller that can fetch them (`audit`,
/// from the live cluster) knows what to add before evaluating again.
#[derive(Debug, Default)]
pub struct ObjectStore {
    objects: Vec<Value>,
    index: HashMap<Key, usize>,
    misses: Mutex<BTreeSet<Key>>,
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

impl ObjectStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an object; a later object with the same identity replaces an earlier one.
    pub fn insert(&mut self, object: Value) {
        let key = (
            field(&object, &["apiVersion"]).to_string(),
            field(&object, &["kind"]).to_string(),
            field(&object, &["metadata", "namespace"]).to_string(),
            field(&object, &["metadata", "name"]).to_string(),
        );
        match self.index.get(&key) {
            Some(&i) => self.objects[i] = object,
            None => {
                self.index.insert(key, self.objects.len());
                self.objects.push(object);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn find(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        let key = (
            api_version.to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let found = self.index.get(&key).map(|&i| &self.objects[i]).or_else(|| {
            // Manifests often omit the namespace: accept an object without one.
            if namespace.is_empty() {
                return None;
            }
            let key = (
                api_version.to_string(),
                kind.to_string(),
                String::new(),
                name.to_string(),
            );
            self.index.get(&key).map(|&i| &self.objects[i])
        });
        if found.is_none()
            && let Ok(mut m) = self.misses.lock()
        {
            m.insert(key);
        }
        found
    }

    /// The objects looked up but not found since the last call, each once.
    pub fn take_misses(&self) -> BTreeSet<Key> {
        self.misses
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// Answer `kubernetes/get_resource` (payload as the Kubewarden SDK sends it).
    pub fn host_get_resource(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        #[derive(Deserialize)]
        struct Req {
            api_version: String,
            kind: String,
            name: String,
            namespace: Option<String>,
        }
        let r: Req = serde_json::from_slice(payload)
            .map_err(|e| format!("malformed get_resource request: {e}"))?;
        let ns = r.namespace.unwrap_or_default();
        match self.find(&r.api_version, &r.kind, &ns, &r.name) {
            Some(v) => serde_json::to_vec(v).map_err(|e| e.to_string()),
            None => Err(format!(
                "{} {}/{} ({}) not found",
                r.kind, ns, r.name, r.api_version
            )),
        }
    }

    /// Answer `kubernetes/list_resources_by_namespace` and `list_resources_all` with a `List`.
    pub fn host_list_resources(&self, op: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        #[derive(Deserialize)]
        struct Req {
            api_version: String,
            kind: String,
            #[serde(default)]
            namespace: Option<String>,
        }
        let r: Req =
            serde_json::from_slice(payload).map_err(|e| format!("malformed {op} request: {e}"))?;
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| field(o, &["apiVersion"]) == r.api_version && field(o, &["kind"]) == r.kind)
            .filter(|o| match &r.namespace {
                Some(ns) => field(o, &["metadata", "namespace"]) == ns,
                None => true,
            })
            .collect();
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": items,
        });
        serde_json::to_vec(&list).map_err(|e| e.to_string())
    }
}

impl ClusterContext for ObjectStore {
    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, String> {
        Ok(self
            .find(api_version, kind, namespace.unwrap_or(""), name)
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_of_absent_objects_are_remembered_once() {
        let mut s = ObjectStore::new();
        s.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}}));
        assert!(
            s.get_resource("v1", "ConfigMap", Some("n"), "a")
                .unwrap()
                .is_some()
        );
        assert!(
            s.get_resource("v1", "ConfigMap", Some("n"), "b")
                .unwrap()
                .is_none()
        );
        assert!(
            s.get_resource("v1", "ConfigMap", Some("n"), "b")
                .unwrap()
                .is_none()
        );
        let key = (
            "v1".to_string(),
            "ConfigMap".to_string(),
            "n".to_string(),
            "b".to_string(),
        );
        assert_eq!(s.take_misses(), BTreeSet::from([key]));
        assert!(s.take_misses().is_empty());
    }
}
