//! Label selector evaluation with upstream (`metav1.LabelSelectorAsSelector`) semantics.
//!
//! - `matchLabels` entries and `matchExpressions` are ANDed.
//! - `In`: the label exists and its value is listed; `NotIn`: the label is absent or its value
//!   is not listed; `Exists` / `DoesNotExist`: presence only.
//! - `In`/`NotIn` need at least one value, `Exists`/`DoesNotExist` none; an unknown operator or
//!   an empty key makes the selector invalid.
//! - An empty selector (`{}`) selects everything; an absent (`null`) selector selects nothing
//!   in pod affinity terms and topology spread constraints ([`select`] takes an `Option`).

use crate::workload::{LabelSelector, LabelSelectorRequirement};
use std::collections::BTreeMap;
use std::fmt;

pub type Labels = BTreeMap<String, String>;

/// Selector operators, as spelled in the API (case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One checked requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn new(key: impl Into<String>, operator: Operator, values: Vec<String>) -> Self {
        Requirement {
            key: key.into(),
            operator,
            values,
        }
    }

    /// Check a `matchExpressions` entry as the API server does.
    pub fn from_api(r: &LabelSelectorRequirement) -> Result<Requirement, String> {
        if r.key.is_empty() {
            return Err("a matchExpressions entry has an empty key".to_string());
        }
        let operator = match r.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(format!(
                    "matchExpressions key {}: unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)",
                    r.key
                ));
            }
        };
        let needs_values = matches!(operator, Operator::In | Operator::NotIn);
        if needs_values == r.values.is_empty() {
            return Err(format!(
                "matchExpressions key {}: operator {} {}",
                r.key,
                r.operator,
                if needs_values {
                    "needs at least one value"
                } else {
                    "takes no values"
                }
            ));
        }
        Ok(Requirement::new(r.key.clone(), operator, r.values.clone()))
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }

    /// Why `labels` fail this requirement, e.g. `requires app=web, the pods have app=db`.
    fn explain_miss(&self, labels: &Labels) -> String {
        match labels.get(&self.key) {
            Some(v) => format!("requires {self}, the pods have {}={v}", self.key),
            None => format!("requires {self}, the pods have no label {}", self.key),
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream selector syntax: `app=web`, `tier in (a,b)`, `tier notin (a)`, `key`, `!key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.operator, self.values.as_slice()) {
            (Operator::In, [one]) => write!(f, "{}={one}", self.key),
            (Operator::In, v) => write!(f, "{} in ({})", self.key, v.join(",")),
            (Operator::NotIn, [one]) => write!(f, "{}!={one}", self.key),
            (Operator::NotIn, v) => write!(f, "{} notin ({})", self.key, v.join(",")),
            (Operator::Exists, _) => write!(f, "{}", self.key),
            (Operator::DoesNotExist, _) => write!(f, "!{}", self.key),
        }
    }
}

/// A selector, validated and flattened to requirements (`matchLabels` first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Validate an API `LabelSelector`.
    pub fn from_api(sel: &LabelSelector) -> Result<Selector, String> {
        let mut requirements =
            Vec::with_capacity(sel.match_labels.len() + sel.match_expressions.len());
        for (k, v) in &sel.match_labels {
            if k.is_empty() {
                return Err("matchLabels has an empty key".to_string());
            }
            requirements.push(Requirement::new(k.clone(), Operator::In, vec![v.clone()]));
        }
        for r in &sel.match_expressions {
            requirements.push(Requirement::from_api(r)?);
        }
        Ok(Selector { requirements })
    }

    /// The first requirement `labels` fail, explained; `None` when the selector matches.
    /// An empty selector matches everything.
    pub fn mismatch(&self, labels: &Labels) -> Option<String> {
        self.requirements
            .iter()
            .find(|r| !r.matches(labels))
            .map(|r| r.explain_miss(labels))
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{} (everything)");
        }
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Outcome of applying an optional selector to a set of labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Selected,
    /// Not selected, with the reason (for messages).
    NotSelected(String),
}

/// Apply an affinity-style selector: `None` selects nothing, `{}` everything. `extra`
/// requirements (from `matchLabelKeys`/`mismatchLabelKeys`) are ANDed. `Err` for an invalid
/// selector.
pub fn select(
    sel: Option<&LabelSelector>,
    extra: &[Requirement],
    labels: &Labels,
) -> Result<Selection, String> {
    let Some(sel) = sel else {
        return Ok(Selection::NotSelected(
            "it has no labelSelector, so it selects no pods".to_string(),
        ));
    };
    let mut selector = Selector::from_api(sel)?;
    selector.requirements.extend_from_slice(extra);
    Ok(match selector.mismatch(labels) {
        None => Selection::Selected,
        Some(why) => Selection::NotSelected(format!("its selector {selector} {why}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(json: serde_json::Value) -> LabelSelector {
        serde_json::from_value(json).unwrap()
    }

    fn selected(s: Option<&LabelSelector>, l: &Labels) -> bool {
        select(s, &[], l).unwrap() == Selection::Selected
    }

    #[test]
    fn empty_selects_everything_null_selects_nothing() {
        let l = labels(&[("app", "web")]);
        assert!(selected(Some(&sel(serde_json::json!({}))), &l));
        assert!(selected(Some(&sel(serde_json::json!({}))), &Labels::new()));
        assert!(selected(
            Some(&sel(
                serde_json::json!({"matchLabels": null, "matchExpressions": null})
            )),
            &l
        ));
        match select(None, &[], &l).unwrap() {
            Selection::NotSelected(why) => assert!(why.contains("no labelSelector"), "{why}"),
            Selection::Selected => panic!("null selected"),
        }
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = sel(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]
        }));
        assert!(selected(
            Some(&s),
            &labels(&[("app", "web"), ("tier", "b")])
        ));
        assert!(!selected(
            Some(&s),
            &labels(&[("app", "web"), ("tier", "c")])
        ));
        assert!(!selected(Some(&s), &labels(&[("app", "web")])));
        assert!(!selected(
            Some(&s),
            &labels(&[("app", "db"), ("tier", "a")])
        ));
    }

    #[test]
    fn operators_follow_upstream() {
        let expr = |op: &str, values: &[&str]| {
            sel(
                serde_json::json!({"matchExpressions": [{"key": "k", "operator": op, "values": values}]}),
            )
        };
        let with = labels(&[("k", "x")]);
        let other = labels(&[("k", "y")]);
        let without = labels(&[("z", "x")]);
        assert!(selected(Some(&expr("In", &["x"])), &with));
        assert!(!selected(Some(&expr("In", &["x"])), &without));
        assert!(!selected(Some(&expr("NotIn", &["x"])), &with));
        assert!(selected(Some(&expr("NotIn", &["x"])), &other));
        // NotIn matches when the label is absent.
        assert!(selected(Some(&expr("NotIn", &["x"])), &without));
        assert!(selected(Some(&expr("Exists", &[])), &with));
        assert!(!selected(Some(&expr("Exists", &[])), &without));
        assert!(selected(Some(&expr("DoesNotExist", &[])), &without));
        assert!(!selected(Some(&expr("DoesNotExist", &[])), &with));
    }

    #[test]
    fn invalid_selectors_are_errors() {
        let bad = |json| select(Some(&sel(json)), &[], &Labels::new()).unwrap_err();
        assert!(bad(serde_json::json!({"matchExpressions": [{"key": "k", "operator": "in", "values": ["x"]}]})).contains("unknown operator"));
        assert!(
            bad(serde_json::json!({"matchExpressions": [{"key": "k", "operator": "In"}]}))
                .contains("needs at least one value")
        );
        assert!(bad(serde_json::json!({"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]})).contains("takes no values"));
        assert!(
            bad(serde_json::json!({"matchExpressions": [{"key": "", "operator": "Exists"}]}))
                .contains("empty key")
        );
        assert!(bad(serde_json::json!({"matchLabels": {"": "x"}})).contains("empty key"));
    }

    #[test]
    fn extra_requirements_and_reasons() {
        let s = sel(serde_json::json!({"matchLabels": {"app": "web"}}));
        let l = labels(&[("app", "web"), ("rev", "1")]);
        let not_rev = [Requirement::new("rev", Operator::NotIn, vec!["1".into()])];
        match select(Some(&s), &not_rev, &l).unwrap() {
            Selection::NotSelected(why) => {
                assert!(why.contains("app=web,rev!=1"), "{why}");
                assert!(why.contains("the pods have rev=1"), "{why}");
            }
            Selection::Selected => panic!("mismatchLabelKeys ignored"),
        }
        match select(Some(&s), &[], &labels(&[("app", "db")])).unwrap() {
            Selection::NotSelected(why) => {
                assert_eq!(
                    why,
                    "its selector app=web requires app=web, the pods have app=db"
                );
            }
            Selection::Selected => panic!(),
        }
        let tiers = Requirement::new("tier", Operator::In, vec!["a".into(), "b".into()]);
        assert_eq!(tiers.to_string(), "tier in (a,b)");
        assert_eq!(
            Requirement::new("k", Operator::DoesNotExist, vec![]).to_string(),
            "!k"
        );
    }
}
