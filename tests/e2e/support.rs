//! What the scenarios share: the cluster, an admin client for setting up and inspecting, and
//! running the real `stackguard` binary.

use crate::cluster::{Cluster, DEV_USER};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The field manager of the suite's own set-up writes (never `stackguard`).
pub const MANAGER: &str = "e2e-test";
/// Lines of a command's output shown in the log.
const SHOWN_LINES: usize = 60;

pub struct Ctx {
    pub cluster: Cluster,
    pub rt: tokio::runtime::Runtime,
    pub client: kube::Client,
    /// The admin kubeconfig's context (the `cluster://<context>/…` of audit output).
    pub context: String,
    /// Whether the suite runs its own control plane (no kubelet, no controller manager).
    pub own: bool,
    pub root: PathBuf,
    kinds: RefCell<HashMap<String, (ApiResource, bool)>>,
    dev: RefCell<Option<PathBuf>>,
}

/// One run of the `stackguard` binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

impl Run {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    /// Standard output lines starting with `word` (the per-object lines of deploy/down).
    pub fn lines_starting(&self, word: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(word))
            .collect()
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

fn show(label: &str, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for l in lines.iter().take(SHOWN_LINES) {
        println!("{label}{l}");
    }
    if lines.len() > SHOWN_LINES {
        println!("{label}… ({} more lines)", lines.len() - SHOWN_LINES);
    }
}

impl Ctx {
    pub fn from_env(root: PathBuf, scratch: PathBuf) -> Result<Ctx, String> {
        let (cluster, own) = match (
            std::env::var_os("E2E_KUBECONFIG").filter(|v| !v.is_empty()),
            std::env::var_os("KUBE_APISERVER").filter(|v| !v.is_empty()),
        ) {
            (Some(kc), _) => (Cluster::existing(PathBuf::from(kc), scratch), false),
            (None, Some(bin)) => {
                let bin = PathBuf::from(bin);
                if !bin.is_file() {
                    return Err(format!(
                        "KUBE_APISERVER={}: no such file (a kube-apiserver binary, 1.30 or later)",
                        bin.display()
                    ));
                }
                if Command::new("etcd").arg("--version").output().is_err() {
                    return Err(
                        "etcd is not installed: apt-get install -y etcd-server (make e2e does it)"
                            .into(),
                    );
                }
                (Cluster::start(&bin, scratch), true)
            }
            (None, None) => {
                return Err("the live suite needs a Kubernetes API server: set KUBE_APISERVER to a \
                     kube-apiserver binary (1.30 or later, e.g. from the kubernetes-server-linux-amd64 \
                     release archive; etcd comes from Debian), or E2E_KUBECONFIG to the kubeconfig \
                     of an existing disposable cluster (kind, k3d)"
                    .into());
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let access = stackguard::kubeclient::Access {
            kubeconfig: Some(cluster.admin.clone()),
            context: None,
        };
        let conn = rt
            .block_on(access.connect())
            .map_err(|e| format!("{e:#}"))?;
        let mut ctx = Ctx {
            cluster,
            rt,
            client: conn.client,
            context: conn.context,
            own,
            root,
            kinds: RefCell::new(HashMap::new()),
            dev: RefCell::new(None),
        };
        if ctx.cluster.version.is_empty() {
            let req = http::Request::get("/version")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            let v: Value = ctx
                .rt
                .block_on(ctx.client.request(req))
                .map_err(|e| format!("the cluster of E2E_KUBECONFIG does not answer: {e}"))?;
            ctx.cluster.version = v["gitVersion"].as_str().unwrap_or("?").to_string();
        }
        Ok(ctx)
    }

    pub fn describe(&self) -> String {
        if self.own {
            "own control plane: Debian etcd + kube-apiserver on 127.0.0.1".into()
        } else {
            format!("E2E_KUBECONFIG, context {}", self.context)
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Run `stackguard` from the repository root as the admin (`KUBECONFIG`).
    pub fn sg(&self, args: &[&str]) -> Run {
        self.sg_as(&self.cluster.admin, args)
    }

    /// Run `stackguard` with `kubeconfig` as `KUBECONFIG`.
    pub fn sg_as(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_stackguard"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .current_dir(&self.root)
            .output()
            .expect("running stackguard");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            secs: start.elapsed().as_secs_f64(),
        };
        println!(
            "$ stackguard {}   [exit {}, {:.2} s]",
            args.join(" "),
            run.code,
            run.secs
        );
        show("  ", &run.stdout);
        show("  stderr: ", &run.stderr);
        run
    }

    /// The API of a kind (discovered once), namespaced to `ns` when the kind is namespaced.
    pub fn api(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let key = format!("{api_version}/{kind}");
        let cached = self.kinds.borrow().get(&key).cloned();
        let (ar, namespaced) = match cached {
            Some(c) => c,
            None => {
                let (group, version) = match api_version.split_once('/') {
                    Some((g, v)) => (g, v),
                    None => ("", api_version),
                };
                let gvk = GroupVersionKind::gvk(group, version, kind);
                let (ar, caps) = self
                    .rt
                    .block_on(discovery::pinned_kind(&self.client, &gvk))
                    .unwrap_or_else(|e| panic!("discovering {api_version} {kind}: {e}"));
                let v = (ar, caps.scope == Scope::Namespaced);
                self.kinds.borrow_mut().insert(key, v.clone());
                v
            }
        };
        match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    fn api_of(&self, obj: &Value) -> Api<DynamicObject> {
        self.api(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
            obj["metadata"]["namespace"].as_str(),
        )
    }

    /// Server-side apply as the suite's own field manager.
    pub fn apply(&self, obj: &Value) -> Value {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let o: DynamicObject = serde_json::from_value(obj.clone()).expect("object");
        let r = self
            .rt
            .block_on(self.api_of(obj).patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&o),
            ))
            .unwrap_or_else(|e| panic!("applying {name}: {e}"));
        serde_json::to_value(r).expect("json")
    }

    /// Create as the suite's own field manager.
    pub fn create(&self, obj: &Value) -> Value {
        let o: DynamicObject = serde_json::from_value(obj.clone()).expect("object");
        let pp = PostParams {
            dry_run: false,
            field_manager: Some(MANAGER.into()),
        };
        let r = self
            .rt
            .block_on(self.api_of(obj).create(&pp, &o))
            .unwrap_or_else(|e| panic!("creating {}: {e}", obj["metadata"]["name"]));
        serde_json::to_value(r).expect("json")
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.rt
            .block_on(self.api(api_version, kind, ns).get_opt(name))
            .unwrap_or_else(|e| panic!("reading {kind} {name}: {e}"))
            .map(|o| serde_json::to_value(o).expect("json"))
    }

    /// Every object of a kind (all pages).
    pub fn list(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let api = self.api(api_version, kind, ns);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = self
                .rt
                .block_on(api.list(&lp))
                .unwrap_or_else(|e| panic!("listing {kind}: {e}"));
            out.extend(
                page.items
                    .into_iter()
                    .map(|o| serde_json::to_value(o).expect("json")),
            );
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return out;
            }
        }
    }

