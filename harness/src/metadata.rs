//! Kubewarden policy metadata: read `metadata.yml`, embed it in a module as the custom section
//! `io.kubewarden.metadata` exactly as `kwctl annotate` does, and read it back.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The custom section that policy-server and kwctl read.
pub const SECTION: &str = "io.kubewarden.metadata";

/// One admission rule of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub operations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ContextAwareResource {
    pub api_version: String,
    pub kind: String,
}

/// Policy metadata with kwctl's field names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub mutating: bool,
    #[serde(default = "yes")]
    pub background_audit: bool,
    #[serde(default = "wapc")]
    pub execution_mode: String,
    #[serde(default = "kubernetes")]
    pub policy_type: String,
    #[serde(default)]
    pub context_aware_resources: BTreeSet<ContextAwareResource>,
    /// The host capabilities the module calls (`kubernetes/get_resource`, `oci/*`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_capabilities: Option<BTreeSet<String>>,
    /// The oldest Kubewarden release that can run the policy (semver `x.y.z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_kubewarden_version: Option<String>,
}

fn yes() -> bool {
    true
}
fn wapc() -> String {
    "kubewarden-wapc".to_string()
}
fn kubernetes() -> String {
    "kubernetes".to_string()
}

impl Metadata {
    /// Parse a `metadata.yml`.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Metadata> {
        let value =
            crate::yaml::value(text).with_context(|| format!("{origin}: invalid metadata"))?;
        let m: Metadata =
            serde_json::from_value(value).with_context(|| format!("{origin}: invalid metadata"))?;
        if m.rules.is_empty() {
            bail!("{origin}: metadata declares no rules");
        }
        for pattern in m.host_capabilities.iter().flatten() {
            crate::capabilities::validate_pattern(pattern)
                .map_err(|e| anyhow::anyhow!("{origin}: hostCapabilities: {e}"))?;
        }
        if let Some(v) = &m.minimum_kubewarden_version
            && !is_semver(v)
        {
            bail!("{origin}: minimumKubewardenVersion {v:?} is not a version such as 1.6.0");
        }
        Ok(m)
    }

    /// Does a rule cover this object for `operation`? Matches as the API server matches
    /// webhook rules: group, version and resource, with `*` wildcards.
    pub fn matches(&self, api_version: &str, kind: &str, operation: &str) -> bool {
        let (group, version) = crate::admission::group_version(api_version);
        let resource = crate::admission::resource_name(kind);
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        self.rules.iter().any(|r| {
            any(&r.api_groups, group)
                && any(&r.api_versions, version)
                && (r
                    .resources
                    .iter()
                    .any(|x| x == "*" || x == "*/*" || *x == resource))
                && any(&r.operations, operation)
        })
    }
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre`/`+build` suffix, as semver spells it.
pub fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
        && (core.len() == v.len() || v.len() > core.len() + 1)
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(bytes: &[u8], pos: &mut usize) -> Result<usize> {
    let mut result = 0usize;
    let mut shift = 0;
    loop {
        let Some(&b) = bytes.get(*pos) else {
            bail!("truncated module (LEB128 at offset {})", *pos)
        };
        *pos += 1;
        result |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Ok(result);
        }
        shift += 7;
        if shift > 35 {
            bail!("malformed LEB128 at offset {}", *pos);
        }
    }
}

/// One section of a module.
struct Section {
    /// Offset of the section id byte.
    start: usize,
    /// Offset of the section content.
    content: usize,
    /// Offset just past the content.
    end: usize,
    /// The name of a custom section.
    name: Option<String>,
}

/// The sections of a module, in order.
fn sections(module: &[u8]) -> Result<Vec<Section>> {
    if module.len() < 8 || &module[..4] != b"\0asm" {
        bail!("not a WebAssembly module");
    }
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < module.len() {
        let start = pos;
        let id = module[pos];
        pos += 1;
        let size = read_leb128(module, &mut pos)?;
        let content = pos;
        let end = content
            .checked_add(size)
            .filter(|&e| e <= module.len())
            .ok_or_else(|| anyhow::anyhow!("section at offset {start} runs past the end"))?;
        let name = if id == 0 {
            let mut p = content;
            let len = read_leb128(module, &mut p)?;
            let bytes = module
                .get(p..p + len)
                .ok_or_else(|| anyhow::anyhow!("custom section name out of bounds"))?;
            Some(String::from_utf8_lossy(bytes).into_owned())
        } else {
            None
        };
        out.push(Section {
            start,
            content,
            end,
            name,
        });
        pos = end;
    }
    Ok(out)
}

/// The content of the custom section `name`, if the module has one.
pub fn custom_section<'a>(module: &'a [u8], name: &str) -> Result<Option<&'a [u8]>> {
    for s in sections(module)? {
        if s.name.as_deref() == Some(name) {
            let mut p = s.content;
            let len = read_leb128(module, &mut p)?;
            return Ok(Some(&module[p + len..s.end]));
        }
    }
    Ok(None)
}

/// Read the embedded metadata, if any.
pub fn read(module: &[u8]) -> Result<Option<Metadata>> {
    custom_section(module, SECTION)?
        .map(|data| serde_json::from_slice(data).context("embedded metadata is not valid JSON"))
        .transpose()
}

/// Return `module` with `metadata` embedded (replacing earlier metadata).
pub fn embed(module: &[u8], metadata: &Metadata) -> Result<Vec<u8>> {
    let mut out = module[..8.min(module.len())].to_vec();
    for s in sections(module)? {
        if s.name.as_deref() != Some(SECTION) {
            out.extend_from_slice(&module[s.start..s.end]);
        }
    }
    let json = serde_json::to_vec(metadata)?;
    let mut payload = Vec::with_capacity(json.len() + SECTION.len() + 8);
    leb128(SECTION.len(), &mut payload);
    payload.extend_from_slice(SECTION.as_bytes());
    payload.extend_from_slice(&json);
    out.push(0);
    leb128(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_module() -> Vec<u8> {
        b"\0asm\x01\0\0\0".to_vec()
    }

    #[test]
    fn embed_then_read_round_trips_and_replaces() {
        let m = Metadata::from_yaml(
            "rules:\n- apiGroups: ['']\n  apiVersions: [v1]\n  resources: [pods]\n  operations: [CREATE]\nmutating: false\n",
            "test",
        )
        .unwrap();
        let mut m1 = m.clone();
        m1.protocol_version = Some("v1".into());
        let once = embed(&empty_module(), &m1).unwrap();
        let twice = embed(&once, &m1).unwrap();
        assert_eq!(once, twice);
        assert_eq!(read(&twice).unwrap(), Some(m1));
        assert_eq!(read(&empty_module()).unwrap(), None);
    }

    #[test]
    fn rules_match_like_the_api_server() {
        let m = Metadata::from_yaml(
            "rules:\n- apiGroups: [apps]\n  apiVersions: [v1]\n  resources: [deployments]\n  operations: [CREATE, UPDATE]\n",
            "t",
        )
        .unwrap();
        assert!(m.matches("apps/v1", "Deployment", "CREATE"));
        assert!(!m.matches("apps/v1", "Deployment", "DELETE"));
        assert!(!m.matches("extensions/v1beta1", "Deployment", "CREATE"));
        assert!(!m.matches("v1", "Pod", "CREATE"));
    }
}
