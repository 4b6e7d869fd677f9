//! Documents written as one line of JSON (`---`, then `{…}` on the next line: what `jq -c`,
//! `kubectl … -o json` piped per object, and many generators write), read without libyaml.
//!
//! libyaml reads such a line as a flow mapping; this gives the very events libyaml gives for it
//! (data, byte offsets, columns), several times faster. It takes a plain subset only: strings
//! with JSON's escapes, numbers, `true`, `false`, `null`, spaces between tokens. Anything else,
//! and anything libyaml could read otherwise (a line break inside a string, a mapping key too
//! long to be a simple key, a surrogate escape), is left to libyaml: [`document`] returns
//! `None`. The unit tests of `yaml` and the `yaml` fuzz target compare both readings.

use super::events::{Event, EventData, Mark, ScalarStyle};

/// Whether a `---` line starts at `at` (nothing after the marker) and is followed by a line
/// starting with `{`: a document [`document`] may read. Cheap: [`document`] does the reading.
pub(crate) fn candidate(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    // Found by fuzzing: libyaml may end a document at a `---` inside a line (`}---`).
    (at == 0 || bytes.get(at - 1) == Some(&b'\n'))
        && bytes[at.min(text.len())..].starts_with(b"---\n{")
}

/// A document read from `at`: where its content starts (the `---` line or the `{`), and where
/// the next document starts (a `---` line, or the end of `text`).
pub(crate) struct Read {
    pub start: usize,
    pub next: usize,
}

/// Whether the document at `at` (a `---` line, see [`candidate`], or the `{` that starts a
/// stream without one) is read here: `None` when libyaml must read it. After its line only blank
/// and comment lines may come before the next `---` line or the end. Nothing is kept: [`events`]
/// then gives its events one at a time (a document may have millions).
pub(crate) fn document(text: &str, at: usize) -> Option<Read> {
    let line = content(text, at)?;
    let mut scan = Scanner::new(text, line, None);
    let end = scan.line()?;
    let next = after_line(text, end)?;
    Some(Read { start: at, next })
}

/// The node events of a document [`document`] reads (without the document start and end), each
/// given to `each` until it returns false.
pub(crate) fn events(text: &str, read: &Read, each: &mut dyn FnMut(Event) -> bool) {
    if let Some(line) = content(text, read.start) {
        let _ = Scanner::new(text, line, Some(each)).line();
    }
}

/// Where the `{` line of a document at `at` starts.
fn content(text: &str, at: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let line = if bytes[at..].starts_with(b"---\n") {
        at + 4
    } else {
        at
    };
    (bytes.get(line) == Some(&b'{')).then_some(line)
}

/// Past the line ending at `end` (its `\n` or the end of the text), skip blank and comment
/// lines: the start of the next `---` line or the end of the text; `None` when something else
/// comes.
fn after_line(text: &str, end: usize) -> Option<usize> {
    let mut pos = end;
    while pos < text.len() {
        // At a `\n`: the next line starts after it.
        pos += 1;
        let rest = &text[pos..];
        let len = rest.find('\n').unwrap_or(rest.len());
        let line = &rest[..len];
        if super::is_document_marker(line) {
            return Some(pos);
        }
        if !matches!(
            line.trim_start_matches(' ').bytes().next(),
            None | Some(b'#')
        ) {
            return None;
        }
        pos += len;
    }
    Some(text.len())
}

/// What comes next in the line.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Value,
    KeyOrEnd,
    Key,
    Colon,
    ItemOrEnd,
    CommaOrEnd,
}

struct Scanner<'t, 'e> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    /// Column of `pos`, in characters (as libyaml counts).
    column: usize,
    /// Where the events go (`None`: only check that the line is read here).
    emit: Option<&'e mut dyn FnMut(Event) -> bool>,
    /// The receiver wants no more events.
    stopped: bool,
}

/// A simple key must end (its `:`) within 1024 characters of its start, or libyaml forgets it;
/// a longer key is left to libyaml (bytes count at least as many as characters).
const SIMPLE_KEY_BYTES: usize = 1000;