    pub fn delete(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) {
        match self.rt.block_on(
            self.api(api_version, kind, ns)
                .delete(name, &DeleteParams::default()),
        ) {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("deleting {kind} {name}: {e}"),
        }
    }

    /// A JSON merge patch (RFC 7386; `null` removes a key) as the suite's field manager.
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        patch: Value,
    ) {
        let pp = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        self.rt
            .block_on(
                self.api(api_version, kind, ns)
                    .patch(name, &pp, &Patch::Merge(&patch)),
            )
            .unwrap_or_else(|e| panic!("patching {kind} {name}: {e}"));
    }

    pub fn ensure_namespace(&self, name: &str) {
        self.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    }

    /// Is the namespace absent, or being deleted (without a controller manager a deleted
    /// namespace stays `Terminating`)?
    pub fn namespace_gone(&self, name: &str) -> bool {
        match self.get("v1", "Namespace", None, name) {
            None => true,
            Some(ns) => ns["metadata"]["deletionTimestamp"].is_string(),
        }
    }

    /// A namespace nobody used yet in this cluster: `base` when it is free, else `base-<n>`.
    pub fn fresh_namespace(&self, base: &str) -> String {
        (0..)
            .map(|i| match i {
                0 => base.to_string(),
                i => format!("{base}-{i}"),
            })
            .find(|n| self.get("v1", "Namespace", None, n).is_none())
            .expect("a free namespace name")
    }

