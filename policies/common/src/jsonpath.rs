//! JSONPath (RFC 9535) for pointing at fields: the root `$`, child segments `.name`, `.*`,
//! `['name']`, `["name"]`, `[*]`, `[index]` (negative counts from the end),
//! `[start:end:step]` slices and comma lists of those, and descendant segments `..` with any of
//! them. Results carry their RFC 9535 normalized path (`$['spec']['containers'][0]`).
//!
//! Filter selectors (`[?…]`) and function extensions are not supported; [`Query::parse`] says
//! so. The semantics of the supported forms are checked against `jsonpath-rust` in the tests of
//! `no-plaintext-secrets` (kept out of the modules for size).

use serde_json::Value;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Child(Vec<Selector>),
    Descendant(Vec<Selector>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>, i64),
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at character {} of {:?}", self.pos + 1, self.text)
    }

    fn shorthand_name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let first = self.pos == start;
            let ok = c == '_'
                || c.is_ascii_alphabetic()
                || !c.is_ascii()
                || (!first && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a member name"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn quoted(&mut self, quote: char) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match c {
                c if c == quote => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        '/' | '\\' | '\'' | '"' => out.push(e),
                        'u' => {
                            let hex: String = self.chars.iter().skip(self.pos).take(4).collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == 4)
                                .ok_or_else(|| self.error("bad \\u escape"))?;
                            self.pos += 4;
                            out.push(
                                char::from_u32(code).ok_or_else(|| self.error("bad \\u escape"))?,
                            );
                        }
                        _ => return Err(self.error("unknown escape")),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        let start = self.pos;
        self.eat('-');
        while matches!(self.peek(), Some('0'..='9')) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        if text.is_empty() {
            return Ok(None);
        }
        let bad_zero = text.len() > 1 && (text.starts_with('0') || text.starts_with("-0"));
        match text.parse::<i64>() {
            Ok(n) if !bad_zero => Ok(Some(n)),
            _ => Err(self.error("invalid integer")),
        }
    }

    fn selector(&mut self) -> Result<Selector, String> {
        self.skip_blank();
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                Ok(Selector::Name(self.quoted(q)?))
            }
            Some('*') => {
                self.pos += 1;
                Ok(Selector::Wildcard)
            }
            Some('?') => Err(self.error("filter selectors (?…) are not supported")),
            _ => {
                let start = self.int()?;
                self.skip_blank();
                if !self.eat(':') {
                    return start
                        .map(Selector::Index)
                        .ok_or_else(|| self.error("expected a selector"));
                }
                self.skip_blank();
                let end = self.int()?;
                self.skip_blank();
                let step = if self.eat(':') {
                    self.skip_blank();
                    self.int()?.unwrap_or(1)
                } else {
                    1
                };
                Ok(Selector::Slice(start, end, step))
            }
        }
    }

    fn bracketed(&mut self) -> Result<Vec<Selector>, String> {
        let mut list = vec![self.selector()?];
        loop {
            self.skip_blank();
            if self.eat(']') {
                return Ok(list);
            }
            if !self.eat(',') {
                return Err(self.error("expected ',' or ']'"));
            }
            list.push(self.selector()?);
        }
    }
}

