//! The contract every stackguard policy implements, and the one evaluation path that the waPC
//! module, the CLI and the tests all go through.

use crate::request::{Operation, Request, ValidationPayload};
use crate::{ClusterContext, ObjectRef, Verdict};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Policy settings: camelCase JSON, unknown keys rejected by serde, values checked by `validate`.
/// Serialisable so that tools can show them (the playground prefills each policy's defaults).
pub trait Settings: DeserializeOwned + Serialize + Default {
    /// Reject impossible values with a message naming the setting.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A stackguard policy: data (name, kinds, settings) plus one pure function.
pub trait Policy {
    /// Artifact name, e.g. `run-as-non-root`.
    const NAME: &'static str;
    /// `kind`s this policy evaluates; any other kind is accepted untouched.
    const KINDS: &'static [&'static str];
    /// Does the rule read cluster state (`ClusterContext`)? Only then does the module link the
    /// `kubernetes/get_resource` host call, so a policy that never reads the cluster makes no
    /// host call at all (`hostCapabilities: []`, checked by `stackguard annotate --strict`).
    const CONTEXT_AWARE: bool = false;
    type Settings: Settings;

    /// Evaluate one object (never DELETE, never a missing object).
    fn evaluate(req: &Request<'_>, settings: &Self::Settings, ctx: &dyn ClusterContext) -> Verdict;

    /// The policy's `mutate` setting; `None` for a policy that only validates.
    fn mutate_setting(_settings: &Self::Settings) -> Option<bool> {
        None
    }
}

/// When a mutating policy repairs what it rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// As its `mutate` setting says (the admission chain).
    AsConfigured,
    /// Whatever the setting says (`stackguard fix`: fixing is what was asked for).
    Always,
}

/// Parse and validate settings (`null` or absent means defaults).
pub fn parse_settings<S: Settings>(json: Option<&str>) -> Result<S, String> {
    let settings = match json.map(str::trim) {
        None | Some("") | Some("null") => S::default(),
        Some(text) => crate::de::from_str_with_path::<S>(text)
            .map_err(|e| format!("invalid settings: {e}"))?,
    };
    settings.validate()?;
    Ok(settings)
}

/// What a policy answers for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub accepted: bool,
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// The whole object with the policy's fill-ins, when it mutated the request (policy-server
    /// turns it into a JSONPatch).
    pub mutated_object: Option<serde_json::Value>,
}

impl Response {
    pub fn accept() -> Self {
        Response {
            accepted: true,
            ..Default::default()
        }
    }

    pub fn reject(message: String) -> Self {
        Response {
            accepted: false,
            message: Some(message),
            ..Default::default()
        }
    }
}

/// Evaluate one request with parsed settings, applying the admission rules every policy shares:
/// DELETE, CONNECT, requests without an object and other kinds are accepted.
pub fn evaluate<P: Policy>(
    req: Option<&Request<'_>>,
    settings: &P::Settings,
    ctx: &dyn ClusterContext,
) -> (Verdict, Option<ObjectRef>) {
    let Some(req) = req else {
        return (Verdict::accept(), None);
    };
    if matches!(req.operation, Operation::Delete | Operation::Connect)
        || !P::KINDS.contains(&req.kind)
    {
        return (Verdict::accept(), None);
    }
    (P::evaluate(req, settings, ctx), Some(object_ref(req)))
}

/// The outcome of one admission: the verdict, the object it is about (`None` when the policy
/// does not apply), and the mutated object when the policy repaired it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    pub verdict: Verdict,
    pub object: Option<ObjectRef>,
    pub mutated: Option<serde_json::Value>,
}

impl Admission {
    /// The response policy-server returns.
    pub fn respond(self) -> Response {
        Response {
            mutated_object: self.mutated,
            ..respond(self.verdict, self.object.as_ref())
        }
    }
}

