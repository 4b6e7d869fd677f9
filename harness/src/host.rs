//! A waPC host for Kubewarden policy modules, built on the same engine as policy-server:
//! `wapc` + `wasmtime-provider` + WASI.
//!
//! Contract (as policy-server): `protocol_version`, `validate_settings(<settings JSON>)`,
//! `validate({"request": <AdmissionRequest>, "settings": <settings>})`, host calls on binding
//! `kubewarden`. Compiled modules are cached on disk by wasmtime; a trap or a timeout becomes a
//! rejected response with a clear message.

use crate::context::ObjectStore;
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime_provider::{EpochDeadlines, WasmtimeEngineProviderBuilder};

/// One epoch tick.
const TICK: Duration = Duration::from_millis(10);

/// The response of `validate`, as the Kubewarden SDK defines it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidationResponse {
    pub accepted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutated_object: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<std::collections::HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

/// The response of `validate_settings`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SettingsValidation {
    pub valid: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// Where the host answers context-aware calls from.
#[derive(Clone, Default)]
pub enum HostData {
    /// No cluster: `kubernetes/*` calls fail, as under plain `kwctl run`.
    #[default]
    None,
    /// Objects of a manifest set stand in for the cluster.
    Store(Arc<ObjectStore>),
    /// A recorded kwctl session answers every host capability, in order.
    Replay(Arc<crate::replay::Session>),
}

/// The shared engine: on-disk compilation cache and epoch-based timeouts.
pub struct Host {
    engine: wasmtime::Engine,
    stop: Arc<AtomicBool>,
    timeout_ticks: u64,
}

