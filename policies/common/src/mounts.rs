//! Which ConfigMap keys a container sees at which paths: volume mounts (with `subPath`),
//! `configMap` and `projected` volumes with their `items`, and fetching those ConfigMaps from
//! the cluster context.

use crate::ClusterContext;
use crate::selector::Selector;
use crate::workload::{ConfigMapVolume, Container, KeyToPath, PodSpec, Workload};
use std::collections::BTreeMap;

/// Where a mounted volume's files come from.
#[derive(Debug, Clone)]
pub enum Provider<'a> {
    ConfigMap {
        name: &'a str,
        items: &'a [KeyToPath],
    },
    Secret {
        name: &'a str,
    },
    /// emptyDir, PVC, hostPath…: contents unknown to a policy.
    Other {
        volume: &'a str,
    },
}

/// One provider visible in a container through one volume mount.
#[derive(Debug, Clone)]
pub struct Mounted<'a> {
    pub provider: Provider<'a>,
    pub mount_path: &'a str,
    pub sub_path: Option<&'a str>,
}

impl Mounted<'_> {
    /// The path at which `key` of this provider appears in the container, if it appears.
    pub fn path_of(&self, key: &str) -> Option<String> {
        let rel = match &self.provider {
            Provider::ConfigMap { items, .. } if !items.is_empty() => {
                items.iter().find(|i| i.key == key)?.path.clone()
            }
            _ => key.to_string(),
        };
        match self.sub_path {
            Some(sp) => (sp == rel).then(|| self.mount_path.to_string()),
            None => Some(format!("{}/{}", self.mount_path.trim_end_matches('/'), rel)),
        }
    }

    /// True when this mount can provide `path` (the path is the mount or lies under it).
    pub fn covers(&self, path: &str) -> bool {
        let mp = self.mount_path.trim_end_matches('/');
        path == mp || path.strip_prefix(mp).is_some_and(|r| r.starts_with('/'))
    }

    /// True when this mount puts files directly into or below directory `dir`.
    pub fn feeds_dir(&self, dir: &str) -> bool {
        let d = dir.trim_end_matches('/');
        let mp = self.mount_path.trim_end_matches('/');
        mp == d || mp.strip_prefix(d).is_some_and(|r| r.starts_with('/'))
    }
}

fn config_map(cm: &ConfigMapVolume) -> Provider<'_> {
    Provider::ConfigMap {
        name: &cm.name,
        items: &cm.items,
    }
}

/// Every provider mounted into container `c` of pod `spec`, in mount order.
pub fn mounts_of<'a>(spec: &'a PodSpec, c: &'a Container) -> Vec<Mounted<'a>> {
    let mut out = Vec::new();
    for m in &c.volume_mounts {
        let Some(vol) = spec.volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let sub_path = m.sub_path.as_deref().filter(|s| !s.is_empty());
        let mut push = |provider| {
            out.push(Mounted {
                provider,
                mount_path: &m.mount_path,
                sub_path,
            })
        };
        if let Some(cm) = &vol.config_map {
            push(config_map(cm));
        } else if let Some(s) = &vol.secret {
            push(Provider::Secret {
                name: &s.secret_name,
            });
        } else if let Some(p) = &vol.projected {
            for src in &p.sources {
                if let Some(cm) = &src.config_map {
                    push(config_map(cm));
                }
            }
        } else {
            push(Provider::Other { volume: &vol.name });
        }
    }
    out
}

/// True when a workload's own labels or its pod template's labels match `selector`.
pub fn selects_workload(selector: &Selector, w: &Workload) -> bool {
    selector.matches(&w.metadata.labels) || selector.matches(&w.pod_labels)
}

/// The repository of an image reference without registry defaults, tag or digest:
/// `docker.io/library/redis:7.2` → `redis`, `ghcr.io/x/y:1@sha256:…` → `ghcr.io/x/y`.
pub fn image_repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let repo = match no_digest[slash..].find(':') {
        Some(colon) => &no_digest[..slash + colon],
        None => no_digest,
    };
    let repo = repo.strip_prefix("docker.io/").unwrap_or(repo);
    repo.strip_prefix("library/").unwrap_or(repo)
}

/// Fetch a ConfigMap's `data`. `None` when it cannot be fetched (absent, or no cluster context):
/// callers turn that into a warning saying what was not checked.
pub fn fetch_config_map(
    ctx: &dyn ClusterContext,
    namespace: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Cm {
        #[serde(default, deserialize_with = "crate::de::null_default")]
        data: BTreeMap<String, String>,
    }
    let ns = (!namespace.is_empty()).then_some(namespace);
    let value = ctx.get_resource("v1", "ConfigMap", ns, name).ok()??;
    serde_json::from_value::<Cm>(value).ok().map(|c| c.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn image_repositories() {
        assert_eq!(image_repository("redis:7.2"), "redis");
        assert_eq!(
            image_repository("docker.io/library/redis:7.2-alpine"),
            "redis"
        );
        assert_eq!(image_repository("docker.io/bitnami/redis"), "bitnami/redis");
        assert_eq!(
            image_repository("registry:5000/team/valkey:8@sha256:ab"),
            "registry:5000/team/valkey"
        );
        assert_eq!(
            image_repository("postgis/postgis:15-3.4"),
            "postgis/postgis"
        );
    }

    #[test]
    fn paths_items_and_subpaths() {
        let spec = pod(serde_json::json!({
            "containers": [{"name": "r", "volumeMounts": [
                {"name": "conf", "mountPath": "/etc/redis"},
                {"name": "one", "mountPath": "/docker-entrypoint-initdb.d/01.sql", "subPath": "init.sql"},
                {"name": "proj", "mountPath": "/docker-entrypoint-initdb.d/more"},
                {"name": "sec", "mountPath": "/etc/secret"}]}],
            "volumes": [
                {"name": "conf", "configMap": {"name": "redis-conf", "items": [{"key": "main", "path": "redis.conf"}]}},
                {"name": "one", "configMap": {"name": "pg-init"}},
                {"name": "proj", "projected": {"sources": [{"configMap": {"name": "a"}}, {"configMap": {"name": "b"}}]}},
                {"name": "sec", "secret": {"secretName": "s"}}]
        }));
        let m = mounts_of(&spec, &spec.containers[0]);
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[0].path_of("main").as_deref(),
            Some("/etc/redis/redis.conf")
        );
        assert_eq!(m[0].path_of("other"), None);
        assert!(m[0].covers("/etc/redis/redis.conf") && !m[0].covers("/etc/redisx"));
        assert_eq!(
            m[1].path_of("init.sql").as_deref(),
            Some("/docker-entrypoint-initdb.d/01.sql")
        );
        assert_eq!(m[1].path_of("x.sql"), None);
        assert!(m[1].feeds_dir("/docker-entrypoint-initdb.d"));
        assert!(matches!(
            m[3].provider,
            Provider::ConfigMap { name: "b", .. }
        ));
        assert!(matches!(m[4].provider, Provider::Secret { name: "s" }));
    }
}
