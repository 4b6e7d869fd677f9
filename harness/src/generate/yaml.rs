//! Building and writing the generated YAML files (yaml-rust2's emitter: ordered keys, quoting
//! where YAML needs it, literal blocks for multi-line text).

use serde_json::Value;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

pub fn string(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

/// A mapping with its keys in the given order.
pub fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Yaml)>) -> Yaml {
    Yaml::Hash(
        entries
            .into_iter()
            .map(|(k, v)| (string(k), v))
            .collect::<Hash>(),
    )
}

/// A JSON value as YAML (object keys in serde_json's order).
pub fn from_json(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => string(s),
        Value::Array(items) => Yaml::Array(items.iter().map(from_json).collect()),
        Value::Object(map) => Yaml::Hash(
            map.iter()
                .map(|(k, v)| (string(k), from_json(v)))
                .collect::<Hash>(),
        ),
    }
}

/// The document, without the `---` line the emitter starts with.
pub fn emit(doc: &Yaml) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    // Writing into a String cannot fail.
    let _ = emitter.dump(doc);
    out.strip_prefix("---\n").unwrap_or(&out).to_string()
}

/// A value in YAML flow style on one line, for tables: `true`, `[a, b]`, `{k: "true"}`.
pub fn flow(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", scalar(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::String(s) => scalar(s),
        other => other.to_string(),
    }
}

/// A string as a flow scalar: plain when YAML reads it back as the same string, else quoted.
fn scalar(s: &str) -> String {
    let mut emitted = emit(&string(s));
    if emitted.contains(['[', ']', '{', '}', ',']) && !emitted.starts_with('"') {
        emitted = Value::String(s.to_string()).to_string();
    }
    emitted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_quotes_what_yaml_would_misread() {
        assert_eq!(
            flow(&json!({"matchLabels": {"app.kubernetes.io/x": "true"}, "k": [1, "a b", ""]})),
            r#"{k: [1, a b, ""], matchLabels: {app.kubernetes.io/x: "true"}}"#
        );
        let doc = map([("type", string("map[")), ("text", string("a\nb"))]);
        let text = emit(&doc);
        let back = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
        assert_eq!(back["type"].as_str(), Some("map["));
        assert_eq!(back["text"].as_str(), Some("a\nb"));
    }
}
