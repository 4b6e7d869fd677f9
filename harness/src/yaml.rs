//! The one YAML reader of the harness. Manifests are read as Kubernetes reads them:
//! - the grammar is libyaml's (the library go-yaml was ported from, see [`events`]), so every
//!   file `kubectl` accepts parses, and parses alike;
//! - scalars resolve as go-yaml v2 resolves them under `sigs.k8s.io/yaml` (what `kubectl` and the
//!   API server use): YAML 1.1 booleans (`y`/`yes`/`on`/`off`/…), `~`/`null`, integers with `_`
//!   and `0x`/`0o`/`0b`/`0` prefixes, then unsigned, then floats; quoted and block scalars are
//!   strings; mapping keys become strings as `sigs.k8s.io/yaml` makes them (`on:` is `"true"`,
//!   `1:` is `"1"`); integral floats are integers, as Go's `json.Marshal` writes them;
//! - anchors and aliases work, and `<<` merges apply in place, in key order, as in go-yaml v2.
//!
//! Every document is read on its own: a document that cannot be read is reported with its line
//! (and the reader resumes at the next `---` line), the others are still read. Hostile input is
//! bounded ([`Limits`]): alias expansion (go-yaml's rule and an absolute cap), nesting depth, scalar
//! size, nodes per document and per file, documents per file. Parsing never panics and reads a
//! stream in time linear in its size plus the nodes it is allowed to build.
//!
//! [`locate_paths`] maps field paths back to lines, only for the objects that need it.

mod events;
mod json_line;

pub(crate) use events::{EventData, ScalarStyle};
use events::{ParseError, Parser};
use serde_json::{Map, Number, Value};
use std::collections::{HashMap, HashSet};

/// One YAML document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based position of the document in the stream (malformed documents count too).
    pub index: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    pub value: Value,
}

/// A document that could not be read: 1-based line and a description (never the offending text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
    /// The document broke one of the [`Limits`] (it may be valid YAML).
    pub limit: bool,
}

/// What a stream parses into: every readable document, and an error for each unreadable one.
#[derive(Debug, Default)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub errors: Vec<SyntaxError>,
}

/// Bounds on what one stream may make the reader build. A document over a bound is reported
/// (with its line) instead of being read; the other documents still are.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Documents per stream: the rest of a longer stream is reported and not read.
    pub documents: usize,
    /// Nested mappings and sequences in a document.
    pub depth: usize,
    /// Bytes of one scalar.
    pub scalar_bytes: usize,
    /// Estimated memory of one document's value, aliases expanded (see [`Size`]).
    pub document_bytes: u64,
    /// Estimated memory of all the values of the stream, aliases expanded and anchored copies
    /// counted: the rest of the stream is reported and not read.
    pub stream_bytes: u64,
}

/// The bounds every caller gets. Real manifests stay far below them: in the 3,131 files of the
/// shared corpus the largest document has 46k nodes and 35 levels, the longest stream 70
/// documents, and the API server refuses any object over 3 MiB (its request size limit).
pub const LIMITS: Limits = Limits {
    documents: 10_000,
    // serde_json, which our policy modules and Kubewarden's policy-server read requests with,
    // refuses more than 128 levels: a deeper object could never reach a policy in a cluster.
    depth: 128,
    scalar_bytes: 3 << 20,
    // A value takes far more memory than its text (a one-key mapping is a whole B-tree node):
    // these keep a 16 MiB file under 256 MB in all, while the largest corpus file (2 MB, 65k
    // nodes) needs about 20 MiB; at 192 MiB `check` peaks near 200 MB RSS.
    document_bytes: 96 << 20,
    stream_bytes: 192 << 20,
};

/// Parse a whole YAML stream with the default [`LIMITS`].
pub fn parse_stream(text: &str) -> Stream {
    parse_stream_with(text, &LIMITS)
}

/// Parse a whole YAML stream. After a syntax error, parsing resumes at the next `---` line.
pub fn parse_stream_with(text: &str, limits: &Limits) -> Stream {
    let mut documents = Vec::new();
    let errors = each_document(text, limits, true, &mut |d| documents.push(d));
    Stream { documents, errors }
}

/// Parse a YAML stream one document at a time: each readable document goes to `each` as soon
/// as it is read. When the caller `keeps_all` the documents, `stream_bytes` bounds the file;
/// else it bounds each document with the anchored copies it keeps, and the caller decides what
/// it keeps. Returns an error for each unreadable document.
pub fn each_document(
    text: &str,
    limits: &Limits,
    keeps_all: bool,
    each: &mut dyn FnMut(Document),
) -> Vec<SyntaxError> {
    let mut builder = Builder::new(limits, !keeps_all, each);
    drive(text, &mut builder);
    builder.errors
}

/// [`each_document`] (one document at a time), with `also` given the events of every document
/// as well: one reading for both. Only the values' reader decides what is read (what `also`
/// returns is ignored): `also` sees the documents `each` gets, and the start of those that fail.
pub(crate) fn each_document_also(
    text: &str,
    limits: &Limits,
    also: &mut dyn Sink,
    each: &mut dyn FnMut(Document),
) -> Vec<SyntaxError> {
    struct Tee<'b, 'l, 'a> {
        builder: &'b mut Builder<'l>,
        also: &'a mut dyn Sink,
    }
    impl Sink for Tee<'_, '_, '_> {
        fn start(&mut self, index: usize, line: usize) -> Step {
            let _ = self.also.start(index, line);
            self.builder.start(index, line)
        }
        fn event(&mut self, ev: &Ev<'_>) -> Step {
            let _ = self.also.event(ev);
            self.builder.event(ev)
        }
        fn end(&mut self, index: usize) {
            self.also.end(index);
            self.builder.end(index)
        }
        fn failed(&mut self, index: usize, error: SyntaxError) {
            self.also.failed(index, error.clone());
            self.builder.failed(index, error)
        }
    }
    let mut builder = Builder::new(limits, true, each);
    drive(
        text,
        &mut Tee {
            builder: &mut builder,
            also,
        },
    );
    builder.errors
}

/// Below this, a text is read on one thread: [`split`] does not pay off. `fix` reads back the
/// regions it edits (about 1 MiB each in a dense 16 MiB file) in two parts with it: 5.5 → 4.3 s
/// on `context-waiting.yaml`, where 1 MiB parts left the second core idle.
pub const MIN_PART: usize = 1 << 18;

/// Whether libyaml may start reading `text` afresh at any `---` line and give what one reading
/// of the whole gives from there: `---` ends any document (libyaml ends a plain or block scalar
/// there and fails a quoted scalar or flow collection, so reading resumes there after an error
/// too). Not when `text` has directives (`%` lines, which belong to the next document) or a
/// character libyaml refuses (its reader checks a whole buffer ahead, so that error comes before
/// the documents read until there).
fn restartable(text: &str) -> bool {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}')
            || matches!(c, '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    };
    // Most texts are ASCII: checked a byte at a time (the characters only past a non-ASCII byte).
    let ascii = |b: u8| matches!(b, b'\t' | b'\n' | b'\r' | b' '..=b'~');
    !text.starts_with('%')
        && !text.contains("\n%")
        && (text.bytes().all(ascii) || text.chars().all(printable))
}

