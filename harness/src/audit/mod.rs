//! `stackguard audit`: check what already runs in a cluster with the rule code of `check`.
//!
//! The kinds the policies' rules name are listed page by page (`limit`/`continue`); each page
//! is evaluated by the same [`Engine`] as `check`, with the page's objects and the objects its
//! context-aware rules look up (fetched from the cluster, e.g. the ConfigMaps a workload mounts)
//! as the cluster state in an [`ObjectStore`], exactly as `check` builds it from manifests.
//! Memory holds one page and its context at a time, plus the findings. Results can be written
//! back as OpenReports or PolicyReports ([`reports`]).

pub mod kinds;
pub mod reports;

use crate::config::Config;
use crate::context::{Key, ObjectStore};
use crate::engine::{Engine, Finding};
use crate::kubeclient::{Access, api_error, status_code};
use crate::manifest::{InputError, Object};
use crate::report::{self, ClusterScope, Totals, Writer};
use anyhow::{Context, Result, anyhow, bail};
use futures_util::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kinds::Listed;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery;
use reports::ReportKind;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

/// Reports written at once (server-side applies in flight).
const WRITERS: usize = 8;
/// Rounds of fetching what context-aware rules looked up and did not find.
const CONTEXT_ROUNDS: usize = 3;
/// The list response size a page aims at. `limit` counts objects, and one object may be
/// 1.5 MiB (a ConfigMap full of init SQL): the first page of a kind asks for at most
/// [`FIRST_PAGE`] objects, and each next one for as many as fit this budget at the size the
/// previous pages' objects had (never more than `--page-size`).
const PAGE_BYTES: usize = 8 << 20;
const FIRST_PAGE: u32 = 10;

/// The `limit` of the next list request, from the byte size of the objects seen so far.
pub fn next_limit(page_size: u32, item_bytes: usize) -> u32 {
    let fit = PAGE_BYTES / item_bytes.max(1);
    (fit.min(page_size as usize) as u32).max(1)
}

/// Which namespaces to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// One namespace (namespaced kinds only).
    One(String),
    /// Every namespace, and the cluster-scoped kinds.
    All,
    /// The kubeconfig context's namespace, as kubectl defaults.
    Context,
}

pub struct Options {
    pub access: Access,
    pub namespaces: Namespaces,
    pub skip_secrets: bool,
    pub page_size: u32,
    pub report: Option<ReportKind>,
}

/// `cluster://<context>/<namespace>/<kind>/<name>`, or `cluster://<context>/<kind>/<name>` for a
/// cluster-scoped object: the `file` of an audited object in every output format.
pub fn object_uri(context: &str, object: &Value) -> String {
    let s = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    match s("/metadata/namespace") {
        "" => format!("cluster://{context}/{}/{}", s("/kind"), s("/metadata/name")),
        ns => format!(
            "cluster://{context}/{ns}/{}/{}",
            s("/kind"),
            s("/metadata/name")
        ),
    }
}

