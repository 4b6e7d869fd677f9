//! Workload extraction: find the pod spec of every workload kind and type the fields rules read.
//!
//! Kinds and where their pod spec lives:
//! Pod `spec`; Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController, Job
//! `spec.template.spec`; CronJob `spec.jobTemplate.spec.template.spec`.

use crate::Verdict;
use crate::de::{IntOrString, null_default};
use crate::request::{Metadata, Request};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The workload kinds followed by `extra` kinds, as a `&[&str]` for `Policy::KINDS`:
/// `workload_kinds_and!("ConfigMap", "Secret")`.
#[macro_export]
macro_rules! workload_kinds_and {
    ($($extra:literal),* $(,)?) => {
        &[
            "Pod",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "ReplicationController",
            "Job",
            "CronJob",
            $($extra),*
        ]
    };
}

/// Every kind that carries a pod template.
pub const WORKLOAD_KINDS: &[&str] = workload_kinds_and!();

/// A typed view of a pod spec: the fields one rule reads. Deserialising only those (unknown
/// fields are skipped without allocating) is most of a policy's evaluation time; [`PodSpec`]
/// is the full shared view, policies may declare narrower ones.
pub trait PodSpecView: DeserializeOwned {
    type Container: ContainerView;
    /// Init containers, containers, ephemeral containers (a list the view skips is empty).
    fn container_lists(&self) -> [&[Self::Container]; 3];
}

/// What every container view has: a name and an image.
pub trait ContainerView {
    fn name(&self) -> &str;
    fn image(&self) -> &str;
}

impl PodSpecView for PodSpec {
    type Container = Container;
    fn container_lists(&self) -> [&[Container]; 3] {
        [
            &self.init_containers,
            &self.containers,
            &self.ephemeral_containers,
        ]
    }
}

impl ContainerView for Container {
    fn name(&self) -> &str {
        &self.name
    }
    fn image(&self) -> &str {
        &self.image
    }
}

/// A workload reduced to what the rules read (`S`: the pod spec view).
#[derive(Debug, Clone, Default)]
pub struct Workload<S = PodSpec> {
    pub metadata: Metadata,
    /// `spec.replicas` where the kind has it (unset means 1 for replicated kinds).
    pub replicas: Option<i64>,
    /// Labels of the pods this workload creates (a Pod's own labels).
    pub pod_labels: BTreeMap<String, String>,
    /// Field path of the pod spec, e.g. `spec.template.spec`.
    pub spec_path: &'static str,
    pub spec: S,
}

impl Workload {
    /// Parse the workload in `req` with the full [`PodSpec`] view; `Ok(None)` for kinds
    /// without a pod spec or an absent spec.
    pub fn from_request(req: &Request<'_>) -> Result<Option<Workload>, String> {
        Self::parse(req)
    }
}

impl<S: PodSpecView> Workload<S> {
    /// Parse the workload in `req` with the pod spec view `S`.
    pub fn parse(req: &Request<'_>) -> Result<Option<Workload<S>>, String> {
        let w = match req.kind {
            "Pod" => {
                let o: PodObject<S> = req.object.parse()?;
                o.spec.map(|spec| Workload {
                    pod_labels: o.metadata.labels.clone(),
                    metadata: o.metadata,
                    replicas: None,
                    spec_path: "spec",
                    spec,
                })
            }
            "CronJob" => {
                let o: CronJobObject<S> = req.object.parse()?;
                o.spec
                    .and_then(|s| s.job_template)
                    .and_then(|j| j.spec)
                    .and_then(|j| j.template)
                    .and_then(|t| {
                        let labels = t.metadata.labels;
                        t.spec.map(|spec| Workload {
                            metadata: o.metadata,
                            replicas: None,
                            pod_labels: labels,
                            spec_path: "spec.jobTemplate.spec.template.spec",
                            spec,
                        })
                    })
            }
            "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicationController"
            | "Job" => {
                let o: TemplatedObject<S> = req.object.parse()?;
                o.spec.and_then(|s| {
                    let replicas = s.replicas;
                    s.template.and_then(|t| {
                        let labels = t.metadata.labels;
                        t.spec.map(|spec| Workload {
                            metadata: o.metadata,
                            replicas,
                            pod_labels: labels,
                            spec_path: "spec.template.spec",
                            spec,
                        })
                    })
                })
            }
            _ => None,
        };
        Ok(w)
    }