impl Query {
    /// Parse a query; the error names the position and the unsupported or malformed part.
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
            text,
        };
        if !p.eat('$') {
            return Err(p.error("a query starts with $"));
        }
        let mut segments = Vec::new();
        loop {
            p.skip_blank();
            let Some(c) = p.peek() else { break };
            let descendant = c == '.' && p.chars.get(p.pos + 1) == Some(&'.');
            if descendant {
                p.pos += 2;
                let selectors = if p.eat('[') {
                    p.bracketed()?
                } else if p.eat('*') {
                    vec![Selector::Wildcard]
                } else {
                    vec![Selector::Name(p.shorthand_name()?)]
                };
                segments.push(Segment::Descendant(selectors));
            } else if p.eat('.') {
                let selectors = if p.eat('*') {
                    vec![Selector::Wildcard]
                } else {
                    vec![Selector::Name(p.shorthand_name()?)]
                };
                segments.push(Segment::Child(selectors));
            } else if p.eat('[') {
                segments.push(Segment::Child(p.bracketed()?));
            } else {
                return Err(p.error("unexpected character"));
            }
        }
        Ok(Query { segments })
    }

    /// Every node the query selects, in document order, with its normalized path. `Err` when
    /// the node list would pass [`MAX_NODES`] nodes or [`MAX_PATH_BYTES`] of paths (descendant
    /// segments multiply: `$..*..*..*` over a large object).
    pub fn select<'a>(&self, root: &'a Value) -> Result<Vec<(String, &'a Value)>, String> {
        let mut nodes = vec![("$".to_string(), root)];
        for segment in &self.segments {
            let mut out = Out {
                nodes: Vec::new(),
                bytes: 0,
            };
            for (path, node) in &nodes {
                match segment {
                    Segment::Child(sel) => apply(sel, path, node, &mut out),
                    Segment::Descendant(sel) => descend(sel, path, node, &mut out),
                }
                .map_err(|()| {
                    format!(
                        "the query selects more than {MAX_NODES} nodes or {} MiB of paths",
                        MAX_PATH_BYTES >> 20
                    )
                })?;
            }
            nodes = out.nodes;
        }
        Ok(nodes)
    }
}

/// At most this many nodes in a node list.
pub const MAX_NODES: usize = 100_000;
/// At most this many bytes of normalized paths in a node list.
pub const MAX_PATH_BYTES: usize = 16 << 20;

/// A node list under construction, within the bounds.
struct Out<'a> {
    nodes: Vec<(String, &'a Value)>,
    bytes: usize,
}

impl<'a> Out<'a> {
    fn push(&mut self, path: String, node: &'a Value) -> Result<(), ()> {
        self.bytes += path.len();
        if self.nodes.len() >= MAX_NODES || self.bytes > MAX_PATH_BYTES {
            return Err(());
        }
        self.nodes.push((path, node));
        Ok(())
    }
}

