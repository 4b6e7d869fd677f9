//! Manifest loading: files and directories (recursive `.yaml`/`.yml`/`.json`) or stdin, decoded
//! (UTF-8 with or without BOM, UTF-16 with BOM), parsed as YAML streams or (concatenated) JSON
//! values, `kind: List` expanded, each object with the line where it starts.

use crate::yaml;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    /// The name shown in reports: the path as given (`./` stripped), or `<stdin>`.
    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(p) => {
                let s = p.to_string_lossy();
                s.strip_prefix("./").unwrap_or(&s).to_string()
            }
        }
    }
}

/// One Kubernetes object found in a file.
#[derive(Debug, Clone)]
pub struct Object {
    /// Index of the file in [`Loaded::files`].
    pub file: usize,
    /// Document index inside the file's stream (for locating field lines).
    pub doc: usize,
    /// Path prefix inside the document (`items[3]` for an item of a `kind: List`), else empty.
    pub prefix: String,
    /// 1-based line where the object starts.
    pub line: usize,
    pub value: Value,
}

impl Object {
    fn str_at(&self, path: &[&str]) -> &str {
        path.iter()
            .try_fold(&self.value, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"])
    }
    pub fn kind(&self) -> &str {
        self.str_at(&["kind"])
    }
    pub fn namespace(&self) -> &str {
        self.str_at(&["metadata", "namespace"])
    }
    pub fn name(&self) -> &str {
        match self.str_at(&["metadata", "name"]) {
            "" => self.str_at(&["metadata", "generateName"]),
            n => n,
        }
    }

    /// `Kind namespace/name`, as the text report names objects.
    pub fn describe(&self) -> String {
        match self.namespace() {
            "" => format!("{} {}", self.kind(), self.name()),
            ns => format!("{} {ns}/{}", self.kind(), self.name()),
        }
    }

    /// The object with only what a report shows of it (`apiVersion`, `kind` and the
    /// metadata's `name`, `generateName` and `namespace`), once it has been evaluated.
    pub fn identity(&self) -> Object {
        let mut metadata = serde_json::Map::new();
        for key in ["name", "generateName", "namespace"] {
            if let Some(v) = self.value.pointer(&format!("/metadata/{key}")) {
                metadata.insert(key.to_string(), v.clone());
            }
        }
        let mut value = serde_json::Map::new();
        for key in ["apiVersion", "kind"] {
            if let Some(v) = self.value.get(key) {
                value.insert(key.to_string(), v.clone());
            }
        }
        value.insert("metadata".to_string(), Value::Object(metadata));
        Object {
            file: self.file,
            doc: self.doc,
            prefix: self.prefix.clone(),
            line: self.line,
            value: Value::Object(value),
        }
    }
}

/// A problem with an input: file, line when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A file's decoded text and format.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub input: Input,
    pub name: String,
    pub text: String,
    pub json: bool,
}

/// Everything read from one file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<Object>,
    pub errors: Vec<InputError>,
}

/// Expand paths into the inputs to read: files as given, directories recursively (hidden
/// entries and `target`/`node_modules` directories skipped), `-` for stdin. Paths matching an `exclude` glob are skipped.
pub fn discover(paths: &[PathBuf], exclude: &[String]) -> (Vec<Input>, Vec<InputError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(p) {
            Err(e) => errors.push(InputError {
                file: Input::File(p.clone()).display(),
                line: None,
                message: format!("cannot read: {}", io_reason(&e)),
            }),
            Ok(m) if m.is_dir() => walk(p, exclude, &mut inputs, &mut errors),
            Ok(_) => {
                if !excluded(p, exclude) {
                    inputs.push(Input::File(p.clone()));
                }
            }
        }
    }
    (inputs, errors)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Does a glob of the config's `exclude` list match this path or one of its parent directories?
pub fn excluded(path: &Path, exclude: &[String]) -> bool {
    if exclude.is_empty() {
        return false;
    }
    let shown = Input::File(path.to_path_buf()).display();
    let mut cur: &str = &shown;
    loop {
        if exclude
            .iter()
            .any(|g| stackguard_common::glob::matches(g, cur))
        {
            return true;
        }
        match cur.rfind('/') {
            Some(i) => cur = &cur[..i],
            None => return false,
        }
    }
}

fn is_manifest_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

