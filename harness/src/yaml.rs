//! The one YAML reader of the harness: a `yaml-rust2` event parser that builds `serde_json`
//! values, records the line where every document starts, recovers after a malformed document,
//! and (on demand, only for objects with findings) maps field paths to source lines.
//!
//! Scalars resolve as Kubernetes reads YAML (go-yaml v2 under `sigs.k8s.io/yaml`): YAML 1.1
//! booleans (`yes`/`no`/`on`/`off`), `~`/`null`, decimal/hex/octal integers, floats; quoted and
//! block scalars are strings; mapping keys become strings; anchors, aliases and `<<` merge keys
//! work. Parsing never panics on any input.

use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// One YAML document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based position of the document in the stream (malformed documents count too).
    pub index: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    pub value: Value,
}

/// A syntax error: 1-based line and a description (never the offending text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// What a stream parses into: every readable document, and an error for each unreadable one.
#[derive(Debug, Default)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub errors: Vec<SyntaxError>,
}

/// Parse a whole YAML stream. After a syntax error, parsing resumes at the next `---` line.
pub fn parse_stream(text: &str) -> Stream {
    let mut out = Stream::default();
    let mut offset_line = 0usize;
    let mut rest = text;
    let mut doc_index = 0usize;
    loop {
        let (docs, err) = parse_part(rest);
        for mut d in docs {
            d.line += offset_line;
            d.index += doc_index;
            out.documents.push(d);
        }
        let Some((err_line, message, parsed_docs)) = err else {
            break;
        };
        let line = err_line + offset_line;
        out.errors.push(SyntaxError { line, message });
        doc_index += parsed_docs + 1;
        // Resume at the first `---` line after the error.
        let Some((skip_lines, next)) = next_document(rest, err_line) else {
            break;
        };
        offset_line += skip_lines;
        rest = next;
    }
    out
}

/// Every document of a stream as values (empty documents dropped); the first syntax error
/// fails the whole text, with its line.
pub fn values(text: &str) -> Result<Vec<Value>, SyntaxError> {
    let stream = parse_stream(text);
    if let Some(e) = stream.errors.into_iter().next() {
        return Err(e);
    }
    Ok(stream
        .documents
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect())
}

/// One YAML (or JSON) document as a value (`null` when the text is empty).
pub fn value(text: &str) -> Result<Value, SyntaxError> {
    Ok(values(text)?.into_iter().next().unwrap_or(Value::Null))
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// The local tag of a document's root node (`!KubernetesGetResource` → `KubernetesGetResource`),
/// as serde_yaml writes externally tagged enums.
pub fn root_tag(text: &str) -> Option<String> {
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token().ok()?.0 {
            Event::MappingStart(_, tag)
            | Event::SequenceStart(_, tag)
            | Event::Scalar(_, _, _, tag) => {
                return tag.filter(|t| t.handle == "!").map(|t| t.suffix);
            }
            Event::StreamEnd => return None,
            _ => {}
        }
    }
}

/// The text after line `after` (1-based) that starts with a `---` document marker, and the
/// number of lines skipped to get there.
fn next_document(text: &str, after: usize) -> Option<(usize, &str)> {
    let mut pos = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // The error may sit on the `---` that starts the next document: resume there, but
        // always past the first line so that parsing makes progress.
        if i >= after.saturating_sub(1).max(1) && is_document_marker(line) {
            return Some((i, &text[pos..]));
        }
        pos += line.len();
    }
    None
}

/// A `---` line (document start marker).
pub(crate) fn is_document_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '\n', '\r']))
}

/// Parse until the end or the first error: the documents read and, on error,
/// (line, message, number of documents read).
fn parse_part(text: &str) -> (Vec<Document>, Option<(usize, String, usize)>) {
    let mut builder = Builder::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(text, &mut |ev, mark| builder.event(ev, mark))
    }));
    let err = match result {
        Ok(Ok(())) => None,
        // The column helps in editors and in the playground, which places the cursor there.
        Ok(Err(e)) => Some((
            e.marker().line().max(1),
            format!("{} (column {})", e.info(), e.marker().col() + 1),
        )),
        Err(_) => Some((
            builder.last_line.max(1),
            "the YAML parser failed on this document".to_string(),
        )),
    };
    let n = builder.docs.len();
    (builder.docs, err.map(|(l, m)| (l, m, n)))
}

