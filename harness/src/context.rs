//! Cluster state built from manifests: what context-aware rules see in the CLI and in tests,
//! and what the waPC host answers `kubernetes/*` host calls from.

use serde::Deserialize;
use serde_json::Value;
use stackguard_common::ClusterContext;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};

/// An object's identity: (apiVersion, kind, namespace, name).
pub type Key = (String, String, String, String);

/// Objects indexed by (apiVersion, kind, namespace, name). Lookups of objects it does not hold
/// are remembered ([`ObjectStore::take_misses`]), so a caller that can fetch them (`audit`,
/// from the live cluster) knows what to add before evaluating again. Objects may be added while
/// policies read it (`check` streams its inputs): [`lookups`] tells a caller whether an
/// evaluation read it at all, so one made before the store was complete can be made again.
#[derive(Debug, Default)]
pub struct ObjectStore {
    held: RwLock<Held>,
    misses: Mutex<BTreeSet<Key>>,
}

#[derive(Debug, Default)]
struct Held {
    objects: Vec<Value>,
    /// Where each object came from, in reading order: the later one of an identity wins.
    ranks: Vec<(usize, usize)>,
    index: HashMap<Key, usize>,
}

thread_local! {
    static LOOKUPS: Cell<u64> = const { Cell::new(0) };
}

/// How many lookups this thread has made in any [`ObjectStore`] (host calls of a module run
/// on the thread that evaluates it): compare before and after an evaluation.
pub fn lookups() -> u64 {
    LOOKUPS.with(Cell::get)
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
    pub fn insert(&self, object: Value) {
        let rank = (0, self.len());
        self.insert_ranked(object, rank);
    }

    /// Add an object found at `rank` (file, then place in it) of a reading order whose objects
    /// may arrive out of order: of two with the same identity, the later in that order wins.
    pub fn insert_ranked(&self, object: Value, rank: (usize, usize)) {
        let key = (
            field(&object, &["apiVersion"]).to_string(),
            field(&object, &["kind"]).to_string(),
            field(&object, &["metadata", "namespace"]).to_string(),
            field(&object, &["metadata", "name"]).to_string(),
        );
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        let held = &mut *held;
        match held.index.get(&key) {
            Some(&i) if held.ranks[i] <= rank => {
                held.objects[i] = object;
                held.ranks[i] = rank;
            }
            Some(_) => {}
            None => {
                held.index.insert(key, held.objects.len());
                held.objects.push(object);
                held.ranks.push(rank);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Look an object up and hand it to `with` (the store stays locked for reading meanwhile).
    fn find<R>(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        with: impl FnOnce(&Value) -> R,
    ) -> Option<R> {
        LOOKUPS.with(|n| n.set(n.get() + 1));
        let held = self.read();
        let key = (
            api_version.to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let found = held.index.get(&key).map(|&i| &held.objects[i]).or_else(|| {
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
            held.index.get(&key).map(|&i| &held.objects[i])
        });
        if found.is_none()
            && let Ok(mut m) = self.misses.lock()
        {
            m.insert(key);
        }
        found.map(with)
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
        match self.find(&r.api_version, &r.kind, &ns, &r.name, serde_json::to_vec) {
            Some(v) => v.map_err(|e| e.to_string()),
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
        LOOKUPS.with(|n| n.set(n.get() + 1));
        let held = self.read();
        let items: Vec<&Value> = held
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
        Ok(self.find(
            api_version,
            kind,
            namespace.unwrap_or(""),
            name,
            Value::clone,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_of_absent_objects_are_remembered_once() {
        let s = ObjectStore::new();
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
