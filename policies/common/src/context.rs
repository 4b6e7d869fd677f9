//! Read access to cluster state for context-aware rules.
//!
//! Inside policy-server this is Kubewarden's `kubernetes/get_resource` host capability; in the
//! CLI it is the set of manifests checked together; in tests it is the fixture's context objects.

use serde_json::Value;

pub trait ClusterContext {
    /// Fetch one object. `Ok(None)` when it does not exist, `Err(reason)` when the lookup
    /// itself is impossible (no cluster context, host error).
    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, String>;
}

/// No cluster at all, as in a plain `kwctl run`.
pub struct NoContext;

impl ClusterContext for NoContext {
    fn get_resource(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: Option<&str>,
        _name: &str,
    ) -> Result<Option<Value>, String> {
        Err("no cluster context is available".to_string())
    }
}
