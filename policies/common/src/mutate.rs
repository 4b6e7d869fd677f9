//! Mutation: fill in what a rule found missing, never change a value the user wrote.
//!
//! A rule that knows how to repair one of its findings says so next to it, as a [`Fix`]: the
//! field (the dotted path findings use, so it lands in the right place for every workload kind:
//! `spec.containers[0]…` in a Pod, `spec.template.spec…` in a Deployment,
//! `spec.jobTemplate.spec.template.spec…` in a CronJob) and what to fill in there. The rule stays
//! pure: object in, findings and fixes out.
//!
//! [`repair`] is the one place fixes are applied: to a copy of the object, which the same policy
//! then evaluates again. Only a copy the policy accepts is returned; otherwise the original
//! rejection stands and nothing is patched. An explicit violation (`runAsUser: 0`) has no fix, so
//! it always stays a rejection.

use crate::policy::Policy;
use crate::request::{Object, Request};
use crate::{ClusterContext, Verdict};
use serde_json::{Map, Value};

/// What to fill in at a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// Set the field when it is absent or `null`; a value already there is left alone.
    Default(Value),
    /// Add the item to the list at the field (created when absent or `null`) unless it is
    /// already there; the other items are kept.
    Append(Value),
}

/// One repair: where, and what to fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// Field path inside the object, as in findings: `spec.containers[0].securityContext.runAsNonRoot`.
    pub path: String,
    pub fill: Fill,
}

impl Fix {
    pub fn default(path: impl Into<String>, value: Value) -> Fix {
        Fix {
            path: path.into(),
            fill: Fill::Default(value),
        }
    }

    pub fn append(path: impl Into<String>, item: Value) -> Fix {
        Fix {
            path: path.into(),
            fill: Fill::Append(item),
        }
    }

    /// Apply to `object`: `Ok(true)` when something was filled in, `Ok(false)` when the field
    /// already had its value. Missing or `null` mappings on the way are created; a field on the
    /// way that is not a mapping (or an index past the end of a list) is an error.
    pub fn apply(&self, object: &mut Value) -> Result<bool, String> {
        let segments = segments(&self.path)?;
        let mut cur = object;
        for seg in &segments {
            cur = match seg {
                Segment::Key(key) => {
                    if cur.is_null() {
                        *cur = Value::Object(Map::new());
                    }
                    let Value::Object(map) = cur else {
                        return Err(format!("{}: {key}: not inside a mapping", self.path));
                    };
                    map.entry(*key).or_insert(Value::Null)
                }
                Segment::Index(i) => cur
                    .as_array_mut()
                    .and_then(|list| list.get_mut(*i))
                    .ok_or_else(|| format!("{}: no item [{i}]", self.path))?,
            };
        }
        match &self.fill {
            Fill::Default(value) if cur.is_null() => *cur = value.clone(),
            Fill::Default(_) => return Ok(false),
            Fill::Append(item) => match cur {
                Value::Null => *cur = Value::Array(vec![item.clone()]),
                Value::Array(list) if list.contains(item) => return Ok(false),
                Value::Array(list) => list.push(item.clone()),
                _ => return Err(format!("{}: not a list", self.path)),
            },
        }
        Ok(true)
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[0].c` → `a`, `b`, `[0]`, `c`.
fn segments(path: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if key.is_empty() {
            return Err(format!("{path}: empty field name"));
        }
        out.push(Segment::Key(key));
        while let Some(inner) = rest.strip_prefix('[') {
            let (index, tail) = inner
                .split_once(']')
                .ok_or_else(|| format!("{path}: unclosed ["))?;
            let index = index
                .parse()
                .map_err(|_| format!("{path}: bad index [{index}]"))?;
            out.push(Segment::Index(index));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(format!("{path}: unexpected {rest}"));
        }
    }
    Ok(out)
}

/// Repair a rejected object with the fixes of its `verdict`: the mutated object and the verdict
/// of the same policy on it, when that verdict accepts; `None` (patch nothing) when there is
/// nothing to fill in, a fix cannot be applied, or the policy still rejects the result.
pub fn repair<P: Policy>(
    req: &Request<'_>,
    verdict: &Verdict,
    settings: &P::Settings,
    ctx: &dyn ClusterContext,
) -> Option<(Value, Verdict)> {
    if verdict.fixes.is_empty() {
        return None;
    }
    let mut object = req.object.to_value().ok()?;
    let mut changed = false;
    for fix in &verdict.fixes {
        changed |= fix.apply(&mut object).ok()?;
    }
    if !changed {
        return None;
    }
    let again = Request {
        object: Object::Value(&object),
        ..*req
    };
    let checked = P::evaluate(&again, settings, ctx);
    checked.accepted().then_some((object, checked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut v = json!({"spec": {"containers": [{"name": "a", "securityContext": null}, {"name": "b", "securityContext": {"runAsNonRoot": false}}]}});
        let fix = |i: usize| {
            Fix::default(
                format!("spec.containers[{i}].securityContext.runAsNonRoot"),
                json!(true),
            )
        };
        assert_eq!(fix(0).apply(&mut v), Ok(true));
        assert_eq!(fix(1).apply(&mut v), Ok(false));
        assert_eq!(fix(0).apply(&mut v), Ok(false));
        assert_eq!(
            v["spec"]["containers"][0]["securityContext"],
            json!({"runAsNonRoot": true})
        );
        assert_eq!(
            v["spec"]["containers"][1]["securityContext"]["runAsNonRoot"],
            false
        );
        // Intermediate mappings are created, but never through a list index.
        let mut empty = json!({});
        assert_eq!(
            Fix::default("spec.template.spec.x", json!(1)).apply(&mut empty),
            Ok(true)
        );
        assert_eq!(empty, json!({"spec": {"template": {"spec": {"x": 1}}}}));
        assert!(fix(2).apply(&mut v).is_err());
    }

    #[test]
    fn appends_keep_the_other_items() {
        let mut v = json!({"c": {"drop": ["NET_RAW"]}, "d": {}, "e": {"drop": "ALL"}});
        assert_eq!(Fix::append("c.drop", json!("ALL")).apply(&mut v), Ok(true));
        assert_eq!(Fix::append("c.drop", json!("ALL")).apply(&mut v), Ok(false));
        assert_eq!(Fix::append("d.drop", json!("ALL")).apply(&mut v), Ok(true));
        assert_eq!(v["c"]["drop"], json!(["NET_RAW", "ALL"]));
        assert_eq!(v["d"]["drop"], json!(["ALL"]));
        assert!(Fix::append("e.drop", json!("ALL")).apply(&mut v).is_err());
        assert!(Fix::append("e.drop.x", json!("ALL")).apply(&mut v).is_err());
    }

    #[test]
    fn bad_paths_are_errors() {
        let mut v = json!({});
        for bad in ["", "a..b", "a[x]", "a[1", "a[0]b"] {
            assert!(Fix::default(bad, json!(1)).apply(&mut v).is_err(), "{bad}");
        }
    }
}
