//! `resource-limits`: every container and init container declares CPU and memory requests and
//! limits, within optional bounds, and no request exceeds its limit.
//!
//! Quantities are compared exactly as Kubernetes `resource.Quantity` does (`500m` = `0.5`,
//! `1Gi` ≠ `1G`, `1e9` = `1G`). Ephemeral containers are not checked: the API does not allow
//! them to declare resources.
//!
//! Mutation (`mutate: true`): a missing limit the policy requires gets `defaultLimits`; a missing
//! request gets `defaultRequests`, never above the container's limit (declared or filled in):
//! then the limit, and without a default request the limit itself, as the API server defaults
//! requests from limits. Declared values are never changed.

pub mod settings;

use serde::Deserialize;
use serde_json::Value;
use settings::Settings;
use stackguard_common::de::{IntOrString, null_default};
use stackguard_common::mutate::Fix;
use stackguard_common::quantity::Spelled;
use stackguard_common::workload::{
    ContainerRef, ContainerView, PodSpecView, ResourceRequirements, WORKLOAD_KINDS,
    check_containers,
};
use stackguard_common::{ClusterContext, Policy, Request, Verdict};
use std::collections::BTreeMap;

pub struct ResourceLimits;

impl Policy for ResourceLimits {
    const NAME: &'static str = "resource-limits";
    const KINDS: &'static [&'static str] = WORKLOAD_KINDS;
    type Settings = Settings;

    fn evaluate(req: &Request<'_>, settings: &Settings, _ctx: &dyn ClusterContext) -> Verdict {
        check_containers::<Spec>(req, &settings.exempt_images, |_, c, v| {
            check_container(c, settings, v)
        })
    }

    fn mutate_setting(settings: &Settings) -> Option<bool> {
        Some(settings.mutate)
    }
}

/// The pod spec fields this policy reads: containers and init containers with their resources
/// (ephemeral containers cannot declare resources and are not even parsed).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default, deserialize_with = "null_default")]
    containers: Vec<Ctr>,
    #[serde(default, deserialize_with = "null_default")]
    init_containers: Vec<Ctr>,
}

#[derive(Deserialize)]
pub struct Ctr {
    #[serde(default, deserialize_with = "null_default")]
    name: String,
    #[serde(default, deserialize_with = "null_default")]
    image: String,
    #[serde(default)]
    resources: Option<ResourceRequirements>,
}

impl PodSpecView for Spec {
    type Container = Ctr;
    fn container_lists(&self) -> [&[Ctr]; 3] {
        [&self.init_containers, &self.containers, &[]]
    }
}

impl ContainerView for Ctr {
    fn name(&self) -> &str {
        &self.name
    }
    fn image(&self) -> &str {
        &self.image
    }
}

/// A declared request or limit: `Ok(None)` when absent; an unparseable or negative quantity
/// becomes a finding and `Err(())`.
fn declared(
    c: &ContainerRef<'_, Ctr>,
    field: &str,
    resource: &str,
    list: Option<&BTreeMap<String, IntOrString>>,
    v: &mut Verdict,
) -> Result<Option<Spelled>, ()> {
    let Some(raw) = list.and_then(|l| l.get(resource)) else {
        return Ok(None);
    };
    let path = || format!("{}.resources.{field}.{resource}", c.path);
    match Spelled::parse(&raw.0) {
        Ok(q) if q.value.is_negative() => {
            v.push(
                path(),
                format!("{} declares a negative {field}.{resource}", c.describe()),
            );
            Err(())
        }
        Ok(q) => Ok(Some(q)),
        Err(e) => {
            v.push(path(), format!("{}: {field}.{resource}: {e}", c.describe()));
            Err(())
        }
    }
}

fn check_container(c: &ContainerRef<'_, Ctr>, s: &Settings, v: &mut Verdict) {
    let resources = c.container.resources.as_ref();
    let requests = resources.map(|r| &r.requests);
    let limits = resources.map(|r| &r.limits);
    let who = c.describe();
    let checks = [
        ("cpu", s.require_cpu_request, s.require_cpu_limit),
        ("memory", s.require_memory_request, s.require_memory_limit),
    ];
    for (resource, need_request, need_limit) in checks {
        let request = declared(c, "requests", resource, requests, v);
        let limit = declared(c, "limits", resource, limits, v);
        let path = |field: &str| format!("{}.resources.{field}.{resource}", c.path);
        // What mutation fills in: the default limit where the limit is missing, and where the
        // request is missing the default request, capped at the container's limit (declared or
        // filled in), or else that limit, as the API server defaults requests from limits.
        let fill_limit = match &limit {
            Ok(None) if need_limit => s.default_limits.get(resource),
            _ => None,
        };
        let effective_limit = match &limit {
            Ok(Some(l)) => Some(l),
            _ => fill_limit,
        };
        let fill_request = match (s.default_requests.get(resource), effective_limit) {
            (Some(d), Some(l)) if l.value < d.value => Some(l),
            (Some(d), _) => Some(d),
            (None, l) => l,
        };
        let missing = |v: &mut Verdict, field: &str, fill: Option<&Spelled>| {
            let message = format!("{who} declares no {field}.{resource}");
            match fill {
                Some(q) => v.push_fixable(
                    path(field),
                    message,
                    Fix::default(path(field), Value::from(q.text.as_str())),
                ),
                None => v.push(path(field), message),
            }
        };
        if need_request && matches!(request, Ok(None)) {
            missing(v, "requests", fill_request);
        }
        if need_limit && matches!(limit, Ok(None)) {
            missing(v, "limits", fill_limit);
        }
        let (request, limit) = (request.ok().flatten(), limit.ok().flatten());
        if let (Some(req), Some(lim)) = (&request, &limit)
            && req.value > lim.value
        {
            v.push(
                path("requests"),
                format!("{who} requests {resource} {req}, above its limit {lim}"),
            );
        }
        if let (Some(lim), Some(max)) = (&limit, s.max_limits.get(resource))
            && lim.value > max.value
        {
            v.push(
                path("limits"),
                format!("{who} limits {resource} to {lim}, above maxLimits.{resource} {max}"),
            );
        }
        if let (Some(req), Some(min)) = (&request, s.min_requests.get(resource))
            && req.value < min.value
        {
            v.push(
                path("requests"),
                format!("{who} requests {resource} {req}, below minRequests.{resource} {min}"),
            );
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    stackguard_common::guest::register::<ResourceLimits>();
}