impl Host {
    /// `cache_dir`: where compiled modules are kept (`None`: the default cache directory).
    pub fn new(cache_dir: Option<&Path>, timeout: Duration) -> Result<Host> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        // Compile a module's functions on the calling thread: compiling on every core at once
        // (once per module version, before the cache has it) held 80 MB more at its peak, and
        // that memory stayed with the run: a first `check --policy` of a 16 MiB file went over
        // 256 MB.
        config.parallel_compilation(false);
        let dir = cache_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(default_cache_dir);
        let mut cache_config = wasmtime::CacheConfig::new();
        cache_config.with_directory(&dir);
        // Never recompress a module used often with zstd level 20 in the background: that takes
        // seconds and over 100 MB in whichever run happens to reach the usage count (the
        // sporadic peaks `make bench-limits` saw); the baseline compression stays.
        cache_config.with_optimized_compression_usage_counter_threshold(u64::MAX);
        match wasmtime::Cache::new(cache_config) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(e) => eprintln!(
                "warning: compiled-module cache disabled ({}): {e}",
                dir.display()
            ),
        }
        let engine = wasmtime::Engine::new(&config)
            .map_err(|e| anyhow!("creating the wasmtime engine: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    e.increment_epoch();
                }
            })
            .context("starting the epoch ticker")?;
        let timeout_ticks = (timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        Ok(Host {
            engine,
            stop,
            timeout_ticks,
        })
    }

    /// Compile (or load from cache) a policy module.
    pub fn load(&self, path: &Path) -> Result<Module> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading module {}", path.display()))?;
        let module = wasmtime::Module::new(&self.engine, &bytes)
            .map_err(|e| anyhow!("{}: not a valid WebAssembly module: {e}", path.display()))?;
        Ok(Module {
            path: path.to_path_buf(),
            module,
        })
    }

    /// A ready evaluator for `module`: one instance, reused across calls as policy-server does.
    /// Every host capability is granted, as for a `ClusterAdmissionPolicy`.
    pub fn evaluator(&self, module: &Module, data: HostData) -> Result<Evaluator> {
        self.restricted_evaluator(module, data, vec!["*".to_string()])
    }

    /// An evaluator granted only the host capabilities `allowed` lists (patterns as in a
    /// `PolicyServer`'s `namespacedPoliciesCapabilities`; empty: none). A call outside the list
    /// fails inside the policy with policy-server's error.
    pub fn restricted_evaluator(
        &self,
        module: &Module,
        data: HostData,
        allowed: Vec<String>,
    ) -> Result<Evaluator> {
        for pattern in &allowed {
            crate::capabilities::validate_pattern(pattern).map_err(|e| anyhow!(e))?;
        }
        let deadlines = EpochDeadlines {
            wapc_init: self.timeout_ticks,
            wapc_func: self.timeout_ticks,
        };
        let provider = WasmtimeEngineProviderBuilder::new()
            .engine(self.engine.clone())
            .module(module.module.clone())
            .enable_epoch_interruptions(deadlines)
            .build()
            .map_err(|e| anyhow!("{}: cannot instantiate: {e}", module.path.display()))?;
        let callback = move |_id: u64,
                             binding: &str,
                             ns: &str,
                             op: &str,
                             payload: &[u8]|
              -> std::result::Result<
            Vec<u8>,
            Box<dyn std::error::Error + Send + Sync>,
        > {
            if ns != "tracing" && !crate::capabilities::allows(&allowed, &format!("{ns}/{op}")) {
                // As policy-server: the call fails inside the policy, and the violation is logged.
                let message = format!(
                    "Policy has not been granted access to the '{ns}/{op}' host capability"
                );
                eprintln!("warning: {message}");
                return Err(message.into());
            }
            host_call(&data, binding, ns, op, payload).map_err(|e| e.into())
        };
        let wapc = wapc::WapcHost::new(Box::new(provider), Some(Box::new(callback)))
            .map_err(|e| anyhow!("{}: waPC initialisation failed: {e}", module.path.display()))?;
        Ok(Evaluator {
            path: module.path.clone(),
            wapc,
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Return to the system the memory this thread freed, now rather than when mimalloc next
/// purges (the binaries' allocator, see the workspace Cargo.toml). Called once the modules are
/// compiled: a first `check --policy` (no module cached yet) otherwise carried the compiler's
/// freed pages into the evaluation, 252-257 MB at its peak on a 15 MiB `List`, 241 MB with it.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` takes no pointer and only frees pages that hold no live block.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// `$XDG_CACHE_HOME/stackguard/wasmtime`, else `~/.cache/stackguard/wasmtime`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("stackguard").join("wasmtime")
}

/// A compiled module.
#[derive(Clone)]
pub struct Module {
    pub path: PathBuf,
    module: wasmtime::Module,
}

/// An instantiated policy.
pub struct Evaluator {
    path: PathBuf,
    wapc: wapc::WapcHost,
}

impl Evaluator {
    fn call(&self, op: &str, payload: &[u8]) -> Result<Vec<u8>> {
        self.wapc
            .call(op, payload)
            .map_err(|e| anyhow!("{}: `{op}` failed: {}", self.path.display(), describe(&e)))
    }

    /// `protocol_version`: `"v1"` for current policies.
    pub fn protocol_version(&self) -> Result<String> {
        let raw = self.call("protocol_version", b"")?;
        serde_json::from_slice(&raw)
            .with_context(|| format!("{}: bad protocol_version answer", self.path.display()))
    }

    /// `validate_settings`: the policy's own verdict on `settings`.
    pub fn validate_settings(&self, settings: &Value) -> Result<SettingsValidation> {
        self.validate_settings_raw(&serde_json::to_vec(settings)?)
    }

    /// `validate_settings` with the settings as bytes (any bytes: the fuzz corpora).
    pub fn validate_settings_raw(&self, settings: &[u8]) -> Result<SettingsValidation> {
        let raw = self.call("validate_settings", settings)?;
        serde_json::from_slice(&raw)
            .with_context(|| format!("{}: bad validate_settings answer", self.path.display()))
    }

    /// `validate`; a trap, a timeout or a malformed answer is a rejection, as in policy-server.
    pub fn validate(&self, request: &impl Serialize, settings: &Value) -> ValidationResponse {
        match (serde_json::to_vec(request), serde_json::to_vec(settings)) {
            (Ok(request), Ok(settings)) => self.validate_encoded(&request, &settings),
            (Err(e), _) | (_, Err(e)) => internal_error(format!("cannot encode the request: {e}")),
        }
    }

    /// `validate` with the request and the settings already encoded as JSON (an object's request
    /// is encoded once for every module that reviews it).
    pub fn validate_encoded(&self, request: &[u8], settings: &[u8]) -> ValidationResponse {
        let mut payload = Vec::with_capacity(request.len() + settings.len() + 24);
        payload.extend_from_slice(b"{\"request\":");
        payload.extend_from_slice(request);
        payload.extend_from_slice(b",\"settings\":");
        payload.extend_from_slice(settings);
        payload.push(b'}');
        self.validate_raw(&payload)
    }

    /// `validate` with an already encoded payload (benchmarks).
    pub fn validate_raw(&self, payload: &[u8]) -> ValidationResponse {
        match self.call("validate", payload) {
            Ok(raw) => serde_json::from_slice(&raw).unwrap_or_else(|e| {
                internal_error(format!(
                    "{}: the policy returned an invalid response: {e}",
                    self.path.display()
                ))
            }),
            Err(e) => internal_error(format!("policy evaluation failed: {e}")),
        }
    }
}

fn internal_error(message: String) -> ValidationResponse {
    ValidationResponse {
        accepted: false,
        message: Some(message),
        code: Some(500),
        ..Default::default()
    }
}

/// A readable description of a waPC error (traps and timeouts included).
fn describe(e: &wapc::errors::Error) -> String {
    let text = e.to_string();
    if text.contains("interrupt") {
        "the policy ran past its time limit and was interrupted".to_string()
    } else {
        text
    }
}

/// Answer a host call on binding `kubewarden`.
fn host_call(
    data: &HostData,
    binding: &str,
    ns: &str,
    op: &str,
    payload: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    if binding != "kubewarden" {
        return Err(format!("unknown waPC binding '{binding}'"));
    }
    if let (HostData::Replay(session), false) = (data, ns == "tracing") {
        return session.answer(ns, op, payload);
    }
    match (ns, op) {
        ("tracing", "log") => {
            crate::guest_log::emit(payload);
            Ok(Vec::new())
        }
        ("kubernetes", "get_resource") => {
            let HostData::Store(store) = data else {
                return Err("no cluster context: pass --context manifests".to_string());
            };
            store.host_get_resource(payload)
        }
        ("kubernetes", "list_resources_by_namespace") | ("kubernetes", "list_resources_all") => {
            let HostData::Store(store) = data else {
                return Err("no cluster context: pass --context manifests".to_string());
            };
            store.host_list_resources(op, payload)
        }
        _ => Err(format!(
            "host capability '{ns}/{op}' is not supported by stackguard"
        )),
    }
}
