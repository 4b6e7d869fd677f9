//! Kubewarden host capabilities: the operations policy-server offers, the allow-list patterns
//! a `PolicyServer` (`spec.namespacedPoliciesCapabilities`), `kwctl run
//! --allowed-host-capabilities` or `metadata.yml` (`hostCapabilities`) lists, and the calls a
//! module can make, detected the way `kwctl annotate` detects them.

use std::collections::BTreeSet;

/// Every host capability of policy-server 1.36, as `namespace/operation` (the waPC namespace
/// and operation of the host call on binding `kubewarden`).
pub const KNOWN: &[&str] = &[
    "crypto/v1/is_certificate_trusted",
    "kubernetes/can_i",
    "kubernetes/get_resource",
    "kubernetes/list_resources_all",
    "kubernetes/list_resources_by_namespace",
    "net/v1/dns_lookup_host",
    "oci/v1/manifest_digest",
    "oci/v1/oci_manifest",
    "oci/v1/oci_manifest_config",
    "oci/v1/verify",
    "oci/v2/verify",
];

/// Check one allow-list pattern as policy-server does: `*`, a prefix wildcard over known path
/// segments (`oci/*`, `oci/v1/*`) or a known capability (`kubernetes/get_resource`).
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    let p = pattern.trim();
    if p.is_empty() {
        return Err("an empty host capability is not allowed".to_string());
    }
    if p == "*" || KNOWN.contains(&p) {
        return Ok(());
    }
    if let Some(prefix) = p.strip_suffix('*') {
        let is_node = prefix.ends_with('/')
            && !prefix[..prefix.len() - 1].contains('*')
            && KNOWN.iter().any(|k| k.starts_with(prefix));
        return if is_node {
            Ok(())
        } else {
            Err(format!(
                "host capability pattern {pattern:?}: a wildcard must be a whole last segment \
                 after known segments, as in oci/* or oci/v1/*"
            ))
        };
    }
    if KNOWN.iter().any(|k| k.starts_with(&format!("{p}/"))) {
        return Err(format!(
            "host capability {pattern:?} is not a complete capability path; did you mean {p}/*?"
        ));
    }
    Err(format!(
        "unknown host capability {pattern:?} (known: {})",
        KNOWN.join(", ")
    ))
}

/// Does the allow-list `patterns` grant `capability` (`namespace/operation`)? An empty list
/// grants nothing.
pub fn allows<S: AsRef<str>>(patterns: &[S], capability: &str) -> bool {
    patterns.iter().any(|p| {
        let p = p.as_ref().trim();
        p == "*"
            || p == capability
            || p.strip_suffix('*')
                .is_some_and(|prefix| prefix.ends_with('/') && capability.starts_with(prefix))
    })
}

/// The host capabilities a module can call. As `kwctl annotate`: a capability counts when its
/// namespace and its operation both occur in the module's data segments, and an operation that
/// is a prefix of a longer one (`v1/oci_manifest` of `v1/oci_manifest_config`) must also occur
/// on its own.
#[cfg(feature = "host")]
pub fn detect(module: &[u8]) -> anyhow::Result<BTreeSet<String>> {
    let mut data = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let payload =
            payload.map_err(|e| anyhow::anyhow!("not a valid WebAssembly module: {e}"))?;
        if let wasmparser::Payload::DataSection(reader) = payload {
            for segment in reader {
                let segment =
                    segment.map_err(|e| anyhow::anyhow!("malformed data segment: {e}"))?;
                data.extend_from_slice(segment.data);
                // A separator no string contains: no match across two segments.
                data.push(0xFF);
            }
        }
    }
    let split = |k: &'static str| k.split_once('/').unwrap_or((k, ""));
    Ok(KNOWN
        .iter()
        .filter(|k| {
            let (namespace, operation) = split(k);
            let longer: Vec<&str> = KNOWN
                .iter()
                .map(|o| split(o).1)
                .filter(|o| o.len() > operation.len() && o.starts_with(operation))
                .collect();
            find(&data, namespace.as_bytes(), |_| true).is_some()
                && find(&data, operation.as_bytes(), |at| {
                    !longer.iter().any(|l| data[at..].starts_with(l.as_bytes()))
                })
                .is_some()
        })
        .map(|k| k.to_string())
        .collect())
}

