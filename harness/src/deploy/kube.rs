//! `--target kube`: server-side apply of the stack in dependency order, one line per object
//! (`created`, `configured`, `unchanged`, or the server's own reason it failed), Secrets
//! generated when missing (never overwritten), rollouts awaited, `down` deleting only what
//! stackguard applied, and `verify` through port-forwards. The decisions (order, secret plans,
//! outcomes, rollout state) are pure functions; the cluster calls are thin.
//!
//! `--dry-run` on a cluster where the stack's namespace does not exist yet: the Namespace is
//! dry-run applied, and each object that belongs in it is dry-run created in
//! [`SUBSTITUTE_NAMESPACE`] instead (schema, defaulting and admission checked by the API
//! server), reported as `partly` with the reason: nothing is written, and no object fails only
//! because its namespace is missing.

use super::Progress;
use super::secrets::{SecretPlan, SecretSpec, SecretValue, plan, random_token};
use super::stack::str_at;
use super::stack::{Manifest, Stack, apply_rank};
use super::verify::{Endpoints, Expectations};
use crate::kubeclient::{Access, api_error, status_code};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Client;
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions, ValidationDirective,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// The field manager of our server-side applies.
pub const FIELD_MANAGER: &str = "stackguard";

/// One step of a deployment.
#[derive(Debug)]
pub enum Step<'a> {
    Apply(&'a Manifest),
    Secret(SecretSpec),
}

impl Step<'_> {
    fn rank(&self) -> u8 {
        match self {
            Step::Apply(m) => apply_rank(m.kind()),
            Step::Secret(_) => apply_rank("Secret"),
        }
    }
}

/// The deployment plan: every object and every Secret template, in dependency order.
pub fn plan_steps(stack: &Stack) -> Result<Vec<Step<'_>>> {
    let mut steps: Vec<Step> = stack.objects.iter().map(Step::Apply).collect();
    for t in &stack.secret_templates {
        steps.push(Step::Secret(SecretSpec::from_template(t)?));
    }
    // Objects also named in the template are not applied twice.
    let templated: BTreeSet<(String, String)> = stack
        .secret_templates
        .iter()
        .map(|t| (t.namespace().to_string(), t.name().to_string()))
        .collect();
    steps.retain(|s| match s {
        Step::Apply(m) => {
            m.kind() != "Secret"
                || !templated.contains(&(m.namespace().to_string(), m.name().to_string()))
        }
        Step::Secret(_) => true,
    });
    steps.sort_by_key(Step::rank);
    Ok(steps)
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Ready,
    Waiting(String),
    Failed(String),
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter()
        .try_fold(v, |cur, p| cur.get(p))
        .and_then(Value::as_i64)
}

/// Rollout state of a workload from its live object, as `kubectl rollout status` judges it.
pub fn rollout_state(obj: &Value) -> Rollout {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let generation = int_at(obj, &["metadata", "generation"]).unwrap_or(0);
    let observed = int_at(obj, &["status", "observedGeneration"]).unwrap_or(0);
    let replicas = int_at(obj, &["spec", "replicas"]).unwrap_or(1);
    let st = |k: &str| int_at(obj, &["status", k]).unwrap_or(0);
    match kind {
        "Job" => {
            let failed_condition = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Failed" && c["status"] == "True");
            if let Some(c) = failed_condition {
                return Rollout::Failed(format!(
                    "job failed: {}",
                    c["message"]
                        .as_str()
                        .or(c["reason"].as_str())
                        .unwrap_or("no reason given")
                ));
            }
            let want = int_at(obj, &["spec", "completions"]).unwrap_or(1);
            match st("succeeded") >= want {
                true => Rollout::Ready,
                false => Rollout::Waiting(format!("{}/{want} completions", st("succeeded"))),
            }
        }
        _ if observed < generation => Rollout::Waiting("spec change not observed yet".into()),
        "Deployment" => {
            let progress_failed = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
            if progress_failed {
                return Rollout::Failed("progress deadline exceeded".into());
            }
            if st("updatedReplicas") < replicas {
                Rollout::Waiting(format!("{}/{replicas} updated", st("updatedReplicas")))
            } else if st("replicas") > st("updatedReplicas") {
                Rollout::Waiting(format!(
                    "{} old replicas pending termination",
                    st("replicas") - st("updatedReplicas")
                ))
            } else if st("availableReplicas") < replicas {
                Rollout::Waiting(format!("{}/{replicas} available", st("availableReplicas")))
            } else {
                Rollout::Ready
            }
        }
        "StatefulSet" => {
            let current = obj["status"]["currentRevision"].as_str();
            let update = obj["status"]["updateRevision"].as_str();
            if st("readyReplicas") < replicas {
                Rollout::Waiting(format!("{}/{replicas} ready", st("readyReplicas")))
            } else if update.is_some() && current != update {
                Rollout::Waiting(format!("{}/{replicas} updated", st("updatedReplicas")))
            } else {
                Rollout::Ready
            }
        }
        "DaemonSet" => {
            let want = st("desiredNumberScheduled");
            if st("updatedNumberScheduled") < want || st("numberAvailable") < want {
                Rollout::Waiting(format!("{}/{want} available", st("numberAvailable")))
            } else {
                Rollout::Ready
            }
        }
        _ => Rollout::Ready,
    }
}

