//! waPC entry points for a policy module (wasm32-wasip1 only).
//!
//! policy-server calls `protocol_version`, `validate_settings` and `validate`; context-aware
//! rules call back into the host through `kubewarden/kubernetes/get_resource`.

use crate::ClusterContext;
use crate::context::NoContext;
use crate::policy::{Policy, Response, parse_settings, validate_payload};
use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::{self, CallResult};
use serde::Serialize;

/// The crate version (Cargo's, shared by every policy of the workspace), stored in the module's
/// custom section `stackguard.version`. `stackguard annotate` takes
/// `io.kubewarden.policy.version` and `com.github.release.tag` from it, so the metadata can
/// never disagree with Cargo about which version a module is.
#[used]
#[unsafe(link_section = "stackguard.version")]
static CARGO_VERSION: [u8; VERSION.len()] = {
    let mut out = [0u8; VERSION.len()];
    let bytes = VERSION.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
};
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Register the three waPC functions of policy `P`. Call from the module's `wapc_init`.
pub fn register<P: Policy>() {
    wapc_guest::register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
    wapc_guest::register_function("validate_settings", validate_settings::<P>);
    wapc_guest::register_function("validate", validate::<P>);
}

/// The SDK's `ValidationResponse`. A mutation is answered by the SDK's own `mutate_request`
/// (accepted, the whole mutated object; policy-server computes the JSONPatch from it), unless
/// there are warnings to carry along.
fn validate<P: Policy>(payload: &[u8]) -> CallResult {
    let Response {
        accepted,
        message,
        warnings,
        mutated_object,
    } = validate_payload::<P>(payload, context::<P>());
    match mutated_object {
        Some(mutated) if warnings.is_empty() => kubewarden_policy_sdk::mutate_request(mutated),
        mutated_object => Ok(serde_json::to_vec(&ValidationResponse {
            accepted,
            message,
            code: None,
            mutated_object,
            audit_annotations: None,
            warnings: (!warnings.is_empty()).then_some(warnings),
        })?),
    }
}

fn validate_settings<P: Policy>(payload: &[u8]) -> CallResult {
    let text = std::str::from_utf8(payload).unwrap_or("");
    let response = match parse_settings::<P::Settings>(Some(text)) {
        Ok(_) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(e) => SettingsValidationResponse {
            valid: false,
            message: Some(e),
        },
    };
    Ok(serde_json::to_vec(&response)?)
}

/// The cluster as policy `P` sees it: through the host for a context-aware policy, else none
/// (decided at compile time: the host call is not even linked into the other modules).
fn context<P: Policy>() -> &'static dyn ClusterContext {
    if P::CONTEXT_AWARE {
        &HostContext
    } else {
        &NoContext
    }
}

/// The request body of Kubewarden's `kubernetes/get_resource` host capability.
#[derive(Serialize)]
struct GetResource<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: Option<&'a str>,
    disable_cache: bool,
}

/// Cluster state through the Kubewarden host.
struct HostContext;

impl ClusterContext for HostContext {
    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<serde_json::Value>, String> {
        let msg = serde_json::to_vec(&GetResource {
            api_version,
            kind,
            name,
            namespace,
            disable_cache: false,
        })
        .map_err(|e| e.to_string())?;
        let raw = wapc_guest::host_call("kubewarden", "kubernetes", "get_resource", &msg)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| format!("unexpected get_resource answer: {e}"))
    }
}
