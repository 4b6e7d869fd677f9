//! Minimal edits to YAML text: the engine behind `stackguard fix` and the playground's Fix.
//!
//! [`apply_additions`] takes a file's text and, per document, the object it holds (`before`) and
//! the object it should hold (`after` = `before` plus new mapping keys, items appended to
//! sequences, or a null or empty value replaced by a mapping or sequence). It writes only what
//! is new: every other byte of the file stays as it was (comments, blank lines, key order,
//! quoting, indentation, line endings, a missing final newline). New keys go after the last
//! entry of their mapping at its indentation, new items after the last item of their sequence;
//! flow collections get flow entries (`[NET_RAW]` → `[NET_RAW, ALL]`); new nested mappings and
//! sequences are written in block style with the file's own indentation step, sequence indent
//! and quote style; scalars are quoted only when a plain scalar would read back differently.
//!
//! Anything it cannot do safely is an error and nothing is edited: a change that is not an
//! addition, an edit through an anchor, an alias or a `<<` merge key (it would change other
//! places too). The result is read back with the stackguard YAML reader: each edited document
//! must read as `after` exactly and every other document as before, or the edit is refused.
//!
//! The position of each node comes from the same libyaml events the reader uses; this module
//! is plain Rust and runs in the browser build too.

use crate::yaml::{self, Ev, EventData, ScalarStyle, Sink, Step};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The object document `doc_index` (as in [`yaml::Document::index`]) holds, and the one it
/// should hold.
pub struct DocEdit<'a> {
    pub doc_index: usize,
    pub before: &'a Value,
    pub after: &'a Value,
}