/// Whether `deploy` waits for this kind.
pub fn awaited(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job")
}

/// The namespace a namespaced object is checked in by `deploy --dry-run` when the namespace it
/// belongs in is created by the stack and does not exist yet.
pub const SUBSTITUTE_NAMESPACE: &str = "default";

/// What `deploy` did (or, in a dry run, would do) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
    /// Applied, but whether it changed is unknown: the user may not read the object.
    Applied,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Applied => "applied",
        }
    }
}

/// Judge a server-side apply from the live object before it (`None`: there was none) and the
/// object the API server returned.
pub fn outcome(before: Option<&Value>, after: &Value) -> Outcome {
    match before {
        None => Outcome::Created,
        Some(b) if comparable(b) == comparable(after) => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    }
}

/// An object without what changes on its own: `status`, `resourceVersion`, `managedFields`.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

/// Counts of one `deploy --target kube`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    pub applied: usize,
    /// Dry run only: objects that could only be partly checked.
    pub partly: usize,
    pub failed: usize,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Created => self.created += 1,
            Outcome::Configured => self.configured += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Applied => self.applied += 1,
        }
    }

    /// Objects that changed (or may have).
    pub fn changed(&self) -> usize {
        self.created + self.configured + self.applied
    }

    /// `3 created, 1 configured, 20 unchanged` (zero counts left out).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.created, "created"),
            (self.configured, "configured"),
            (self.applied, "applied"),
            (self.unchanged, "unchanged"),
            (self.partly, "partly checked"),
            (self.failed, "failed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        parts.join(", ")
    }
}

/// How one step ended.
enum Done {
    /// Applied (or dry-run applied); the text says more (e.g. which Secret keys were added).
    Outcome(Outcome, String),
    /// Dry run: checked only partly, and why.
    Partly(String),
}

enum StepError {
    /// The cluster does not serve this kind (no CRD, or a removed API version).
    NotServed,
    Failed(String),
}

fn rejected(e: &kube::Error) -> StepError {
    StepError::Failed(format!("rejected by the API server: {}", api_error(e)))
}

/// Known CustomResourceDefinitions the stack or `audit` may meet, and how to get them.
const KNOWN_CRDS: &[(&str, &str)] = &[
    (
        "policies.kubewarden.io",
        "install Kubewarden first: helm install --wait -n kubewarden --create-namespace \
         kubewarden-crds kubewarden/kubewarden-crds, then kubewarden-controller and \
         kubewarden-defaults (deploy/README.md)",
    ),
    (
        "postgresql.cnpg.io",
        "install the CloudNativePG operator, which brings it (deploy/README.md, \
         HA PostgreSQL with CloudNativePG)",
    ),
    ("openreports.io", "kubectl apply -f deploy/reports/"),
    ("wgpolicyk8s.io", "kubectl apply -f deploy/reports/"),
];

/// Objects of kinds the cluster does not serve: (apiVersion, kind) → their names.
pub type Unserved = BTreeMap<(String, String), Vec<String>>;

/// One line per API group the cluster does not serve: the objects, the CustomResourceDefinitions
/// it lacks and how to install them (or, for a built-in group, that the apiVersion is wrong).
pub fn not_served(unserved: &Unserved) -> Vec<String> {
    // group → (apiVersion, kind, names)
    type KindNames<'a> = (&'a str, &'a str, &'a [String]);
    let mut by_group: BTreeMap<&str, Vec<KindNames>> = BTreeMap::new();
    for ((api_version, kind), names) in unserved {
        let (group, _) = crate::admission::group_version(api_version);
        by_group
            .entry(group)
            .or_default()
            .push((api_version, kind, names));
    }
    by_group
        .into_iter()
        .map(|(group, kinds)| {
            let objects: Vec<String> = kinds
                .iter()
                .map(|(_, kind, names)| format!("{kind} {}", names.join(", ")))
                .collect();
            let objects = objects.join("; ");
            let builtin = group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io");
            let served: Vec<String> = kinds
                .iter()
                .map(|(av, kind, _)| format!("{av} {kind}"))
                .collect();
            if builtin {
                return format!(
                    "FAILED     {objects}: the API server does not serve {}; is the apiVersion \
                     right for this Kubernetes version?",
                    served.join(", ")
                );
            }
            let crds: Vec<String> = kinds
                .iter()
                .map(|(_, kind, _)| format!("{}.{group}", crate::admission::resource_name(kind)))
                .collect();
            let how = KNOWN_CRDS
                .iter()
                .find(|(g, _)| *g == group)
                .map(|(_, how)| *how)
                .unwrap_or("install the CustomResourceDefinition (or the operator that brings it)");
            format!(
                "FAILED     {objects}: the cluster has no CustomResourceDefinition {} ({}); {how}",
                crds.join(", "),
                served.join(", ")
            )
        })
        .collect()
}

/// Discovered kinds (once per kind) and the CRDs the stack itself defines.
struct Kinds<'a> {
    client: &'a Client,
    cache: HashMap<String, Option<(ApiResource, bool)>>,
    /// (group, kind) of every CustomResourceDefinition in the stack.
    stack_crds: BTreeSet<(String, String)>,
}