/// Feed every event of `text` to `f`; stops at the end of the stream or at a syntax error.
fn drive(text: &str, f: &mut dyn FnMut(Event, Marker) -> Flow) -> Result<(), ScanError> {
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = parser.next_token()?;
        if matches!(ev, Event::StreamEnd) {
            return Ok(());
        }
        if f(ev, mark) == Flow::Stop {
            return Ok(());
        }
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// A container being built.
enum Frame {
    Map {
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
        /// Keys merged in through `<<` (explicit keys win over them).
        merged: Vec<(String, Value)>,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    docs: Vec<Document>,
    doc_line: usize,
    doc_started: bool,
    last_line: usize,
}

impl Builder {
    fn event(&mut self, ev: Event, mark: Marker) -> Flow {
        self.last_line = mark.line();
        match ev {
            Event::DocumentStart => {
                self.doc_started = false;
                self.anchors.clear();
            }
            Event::DocumentEnd => {}
            Event::MappingStart(anchor, _) => {
                self.note_start(mark);
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    anchor,
                    merged: Vec::new(),
                });
            }
            Event::SequenceStart(anchor, _) => {
                self.note_start(mark);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Map {
                        mut map,
                        anchor,
                        merged,
                        ..
                    }) => {
                        for (k, v) in merged {
                            map.entry(k).or_insert(v);
                        }
                        (Value::Object(map), anchor)
                    }
                    Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
                    None => return Flow::Go,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.add(value);
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.note_start(mark);
                // A mapping key keeps its text (`y:`, `on:` and `1:` are the keys people meant).
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                let value = if is_key {
                    Value::String(text)
                } else {
                    resolve(text, style, tag.as_ref())
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.add(value);
            }
            Event::Alias(id) => {
                self.note_start(mark);
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.add(value);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
        Flow::Go
    }

    fn note_start(&mut self, mark: Marker) {
        if self.stack.is_empty() && !self.doc_started {
            self.doc_started = true;
            self.doc_line = mark.line().max(1);
        }
    }

    fn add(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => {
                let index = self.docs.len();
                self.docs.push(Document {
                    index,
                    line: self.doc_line,
                    value,
                });
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, merged, ..
            }) => match key.take() {
                None => *key = Some(key_string(value)),
                Some(k) if k == "<<" => match value {
                    Value::Object(m) => merged.extend(m),
                    Value::Array(list) => {
                        for item in list {
                            if let Value::Object(m) = item {
                                for (k, v) in m {
                                    if !merged.iter().any(|(mk, _)| *mk == k) {
                                        merged.push((k, v));
                                    }
                                }
                            }
                        }
                    }
                    other => {
                        map.insert(k, other);
                    }
                },
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
}

/// Mapping keys are strings in JSON: scalars keep their text, anything else its JSON form.
fn key_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Resolve a scalar the way go-yaml v2 (and so `kubectl`) does.
fn resolve(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag
        && (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:")
    {
        return match tag.suffix.as_str() {
            "str" | "binary" | "timestamp" => Value::String(text),
            "null" => Value::Null,
            _ => resolve_plain(text),
        };
    }
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    resolve_plain(text)
}

fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::String(text);
    }
    if let Some(n) = parse_int(&text) {
        return Value::Number(n);
    }
    if is_float(&text)
        && let Some(n) = text
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

fn parse_int(text: &str) -> Option<Number> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || body.starts_with('_') {
        return None;
    }
    let (digits, radix) = if let Some(h) = clean.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = clean.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = clean.strip_prefix("0b") {
        (b, 2)
    } else if clean.len() > 1 && clean.starts_with('0') {
        (&clean[1..], 8)
    } else {
        (clean.as_str(), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        let v = i64::try_from(magnitude).ok()?;
        Some(Number::from(-v))
    } else {
        Some(Number::from(magnitude))
    }
}

/// `[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_start = i;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let int_digits = i > int_start;
    let mut frac_digits = false;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        frac_digits = i > s;
    }
    if !int_digits && !frac_digits {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

/// Field paths → lines for the documents `wanted` of a stream: `a.b[0].c` as rules write them.
/// Malformed documents are skipped as [`parse_stream`] skips them, so indices agree.
pub fn locate_paths(text: &str, wanted: &[usize]) -> HashMap<usize, HashMap<String, usize>> {
    let mut out = HashMap::new();
    let (mut rest, mut line_offset, mut doc_offset) = (text, 0usize, 0usize);
    loop {
        let mut loc = Locator {
            wanted,
            out: HashMap::new(),
            doc: doc_offset,
            line_offset,
            depth_stack: Vec::new(),
            current: None,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive(rest, &mut |ev, mark| loc.event(ev, mark))
        }));
        out.extend(loc.out);
        let err_line = match result {
            Ok(Ok(())) | Err(_) => return out,
            Ok(Err(e)) => e.marker().line().max(1),
        };
        doc_offset = loc.doc + 1;
        if wanted.iter().all(|&w| w < doc_offset) {
            return out;
        }
        let Some((skip, next)) = next_document(rest, err_line) else {
            return out;
        };
        line_offset += skip;
        rest = next;
    }
}

enum LocFrame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct Locator<'a> {
    wanted: &'a [usize],
    out: HashMap<usize, HashMap<String, usize>>,
    doc: usize,
    line_offset: usize,
    depth_stack: Vec<LocFrame>,
    current: Option<HashMap<String, usize>>,
}