/// Why an edit was refused: the document (0-based index), the field path (`a.b[0].c`, empty
/// for the document itself) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditError {
    pub doc_index: usize,
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for EditError {
    /// `document {n}, {path}: {message}`, with `n` counted from 1 as people count documents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.doc_index + 1;
        if self.path.is_empty() {
            write!(f, "document {n}: {}", self.message)
        } else {
            write!(f, "document {n}, {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for EditError {}

/// Write the additions that turn each edit's `before` into its `after`; see the module docs.
/// Returns the new text; on any error nothing is edited.
pub fn apply_additions(text: &str, edits: &[DocEdit<'_>]) -> Result<String, EditError> {
    let edits: Vec<&DocEdit<'_>> = edits.iter().filter(|e| e.before != e.after).collect();
    if edits.is_empty() {
        return Ok(text.to_string());
    }
    let fail = |doc_index: usize, message: &str| EditError {
        doc_index,
        path: String::new(),
        message: message.to_string(),
    };
    let mut seen = HashSet::new();
    for e in &edits {
        if !seen.insert(e.doc_index) {
            return Err(fail(e.doc_index, "two edits for one document"));
        }
    }
    // One reading: the documents to edit composed, each compared with its `before`, and every
    // other document fingerprinted (a file may hold many, not kept).
    let prints = Fingerprints::new();
    let before: HashMap<usize, &Value> = edits.iter().map(|e| (e.doc_index, e.before)).collect();
    let mut originals: HashMap<usize, u64> = HashMap::new();
    let mut holds: HashMap<usize, bool> = HashMap::new();
    let mut composer = Composer::new(&seen);
    let errors_before = yaml::each_document_also(text, &yaml::LIMITS, &mut composer, &mut |d| {
        if let Some(&before) = before.get(&d.index) {
            holds.insert(d.index, d.value == *before);
        } else {
            originals.insert(d.index, prints.of(&d.value));
        }
    })
    .len();
    let trees = composer.trees;
    for e in &edits {
        match holds.get(&e.doc_index) {
            None => return Err(fail(e.doc_index, "no such document, or it cannot be read")),
            Some(false) => {
                return Err(fail(
                    e.doc_index,
                    "the document does not hold the object to edit",
                ));
            }
            Some(true) => {}
        }
    }
    let mut planner = Planner {
        text,
        style: Style::detect(text, trees.values()),
        changes: Vec::new(),
    };
    for e in &edits {
        let root = trees
            .get(&e.doc_index)
            .ok_or_else(|| fail(e.doc_index, "no such document, or it cannot be read"))?;
        planner
            .plan(root, e.before, e.after, "", Parent::Root)
            .map_err(|(path, message)| EditError {
                doc_index: e.doc_index,
                path,
                message,
            })?;
    }
    if !text.ends_with('\n') && planner.changes.iter().any(|c| c.start >= text.len()) {
        // Lines added after a block scalar that ends the file without a line break would give
        // it one: it keeps its value with `-` (strip) chomping.
        if let Some(last) = edits
            .iter()
            .filter_map(|e| trees.get(&e.doc_index))
            .map(last_leaf)
            .find(|n| n.end >= text.len())
        {
            planner.changes.extend(strip_chomping(text, last));
        }
    }
    let out = splice(text, planner.changes, planner.style.eol);
    // Read the result back: the edited documents must be `after`, the others unchanged.
    let expected: HashMap<usize, u64> = edits
        .iter()
        .map(|e| (e.doc_index, prints.of(e.after)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let print = |v: &Value| prints.of(v);
    let (read, errors_after) =
        yaml::map_documents(&out, &yaml::LIMITS, threads, yaml::MIN_PART, &print);
    let errors_after = errors_after.len();
    let read_back = read.len();
    let wrong = read
        .into_iter()
        .find(|(i, p)| expected.get(i).or_else(|| originals.get(i)) != Some(p))
        .map(|(i, _)| i);
    if let Some(index) = wrong {
        return Err(fail(
            index,
            "the edited text would not read back as the fixed object: left unchanged",
        ));
    }
    if read_back != originals.len() + holds.len() || errors_after != errors_before {
        return Err(fail(
            edits[0].doc_index,
            "the edited text would not read back as the same documents: left unchanged",
        ));
    }
    Ok(out)
}

/// Fingerprints of values (keyed per instance, so no input can be made to collide on
/// purpose): a read-back is compared with what was expected without keeping both whole.
pub struct Fingerprints(std::collections::hash_map::RandomState);

impl Default for Fingerprints {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprints {
    pub fn new() -> Self {
        Fingerprints(std::collections::hash_map::RandomState::new())
    }

    /// The fingerprint of a value: a hash of its structure (`Value`'s own `Hash`: equal values
    /// hash equally, whatever order their keys were read in).
    pub fn of(&self, v: &Value) -> u64 {
        use std::hash::BuildHasher;
        self.0.hash_one(v)
    }
}

// ---------------------------------------------------------------------------------------------
// The syntax tree: nodes with their place in the text.

struct Node {
    kind: Kind,
    /// Byte offsets of the node in the text (for a block collection, `end` is not meaningful:
    /// see [`content_end`]).
    start: usize,
    end: usize,
    line: usize,
    /// 0-based column (the indentation of a block key or of a sequence's `-`).
    column: usize,
    anchor: Option<String>,
    /// For flow collections: the offset of the closing bracket.
    close: usize,
}

enum Kind {
    Scalar {
        text: String,
        style: ScalarStyle,
        tag: Option<String>,
    },
    Alias(String),
    /// Keys and values, alternating.
    Map {
        flow: bool,
        children: Vec<Node>,
    },
    Seq {
        flow: bool,
        items: Vec<Node>,
    },
}

/// The trees of documents `wanted`.
struct Composer<'w> {
    wanted: &'w HashSet<usize>,
    trees: HashMap<usize, Node>,
    stack: Vec<Node>,
    /// The document being composed, when it is wanted.
    current: Option<usize>,
}

impl<'w> Composer<'w> {
    /// Composes the documents `wanted`.
    fn new(wanted: &'w HashSet<usize>) -> Self {
        Composer {
            wanted,
            trees: HashMap::new(),
            stack: Vec::new(),
            current: None,
        }
    }

    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Node {
                kind: Kind::Map { children, .. },
                ..
            }) => children.push(node),
            Some(Node {
                kind: Kind::Seq { items, .. },
                ..
            }) => items.push(node),
            _ => {
                if let Some(i) = self.current {
                    self.trees.insert(i, node);
                }
            }
        }
    }
}

impl Sink for Composer<'_> {
    fn start(&mut self, index: usize, _line: usize) -> Step {
        self.stack.clear();
        self.current = self.wanted.contains(&index).then_some(index);
        Step::Go
    }

    fn event(&mut self, ev: &Ev<'_>) -> Step {
        if self.current.is_none() {
            return Step::Go;
        }
        let node = |kind, anchor: &Option<String>| Node {
            kind,
            start: ev.start,
            end: ev.end,
            line: ev.line,
            column: ev.column,
            anchor: anchor.clone(),
            close: ev.start,
        };
        match ev.data {
            EventData::MappingStart { anchor, flow, .. } => {
                let flow = *flow;
                let n = node(
                    Kind::Map {
                        flow,
                        children: Vec::new(),
                    },
                    anchor,
                );
                self.stack.push(n);
            }
            EventData::SequenceStart { anchor, flow, .. } => {
                let flow = *flow;
                let n = node(
                    Kind::Seq {
                        flow,
                        items: Vec::new(),
                    },
                    anchor,
                );
                self.stack.push(n);
            }
            EventData::MappingEnd | EventData::SequenceEnd => {
                if let Some(mut n) = self.stack.pop() {
                    n.end = ev.end;
                    n.close = ev.start;
                    self.add(n);
                }
            }
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
            } => {
                let n = node(
                    Kind::Scalar {
                        text: value.clone(),
                        style: *style,
                        tag: tag.clone(),
                    },
                    anchor,
                );
                self.add(n);
            }
            EventData::Alias { anchor } => {
                let n = node(Kind::Alias(anchor.clone()), &None);
                self.add(n);
            }
            _ => {}
        }
        Step::Go
    }
}

/// The last scalar, alias or flow collection of a node.
fn last_leaf(node: &Node) -> &Node {
    match &node.kind {
        Kind::Map {
            flow: false,
            children: c,
        }
        | Kind::Seq {
            flow: false,
            items: c,
        } => c.last().map_or(node, last_leaf),
        _ => node,
    }
}

/// The header of a block scalar (`|`, `>2`, `|+`) with `-` chomping, if `node` is one.
fn strip_chomping(text: &str, node: &Node) -> Option<Change> {
    let Kind::Scalar {
        style: ScalarStyle::Literal | ScalarStyle::Folded,
        ..
    } = node.kind
    else {
        return None;
    };
    let header = text.get(node.start..)?;
    let indicator = header.chars().next().filter(|c| matches!(c, '|' | '>'))?;
    let len = header[1..]
        .find(|c: char| !c.is_ascii_digit() && c != '+' && c != '-')
        .unwrap_or(header.len() - 1);
    let digits: String = header[1..1 + len]
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(Change {
        start: node.start,
        end: node.start + 1 + len,
        text: format!("{indicator}{digits}-"),
    })
}

/// Where the node's own text ends: the end of its last scalar, alias or flow collection.
fn content_end(node: &Node) -> usize {
    match &node.kind {
        Kind::Map {
            flow: false,
            children: c,
        }
        | Kind::Seq {
            flow: false,
            items: c,
        } => c.last().map_or(node.end, content_end),
        _ => node.end,
    }
}

// ---------------------------------------------------------------------------------------------
// The file's own style.

struct Style {
    /// Indentation of a nested block mapping under its key.
    step: usize,
    /// Indentation of a block sequence's `-` under its key (0: `key:\n- item`).
    seq_indent: usize,
    /// Column of an item's content after its `-`.
    dash_offset: usize,
    /// The quote of quoted strings: `"` unless the file mostly uses `'`.
    single_quote: bool,
    /// The file is JSON: new keys and strings are written as JSON writes them.
    json: bool,
    eol: &'static str,
}

impl Style {
    fn detect<'n>(text: &str, trees: impl Iterator<Item = &'n Node>) -> Style {
        #[derive(Default)]
        struct Seen {
            step: HashMap<usize, usize>,
            seq_indent: HashMap<usize, usize>,
            dash_offset: HashMap<usize, usize>,
            single: usize,
            double: usize,
        }
        fn first_key(n: &Node) -> Option<&Node> {
            match &n.kind {
                Kind::Map {
                    flow: false,
                    children,
                } => children.first(),
                _ => None,
            }
        }
        fn walk(n: &Node, seen: &mut Seen) {
            match &n.kind {
                Kind::Scalar { style, .. } => match style {
                    ScalarStyle::SingleQuoted => seen.single += 1,
                    ScalarStyle::DoubleQuoted => seen.double += 1,
                    _ => {}
                },
                Kind::Map { flow, children } => {
                    for pair in children.chunks(2) {
                        if let [k, v] = pair {
                            if !flow {
                                if let Some(fk) = first_key(v)
                                    && fk.column > k.column
                                {
                                    *seen.step.entry(fk.column - k.column).or_default() += 1;
                                }
                                if let Kind::Seq { flow: false, .. } = v.kind
                                    && v.column >= k.column
                                {
                                    *seen.seq_indent.entry(v.column - k.column).or_default() += 1;
                                }
                            }
                            walk(k, seen);
                            walk(v, seen);
                        }
                    }
                }
                Kind::Seq { flow, items } => {
                    for item in items {
                        if !flow
                            && let Some(fk) = first_key(item)
                            && fk.column > n.column + 1
                        {
                            *seen.dash_offset.entry(fk.column - n.column).or_default() += 1;
                        }
                        walk(item, seen);
                    }
                }
                Kind::Alias(_) => {}
            }
        }
        let mode = |m: &HashMap<usize, usize>, default: usize| {
            m.iter()
                .max_by_key(|(value, count)| (**count, std::cmp::Reverse(**value)))
                .map_or(default, |(v, _)| *v)
        };
        let mut seen = Seen::default();
        for t in trees {
            walk(t, &mut seen);
        }
        Style {
            step: mode(&seen.step, 2),
            seq_indent: mode(&seen.seq_indent, 0),
            dash_offset: mode(&seen.dash_offset, 2),
            single_quote: seen.single > seen.double,
            json: text.trim_start().starts_with(['{', '[']),
            eol: if text.contains("\r\n") { "\r\n" } else { "\n" },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Planning the changes.

/// A replacement of `text[start..end]` (an insertion when they are equal).
struct Change {
    start: usize,
    end: usize,
    text: String,
}

/// What holds the node being planned.
#[derive(Clone, Copy)]
enum Parent {
    Root,
    /// A block mapping whose key sits at this column.
    BlockMap(usize),
    BlockSeq,
    Flow,
}

type Fail = (String, String);

struct Planner<'t> {
    text: &'t str,
    style: Style,
    changes: Vec<Change>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Planner<'_> {
    fn plan(
        &mut self,
        node: &Node,
        before: &Value,
        after: &Value,
        path: &str,
        parent: Parent,
    ) -> Result<(), Fail> {
        if before == after {
            return Ok(());
        }
        let fail = |m: String| (path.to_string(), m);
        if let Some(a) = &node.anchor {
            return Err(fail(format!(
                "the edit goes through the anchor &{a} (line {}): it would change every alias of it too",
                node.line
            )));
        }
        match (&node.kind, before, after) {
            (Kind::Alias(a), ..) => Err(fail(format!(
                "the edit goes through the alias *{a} (line {}): it would change the anchored node too",
                node.line
            ))),
            (Kind::Map { flow, children }, Value::Object(b), Value::Object(a)) => {
                self.plan_map(node, *flow, children, b, a, path, parent)
            }
            (Kind::Seq { flow, items }, Value::Array(b), Value::Array(a)) => {
                if a.len() < b.len() {
                    return Err(fail("the edit removes list items".to_string()));
                }
                let child = if *flow {
                    Parent::Flow
                } else {
                    Parent::BlockSeq
                };
                for (i, (item, (bv, av))) in items.iter().zip(b.iter().zip(a)).enumerate() {
                    self.plan(item, bv, av, &format!("{path}[{i}]"), child)?;
                }
                let new: Vec<&Value> = a[b.len()..].iter().collect();
                if new.is_empty() {
                    return Ok(());
                }
                if *flow
                    && items.is_empty()
                    && matches!(parent, Parent::BlockMap(_))
                    && nested(new.iter().copied())
                {
                    self.replace_empty(node, after, path, parent)
                } else if *flow {
                    let parts = new.iter().map(|v| self.flow(v)).collect::<Result<_, _>>();
                    self.add_flow(node, items.last(), parts.map_err(fail)?);
                    Ok(())
                } else {
                    let mut s = String::new();
                    for v in new {
                        self.render_item(&mut s, v, node.column).map_err(fail)?;
                    }
                    let at = self.after_line(content_end(node));
                    self.insert(at, s);
                    Ok(())
                }
            }
            (Kind::Scalar { .. }, Value::Null, Value::Object(_) | Value::Array(_)) => {
                self.replace_empty(node, after, path, parent)
            }
            _ => Err(fail(
                "the edit changes a value the file holds (only additions can be written)"
                    .to_string(),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_map(
        &mut self,
        node: &Node,
        flow: bool,
        children: &[Node],
        b: &Map<String, Value>,
        a: &Map<String, Value>,
        path: &str,
        parent: Parent,
    ) -> Result<(), Fail> {
        let fail = |m: String| (path.to_string(), m);
        let entries: Vec<(&Node, &Node)> = children
            .chunks(2)
            .filter_map(|p| match p {
                [k, v] => Some((k, v)),
                _ => None,
            })
            .collect();
        if let Some((k, _)) = entries.iter().find(|(k, _)| match &k.kind {
            Kind::Scalar { text, style, tag } => yaml::is_merge_key(text, *style, tag.as_deref()),
            _ => false,
        }) {
            return Err(fail(format!(
                "the edit goes through a `<<` merge key (line {}): the merged keys come from elsewhere",
                k.line
            )));
        }
        let name = |k: &Node| match &k.kind {
            Kind::Scalar { text, style, tag } => yaml::key_name(text, *style, tag.as_deref()).ok(),
            _ => None,
        };
        for (key, bv) in b {
            let av = a
                .get(key)
                .ok_or_else(|| fail(format!("the edit removes key {key}")))?;
            if bv == av {
                continue;
            }
            // The last of duplicate keys is the one that holds the value.
            let (k, v) = entries
                .iter()
                .rev()
                .find(|(k, _)| name(k).as_deref() == Some(key))
                .ok_or_else(|| fail(format!("key {key} is not written as a plain key")))?;
            let child = if flow {
                Parent::Flow
            } else {
                Parent::BlockMap(k.column)
            };
            self.plan(v, bv, av, &join(path, key), child)?;
        }
        let new: Vec<(&String, &Value)> = a.iter().filter(|(k, _)| !b.contains_key(*k)).collect();
        if new.is_empty() {
            return Ok(());
        }
        if flow {
            if entries.is_empty() && matches!(parent, Parent::BlockMap(_)) && nested(a.values()) {
                return self.replace_empty(node, &Value::Object(a.clone()), path, parent);
            }
            let mut parts = Vec::new();
            for (k, v) in &new {
                let v = self.flow(v).map_err(fail)?;
                parts.push(format!("{}: {v}", self.key(k, true).map_err(fail)?));
            }
            self.add_flow(node, children.last(), parts);
            return Ok(());
        }
        let column = entries.first().map_or(node.column, |(k, _)| k.column);
        let mut s = String::new();
        for (k, v) in new {
            self.render_entry(&mut s, k, v, column).map_err(fail)?;
        }
        let at = self.after_line(content_end(node));
        self.insert(at, s);
        Ok(())
    }

    /// New entries of a flow collection, after its last one (or inside the empty brackets).
    fn add_flow(&mut self, node: &Node, last: Option<&Node>, parts: Vec<String>) {
        let joined = parts.join(", ");
        match last {
            Some(l) => self.insert(content_end(l), format!(", {joined}")),
            None => self.insert(node.close, joined),
        }
    }

    /// A null scalar, or an empty `{}`/`[]`, becomes `after`: in block style under its key when
    /// it is the value of a block mapping, else in flow style in its place.
    fn replace_empty(
        &mut self,
        node: &Node,
        after: &Value,
        path: &str,
        parent: Parent,
    ) -> Result<(), Fail> {
        let fail = |m: String| (path.to_string(), m);
        let bytes = self.text.as_bytes();
        match parent {
            Parent::BlockMap(key_col) if !empty(after) => {
                // Drop the old value and the blanks before it; the block goes on the next lines.
                let mut start = node.start;
                while start > 0 && matches!(bytes[start - 1], b' ' | b'\t') {
                    start -= 1;
                }
                if start < node.end {
                    self.changes.push(Change {
                        start,
                        end: node.end,
                        text: String::new(),
                    });
                }
                let mut s = String::new();
                match after {
                    Value::Object(m) => {
                        for (k, v) in m {
                            self.render_entry(&mut s, k, v, key_col + self.style.step)
                                .map_err(fail)?;
                        }
                    }
                    Value::Array(items) => {
                        for v in items {
                            self.render_item(&mut s, v, key_col + self.style.seq_indent)
                                .map_err(fail)?;
                        }
                    }
                    _ => {}
                }
                let at = next_line_start(self.text, node.end);
                self.insert(at, s);
                Ok(())
            }
            Parent::Root => Err(fail(
                "an empty document cannot be filled in: write the object by hand".to_string(),
            )),
            _ => {
                let mut s = self.flow(after).map_err(fail)?;
                if node.start == node.end && node.start > 0 && bytes[node.start - 1] != b' ' {
                    s.insert(0, ' ');
                }
                self.changes.push(Change {
                    start: node.start,
                    end: node.end,
                    text: s,
                });
                Ok(())
            }
        }
    }

    fn insert(&mut self, at: usize, text: String) {
        self.changes.push(Change {
            start: at,
            end: at,
            text,
        });
    }

    /// Where lines go after a node that ends at `pos`: the start of the next line, or of the
    /// line `pos` is on when only blanks precede it there (a block scalar ends at its next line).
    fn after_line(&self, pos: usize) -> usize {
        let from = line_start(self.text, pos);
        if self.text.as_bytes()[from..pos]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t'))
        {
            from
        } else {
            next_line_start(self.text, pos)
        }
    }

    // -- Rendering ------------------------------------------------------------------------

    fn pad(out: &mut String, n: usize) {
        out.extend(std::iter::repeat_n(' ', n));
    }

    fn render_entry(
        &self,
        out: &mut String,
        key: &str,
        v: &Value,
        col: usize,
    ) -> Result<(), String> {
        Self::pad(out, col);
        out.push_str(&self.key(key, false)?);
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(self.style.eol);
                for (k, x) in m {
                    self.render_entry(out, k, x, col + self.style.step)?;
                }
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(self.style.eol);
                for x in items {
                    self.render_item(out, x, col + self.style.seq_indent)?;
                }
            }
            _ => {
                out.push(' ');
                out.push_str(&self.inline(v, false)?);
                out.push_str(self.style.eol);
            }
        }
        Ok(())
    }

    /// `- item` with its `-` at `col`; a mapping or sequence item starts on the `-` line.
    fn render_item(&self, out: &mut String, v: &Value, col: usize) -> Result<(), String> {
        let inner = col + self.style.dash_offset;
        let mut body = String::new();
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    self.render_entry(&mut body, k, x, inner)?;
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for x in items {
                    self.render_item(&mut body, x, inner)?;
                }
            }
            _ => {
                Self::pad(&mut body, inner);
                body.push_str(&self.inline(v, false)?);
                body.push_str(self.style.eol);
            }
        }
        // The first line's indentation becomes `-` and the spaces up to the content.
        Self::pad(out, col);
        out.push('-');
        Self::pad(out, self.style.dash_offset - 1);
        out.push_str(&body[inner..]);
        Ok(())
    }

    /// A value in flow style (`{a: 1}`, `[x, y]`, scalars as in [`Planner::scalar`]).
    fn flow(&self, v: &Value) -> Result<String, String> {
        self.inline(v, true)
    }

    /// A value on one line: collections in flow style, a scalar as the context allows.
    fn inline(&self, v: &Value, in_flow: bool) -> Result<String, String> {
        Ok(match v {
            Value::Object(m) => {
                let mut parts = Vec::new();
                for (k, x) in m {
                    parts.push(format!("{}: {}", self.key(k, true)?, self.flow(x)?));
                }
                format!("{{{}}}", parts.join(", "))
            }
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|x| self.flow(x))
                    .collect::<Result<_, _>>()?;
                format!("[{}]", parts.join(", "))
            }
            _ => self.scalar(v, in_flow)?,
        })
    }

    /// A scalar that reads back as `v`: plain when it can be, else quoted.
    fn scalar(&self, v: &Value, in_flow: bool) -> Result<String, String> {
        let text = match v {
            Value::String(s) => {
                if !self.style.json
                    && plain_ok(s, in_flow)
                    && yaml::resolve_plain(s) == yaml::Resolved::Str
                {
                    return Ok(s.clone());
                }
                return Ok(self.quote(s));
            }
            other => other.to_string(),
        };
        // Numbers, booleans and null are written as JSON writes them: check they read back.
        let back = yaml::parse_stream(&text);
        match back.documents.first() {
            Some(d) if d.value == *v && back.errors.is_empty() => Ok(text),
            _ => Err(format!(
                "the value {text} cannot be written so that it reads back the same"
            )),
        }
    }

    /// A mapping key that reads back as `key`.
    fn key(&self, key: &str, in_flow: bool) -> Result<String, String> {
        if !self.style.json
            && key != "<<"
            && plain_ok(key, in_flow)
            && yaml::key_name(key, ScalarStyle::Plain, None).as_deref() == Ok(key)
        {
            Ok(key.to_string())
        } else {
            Ok(self.quote(key))
        }
    }

    fn quote(&self, s: &str) -> String {
        let breaks = |c: char| {
            c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
        };
        if self.style.single_quote && !self.style.json && !s.contains(breaks) {
            return format!("'{}'", s.replace('\'', "''"));
        }
        // JSON's escapes are YAML's; the line breaks libyaml knows beyond JSON's are escaped too.
        let mut out = String::with_capacity(s.len() + 2);
        for c in serde_json::to_string(s).unwrap_or_default().chars() {
            match c {
                '\u{85}' => out.push_str("\\N"),
                '\u{2028}' => out.push_str("\\L"),
                '\u{2029}' => out.push_str("\\P"),
                '\u{feff}' => out.push_str("\\ufeff"),
                c => out.push(c),
            }
        }
        out
    }
}