impl<'a> Kinds<'a> {
    fn new(client: &'a Client, stack: &Stack) -> Self {
        let stack_crds = stack
            .objects
            .iter()
            .filter(|m| m.kind() == "CustomResourceDefinition")
            .map(|m| {
                (
                    m.str_at(&["spec", "group"]).to_string(),
                    m.str_at(&["spec", "names", "kind"]).to_string(),
                )
            })
            .collect();
        Kinds {
            client,
            cache: HashMap::new(),
            stack_crds,
        }
    }

    /// The API resource of `apiVersion`/`kind` and whether it is namespaced; `None` when the
    /// cluster does not serve it.
    async fn resolve(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, bool)>, String> {
        let key = format!("{api_version}/{kind}");
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let (group, version) = crate::admission::group_version(api_version);
        let found =
            match discovery::pinned_kind(self.client, &GroupVersionKind::gvk(group, version, kind))
                .await
            {
                Ok((ar, caps)) => Some((ar, caps.scope == Scope::Namespaced)),
                Err(kube::Error::Discovery(_)) => None,
                Err(e) if status_code(&e) == Some(404) => None,
                Err(e) => {
                    return Err(format!(
                        "discovering {api_version} {kind}: {}",
                        api_error(&e)
                    ));
                }
            };
        self.cache.insert(key, found.clone());
        Ok(found)
    }

    /// Is `kind` of `api_version` defined by a CRD of the stack (not installed yet)?
    fn defined_by_stack(&self, api_version: &str, kind: &str) -> bool {
        let (group, _) = crate::admission::group_version(api_version);
        self.stack_crds
            .contains(&(group.to_string(), kind.to_string()))
    }
}

fn api_of(client: &Client, ar: &ApiResource, namespaced: bool, ns: &str) -> Api<DynamicObject> {
    match (namespaced, ns) {
        (true, "") => Api::default_namespaced_with(client.clone(), ar),
        (true, ns) => Api::namespaced_with(client.clone(), ns, ar),
        (false, _) => Api::all_with(client.clone(), ar),
    }
}

/// Options of `deploy --target kube`.
pub struct KubeOptions {
    pub access: Access,
    pub dry_run: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// The namespaces the stack creates (its Namespace objects) that do not exist yet.
async fn namespaces_to_create(client: &Client, stack: &Stack) -> BTreeSet<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut out = BTreeSet::new();
    for m in stack.objects.iter().filter(|m| m.kind() == "Namespace") {
        // Unreadable (RBAC) counts as existing: the dry run then says what the server says.
        if let Ok(None) = api.get_opt(m.name()).await {
            out.insert(m.name().to_string());
        }
    }
    out
}

/// Apply the stack (server-side apply, field manager `stackguard`), one line per object.
pub async fn deploy(stack: &Stack, opts: &KubeOptions, progress: &Progress) -> Result<Tally> {
    let steps = plan_steps(stack)?;
    let client = opts.access.connect().await?.client;
    let mut kinds = Kinds::new(&client, stack);
    let absent = match opts.dry_run {
        true => namespaces_to_create(&client, stack).await,
        false => BTreeSet::new(),
    };
    let mut tally = Tally::default();
    // Kinds the cluster does not serve (a missing CRD): nothing is applied, one line per API
    // group says what to install, as the rest of the stack is of no use without them.
    let unserved = unserved_kinds(&mut kinds, stack).await;
    if !unserved.is_empty() {
        for line in not_served(&unserved) {
            progress.line(&line);
        }
        tally.failed = unserved.values().map(Vec::len).sum();
        progress
            .line("nothing applied: install what is missing, then run `stackguard deploy` again");
        return Ok(tally);
    }
    let mut not_served_objects = Unserved::new();
    let mut applied: Vec<(Api<DynamicObject>, &Manifest)> = Vec::new();
    let suffix = if opts.dry_run {
        " (server dry run)"
    } else {
        ""
    };
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = opts.dry_run;
    pp.field_validation = Some(ValidationDirective::Strict);
    for step in &steps {
        let (id, source, result) = match step {
            Step::Apply(m) => {
                let r = apply_manifest(&client, &mut kinds, m, &pp, &absent).await;
                if matches!(r, Ok(Done::Outcome(..)))
                    && awaited(m.kind())
                    && let Ok(Some((ar, namespaced))) =
                        kinds.resolve(m.api_version(), m.kind()).await
                {
                    applied.push((api_of(&client, &ar, namespaced, m.namespace()), m));
                }
                (m.id(), format!(" ({})", m.source), r)
            }
            Step::Secret(spec) => (
                format!("Secret {}/{}", spec.namespace, spec.name),
                String::new(),
                ensure_secret(&client, spec, opts.dry_run, &absent).await,
            ),
        };
        match result {
            Ok(Done::Outcome(o, detail)) => {
                tally.add(o);
                progress.line(&format!("{:<10} {id}{detail}{suffix}", o.word()));
            }
            Ok(Done::Partly(why)) => {
                tally.partly += 1;
                progress.line(&format!("partly     {id}: {why}{suffix}"));
            }
            Err(StepError::NotServed) => {
                if let Step::Apply(m) = step {
                    add_unserved(&mut not_served_objects, m);
                }
            }
            Err(StepError::Failed(why)) => {
                tally.failed += 1;
                progress.line(&format!("FAILED     {id}{source}: {why}"));
            }
        }
    }
    tally.failed += not_served_objects.values().map(Vec::len).sum::<usize>();
    for line in not_served(&not_served_objects) {
        progress.line(&line);
    }
    if tally.partly > 0 {
        progress.line(&format!(
            "{} object(s) only partly checked: their namespace does not exist yet (a real deploy \
             creates it first), so the API server checked them (schema, defaults, admission) in \
             namespace {SUBSTITUTE_NAMESPACE}; admission rules that depend on the namespace \
             (Pod Security labels, namespaceSelector) were not applied to them",
            tally.partly
        ));
    }
    if tally.failed > 0 {
        progress.line(&format!(
            "{} object(s) failed; fix them (or the cluster) and run `stackguard deploy` again: \
             applying is idempotent",
            tally.failed
        ));
        return Ok(tally);
    }
    if opts.wait && !opts.dry_run {
        wait_rollouts(&applied, opts.timeout, progress).await?;
    }
    Ok(tally)
}

