//! The reference stack as stackguard reads it: a kustomization directory (its `resources`,
//! followed recursively, its `namespace` applied) or a single rendered manifest file, plus the
//! Secrets template. Loading, ConfigMap access and the apply order are pure functions.

use crate::manifest::{self, Input};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file next to `kustomization.yaml` that lists the Secrets to generate.
pub const SECRETS_TEMPLATE: &str = "secrets.template.yaml";

/// One object of the stack and the file it comes from.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub source: String,
    pub object: Value,
}

impl Manifest {
    pub fn str_at(&self, path: &[&str]) -> &str {
        str_at(&self.object, path)
    }
    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"])
    }
    pub fn kind(&self) -> &str {
        self.str_at(&["kind"])
    }
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"])
    }
    pub fn namespace(&self) -> &str {
        self.str_at(&["metadata", "namespace"])
    }
    /// `Kind namespace/name` (or `Kind name` when cluster-scoped), as shown in reports.
    pub fn id(&self) -> String {
        match self.namespace() {
            "" => format!("{} {}", self.kind(), self.name()),
            ns => format!("{} {ns}/{}", self.kind(), self.name()),
        }
    }
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |cur, p| cur.get(p))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The loaded stack.
#[derive(Debug, Clone)]
pub struct Stack {
    /// What was loaded (a directory or a file), as given.
    pub root: PathBuf,
    pub objects: Vec<Manifest>,
    /// The Secrets to generate (from `secrets.template.yaml`), not applied as they are.
    pub secret_templates: Vec<Manifest>,
}

/// Kinds that are not namespaced (the kustomize `namespace` field leaves them alone).
pub fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "PriorityClass"
            | "StorageClass"
            | "PersistentVolume"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ClusterAdmissionPolicy"
            | "ClusterAdmissionPolicyGroup"
            | "PolicyServer"
    )
}

/// Read every Kubernetes object of one file, with a clear error naming the file and line.
pub fn read_objects(path: &Path) -> Result<Vec<Manifest>> {
    let src =
        manifest::read(&Input::File(path.to_path_buf())).map_err(|e| anyhow::anyhow!("{e}"))?;
    let parsed = manifest::parse(0, &src);
    if let Some(e) = parsed.errors.first() {
        bail!("{e}");
    }
    Ok(parsed
        .objects
        .into_iter()
        .map(|o| Manifest {
            source: format!("{}:{}", src.name, o.line),
            object: o.value,
        })
        .collect())
}

