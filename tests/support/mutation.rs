//! The mutation property, shared by the fixture and corpus tests. For one policy and one object,
//! with the policy's `mutate` setting off and on:
//!
//! - no mutation: the answer is exactly the one without mutation (a compliant object gets no
//!   patch; an object that filling in cannot fix stays rejected, same message);
//! - a mutation: only for an object rejected without it; the answer accepts; the patch only adds
//!   (`add`, or `replace` of a `null`: a value the user wrote is never changed); the mutated
//!   object passes the same policy with mutation off (fix-then-check); mutating it again
//!   changes nothing (idempotent).

use serde_json::Value;
use stackguard::policies::{self, Entry};
use stackguard_common::ClusterContext;
use stackguard_common::policy::{Prepared, Response};
use stackguard_common::request::Operation;

/// `settings` with `mutate` set to `on` (an object; `null` means the defaults).
pub fn with_mutate(settings: &Value, on: bool) -> Value {
    let mut s = match settings {
        Value::Object(_) => settings.clone(),
        _ => Value::Object(Default::default()),
    };
    s["mutate"] = Value::Bool(on);
    s
}

/// A policy twice: with mutation off and on, and the settings with it on.
pub struct Pair {
    pub off: Box<dyn Prepared>,
    pub on: Box<dyn Prepared>,
    pub on_settings: Value,
}

/// `None` when the policy does not mutate or refuses `settings` with `mutate: true`.
pub fn prepare_pair(entry: &Entry, settings: &Value) -> Option<Pair> {
    let plain = (!settings.is_null()).then(|| settings.to_string());
    if !(entry.prepare)(plain.as_deref()).ok()?.mutating() {
        return None;
    }
    let off = (entry.prepare)(Some(&with_mutate(settings, false).to_string())).ok()?;
    let on_settings = with_mutate(settings, true);
    let on = (entry.prepare)(Some(&on_settings.to_string())).ok()?;
    Some(Pair {
        off,
        on,
        on_settings,
    })
}

/// Every operation of the JSONPatch from `before` to `after` adds something.
pub fn only_additions(before: &Value, after: &Value) -> Result<(), String> {
    for op in json_patch::diff(before, after).0 {
        let fine = match &op {
            json_patch::PatchOperation::Add(_) => true,
            json_patch::PatchOperation::Replace(r) => {
                before.pointer(r.path.as_str()) == Some(&Value::Null)
            }
            _ => false,
        };
        if !fine {
            return Err(format!("the patch changes a value the user wrote: {op}"));
        }
    }
    Ok(())
}

/// Check the property; returns the answer with mutation on.
pub fn check(
    off: &dyn Prepared,
    on: &dyn Prepared,
    object: &Value,
    operation: Operation,
    ctx: &dyn ClusterContext,
) -> Result<Response, String> {
    let respond = |p: &dyn Prepared, o: &Value| policies::respond_object(p, o, operation, ctx);
    let without = respond(off, object);
    let with = respond(on, object);
    if without.mutated_object.is_some() {
        return Err("mutate: false, yet the object was mutated".to_string());
    }
    let Some(mutated) = &with.mutated_object else {
        if with != without {
            return Err(format!(
                "no mutation, yet the answer differs from mutate: false:\n  on:  {with:?}\n  off: {without:?}"
            ));
        }
        return Ok(with);
    };
    if without.accepted {
        return Err("an accepted object was mutated".to_string());
    }
    if !with.accepted || with.message.is_some() {
        return Err(format!("mutated but not accepted: {:?}", with.message));
    }
    only_additions(object, mutated)?;
    let again = respond(off, mutated);
    if !again.accepted {
        return Err(format!(
            "the mutated object fails the same policy: {:?}",
            again.message
        ));
    }
    if let Some(twice) = respond(on, mutated).mutated_object {
        return Err(format!(
            "not idempotent: mutating the mutated object changes it again: {}",
            json_patch::diff(mutated, &twice)
        ));
    }
    Ok(with)
}