    /// Every container with its field path and role, in manifest order:
    /// init containers, containers, ephemeral containers.
    pub fn containers(&self) -> impl Iterator<Item = ContainerRef<'_, S::Container>> {
        let [init, app, ephemeral] = self.spec.container_lists();
        let lists = [
            ("initContainers", ContainerRole::Init, init),
            ("containers", ContainerRole::App, app),
            ("ephemeralContainers", ContainerRole::Ephemeral, ephemeral),
        ];
        let spec_path = self.spec_path;
        lists.into_iter().flat_map(move |(field, role, list)| {
            list.iter().enumerate().map(move |(i, c)| ContainerRef {
                path: format!("{spec_path}.{field}[{i}]"),
                role,
                container: c,
            })
        })
    }
}

/// The skeleton every per-container rule shares: parse the workload (an unparseable object is
/// one finding naming the field), skip containers whose image matches `exempt_images`, and run
/// `check` on every other container. Kinds without a pod spec are accepted.
pub fn check_containers<S: PodSpecView>(
    req: &Request<'_>,
    exempt_images: &[String],
    mut check: impl FnMut(&Workload<S>, &ContainerRef<'_, S::Container>, &mut Verdict),
) -> Verdict {
    let workload = match Workload::<S>::parse(req) {
        Ok(Some(w)) => w,
        Ok(None) => return Verdict::accept(),
        Err(e) => return Verdict::reject("", e),
    };
    let mut verdict = Verdict::accept();
    for c in workload.containers() {
        if !crate::glob::any_match(exempt_images, c.container.image()) {
            check(&workload, &c, &mut verdict);
        }
    }
    verdict
}

/// Which list a container sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerRole {
    Init,
    App,
    Ephemeral,
}

impl ContainerRole {
    /// Word used in messages: "container", "init container", "ephemeral container".
    pub fn noun(self) -> &'static str {
        match self {
            ContainerRole::Init => "init container",
            ContainerRole::App => "container",
            ContainerRole::Ephemeral => "ephemeral container",
        }
    }
}

/// A container with the path to it, e.g. `spec.template.spec.containers[1]`.
#[derive(Debug, Clone)]
pub struct ContainerRef<'a, C = Container> {
    pub path: String,
    pub role: ContainerRole,
    pub container: &'a C,
}

