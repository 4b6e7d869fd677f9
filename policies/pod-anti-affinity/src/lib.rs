//! `pod-anti-affinity`: Deployments, StatefulSets, ReplicaSets and ReplicationControllers with
//! `replicas` ≥ `minReplicas` (unset means 1) spread their own pods across nodes or zones.
//!
//! A `podAntiAffinity` term counts when its `topologyKey` is allowed, it covers the workload's
//! own namespace (`namespaces` / `namespaceSelector`, upstream semantics: neither set means the
//! pod's own namespace) and its label selector (plus `matchLabelKeys` / `mismatchLabelKeys`)
//! selects the pod template's own labels. A `topologySpreadConstraints` entry with an allowed key
//! and a selector matching the pods counts too. A term that selects other pods does not count,
//! and the message says why.
//!
//! Mutation (`mutate: true`): a workload that must spread and does not gets a
//! `preferredDuringSchedulingIgnoredDuringExecution` term (weight 100, `defaultTopologyKey`)
//! whose `matchLabels` are the pod template's own labels, without the per-revision labels
//! controllers add (`pod-template-hash` and the like); existing terms are kept, ours is added
//! beside them. A template without such labels cannot be fixed and stays a rejection.
//!
//! Not context-aware: a `namespaceSelector` is judged by the one label every namespace carries,
//! `kubernetes.io/metadata.name`.

pub mod settings;

use serde::Deserialize;
use serde_json::{Value, json};
use settings::Settings;
use stackguard_common::de::null_default;
use stackguard_common::mutate::Fix;
use stackguard_common::selector::{self, Labels, Operator, Requirement, Selection};
use stackguard_common::workload::{
    Affinity, Container, LabelSelector, PodAffinityTerm, PodSpecView, TopologySpreadConstraint,
    Workload,
};
use stackguard_common::{ClusterContext, Policy, Request, Verdict};

pub struct PodAntiAffinity;

impl Policy for PodAntiAffinity {
    const NAME: &'static str = "pod-anti-affinity";
    const KINDS: &'static [&'static str] = &[
        "Deployment",
        "StatefulSet",
        "ReplicaSet",
        "ReplicationController",
    ];
    type Settings = Settings;

    fn evaluate(req: &Request<'_>, settings: &Settings, _ctx: &dyn ClusterContext) -> Verdict {
        let w = match Workload::<Spec>::parse(req) {
            Ok(Some(w)) => w,
            Ok(None) => return Verdict::accept(),
            Err(e) => return Verdict::reject("", e),
        };
        let replicas = w.replicas.unwrap_or(1);
        if replicas < settings.min_replicas {
            return Verdict::accept();
        }
        let namespace = [req.namespace, w.metadata.namespace.as_str()]
            .into_iter()
            .find(|n| !n.is_empty())
            .unwrap_or("default");
        let check = Check {
            settings,
            namespace,
            labels: &w.pod_labels,
        };
        match check.candidates(&w) {
            Ok(()) => Verdict::accept(),
            Err(misses) => {
                let path = format!("{}.affinity.podAntiAffinity", w.spec_path);
                let mut v = Verdict::accept();
                match spreading_term(&w.pod_labels, &settings.default_topology_key) {
                    Some(term) => {
                        let fix = Fix::append(
                            format!("{path}.preferredDuringSchedulingIgnoredDuringExecution"),
                            term,
                        );
                        v.push_fixable(path, check.summary(replicas), fix);
                    }
                    None => v.push(path, check.summary(replicas)),
                }
                for (path, why) in misses {
                    v.push(path, format!("does not count: {why}"));
                }
                v
            }
        }
    }

    fn mutate_setting(settings: &Settings) -> Option<bool> {
        Some(settings.mutate)
    }
}

/// Labels that controllers add to the pods of one revision or one replica: a selector on them
/// would not select the workload's other pods.
const UNSTABLE_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
];

/// What mutation adds: a preferred term (weight 100) keeping the pods apart on `topology_key`,
/// selecting the pod template's own stable labels; `None` when the template has none.
fn spreading_term(labels: &Labels, topology_key: &str) -> Option<Value> {
    let stable: serde_json::Map<String, Value> = labels
        .iter()
        .filter(|(k, _)| !UNSTABLE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    (!stable.is_empty()).then(|| {
        json!({
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": stable},
                "topologyKey": topology_key,
            },
        })
    })
}

/// The pod spec fields this policy reads: no containers at all.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    affinity: Option<Affinity>,
    #[serde(default, deserialize_with = "null_default")]
    topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

impl PodSpecView for Spec {
    type Container = Container;
    fn container_lists(&self) -> [&[Container]; 3] {
        [&[], &[], &[]]
    }
}

struct Check<'a> {
    settings: &'a Settings,
    namespace: &'a str,
    labels: &'a Labels,
}