/// Where to cut `text` into at most `n` parts, read one by one, that give the documents the
/// whole text gives: at `---` lines (see [`restartable`]), into parts of similar size. One part
/// when the text is small, is not [`restartable`], or may hold more documents than
/// [`Limits::documents`] (counted per part).
fn split(text: &str, limits: &Limits, n: usize, min_part: usize) -> Vec<std::ops::Range<usize>> {
    let whole = std::iter::once(0..text.len()).collect();
    if n < 2 || text.len() < 2 * min_part || !restartable(text) {
        return whole;
    }
    let markers = text
        .split_inclusive('\n')
        .filter(|l| l.starts_with("---") && is_document_marker(l))
        .count();
    if markers + 1 >= limits.documents {
        return whole;
    }
    let mut cuts = vec![0];
    for k in 1..n {
        let target = next_line_start(text, text.len() * k / n);
        if let Some(at) = next_marker(text, target)
            && at > *cuts.last().unwrap_or(&0)
            && at - cuts.last().unwrap_or(&0) >= min_part
        {
            cuts.push(at);
        }
    }
    cuts.push(text.len());
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Read every document of `text` as [`each_document`] does without keeping them, on up to
/// `threads` threads, in parts of at least `min_part` bytes ([`MIN_PART`]; see [`split`]), and
/// map each value with `f`. Returns `(index, f(value))` in document order, and the errors in
/// the order [`each_document`] gives them.
pub fn map_documents<T: Send>(
    text: &str,
    limits: &Limits,
    threads: usize,
    min_part: usize,
    f: &(dyn Fn(&Value) -> T + Sync),
) -> (Vec<(usize, T)>, Vec<SyntaxError>) {
    map_parts(text, limits, split(text, limits, threads, min_part), f)
}

/// [`map_documents`] over the given parts, each on its own thread.
fn map_parts<T: Send>(
    text: &str,
    limits: &Limits,
    parts: Vec<std::ops::Range<usize>>,
    f: &(dyn Fn(&Value) -> T + Sync),
) -> (Vec<(usize, T)>, Vec<SyntaxError>) {
    /// The builder, noting the last document that could not be read.
    struct Noted<'b, 'l>(&'b mut Builder<'l>, Option<usize>);
    impl Sink for Noted<'_, '_> {
        fn start(&mut self, index: usize, line: usize) -> Step {
            self.0.start(index, line)
        }
        fn event(&mut self, ev: &Ev<'_>) -> Step {
            self.0.event(ev)
        }
        fn end(&mut self, index: usize) {
            self.0.end(index)
        }
        fn failed(&mut self, index: usize, error: SyntaxError) {
            self.1 = Some(index);
            self.0.failed(index, error)
        }
    }
    let last = parts.len().saturating_sub(1);
    let read = |(k, part): (usize, std::ops::Range<usize>)| {
        let mut out = Vec::new();
        let mut each = |d: Document| out.push((d.index, f(&d.value)));
        let mut builder = Builder::new(limits, true, &mut each);
        let mut noted = Noted(&mut builder, None);
        let used = drive_part(text, part, &mut noted, true);
        // A document cut short by the end of its part fails as it does in the whole text, but
        // maybe with another message ("end of stream" for "document indicator"); the errors of
        // a later part would say "document N" counted from the part.
        let cut_short = k < last && used > 0 && noted.1 == Some(used - 1);
        let errors = builder.errors;
        let read_whole = cut_short || (k > 0 && !errors.is_empty());
        (out, errors, used, read_whole)
    };
    let read_parts: Vec<_> = if parts.len() == 1 {
        parts.into_iter().enumerate().map(read).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .into_iter()
                .enumerate()
                .map(|part| s.spawn(move || read(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    if read_parts.iter().any(|p| p.3) {
        // Read it whole instead (rare in a large file: an unreadable document past the first
        // part). Otherwise only the first part has errors, numbered as in the whole text.
        return map_parts(text, limits, std::iter::once(0..text.len()).collect(), f);
    }
    let (mut all, mut errors, mut offset) = (Vec::new(), Vec::new(), 0);
    for (out, errs, used, _) in read_parts {
        all.extend(out.into_iter().map(|(i, t)| (i + offset, t)));
        errors.extend(errs);
        offset += used;
    }
    (all, errors)
}

/// The estimated memory of a value, as the reader counts it against [`Limits`].
pub fn estimated_bytes(v: &Value) -> u64 {
    match v {
        Value::Object(m) => {
            Size::VALUE
                + Size::MAP
                + m.iter()
                    .map(|(k, v)| Size::key(k).bytes + estimated_bytes(v))
                    .sum::<u64>()
        }
        Value::Array(a) => Size::VALUE + a.iter().map(estimated_bytes).sum::<u64>(),
        _ => Size::scalar(v).bytes,
    }
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
    struct Root(Option<String>);
    impl Sink for Root {
        fn event(&mut self, ev: &Ev<'_>) -> Step {
            let tag = match ev.data {
                EventData::Scalar { tag, .. }
                | EventData::SequenceStart { tag, .. }
                | EventData::MappingStart { tag, .. } => tag.as_deref(),
                _ => None,
            };
            self.0 = tag
                .and_then(|t| t.strip_prefix('!'))
                .filter(|t| !t.is_empty() && !t.starts_with('!'))
                .map(str::to_string);
            Step::Stop
        }
    }
    let mut root = Root(None);
    drive(text, &mut root);
    root.0
}

/// A `---` line (document start marker).
pub(crate) fn is_document_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '\n', '\r']))
}

/// The `---` lines of `text`: each one's 1-based number and byte offset.
pub(crate) fn document_markers(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_document_marker(line) {
            out.push((i + 1, offset));
        }
        offset += line.len();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The event driver: libyaml events with byte offsets and exact lines, documents numbered,
// recovery after errors.

/// One parser event inside a document, placed in the whole text.
pub(crate) struct Ev<'e> {
    pub data: &'e EventData,
    /// Byte offsets of the event's start and end in the text given to [`drive`].
    pub start: usize,
    pub end: usize,
    /// 1-based line of `start` (counting `\n` as editors, `grep -n` and SARIF viewers do).
    pub line: usize,
    /// 0-based column of `start`, in characters.
    pub column: usize,
}

/// What a [`Sink`] wants after an event.
pub(crate) enum Step {
    Go,
    /// The current document is refused: report it, ignore the rest of its events.
    Skip(SyntaxError),
    /// The current document is refused and the parser must not read on (its own stacks grow
    /// with the input): report it, resume at the next `---` line.
    Resync(SyntaxError),
    /// Nothing more is wanted from this stream.
    Stop,
}

/// A consumer of documents' events.
pub(crate) trait Sink {
    /// Document `index` starts at `line`.
    fn start(&mut self, _index: usize, _line: usize) -> Step {
        Step::Go
    }
    /// A node event (scalar, alias, collection start or end) of the current document.
    fn event(&mut self, ev: &Ev<'_>) -> Step;
    /// Document `index` ended and every event of it was taken.
    fn end(&mut self, _index: usize) {}
    /// Document `index` cannot be read.
    fn failed(&mut self, _index: usize, _error: SyntaxError) {}
}

/// Run `sink` over every document of `text`. A syntax error (or a [`Step::Resync`]) ends the
/// document it is in; reading resumes at the next `---` line after it.
pub(crate) fn drive(text: &str, sink: &mut dyn Sink) {
    drive_part(text, 0..text.len(), sink, true);
}

/// [`drive`] over the bytes `part` of `text` only (from a line start to a line start), with
/// offsets and lines placed in the whole text and documents numbered from 0. Returns how many
/// document numbers it used (unreadable documents count too). Documents written as one line of
/// JSON are read by [`json_line`] when `one_line_json` (and the part is [`restartable`]: libyaml
/// resumes after them), the others by libyaml: the sink gets the same events either way.
fn drive_part(
    text: &str,
    part: std::ops::Range<usize>,
    sink: &mut dyn Sink,
    one_line_json: bool,
) -> usize {
    let text = &text[..part.end];
    let mut lines = Lines::new(text);
    let mut base = part.start;
    let mut index = 0usize;
    // Decided at the first candidate document (most texts have none).
    let mut fast: Option<bool> = None;
    let allowed = |fast: &mut Option<bool>| {
        *fast.get_or_insert_with(|| one_line_json && restartable(&text[part.start..]))
    };
    'parts: loop {
        if (json_line::candidate(text, base) || text.as_bytes().get(base) == Some(&b'{'))
            && allowed(&mut fast)
        {
            while let Some(doc) = json_line::document(text, base) {
                if !feed(sink, text, &doc, &mut lines, index) {
                    return index;
                }
                index += 1;
                base = doc.next;
                if base >= text.len() {
                    return index;
                }
            }
        }
        let mut parser = Parser::new(&text.as_bytes()[base..]);
        // Start of the current document's first event, while one is open.
        let mut doc_at: Option<usize> = None;
        let mut skipping = false;
        let mut last = base;
        loop {
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.next()));
            let (pos, error) = match parsed {
                Ok(Ok(ev)) => {
                    let start = (base + ev.start.index).min(text.len());
                    let end = (base + ev.end.index).min(text.len());
                    last = start.max(last);
                    let step = match &ev.data {
                        EventData::StreamStart => Step::Go,
                        EventData::StreamEnd => return index,
                        EventData::DocumentStart => {
                            doc_at = Some(start);
                            skipping = false;
                            sink.start(index, lines.line_at(start))
                        }
                        EventData::DocumentEnd => {
                            if !skipping {
                                sink.end(index);
                            }
                            index += 1;
                            doc_at = None;
                            skipping = false;
                            // The next document is one line of JSON: read on without libyaml.
                            if json_line::candidate(text, start) && allowed(&mut fast) {
                                base = start;
                                continue 'parts;
                            }
                            Step::Go
                        }
                        _ if skipping => Step::Go,
                        data => {
                            let line = lines.line_at(start);
                            sink.event(&Ev {
                                data,
                                start,
                                end,
                                line,
                                column: ev.start.column,
                            })
                        }
                    };
                    match step {
                        Step::Go => continue,
                        Step::Stop => return index,
                        Step::Skip(e) => {
                            sink.failed(index, e);
                            skipping = true;
                            continue;
                        }
                        Step::Resync(e) => (start, Some(e)),
                    }
                }
                Ok(Err(e)) => {
                    let pos = (base + e.mark.index).min(text.len());
                    (pos, Some(syntax_error(&e, text, &mut lines, pos, base)))
                }
                Err(_) => (
                    last,
                    Some(SyntaxError {
                        line: lines.line_at(last),
                        message: "the YAML parser failed on this document".to_string(),
                        limit: false,
                    }),
                ),
            };
            // The current document ends here; an error inside a skipped one is not reported twice.
            if let Some(e) = error
                && !skipping
            {
                sink.failed(index, e);
            }
            index += 1;
            let floor = match doc_at {
                Some(d) => next_line_start(text, d),
                None => next_line_start(text, base),
            };
            match next_marker(text, line_start(text, pos).max(floor)) {
                Some(next) => {
                    base = next;
                    continue 'parts;
                }
                None => return index,
            }
        }
    }
}