fn add_unserved(unserved: &mut Unserved, m: &Manifest) {
    unserved
        .entry((m.api_version().to_string(), m.kind().to_string()))
        .or_default()
        .push(match m.namespace() {
            "" => m.name().to_string(),
            ns => format!("{ns}/{}", m.name()),
        });
}

/// The stack's objects whose kinds the cluster does not serve, leaving out the kinds the
/// stack's own CRDs define (those are resolved after their CRD is applied).
async fn unserved_kinds(kinds: &mut Kinds<'_>, stack: &Stack) -> Unserved {
    let mut out = Unserved::new();
    for m in &stack.objects {
        if kinds.defined_by_stack(m.api_version(), m.kind()) {
            continue;
        }
        // A discovery error is reported by the object's own step.
        if let Ok(None) = kinds.resolve(m.api_version(), m.kind()).await {
            add_unserved(&mut out, m);
        }
    }
    out
}

/// Server-side apply of one object, judged against the live object before it. In a dry run, an
/// object whose namespace the stack creates is checked in [`SUBSTITUTE_NAMESPACE`] instead.
async fn apply_manifest(
    client: &Client,
    kinds: &mut Kinds<'_>,
    m: &Manifest,
    pp: &PatchParams,
    absent: &BTreeSet<String>,
) -> Result<Done, StepError> {
    let resolved = kinds
        .resolve(m.api_version(), m.kind())
        .await
        .map_err(StepError::Failed)?;
    let Some((ar, namespaced)) = resolved else {
        if pp.dry_run && kinds.defined_by_stack(m.api_version(), m.kind()) {
            return Ok(Done::Partly(
                "not checked: its CustomResourceDefinition is part of this stack and is not \
                 installed yet"
                    .into(),
            ));
        }
        return Err(StepError::NotServed);
    };
    let obj: DynamicObject = serde_json::from_value(m.object.clone())
        .map_err(|e| StepError::Failed(format!("not a valid object: {e}")))?;
    if namespaced && absent.contains(m.namespace()) {
        return check_elsewhere(client, &ar, &m.object, m.namespace()).await;
    }
    let api = api_of(client, &ar, namespaced, m.namespace());
    // `None`: unknown (no right to read it); the apply itself may still be allowed.
    let before: Option<Option<Value>> = match api.get_opt(m.name()).await {
        Ok(b) => Some(b.map(|o| serde_json::to_value(o).unwrap_or(Value::Null))),
        Err(e) if status_code(&e) == Some(403) => None,
        Err(e) => return Err(rejected(&e)),
    };
    let after = api
        .patch(m.name(), pp, &Patch::Apply(&obj))
        .await
        .map_err(|e| rejected(&e))?;
    let after = serde_json::to_value(after).unwrap_or(Value::Null);
    let o = match &before {
        Some(b) => outcome(b.as_ref(), &after),
        None => Outcome::Applied,
    };
    Ok(Done::Outcome(o, String::new()))
}

/// Dry run of an object whose namespace does not exist yet: a dry-run create of the same
/// object in [`SUBSTITUTE_NAMESPACE`] (under a generated name when that name is taken there).
/// Schema errors (400, 422) are real failures; what the substitute namespace's admission,
/// quota or RBAC says is not (the real namespace may differ), so it is reported as partly
/// checked with the server's message.
async fn check_elsewhere(
    client: &Client,
    ar: &ApiResource,
    object: &Value,
    ns: &str,
) -> Result<Done, StepError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), SUBSTITUTE_NAMESPACE, ar);
    let pp = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let mut o = object.clone();
    o["metadata"]["namespace"] = json!(SUBSTITUTE_NAMESPACE);
    let as_dynamic = |o: &Value| {
        serde_json::from_value::<DynamicObject>(o.clone())
            .map_err(|e| StepError::Failed(format!("not a valid object: {e}")))
    };
    let mut result = api.create(&pp, &as_dynamic(&o)?).await;
    if matches!(&result, Err(e) if status_code(e) == Some(409)) {
        let name = str_at(&o, &["metadata", "name"]).to_string();
        if let Some(meta) = o["metadata"].as_object_mut() {
            meta.remove("name");
            meta.insert("generateName".into(), json!(format!("{name}-")));
        }
        result = api.create(&pp, &as_dynamic(&o)?).await;
    }
    match result {
        Ok(_) => Ok(Done::Partly(format!(
            "namespace {ns} does not exist yet; validated in namespace {SUBSTITUTE_NAMESPACE}"
        ))),
        Err(e) if matches!(status_code(&e), Some(400 | 422)) && !admission_denial(&e) => {
            Err(rejected(&e))
        }
        Err(e) => Ok(Done::Partly(format!(
            "namespace {ns} does not exist yet, and namespace {SUBSTITUTE_NAMESPACE} refused the \
             check: {}",
            api_error(&e)
        ))),
    }
}