impl<'t, 'e> Scanner<'t, 'e> {
    fn new(text: &'t str, pos: usize, emit: Option<&'e mut dyn FnMut(Event) -> bool>) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos,
            column: 0,
            emit,
            stopped: false,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            index: self.pos,
            column: self.column,
        }
    }

    /// Move over `n` ASCII bytes.
    fn skip(&mut self, n: usize) {
        self.pos += n;
        self.column += n;
    }

    fn spaces(&mut self) {
        while self.bytes.get(self.pos) == Some(&b' ') {
            self.skip(1);
        }
    }

    fn push(&mut self, data: EventData, start: Mark) {
        let end = self.mark();
        if let Some(emit) = &mut self.emit
            && !emit(Event { data, start, end })
        {
            self.stopped = true;
        }
    }

    /// One indicator byte as its own event.
    fn indicator(&mut self, data: EventData) {
        let start = self.mark();
        self.skip(1);
        self.push(data, start);
    }

    /// The whole line: one mapping, then spaces; returns where the line ends.
    fn line(&mut self) -> Option<usize> {
        // The containers open, innermost last (`true`: a mapping).
        let mut open: Vec<bool> = Vec::new();
        let mut want = Want::Value;
        let mut key_start = 0;
        loop {
            if self.stopped {
                return Some(self.pos);
            }
            self.spaces();
            let b = *self.bytes.get(self.pos)?;
            want = match want {
                Want::Value => self.value(&mut open)?,
                Want::KeyOrEnd | Want::Key if b == b'"' => {
                    key_start = self.pos;
                    self.string()?;
                    Want::Colon
                }
                Want::KeyOrEnd | Want::ItemOrEnd if b == b'}' || b == b']' => {
                    self.close(&mut open, b)?
                }
                Want::ItemOrEnd => self.value(&mut open)?,
                Want::Colon if b == b':' && self.pos - key_start <= SIMPLE_KEY_BYTES => {
                    self.skip(1);
                    Want::Value
                }
                Want::CommaOrEnd if b == b',' => {
                    self.skip(1);
                    if *open.last()? {
                        Want::Key
                    } else {
                        Want::Value
                    }
                }
                Want::CommaOrEnd if b == b'}' || b == b']' => self.close(&mut open, b)?,
                _ => return None,
            };
            if open.is_empty() {
                self.spaces();
                return match self.bytes.get(self.pos) {
                    None | Some(b'\n') => Some(self.pos),
                    _ => None,
                };
            }
        }
    }

    /// A value: a container opens, or a scalar is read.
    fn value(&mut self, open: &mut Vec<bool>) -> Option<Want> {
        match self.bytes.get(self.pos)? {
            b'{' => {
                open.push(true);
                self.indicator(EventData::MappingStart {
                    anchor: None,
                    tag: None,
                    flow: true,
                });
                Some(Want::KeyOrEnd)
            }
            b'[' => {
                open.push(false);
                self.indicator(EventData::SequenceStart {
                    anchor: None,
                    tag: None,
                    flow: true,
                });
                Some(Want::ItemOrEnd)
            }
            b'"' => {
                self.string()?;
                Some(Want::CommaOrEnd)
            }
            _ => {
                self.plain()?;
                Some(Want::CommaOrEnd)
            }
        }
    }

    /// The innermost container closes with `b`.
    fn close(&mut self, open: &mut Vec<bool>, b: u8) -> Option<Want> {
        let map = open.pop()?;
        if map != (b == b'}') {
            return None;
        }
        self.indicator(if map {
            EventData::MappingEnd
        } else {
            EventData::SequenceEnd
        });
        Some(Want::CommaOrEnd)
    }

    /// A JSON number, `true`, `false` or `null`, ended by a space, `,`, `]` or `}`: a plain
    /// scalar of that text.
    fn plain(&mut self) -> Option<()> {
        let rest = &self.bytes[self.pos..];
        let len = rest
            .iter()
            .position(|b| matches!(b, b' ' | b',' | b']' | b'}' | b'\n'))
            .unwrap_or(rest.len());
        let token = &rest[..len];
        if !(matches!(token, b"true" | b"false" | b"null") || is_number(token)) {
            return None;
        }
        let start = self.mark();
        let value = match self.emit {
            Some(_) => self.text[self.pos..self.pos + len].to_string(),
            None => String::new(),
        };
        self.skip(len);
        self.push(
            EventData::Scalar {
                anchor: None,
                tag: None,
                value,
                style: ScalarStyle::Plain,
            },
            start,
        );
        Some(())
    }

    /// A double-quoted string on this line, with JSON's escapes.
    fn string(&mut self) -> Option<()> {
        let start = self.mark();
        self.skip(1);
        let mut value = String::new();
        loop {
            let rest = &self.text[self.pos..];
            // The run up to the next quote, escape or character libyaml reads otherwise (a byte
            // at a time: a non-ASCII character is decoded only where one starts), and the
            // number of characters in it.
            let (mut run, mut chars) = (0, 0);
            loop {
                let b = *rest.as_bytes().get(run)?;
                if b.is_ascii() {
                    if b == b'"' || b == b'\\' || b < b' ' {
                        break;
                    }
                    run += 1;
                } else {
                    let c = rest[run..].chars().next()?;
                    if matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}') {
                        break;
                    }
                    run += c.len_utf8();
                }
                chars += 1;
            }
            if self.emit.is_some() {
                value.push_str(&rest[..run]);
            }
            self.column += chars;
            self.pos += run;
            match self.bytes[self.pos] {
                b'"' => {
                    self.skip(1);
                    break;
                }
                b'\\' => {
                    let (c, len) = escape(&self.bytes[self.pos + 1..])?;
                    value.push(c);
                    self.skip(1 + len);
                }
                _ => return None,
            }
        }
        self.push(
            EventData::Scalar {
                anchor: None,
                tag: None,
                value,
                style: ScalarStyle::DoubleQuoted,
            },
            start,
        );
        Some(())
    }
}

/// A JSON escape after its `\`: the character, and how many bytes follow the `\`.
fn escape(after: &[u8]) -> Option<(char, usize)> {
    let c = match after.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hex = std::str::from_utf8(after.get(1..5)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            // Surrogates (a pair in JSON) are an error in libyaml: left to it.
            return Some((char::from_u32(u32::from_str_radix(hex, 16).ok()?)?, 5));
        }
        _ => return None,
    };
    Some((c, 1))
}

/// `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_number(t: &[u8]) -> bool {
    fn digits(t: &[u8]) -> (usize, &[u8]) {
        let n = t.iter().take_while(|b| b.is_ascii_digit()).count();
        (n, &t[n..])
    }
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let (n, mut t) = digits(t);
    if n == 0 {
        return false;
    }
    if let Some(rest) = t.strip_prefix(b".") {
        let (n, r) = digits(rest);
        if n == 0 {
            return false;
        }
        t = r;
    }
    if let Some(rest) = t.strip_prefix(b"e").or_else(|| t.strip_prefix(b"E")) {
        let rest = rest
            .strip_prefix(b"+")
            .or_else(|| rest.strip_prefix(b"-"))
            .unwrap_or(rest);
        let (n, r) = digits(rest);
        if n == 0 {
            return false;
        }
        t = r;
    }
    t.is_empty()
}