impl<C: ContainerView> ContainerRef<'_, C> {
    /// `container 'db'` / `init container 'setup'`.
    pub fn describe(&self) -> String {
        format!("{} '{}'", self.role.noun(), self.container.name())
    }
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct PodObject<S> {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<S>,
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct TemplatedObject<S> {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<TemplatedSpec<S>>,
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct TemplatedSpec<S> {
    #[serde(default)]
    replicas: Option<i64>,
    #[serde(default)]
    template: Option<PodTemplate<S>>,
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct PodTemplate<S> {
    #[serde(default, deserialize_with = "null_default")]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<S>,
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct CronJobObject<S> {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<CronJobSpec<S>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound = "S: Deserialize<'de>")]
struct CronJobSpec<S> {
    #[serde(default)]
    job_template: Option<JobTemplate<S>>,
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct JobTemplate<S> {
    #[serde(default)]
    spec: Option<JobSpec<S>>,
}

#[derive(Deserialize)]
#[serde(bound = "S: Deserialize<'de>")]
struct JobSpec<S> {
    #[serde(default)]
    template: Option<PodTemplate<S>>,
}

/// `PodSpec`, only the fields stackguard rules read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default, deserialize_with = "null_default")]
    pub containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_default")]
    pub init_containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_default")]
    pub ephemeral_containers: Vec<Container>,
    #[serde(default)]
    pub affinity: Option<Affinity>,
    #[serde(default, deserialize_with = "null_default")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, deserialize_with = "null_default")]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub os: Option<PodOs>,
}

/// `spec.os`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodOs {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

impl PodOs {
    /// `spec.os.name: windows`: Pod Security Standards exempt such pods from Linux-only checks.
    pub fn is_windows(os: Option<&PodOs>) -> bool {
        os.is_some_and(|os| os.name == "windows")
    }
}

/// `Container` (also used for init and ephemeral containers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub image: String,
    #[serde(default, deserialize_with = "null_default")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, deserialize_with = "null_default")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// Pod- or container-level `securityContext` (pod level lacks some fields; they stay `None`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub privileged: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default, deserialize_with = "null_default")]
    pub add: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub drop: Vec<String>,
}

/// `resources`: quantities kept as text, parsed by the rules that compare them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceRequirements {
    #[serde(default, deserialize_with = "null_default")]
    pub requests: BTreeMap<String, IntOrString>,
    #[serde(default, deserialize_with = "null_default")]
    pub limits: BTreeMap<String, IntOrString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

/// A container `command`/`args` word after Kubernetes' `$(VAR)` expansion: `$(VAR)` becomes
/// the value of an env var given literally, `$$` is a `$`, and a reference to a var that is not
/// defined stays as written. `None` when the word uses a var whose value comes from elsewhere
/// (a Secret, a ConfigMap, the downward API).
pub fn kube_expand(word: &str, env: &[EnvVar]) -> Option<String> {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some((name, r)) = after
            .strip_prefix('(')
            .and_then(|a| a.find(')').map(|e| (&a[..e], &a[e + 1..])))
        {
            // The last definition of a name wins, as in the kubelet.
            match env.iter().rev().find(|e| e.name == name) {
                Some(e) if e.value_from.is_some() => return None,
                Some(e) => out.push_str(e.value.as_deref().unwrap_or_default()),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = r;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub secret_key_ref: Option<KeyRef>,
    pub config_map_key_ref: Option<KeyRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyRef {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub mount_path: String,
    #[serde(default)]
    pub sub_path: Option<String>,
}

/// `Volume`: the sources rules follow (ConfigMaps, Secrets, projected).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    pub config_map: Option<ConfigMapVolume>,
    pub secret: Option<SecretVolume>,
    pub projected: Option<ProjectedVolume>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapVolume {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub items: Vec<KeyToPath>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolume {
    #[serde(default, deserialize_with = "null_default")]
    pub secret_name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyToPath {
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProjectedVolume {
    #[serde(default, deserialize_with = "null_default")]
    pub sources: Vec<ProjectedSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectedSource {
    pub config_map: Option<ConfigMapVolume>,
}

/// `affinity`, only pod anti-affinity is read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    pub pod_anti_affinity: Option<PodAntiAffinity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAntiAffinity {
    #[serde(
        default,
        deserialize_with = "null_default",
        rename = "requiredDuringSchedulingIgnoredDuringExecution"
    )]
    pub required: Vec<PodAffinityTerm>,
    #[serde(
        default,
        deserialize_with = "null_default",
        rename = "preferredDuringSchedulingIgnoredDuringExecution"
    )]
    pub preferred: Vec<WeightedPodAffinityTerm>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedPodAffinityTerm {
    #[serde(default)]
    pub weight: i64,
    #[serde(default)]
    pub pod_affinity_term: PodAffinityTerm,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    pub label_selector: Option<LabelSelector>,
    #[serde(default, deserialize_with = "null_default")]
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, deserialize_with = "null_default")]
    pub topology_key: String,
    /// Label keys whose values (taken from the incoming pod) are ANDed as `key in (value)`.
    #[serde(default, deserialize_with = "null_default")]
    pub match_label_keys: Vec<String>,
    /// Label keys whose values are ANDed as `key notin (value)`.
    #[serde(default, deserialize_with = "null_default")]
    pub mismatch_label_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    #[serde(default)]
    pub max_skew: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub topology_key: String,
    #[serde(default, deserialize_with = "null_default")]
    pub when_unsatisfiable: String,
    pub label_selector: Option<LabelSelector>,
    /// Label keys whose values (taken from the incoming pod) are ANDed to the selector.
    #[serde(default, deserialize_with = "null_default")]
    pub match_label_keys: Vec<String>,
}

/// `metav1.LabelSelector` (serialisable: policy settings embed it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, deserialize_with = "null_default")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct LabelSelectorRequirement {
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    #[serde(default, deserialize_with = "null_default")]
    pub operator: String,
    #[serde(default, deserialize_with = "null_default")]
    pub values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Object, Operation};

    fn req<'a>(kind: &'a str, v: &'a serde_json::Value) -> Request<'a> {
        Request {
            operation: Operation::Create,
            kind,
            namespace: "",
            name: "",
            object: Object::Value(v),
        }
    }

    #[test]
    fn cronjob_pod_spec_is_found() {
        let v = serde_json::json!({"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "x", "image": "busybox"}], "initContainers": null}}}}}});
        let w = Workload::from_request(&req("CronJob", &v))
            .unwrap()
            .unwrap();
        let c: Vec<_> = w.containers().collect();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].path,
            "spec.jobTemplate.spec.template.spec.containers[0]"
        );
        assert_eq!(w.pod_labels.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn bad_shape_names_the_field() {
        let v = serde_json::json!({"spec": {"template": {"spec": {"containers": "oops"}}}});
        let err = Workload::from_request(&req("Deployment", &v)).unwrap_err();
        assert!(err.contains("spec.template.spec.containers"), "{err}");
    }

    #[test]
    fn other_kinds_have_no_workload() {
        let v = serde_json::json!({"data": {}});
        assert!(
            Workload::from_request(&req("ConfigMap", &v))
                .unwrap()
                .is_none()
        );
    }
}