/// A listed item as the rules see it: `apiVersion` and `kind` set (list responses leave them
/// out), `managedFields` dropped; a Secret also loses the `last-applied-configuration`
/// annotation, which repeats its values: the rules read `data`, nothing else of it.
pub fn prepare(mut item: Value, resource: &ApiResource) -> Value {
    if let Some(o) = item.as_object_mut() {
        o.insert(
            "apiVersion".into(),
            Value::String(resource.api_version.clone()),
        );
        o.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if resource.kind == "Secret"
            && resource.group.is_empty()
            && let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
        {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    item
}

/// One page of a list response.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Value>,
}

/// What an audit counted (its findings went to the [`Writer`] as they were found).
pub struct Audit {
    pub totals: Totals,
    /// Kinds that could not be listed, reports that could not be written.
    pub errors: Vec<InputError>,
    /// List requests made (pages, empty ones included).
    pub pages: usize,
    /// Reports written and stale reports removed (`--report`).
    pub written: usize,
    pub removed: usize,
}

/// Run an audit, writing findings to `out` page by page. Listing errors (e.g. RBAC) are
/// reported like unreadable files in `check`: the other kinds are still audited.
pub async fn run<W: Write>(
    opts: &Options,
    engine: &Engine,
    config: &Config,
    out: &mut Writer<'_, W>,
) -> Result<Audit> {
    let conn = opts.access.connect().await?;
    let client = &conn.client;
    let namespace: Option<String> = match &opts.namespaces {
        Namespaces::One(ns) => Some(ns.clone()),
        Namespaces::All => None,
        Namespaces::Context => Some(conn.namespace.clone()),
    };
    let selection = kinds::select(&engine.policies, opts.skip_secrets);
    for note in &selection.skipped {
        eprintln!("note: {note}");
    }
    let (listed, notes) = kinds::resolve(client, &selection.resources)
        .await
        .map_err(|e| anyhow!(e))?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    let listed: Vec<Listed> = listed
        .into_iter()
        .filter(|l| l.namespaced || namespace.is_none())
        .collect();
    let writer = match opts.report {
        Some(kind) => Some(ReportWriter::new(client, kind).await?),
        None => None,
    };
    let mut state = State {
        client,
        engine,
        config,
        context: &conn.context,
        run: run_id()?,
        writer: writer.as_ref(),
        progress: progress_bar(),
        out,
        totals: Totals::default(),
        errors: Vec::new(),
        namespaces: BTreeSet::new(),
        context_kinds: HashMap::new(),
        written: 0,
        pages: 0,
    };
    let mut complete_kinds = Vec::new();
    for l in &listed {
        if state
            .audit_kind(l, namespace.as_deref(), opts.page_size)
            .await
        {
            complete_kinds.push(l.resource.kind.clone());
        }
    }
    state.progress.finish_and_clear();
    let removed = match &writer {
        Some(w) => w
            .remove_stale(&state.run, namespace.as_deref(), &complete_kinds)
            .await
            .map_err(|e| anyhow!("removing stale reports: {e}"))?,
        None => 0,
    };
    let mut totals = state.totals;
    totals.files = totals.objects;
    totals.errors = state.errors.len();
    totals.cluster = Some(ClusterScope {
        context: conn.context.clone(),
        namespaces: state.namespaces.len(),
    });
    Ok(Audit {
        totals,
        errors: state.errors,
        pages: state.pages,
        written: state.written,
        removed,
    })
}

/// A random id for this run (the report label that tells stale reports apart).
fn run_id() -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow!("the system random generator failed: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A bar on stderr when it is a terminal; hidden otherwise (CI logs, pipes).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} objects [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

struct State<'a, 'w, W: Write> {
    client: &'a Client,
    engine: &'a Engine,
    config: &'a Config,
    context: &'a str,
    run: String,
    writer: Option<&'a ReportWriter>,
    progress: ProgressBar,
    out: &'a mut Writer<'w, W>,
    totals: Totals,
    errors: Vec<InputError>,
    namespaces: BTreeSet<String>,
    /// API resources of the kinds context-aware rules look up (discovered once).
    context_kinds: HashMap<(String, String), Option<ApiResource>>,
    written: usize,
    pages: usize,
}

impl<W: Write> State<'_, '_, W> {
    /// List one kind page by page and audit each page; `false` when the list broke off.
    async fn audit_kind(&mut self, l: &Listed, namespace: Option<&str>, page_size: u32) -> bool {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) if l.namespaced => Api::namespaced_with(self.client.clone(), ns, &l.resource),
            _ => Api::all_with(self.client.clone(), &l.resource),
        };
        self.progress
            .set_message(format!("auditing {}", l.resource.plural));
        let mut token: Option<String> = None;
        let mut first = true;
        let mut limit = page_size.min(FIRST_PAGE);
        loop {
            let mut lp = ListParams::default().limit(limit);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.pages += 1;
            let (page, bytes) = match list_page(self.client, &api, &lp).await {
                Ok(p) => p,
                Err(e) => {
                    self.list_error(l, namespace, &e);
                    return false;
                }
            };
            if first {
                let rest = page.metadata.remaining_item_count.unwrap_or(0).max(0) as u64;
                self.progress.inc_length(page.items.len() as u64 + rest);
                first = false;
            }
            let n = page.items.len() as u64;
            // The average object of this page, doubled: objects of one kind vary in size.
            let per_item = 2 * bytes / page.items.len().max(1);
            limit = next_limit(page_size, per_item);
            let objects: Vec<Object> = page
                .items
                .into_iter()
                .map(|v| Object {
                    file: 0,
                    doc: 0,
                    prefix: String::new(),
                    line: 0,
                    value: prepare(v, &l.resource),
                })
                .collect();
            self.audit_page(&objects).await;
            self.progress.inc(n);
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return true;
            }
        }
    }

    fn list_error(&mut self, l: &Listed, namespace: Option<&str>, e: &kube::Error) {
        let mut message = format!("cannot list {}: {}", l.resource.plural, api_error(e));
        if status_code(e) == Some(403) && l.resource.kind == "Secret" {
            message.push_str("; pass --skip-secrets to audit without Secrets");
        }
        if status_code(e) == Some(410) {
            message.push_str("; the list expired between pages (410 Gone): run the audit again");
        }
        let file = match namespace {
            Some(ns) if l.namespaced => {
                format!("cluster://{}/{ns}/{}", self.context, l.resource.kind)
            }
            _ => format!("cluster://{}/{}", self.context, l.resource.kind),
        };
        self.errors.push(InputError {
            file,
            line: None,
            message,
        });
    }

    /// Evaluate one page (fetching what its context-aware rules look up), record findings and
    /// write its reports.
    async fn audit_page(&mut self, objects: &[Object]) {
        let findings = self.evaluate(objects).await;
        let mut by_object: BTreeMap<usize, Vec<&Finding>> = BTreeMap::new();
        for f in &findings {
            by_object.entry(f.object).or_default().push(f);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut docs = Vec::new();
        let mut found = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            self.totals.objects += 1;
            if !o.namespace().is_empty() {
                self.namespaces.insert(o.namespace().to_string());
            }
            let uri = object_uri(self.context, &o.value);
            let mine = by_object.get(&i).map(Vec::as_slice).unwrap_or(&[]);
            if !mine.is_empty() {
                self.totals.rejected += 1;
            }
            for f in mine {
                found.push(report::Finding {
                    file: uri.clone(),
                    line: 0,
                    api_version: o.api_version().to_string(),
                    kind: o.kind().to_string(),
                    namespace: o.namespace().to_string(),
                    name: o.name().to_string(),
                    policy: self.engine.policies[f.policy].name.clone(),
                    path: f.path.clone(),
                    message: f.message.clone(),
                });
            }
            if let Some(w) = self.writer {
                let outcomes: Vec<reports::Outcome> = self
                    .engine
                    .applicable(o, self.config)
                    .into_iter()
                    .map(|p| reports::Outcome {
                        policy: &self.engine.policies[p],
                        findings: mine
                            .iter()
                            .filter(|f| f.policy == p)
                            .map(|f| (f.path.as_deref(), f.message.as_str()))
                            .collect(),
                    })
                    .collect();
                if let Some(doc) = reports::report(w.kind, &self.run, &o.value, &outcomes, now) {
                    docs.push((uri, doc));
                }
            }
        }
        self.totals.findings += found.len();
        let (progress, out) = (&self.progress, &mut *self.out);
        // A closed pipe (`| head`) is not worth an error; the audit goes on (reports, exit code).
        let _ = progress.suspend(|| out.findings(&found));
        if let Some(w) = self.writer {
            let results: Vec<(String, Result<(), String>)> = stream::iter(docs)
                .map(|(uri, doc)| async move { (uri, w.apply(&doc).await) })
                .buffer_unordered(WRITERS)
                .collect()
                .await;
            for (uri, r) in results {
                match r {
                    Ok(()) => self.written += 1,
                    Err(message) => self.errors.push(InputError {
                        file: uri,
                        line: None,
                        message: format!("writing its report: {message}"),
                    }),
                }
            }
        }
    }

    /// The engine's findings for a page. Context-aware rules first see the page's own objects;
    /// what they looked up and did not find is fetched from the cluster and the page is
    /// evaluated again (a few rounds at most), so a workload meets the ConfigMaps it mounts.
    /// When what a page's objects look up is bigger than [`PAGE_BYTES`] (each workload mounts
    /// its own big ConfigMap), the page is evaluated in halves, down to one object at a time.
    async fn evaluate(&mut self, objects: &[Object]) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut ranges = vec![(0, objects.len())];
        while let Some((a, b)) = ranges.pop() {
            match self.evaluate_with_context(&objects[a..b]).await {
                Some(found) => out.extend(found.into_iter().map(|mut f| {
                    f.object += a;
                    f
                })),
                None => {
                    let mid = a + (b - a) / 2;
                    ranges.push((mid, b));
                    ranges.push((a, mid));
                }
            }
        }
        out
    }

    /// [`Self::evaluate`] of some objects with the context they look up; `None` when that
    /// context is over budget and the objects can be split.
    async fn evaluate_with_context(&mut self, objects: &[Object]) -> Option<Vec<Finding>> {
        let store = ObjectStore::new();
        self.engine
            .add_context(&store, objects.iter().map(|o| &o.value));
        let mut store = Arc::new(store);
        let mut findings = self.engine.evaluate(objects, &store, self.config);
        let mut absent: BTreeSet<Key> = BTreeSet::new();
        let mut fetched = 0;
        for _ in 0..CONTEXT_ROUNDS {
            let wanted: Vec<Key> = store
                .take_misses()
                .into_iter()
                .filter(|k| !absent.contains(k))
                .filter(|k| {
                    self.engine
                        .context_kinds()
                        .contains(&(k.0.as_str(), k.1.as_str()))
                })
                .collect();
            if wanted.is_empty() {
                break;
            }
            let Ok(s) = Arc::try_unwrap(store) else {
                break;
            };
            let mut added = 0;
            for key in wanted {
                match self.fetch(&key).await {
                    Some((v, bytes)) => {
                        fetched += bytes;
                        if fetched > PAGE_BYTES && objects.len() > 1 {
                            return None;
                        }
                        s.insert(v);
                        added += 1;
                    }
                    None => {
                        absent.insert(key);
                    }
                }
            }
            store = Arc::new(s);
            if added == 0 {
                break;
            }
            findings = self.engine.evaluate(objects, &store, self.config);
        }
        Some(findings)
    }

    /// One object a context-aware rule looked up, from the cluster, and its size in bytes
    /// (`None`: absent or unreadable; the rule then says what it could not check).
    async fn fetch(&mut self, key: &Key) -> Option<(Value, usize)> {
        let (api_version, kind, namespace, name) = key;
        let ck = (api_version.clone(), kind.clone());
        if !self.context_kinds.contains_key(&ck) {
            let (group, version) = crate::admission::group_version(api_version);
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let ar = discovery::pinned_kind(self.client, &gvk)
                .await
                .ok()
                .map(|(ar, _)| ar);
            self.context_kinds.insert(ck.clone(), ar);
        }
        let ar = self.context_kinds.get(&ck)?.as_ref()?;
        let api: Api<DynamicObject> = match namespace.as_str() {
            "" => Api::all_with(self.client.clone(), ar),
            ns => Api::namespaced_with(self.client.clone(), ns, ar),
        };
        let req = kube::core::Request::new(api.resource_url())
            .get(name, &Default::default())
            .ok()?;
        let text = self.client.request_text(req).await.ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some((prepare(v, ar), text.len()))
    }
}

