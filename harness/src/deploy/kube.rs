//! `--target kube`: server-side apply of the stack in dependency order, Secrets generated when
//! missing (never overwritten), rollouts awaited, and `verify` through port-forwards. The
//! decisions (order, secret plans, rollout state) are pure functions; the cluster calls are thin.

use super::Progress;
use super::secrets::{SecretPlan, SecretSpec, SecretValue, plan, random_token};
use super::stack::{Manifest, Stack, apply_rank};
use super::verify::{Endpoints, Expectations};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, AttachParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use kube::{Client, Config};
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

/// A client for the current (or named) kubeconfig context.
pub async fn client(context: Option<&str>) -> Result<Client> {
    let config = match context {
        Some(ctx) => Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(ctx.to_string()),
            ..Default::default()
        })
        .await
        .with_context(|| format!("loading kubeconfig context {ctx}"))?,
        None => Config::infer().await.context(
            "no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or in-cluster); \
             create one with `kind create cluster` or use --target local",
        )?,
    };
    Client::try_from(config).context("creating the Kubernetes client")
}

fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}, {})", s.message, s.reason, s.code),
        other => other.to_string(),
    }
}

fn gvk_of(m: &Manifest) -> GroupVersionKind {
    let (group, version) = match m.api_version().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", m.api_version()),
    };
    GroupVersionKind::gvk(group, version, m.kind())
}

/// The API of one object's kind (discovered once per kind).
async fn api_for(
    client: &Client,
    cache: &mut HashMap<String, (ApiResource, bool)>,
    m: &Manifest,
) -> Result<Api<DynamicObject>, String> {
    let key = format!("{}/{}", m.api_version(), m.kind());
    if !cache.contains_key(&key) {
        let (ar, caps) = discovery::pinned_kind(client, &gvk_of(m))
            .await
            .map_err(|e| {
                format!(
                    "the cluster does not serve {} {} (is its CRD or operator installed?): {}",
                    m.api_version(),
                    m.kind(),
                    api_error(&e)
                )
            })?;
        cache.insert(key.clone(), (ar, caps.scope == Scope::Namespaced));
    }
    let (ar, namespaced) = &cache[&key];
    Ok(match (namespaced, m.namespace()) {
        (true, "") => Api::default_namespaced_with(client.clone(), ar),
        (true, ns) => Api::namespaced_with(client.clone(), ns, ar),
        (false, _) => Api::all_with(client.clone(), ar),
    })
}