fn walk(dir: &Path, exclude: &[String], inputs: &mut Vec<Input>, errors: &mut Vec<InputError>) {
    if excluded(dir, exclude) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                file: Input::File(dir.to_path_buf()).display(),
                line: None,
                message: format!("cannot read directory: {}", io_reason(&e)),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        let is_dir = p.is_dir();
        // Build output and package caches hold JSON/YAML that is never a manifest.
        if is_dir && matches!(name, "target" | "node_modules") {
            continue;
        }
        if is_dir {
            walk(&p, exclude, inputs, errors);
        } else if is_manifest_name(&p) && !excluded(&p, exclude) {
            inputs.push(Input::File(p));
        }
    }
}

/// Read and decode one input.
pub fn read(input: &Input) -> Result<SourceFile, InputError> {
    let name = input.display();
    let fail = |line: Option<usize>, message: String| InputError {
        file: name.clone(),
        line,
        message,
    };
    let bytes = match input {
        Input::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| fail(None, format!("cannot read standard input: {e}")))?;
            buf
        }
        Input::File(p) => {
            std::fs::read(p).map_err(|e| fail(None, format!("cannot read: {}", io_reason(&e))))?
        }
    };
    let text = decode(&bytes).map_err(|(line, m)| fail(line, m))?;
    Ok(source(input, text))
}

/// A decoded input, ready to parse: JSON by extension for files, by its first character for
/// stdin. The playground uses this too, for text typed in the page.
pub fn source(input: &Input, text: String) -> SourceFile {
    let json = match input {
        Input::File(p) => p.extension().is_some_and(|e| e == "json"),
        Input::Stdin => text.trim_start().starts_with(['{', '[']),
    };
    SourceFile {
        input: input.clone(),
        name: input.display(),
        text,
        json,
    }
}

/// Decode UTF-8 (BOM optional) or UTF-16 with a BOM.
pub fn decode(bytes: &[u8]) -> Result<String, (Option<usize>, String)> {
    let utf16 = |b: &[u8], be: bool| -> Result<String, (Option<usize>, String)> {
        if !b.len().is_multiple_of(2) {
            return Err((
                None,
                "truncated UTF-16 text (odd number of bytes)".to_string(),
            ));
        }
        let units = b.chunks_exact(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| (None, "invalid UTF-16 text".to_string()))
    };
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, false);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, true);
    }
    utf8(bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, (Option<usize>, String)> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let upto = e.valid_up_to();
            let line = bytes[..upto].iter().filter(|&&b| b == b'\n').count() + 1;
            Err((
                Some(line),
                "not valid UTF-8 (or UTF-16 with a byte-order mark)".to_string(),
            ))
        }
    }
}

/// Parse a decoded file into objects (YAML stream or concatenated JSON values).
pub fn parse(file_index: usize, src: &SourceFile) -> Parsed {
    let mut objects = Vec::new();
    let errors = objects_of(file_index, src, true, &mut |o| objects.push(o));
    Parsed { objects, errors }
}

/// Parse a decoded file one object at a time: each goes to `each` as soon as its document is
/// read, so only one document's data need be held at a time (the file's own bound is the
/// caller's: see [`yaml::each_document`]). Returns an error for each document that cannot be
/// read.
pub fn parse_each(
    file_index: usize,
    src: &SourceFile,
    each: &mut dyn FnMut(Object),
) -> Vec<InputError> {
    objects_of(file_index, src, false, each)
}

fn objects_of(
    file_index: usize,
    src: &SourceFile,
    keeps_all: bool,
    each: &mut dyn FnMut(Object),
) -> Vec<InputError> {
    each_document(src, keeps_all, &mut |d: yaml::Document| {
        if is_object(&d.value) {
            expand(file_index, d, each);
        }
    })
}

/// Every document of a decoded file as Kubernetes reads it (YAML stream or concatenated JSON
/// values), and an error for each one that cannot be read.
pub fn documents(src: &SourceFile) -> (Vec<yaml::Document>, Vec<InputError>) {
    let mut docs = Vec::new();
    let errors = each_document(src, true, &mut |d| docs.push(d));
    (docs, errors)
}

/// The documents of a file one at a time (see [`yaml::each_document`] for `keeps_all`).
fn each_document(
    src: &SourceFile,
    keeps_all: bool,
    each: &mut dyn FnMut(yaml::Document),
) -> Vec<InputError> {
    if src.json {
        let mut errors = Vec::new();
        parse_json(&src.text, &src.name, &mut errors, each);
        return errors;
    }
    yaml::each_document(&src.text, &yaml::LIMITS, keeps_all, each)
        .into_iter()
        .map(|e| InputError {
            file: src.name.clone(),
            line: Some(e.line),
            message: if e.limit {
                e.message
            } else {
                format!("invalid YAML: {}", e.message)
            },
        })
        .collect()
}