/// For the tests and the `yaml` fuzz target: whether reading `text` with [`json_line`] where it
/// may gives what libyaml alone gives: the same events (data, offsets, lines, columns) and
/// documents started, ended and failed, and under `limits` the same documents and errors.
/// `Err` says where they part.
#[cfg(any(test, fuzzing))]
pub fn json_line_agrees(text: &str, limits: &Limits) -> Result<(), String> {
    struct Trace(Vec<String>);
    impl Sink for Trace {
        fn start(&mut self, index: usize, line: usize) -> Step {
            self.0.push(format!("start {index} line {line}"));
            Step::Go
        }
        fn event(&mut self, ev: &Ev<'_>) -> Step {
            let (data, start, end) = (ev.data, ev.start, ev.end);
            let at = format!("line {} column {}", ev.line, ev.column);
            self.0.push(format!("{data:?} {start}..{end} {at}"));
            Step::Go
        }
        fn end(&mut self, index: usize) {
            self.0.push(format!("end {index}"));
        }
        fn failed(&mut self, index: usize, error: SyntaxError) {
            self.0.push(format!("failed {index} {error:?}"));
        }
    }
    let trace = |fast: bool| {
        let mut t = Trace(Vec::new());
        let used = drive_part(text, 0..text.len(), &mut t, fast);
        t.0.push(format!("used {used}"));
        t.0
    };
    let (fast, slow) = (trace(true), trace(false));
    if let Some(k) = (0..fast.len().max(slow.len())).find(|&k| fast.get(k) != slow.get(k)) {
        return Err(format!(
            "event {k}: {:?} with json_line, {:?} with libyaml only",
            fast.get(k),
            slow.get(k)
        ));
    }
    let read = |fast: bool| {
        let mut docs = Vec::new();
        let mut each = |d: Document| docs.push((d.index, d.line, d.value));
        let mut builder = Builder::new(limits, true, &mut each);
        drive_part(text, 0..text.len(), &mut builder, fast);
        let errors = builder.errors;
        (docs, errors)
    };
    let (fast, slow) = (read(true), read(false));
    if fast != slow {
        return Err(format!(
            "documents {fast:?} with json_line, {slow:?} with libyaml only"
        ));
    }
    Ok(())
}

/// Give `sink` a document [`json_line`] reads as [`drive_part`] gives a document libyaml reads.
/// Returns false when the sink wants nothing more.
fn feed(
    sink: &mut dyn Sink,
    text: &str,
    doc: &json_line::Read,
    lines: &mut Lines<'_>,
    index: usize,
) -> bool {
    // `None`: on with the document; else whether to read on after it (the rest of a refused
    // document is ignored, and reading resumes after its line either way: libyaml's reading
    // resumes at the next `---` line after a `Resync`).
    fn settle(sink: &mut dyn Sink, index: usize, step: Step) -> Option<bool> {
        match step {
            Step::Go => None,
            Step::Stop => Some(false),
            Step::Skip(e) | Step::Resync(e) => {
                sink.failed(index, e);
                Some(true)
            }
        }
    }
    let step = sink.start(index, lines.line_at(doc.start));
    let mut outcome = settle(sink, index, step);
    if outcome.is_none() {
        // One line: every event is on it.
        let mut line = None;
        json_line::events(text, doc, &mut |ev| {
            let line = *line.get_or_insert_with(|| lines.line_at(ev.start.index));
            let step = sink.event(&Ev {
                data: &ev.data,
                start: ev.start.index,
                end: ev.end.index,
                line,
                column: ev.start.column,
            });
            outcome = settle(sink, index, step);
            outcome.is_none()
        });
    }
    outcome.unwrap_or_else(|| {
        sink.end(index);
        true
    })
}

/// A parser error as we report it: the problem, what the parser was reading (with its line)
/// and the column, never the offending text.
fn syntax_error(
    e: &ParseError,
    text: &str,
    lines: &mut Lines<'_>,
    pos: usize,
    base: usize,
) -> SyntaxError {
    let mut message = e.problem.clone();
    if let Some((context, mark)) = &e.context {
        let at = lines.line_at(base + mark.index);
        message.push_str(&format!(" ({context} at line {at})"));
    }
    let column = text
        .get(line_start(text, pos)..pos)
        .map_or(0, |s| s.chars().count());
    message.push_str(&format!(" (column {})", column + 1));
    SyntaxError {
        line: lines.line_at(pos),
        message,
        limit: false,
    }
}

fn line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

fn next_line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[pos.min(text.len())..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| pos + i + 1)
}

/// The first `---` line starting at or after `from` (a line start).
fn next_marker(text: &str, from: usize) -> Option<usize> {
    let mut pos = from;
    while pos < text.len() {
        let end = next_line_start(text, pos);
        if is_document_marker(&text[pos..end]) {
            return Some(pos);
        }
        pos = end;
    }
    None
}

/// Line numbers of byte offsets, counted incrementally (offsets mostly grow).
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, pos: usize) -> usize {
        let pos = pos.min(self.bytes.len());
        let count = |s: &[u8]| s.iter().filter(|&&b| b == b'\n').count();
        if pos >= self.pos {
            self.line += count(&self.bytes[self.pos..pos]);
        } else {
            self.line -= count(&self.bytes[pos..self.pos]);
        }
        self.pos = pos;
        self.line
    }
}

// ---------------------------------------------------------------------------------------------
// Building values, as go-yaml v2 decodes into interface{} and sigs.k8s.io/yaml makes it JSON.

/// A mapping key waiting for its value.
enum Key {
    None,
    Name(String),
    Merge,
}

/// A container being built.
enum Frame {
    Map {
        map: Map<String, Value>,
        key: Key,
        anchor: Option<String>,
        size: Size,
    },
    Seq {
        items: Vec<Value>,
        anchor: Option<String>,
        size: Size,
    },
}

/// A node that may come again through an alias: its value and its size.
struct Anchored {
    value: Value,
    size: Size,
}

/// What a value costs: its YAML nodes (go-yaml's alias rule counts them) and an estimate of the
/// memory its `serde_json` form takes.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: u64,
    bytes: u64,
}

impl Size {
    /// A `Value` itself, and its slot in a growing sequence.
    const VALUE: u64 = 64;
    /// A mapping: a B-tree leaf is allocated whole for its first key.
    const MAP: u64 = 640;
    /// A heap string's allocation overhead.
    const STRING: u64 = 16;

    fn scalar(v: &Value) -> Size {
        let text = match v {
            Value::String(s) => s.len() as u64 + Self::STRING,
            _ => 0,
        };
        Size {
            nodes: 1,
            bytes: Self::VALUE + text,
        }
    }

    fn key(name: &str) -> Size {
        Size {
            nodes: 1,
            bytes: 24 + name.len() as u64 + Self::STRING,
        }
    }

    fn collection(map: bool) -> Size {
        Size {
            nodes: 1,
            bytes: Self::VALUE + if map { Self::MAP } else { 0 },
        }
    }

    fn add(&mut self, other: Size) {
        self.nodes += other.nodes;
        self.bytes += other.bytes;
    }
}