/// Do these values hold a non-empty mapping or sequence (then an empty `{}`/`[]` that gets
/// them becomes a block)?
fn nested<'v>(mut values: impl Iterator<Item = &'v Value>) -> bool {
    values.any(|v| !empty(v) && (v.is_object() || v.is_array()))
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Can `s` be written as a plain scalar that libyaml reads back as the same text?
fn plain_ok(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let second = s.chars().nth(1);
    let bad_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
            || in_flow && matches!(c, ',' | '[' | ']' | '{' | '}' | ':')
    };
    let indicator = matches!(
        first,
        '?' | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
    ) || first == '-' && second.is_none_or(|c| c == ' ');
    !indicator
        && !s.contains(bad_char)
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.starts_with("---")
        && !s.starts_with("...")
}

fn line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

fn next_line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| pos + i + 1)
}

/// Apply the changes (in order of position; inner ones before outer ones at the same place).
/// Lines added at the end of a file without a final newline keep it without one.
fn splice(text: &str, mut changes: Vec<Change>, eol: &str) -> String {
    changes.sort_by_key(|c| c.start);
    let mut out =
        String::with_capacity(text.len() + changes.iter().map(|c| c.text.len()).sum::<usize>());
    let mut pos = 0;
    let mut at_end = String::new();
    for c in changes {
        if c.start >= text.len() && !text.is_empty() && !text.ends_with('\n') {
            at_end.push_str(&c.text);
            continue;
        }
        out.push_str(&text[pos..c.start.max(pos)]);
        out.push_str(&c.text);
        pos = c.end.max(pos);
    }
    out.push_str(&text[pos..]);
    if !at_end.is_empty() {
        out.push_str(eol);
        out.push_str(at_end.strip_suffix(eol).unwrap_or(&at_end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Apply one edit to the first document that reads as `before`.
    fn add(text: &str, doc_index: usize, after: Value) -> Result<String, EditError> {
        let stream = yaml::parse_stream(text);
        let before = stream
            .documents
            .iter()
            .find(|d| d.index == doc_index)
            .map(|d| d.value.clone())
            .unwrap();
        let out = apply_additions(
            text,
            &[DocEdit {
                doc_index,
                before: &before,
                after: &after,
            }],
        )?;
        // Idempotent: the result holds `after`, so applying it again changes nothing.
        let again = apply_additions(
            &out,
            &[DocEdit {
                doc_index,
                before: &after,
                after: &after,
            }],
        )
        .unwrap();
        assert_eq!(again, out);
        Ok(out)
    }

    fn value(text: &str) -> Value {
        yaml::value(text).unwrap()
    }

    /// `v` with `f` applied to it.
    fn with(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
        f(&mut v);
        v
    }

    const POD: &str = "\
# a pod
apiVersion: v1
kind: Pod
metadata:
  name: web   # the name

spec:
  containers:
  - name: app
    image: nginx
    securityContext:
      capabilities:
        drop: [NET_RAW]
    # ports come later
  volumes: []
";

    #[test]
    fn new_keys_and_items_go_after_the_last_entry_with_everything_else_untouched() {
        let after = with(value(POD), |v| {
            let sc = &mut v["spec"]["containers"][0]["securityContext"];
            sc["runAsNonRoot"] = json!(true);
            sc["allowPrivilegeEscalation"] = json!(false);
            sc["capabilities"]["drop"]
                .as_array_mut()
                .unwrap()
                .push(json!("ALL"));
            v["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        });
        let out = add(POD, 0, after).unwrap();
        assert_eq!(
            out,
            "\
# a pod
apiVersion: v1
kind: Pod
metadata:
  name: web   # the name

spec:
  containers:
  - name: app
    image: nginx
    securityContext:
      capabilities:
        drop: [NET_RAW, ALL]
      allowPrivilegeEscalation: false
      runAsNonRoot: true
    # ports come later
  volumes:
  - emptyDir: {}
    name: data
"
        );
    }

    #[test]
    fn null_and_empty_values_become_block_mappings_at_the_file_step() {
        let text = "spec:\n    template:\n        securityContext:   # fill me\n        affinity: null\n        tolerations: ~\n";
        let after = json!({"spec": {"template": {
            "securityContext": {"runAsNonRoot": true},
            "affinity": {"podAntiAffinity": {"preferred": [{"weight": 100, "labels": {"app": "x"}}]}},
            "tolerations": [],
        }}});
        let out = add(text, 0, after).unwrap();
        assert_eq!(
            out,
            "spec:\n    template:\n        securityContext:   # fill me\n            runAsNonRoot: true\n        affinity:\n            podAntiAffinity:\n                preferred:\n                - labels:\n                      app: x\n                  weight: 100\n        tolerations: []\n"
        );
    }

    #[test]
    fn sequences_follow_the_file_indentation_and_dash_offset() {
        let text = "items:\n  - name: a\n    x: 1\nother:\n  - b\n";
        let after = json!({"items": [{"name": "a", "x": 1}, {"name": "c", "list": ["p", "q"]}], "other": ["b", "c"], "new": ["z"]});
        let out = add(text, 0, after).unwrap();
        assert_eq!(
            out,
            "items:\n  - name: a\n    x: 1\n  - list:\n      - p\n      - q\n    name: c\nother:\n  - b\n  - c\nnew:\n  - z\n"
        );
    }

    #[test]
    fn scalars_are_quoted_only_when_needed_and_read_back_the_same() {
        let text = "a: 1\n";
        let strings = [
            "1",
            "yes",
            "on",
            "y",
            "true",
            "null",
            "~",
            "",
            "0x10",
            "1e3",
            "08",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "#x",
            "-",
            "- x",
            "--flag=1",
            "http://h:80/x",
            "a,b",
            "[x]",
            "*x",
            "&x",
            "!x",
            "|",
            ">",
            "%",
            "@",
            "`",
            "'q'",
            "\"d\"",
            "line\nbreak",
            "tab\there",
            "\u{2028}",
            "é",
            "---",
            "...",
            "<<",
            "x:",
        ];
        let mut after = value(text);
        for (i, s) in strings.iter().enumerate() {
            after[format!("k{i:02}")] = json!(s);
            after[*s] = json!(i);
        }
        after["flow"] = json!([&strings[..], {"n": 1.5, "b": false, "z": null, "big": 18446744073709551615u64}]);
        // The self-check reads every value back: any wrong quoting fails the edit.
        let out = add(text, 0, after).unwrap();
        // The key `1` reads back as "1" (Kubernetes makes integer keys strings); `y` does not.
        assert!(
            out.contains("\n1: 0\n") && out.contains("\n\"y\": 3\n"),
            "{out}"
        );
        assert!(out.contains("k00: \"1\"\n"), "{out}");
        assert!(out.contains("k19: http://h:80/x\n"), "{out}");
        assert!(out.contains("k18: --flag=1\n"), "{out}");
    }

    #[test]
    fn single_quotes_when_the_file_prefers_them() {
        let text = "a: 'x'\nb: 'y'\nc: \"z\"\n";
        let out = add(
            text,
            0,
            json!({"a": "x", "b": "y", "c": "z", "d": "it's 1", "e": "1"}),
        )
        .unwrap();
        assert_eq!(out, "a: 'x'\nb: 'y'\nc: \"z\"\nd: it's 1\ne: '1'\n");
    }

    #[test]
    fn multi_document_files_and_list_items() {
        let text = "a: 1\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  spec: {}\n- kind: Pod\n  spec:\n    x: 1\n---\nz: 2\n";
        let after = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"kind": "Pod", "spec": {"w": 2}},
            {"kind": "Pod", "spec": {"x": 1, "w": 2}},
        ]});
        let out = add(text, 1, after).unwrap();
        assert_eq!(
            out,
            "a: 1\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  spec: {w: 2}\n- kind: Pod\n  spec:\n    x: 1\n    w: 2\n---\nz: 2\n"
        );
    }

    #[test]
    fn crlf_and_a_missing_final_newline_are_kept() {
        let text = "a:\r\n  b: 1\r\nc: [x]";
        let out = add(
            text,
            0,
            json!({"a": {"b": 1, "d": {"e": 2}}, "c": ["x", "w"], "f": 3}),
        )
        .unwrap();
        assert_eq!(out, "a:\r\n  b: 1\r\n  d:\r\n    e: 2\r\nc: [x, w]\r\nf: 3");
    }

    #[test]
    fn block_scalars_keep_their_text() {
        let text = "a:\n  script: |+\n    echo hi\n\n  more: >\n    folded\n    text\n\nb: 1\n";
        let mut after = value(text);
        after["a"]["new"] = json!("v");
        after["c"] = json!(2);
        let out = add(text, 0, after).unwrap();
        assert_eq!(
            out,
            "a:\n  script: |+\n    echo hi\n\n  more: >\n    folded\n    text\n\n  new: v\nb: 1\nc: 2\n"
        );
    }

    #[test]
    fn a_block_scalar_at_the_end_of_a_file_without_a_final_newline_keeps_its_value() {
        for (text, want) in [
            (
                "a:\n  s: |\n    x\n    y",
                "a:\n  s: |-\n    x\n    y\n  k: 1\nz: 2",
            ),
            ("a:\n  s: >2+\n    x", "a:\n  s: >2-\n    x\n  k: 1\nz: 2"),
        ] {
            let mut after = value(text);
            after["a"]["k"] = json!(1);
            after["z"] = json!(2);
            assert_eq!(add(text, 0, after).unwrap(), want);
        }
    }

    #[test]
    fn json_files_stay_json() {
        let text = "{\n  \"a\": {\"b\": [1]},\n  \"c\": {}\n}\n";
        let out = add(
            text,
            0,
            json!({"a": {"b": [1, 2], "n": "1"}, "c": {"d": [true]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": {\"b\": [1, 2], \"n\": \"1\"},\n  \"c\": {\"d\": [true]}\n}\n"
        );
        serde_json::from_str::<Value>(&out).unwrap();
        // An item of a flow sequence changes, none is added: no empty entry after the last.
        let text = "{\"items\":[{\"a\":1}],\"b\":2}\n";
        let out = add(text, 0, json!({"items": [{"a": 1, "n": true}], "b": 2})).unwrap();
        assert_eq!(out, "{\"items\":[{\"a\":1, \"n\": true}],\"b\":2}\n");
        serde_json::from_str::<Value>(&out).unwrap();
    }

    #[test]
    fn anchors_aliases_and_merge_keys_are_refused() {
        let text = "base: &b\n  x: 1\nuse: *b\nmerged:\n  <<: *b\n  y: 2\nplain:\n  z: 3\n";
        let v = value(text);
        for (path, edit) in [
            ("base", with(v.clone(), |v| v["base"]["n"] = json!(1))),
            ("use", with(v.clone(), |v| v["use"]["n"] = json!(1))),
            ("merged", with(v.clone(), |v| v["merged"]["n"] = json!(1))),
        ] {
            let e = add(text, 0, edit).unwrap_err();
            assert_eq!(e.path, path);
            assert!(
                e.message.contains("anchor")
                    || e.message.contains("alias")
                    || e.message.contains("merge"),
                "{e}"
            );
        }
        // Elsewhere in the same document it works.
        let out = add(text, 0, with(v, |v| v["plain"]["w"] = json!(1))).unwrap();
        assert!(out.ends_with("  z: 3\n  w: 1\n"), "{out}");
    }

    #[test]
    fn changes_that_are_not_additions_are_refused_and_nothing_is_edited() {
        let text = "a: 1\nb: [x]\nc: {d: 1}\n";
        for after in [
            json!({"a": 2, "b": ["x"], "c": {"d": 1}}),
            json!({"b": ["x"], "c": {"d": 1}}),
            json!({"a": 1, "b": [], "c": {"d": 1}}),
            json!({"a": 1, "b": ["y"], "c": {"d": 1}}),
            json!({"a": 1, "b": ["x"], "c": [1]}),
        ] {
            let e = add(text, 0, after).unwrap_err();
            assert!(e.to_string().starts_with("document 1"), "{e}");
        }
        let e = apply_additions(
            text,
            &[DocEdit {
                doc_index: 0,
                before: &json!({"a": 5}),
                after: &json!({"a": 5, "z": 1}),
            }],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "document 1: the document does not hold the object to edit"
        );
        let e = apply_additions(
            text,
            &[DocEdit {
                doc_index: 3,
                before: &json!({}),
                after: &json!({"z": 1}),
            }],
        )
        .unwrap_err();
        assert_eq!(e.doc_index, 3);
    }

    #[test]
    fn error_display() {
        let e = EditError {
            doc_index: 2,
            path: "spec.x".into(),
            message: "no".into(),
        };
        assert_eq!(e.to_string(), "document 3, spec.x: no");
    }
}