/// Did an admission policy or webhook (rather than the schema) refuse the request? Their
/// messages say so: `… denied request: …` (ValidatingAdmissionPolicy, 422) or `admission
/// webhook "…" denied the request: …`.
fn admission_denial(e: &kube::Error) -> bool {
    let m = api_error(e);
    m.contains("denied request") || m.contains("denied the request")
}

/// A Secret as `deploy` creates it.
fn secret_object(spec: &SecretSpec, values: &BTreeMap<String, SecretValue>) -> Value {
    let string_data: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec.name, "namespace": spec.namespace,
                     "labels": {MANAGED_BY: FIELD_MANAGER}},
        "type": spec.type_,
        "stringData": string_data,
    })
}

/// Create a missing Secret, add missing keys to an existing one, never touch existing values.
async fn ensure_secret(
    client: &Client,
    spec: &SecretSpec,
    dry_run: bool,
    absent: &BTreeSet<String>,
) -> Result<Done, StepError> {
    let api: Api<Secret> = match spec.namespace.as_str() {
        "" => Api::default_namespaced(client.clone()),
        ns => Api::namespaced(client.clone(), ns),
    };
    let failed = |e: String| StepError::Failed(e);
    let existing = match absent.contains(&spec.namespace) {
        true => None,
        false => api.get_opt(&spec.name).await.map_err(|e| rejected(&e))?,
    };
    let keys: Option<BTreeSet<String>> = existing.map(|s| {
        s.data
            .unwrap_or_default()
            .into_keys()
            .chain(s.string_data.unwrap_or_default().into_keys())
            .collect()
    });
    match plan(spec, keys.as_ref(), random_token).map_err(|e| failed(e.to_string()))? {
        SecretPlan::Keep => Ok(Done::Outcome(
            Outcome::Unchanged,
            ": exists, values kept".into(),
        )),
        SecretPlan::Create(values) => {
            let object = secret_object(spec, &values);
            if absent.contains(&spec.namespace) {
                let ar = ApiResource::erase::<Secret>(&());
                return check_elsewhere(client, &ar, &object, &spec.namespace).await;
            }
            let secret: Secret =
                serde_json::from_value(object).map_err(|e| failed(e.to_string()))?;
            let pp = PostParams {
                dry_run,
                field_manager: Some(FIELD_MANAGER.into()),
            };
            api.create(&pp, &secret).await.map_err(|e| rejected(&e))?;
            Ok(Done::Outcome(
                Outcome::Created,
                format!(": {} key(s) set, values not shown", values.len()),
            ))
        }
        SecretPlan::AddKeys(values) => {
            let mut pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            pp.dry_run = dry_run;
            let object = secret_object(spec, &values);
            let patch = json!({"stringData": object["stringData"]});
            api.patch(&spec.name, &pp, &Patch::Merge(&patch))
                .await
                .map_err(|e| rejected(&e))?;
            let names: Vec<&str> = values.keys().map(String::as_str).collect();
            Ok(Done::Outcome(
                Outcome::Configured,
                format!(
                    ": added missing key(s) {} (existing values kept)",
                    names.join(", ")
                ),
            ))
        }
    }
}

