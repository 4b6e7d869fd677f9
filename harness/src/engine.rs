//! Apply policies to manifest objects: natively (the compiled-in registry) or through waPC
//! modules in our host. Every object meets every enabled policy whose `metadata.yml` rules
//! match it (as a CREATE), minus the config's exemptions; all objects of one run form the
//! cluster state that context-aware rules query. Work is spread over all cores.

use crate::config::Config;
use crate::context::ObjectStore;
use crate::manifest::Object;
use crate::metadata::Metadata;
use crate::policies;
use anyhow::{Result, anyhow};
use serde_json::Value;
use stackguard_common::policy::{Mutation, Prepared};
use stackguard_common::request::{Object as ReqObject, Operation, Request};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An object under review by the policies that apply to it. With modules, its admission request
/// is encoded once, when the first module needs it, for all of them.
pub struct Subject<'o> {
    pub object: &'o Object,
    #[cfg(feature = "host")]
    request: std::cell::OnceCell<std::result::Result<Vec<u8>, String>>,
}

impl<'o> Subject<'o> {
    pub fn new(object: &'o Object) -> Self {
        Subject {
            object,
            #[cfg(feature = "host")]
            request: std::cell::OnceCell::new(),
        }
    }
}

/// A policy taking part in a run.
#[derive(Debug, Clone)]
pub struct PolicyInfo {
    pub name: String,
    pub metadata: Metadata,
}

impl PolicyInfo {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// One-line description (from the `io.kubewarden.policy.description` annotation).
    pub fn description(&self) -> Option<&str> {
        self.annotation("io.kubewarden.policy.description")
    }

    /// Documentation URL, when the policy declares one.
    pub fn url(&self) -> Option<&str> {
        self.annotation("io.kubewarden.policy.source")
            .or_else(|| self.annotation("io.kubewarden.policy.url"))
    }
}

/// One finding of one policy on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index into the objects passed to [`Engine::check`].
    pub object: usize,
    /// Index into [`Engine::policies`].
    pub policy: usize,
    /// Field path inside the object, when the policy names one.
    pub path: Option<String>,
    pub message: String,
}

/// An object as the mutating policies repaired it.
#[derive(Debug, Clone, PartialEq)]
pub struct Repair {
    pub object: Value,
    /// The policies (indices into [`Engine::policies`]) that changed it, in the order they ran.
    pub by: Vec<usize>,
}

/// The per-thread state of an evaluation ([`Engine::worker`]).
pub enum Worker {
    Native,
    #[cfg(feature = "host")]
    Modules(modules::Evaluators),
}

enum Backend {
    Native(Vec<Box<dyn Prepared>>),
    #[cfg(feature = "host")]
    Modules(modules::Modules),
}

/// The policies of one run, ready to evaluate.
pub struct Engine {
    pub policies: Vec<PolicyInfo>,
    backend: Backend,
}

impl Engine {
    /// The compiled-in policies, with settings and enablement from `config`.
    pub fn native(config: &Config) -> Result<Engine> {
        let names: Vec<&str> = policies::ALL.iter().map(|e| e.name).collect();
        config.check_names(&names)?;
        let mut infos = Vec::new();
        let mut prepared = Vec::new();
        for entry in policies::ALL {
            if !config.enabled(entry.name) {
                continue;
            }
            let settings = config.settings(entry.name).map(Value::to_string);
            let p = (entry.prepare)(settings.as_deref()).map_err(|e| {
                anyhow!(
                    "{}: policies.{}.settings: {e}",
                    config.origin_name(),
                    entry.name
                )
            })?;
            let metadata = Metadata::from_yaml(entry.metadata_yml, entry.name)?;
            infos.push(PolicyInfo {
                name: entry.name.to_string(),
                metadata,
            });
            prepared.push(p);
        }
        Ok(Engine {
            policies: infos,
            backend: Backend::Native(prepared),
        })
    }

    /// Compiled waPC modules (ours or anyone's), matched through their embedded metadata and
    /// named after their file stem in the config and the output.
    #[cfg(feature = "host")]
    pub fn modules(paths: &[std::path::PathBuf], config: &Config) -> Result<Engine> {
        let (policies, m) = modules::Modules::load(paths, config)?;
        Ok(Engine {
            policies,
            backend: Backend::Modules(m),
        })
    }

    /// Evaluate every object, the objects themselves forming the cluster state that
    /// context-aware rules see; findings come back in object order.
    pub fn check(&self, objects: &[Object], config: &Config) -> Vec<Finding> {
        let store = ObjectStore::new();
        self.add_context(&store, objects.iter().map(|o| &o.value));
        self.evaluate(objects, &Arc::new(store), config)
    }