    /// A kubeconfig of a user outside `system:masters`: the client certificate of
    /// [`DEV_USER`] on our own control plane, a ServiceAccount token on another cluster.
    pub fn dev_kubeconfig(&self) -> PathBuf {
        if let Some(p) = &self.cluster.dev {
            return p.clone();
        }
        if let Some(p) = self.dev.borrow().as_ref() {
            return p.clone();
        }
        self.apply(&json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": DEV_USER, "namespace": "default"}}));
        let req = http::Request::post(format!(
            "/api/v1/namespaces/default/serviceaccounts/{DEV_USER}/token"
        ))
        .header("Content-Type", "application/json")
        .body(
            serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}))
            .expect("json"),
        )
        .expect("request");
        let tr: Value = self
            .rt
            .block_on(self.client.request(req))
            .expect("a ServiceAccount token");
        let token = tr["status"]["token"].as_str().expect("token").to_string();
        // The admin's cluster entry (server, CA) with the token as the user.
        let kc = kube::config::Kubeconfig::read_from(&self.cluster.admin).expect("kubeconfig");
        let current = kc.current_context.clone().unwrap_or_default();
        let cluster_name = kc
            .contexts
            .iter()
            .find(|c| c.name == current)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
            .expect("current context");
        let kc = serde_json::to_value(&kc).expect("json");
        let cluster = kc["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == cluster_name.as_str())
            .cloned()
            .expect("its cluster");
        let kc = json!({"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": DEV_USER, "user": {"token": token}}],
            "contexts": [{"name": current, "context": {"cluster": cluster_name, "user": DEV_USER}}],
            "current-context": current});
        let path = self.cluster.dir.join("dev.kubeconfig");
        std::fs::write(&path, serde_json::to_vec(&kc).expect("json")).expect("dev kubeconfig");
        *self.dev.borrow_mut() = Some(path.clone());
        path
    }

    /// Give the non-admin user exactly `rules` in `ns` (a Role and its RoleBinding).
    pub fn grant(&self, ns: &str, rules: Value) {
        self.apply(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "e2e-dev", "namespace": ns}, "rules": rules}),
        );
        self.apply(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "e2e-dev", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-dev"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DEV_USER},
                {"kind": "ServiceAccount", "name": DEV_USER, "namespace": "default"}]}),
        );
    }

    /// Every value of every Secret in `ns`, decoded (to prove none is ever printed).
    pub fn secret_values(&self, ns: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let list = self
            .rt
            .block_on(api.list(&ListParams::default()))
            .expect("listing Secrets");
        list.items
            .into_iter()
            .map(|s| {
                let name = s.metadata.name.clone().unwrap_or_default();
                let data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                (name, data)
            })
            .collect()
    }

    /// Install the report CRDs of `deploy/reports/` (as `kubectl apply -f deploy/reports/`)
    /// and wait until the API server serves them.
    pub fn install_report_crds(&self) {
        let dir = self.path("deploy/reports");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("deploy/reports")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in &files {
            for m in stackguard::deploy::stack::read_objects(f).expect("a CRD file") {
                self.apply(&m.object);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for f in &files {
            let crd = &stackguard::deploy::stack::read_objects(f).expect("a CRD file")[0].object;
            let name = crd["metadata"]["name"].as_str().expect("name");
            loop {
                let live = self
                    .get(
                        "apiextensions.k8s.io/v1",
                        "CustomResourceDefinition",
                        None,
                        name,
                    )
                    .expect("the CRD");
                let established = live["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Established" && c["status"] == "True");
                if established {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} not established after 30 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Discovery of the new kinds can trail the Established condition briefly.
        self.kinds.borrow_mut().clear();
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Assert that none of `values` appears in `text`.
pub fn assert_no_secret(text: &str, values: &BTreeMap<String, BTreeMap<String, String>>) {
    for (secret, data) in values {
        for (key, v) in data {
            if v.len() >= 6 {
                assert!(
                    !text.contains(v.as_str()),
                    "the value of {secret}/{key} was printed"
                );
            }
        }
    }
}
