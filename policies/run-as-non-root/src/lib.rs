//! `run-as-non-root`: every container runs as a non-root user, unprivileged, without privilege
//! escalation and with all capabilities dropped.
//!
//! Effective values follow Kubernetes inheritance: a container's `securityContext` overrides the
//! pod's for `runAsUser` and `runAsNonRoot`; the other fields exist only per container.
//!
//! Pod Security Standards edge cases: every check covers init and ephemeral containers too;
//! `capabilities.drop` must contain `ALL` exactly (case-sensitive, as PSS compares); Windows pods
//! (`spec.os.name: windows`) are exempt from the Linux-only checks (privilege escalation,
//! capabilities, read-only root filesystem), which the API forbids setting for them.
//!
//! Mutation (`mutate: true`): where the value is missing, `runAsNonRoot: true`,
//! `allowPrivilegeEscalation: false` and `ALL` in `capabilities.drop` are filled in, in the
//! container's own `securityContext` (the finding's path); a Windows pod gets only
//! `runAsNonRoot`. A value the user wrote (`runAsUser: 0`, `runAsNonRoot: false`,
//! `privileged: true`, `allowPrivilegeEscalation: true`) is never rewritten: it stays a rejection.

pub mod settings;

use serde::Deserialize;
use serde_json::Value;
use settings::Settings;
use stackguard_common::de::null_default;
use stackguard_common::mutate::Fix;
use stackguard_common::workload::{
    ContainerRef, ContainerView, PodOs, PodSpecView, SecurityContext, WORKLOAD_KINDS, Workload,
    check_containers,
};
use stackguard_common::{ClusterContext, Policy, Request, Verdict};

pub struct RunAsNonRoot;

impl Policy for RunAsNonRoot {
    const NAME: &'static str = "run-as-non-root";
    const KINDS: &'static [&'static str] = WORKLOAD_KINDS;
    type Settings = Settings;

    fn evaluate(req: &Request<'_>, settings: &Settings, _ctx: &dyn ClusterContext) -> Verdict {
        check_containers(req, &settings.exempt_images, |w, c, v| {
            check_container(w, c, settings, v)
        })
    }

    fn mutate_setting(settings: &Settings) -> Option<bool> {
        Some(settings.mutate)
    }
}

/// The pod spec fields this policy reads (everything else is skipped unparsed).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    security_context: Option<SecurityContext>,
    #[serde(default, deserialize_with = "null_default")]
    containers: Vec<Ctr>,
    #[serde(default, deserialize_with = "null_default")]
    init_containers: Vec<Ctr>,
    #[serde(default, deserialize_with = "null_default")]
    ephemeral_containers: Vec<Ctr>,
    #[serde(default)]
    os: Option<PodOs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ctr {
    #[serde(default, deserialize_with = "null_default")]
    name: String,
    #[serde(default, deserialize_with = "null_default")]
    image: String,
    #[serde(default)]
    security_context: Option<SecurityContext>,
}

impl PodSpecView for Spec {
    type Container = Ctr;
    fn container_lists(&self) -> [&[Ctr]; 3] {
        [
            &self.init_containers,
            &self.containers,
            &self.ephemeral_containers,
        ]
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

fn check_container(w: &Workload<Spec>, c: &ContainerRef<'_, Ctr>, s: &Settings, v: &mut Verdict) {
    let pod = w.spec.security_context.as_ref();
    let ctr = c.container.security_context.as_ref();
    let who = c.describe();
    let sc_path = format!("{}.securityContext", c.path);
    let pod_path = format!("{}.securityContext", w.spec_path);

    // Effective runAsUser / runAsNonRoot: container wins over pod.
    let user = ctr
        .and_then(|s| s.run_as_user.map(|u| (u, format!("{sc_path}.runAsUser"))))
        .or_else(|| pod.and_then(|s| s.run_as_user.map(|u| (u, format!("{pod_path}.runAsUser")))));
    let non_root = ctr
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod.and_then(|s| s.run_as_non_root));

    let fill_non_root = || Fix::default(format!("{sc_path}.runAsNonRoot"), Value::Bool(true));
    match (&user, non_root) {
        (Some((0, path)), _) => v.push(path, format!("{who} runs as root (runAsUser: 0)")),
        (_, Some(true)) => {}
        (_, None) if s.require_run_as_non_root => v.push_fixable(
            format!("{sc_path}.runAsNonRoot"),
            format!("{who} must set runAsNonRoot: true (container or pod securityContext)"),
            fill_non_root(),
        ),
        (_, _) if s.require_run_as_non_root => v.push(
            format!("{sc_path}.runAsNonRoot"),
            format!("{who} must set runAsNonRoot: true (container or pod securityContext)"),
        ),
        (Some((u, _)), _) if *u > 0 => {}
        (_, Some(false)) => v.push(
            format!("{sc_path}.runAsNonRoot"),
            format!("{who} sets runAsNonRoot: false and no non-zero runAsUser"),
        ),
        _ => v.push_fixable(
            format!("{sc_path}.runAsNonRoot"),
            format!("{who} may run as root: set runAsNonRoot: true or a runAsUser above 0"),
            fill_non_root(),
        ),
    }

    // Pod Security Standards apply these to ephemeral containers too.
    let linux = !PodOs::is_windows(w.spec.os.as_ref());
    let ctr_bool =
        |f: fn(&stackguard_common::workload::SecurityContext) -> Option<bool>| ctr.and_then(f);
    if s.disallow_privileged && ctr_bool(|s| s.privileged) == Some(true) {
        v.push(
            format!("{sc_path}.privileged"),
            format!("{who} is privileged"),
        );
    }
    if linux && s.disallow_privilege_escalation {
        let path = format!("{sc_path}.allowPrivilegeEscalation");
        let message = format!("{who} must set allowPrivilegeEscalation: false");
        match ctr_bool(|s| s.allow_privilege_escalation) {
            Some(false) => {}
            Some(true) => v.push(path, message),
            None => {
                let fix = Fix::default(path.clone(), Value::Bool(false));
                v.push_fixable(path, message, fix);
            }
        }
    }
    if linux && s.require_drop_all_capabilities {
        let drops_all = ctr
            .and_then(|s| s.capabilities.as_ref())
            .is_some_and(|caps| caps.drop.iter().any(|d| d == "ALL"));
        if !drops_all {
            let path = format!("{sc_path}.capabilities.drop");
            let fix = Fix::append(path.clone(), Value::from("ALL"));
            v.push_fixable(path, format!("{who} must drop ALL capabilities"), fix);
        }
    }
    if linux
        && s.require_read_only_root_filesystem
        && ctr_bool(|s| s.read_only_root_filesystem) != Some(true)
    {
        v.push(
            format!("{sc_path}.readOnlyRootFilesystem"),
            format!("{who} must set readOnlyRootFilesystem: true"),
        );
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    stackguard_common::guest::register::<RunAsNonRoot>();
}