impl Check<'_> {
    /// `Ok` when some term or constraint spreads the pods, else why each one does not.
    fn candidates(&self, w: &Workload<Spec>) -> Result<(), Vec<(String, String)>> {
        let mut misses = Vec::new();
        let base = format!("{}.affinity.podAntiAffinity", w.spec_path);
        let anti = w
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref());
        if let Some(anti) = anti {
            for (i, term) in anti.required.iter().enumerate() {
                let path = format!("{base}.requiredDuringSchedulingIgnoredDuringExecution[{i}]");
                match self.term(term) {
                    Ok(()) => return Ok(()),
                    Err(why) => misses.push((path, why)),
                }
            }
            for (i, weighted) in anti.preferred.iter().enumerate() {
                let path = format!(
                    "{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}].podAffinityTerm"
                );
                let verdict = if self.settings.require_hard {
                    Err("a preferred term does not count with requireHard: true".to_string())
                } else {
                    self.term(&weighted.pod_affinity_term)
                };
                match verdict {
                    Ok(()) => return Ok(()),
                    Err(why) => misses.push((path, why)),
                }
            }
        }
        if self.settings.accept_topology_spread_constraints {
            for (i, c) in w.spec.topology_spread_constraints.iter().enumerate() {
                let path = format!("{}.topologySpreadConstraints[{i}]", w.spec_path);
                let verdict =
                    if self.settings.require_hard && c.when_unsatisfiable == "ScheduleAnyway" {
                        Err(
                        "whenUnsatisfiable: ScheduleAnyway does not count with requireHard: true"
                            .to_string(),
                    )
                    } else {
                        self.topology_key(&c.topology_key).and_then(|()| {
                            self.selects_own_pods(
                                c.label_selector.as_ref(),
                                &self.label_keys(&c.match_label_keys, Operator::In),
                            )
                        })
                    };
                match verdict {
                    Ok(()) => return Ok(()),
                    Err(why) => misses.push((path, why)),
                }
            }
        }
        Err(misses)
    }

    /// Does one pod anti-affinity term keep this workload's own pods apart?
    fn term(&self, term: &PodAffinityTerm) -> Result<(), String> {
        self.topology_key(&term.topology_key)?;
        self.covers_namespace(term)?;
        let mut extra = self.label_keys(&term.match_label_keys, Operator::In);
        extra.extend(self.label_keys(&term.mismatch_label_keys, Operator::NotIn));
        self.selects_own_pods(term.label_selector.as_ref(), &extra)
    }

    /// Does the selector (with `extra` requirements) select the pod template's labels?
    fn selects_own_pods(
        &self,
        sel: Option<&LabelSelector>,
        extra: &[Requirement],
    ) -> Result<(), String> {
        match selector::select(sel, extra, self.labels) {
            Err(e) => Err(format!("invalid labelSelector: {e}")),
            Ok(Selection::Selected) => Ok(()),
            Ok(Selection::NotSelected(why)) if sel.is_none() => Err(why),
            Ok(Selection::NotSelected(why)) => Err(format!(
                "it selects other pods, not this workload's own: {why}"
            )),
        }
    }

    fn topology_key(&self, key: &str) -> Result<(), String> {
        if key.is_empty() {
            Err("it has no topologyKey".to_string())
        } else if self.settings.topology_keys.iter().any(|k| k == key) {
            Ok(())
        } else {
            Err(format!(
                "its topologyKey {key} is not one of {}",
                self.settings.topology_keys.join(", ")
            ))
        }
    }

    /// Upstream: the term applies to `namespaces` ∪ the namespaces `namespaceSelector` selects;
    /// with neither set, to the pod's own namespace; `namespaceSelector: {}` means all.
    fn covers_namespace(&self, term: &PodAffinityTerm) -> Result<(), String> {
        let ns = self.namespace;
        let by_selector = match &term.namespace_selector {
            None => false,
            Some(sel) => {
                let ns_labels =
                    Labels::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]);
                match selector::select(Some(sel), &[], &ns_labels) {
                    Err(e) => return Err(format!("invalid namespaceSelector: {e}")),
                    Ok(s) => s == Selection::Selected,
                }
            }
        };
        let own_only = term.namespaces.is_empty() && term.namespace_selector.is_none();
        if own_only || by_selector || term.namespaces.iter().any(|n| n == ns) {
            return Ok(());
        }
        let mut scope = Vec::new();
        if !term.namespaces.is_empty() {
            scope.push(format!("namespaces: {}", term.namespaces.join(", ")));
        }
        if term.namespace_selector.is_some() {
            scope.push(format!(
                "its namespaceSelector does not select {ns} by its label kubernetes.io/metadata.name"
            ));
        }
        Err(format!(
            "it selects pods in other namespaces, not this workload's namespace {ns} ({})",
            scope.join("; ")
        ))
    }

    /// `matchLabelKeys` / `mismatchLabelKeys`: keys the pod carries become `key in (value)` /
    /// `key notin (value)`; keys it lacks are ignored, as upstream does.
    fn label_keys(&self, keys: &[String], operator: Operator) -> Vec<Requirement> {
        keys.iter()
            .filter_map(|k| {
                self.labels
                    .get(k)
                    .map(|v| Requirement::new(k.clone(), operator, vec![v.clone()]))
            })
            .collect()
    }

    fn summary(&self, replicas: i64) -> String {
        let s = self.settings;
        let labels = if self.labels.is_empty() {
            "none".to_string()
        } else {
            let pairs: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            pairs.join(",")
        };
        format!(
            "{replicas} replicas are not spread: add a podAntiAffinity term ({}){} with topologyKey \
             {} whose labelSelector selects the pod template's own labels ({labels})",
            if s.require_hard {
                "requiredDuringSchedulingIgnoredDuringExecution"
            } else {
                "required or preferred"
            },
            if s.accept_topology_spread_constraints {
                " or a topologySpreadConstraints entry"
            } else {
                ""
            },
            s.topology_keys.join(" or "),
        )
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    stackguard_common::guest::register::<PodAntiAffinity>();
}