struct Builder<'l> {
    limits: &'l Limits,
    /// One document at a time: the stream bound restarts with every document.
    streaming: bool,
    each: &'l mut dyn FnMut(Document),
    stack: Vec<Frame>,
    anchors: HashMap<String, Anchored>,
    errors: Vec<SyntaxError>,
    doc_index: usize,
    doc_line: Option<usize>,
    /// go-yaml's counters for the current document: nodes decoded, and those inside aliases.
    decoded: u64,
    aliased: u64,
    /// Estimated memory of the current document, and of the whole stream (anchor copies too).
    doc_bytes: u64,
    stream_bytes: u64,
}

/// Where counted nodes come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Nodes of the text.
    Node,
    /// The expansion of an alias.
    Alias,
    /// The copy kept of an anchored node.
    Copy,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits, streaming: bool, each: &'l mut dyn FnMut(Document)) -> Self {
        Builder {
            limits,
            streaming,
            each,
            stack: Vec::new(),
            anchors: HashMap::new(),
            errors: Vec::new(),
            doc_index: 0,
            doc_line: None,
            decoded: 0,
            aliased: 0,
            doc_bytes: 0,
            stream_bytes: 0,
        }
    }

    /// The current document is not valid as Kubernetes reads YAML.
    fn refuse(&self, line: usize, message: impl std::fmt::Display) -> SyntaxError {
        SyntaxError {
            line,
            message: format!("document {}: {message}", self.doc_index + 1),
            limit: false,
        }
    }

    /// The current document is over one of the [`Limits`].
    fn over(&self, line: usize, message: impl std::fmt::Display) -> SyntaxError {
        SyntaxError {
            line,
            message: format!("document {} not read: {message}", self.doc_index + 1),
            limit: true,
        }
    }

    /// Count what the current document builds against the limits.
    fn count(&mut self, size: Size, origin: Origin, line: usize) -> Step {
        self.stream_bytes += size.bytes;
        if self.stream_bytes > self.limits.stream_bytes && self.streaming {
            return Step::Resync(self.over(
                line,
                format_args!(
                    "with the anchored copies it keeps, its data would take more than {} of memory",
                    amount(self.limits.stream_bytes)
                ),
            ));
        }
        if self.stream_bytes > self.limits.stream_bytes {
            let e = self.over(
                line,
                format_args!(
                    "the file's data would take more than {} of memory: this document and the rest of the file are not read",
                    amount(self.limits.stream_bytes)
                ),
            );
            self.errors.push(e);
            return Step::Stop;
        }
        if origin == Origin::Copy {
            return Step::Go;
        }
        self.decoded += size.nodes;
        self.doc_bytes += size.bytes;
        if origin == Origin::Alias {
            self.aliased += size.nodes;
        }
        if self.doc_bytes > self.limits.document_bytes {
            let what = if self.aliased > 0 {
                "with its aliases expanded, its data would take"
            } else {
                "its data would take"
            };
            return Step::Resync(self.over(
                line,
                format_args!(
                    "{what} more than {} of memory",
                    amount(self.limits.document_bytes)
                ),
            ));
        }
        // go-yaml v2 (decode.go): "document contains excessive aliasing".
        if self.aliased > 100
            && self.decoded > 1000
            && self.aliased as f64 / self.decoded as f64 > allowed_alias_ratio(self.decoded)
        {
            return Step::Resync(self.over(
                line,
                format_args!(
                    "excessive aliasing: {} of its {} nodes come from aliases (go-yaml and kubectl refuse it)",
                    self.aliased, self.decoded
                ),
            ));
        }
        Step::Go
    }

    fn open(&mut self, anchor: Option<&String>, map: bool, line: usize) -> Step {
        if self.stack.len() >= self.limits.depth {
            return Step::Resync(self.over(
                line,
                format_args!(
                    "nesting deeper than {} levels of mappings and sequences",
                    self.limits.depth
                ),
            ));
        }
        if let Some(Frame::Map { key: Key::None, .. }) = self.stack.last() {
            return Step::Skip(self.refuse(line, COLLECTION_KEY));
        }
        self.note_start(line);
        let size = Size::collection(map);
        let step = self.count(size, Origin::Node, line);
        if !matches!(step, Step::Go) {
            return step;
        }
        let anchor = anchor.cloned();
        self.stack.push(if map {
            Frame::Map {
                map: Map::new(),
                key: Key::None,
                anchor,
                size,
            }
        } else {
            Frame::Seq {
                items: Vec::new(),
                anchor,
                size,
            }
        });
        Step::Go
    }

    fn close(&mut self, line: usize) -> Step {
        let (value, anchor, size) = match self.stack.pop() {
            Some(Frame::Map {
                map, anchor, size, ..
            }) => (Value::Object(map), anchor, size),
            Some(Frame::Seq {
                items,
                anchor,
                size,
            }) => (Value::Array(items), anchor, size),
            None => return Step::Go,
        };
        if let Some(a) = anchor {
            let step = self.remember(a, &value, size, line);
            if !matches!(step, Step::Go) {
                return step;
            }
        }
        self.add(value, size, Origin::Node, line)
    }

    /// Keep a copy of an anchored node for the aliases to come (the copy counts in the file).
    fn remember(&mut self, anchor: String, value: &Value, size: Size, line: usize) -> Step {
        let step = self.count(size, Origin::Copy, line);
        if matches!(step, Step::Go) {
            let value = value.clone();
            self.anchors.insert(anchor, Anchored { value, size });
        }
        step
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&str>,
        anchor: Option<&String>,
        line: usize,
    ) -> Step {
        self.note_start(line);
        if text.len() > self.limits.scalar_bytes {
            return Step::Resync(self.over(
                line,
                format_args!(
                    "a scalar of {} bytes exceeds the limit of {} bytes (the API server accepts no object over 3 MiB)",
                    text.len(),
                    self.limits.scalar_bytes
                ),
            ));
        }
        let is_key = matches!(self.stack.last(), Some(Frame::Map { key: Key::None, .. }));
        if is_key {
            if is_merge_key(text, style, tag) {
                return self.set_key(Key::Merge, Size::key(text), line);
            }
            return match key_name(text, style, tag) {
                Ok(name) => {
                    let size = Size::key(&name);
                    if let Some(a) = anchor {
                        let value = Value::String(name.clone());
                        self.anchors.insert(a.clone(), Anchored { value, size });
                    }
                    self.set_key(Key::Name(name), size, line)
                }
                Err(m) => Step::Skip(self.refuse(line, m)),
            };
        }
        let resolved = match resolve(tag, text, style == ScalarStyle::Plain) {
            Ok(r) => r,
            Err(m) => return Step::Skip(self.refuse(line, m)),
        };
        let value = match scalar_value(resolved, text) {
            Ok(v) => v,
            Err(m) => return Step::Skip(self.refuse(line, m)),
        };
        let size = Size::scalar(&value);
        let step = self.count(size, Origin::Node, line);
        if !matches!(step, Step::Go) {
            return step;
        }
        if let Some(a) = anchor {
            let step = self.remember(a.clone(), &value, size, line);
            if !matches!(step, Step::Go) {
                return step;
            }
        }
        self.add(value, size, Origin::Node, line)
    }

    /// The key of the current mapping's next entry.
    fn set_key(&mut self, k: Key, size: Size, line: usize) -> Step {
        let step = self.count(size, Origin::Node, line);
        if let Some(Frame::Map { key, size: s, .. }) = self.stack.last_mut() {
            *key = k;
            s.add(size);
        }
        step
    }

    fn alias(&mut self, anchor: &str, line: usize) -> Step {
        self.note_start(line);
        let open = self.stack.iter().any(|f| match f {
            Frame::Map { anchor: a, .. } | Frame::Seq { anchor: a, .. } => {
                a.as_deref() == Some(anchor)
            }
        });
        if open {
            return Step::Skip(self.refuse(
                line,
                format_args!("anchor '{anchor}' value contains itself"),
            ));
        }
        let Some(size) = self.anchors.get(anchor).map(|a| a.size) else {
            return Step::Skip(
                self.refuse(line, format_args!("unknown anchor '{anchor}' referenced")),
            );
        };
        if matches!(self.stack.last(), Some(Frame::Map { key: Key::None, .. })) {
            return match key_of_value(&self.anchors[anchor].value) {
                Ok(name) => self.set_key(Key::Name(name), size, line),
                Err(m) => Step::Skip(self.refuse(line, m)),
            };
        }
        // Count before copying: a refused expansion costs nothing.
        let step = self.count(size, Origin::Alias, line);
        if !matches!(step, Step::Go) {
            return step;
        }
        let value = self.anchors[anchor].value.clone();
        self.add(value, size, Origin::Alias, line)
    }

    /// A finished value goes into its parent, or becomes the document.
    fn add(&mut self, value: Value, size: Size, origin: Origin, line: usize) -> Step {
        let doc_index = self.doc_index;
        match self.stack.last_mut() {
            None => {
                (self.each)(Document {
                    index: doc_index,
                    line: self.doc_line.unwrap_or(line),
                    value,
                });
                Step::Go
            }
            Some(Frame::Seq { items, size: s, .. }) => {
                items.push(value);
                s.add(size);
                Step::Go
            }
            Some(Frame::Map {
                map, key, size: s, ..
            }) => {
                s.add(size);
                match std::mem::replace(key, Key::None) {
                    Key::None => Step::Go,
                    Key::Name(k) => {
                        map.insert(k, value);
                        Step::Go
                    }
                    Key::Merge => match merge(map, value, origin) {
                        Ok(()) => Step::Go,
                        Err(m) => Step::Skip(self.refuse(line, m)),
                    },
                }
            }
        }
    }

    fn note_start(&mut self, line: usize) {
        if self.stack.is_empty() && self.doc_line.is_none() {
            self.doc_line = Some(line);
        }
    }
}