/// One page of a list, and the size of the response in bytes.
async fn list_page(
    client: &Client,
    api: &Api<DynamicObject>,
    lp: &ListParams,
) -> Result<(Page, usize), kube::Error> {
    let req = kube::core::Request::new(api.resource_url())
        .list(lp)
        .map_err(kube::Error::BuildRequest)?;
    let text = client.request_text(req).await?;
    let page = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
    Ok((page, text.len()))
}

/// Writes reports of one format with server-side apply and removes stale ones.
pub struct ReportWriter {
    client: Client,
    pub kind: ReportKind,
    namespaced: ApiResource,
    cluster: ApiResource,
}

impl ReportWriter {
    /// Check that the cluster serves the report kinds (their CRDs are installed).
    async fn new(client: &Client, kind: ReportKind) -> Result<ReportWriter> {
        let mut found = Vec::new();
        for namespaced in [true, false] {
            let (api_version, k, plural) = kind.resource(namespaced);
            let (group, version) = crate::admission::group_version(api_version);
            let gvk = GroupVersionKind::gvk(group, version, k);
            match discovery::pinned_kind(client, &gvk).await {
                Ok((ar, _)) => found.push(ar),
                Err(_) => bail!(
                    "the cluster has no CustomResourceDefinition {plural}.{group} ({api_version} {k}) \
                     for --report; install it: kubectl apply -f deploy/reports/ (Kubewarden's \
                     Helm charts install it too)"
                ),
            }
        }
        let cluster = found.pop().context("report kinds")?;
        let namespaced = found.pop().context("report kinds")?;
        Ok(ReportWriter {
            client: client.clone(),
            kind,
            namespaced,
            cluster,
        })
    }

    fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.namespaced),
            None => Api::all_with(self.client.clone(), &self.cluster),
        }
    }

    /// Server-side apply of one report: a second audit updates it in place.
    async fn apply(&self, doc: &Value) -> Result<(), String> {
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ns = doc.pointer("/metadata/namespace").and_then(Value::as_str);
        let pp = PatchParams::apply(reports::FIELD_MANAGER).force();
        self.api(ns)
            .patch(name, &pp, &Patch::Apply(doc))
            .await
            .map(|_| ())
            .map_err(|e| api_error(&e))
    }

    /// Delete the reports of earlier runs about the kinds this run listed completely, in the
    /// audited namespace (or everywhere, cluster reports included). Returns how many.
    async fn remove_stale(
        &self,
        run: &str,
        namespace: Option<&str>,
        kinds: &[String],
    ) -> Result<usize, String> {
        if kinds.is_empty() {
            return Ok(0);
        }
        let selector = format!(
            "{}={},{}!={run},{} in ({})",
            reports::MANAGED_BY,
            reports::SOURCE,
            reports::RUN_LABEL,
            reports::KIND_LABEL,
            kinds.join(",")
        );
        let mut apis = vec![match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.namespaced),
            None => Api::all_with(self.client.clone(), &self.namespaced),
        }];
        if namespace.is_none() {
            apis.push(self.api(None));
        }
        let mut removed = 0;
        for api in apis {
            let mut token: Option<String> = None;
            loop {
                let mut lp = ListParams::default().labels(&selector).limit(500);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let page = api.list_metadata(&lp).await.map_err(|e| api_error(&e))?;
                for item in &page.items {
                    let name = item.metadata.name.clone().unwrap_or_default();
                    let owner = self.api(item.metadata.namespace.as_deref());
                    match owner.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => removed += 1,
                        Err(e) if status_code(&e) == Some(404) => {}
                        Err(e) => return Err(api_error(&e)),
                    }
                }
                token = page.metadata.continue_.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_shrink_when_objects_are_big() {
        assert_eq!(next_limit(100, 4_000), 100, "small objects: the page size");
        assert_eq!(next_limit(100, 2 << 20), 4, "2 MiB objects: 4 per page");
        assert_eq!(next_limit(100, 64 << 20), 1, "never below one");
        assert_eq!(next_limit(7, 0), 7);
    }

    #[test]
    fn uris_name_context_namespace_kind_and_name() {
        let o = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        assert_eq!(
            object_uri("kind-e2e", &o),
            "cluster://kind-e2e/shop/Deployment/web"
        );
        let c = json!({"kind": "Namespace", "metadata": {"name": "shop"}});
        assert_eq!(
            object_uri("kind-e2e", &c),
            "cluster://kind-e2e/Namespace/shop"
        );
    }

    #[test]
    fn listed_items_get_their_kind_and_secrets_lose_the_copy_of_their_values() {
        let ar = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
        let item = json!({"metadata": {"name": "s", "managedFields": [{"manager": "x"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"c2VjcmV0\"}}", "keep": "me"}},
            "data": {"p": "c2VjcmV0"}});
        let v = prepare(item, &ar);
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Secret");
        assert!(v["metadata"].get("managedFields").is_none());
        assert_eq!(v["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(v["data"]["p"], "c2VjcmV0");
    }
}
