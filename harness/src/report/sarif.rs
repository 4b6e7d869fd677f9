//! SARIF 2.1.0 as GitHub code scanning accepts it: one rule per policy (with help text), one
//! result per finding with file and line; unreadable manifests are results of the rule
//! `manifest-error` so they show up in the same place.

use super::{Finding, indent_rest};
use crate::engine::PolicyInfo;
use crate::manifest::InputError;
use serde_json::{Value, json};

const ERROR_RULE: &str = "manifest-error";

/// A relative URI for a path (percent-encoding what a URI cannot hold).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.replace('\\', "/").chars() {
        match ch {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' | '/' | ':' | '@' | '+' => {
                out.push(ch)
            }
            _ => {
                let mut buf = [0u8; 4];
                for b in ch.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// A file of the repository (relative to `%SRCROOT%`, with a line), or an object of a cluster
/// (`audit`: an absolute `cluster://` URI without a region).
fn location(file: &str, line: usize) -> Value {
    if file.starts_with("cluster://") {
        return json!({
            "physicalLocation": {"artifactLocation": {"uri": uri(file)}}
        });
    }
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri(file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": line.max(1)}
        }
    })
}

/// The rules: one per policy (with help text), then `manifest-error`.
fn rules(policies: &[PolicyInfo]) -> Vec<Value> {
    let mut rules: Vec<Value> = policies
        .iter()
        .map(|p| {
            let desc = p
                .description()
                .map(str::to_string)
                .unwrap_or_else(|| format!("stackguard policy {}", p.name));
            let mut help = format!(
                "{desc}. Fix the field named in the message, or exempt the object in .stackguard.yaml (exemptions: [{{policy: {}, kind, namespace, name}}]).",
                p.name
            );
            if let Some(url) = p.url() {
                help.push_str(&format!(" Documentation: {url}"));
            }
            let mut rule = json!({
                "id": p.name,
                "name": p.name,
                "shortDescription": {"text": desc},
                "fullDescription": {"text": desc},
                "help": {"text": help, "markdown": help},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["kubernetes", "security"]},
            });
            if let Some(url) = p.url() {
                rule["helpUri"] = json!(url);
            }
            rule
        })
        .collect();
    rules.push(json!({
        "id": ERROR_RULE,
        "name": ERROR_RULE,
        "shortDescription": {"text": "The manifest cannot be read"},
        "fullDescription": {"text": "The file is not valid YAML or JSON, so its objects could not be checked."},
        "help": {"text": "Fix the syntax error at the reported line.", "markdown": "Fix the syntax error at the reported line."},
        "defaultConfiguration": {"level": "error"},
    }));
    rules
}

/// The index of a rule: a policy's position, `manifest-error` after them.
fn rule_index(policies: &[PolicyInfo], id: &str) -> usize {
    policies
        .iter()
        .position(|p| p.name == id)
        .unwrap_or(policies.len())
}

/// The document up to the first result.
pub fn begin(policies: &[PolicyInfo]) -> String {
    let tool = json!({"driver": {
        "name": "stackguard",
        "version": env!("CARGO_PKG_VERSION"),
        "informationUri": "https://github.com/stackguard/stackguard",
        "rules": rules(policies),
    }});
    format!(
        "{{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n  \"version\": \"2.1.0\",\n  \"runs\": [\n    {{\n      \"tool\": {},\n      \"columnKind\": \"unicodeCodePoints\",\n      \"results\": [",
        indent_rest(&serde_json::to_string_pretty(&tool).unwrap_or_default(), 6)
    )
}

fn result(out: &mut String, first: bool, r: &Value) {
    if !first {
        out.push(',');
    }
    out.push_str("\n        ");
    out.push_str(&indent_rest(
        &serde_json::to_string_pretty(r).unwrap_or_default(),
        8,
    ));
}

pub fn finding(out: &mut String, first: bool, f: &Finding, policies: &[PolicyInfo]) {
    let object = if f.namespace.is_empty() {
        format!("{} '{}'", f.kind, f.name)
    } else {
        format!("{} '{}/{}'", f.kind, f.namespace, f.name)
    };
    let text = match &f.path {
        Some(p) => format!("{object}: {p}: {}", f.message),
        None => format!("{object}: {}", f.message),
    };
    let r = json!({
        "ruleId": f.policy,
        "ruleIndex": rule_index(policies, &f.policy),
        "level": "error",
        "message": {"text": text},
        "locations": [location(&f.file, f.line)],
    });
    result(out, first, &r);
}

/// The unreadable inputs as results of `manifest-error`, and the end of the document.
pub fn finish(out: &mut String, no_findings: bool, errors: &[InputError], policies: &[PolicyInfo]) {
    for (i, e) in errors.iter().enumerate() {
        let r = json!({
            "ruleId": ERROR_RULE,
            "ruleIndex": rule_index(policies, ERROR_RULE),
            "level": "error",
            "message": {"text": e.message},
            "locations": [location(&e.file, e.line.unwrap_or(1))],
        });
        result(out, no_findings && i == 0, &r);
    }
    if !no_findings || !errors.is_empty() {
        out.push_str("\n      ");
    }
    out.push_str("]\n    }\n  ]\n}\n");
}

#[cfg(test)]
mod tests {
    #[test]
    fn uris_are_encoded() {
        assert_eq!(super::uri("a b/c#d.yaml"), "a%20b/c%23d.yaml");
    }
}