impl Stack {
    /// Load a kustomization directory or a rendered manifest file. A `secrets.template.yaml`
    /// next to the kustomization (or given explicitly) supplies the Secret templates.
    pub fn load(path: &Path, secrets_template: Option<&Path>) -> Result<Stack> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read the stack", path.display()))?;
        let objects = if meta.is_dir() {
            load_kustomization(path, 0)?
        } else {
            read_objects(path)?
        };
        if objects.is_empty() {
            bail!("{}: no Kubernetes objects found", path.display());
        }
        let template = match secrets_template {
            Some(p) => Some(p.to_path_buf()),
            None if meta.is_dir() => Some(path.join(SECRETS_TEMPLATE)).filter(|p| p.exists()),
            None => None,
        };
        let mut secret_templates = match template {
            Some(p) => read_objects(&p)?,
            None => Vec::new(),
        };
        if let Some(bad) = secret_templates.iter().find(|m| m.kind() != "Secret") {
            bail!(
                "{}: a Secrets template holds only Secrets, found {}",
                bad.source,
                bad.id()
            );
        }
        // The namespace of the stack applies to the templates too.
        if let Some(ns) = objects
            .iter()
            .find(|m| m.kind() == "Namespace")
            .map(|m| m.name().to_string())
        {
            for t in &mut secret_templates {
                if t.namespace().is_empty() {
                    set_namespace(&mut t.object, &ns);
                }
            }
        }
        Ok(Stack {
            root: path.to_path_buf(),
            objects,
            secret_templates,
        })
    }

    /// Put every namespaced object (and the Namespace itself) into `namespace`, as
    /// `kustomize edit set namespace` would.
    pub fn set_namespace(&mut self, namespace: &str) {
        for m in self
            .objects
            .iter_mut()
            .chain(self.secret_templates.iter_mut())
        {
            if m.kind() == "Namespace" {
                m.object["metadata"]["name"] = Value::String(namespace.to_string());
            } else if !cluster_scoped(m.kind()) {
                set_namespace(&mut m.object, namespace);
            }
        }
    }

    /// The namespace the stack lives in (its Namespace object, else the first namespaced one).
    pub fn namespace(&self) -> Option<&str> {
        self.objects
            .iter()
            .find(|m| m.kind() == "Namespace")
            .map(Manifest::name)
            .or_else(|| {
                self.objects
                    .iter()
                    .map(Manifest::namespace)
                    .find(|n| !n.is_empty())
            })
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Manifest> {
        self.objects
            .iter()
            .find(|m| m.kind() == kind && m.name() == name)
    }

    /// The `data` of a ConfigMap of the stack, every value a string.
    pub fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let m = self.find("ConfigMap", name).with_context(|| {
            format!("{}: the stack has no ConfigMap {name}", self.root.display())
        })?;
        let Some(data) = m.object.get("data").and_then(Value::as_object) else {
            bail!("{}: ConfigMap {name} has no data", m.source);
        };
        data.iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => Ok((k.clone(), s.to_string())),
                None => bail!("{}: ConfigMap {name}: data.{k} is not a string", m.source),
            })
            .collect()
    }

    /// One value of a ConfigMap.
    pub fn config_value(&self, config_map: &str, key: &str) -> Result<String> {
        let data = self.config_map(config_map)?;
        data.get(key).cloned().with_context(|| {
            format!(
                "{}: ConfigMap {config_map} has no key {key}",
                self.root.display()
            )
        })
    }

    pub fn secret_template(&self, name: &str) -> Result<&Manifest> {
        self.secret_templates
            .iter()
            .find(|m| m.name() == name)
            .with_context(|| {
                format!(
                    "{}: no Secret {name} in the Secrets template ({SECRETS_TEMPLATE})",
                    self.root.display()
                )
            })
    }
}

fn set_namespace(object: &mut Value, namespace: &str) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(namespace.to_string()));
    }
}

/// Fields of a kustomization that change objects beyond what this loader does: such an
/// overlay must be rendered first (`kubectl kustomize DIR > stack.yaml`).
const UNSUPPORTED_KUSTOMIZE: &[&str] = &[
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "components",
    "configMapGenerator",
    "secretGenerator",
    "images",
    "replicas",
    "namePrefix",
    "nameSuffix",
    "labels",
    "commonLabels",
    "commonAnnotations",
    "replacements",
    "helmCharts",
];

fn load_kustomization(dir: &Path, depth: usize) -> Result<Vec<Manifest>> {
    if depth > 16 {
        bail!("{}: kustomization resources nest too deep", dir.display());
    }
    let file = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{}: no kustomization.yaml here; give a kustomization directory or a manifest file",
                dir.display()
            )
        })?;
    let docs = read_objects(&file)?;
    let [k] = docs.as_slice() else {
        bail!("{}: expected one Kustomization document", file.display());
    };
    if let Some(field) = UNSUPPORTED_KUSTOMIZE
        .iter()
        .find(|f| k.object.get(**f).is_some())
    {
        bail!(
            "{}: uses `{field}`, which stackguard does not render; run `kubectl kustomize {}` \
             and pass the output file instead",
            file.display(),
            dir.display()
        );
    }
    let mut out = Vec::new();
    let resources = k.object.get("resources").and_then(Value::as_array);
    for (i, r) in resources.into_iter().flatten().enumerate() {
        let Some(rel) = r.as_str() else {
            bail!("{}: resources[{i}] is not a string", file.display());
        };
        if rel.contains("://") || rel.starts_with("github.com/") {
            bail!(
                "{}: resources[{i}]: remote resources ({rel}) are not loaded",
                file.display()
            );
        }
        let p = dir.join(rel);
        let meta = std::fs::metadata(&p).with_context(|| {
            format!(
                "{}: resources[{i}]: cannot read {}",
                file.display(),
                p.display()
            )
        })?;
        if meta.is_dir() {
            out.extend(load_kustomization(&p, depth + 1)?);
        } else {
            out.extend(read_objects(&p)?);
        }
    }
    if let Some(ns) = k.object.get("namespace").and_then(Value::as_str) {
        for m in &mut out {
            if !cluster_scoped(m.kind()) {
                set_namespace(&mut m.object, ns);
            }
        }
    }
    Ok(out)
}