/// [`evaluate`], then, for a rejected object of a mutating policy, [`crate::mutate::repair`]:
/// accepted with the mutated object when filling in what is missing makes the same policy accept
/// it, else the original rejection with nothing patched.
pub fn admit<P: Policy>(
    req: Option<&Request<'_>>,
    settings: &P::Settings,
    ctx: &dyn ClusterContext,
    mutation: Mutation,
) -> Admission {
    let (verdict, object) = evaluate::<P>(req, settings, ctx);
    let wanted = match P::mutate_setting(settings) {
        None => false,
        Some(on) => on || mutation == Mutation::Always,
    };
    if let (Some(req), Some(_), false, true) = (req, &object, verdict.accepted(), wanted)
        && let Some((mutated, verdict)) = crate::mutate::repair::<P>(req, &verdict, settings, ctx)
    {
        return Admission {
            verdict,
            object,
            mutated: Some(mutated),
        };
    }
    Admission {
        verdict,
        object,
        mutated: None,
    }
}

/// Kind, namespace and name for messages: from the request, else from `metadata`.
pub fn object_ref(req: &Request<'_>) -> ObjectRef {
    let mut r = req.object_ref();
    if r.name.is_empty() || r.namespace.is_empty() {
        #[derive(serde::Deserialize, Default)]
        struct WithMeta {
            #[serde(default)]
            metadata: crate::request::Metadata,
        }
        if let Ok(m) = req.object.parse::<WithMeta>() {
            if r.name.is_empty() {
                r.name = if m.metadata.name.is_empty() {
                    m.metadata.generate_name
                } else {
                    m.metadata.name
                };
            }
            if r.namespace.is_empty() {
                r.namespace = m.metadata.namespace;
            }
        }
    }
    r
}

/// Turn a verdict into the response policy-server returns (without a mutation).
pub fn respond(verdict: Verdict, object: Option<&ObjectRef>) -> Response {
    let message = object.and_then(|o| verdict.message(o));
    Response {
        accepted: verdict.findings.is_empty(),
        message,
        warnings: verdict.warnings,
        mutated_object: None,
    }
}

/// The whole waPC `validate` call: payload bytes in, response out. Never panics on bad input.
pub fn validate_payload<P: Policy>(payload: &[u8], ctx: &dyn ClusterContext) -> Response {
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t,
        Err(_) => return Response::reject("the validation request is not UTF-8".to_string()),
    };
    let parsed: ValidationPayload<'_> = match crate::de::from_str_with_path(text) {
        Ok(p) => p,
        Err(e) => return Response::reject(format!("malformed validation request: {e}")),
    };
    let settings = match parse_settings::<P::Settings>(parsed.settings.map(|s| s.get())) {
        Ok(s) => s,
        Err(e) => return Response::reject(e),
    };
    let req = parsed.request.as_request();
    admit::<P>(req.as_ref(), &settings, ctx, Mutation::AsConfigured).respond()
}

/// A policy with parsed settings, usable behind `dyn` by the CLI.
pub trait Prepared: Send + Sync {
    fn name(&self) -> &'static str;
    fn kinds(&self) -> &'static [&'static str];
    /// Evaluate one object (same shared rules as [`evaluate`]) and, for a mutating policy,
    /// repair it (see [`admit`]); the object reference is `None` when the policy does not apply.
    fn admit(&self, req: &Request<'_>, ctx: &dyn ClusterContext, mutation: Mutation) -> Admission;
    /// Can this policy repair what it rejects (does it have a `mutate` setting)?
    fn mutating(&self) -> bool;
    /// The settings in effect, as JSON (with every default filled in).
    fn settings(&self) -> serde_json::Value;
}

struct PreparedPolicy<P: Policy> {
    settings: P::Settings,
}

impl<P> Prepared for PreparedPolicy<P>
where
    P: Policy + 'static,
    P::Settings: Send + Sync,
{
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn kinds(&self) -> &'static [&'static str] {
        P::KINDS
    }
    fn admit(&self, req: &Request<'_>, ctx: &dyn ClusterContext, mutation: Mutation) -> Admission {
        admit::<P>(Some(req), &self.settings, ctx, mutation)
    }
    fn mutating(&self) -> bool {
        P::mutate_setting(&self.settings).is_some()
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(&self.settings).unwrap_or(serde_json::Value::Null)
    }
}

/// Parse `settings` (JSON text, `None` for defaults) and bind them to policy `P`.
pub fn prepare<P>(settings: Option<&str>) -> Result<Box<dyn Prepared>, String>
where
    P: Policy + 'static,
    P::Settings: Send + Sync,
{
    Ok(Box::new(PreparedPolicy::<P> {
        settings: parse_settings::<P::Settings>(settings)?,
    }))
}
