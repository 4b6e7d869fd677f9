//! JSON Schemas of the settings building blocks (feature `schema`, never in a policy module).
//!
//! Each policy derives `schemars::JsonSchema` for its `Settings` behind its own `schema`
//! feature: the struct, its doc comments and its `Default` are the one definition from which
//! `stackguard generate` writes the JSON Schema, `questions-ui.yml` and the README table. The
//! types here are shared by several policies; their schemas say exactly what their parsers
//! accept, so that the schema and `validate_settings` agree (tested on every settings case).
//!
//! Conventions the generator reads from a field's schema:
//! - the doc comment: a first line `# Short label` (a rustdoc heading, which schemars makes the
//!   `title`), a blank line, then the description; without a heading the label comes from the
//!   field name. Every setting needs a description: the generator refuses undocumented fields;
//! - `x-show-if`: a Rancher `show_if` expression (`otherSetting=true`);
//! - `x-type`: the type's name in the README table (`quantity`, `glob`, `label selector`);
//! - `x-order`: property order, where the declaration order is not known;
//! - `x-yaml-only`: a setting the Rancher form cannot express (maps of lists), left to the YAML
//!   editor.

use crate::quantity::Spelled;
use crate::workload::{LabelSelector, LabelSelectorRequirement};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// The strings `quantity::Quantity::parse` accepts (it trims surrounding whitespace).
pub const QUANTITY_PATTERN: &str =
    r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?\s*$";

/// A string with at least one non-blank character (what `trim().is_empty()` rejects).
const NOT_BLANK: &str = r"\S";

impl JsonSchema for Spelled {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// A string or a bare number, as Kubernetes `resource.Quantity` reads it.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-type": "quantity",
            "anyOf": [
                {"type": "string", "pattern": QUANTITY_PATTERN},
                {"type": "number"}
            ]
        })
    }
}

impl JsonSchema for LabelSelectorRequirement {
    fn schema_name() -> Cow<'static, str> {
        "LabelSelectorRequirement".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// As `selector::Requirement::from_api` checks it: a key, a known operator, values for
    /// `In`/`NotIn` and none for `Exists`/`DoesNotExist`.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-order": ["key", "operator", "values"],
            "required": ["key", "operator"],
            "properties": {
                "key": {"type": "string", "minLength": 1, "title": "Key"},
                "operator": {
                    "type": "string",
                    "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                    "title": "Operator"
                },
                "values": {"type": ["array", "null"], "items": {"type": "string"}, "title": "Values"}
            },
            "if": {"properties": {"operator": {"enum": ["In", "NotIn"]}}},
            "then": {"required": ["values"], "properties": {"values": {"type": "array", "minItems": 1}}},
            "else": {"properties": {"values": {"maxItems": 0}}}
        })
    }
}

impl JsonSchema for LabelSelector {
    fn schema_name() -> Cow<'static, str> {
        "LabelSelector".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// `metav1.LabelSelector`: `matchLabels` and `matchExpressions` are ANDed; `{}` selects
    /// everything. Unknown keys are ignored, as the policies' parser ignores them.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let requirement = generator.subschema_for::<LabelSelectorRequirement>();
        json_schema!({
            "type": "object",
            "x-type": "label selector",
            "x-order": ["matchLabels", "matchExpressions"],
            "properties": {
                "matchLabels": {
                    "type": ["object", "null"],
                    "title": "Match labels",
                    "propertyNames": {"minLength": 1},
                    "additionalProperties": {"type": "string"}
                },
                "matchExpressions": {
                    "type": ["array", "null"],
                    "title": "Match expressions",
                    "items": requirement
                }
            }
        })
    }
}

/// `schema_with` for a list of globs (`*`, `?`): blank patterns are rejected, as
/// `glob::validate_patterns` does.
pub fn globs(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "pattern": NOT_BLANK, "x-type": "glob"}
    })
}

/// `schema_with` for a list of non-blank strings.
pub fn non_blank_strings(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "pattern": NOT_BLANK}
    })
}

/// `schema_with` for a non-empty list of non-blank strings.
pub fn non_empty_strings(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "pattern": NOT_BLANK}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::Quantity;

    /// The pattern accepts exactly what the parser accepts, on the grammar's edge cases.
    #[test]
    fn quantity_pattern_matches_the_parser() {
        let pattern = regex_lite::Regex::new(QUANTITY_PATTERN).unwrap();
        for text in [
            "1", "500m", "0.5", ".5", "5.", "+1", "-1", "1Gi", "1e9", "1E-3", "1e+3", " 2 ", "1k",
            "1K", "1.5GB", "1e", "--1", "", "Gi", "1 Gi", "1ei", "1Ki2", "0x10", "1_000", "٣",
        ] {
            assert_eq!(
                pattern.is_match(text),
                Quantity::parse(text).is_ok(),
                "{text:?}"
            );
        }
    }
}
