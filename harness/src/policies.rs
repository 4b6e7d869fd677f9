//! The stackguard policies compiled natively: one registry the CLI and the tests share.

use stackguard_common::policy::{Prepared, prepare};

/// Parse and validate settings (JSON text; `None` means defaults) and bind them to a policy.
pub type PrepareFn = fn(Option<&str>) -> Result<Box<dyn Prepared>, String>;

/// A policy the CLI can evaluate natively.
pub struct Entry {
    pub name: &'static str,
    pub prepare: PrepareFn,
    /// The policy's `metadata.yml`, as shipped in its module.
    pub metadata_yml: &'static str,
    /// The JSON Schema of its settings, generated from their definition (`src/settings.rs`).
    #[cfg(feature = "schema")]
    pub schema: fn() -> serde_json::Value,
}

/// The settings schema of policy `P` (see [`crate::generate::schema`]).
#[cfg(feature = "schema")]
fn schema_of<P: stackguard_common::Policy>() -> serde_json::Value
where
    P::Settings: schemars::JsonSchema,
{
    crate::generate::schema::settings_schema::<P::Settings>()
}

/// Every stackguard policy, in a stable order.
pub const ALL: &[Entry] = &[
    Entry {
        name: "run-as-non-root",
        prepare: prepare::<run_as_non_root::RunAsNonRoot>,
        metadata_yml: include_str!("../../policies/run-as-non-root/metadata.yml"),
        #[cfg(feature = "schema")]
        schema: schema_of::<run_as_non_root::RunAsNonRoot>,
    },
    Entry {
        name: "resource-limits",
        prepare: prepare::<resource_limits::ResourceLimits>,
        metadata_yml: include_str!("../../policies/resource-limits/metadata.yml"),
        #[cfg(feature = "schema")]
        schema: schema_of::<resource_limits::ResourceLimits>,
    },
    Entry {
        name: "pod-anti-affinity",
        prepare: prepare::<pod_anti_affinity::PodAntiAffinity>,
        metadata_yml: include_str!("../../policies/pod-anti-affinity/metadata.yml"),
        #[cfg(feature = "schema")]
        schema: schema_of::<pod_anti_affinity::PodAntiAffinity>,
    },
    Entry {
        name: "no-plaintext-secrets",
        prepare: prepare::<no_plaintext_secrets::NoPlaintextSecrets>,
        metadata_yml: include_str!("../../policies/no-plaintext-secrets/metadata.yml"),
        #[cfg(feature = "schema")]
        schema: schema_of::<no_plaintext_secrets::NoPlaintextSecrets>,
    },
    Entry {
        name: "postgres-extensions",
        prepare: prepare::<postgres_extensions::PostgresExtensions>,
        metadata_yml: include_str!("../../policies/postgres-extensions/metadata.yml"),
        #[cfg(feature = "schema")]
        schema: schema_of::<postgres_extensions::PostgresExtensions>,
    },
    Entry {
        name: "redis-pubsub-noeviction",
        prepare: prepare::<redis_pubsub_noeviction::RedisPubsubNoeviction>,
        metadata_yml: include_str!("../../policies/redis-pubsub-noeviction/metadata.yml"),
        #[cfg(feature = "schema")]
        schema: schema_of::<redis_pubsub_noeviction::RedisPubsubNoeviction>,
    },
];

/// Look a policy up by name.
pub fn find(name: &str) -> Option<&'static Entry> {
    ALL.iter().find(|e| e.name == name)
}

use serde_json::Value;
use stackguard_common::ClusterContext;
use stackguard_common::policy::{Admission, Mutation, Response};
use stackguard_common::request::{Object, Operation, Request};

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |cur, p| cur.get(p))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The request the API server would send for a manifest, as if admitted with `operation`.
fn request_for(object: &Value, operation: Operation) -> Request<'_> {
    Request {
        operation,
        kind: str_at(object, &["kind"]),
        namespace: str_at(object, &["metadata", "namespace"]),
        name: str_at(object, &["metadata", "name"]),
        object: Object::Value(object),
    }
}

/// Evaluate a manifest and, for a mutating policy, repair it (the mutated object, if any, is in
/// the result).
pub fn admit_object(
    policy: &dyn Prepared,
    object: &Value,
    operation: Operation,
    ctx: &dyn ClusterContext,
    mutation: Mutation,
) -> Admission {
    policy.admit(&request_for(object, operation), ctx, mutation)
}

/// The response the policy module gives for the same object, message rendering and mutation
/// (as the policy's settings say) included.
pub fn respond_object(
    policy: &dyn Prepared,
    object: &Value,
    operation: Operation,
    ctx: &dyn ClusterContext,
) -> Response {
    admit_object(policy, object, operation, ctx, Mutation::AsConfigured).respond()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ObjectStore;

    /// Found by the `evaluate` fuzz target: the module path read this number one unit off in
    /// its last place, so its mutation changed a field it never touched. Through the payload
    /// bytes (as the module reads them) and natively, the mutation keeps every number as sent.
    #[test]
    fn a_mutation_keeps_every_number_as_sent() {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": [-5.324528882207291e-108, 1e300, 0.1]}]}});
        let payload = serde_json::json!({
            "request": crate::admission::request_for(&object, crate::admission::Op::Create, "u"),
            "settings": {"mutate": true},
        });
        let bytes = serde_json::to_vec(&payload).unwrap();
        let ctx = ObjectStore::new();
        let module = stackguard_common::policy::validate_payload::<run_as_non_root::RunAsNonRoot>(
            &bytes, &ctx,
        );
        let prepared =
            (find("run-as-non-root").unwrap().prepare)(Some("{\"mutate\": true}")).unwrap();
        let native = respond_object(prepared.as_ref(), &object, Operation::Create, &ctx);
        assert_eq!(module, native);
        let mutated = module
            .mutated_object
            .expect("the container gets a securityContext");
        assert_eq!(
            mutated["spec"]["containers"][0]["resources"],
            object["spec"]["containers"][0]["resources"]
        );
    }
}