    /// The policies that meet `o`: their `metadata.yml` rules match it (as a CREATE) and no
    /// exemption of `config` skips it.
    pub fn applicable(&self, o: &Object, config: &Config) -> Vec<usize> {
        (0..self.policies.len())
            .filter(|&p| {
                let info = &self.policies[p];
                info.metadata.matches(o.api_version(), o.kind(), "CREATE")
                    && !config.exempt(&info.name, o)
            })
            .collect()
    }

    /// Evaluate every object against `store` as the cluster state; findings come back in
    /// object order.
    pub fn evaluate(
        &self,
        objects: &[Object],
        store: &Arc<ObjectStore>,
        config: &Config,
    ) -> Vec<Finding> {
        let per_object: Vec<Vec<Finding>> = par_map(
            objects,
            || self.worker(store),
            |worker, i, o| {
                let mut out = Vec::new();
                let subject = Subject::new(o);
                for p in self.applicable(o, config) {
                    out.extend(self.review(worker, p, &subject, store).into_iter().map(
                        |(path, message)| Finding {
                            object: i,
                            policy: p,
                            path,
                            message,
                        },
                    ));
                }
                out
            },
        );
        per_object.into_iter().flatten().collect()
    }

    /// What one thread evaluates with: for modules, an instance of each (made when the thread
    /// first needs it), answering host calls from `store`.
    pub fn worker(&self, store: &Arc<ObjectStore>) -> Worker {
        match &self.backend {
            Backend::Native(_) => {
                let _ = store;
                Worker::Native
            }
            #[cfg(feature = "host")]
            Backend::Modules(m) => Worker::Modules(m.worker(store)),
        }
    }

    /// The findings (field path when named, message) of policy `p` on `o`, with `store` as the
    /// cluster state. As the module answers: a policy whose settings say `mutate: true` accepts
    /// what it can repair (the cluster would admit it patched).
    pub fn review(
        &self,
        worker: &mut Worker,
        p: usize,
        s: &Subject<'_>,
        store: &ObjectStore,
    ) -> Vec<(Option<String>, String)> {
        match (&self.backend, worker) {
            (Backend::Native(prepared), _) => policies::admit_object(
                prepared[p].as_ref(),
                &s.object.value,
                Operation::Create,
                store,
                Mutation::AsConfigured,
            )
            .verdict
            .findings
            .into_iter()
            .map(|f| (Some(f.path).filter(|p| !p.is_empty()), f.message))
            .collect(),
            #[cfg(feature = "host")]
            (Backend::Modules(m), Worker::Modules(evals)) => m.evaluate(evals, p, s),
            #[cfg(feature = "host")]
            (Backend::Modules(_), Worker::Native) => {
                vec![(None, "no module instance on this thread".to_string())]
            }
        }
    }

    /// Every object repaired by the mutating policies that review it ([`Engine::repair`]),
    /// the objects forming the cluster state; `None` where no policy changed the object.
    pub fn fix(&self, objects: &[Object], config: &Config) -> Result<Vec<Option<Repair>>> {
        self.can_fix()?;
        let store = ObjectStore::new();
        self.add_context(&store, objects.iter().map(|o| &o.value));
        Ok(par_map(
            objects,
            || (),
            |_, _, o| self.repair(o, config, &store),
        ))
    }

    /// `fix` applies the built-in policies only (an error for modules).
    pub fn can_fix(&self) -> Result<()> {
        match &self.backend {
            Backend::Native(_) => Ok(()),
            #[cfg(feature = "host")]
            Backend::Modules(_) => Err(anyhow!(
                "fix applies the built-in policies only (no --policy modules)"
            )),
        }
    }

    /// `o` repaired by the mutating policies that review it, one after the other in policy
    /// order (as the API server calls mutating webhooks in turn), each filling in what it finds
    /// missing whatever its `mutate` setting (fixing is what was asked for); `None` when no
    /// policy changed it (or with modules: see [`Engine::can_fix`]).
    pub fn repair(&self, o: &Object, config: &Config, store: &ObjectStore) -> Option<Repair> {
        // Infallible without the `host` feature (no modules).
        #[allow(clippy::infallible_destructuring_match)]
        let prepared = match &self.backend {
            Backend::Native(prepared) => prepared,
            #[cfg(feature = "host")]
            Backend::Modules(_) => return None,
        };
        let mut repair: Option<Repair> = None;
        for p in self.applicable(o, config) {
            if !prepared[p].mutating() {
                continue;
            }
            let current = repair.as_ref().map_or(&o.value, |r| &r.object);
            let admission = policies::admit_object(
                prepared[p].as_ref(),
                current,
                Operation::Create,
                store,
                Mutation::Always,
            );
            if let Some(object) = admission.mutated {
                let by = repair.take().map(|r| r.by).unwrap_or_default();
                repair = Some(Repair {
                    object,
                    by: [by, vec![p]].concat(),
                });
            }
        }
        repair
    }