impl Locator<'_> {
    /// The path of the node that starts now (and advances the parent's position).
    fn child_path(&mut self, ev_is_key_scalar: &mut bool) -> Option<String> {
        match self.depth_stack.last_mut() {
            None => Some(String::new()),
            Some(LocFrame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(LocFrame::Map { path, key }) => match key.take() {
                None => {
                    *ev_is_key_scalar = true;
                    None
                }
                Some(k) => Some(if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                }),
            },
        }
    }

    fn event(&mut self, ev: Event, mark: Marker) -> Flow {
        match ev {
            Event::DocumentEnd => {
                if let Some(map) = self.current.take() {
                    self.out.insert(self.doc, map);
                }
                self.doc += 1;
                self.depth_stack.clear();
                if self.wanted.iter().all(|&w| w < self.doc) {
                    return Flow::Stop;
                }
            }
            Event::DocumentStart if self.wanted.contains(&self.doc) => {
                self.current = Some(HashMap::new());
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let mut is_key = false;
                let path = self.child_path(&mut is_key);
                let path = path.unwrap_or_default();
                if let Some(cur) = self.current.as_mut() {
                    cur.entry(path.clone())
                        .or_insert(mark.line() + self.line_offset);
                }
                self.depth_stack
                    .push(if matches!(ev, Event::MappingStart(..)) {
                        LocFrame::Map { path, key: None }
                    } else {
                        LocFrame::Seq { path, next: 0 }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.depth_stack.pop();
            }
            Event::Scalar(text, ..) => {
                let mut is_key = false;
                match self.child_path(&mut is_key) {
                    None if is_key => {
                        // A key: remember it, and record its line for the value's path.
                        if let Some(LocFrame::Map { path, key }) = self.depth_stack.last_mut() {
                            let full = if path.is_empty() {
                                text.clone()
                            } else {
                                format!("{path}.{text}")
                            };
                            if let Some(cur) = self.current.as_mut() {
                                cur.entry(full).or_insert(mark.line() + self.line_offset);
                            }
                            *key = Some(text);
                        }
                    }
                    Some(p) => {
                        if let Some(cur) = self.current.as_mut() {
                            cur.entry(p).or_insert(mark.line() + self.line_offset);
                        }
                    }
                    None => {}
                }
            }
            Event::Alias(_) => {
                let mut is_key = false;
                if let Some(p) = self.child_path(&mut is_key)
                    && let Some(cur) = self.current.as_mut()
                {
                    cur.entry(p).or_insert(mark.line() + self.line_offset);
                }
            }
            _ => {}
        }
        Flow::Go
    }
}

/// The line of `path` in a located document: the field itself, else its nearest ancestor.
pub fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut p = path;
    loop {
        if let Some(&l) = lines.get(p) {
            return Some(l);
        }
        let cut = p.rfind(['.', '['])?;
        p = &p[..cut];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_values_and_lines() {
        let s = parse_stream(
            "# c\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n\n---\nkind: x\nn: 010\nb: yes\nq: \"yes\"\nf: 1.5\nh: 0x1F\nz: ~\n",
        );
        assert!(s.errors.is_empty());
        let docs: Vec<_> = s.documents.iter().filter(|d| !d.value.is_null()).collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[1].line, 8);
        assert_eq!(docs[1].index, 2);
        assert_eq!(
            docs[1].value,
            json!({"kind": "x", "n": 8, "b": true, "q": "yes", "f": 1.5, "h": 31, "z": null})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let s = parse_stream("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nref: *b\n");
        assert_eq!(
            s.documents[0].value,
            json!({"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3}, "ref": {"x": 1, "y": 2}})
        );
    }

    #[test]
    fn recovers_after_a_malformed_document() {
        let s = parse_stream("a: 1\n---\nb: [1\nc: 2\n---\nd: 4\n");
        assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
        assert!(s.errors[0].line >= 3);
        let values: Vec<_> = s.documents.iter().map(|d| d.value.clone()).collect();
        assert_eq!(values, vec![json!({"a": 1}), json!({"d": 4})]);
        assert_eq!(s.documents[1].line, 6);
        assert_eq!(s.documents[1].index, 2);
    }

    #[test]
    fn paths_map_to_lines() {
        let text = "a: 1\n---\nspec:\n  containers:\n  - name: x\n    securityContext:\n      runAsUser: 0\n  - name: y\n";
        let loc = locate_paths(text, &[1]);
        let lines = &loc[&1];
        assert_eq!(
            line_of(lines, "spec.containers[0].securityContext.runAsUser"),
            Some(7)
        );
        assert_eq!(
            line_of(lines, "spec.containers[1].securityContext"),
            Some(8)
        );
        assert_eq!(line_of(lines, "spec.containers[0].image"), Some(5));
        assert!(!loc.contains_key(&0));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "{",
            "]",
            "a: b: c",
            "- [",
            "\t- x",
            "&a *a",
            "? [a]\n: b",
            "\u{0}",
            "%YAML 9\n",
        ] {
            let _ = parse_stream(text);
            let _ = locate_paths(text, &[0]);
        }
    }
}