/// The first offset where `needle` occurs in `haystack` and `accept(offset)` holds.
#[cfg(feature = "host")]
fn find(haystack: &[u8], needle: &[u8], accept: impl Fn(usize) -> bool) -> Option<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .find(|(at, w)| *w == needle && accept(*at))
        .map(|(at, _)| at)
}

/// Compare what a module can call with what its metadata declares: `(used but undeclared,
/// declared but unused)`, the two lists `kwctl annotate` warns about.
pub fn mismatch(
    detected: &BTreeSet<String>,
    declared: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let declared_list: Vec<&String> = declared.iter().collect();
    let undeclared = detected
        .iter()
        .filter(|c| !allows(&declared_list, c))
        .cloned()
        .collect();
    let unused = declared
        .iter()
        .filter(|p| !detected.iter().any(|c| allows(&[p.as_str()], c)))
        .cloned()
        .collect();
    (undeclared, unused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "host")]
    /// A module whose only data segment holds `strings`, NUL-separated.
    fn module_with(strings: &[&str]) -> Vec<u8> {
        let mut payload = Vec::new();
        for s in strings {
            payload.extend_from_slice(s.as_bytes());
            payload.push(0);
        }
        let wat = format!(
            "(module (memory 1) (data (i32.const 0) \"{}\"))",
            payload
                .iter()
                .map(|b| format!("\\{b:02x}"))
                .collect::<String>()
        );
        wat::parse_str(wat).unwrap()
    }

    #[cfg(feature = "host")]
    #[test]
    fn detects_like_kwctl() {
        let none = detect(&module_with(&["kubewarden", "get_resource"])).unwrap();
        assert!(none.is_empty(), "no namespace string, no capability");
        let one = detect(&module_with(&["kubernetes", "get_resource"])).unwrap();
        assert_eq!(one, BTreeSet::from(["kubernetes/get_resource".to_string()]));
        let config_only = detect(&module_with(&["oci", "v1/oci_manifest_config"])).unwrap();
        assert_eq!(
            config_only,
            BTreeSet::from(["oci/v1/oci_manifest_config".to_string()])
        );
        let both = detect(&module_with(&[
            "oci",
            "v1/oci_manifest_config",
            "v1/oci_manifest",
        ]))
        .unwrap();
        assert!(
            both.contains("oci/v1/oci_manifest") && both.contains("oci/v1/oci_manifest_config")
        );
        assert!(detect(b"not wasm").is_err());
    }

    #[test]
    fn patterns_as_policy_server() {
        for ok in [
            "*",
            "oci/*",
            "oci/v1/*",
            "kubernetes/get_resource",
            " net/v1/dns_lookup_host ",
        ] {
            assert_eq!(validate_pattern(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "oci*",
            "oci/v1/oci_*",
            "oci/v1",
            "unknown/op",
            "oci/v1/verify/*",
        ] {
            assert!(validate_pattern(bad).is_err(), "{bad}");
        }
        assert!(validate_pattern("oci/v1").unwrap_err().contains("oci/v1/*"));
        assert!(allows(&["kubernetes/*"], "kubernetes/get_resource"));
        assert!(allows(&["*"], "oci/v2/verify"));
        assert!(!allows(&["oci/v1/*"], "oci/v2/verify"));
        assert!(!allows::<&str>(&[], "kubernetes/get_resource"));
    }

    #[test]
    fn mismatch_lists_both_directions() {
        let detected = BTreeSet::from(["kubernetes/get_resource".to_string()]);
        let declared = BTreeSet::from(["oci/*".to_string()]);
        let (undeclared, unused) = mismatch(&detected, &declared);
        assert_eq!(undeclared, ["kubernetes/get_resource"]);
        assert_eq!(unused, ["oci/*"]);
        let declared = BTreeSet::from(["kubernetes/*".to_string()]);
        assert_eq!(mismatch(&detected, &declared), (vec![], vec![]));
    }
}