    /// The (apiVersion, kind) pairs the mutating policies may look up (`fix` reads them from
    /// every input before repairing anything).
    pub fn fix_context_kinds(&self) -> Vec<(&str, &str)> {
        self.looked_up_by(|p| p.metadata.mutating)
    }

    /// The (apiVersion, kind) pairs context-aware policies may look up (as policy-server
    /// allows: only what their metadata declares).
    pub fn context_kinds(&self) -> Vec<(&str, &str)> {
        self.looked_up_by(|_| true)
    }

    /// The (apiVersion, kind) pairs the policies `which` selects may look up.
    fn looked_up_by(&self, which: impl Fn(&PolicyInfo) -> bool) -> Vec<(&str, &str)> {
        let mut kinds: Vec<(&str, &str)> = self
            .policies
            .iter()
            .filter(|p| which(p))
            .flat_map(|p| p.metadata.context_aware_resources.iter())
            .map(|r| (r.api_version.as_str(), r.kind.as_str()))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    /// Add the objects of the kinds context-aware policies may look up to `store` (so plain
    /// runs copy nothing).
    pub fn add_context<'a>(&self, store: &ObjectStore, objects: impl Iterator<Item = &'a Value>) {
        let wanted = self.context_kinds();
        if wanted.is_empty() {
            return;
        }
        let str_at = |v: &'a Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        for o in objects {
            if wanted.contains(&(str_at(o, "apiVersion"), str_at(o, "kind"))) {
                store.insert(o.clone());
            }
        }
    }
}

/// The request a policy sees for a manifest, as `policies::admit_object` builds it.
fn object_ref(o: &Object) -> String {
    let req = Request {
        operation: Operation::Create,
        kind: o.kind(),
        namespace: o.namespace(),
        name: o
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        object: ReqObject::Value(&o.value),
    };
    stackguard_common::policy::object_ref(&req).to_string()
}

/// Split a module's rejection message back into (path, message) findings when it has the
/// stackguard shape `<Kind 'ns/name'>: <path>: <message>; <path>: <message>`; any other
/// message (a foreign policy's) is one finding without a path.
pub fn split_message(o: &Object, message: &str) -> Vec<(Option<String>, String)> {
    let prefix = format!("{}: ", object_ref(o));
    let Some(rest) = message.strip_prefix(&prefix) else {
        return vec![(None, message.to_string())];
    };
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for piece in rest.split("; ") {
        match piece.split_once(": ") {
            Some((path, msg)) if looks_like_path(path) => {
                out.push((Some(path.to_string()), msg.to_string()))
            }
            _ => match out.last_mut() {
                // A "; " inside a message: glue it back.
                Some(last) => {
                    last.1.push_str("; ");
                    last.1.push_str(piece);
                }
                None => return vec![(None, message.to_string())],
            },
        }
    }
    out
}

fn looks_like_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-' | '/' | '"' | '\'')
        })
}

/// Map `f` over `items` on every core (dynamic scheduling: an object at a time), with one
/// `init()` state per worker (none for no items). Results keep the input order. Small inputs run
/// inline.
pub fn par_map<T, R, S>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    // No item, no worker state (for modules it is an instance of each).
    if items.is_empty() {
        return Vec::new();
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len());
    if workers <= 1 {
        let mut state = init();
        return items
            .iter()
            .enumerate()
            .map(|(i, t)| f(&mut state, i, t))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut state = init();
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = items.get(i) else { break };
                        got.push((i, f(&mut state, i, t)));
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all: Vec<(usize, R)> = parts.drain(..).flatten().collect();
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(feature = "host")]
mod modules {
    use super::PolicyInfo;
    use super::Subject;
    use crate::admission::{Op, Request};
    use crate::config::Config;
    use crate::context::ObjectStore;
    use crate::host::{Evaluator, Host, HostData, Module};
    use anyhow::{Result, anyhow};
    use serde_json::Value;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    /// One instance per module, for one thread (`Err`: why instantiation failed).
    pub struct Evaluators {
        store: Arc<ObjectStore>,
        instances: Vec<Option<Result<Evaluator, String>>>,
    }