async fn wait_rollouts(
    applied: &[(Api<DynamicObject>, &Manifest)],
    timeout: Duration,
    progress: &Progress,
) -> Result<()> {
    let mut pending: Vec<&(Api<DynamicObject>, &Manifest)> =
        applied.iter().filter(|(_, m)| awaited(m.kind())).collect();
    let pb = progress.bar(pending.len() as u64, "waiting for rollouts");
    let start = Instant::now();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for entry in pending {
            let (api, m) = entry;
            let state = match api.get(m.name()).await {
                Ok(o) => rollout_state(&serde_json::to_value(&o).unwrap_or(Value::Null)),
                Err(e) => Rollout::Waiting(api_error(&e)),
            };
            match state {
                Rollout::Ready => {
                    pb.inc(1);
                    pb.println(format!("ready   {}", m.id()));
                    if pb.is_hidden() {
                        progress.line(&format!("ready   {}", m.id()));
                    }
                }
                Rollout::Failed(why) => {
                    pb.finish_and_clear();
                    bail!(
                        "{}: {why}; see `kubectl -n {} describe {} {}`",
                        m.id(),
                        m.namespace(),
                        m.kind().to_lowercase(),
                        m.name()
                    );
                }
                Rollout::Waiting(why) => {
                    last.insert(m.id(), why);
                    still.push(entry);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if start.elapsed() > timeout {
            pb.finish_and_clear();
            let lines: Vec<String> = pending
                .iter()
                .map(|(_, m)| {
                    format!(
                        "  {}: {}",
                        m.id(),
                        last.get(&m.id()).map(String::as_str).unwrap_or("waiting")
                    )
                })
                .collect();
            bail!(
                "not ready after {} s:\n{}\n  inspect with `kubectl get pods -n <namespace>` and \
                 `kubectl describe`; raise --timeout, or use --no-wait",
                timeout.as_secs(),
                lines.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    pb.finish_and_clear();
    progress.line("all workloads are ready");
    Ok(())
}

/// The label `deploy` puts on the Secrets it generates.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The field managers of a live object.
pub fn managers(obj: &Value) -> BTreeSet<String> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("manager").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Did `deploy` apply (or create) this live object? Its field manager says so.
pub fn applied_by_stackguard(obj: &Value) -> bool {
    managers(obj).contains(FIELD_MANAGER)
}

/// `down --target kube`: delete what `deploy` applied, newest layers first. An object of the
/// stack that stackguard did not apply (no `stackguard` field manager) is left alone, and so is
/// everything else in the namespace. Secrets and the Namespace (with the volumes in it) only go
/// with `purge`, the Namespace only when stackguard alone manages it.
pub async fn down(
    stack: &Stack,
    access: &Access,
    purge: bool,
    progress: &Progress,
) -> Result<usize> {
    let client = access.connect().await?.client;
    let mut kinds = Kinds::new(&client, stack);
    let mut failures = 0;
    let mut objects: Vec<&Manifest> = stack
        .objects
        .iter()
        .filter(|m| m.kind() != "Namespace")
        .collect();
    objects.sort_by_key(|m| std::cmp::Reverse(apply_rank(m.kind())));
    for m in objects {
        let (ar, namespaced) = match kinds.resolve(m.api_version(), m.kind()).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                progress.line(&format!(
                    "absent     {}: the cluster does not serve {}",
                    m.id(),
                    m.api_version()
                ));
                continue;
            }
            Err(e) => {
                failures += 1;
                progress.line(&format!("FAILED     {}: {e}", m.id()));
                continue;
            }
        };
        let api = api_of(&client, &ar, namespaced, m.namespace());
        failures += delete_if_ours(&api, &m.id(), m.name(), progress).await;
    }
    if !purge {
        progress.line(
            "kept       Secrets, PersistentVolumeClaims and the Namespace; `down --purge` deletes them",
        );
        return Ok(failures);
    }
    for t in &stack.secret_templates {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            t.namespace(),
            &ApiResource::erase::<Secret>(&()),
        );
        failures += delete_if_ours(&api, &t.id(), t.name(), progress).await;
    }
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<Namespace>(&()));
    for m in stack.objects.iter().filter(|m| m.kind() == "Namespace") {
        let live = match namespaces.get_opt(m.name()).await {
            Ok(Some(o)) => serde_json::to_value(o).unwrap_or(Value::Null),
            Ok(None) => {
                progress.line(&format!("absent     {}", m.id()));
                continue;
            }
            Err(e) => {
                failures += 1;
                progress.line(&format!("FAILED     {}: {}", m.id(), api_error(&e)));
                continue;
            }
        };
        let others: Vec<String> = managers(&live)
            .into_iter()
            .filter(|x| x != FIELD_MANAGER)
            .collect();
        if !applied_by_stackguard(&live) || !others.is_empty() {
            progress.line(&format!(
                "kept       {}: not created by stackguard alone (also managed by {}); delete it yourself if it is yours to delete",
                m.id(),
                listed(&others, "nobody"),
            ));
            continue;
        }
        failures += delete_if_ours(&namespaces, &m.id(), m.name(), progress).await;
    }
    Ok(failures)
}

/// `a, b, c`, or `none` when there is nothing to list.
fn listed(items: &[String], none: &str) -> String {
    match items {
        [] => none.to_string(),
        _ => items.join(", "),
    }
}

/// Delete one object if stackguard applied it (its uid as a precondition, so a replacement
/// created meanwhile is safe). Returns the number of failures (0 or 1).
async fn delete_if_ours(
    api: &Api<DynamicObject>,
    id: &str,
    name: &str,
    progress: &Progress,
) -> usize {
    let live = match api.get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            progress.line(&format!("absent     {id}"));
            return 0;
        }
        Err(e) => {
            progress.line(&format!("FAILED     {id}: {}", api_error(&e)));
            return 1;
        }
    };
    if live.metadata.deletion_timestamp.is_some() {
        let finalizers = live.metadata.finalizers.clone().unwrap_or_default();
        progress.line(&format!(
            "deleting   {id}: being deleted already (finalizers: {})",
            listed(&finalizers, "none")
        ));
        return 0;
    }
    let uid = live.metadata.uid.clone();
    let value = serde_json::to_value(&live).unwrap_or(Value::Null);
    let labelled = str_at(&value, &["metadata", "labels", MANAGED_BY]) == FIELD_MANAGER;
    if !applied_by_stackguard(&value) && !labelled {
        let by: Vec<String> = managers(&value).into_iter().collect();
        progress.line(&format!(
            "kept       {id}: not applied by stackguard (managed by {})",
            listed(&by, "nobody known")
        ));
        return 0;
    }
    // Background propagation, as `kubectl delete`: the object goes now, its dependents (a
    // Job's pods, a StatefulSet's pods) with the garbage collector.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {
            progress.line(&format!("deleted    {id}"));
            0
        }
        Err(e) if status_code(&e) == Some(404) => {
            progress.line(&format!("absent     {id}"));
            0
        }
        Err(e) => {
            progress.line(&format!("FAILED     {id}: {}", api_error(&e)));
            1
        }
    }
}