/// A Kubernetes object: a mapping with string `apiVersion` and `kind`. Anything else in a
/// YAML file (a CI workflow, a tool's config, a bare list) is not a manifest and is skipped.
fn is_object(v: &Value) -> bool {
    v.get("apiVersion").is_some_and(Value::is_string) && v.get("kind").is_some_and(Value::is_string)
}

/// A document's object, or the items of a `kind: List` (`*List` with `items`).
fn expand(file: usize, d: yaml::Document, each: &mut dyn FnMut(Object)) {
    let is_list = d
        .value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && d.value.get("items").is_some_and(Value::is_array);
    if !is_list {
        each(Object {
            file,
            doc: d.index,
            prefix: String::new(),
            line: d.line,
            value: d.value,
        });
        return;
    }
    let Value::Object(mut map) = d.value else {
        return;
    };
    let Some(Value::Array(items)) = map.remove("items") else {
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        if is_object(&item) {
            each(Object {
                file,
                doc: d.index,
                prefix: format!("items[{i}]"),
                line: d.line,
                value: item,
            });
        }
    }
}

/// Concatenated JSON values, each with the line where it starts, one at a time.
fn parse_json(
    text: &str,
    name: &str,
    errors: &mut Vec<InputError>,
    each: &mut dyn FnMut(yaml::Document),
) {
    let mut index = 0;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let skipped = text[start..]
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(0);
                let line = line_at(text, start + skipped);
                each(yaml::Document { index, line, value });
                index += 1;
            }
            Some(Err(e)) => {
                errors.push(InputError {
                    file: name.to_string(),
                    line: Some(e.line().max(1)),
                    message: format!("invalid JSON: {}", json_reason(&e)),
                });
                break;
            }
        }
    }
}

/// serde_json's message without its " at line L column C" tail (the line is reported apart),
/// with the column as the YAML reader gives it: `… (column C)`.
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let reason = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    match e.column() {
        0 => reason.to_string(),
        c => format!("{reason} (column {c})"),
    }
}

fn line_at(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Field-path → line tables for the documents holding `objects`, with only the `paths` (per
/// document, full paths with their ancestors: see [`yaml::with_ancestors`]) findings need.
/// Each document is re-read on its own (its lines up to the next `---`), so the cost follows
/// the rejected documents, not the size of the files that hold them.
pub fn locate(
    src: &SourceFile,
    objects: &[&Object],
    paths: &HashMap<usize, HashSet<String>>,
) -> HashMap<usize, HashMap<String, usize>> {
    // Each document's text (byte range) and first line.
    let mut parts: Vec<(usize, std::ops::Range<usize>, usize)> = Vec::new();
    if src.json {
        // Each JSON value is a YAML flow node: locate it with the YAML reader, shifted.
        let starts = json_value_starts(&src.text);
        for o in objects {
            if let Some(&(byte, line)) = starts.get(o.doc) {
                let end = starts.get(o.doc + 1).map_or(src.text.len(), |s| s.0);
                parts.push((o.doc, byte..end, line));
            }
        }
    } else {
        // Byte offset of every line, and the lines that are `---` document markers.
        let mut line_starts = vec![0usize];
        let mut markers = Vec::new();
        let mut pos = 0;
        for (i, line) in src.text.split_inclusive('\n').enumerate() {
            if yaml::is_document_marker(line) {
                markers.push(i + 1);
            }
            pos += line.len();
            line_starts.push(pos);
        }
        for o in objects {
            let first = o.line;
            let next = markers.get(markers.partition_point(|&m| m <= first));
            let (Some(&from), to) = (
                line_starts.get(first - 1),
                next.and_then(|m| line_starts.get(m - 1).copied()),
            ) else {
                continue;
            };
            parts.push((o.doc, from..to.unwrap_or(src.text.len()), first));
        }
    }
    parts.dedup_by_key(|p| p.0);
    // A document on one line (minified JSON, a flow mapping) has every field on that line, the
    // object's own: [`field_line`] falls back to it without reading the document again.
    parts.retain(|(_, range, _)| src.text[range.clone()].trim_end().contains('\n'));
    let empty = HashSet::new();
    crate::engine::par_map(
        &parts,
        || (),
        |_, _, (doc, range, first)| {
            let only = Some(paths.get(doc).unwrap_or(&empty));
            let lines = yaml::locate_some(&src.text[range.clone()], &[0], only).remove(&0)?;
            let shifted = lines.into_iter().map(|(k, v)| (k, v + first - 1));
            Some((*doc, shifted.collect::<HashMap<_, _>>()))
        },
    )
    .into_iter()
    .flatten()
    .collect()
}

/// (byte offset, line) of every top-level JSON value.
fn json_value_starts(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            Some(Ok(_)) => {
                let skipped = text[start..]
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(0);
                out.push((start + skipped, line_at(text, start + skipped)));
            }
            _ => return out,
        }
    }
}