    pub struct Modules {
        host: Host,
        modules: Vec<Module>,
        /// Each module's settings, encoded as JSON.
        settings: Vec<Vec<u8>>,
    }

    impl Modules {
        pub fn load(paths: &[PathBuf], config: &Config) -> Result<(Vec<PolicyInfo>, Modules)> {
            let host = Host::new(None, Duration::from_secs(2))?;
            let mut infos = Vec::new();
            let mut modules = Vec::new();
            let mut settings = Vec::new();
            let names: Vec<String> = paths
                .iter()
                .map(|p| {
                    p.file_stem()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default()
                })
                .collect();
            // A config written for the built-in policies stays valid with any module subset.
            let known: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .chain(crate::policies::ALL.iter().map(|e| e.name))
                .collect();
            config.check_names(&known)?;
            for (path, name) in paths.iter().zip(names) {
                if !config.enabled(&name) {
                    continue;
                }
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
                let metadata = crate::metadata::read(&bytes)
                    .map_err(|e| anyhow!("{}: {e:#}", path.display()))?
                    .ok_or_else(|| {
                        anyhow!(
                            "{}: the module has no embedded metadata (annotate it with `stackguard annotate`)",
                            path.display()
                        )
                    })?;
                let module = host.load(path)?;
                let s = config
                    .settings(&name)
                    .cloned()
                    .unwrap_or(Value::Object(Default::default()));
                let eval = host.evaluator(&module, HostData::None)?;
                let sv = eval.validate_settings(&s)?;
                if !sv.valid {
                    return Err(anyhow!(
                        "{}: policies.{name}.settings: {}",
                        config.origin_name(),
                        sv.message.unwrap_or_default()
                    ));
                }
                infos.push(PolicyInfo { name, metadata });
                modules.push(module);
                settings.push(serde_json::to_vec(&s)?);
            }
            crate::host::release_freed_memory();
            Ok((
                infos,
                Modules {
                    host,
                    modules,
                    settings,
                },
            ))
        }

        /// A worker thread's evaluators: none yet (each module is instantiated when it is
        /// first needed on the thread), answering host calls from `store`.
        pub fn worker(&self, store: &Arc<ObjectStore>) -> Evaluators {
            Evaluators {
                store: store.clone(),
                instances: self.modules.iter().map(|_| None).collect(),
            }
        }

        pub fn evaluate(
            &self,
            evals: &mut Evaluators,
            p: usize,
            s: &Subject<'_>,
        ) -> Vec<(Option<String>, String)> {
            let store = &evals.store;
            let instance = evals.instances[p].get_or_insert_with(|| {
                self.host
                    .evaluator(&self.modules[p], HostData::Store(store.clone()))
                    .map_err(|e| format!("{e:#}"))
            });
            let eval = match instance {
                Ok(e) => e,
                Err(e) => return vec![(None, e.clone())],
            };
            let o = s.object;
            let request = s.request.get_or_init(|| {
                let uid = format!("stackguard-{}", o.line);
                serde_json::to_vec(&Request::new(&o.value, Op::Create, &uid))
                    .map_err(|e| format!("cannot encode the request: {e}"))
            });
            let resp = match request {
                Ok(request) => eval.validate_encoded(request, &self.settings[p]),
                Err(e) => return vec![(None, e.clone())],
            };
            if resp.accepted {
                return Vec::new();
            }
            let message = resp
                .message
                .unwrap_or_else(|| "rejected (no message)".to_string());
            super::split_message(o, &message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_order() {
        let items: Vec<usize> = (0..1000).collect();
        let out = par_map(
            &items,
            || 0usize,
            |n, i, x| {
                *n += 1;
                i * 2 + x
            },
        );
        assert_eq!(out, (0..1000).map(|i| i * 3).collect::<Vec<_>>());
    }

    #[test]
    fn messages_split_into_findings() {
        let o = Object {
            file: 0,
            doc: 0,
            prefix: String::new(),
            line: 1,
            value: serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}}),
        };
        assert_eq!(
            split_message(&o, "Pod 'n/p': spec.a: bad; really; spec.b[0]: worse"),
            vec![
                (Some("spec.a".to_string()), "bad; really".to_string()),
                (Some("spec.b[0]".to_string()), "worse".to_string())
            ]
        );
        assert_eq!(
            split_message(&o, "privileged containers are not allowed"),
            vec![(None, "privileged containers are not allowed".to_string())]
        );
    }
}