const COLLECTION_KEY: &str = "a mapping or sequence used as a mapping key (kubectl refuses it)";

impl Sink for Builder<'_> {
    fn start(&mut self, index: usize, line: usize) -> Step {
        self.stack.clear();
        self.anchors.clear();
        self.doc_index = index;
        self.doc_line = None;
        self.decoded = 0;
        self.aliased = 0;
        self.doc_bytes = 0;
        if self.streaming {
            self.stream_bytes = 0;
        }
        if index >= self.limits.documents {
            let e = self.over(
                line,
                format_args!(
                    "more than {} documents in one file: this one and the rest are not read",
                    self.limits.documents
                ),
            );
            self.errors.push(e);
            return Step::Stop;
        }
        Step::Go
    }

    fn event(&mut self, ev: &Ev<'_>) -> Step {
        match ev.data {
            EventData::MappingStart { anchor, .. } => self.open(anchor.as_ref(), true, ev.line),
            EventData::SequenceStart { anchor, .. } => self.open(anchor.as_ref(), false, ev.line),
            EventData::MappingEnd | EventData::SequenceEnd => self.close(ev.line),
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => self.scalar(value, *style, tag.as_deref(), anchor.as_ref(), ev.line),
            EventData::Alias { anchor } => self.alias(anchor, ev.line),
            _ => Step::Go,
        }
    }

    fn failed(&mut self, _index: usize, error: SyntaxError) {
        self.stack.clear();
        self.errors.push(error);
    }
}

/// A `<<` merge key (plain, or tagged `!!merge`).
pub(crate) fn is_merge_key(text: &str, style: ScalarStyle, tag: Option<&str>) -> bool {
    text == "<<" && (style == ScalarStyle::Plain && tag.is_none() || tag == Some(MERGE_TAG))
}

/// The JSON key a scalar mapping key becomes, as `sigs.k8s.io/yaml` makes it: the text when it
/// resolves to a string, else the JSON form of its value (`on:` is "true", `0x10:` is "16").
pub(crate) fn key_name(
    text: &str,
    style: ScalarStyle,
    tag: Option<&str>,
) -> Result<String, String> {
    match resolve(tag, text, style == ScalarStyle::Plain)? {
        Resolved::Str => Ok(text.to_string()),
        Resolved::Float(f) => Ok(go_float32_g(f)),
        r => scalar_value(r, text).and_then(|v| key_of_value(&v)),
    }
}

/// `96 MiB`, or bytes for small amounts.
fn amount(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// go-yaml v2's allowed share of nodes that come from aliases, by document size.
fn allowed_alias_ratio(decoded: u64) -> f64 {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    let d = decoded as f64;
    if d <= LOW {
        0.99
    } else if d >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((d - LOW) / (HIGH - LOW))
    }
}

/// Apply a `<<` merge in place, as go-yaml v2 does: the merged keys overwrite the keys before
/// them (later keys overwrite them in turn); in a sequence of maps the first map wins.
fn merge(map: &mut Map<String, Value>, value: Value, origin: Origin) -> Result<(), &'static str> {
    const WANT: &str = "map merge requires map or sequence of maps as the value";
    match value {
        Value::Object(m) => {
            map.extend(m);
            Ok(())
        }
        // go-yaml refuses an alias to a sequence here, and anything but maps in a sequence.
        Value::Array(list) if origin == Origin::Node => {
            if !list.iter().all(Value::is_object) {
                return Err(WANT);
            }
            for item in list.into_iter().rev() {
                if let Value::Object(m) = item {
                    map.extend(m);
                }
            }
            Ok(())
        }
        _ => Err(WANT),
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar resolution: go-yaml v2 resolve.go.

const TAG_PREFIX: &str = "tag:yaml.org,2002:";
const MERGE_TAG: &str = "tag:yaml.org,2002:merge";

/// A resolved scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A string: the scalar's own text.
    Str,
    /// `!!binary`: base64 text.
    Binary,
}

/// Resolve a scalar as go-yaml v2 does: plain untagged scalars by their text; quoted and block
/// scalars are strings; `!!str`/`!!int`/… tags are checked; other tags leave a string.
pub(crate) fn resolve(tag: Option<&str>, text: &str, plain: bool) -> Result<Resolved, String> {
    let Some(tag) = tag else {
        return Ok(if plain {
            resolve_plain(text)
        } else {
            Resolved::Str
        });
    };
    let Some(short) = tag.strip_prefix(TAG_PREFIX) else {
        // A local or unknown tag (`!Ref`, `!`): go-yaml keeps the text.
        return Ok(Resolved::Str);
    };
    let r = resolve_plain(text);
    let rtag = match r {
        Resolved::Null => "null",
        Resolved::Bool(_) => "bool",
        Resolved::Int(_) | Resolved::Uint(_) => "int",
        Resolved::Float(_) => "float",
        Resolved::Str | Resolved::Binary => "str",
    };
    match short {
        "str" => Ok(Resolved::Str),
        "binary" => Ok(Resolved::Binary),
        // Timestamps stay strings (go-yaml v2 keeps them as text for interface{} targets).
        "timestamp" => Ok(Resolved::Str),
        "float" if rtag == "int" => Ok(Resolved::Float(match r {
            Resolved::Int(i) => i as f64,
            Resolved::Uint(u) => u as f64,
            _ => 0.0,
        })),
        "null" | "bool" | "int" | "float" if short == rtag => Ok(r),
        "null" | "bool" | "int" | "float" => {
            Err(format!("cannot decode a !!{rtag} value as a !!{short}"))
        }
        // `!!map`, `!!seq` on a scalar, or an unknown `!!x`: go-yaml keeps the text.
        _ => Ok(Resolved::Str),
    }
}