async fn secret_values(api: &Api<Secret>, name: &str) -> Result<BTreeMap<String, SecretValue>> {
    let s = api
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("reading Secret {name}: {}", api_error(&e)))?;
    let mut out = BTreeMap::new();
    for (k, v) in s.data.unwrap_or_default() {
        let text = String::from_utf8(v.0)
            .with_context(|| format!("Secret {name}: key {k} is not text"))?;
        out.insert(k, SecretValue::new(text));
    }
    Ok(out)
}

/// A ready pod selected by `selector`.
async fn ready_pod(pods: &Api<Pod>, selector: &str) -> Result<String> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| anyhow::anyhow!("listing pods {selector}: {}", api_error(&e)))?;
    list.items
        .iter()
        .find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .and_then(|p| p.metadata.name.clone())
        .with_context(|| {
            format!("no ready pod with labels {selector}; is the stack deployed and rolled out?")
        })
}

/// Forward a local port to `port` of `pod` for as long as the process runs.
async fn port_forward(pods: Api<Pod>, pod: String, port: u16) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let Ok(mut pf) = pods.portforward(&pod, &[port]).await else {
                    return;
                };
                if let Some(mut upstream) = pf.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
                pf.abort();
            });
        }
    });
    Ok(addr)
}

/// uids of the container's main process (`/proc/1/status` read through `exec`).
async fn container_uids(pods: &Api<Pod>, pod: &str) -> Result<Vec<u32>, String> {
    let ap = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(false);
    let mut p = pods
        .exec(pod, ["cat", "/proc/1/status"], &ap)
        .await
        .map_err(|e| api_error(&e))?;
    let mut text = String::new();
    if let Some(mut out) = p.stdout() {
        out.read_to_string(&mut text)
            .await
            .map_err(|e| e.to_string())?;
    }
    let _ = p.join().await;
    super::local::parse_uids(&text).map_err(|e| format!("{pod}: {e}"))
}