/// Apply order: namespace, CRDs and access, configuration, secrets, services and storage,
/// network and disruption rules, workloads, jobs, then admission policies.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => 2,
        "ConfigMap" => 3,
        "Secret" => 4,
        "Service" | "PersistentVolumeClaim" | "StorageClass" | "PersistentVolume" => 5,
        "NetworkPolicy" | "PodDisruptionBudget" | "LimitRange" | "ResourceQuota" => 6,
        "Job" | "CronJob" => 8,
        "ClusterAdmissionPolicy"
        | "AdmissionPolicy"
        | "ClusterAdmissionPolicyGroup"
        | "AdmissionPolicyGroup"
        | "PolicyServer" => 9,
        // Workloads and custom resources (an operator's Cluster) come after what they use.
        _ => 7,
    }
}

/// The objects in apply order (stable: objects of one rank keep their file order).
pub fn apply_order(objects: &[Manifest]) -> Vec<&Manifest> {
    let mut v: Vec<&Manifest> = objects.iter().collect();
    v.sort_by_key(|m| apply_rank(m.kind()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("stackguard-stack-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_rendered_file_loads_with_an_explicit_template() {
        let d = temp("file");
        let stack = d.join("stack.yaml");
        std::fs::write(
            &stack,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: init, namespace: ns}\n\
             data: {a.sql: 'SELECT 1;', k: 3}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n",
        )
        .unwrap();
        let tpl = d.join("t.yaml");
        std::fs::write(
            &tpl,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations: {stackguard.io/generate: pw}\n",
        )
        .unwrap();
        let s = Stack::load(&stack, Some(&tpl)).unwrap();
        assert_eq!(s.objects.len(), 2);
        assert_eq!(s.namespace(), Some("ns"));
        // The template takes the stack's namespace.
        assert_eq!(s.secret_template("s").unwrap().namespace(), "ns");
        let e = s.config_map("init").unwrap_err().to_string();
        assert!(e.contains("data.k is not a string"), "{e}");
        let e = s.config_map("other").unwrap_err().to_string();
        assert!(e.contains("no ConfigMap other"), "{e}");
        assert!(s.secret_template("x").is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn kustomizations_are_followed_and_their_namespace_applied() {
        let d = temp("kust");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(
            d.join("kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             namespace: target\nresources: [a.yaml, sub]\n",
        )
        .unwrap();
        std::fs::write(
            d.join("a.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: other}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("sub/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [b.yaml]\n",
        )
        .unwrap();
        std::fs::write(
            d.join("sub/b.yaml"),
            "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: b}\n",
        )
        .unwrap();
        let s = Stack::load(&d, None).unwrap();
        let ids: Vec<String> = s.objects.iter().map(Manifest::id).collect();
        assert_eq!(ids, ["Service target/a", "ClusterAdmissionPolicy b"]);

        std::fs::write(
            d.join("kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [missing.yaml]\n",
        )
        .unwrap();
        let e = format!("{:#}", Stack::load(&d, None).unwrap_err());
        assert!(
            e.contains("resources[0]") && e.contains("missing.yaml"),
            "{e}"
        );
        std::fs::write(d.join("kustomization.yaml"), "resources: [a.yaml]\n").unwrap();
        assert!(Stack::load(&d, None).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
