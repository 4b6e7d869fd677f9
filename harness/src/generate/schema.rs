//! JSON Schemas: each policy's settings (from the derive on its `Settings`) and `.stackguard.yaml`.
//!
//! Draft-07, self-contained (every subschema inlined), so that editors with the YAML language
//! server, `check-jsonschema` and Python's `jsonschema` all read them. Generator-only keywords
//! (`x-order`, `x-type`, `x-show-if`, `x-yaml-only`) are dropped from the published files.

use super::Result;
use crate::policies::Entry;
use anyhow::anyhow;
use schemars::JsonSchema;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value, json};
use std::fmt;

/// Where the published schemas live, relative to the repository root.
pub fn settings_path(policy: &str) -> String {
    format!("policies/{policy}/settings.schema.json")
}
pub const CONFIG_PATH: &str = "harness/stackguard.schema.json";

/// The settings schema of `S`: draft-07, inlined, descriptions tidied, and `x-order` listing the
/// settings in declaration order (taken from how `S::default()` serialises).
pub fn settings_schema<S: JsonSchema + serde::Serialize + Default>() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut value = generator.root_schema_for::<S>().to_value();
    let order = serde_json::to_string(&S::default())
        .ok()
        .and_then(|text| ordered_keys(&text).ok())
        .unwrap_or_default();
    tidy(&mut value);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("x-order".into(), json!(order));
    }
    value
}

/// The keys of a JSON object in the order they are written.
fn ordered_keys(text: &str) -> std::result::Result<Vec<String>, serde_json::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(text).deserialize_map(Keys)
}

/// Doc comments arrive with their line breaks: keep paragraphs, join the lines inside them.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    ("description" | "title", Value::String(text)) => *text = paragraphs(text),
                    (_, v) => tidy(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The schema as published: generator-only keywords removed, `$id` set.
pub fn published(schema: &Value, id: &str) -> Value {
    let mut out = strip(schema);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("$id".into(), json!(id));
    }
    out
}

fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with("x-"))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// The raw URL of a file of this repository at the current version's tag.
pub fn raw_url(path: &str) -> String {
    format!(
        "https://raw.githubusercontent.com/stackguard/stackguard/v{}/{path}",
        super::VERSION
    )
}

/// The schema of `.stackguard.yaml`: the config's own fields (from `config::Config`) and, under
/// `policies`, each known policy with its settings schema.
pub fn config_schema(entries: &[(&Entry, Value)]) -> Result<Value> {
    let mut generator = schemars::generate::SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut root = generator
        .root_schema_for::<crate::config::Config>()
        .to_value();
    tidy(&mut root);
    let policies: Map<String, Value> = entries
        .iter()
        .map(|(entry, settings)| {
            let mut settings = strip(settings);
            if let Some(obj) = settings.as_object_mut() {
                obj.remove("$schema");
            }
            let policy = json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "enabled": {
                        "type": "boolean",
                        "default": true,
                        "description": "Run this policy (default true)."
                    },
                    "settings": {
                        "description": format!(
                            "The settings of {}, exactly as policy-server passes them (null: the defaults).",
                            entry.name
                        ),
                        "anyOf": [settings, {"type": "null"}]
                    }
                }
            });
            (entry.name.to_string(), policy)
        })
        .collect();
    let props = root
        .pointer_mut("/properties")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the config schema has no properties"))?;
    props.insert(
        "policies".into(),
        json!({
            "type": "object",
            "description": "Per policy, by name: whether it runs and its settings; policies not listed run with their defaults.",
            "additionalProperties": false,
            "properties": policies
        }),
    );
    Ok(published(&root, &raw_url(CONFIG_PATH)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order_and_paragraphs_their_breaks() {
        assert_eq!(
            ordered_keys(r#"{"b": 1, "a": {"z": [1, {"y": 2}]}, "c": null}"#).unwrap(),
            ["b", "a", "c"]
        );
        assert_eq!(
            paragraphs("one\ntwo  three\n\nfour\n"),
            "one two three\n\nfour"
        );
        let stripped =
            strip(&json!({"x-order": [1], "a": {"x-type": 1, "b": [ {"x-show-if": 1} ]}}));
        assert_eq!(stripped, json!({"a": {"b": [{}]}}));
    }
}