/// How `verify` reaches the stack on a cluster: port-forwards to ready pods, Secrets read from
/// the API, uids read inside the containers.
pub async fn endpoints(stack: &Stack, access: &Access, ex: &Expectations) -> Result<Endpoints> {
    let client = access.connect().await?.client;
    let ns = stack
        .namespace()
        .context("the stack names no namespace")?
        .to_string();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pg = secret_values(&secrets, super::local::POSTGRES_SECRET).await?;
    let mut pg_passwords = BTreeMap::new();
    for (role, key) in ex.roles() {
        let v = pg
            .get(key)
            .with_context(|| format!("Secret {}: no key {key}", super::local::POSTGRES_SECRET))?;
        pg_passwords.insert(role.to_string(), v.clone());
    }
    let cache = secret_values(&secrets, super::local::CACHE_SECRET).await?;
    let cache_password = cache
        .get(super::local::CACHE_SECRET_KEY)
        .cloned()
        .with_context(|| {
            format!(
                "Secret {}: no key {}",
                super::local::CACHE_SECRET,
                super::local::CACHE_SECRET_KEY
            )
        })?;
    let mut addrs = BTreeMap::new();
    let mut processes = Vec::new();
    for (component, port) in [
        ("postgres", 5432),
        ("redis-cache", 6379),
        ("redis-pubsub", 6379),
    ] {
        let pod = ready_pod(&pods, &format!("app.kubernetes.io/name={component}")).await?;
        processes.push((
            format!("{component} ({pod})"),
            container_uids(&pods, &pod).await,
        ));
        addrs.insert(component, port_forward(pods.clone(), pod, port).await?);
    }
    Ok(Endpoints {
        postgres: addrs["postgres"],
        cache: addrs["redis-cache"],
        pubsub: addrs["redis-pubsub"],
        pg_passwords,
        cache_password,
        processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn m(kind: &str, name: &str) -> Manifest {
        Manifest {
            source: "test".into(),
            object: json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "ns"}}),
        }
    }

    fn stack(objects: Vec<Manifest>, templates: Vec<Manifest>) -> Stack {
        Stack {
            root: Path::new("test").into(),
            objects,
            secret_templates: templates,
        }
    }

    #[test]
    fn steps_follow_dependency_order_and_secrets_come_after_config() {
        let mut t = m("Secret", "db");
        t.object["metadata"]["annotations"] = json!({"stackguard.io/generate": "password"});
        let s = stack(
            vec![
                m("ClusterAdmissionPolicy", "p"),
                m("Job", "init"),
                m("StatefulSet", "db"),
                m("Service", "db"),
                m("ConfigMap", "init"),
                m("Namespace", "ns"),
                m("PodDisruptionBudget", "db"),
                m("Cluster", "pg"),
                m("ConfigMap", "settings"),
            ],
            vec![t],
        );
        let order: Vec<String> = plan_steps(&s)
            .unwrap()
            .iter()
            .map(|st| match st {
                Step::Apply(m) => format!("{}/{}", m.kind(), m.name()),
                Step::Secret(sp) => format!("secret/{}", sp.name),
            })
            .collect();
        assert_eq!(
            order,
            [
                "Namespace/ns",
                "ConfigMap/init",
                "ConfigMap/settings",
                "secret/db",
                "Service/db",
                "PodDisruptionBudget/db",
                "StatefulSet/db",
                "Cluster/pg",
                "Job/init",
                "ClusterAdmissionPolicy/p",
            ]
        );
    }

    #[test]
    fn a_secret_in_the_stack_that_is_also_templated_is_not_applied() {
        let mut t = m("Secret", "db");
        t.object["metadata"]["annotations"] = json!({"stackguard.io/generate": "password"});
        let s = stack(vec![m("Secret", "db"), m("Secret", "other")], vec![t]);
        let steps = plan_steps(&s).unwrap();
        assert_eq!(steps.len(), 2);
        assert!(matches!(&steps[0], Step::Apply(m) if m.name() == "other"));
        assert!(matches!(&steps[1], Step::Secret(sp) if sp.name == "db"));
    }

    #[test]
    fn outcomes_ignore_what_changes_on_its_own() {
        let before = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1",
            "managedFields": [{"manager": "stackguard", "time": "t1"}]}, "data": {"a": "1"}});
        let mut same = before.clone();
        same["metadata"]["resourceVersion"] = json!("2");
        same["metadata"]["managedFields"][0]["time"] = json!("t2");
        same["status"] = json!({"phase": "x"});
        assert_eq!(outcome(Some(&before), &same), Outcome::Unchanged);
        let mut changed = before.clone();
        changed["data"]["a"] = json!("2");
        assert_eq!(outcome(Some(&before), &changed), Outcome::Configured);
        assert_eq!(outcome(None, &before), Outcome::Created);
        let t = Tally {
            created: 2,
            unchanged: 3,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(t.summary(), "2 created, 3 unchanged, 1 failed");
        assert_eq!(t.changed(), 2);
    }

    #[test]
    fn a_missing_crd_group_is_one_line_with_how_to_install_it() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut u = Unserved::new();
        u.insert(
            (
                "policies.kubewarden.io/v1".into(),
                "ClusterAdmissionPolicy".into(),
            ),
            names(&["a", "b"]),
        );
        u.insert(
            ("policies.kubewarden.io/v1".into(), "PolicyServer".into()),
            names(&["ps"]),
        );
        u.insert(("example.com/v1".into(), "Widget".into()), names(&["w"]));
        u.insert(
            ("apps/v1beta1".into(), "Deployment".into()),
            names(&["n/d"]),
        );
        let lines = not_served(&u);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with(
                "FAILED     Deployment n/d: the API server does not serve apps/v1beta1 Deployment"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("widgets.example.com")
                && lines[1].contains("install the CustomResourceDefinition"),
            "{}",
            lines[1]
        );
        let l = &lines[2];
        assert!(l.starts_with("FAILED     ClusterAdmissionPolicy a, b; PolicyServer ps: the cluster has no CustomResourceDefinition clusteradmissionpolicies.policies.kubewarden.io, policyservers.policies.kubewarden.io ("), "{l}");
        assert!(l.contains("helm install --wait -n kubewarden --create-namespace kubewarden-crds kubewarden/kubewarden-crds"));
    }

    #[test]
    fn field_managers_say_what_stackguard_applied() {
        let o = json!({"metadata": {"managedFields": [{"manager": "kubectl"}, {"manager": "stackguard"}]}});
        assert!(applied_by_stackguard(&o));
        assert_eq!(managers(&o).len(), 2);
        assert!(!applied_by_stackguard(&json!({"metadata": {}})));
    }

    #[test]
    fn rollout_states() {
        let sts = |ready: i64, cur: &str, upd: &str| {
            json!({"kind": "StatefulSet", "metadata": {"generation": 2}, "spec": {"replicas": 3},
                   "status": {"observedGeneration": 2, "readyReplicas": ready, "updatedReplicas": ready,
                              "currentRevision": cur, "updateRevision": upd}})
        };
        assert_eq!(rollout_state(&sts(3, "a", "a")), Rollout::Ready);
        assert_eq!(
            rollout_state(&sts(1, "a", "a")),
            Rollout::Waiting("1/3 ready".into())
        );
        assert!(matches!(
            rollout_state(&sts(3, "a", "b")),
            Rollout::Waiting(_)
        ));
        let mut stale = sts(3, "a", "a");
        stale["status"]["observedGeneration"] = json!(1);
        assert!(matches!(rollout_state(&stale), Rollout::Waiting(w) if w.contains("not observed")));

        let dep = json!({"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2},
                         "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(
            rollout_state(&dep),
            Rollout::Waiting("1/2 available".into())
        );
        let mut stuck = dep.clone();
        stuck["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert!(matches!(rollout_state(&stuck), Rollout::Failed(_)));

        let job = json!({"kind": "Job", "metadata": {"generation": 1}, "spec": {}, "status": {"succeeded": 1}});
        assert_eq!(rollout_state(&job), Rollout::Ready);
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(
            rollout_state(&failed),
            Rollout::Failed("job failed: BackoffLimitExceeded".into())
        );
        assert!(awaited("StatefulSet") && awaited("Job") && !awaited("Service"));
    }
}