fn descend<'a>(sel: &[Selector], path: &str, node: &'a Value, out: &mut Out<'a>) -> Result<(), ()> {
    apply(sel, path, node, out)?;
    match node {
        Value::Object(m) => {
            for (k, v) in m {
                descend(sel, &name_path(path, k), v, out)?;
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                descend(sel, &format!("{path}[{i}]"), v, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn name_path(path: &str, name: &str) -> String {
    let mut out = String::with_capacity(path.len() + name.len() + 4);
    out.push_str(path);
    out.push_str("['");
    for c in name.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push_str("']");
    out
}

fn apply<'a>(sel: &[Selector], path: &str, node: &'a Value, out: &mut Out<'a>) -> Result<(), ()> {
    for s in sel {
        match (s, node) {
            (Selector::Name(n), Value::Object(m)) => {
                if let Some(v) = m.get(n) {
                    out.push(name_path(path, n), v)?;
                }
            }
            (Selector::Wildcard, Value::Object(m)) => {
                for (k, v) in m {
                    out.push(name_path(path, k), v)?;
                }
            }
            (Selector::Wildcard, Value::Array(a)) => {
                for (i, v) in a.iter().enumerate() {
                    out.push(format!("{path}[{i}]"), v)?;
                }
            }
            (Selector::Index(i), Value::Array(a)) => {
                let len = a.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&idx) {
                    out.push(format!("{path}[{idx}]"), &a[idx as usize])?;
                }
            }
            (Selector::Slice(start, end, step), Value::Array(a)) => {
                for idx in slice_indices(a.len() as i64, *start, *end, *step) {
                    out.push(format!("{path}[{idx}]"), &a[idx as usize])?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// RFC 9535 section 2.3.4.2.2: slice bounds normalised and clamped, any step.
fn slice_indices(len: i64, start: Option<i64>, end: Option<i64>, step: i64) -> Vec<i64> {
    let norm = |i: i64| if i >= 0 { i } else { len + i };
    let mut out = Vec::new();
    if step > 0 {
        let lower = norm(start.unwrap_or(0)).clamp(0, len);
        let upper = norm(end.unwrap_or(len)).clamp(0, len);
        let mut i = lower;
        while i < upper {
            out.push(i);
            // A step past the end of `i64` ends the slice (found by fuzzing: it overflowed).
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    } else if step < 0 {
        let upper = norm(start.unwrap_or(len - 1)).clamp(-1, len - 1);
        let lower = end.map(norm).unwrap_or(-len - 1).clamp(-1, len - 1);
        let mut i = upper;
        while lower < i {
            out.push(i);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(q: &str, v: &Value) -> Vec<String> {
        Query::parse(q)
            .unwrap()
            .select(v)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn selects_names_indexes_wildcards_slices_and_descendants() {
        let v = json!({"a": {"b": [1, 2, 3, 4], "c's": "x"}, "d": [{"b": 5}]});
        assert_eq!(paths("$.a.b[1]", &v), ["$['a']['b'][1]"]);
        assert_eq!(paths("$.a.b[-1]", &v), ["$['a']['b'][3]"]);
        assert_eq!(paths("$['a'][\"c's\"]", &v), ["$['a']['c\\'s']"]);
        assert_eq!(
            paths("$.a.b[1:3]", &v),
            ["$['a']['b'][1]", "$['a']['b'][2]"]
        );
        assert_eq!(
            paths("$.a.b[::-2]", &v),
            ["$['a']['b'][3]", "$['a']['b'][1]"]
        );
        assert_eq!(paths("$.a.*", &v).len(), 2);
        assert_eq!(paths("$..b", &v), ["$['a']['b']", "$['d'][0]['b']"]);
        assert_eq!(
            paths("$.a.b[0, 2]", &v),
            ["$['a']['b'][0]", "$['a']['b'][2]"]
        );
        assert_eq!(paths("$", &v), ["$"]);
        assert!(paths("$.missing.x", &v).is_empty());
    }

    /// Fuzzing found it: a step that carries the index past `i64::MAX` overflowed (a panic with
    /// overflow checks, an out-of-bounds index and a trap in the module without).
    #[test]
    fn huge_slice_steps_end_the_slice() {
        let v = json!([1, 2, 3]);
        assert_eq!(paths("$[1::9223372036854775807]", &v), ["$[1]"]);
        assert_eq!(paths("$[-1::-9223372036854775808]", &v), ["$[2]"]);
        assert_eq!(paths("$[::9223372036854775807]", &v), ["$[0]"]);
    }

    /// Descendant segments multiply: the node list is bounded, with an error.
    #[test]
    fn node_lists_are_bounded() {
        let doc =
            |n: usize| json!({"a": (0..n).map(|i| json!({"b": [i, i, i]})).collect::<Vec<_>>()});
        let small = doc(400);
        assert_eq!(paths("$..*", &small).len(), 1 + 400 * 5);
        let count = |q: &str, v: &Value| Query::parse(q).unwrap().select(v).map(|n| n.len());
        let e = count("$..*..*", &doc(20_000)).unwrap_err();
        assert!(e.contains("more than 100000 nodes"), "{e}");
        assert_eq!(count("$..*", &doc(19_000)), Ok(1 + 19_000 * 5));
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        for q in ["a.b", "$.[[[", "$[?@.x]", "$.a[", "$['x", "$[01]", "$.1a"] {
            assert!(Query::parse(q).is_err(), "{q}");
        }
        let e = Query::parse("$.spec[?(@.name == 'x')]").unwrap_err();
        assert!(e.contains("filter selectors"), "{e}");
    }
}