/// go-yaml v2 `resolve("", text)` for a plain scalar.
pub(crate) fn resolve_plain(text: &str) -> Resolved {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match text.as_bytes()[0] {
        b'.' => go_parse_float(text).map_or(Resolved::Str, Resolved::Float),
        b'0'..=b'9' | b'+' | b'-' => {
            let plain = text.replace('_', "");
            if let Some(r) = go_parse_int(&plain) {
                return r;
            }
            if is_yaml_float(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return Resolved::Float(f);
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: sign, `0x`/`0o`/`0b`/`0`
/// prefixes (underscores already removed).
fn go_parse_int(s: &str) -> Option<Resolved> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (digits, radix) = match lower.as_deref() {
        Some("0x") => (&body[2..], 16),
        Some("0o") => (&body[2..], 8),
        Some("0b") => (&body[2..], 2),
        _ if body.len() > 1 && body.starts_with('0') => (&body[1..], 8),
        _ => (body, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some(Resolved::Int((magnitude as i64).wrapping_neg()))
        } else {
            None
        }
    } else if let Ok(i) = i64::try_from(magnitude) {
        Some(Resolved::Int(i))
    } else {
        Some(Resolved::Uint(magnitude))
    }
}

/// Go's `strconv.ParseFloat(s, 64)` on the decimal forms go-yaml passes it: out-of-range
/// values are errors (as in Go), not infinities.
fn go_parse_float(s: &str) -> Option<f64> {
    let clean;
    let s = if s.contains('_') {
        // Go accepts `_` between digits.
        let b = s.as_bytes();
        let ok = b.iter().enumerate().all(|(i, &c)| {
            c != b'_'
                || (i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        if !ok {
            return None;
        }
        clean = s.replace('_', "");
        clean.as_str()
    } else {
        s
    };
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') || !is_yaml_float(s) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    } else {
        if !digits(&mut i) {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// The JSON value of a resolved scalar, as `json.Marshal` writes go-yaml's result.
fn scalar_value(r: Resolved, text: &str) -> Result<Value, String> {
    Ok(match r {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::from(i),
        Resolved::Uint(u) => Value::from(u),
        Resolved::Float(f) => json_float(f)?,
        Resolved::Str => Value::String(text.to_string()),
        Resolved::Binary => {
            let compact: String = text.split_whitespace().collect();
            let bytes = stackguard_common::secrets::decode_base64(&compact)
                .ok_or("!!binary value contains invalid base64 data")?;
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
    })
}

/// A float as Go's `json.Marshal` writes it and the API server reads it back: integral values
/// are integers; NaN and infinities cannot be written.
fn json_float(f: f64) -> Result<Value, String> {
    if !f.is_finite() {
        return Err(
            "a .nan or .inf value cannot be written as JSON (kubectl refuses the document)"
                .to_string(),
        );
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return Ok(Value::from(f as i64));
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return Ok(Value::from(f as u64));
        }
    }
    Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
}

/// A mapping key as `sigs.k8s.io/yaml` makes it a JSON key, from the value of a scalar that
/// does not resolve to a string (or of an aliased node).
fn key_of_value(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
            Err("a mapping key above 2^63-1 (kubectl refuses uint64 keys)".to_string())
        }
        Value::Number(n) => Ok(match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => go_float32_g(f),
            _ => n.to_string(),
        }),
        Value::Null => Err("a null mapping key (kubectl refuses it)".to_string()),
        _ => Err(COLLECTION_KEY.to_string()),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, as `sigs.k8s.io/yaml` writes float keys.
fn go_float32_g(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    let f32v = f as f32;
    // Rust writes the shortest digits that read back as the same f32.
    let sci = format!("{f32v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    // Go uses %e when the exponent is below -4 or at least 6 (the shortest form's precision).
    if !(-4..6).contains(&exp) {
        let rest = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{}{rest}e{esign}{:02}", &digits[..1], exp.abs());
    }
    if exp < 0 {
        return format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

// ---------------------------------------------------------------------------------------------
// Field paths → lines.

/// Field paths → lines for the documents `wanted` of a stream: `a.b[0].c` as rules write them.
/// Malformed documents are skipped as [`parse_stream`] skips them, so indices agree.
pub fn locate_paths(text: &str, wanted: &[usize]) -> HashMap<usize, HashMap<String, usize>> {
    locate_some(text, wanted, None)
}

/// [`locate_paths`], keeping only the paths in `only` (when given): what a few findings need
/// of a large document.
pub fn locate_some(
    text: &str,
    wanted: &[usize],
    only: Option<&HashSet<String>>,
) -> HashMap<usize, HashMap<String, usize>> {
    let mut loc = Locator {
        wanted,
        only,
        skip: 0,
        out: HashMap::new(),
        stack: Vec::new(),
        current: None,
    };
    drive(text, &mut loc);
    loc.out
}

/// `path` and the paths of its ancestors (`a.b[0].c` → `a.b[0].c`, `a.b[0]`, `a.b`, `a`): what
/// [`line_of`] may look up for it.
pub fn with_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let p = next?;
        next = p.rfind(['.', '[']).map(|cut| &p[..cut]);
        Some(p)
    })
}

enum LocFrame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct Locator<'a> {
    wanted: &'a [usize],
    only: Option<&'a HashSet<String>>,
    /// Depth inside a collection skipped (none of `only` goes through it).
    skip: usize,
    out: HashMap<usize, HashMap<String, usize>>,
    stack: Vec<LocFrame>,
    current: Option<HashMap<String, usize>>,
}

impl Locator<'_> {
    /// The path of the node that starts now (advancing the parent's position), or `None` when
    /// the node is a mapping key.
    fn child_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(LocFrame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(LocFrame::Map { path, key }) => key.take().map(|k| {
                if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                }
            }),
        }
    }

    fn record(&mut self, path: String, line: usize) {
        if self.only.is_some_and(|only| !only.contains(&path)) {
            return;
        }
        if let Some(cur) = self.current.as_mut() {
            cur.entry(path).or_insert(line);
        }
    }
}

impl Sink for Locator<'_> {
    fn start(&mut self, index: usize, _line: usize) -> Step {
        if self.wanted.iter().all(|&w| w < index) {
            return Step::Stop;
        }
        self.stack.clear();
        self.skip = 0;
        self.current = self.wanted.contains(&index).then(HashMap::new);
        Step::Go
    }

    fn end(&mut self, index: usize) {
        if let Some(map) = self.current.take() {
            self.out.insert(index, map);
        }
    }

    fn event(&mut self, ev: &Ev<'_>) -> Step {
        if self.current.is_none() {
            return Step::Go;
        }
        if self.skip > 0 {
            // Inside a collection no wanted path goes through.
            match ev.data {
                EventData::MappingStart { .. } | EventData::SequenceStart { .. } => self.skip += 1,
                EventData::MappingEnd | EventData::SequenceEnd => self.skip -= 1,
                _ => {}
            }
            return Step::Go;
        }
        match ev.data {
            EventData::MappingStart { .. } | EventData::SequenceStart { .. } => {
                // A collection as a mapping key has no path of its own.
                let path = self.child_path().unwrap_or_default();
                // `only` holds the ancestors of what it holds: nothing below is wanted.
                if !self.stack.is_empty() && self.only.is_some_and(|only| !only.contains(&path)) {
                    self.skip = 1;
                    return Step::Go;
                }
                self.record(path.clone(), ev.line);
                self.stack
                    .push(if matches!(ev.data, EventData::MappingStart { .. }) {
                        LocFrame::Map { path, key: None }
                    } else {
                        LocFrame::Seq { path, next: 0 }
                    });
            }
            EventData::MappingEnd | EventData::SequenceEnd => {
                self.stack.pop();
            }
            EventData::Scalar { value, .. } => match self.child_path() {
                Some(p) => self.record(p, ev.line),
                None => {
                    // A key: record its line for the value's path, and remember it.
                    if let Some(LocFrame::Map { path, key }) = self.stack.last_mut() {
                        let full = if path.is_empty() {
                            value.clone()
                        } else {
                            format!("{path}.{value}")
                        };
                        *key = Some(value.clone());
                        self.record(full, ev.line);
                    }
                }
            },
            EventData::Alias { .. } => {
                if let Some(p) = self.child_path() {
                    self.record(p, ev.line);
                } else if let Some(LocFrame::Map { key, .. }) = self.stack.last_mut() {
                    *key = Some(String::new());
                }
            }
            _ => {}
        }
        Step::Go
    }
}

/// The line of `path` in a located document: the field itself, else its nearest ancestor.
pub fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    with_ancestors(path).find_map(|p| lines.get(p).copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_values_and_lines() {
        let s = parse_stream(
            "# c\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n\n---\nkind: x\nm: 010\nb: yes\nq: \"yes\"\nf: 1.5\nh: 0x1F\nz: ~\n",
        );
        assert!(s.errors.is_empty());
        let docs: Vec<_> = s.documents.iter().filter(|d| !d.value.is_null()).collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[1].line, 8);
        assert_eq!(docs[1].index, 2);
        assert_eq!(
            docs[1].value,
            json!({"kind": "x", "m": 8, "b": true, "q": "yes", "f": 1.5, "h": 31, "z": null})
        );
    }

    /// What [`map_parts`] gives for `text` cut at every `---` line (into as many parts as it
    /// has, and into two at each), against one reading of the whole text.
    fn assert_parts_read_as_the_whole(text: &str, name: &str) {
        let mut whole = Vec::new();
        let errors = each_document(text, &LIMITS, false, &mut |d| {
            whole.push((d.index, d.value))
        });
        let whole = (whole, errors);
        if split(text, &LIMITS, 2, 1).len() < 2 {
            return;
        }
        let mut at = vec![0];
        let mut pos = 0;
        for line in text.split_inclusive('\n') {
            if pos > 0 && is_document_marker(line) {
                at.push(pos);
            }
            pos += line.len();
        }
        at.push(text.len());
        let all: Vec<_> = at.windows(2).map(|w| w[0]..w[1]).collect();
        let mut cuts: Vec<Vec<std::ops::Range<usize>>> = vec![all.clone()];
        // Two parts, cut at up to 8 of the lines.
        let step = all.len().div_ceil(8);
        for w in all.windows(2).step_by(step) {
            cuts.push(vec![0..w[0].end, w[1].start..text.len()]);
        }
        for parts in cuts {
            let got = map_parts(text, &LIMITS, parts.clone(), &|v| v.clone());
            assert_eq!(got, whole, "{name}: parts {parts:?}");
        }
    }

    #[test]
    fn a_text_cut_at_document_lines_reads_as_the_whole() {
        let tricky = [
            "a: 1\n---\nb: 2\n",
            "--- |\n  text\n---\nb: 2\n...\n---\nc: 3\n",
            // A quoted scalar, a flow collection and a plain scalar running into `---`.
            "a: \"open\n---\nb: 2\n",
            // Found by fuzzing: a quoted scalar ends at `---` ("unexpected document indicator"),
            // not at the end of a part ("unexpected end of stream").
            "\"open\n  more\n\n---\nb: 2\n---\nc: 3\n",
            "a: [1,\n---\nb: 2\n",
            "a: {x: 1,\n---\n- b\n",
            "a: plain\n  more\n---\nb: 2\n",
            "key: |\n  x\n---\n  y\n",
            "a: &x [1, 2]\n---\nb: *x\n---\nc: 1\n",
            "---\n---\n\n---\n# only a comment\n---\na: 1",
            "a: b: c\n---\nx: 1\n---\ny: [\n",
            "a: 1\r\n---\r\nb: 2\r\n---\tc: 3\n",
            "\u{feff}a: 1\n---\n\u{feff}--- b\n---\nc: 1\n",
        ];
        for (i, text) in tricky.iter().enumerate() {
            assert_parts_read_as_the_whole(text, &format!("tricky[{i}]"));
        }
        // Directives stay with their document: such a text is never cut.
        assert_eq!(
            split("a: 1\n---\nb\n...\n%YAML 1.1\n---\nc\n", &LIMITS, 4, 1).len(),
            1
        );
        // Found by fuzzing: libyaml refuses a control character before reading the documents
        // of the buffer it is in, so a text with one is read whole.
        let control = "a: 1\n---\nb: 2\n---\nc: \u{1}\n";
        assert_eq!(split(control, &LIMITS, 4, 1).len(), 1);
        let mut read = 0;
        let errors = each_document(control, &LIMITS, false, &mut |_| read += 1);
        assert_eq!((read, errors.len()), (0, 1), "{errors:?}");
    }

    /// Documents on one line of JSON are read without libyaml, as libyaml reads them.
    #[test]
    fn one_line_json_documents_read_as_libyaml_reads_them() {
        let taken = [
            "{\"a\":1}",
            "---\n{\"a\":1}\n---\n{\"b\": [1, -2.5e+3, true, false, null, \"x\"]}\n",
            "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{}}\n\n# end\n",
            "---\n{ \"a\" : { } , \"b\" : [ ] }  \n  \n---\n",
            // Escapes, and characters past ASCII (columns count characters).
            "---\n{\"é\":\"ü\\n\\t\\\"\\\\\\/\\u00e9\\u0000\\b\\f\\r\",\"z\":\"😀\"}\n",
            // Values that resolve as YAML 1.1 does, not as JSON: the events are the same.
            "---\n{\"a\":010,\"b\":1e3,\"c\":\"yes\",\"d\":-0}\n",
            // Over the limits of the builder (depth, scalar size, keys): refused alike.
            &format!(
                "---\n{}1{}\n---\n{{\"a\":1}}\n",
                "{\"a\":[".repeat(70),
                "]}".repeat(70)
            ),
            "---\n{\"a\":1,\"a\":2}\n---\n{\"a\":1}\n",
        ];
        let left = [
            // A key too long to be a simple key: libyaml reads it otherwise.
            &format!("---\n{{\"{}\":1}}\n", "k".repeat(1100)),
            "---\n{\"a\":\"\\ud83d\\ude00\"}\n",
            "---\n{\"a\":\"x\ty\"}\n",
            "---\n{\"a\":\"x\u{2028}y\"}\n",
            "---\n{\"a\":[1,]}\n",
            "---\n{\"a\":1}\nb: 2\n",
            "---\n{\"a\":1} # c\n",
            "---\n{\"a\":\"open\n---\n{\"b\":1}\n",
            "---\n{a: 1}\n",
            "---\n{\"a\":1x}\n",
            "---\n{\"a\":1}\r\n---\r\n{\"b\":1}\r\n",
            "---\n{\"a\":&x 1,\"b\":*x}\n",
        ];
        for (name, texts, read) in [("taken", &taken[..], true), ("left", &left[..], false)] {
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(
                    json_line::document(text, 0).is_some(),
                    read,
                    "{name}[{i}]: read by json_line"
                );
                json_line_agrees(text, &LIMITS).unwrap_or_else(|e| panic!("{name}[{i}]: {e}"));
            }
        }
        // Found by fuzzing: libyaml ends the first document at the `---` of `}---` (line 3),
        // which is no `---` line: libyaml reads on, json_line does not take over there.
        let found = r#"---
{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"guestbook-ui"},"spec":{"replicas":1,"revisionHistoryLimit":3,"selector":{"matchLabels":{"app":"guestbook-ui"}},"t'''''''''''''''''''''''''''''''''''''''''''''''''''''''''''emplate":{"metadata":{"labels":{"app":"guestbook-ui"}},"spec":{"containers":[{"image":"quay.io/argoprojlabs/argocd-e2e-container:0.2","name":"guestbook-ui","ports":[{"containerPort":80}]}]}}}
}---
{"apiVersion":"v1","kind":"Service","metadata":{"name":"guestbook-ui"},"spec":{"ports":[{"port":80,"targetPort":80}],"selector":{"app":"guestbook-ui"}}}
---
{"apiVersion":"v1","data":{"apiVersion":"cluster.open-cluster-management.io/v1beta1","kind":"placementceidsions","matchKey":"clusterName","statusListKey":"decisions"},"kind":"ConfigMap","metadata":{"name":"ocm-placement"}}
"#;
        json_line_agrees(found, &LIMITS).unwrap();
        // Mixed streams: libyaml hands over to json_line at a `---` line and back.
        let mixed = "a: 1\n---\n{\"b\":2}\n---\nc: [3\n---\n{\"d\":4}\n---\n{\"e\":\"\\ud800\"}\n---\n{\"f\":6}\n...\n---\ng: 7\n";
        json_line_agrees(mixed, &LIMITS).unwrap();
        let small = Limits {
            depth: 2,
            scalar_bytes: 3,
            ..LIMITS
        };
        json_line_agrees(mixed, &small).unwrap();
        // Strings with characters of two to four bytes before a quote, an escape and the end
        // of a line (columns count characters), and the ones libyaml reads otherwise inside a
        // quoted scalar (NEL, the line and paragraph separators, a byte-order mark).
        for odd in ["", "\u{85}", "\u{2028}", "\u{2029}", "\u{FEFF}"] {
            let text = format!(
                "---\n{{\"é\":\"ü–€😀{odd}\\n\",\"k\":[\"ß\",\"€\\\"{odd}\"]}}\n---\n{{\"😀\":1}}\n"
            );
            json_line_agrees(&text, &LIMITS).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        for text in taken {
            json_line_agrees(text, &small).unwrap();
        }
        // Not restartable (a directive, a control character): libyaml reads it all.
        for text in [
            "%YAML 1.1\n---\n{\"a\":1}\n",
            "---\n{\"a\":1}\n---\n{\"b\":\"\u{1}\"}\n",
        ] {
            json_line_agrees(text, &LIMITS).unwrap();
        }
    }

    /// Every file of `../shared/corpus` reads the same cut at its `---` lines, and with
    /// [`json_line`] as with libyaml alone, also with its documents written as JSON lines.
    #[test]
    fn corpus_files_cut_at_document_lines_read_as_the_whole() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let mut stack = vec![corpus.clone()];
        let (mut cut, mut one_line) = (0, 0);
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(text) = std::fs::read_to_string(&path) {
                    if split(&text, &LIMITS, 2, 1).len() > 1 {
                        cut += 1;
                    }
                    assert_parts_read_as_the_whole(&text, &path.display().to_string());
                    json_line_agrees(&text, &LIMITS)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    // Its documents written as one line of JSON each, as `jq -c` writes them.
                    let lines: String = parse_stream(&text)
                        .documents
                        .iter()
                        .filter(|d| d.value.is_object())
                        .map(|d| format!("---\n{}\n", d.value))
                        .collect();
                    one_line += lines
                        .match_indices("---\n")
                        .filter(|&(at, _)| json_line::document(&lines, at).is_some())
                        .count();
                    json_line_agrees(&lines, &LIMITS)
                        .unwrap_or_else(|e| panic!("{} as JSON lines: {e}", path.display()));
                }
            }
        }
        assert!(
            cut > 100,
            "only {cut} corpus files have `---` lines to cut at"
        );
        assert!(one_line > 4000, "json_line read only {one_line} documents");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let s = parse_stream("base: &b {x: 1, w: 2}\nother:\n  <<: *b\n  w: 3\nref: *b\n");
        assert_eq!(
            s.documents[0].value,
            json!({"base": {"x": 1, "w": 2}, "other": {"x": 1, "w": 3}, "ref": {"x": 1, "w": 2}})
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
    fn scalars_and_keys_resolve_as_kubectl_reads_them() {
        let v = value(
            "a: y\nb: N\nc: on\nd: 0o17\ne: 08\nf: 1e3\ng: 1_000\nh: +0x10\ni: 1.0\n\
             j: 99999999999999999999\nk: 18446744073709551615\nl: -9223372036854775808\nm: .5\n\
             n2: 2020-01-02\no: !!str 10\np: !!float 3\nq: \"1\"\nr: |\n  x\nt: !Ref x\n\
             u: 0b101\nv: 1e400\nw: 0x\nx1: -0\ny: 1\noff: 2\n1.5: 3\n0x10: 4\n1e7: 5\n'on': 6\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "a": true, "b": false, "c": true, "d": 15, "e": 8, "f": 1000, "g": 1000, "h": 16,
                "i": 1, "j": 1e20, "k": 18446744073709551615u64, "l": i64::MIN, "m": 0.5,
                "n2": "2020-01-02", "o": "10", "p": 3, "q": "1", "r": "x\n", "t": "x", "u": 5,
                "v": "1e400", "w": "0x", "x1": 0, "true": 1, "false": 2, "1.5": 3, "16": 4,
                "1e+07": 5, "on": 6,
            })
        );
    }

    #[test]
    fn merges_apply_in_place_as_in_go_yaml() {
        let v =
            value("a: &a {x: 1, p: 1}\nb: &b {x: 2, z: 2}\nc:\n  x: 0\n  <<: [*a, *b]\n  w: 3\n")
                .unwrap();
        // The merge overrides `x: 0` written before it; in a list, the first map wins.
        assert_eq!(v["c"], json!({"x": 1, "p": 1, "z": 2, "w": 3}));
    }

    #[test]
    fn multi_line_quoted_scalars_at_the_parent_indentation() {
        let text = "status:\n  conditions:\n    - message: 'applied: {\"a\":\n      1}'\n      type: Ready\n    - message: \"two\n    lines\"\n";
        let v = value(text).unwrap();
        assert_eq!(
            v,
            json!({"status": {"conditions": [
                {"message": "applied: {\"a\": 1}", "type": "Ready"},
                {"message": "two lines"},
            ]}})
        );
    }

    #[test]
    fn documents_kubectl_refuses_are_reported_and_the_others_read() {
        let s = parse_stream(
            "a: *x\n---\nb: &b [*b]\n---\n~: 1\n---\nc: .inf\n---\n[a]: 1\n---\nm: {<<: [1]}\n---\nk: !!int x\n---\nok: 1\n",
        );
        let messages: Vec<&str> = s.errors.iter().map(|e| e.message.as_str()).collect();
        let lines: Vec<usize> = s.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 5, 7, 9, 11, 13], "{messages:?}");
        for (m, want) in messages.iter().zip([
            "document 1: unknown anchor 'x' referenced",
            "document 2: anchor 'b' value contains itself",
            "document 3: a null mapping key",
            "document 4: a .nan or .inf value",
            "document 5: a mapping or sequence used as a mapping key",
            "document 6: map merge requires map or sequence of maps",
            "document 7: cannot decode a !!str value as a !!int",
        ]) {
            assert!(m.starts_with(want), "{m}");
            assert!(!s.errors.iter().any(|e| e.limit));
        }
        assert_eq!(s.documents.len(), 1);
        assert_eq!((s.documents[0].index, s.documents[0].line), (7, 15));
    }

    /// Small limits, so that each is reached with a few lines.
    const SMALL: Limits = Limits {
        documents: 4,
        depth: 3,
        scalar_bytes: 8,
        document_bytes: 2000,
        stream_bytes: 6000,
    };

    #[test]
    fn limits_refuse_the_document_and_the_others_are_read() {
        let s = parse_stream_with(
            &format!(
                "a: [[[[1]]]]\n---\nb: 123456789\n---\nc: [{}]\n---\nok: 1\n",
                vec!["1"; 30].join(", ")
            ),
            &SMALL,
        );
        let got: Vec<(usize, &str)> = s
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    "document 1 not read: nesting deeper than 3 levels of mappings and sequences"
                ),
                (
                    3,
                    "document 2 not read: a scalar of 9 bytes exceeds the limit of 8 bytes (the API server accepts no object over 3 MiB)"
                ),
                (
                    5,
                    "document 3 not read: its data would take more than 2000 bytes of memory"
                ),
            ]
        );
        assert!(s.errors.iter().all(|e| e.limit));
        assert_eq!(s.documents.len(), 1);
        assert_eq!(s.documents[0].value, json!({"ok": 1}));
        assert_eq!(s.documents[0].index, 3);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n---\nok: 1\n";
        let s = parse_stream(bomb);
        assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
        assert_eq!(s.errors[0].line, 4);
        assert!(
            s.errors[0]
                .message
                .starts_with("document 1 not read: excessive aliasing"),
            "{:?}",
            s.errors
        );
        assert_eq!(s.documents[0].value, json!({"ok": 1}));
        // Within the absolute cap, aliases that go-yaml accepts are expanded.
        let s = parse_stream_with("a: &a [1, 2, 3]\nb: [*a, *a]\n", &SMALL);
        assert_eq!(
            s.documents[0].value,
            json!({"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]})
        );
        let s = parse_stream_with("a: &a [1, 2, 3, 4, 5]\nb: [*a, *a, *a]\n", &SMALL);
        assert!(
            s.errors[0]
                .message
                .contains("with its aliases expanded, its data would take more than 2000 bytes"),
            "{:?}",
            s.errors
        );
    }

    #[test]
    fn stream_limits_stop_the_rest_of_the_file() {
        let s = parse_stream_with(
            "a: 1\n---\nb: 2\n---\nc: 3\n---\nd: 4\n---\ne: 5\n---\nf: 6\n",
            &SMALL,
        );
        assert_eq!(s.documents.len(), 4);
        assert_eq!(s.errors.len(), 1);
        // The line of the `---` that starts the document.
        assert_eq!(s.errors[0].line, 8);
        assert_eq!(
            s.errors[0].message,
            "document 5 not read: more than 4 documents in one file: this one and the rest are not read"
        );
        let many = "x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]\n---\n".repeat(5);
        let s = parse_stream_with(&many, &SMALL);
        assert_eq!(s.documents.len(), 3);
        assert!(
            s.errors[0]
                .message
                .contains("the file's data would take more than 6000 bytes of memory"),
            "{:?}",
            s.errors
        );
    }

    #[test]
    fn lines_count_newlines_only() {
        // U+2028 and NEL are line breaks to libyaml, not to editors, grep or SARIF viewers.
        let text = "a: \"x\u{2028}y\u{85}z\"\nb:\n  c: 1\n";
        let loc = locate_paths(text, &[0]);
        assert_eq!(line_of(&loc[&0], "b.c"), Some(3));
    }

    /// No input makes the parser panic (natively a panic would be caught and reported as
    /// "the YAML parser failed"; in the browser build it would abort).
    fn no_panic(text: &str) {
        let s = parse_stream(text);
        assert!(
            !s.errors.iter().any(|e| e.message.contains("parser failed")),
            "{text:?}: {:?}",
            s.errors
        );
        let _ = locate_paths(text, &[0, 1]);
        let _ = root_tag(text);
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
            "--- |\n  x\n--- >\n",
            "a: *nope",
            "a: |\n  no final newline",
            "a: >-\n  x\n\n",
            "'unterminated",
            "\"esc \\",
        ] {
            no_panic(text);
        }
    }

    #[test]
    fn every_prefix_of_a_rich_document_reads_or_fails_cleanly() {
        let text = "%YAML 1.1\n%TAG !e! tag:example.com,2000:\n--- !e!doc\n# comment\n\
            a: &x {b: [1, 'two', \"th\\u00e9ree\\n\"], ? c : d}\nlit: |+\n  line\n\n\
            fold: >2-\n   indented\n  text\nplain: multi\n  line scalar\nseq:\n- *x\n- - nested\n\
              - {<<: *x, e: f}\n\"q\": 'it''s'\n...\n---\r\nwin: \"crlf\"\r\nempty:\r\n";
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            no_panic(&text[..end]);
        }
    }
}