/// The line of a finding's field `path` inside `object`, else the object's own line.
pub fn field_line(
    located: &HashMap<usize, HashMap<String, usize>>,
    object: &Object,
    path: Option<&str>,
) -> usize {
    let (Some(path), Some(lines)) = (path, located.get(&object.doc)) else {
        return object.line;
    };
    yaml::line_of(lines, &full_path(object, path)).unwrap_or(object.line)
}

/// A finding's field path inside the document holding `object` (an item of a `kind: List` is
/// under `items[i]`).
pub fn full_path(object: &Object, path: &str) -> String {
    if object.prefix.is_empty() {
        path.to_string()
    } else {
        format!("{}.{path}", object.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str, json: bool) -> SourceFile {
        SourceFile {
            input: Input::Stdin,
            name: "t".into(),
            text: text.into(),
            json,
        }
    }

    #[test]
    fn boms_and_utf16() {
        assert_eq!(decode(b"\xEF\xBB\xBFa: 1").unwrap(), "a: 1");
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("k: v".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode(&le).unwrap(), "k: v");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("k: v".encode_utf16().flat_map(|u| u.to_be_bytes()))
            .collect();
        assert_eq!(decode(&be).unwrap(), "k: v");
        assert_eq!(decode(b"a: 1\nb: \xff").unwrap_err().0, Some(2));
    }

    #[test]
    fn lists_and_concatenated_json() {
        let p = parse(
            0,
            &src(
                "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n {\"apiVersion\": \"v1\", \"kind\": \"B\"},\n {\"apiVersion\": \"v1\", \"kind\": \"C\"}]}",
                true,
            ),
        );
        assert!(p.errors.is_empty());
        let kinds: Vec<_> = p.objects.iter().map(|o| o.kind().to_string()).collect();
        assert_eq!(kinds, ["A", "B", "C"]);
        assert_eq!(p.objects[1].line, 2);
        assert_eq!(p.objects[2].prefix, "items[1]");
        let refs: Vec<&Object> = p.objects.iter().collect();
        let loc = locate(&src("", true), &[], &HashMap::new());
        assert!(loc.is_empty());
        let s = src(
            "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n {\"apiVersion\": \"v1\", \"kind\": \"B\"},\n {\"apiVersion\": \"v1\", \"kind\": \"C\"}]}",
            true,
        );
        let paths = HashMap::from([(
            1,
            ["items[1].kind", "items[1]", "items"]
                .map(String::from)
                .into(),
        )]);
        let loc = locate(&s, &refs, &paths);
        assert_eq!(field_line(&loc, &p.objects[2], Some("kind")), 4);
        // The first document is on one line: not read again, its fields on its line.
        let paths = HashMap::from([(0, ["kind"].map(String::from).into())]);
        let loc = locate(&s, &refs, &paths);
        assert!(!loc.contains_key(&0));
        assert_eq!(field_line(&loc, &p.objects[0], Some("kind")), 1);
    }

    /// A one-line document after blank lines and a `---` line: every finding on its line.
    #[test]
    fn a_one_line_document_is_located_on_its_line() {
        let text = "a: 1\n---\n\n{apiVersion: v1, kind: Pod, spec: {containers: [{name: c}]}}  # x\n\n---\nkind: B\n";
        let s = src(text, false);
        let p = parse(0, &s);
        assert_eq!(p.objects[0].line, 4);
        let refs: Vec<&Object> = p.objects.iter().collect();
        let paths = HashMap::from([(
            0,
            [
                "spec.containers[0].name",
                "spec.containers[0]",
                "spec.containers",
                "spec",
            ]
            .map(String::from)
            .into(),
        )]);
        let loc = locate(&s, &refs, &paths);
        assert_eq!(
            field_line(&loc, &p.objects[0], Some("spec.containers[0].name")),
            4
        );
    }

    /// Found by fuzzing (the `yaml` target): an error at the end of a text without a final
    /// newline was reported one line past the end (line 4 of 3).
    #[test]
    fn error_lines_lie_inside_the_text() {
        let p = parse(0, &src("a: {\n  \"b\": 1,\n  \"c\": 2", false));
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, Some(3), "{:?}", p.errors[0]);
    }

    #[test]
    fn bad_json_is_reported_with_a_line() {
        let p = parse(
            0,
            &src(
                "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n{\"kind\": }",
                true,
            ),
        );
        assert_eq!(p.objects.len(), 1);
        assert_eq!(p.errors[0].line, Some(2));
    }
}