/// Options of `deploy --target kube`.
pub struct KubeOptions {
    pub context: Option<String>,
    pub dry_run: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// Apply the stack. Returns the number of objects the API server rejected.
pub async fn deploy(stack: &Stack, opts: &KubeOptions, progress: &Progress) -> Result<usize> {
    let steps = plan_steps(stack)?;
    let client = client(opts.context.as_deref()).await?;
    let mut cache = HashMap::new();
    let mut failures = 0;
    let mut applied: Vec<(Api<DynamicObject>, &Manifest)> = Vec::new();
    let suffix = if opts.dry_run {
        " (server dry run)"
    } else {
        ""
    };
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = opts.dry_run;
    for step in &steps {
        match step {
            Step::Apply(m) => {
                let api = match api_for(&client, &mut cache, m).await {
                    Ok(a) => a,
                    Err(e) => {
                        failures += 1;
                        progress.line(&format!("FAILED  {}: {e}", m.id()));
                        continue;
                    }
                };
                let obj: DynamicObject = match serde_json::from_value(m.object.clone()) {
                    Ok(o) => o,
                    Err(e) => {
                        failures += 1;
                        progress.line(&format!(
                            "FAILED  {} ({}): not a valid object: {e}",
                            m.id(),
                            m.source
                        ));
                        continue;
                    }
                };
                match api.patch(m.name(), &pp, &Patch::Apply(&obj)).await {
                    Ok(_) => {
                        progress.line(&format!("applied {}{suffix}", m.id()));
                        applied.push((api, m));
                    }
                    Err(e) => {
                        failures += 1;
                        progress.line(&format!(
                            "FAILED  {} ({}): rejected by the API server: {}",
                            m.id(),
                            m.source,
                            api_error(&e)
                        ));
                    }
                }
            }
            Step::Secret(spec) => match ensure_secret(&client, spec, opts.dry_run).await {
                Ok(msg) => progress.line(&format!(
                    "secret  {}/{}: {msg}{suffix}",
                    spec.namespace, spec.name
                )),
                Err(e) => {
                    failures += 1;
                    progress.line(&format!(
                        "FAILED  Secret {}/{}: {e}",
                        spec.namespace, spec.name
                    ));
                }
            },
        }
    }
    if failures > 0 {
        progress.line(&format!(
            "{failures} object(s) failed; fix them (or the cluster) and run `stackguard deploy` again: \
             applying is idempotent"
        ));
        return Ok(failures);
    }
    if opts.wait && !opts.dry_run {
        wait_rollouts(&applied, opts.timeout, progress).await?;
    }
    Ok(0)
}

/// Create a missing Secret, add missing keys to an existing one, never touch existing values.
async fn ensure_secret(
    client: &Client,
    spec: &SecretSpec,
    dry_run: bool,
) -> Result<String, String> {
    let api: Api<Secret> = match spec.namespace.as_str() {
        "" => Api::default_namespaced(client.clone()),
        ns => Api::namespaced(client.clone(), ns),
    };
    let existing = api.get_opt(&spec.name).await.map_err(|e| api_error(&e))?;
    let keys: Option<BTreeSet<String>> = existing.map(|s| {
        s.data
            .unwrap_or_default()
            .into_keys()
            .chain(s.string_data.unwrap_or_default().into_keys())
            .collect()
    });
    let string_data = |values: &BTreeMap<String, SecretValue>| -> Value {
        values
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
            .collect()
    };
    match plan(spec, keys.as_ref(), random_token).map_err(|e| e.to_string())? {
        SecretPlan::Keep => Ok("exists, kept as it is".into()),
        SecretPlan::Create(values) => {
            let secret: Secret = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": spec.name, "namespace": spec.namespace,
                             "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
                "type": spec.type_,
                "stringData": string_data(&values),
            }))
            .map_err(|e| e.to_string())?;
            let pp = PostParams {
                dry_run,
                field_manager: Some(FIELD_MANAGER.into()),
            };
            api.create(&pp, &secret).await.map_err(|e| api_error(&e))?;
            Ok(format!(
                "created with {} generated value(s) (not shown)",
                values.len()
            ))
        }
        SecretPlan::AddKeys(values) => {
            let mut pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            pp.dry_run = dry_run;
            let patch = json!({"stringData": string_data(&values)});
            api.patch(&spec.name, &pp, &Patch::Merge(&patch))
                .await
                .map_err(|e| api_error(&e))?;
            let names: Vec<&String> = values.keys().collect();
            Ok(format!(
                "exists; added missing key(s) {} (existing values kept)",
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
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

/// `down --target kube`: delete what the stack applied (namespaced objects go with the
/// namespace unless `keep_namespace`); PersistentVolumeClaims are kept unless `purge`.
pub async fn down(
    stack: &Stack,
    context: Option<&str>,
    purge: bool,
    progress: &Progress,
) -> Result<usize> {
    let client = client(context).await?;
    let mut cache = HashMap::new();
    let mut failures = 0;
    let mut objects: Vec<&Manifest> = stack
        .objects
        .iter()
        .filter(|m| m.kind() != "Namespace")
        .collect();
    objects.sort_by_key(|m| std::cmp::Reverse(apply_rank(m.kind())));
    for m in objects {
        let api = match api_for(&client, &mut cache, m).await {
            Ok(a) => a,
            Err(e) => {
                progress.line(&format!("skipped {}: {e}", m.id()));
                continue;
            }
        };
        match api.delete(m.name(), &Default::default()).await {
            Ok(_) => progress.line(&format!("deleted {}", m.id())),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                progress.line(&format!("absent  {}", m.id()))
            }
            Err(e) => {
                failures += 1;
                progress.line(&format!("FAILED  {}: {}", m.id(), api_error(&e)));
            }
        }
    }
    if purge {
        if let Some(ns) = stack.namespace() {
            let api: Api<DynamicObject> = Api::all_with(
                client.clone(),
                &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            );
            match api.delete(ns, &Default::default()).await {
                Ok(_) => progress.line(&format!(
                    "deleted Namespace {ns} (volumes and Secrets with it)"
                )),
                Err(e) => {
                    failures += 1;
                    progress.line(&format!("FAILED  Namespace {ns}: {}", api_error(&e)));
                }
            }
        }
    } else {
        progress.line("Secrets, PersistentVolumeClaims and the Namespace are kept; `down --purge` deletes them");
    }
    Ok(failures)
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
pub async fn endpoints(
    stack: &Stack,
    context: Option<&str>,
    ex: &Expectations,
) -> Result<Endpoints> {
    let client = client(context).await?;
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
