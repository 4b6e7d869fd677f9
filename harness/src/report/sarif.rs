//! SARIF 2.1.0 as GitHub code scanning accepts it: one rule per policy (with help text), one
//! result per finding with file and line; unreadable manifests are results of the rule
//! `manifest-error` so they show up in the same place.

use super::Report;
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

fn location(file: &str, line: usize) -> Value {
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri(file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": line.max(1)}
        }
    })
}

pub fn render(r: &Report) -> String {
    let mut rules: Vec<Value> = r
        .policies
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
    let rule_index = |id: &str| rules.iter().position(|r| r["id"] == id).unwrap_or(0);
    let mut results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let object = if f.namespace.is_empty() {
                format!("{} '{}'", f.kind, f.name)
            } else {
                format!("{} '{}/{}'", f.kind, f.namespace, f.name)
            };
            let text = match &f.path {
                Some(p) => format!("{object}: {p}: {}", f.message),
                None => format!("{object}: {}", f.message),
            };
            json!({
                "ruleId": f.policy,
                "ruleIndex": rule_index(&f.policy),
                "level": "error",
                "message": {"text": text},
                "locations": [location(&f.file, f.line)],
            })
        })
        .collect();
    results.extend(r.errors.iter().map(|e| {
        json!({
            "ruleId": ERROR_RULE,
            "ruleIndex": rule_index(ERROR_RULE),
            "level": "error",
            "message": {"text": e.message},
            "locations": [location(&e.file, e.line.unwrap_or(1))],
        })
    }));
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "stackguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/stackguard/stackguard",
                "rules": rules,
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uris_are_encoded() {
        assert_eq!(super::uri("a b/c#d.yaml"), "a%20b/c%23d.yaml");
    }
}
