//! Which kinds `audit` lists: the group/version/resources of the policies' rules, as
//! Kubewarden's audit scanner picks them (rules with a CREATE operation, no wildcards, no
//! subresources, policies with `backgroundAudit`), resolved against what the cluster serves.

use crate::engine::PolicyInfo;
use crate::kubeclient::{api_error, status_code};
use kube::Client;
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{self, Scope};
use std::collections::BTreeSet;

/// One group/version/resource a policy rule names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

impl RuleResource {
    /// `apps/v1 deployments`, `v1 secrets`.
    pub fn display(&self) -> String {
        match self.group.as_str() {
            "" => format!("{} {}", self.version, self.resource),
            g => format!("{g}/{} {}", self.version, self.resource),
        }
    }
}

/// What the policies audit, and the rules left out (with why).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub resources: BTreeSet<RuleResource>,
    pub skipped: Vec<String>,
}

/// The resources the policies' rules name; `skip_secrets` leaves core Secrets out.
pub fn select(policies: &[PolicyInfo], skip_secrets: bool) -> Selection {
    let mut out = Selection::default();
    for p in policies {
        if !p.metadata.background_audit {
            out.skipped
                .push(format!("{}: backgroundAudit is false, not audited", p.name));
            continue;
        }
        for rule in &p.metadata.rules {
            if !rule.operations.iter().any(|o| o == "CREATE" || o == "*") {
                continue;
            }
            let wild = |v: &[String]| v.iter().any(|x| x.contains('*'));
            if wild(&rule.api_groups) || wild(&rule.api_versions) || wild(&rule.resources) {
                out.skipped.push(format!(
                    "{}: a rule with wildcards is not audited (name its groups, versions and resources)",
                    p.name
                ));
                continue;
            }
            for g in &rule.api_groups {
                for v in &rule.api_versions {
                    for r in rule.resources.iter().filter(|r| !r.contains('/')) {
                        if skip_secrets && g.is_empty() && r == "secrets" {
                            continue;
                        }
                        out.resources.insert(RuleResource {
                            group: g.clone(),
                            version: v.clone(),
                            resource: r.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// A kind the cluster serves, ready to list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Resolve each selected resource against the cluster's discovery. Returns the listable kinds
/// and a note for each resource the cluster does not serve (e.g. CloudNativePG's `clusters`
/// without its CRD), which is not an error.
pub async fn resolve(
    client: &Client,
    selection: &BTreeSet<RuleResource>,
) -> Result<(Vec<Listed>, Vec<String>), String> {
    let mut listed = Vec::new();
    let mut notes = Vec::new();
    let groups: BTreeSet<(&str, &str)> = selection
        .iter()
        .map(|r| (r.group.as_str(), r.version.as_str()))
        .collect();
    for (group, version) in groups {
        let gv = GroupVersion::gv(group, version);
        let found = match discovery::pinned_group(client, &gv).await {
            Ok(g) => g.versioned_resources(version),
            Err(kube::Error::Discovery(_)) => Vec::new(),
            Err(e) if status_code(&e) == Some(404) => Vec::new(),
            Err(e) => {
                return Err(format!(
                    "discovering {}: {}",
                    gv.api_version(),
                    api_error(&e)
                ));
            }
        };
        for r in selection
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            match found.iter().find(|(ar, _)| ar.plural == r.resource) {
                Some((ar, caps)) if caps.supports_operation(discovery::verbs::LIST) => {
                    listed.push(Listed {
                        resource: ar.clone(),
                        namespaced: caps.scope == Scope::Namespaced,
                    });
                }
                Some(_) => notes.push(format!("{}: cannot be listed, skipped", r.display())),
                None => notes.push(format!(
                    "{}: not served by this cluster (no such API or CRD), skipped",
                    r.display()
                )),
            }
        }
    }
    Ok((listed, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Metadata;

    fn policy(name: &str, rules: &str, audit: bool) -> PolicyInfo {
        PolicyInfo {
            name: name.into(),
            metadata: Metadata::from_yaml(
                &format!("rules: {rules}\nbackgroundAudit: {audit}\n"),
                name,
            )
            .unwrap(),
        }
    }

    #[test]
    fn selection_follows_the_audit_scanner() {
        let ps = [
            policy(
                "a",
                "[{apiGroups: ['', apps], apiVersions: [v1], resources: [secrets, pods/status, deployments], operations: [CREATE, UPDATE]}]",
                true,
            ),
            policy(
                "b",
                "[{apiGroups: [batch], apiVersions: [v1], resources: [jobs], operations: [DELETE]}, \
                  {apiGroups: ['*'], apiVersions: [v1], resources: [pods], operations: [CREATE]}]",
                true,
            ),
            policy(
                "c",
                "[{apiGroups: [''], apiVersions: [v1], resources: [configmaps], operations: ['*']}]",
                false,
            ),
        ];
        let s = select(&ps, false);
        let got: Vec<String> = s.resources.iter().map(RuleResource::display).collect();
        // No subresource, no DELETE-only rule, no wildcard rule, no policy without background audit.
        assert_eq!(
            got,
            [
                "v1 deployments",
                "v1 secrets",
                "apps/v1 deployments",
                "apps/v1 secrets"
            ]
        );
        assert_eq!(s.skipped.len(), 2, "{:?}", s.skipped);
        let s = select(&ps, true);
        assert!(
            !s.resources
                .iter()
                .any(|r| r.group.is_empty() && r.resource == "secrets")
        );
        assert!(
            s.resources
                .iter()
                .any(|r| r.group == "apps" && r.resource == "secrets")
        );
    }
}
