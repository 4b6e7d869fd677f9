//! Enough of bash to see what a script runs: simple commands with their words after quote
//! removal, variable assignments, here-documents and here-strings, pipelines, comments and line
//! continuations.
//!
//! Expansions (`$VAR`, `${VAR}`, `$(…)`, backquotes, `$1`, `$$`) are kept verbatim in the text
//! and located, so a caller can tell text written in the script from text that only exists when
//! the script runs: a password that comes from `$APP_PASSWORD` is not plaintext, and a database
//! named `$POSTGRES_DB` is whatever the container's environment says.
//!
//! Used to find what `.sh` init scripts feed to `psql` ([`psql_calls`]), which credentials they
//! set (`PGPASSWORD=…`), and what `sh -c "…"` container commands start. Checked against bash
//! itself by `tests/oracle_shell.rs`.

use std::collections::BTreeMap;
use std::ops::Range;

/// A word after quote removal, or a here-document body: text with its expansions kept verbatim
/// (`$X`, `${X:-d}`, `$(cmd)`, `` `cmd` ``) and located by byte range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    pub text: String,
    /// Byte ranges of `text` that are expansions, in order, not overlapping.
    pub expansions: Vec<Range<usize>>,
    /// Starts of the expansions written outside double quotes: bash splits their values into
    /// several words at white space.
    unquoted: Vec<usize>,
}

impl Word {
    /// A word without expansions.
    pub fn literal(text: impl Into<String>) -> Word {
        Word {
            text: text.into(),
            expansions: Vec::new(),
            unquoted: Vec::new(),
        }
    }

    /// True when part of the word only exists when the script runs.
    pub fn expands(&self) -> bool {
        !self.expansions.is_empty()
    }

    /// The text when it has no expansion.
    pub fn as_literal(&self) -> Option<&str> {
        (!self.expands()).then_some(self.text.as_str())
    }

    fn push(&mut self, c: char) {
        self.text.push(c);
    }

    fn push_expansion(&mut self, source: &str) {
        let start = self.text.len();
        self.text.push_str(source);
        self.expansions.push(start..self.text.len());
    }

    fn push_unquoted_expansion(&mut self, source: &str) {
        self.unquoted.push(self.text.len());
        self.push_expansion(source);
    }

    fn append(&mut self, other: &Word) {
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.expansions.extend(
            other
                .expansions
                .iter()
                .map(|r| r.start + base..r.end + base),
        );
        self.unquoted
            .extend(other.unquoted.iter().map(|s| s + base));
    }

    /// The part of the word from byte `from` (on a character boundary) to the end.
    fn tail(&self, from: usize) -> Word {
        Word {
            text: self.text[from..].to_string(),
            expansions: self
                .expansions
                .iter()
                .filter(|r| r.end > from)
                .map(|r| r.start.saturating_sub(from)..r.end - from)
                .collect(),
            unquoted: self
                .unquoted
                .iter()
                .filter(|&&s| s >= from)
                .map(|s| s - from)
                .collect(),
        }
    }

    /// The first `len` bytes of the word.
    fn head(mut self, len: usize) -> Word {
        self.text.truncate(len);
        self.expansions.retain(|r| r.start < len);
        for r in &mut self.expansions {
            r.end = r.end.min(len);
        }
        self.unquoted.retain(|&s| s < len);
        self
    }

    /// Substitute the expansions `lookup` knows (by their source text); the others stay. An
    /// unquoted expansion whose value bash would split into several words stays too.
    pub fn resolve(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Word {
        let mut out = Word::default();
        let mut at = 0;
        for r in &self.expansions {
            out.text.push_str(&self.text[at..r.start]);
            let source = &self.text[r.clone()];
            let unquoted = self.unquoted.contains(&r.start);
            let value = lookup(source)
                .filter(|v| !unquoted || !v.contains([' ', '\t', '\n', '*', '?', '[']));
            match value {
                Some(v) => out.text.push_str(&v),
                None if unquoted => out.push_unquoted_expansion(source),
                None => out.push_expansion(source),
            }
            at = r.end;
        }
        out.text.push_str(&self.text[at..]);
        out
    }

    /// The text with every expansion replaced by `placeholder(source)`: the ranges of the
    /// placeholders in the result come back too.
    pub fn render(&self, placeholder: &dyn Fn(&str) -> String) -> (String, Vec<Range<usize>>) {
        let mut out = String::with_capacity(self.text.len());
        let mut ranges = Vec::with_capacity(self.expansions.len());
        let mut at = 0;
        for r in &self.expansions {
            out.push_str(&self.text[at..r.start]);
            let start = out.len();
            out.push_str(&placeholder(&self.text[r.clone()]));
            ranges.push(start..out.len());
            at = r.end;
        }
        out.push_str(&self.text[at..]);
        (out, ranges)
    }

    /// The pieces of the word: `(text, is_expansion)`, in order.
    pub fn parts(&self) -> Vec<(&str, bool)> {
        let mut out = Vec::new();
        let mut at = 0;
        for r in &self.expansions {
            if r.start > at {
                out.push((&self.text[at..r.start], false));
            }
            out.push((&self.text[r.clone()], true));
            at = r.end;
        }
        if at < self.text.len() {
            out.push((&self.text[at..], false));
        }
        out
    }
}

/// The variable an expansion reads, with its `:-`/`-` default: `$X`, `${X}`, `${X:-d}`.
pub fn expansion_variable(source: &str) -> Option<(&str, Option<(&str, bool)>)> {
    let inner = match source.strip_prefix("${") {
        Some(rest) => rest.strip_suffix('}')?,
        None => source.strip_prefix('$')?,
    };
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let name = &inner[..name_end];
    if !is_name(name) {
        return None;
    }
    let rest = &inner[name_end..];
    if rest.is_empty() {
        return Some((name, None));
    }
    if !source.starts_with("${") {
        return None;
    }
    if let Some(d) = rest.strip_prefix(":-") {
        return Some((name, Some((d, true))));
    }
    rest.strip_prefix('-').map(|d| (name, Some((d, false))))
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Shell variables known while reading a script: the environment the caller gives, then the
/// script's own assignments in order.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    known: BTreeMap<String, String>,
    /// Names assigned a value the reader cannot know (they shadow the environment).
    unknown: std::collections::BTreeSet<String>,
}

impl Vars {
    pub fn new(env: &BTreeMap<String, String>) -> Vars {
        Vars {
            known: env.clone(),
            unknown: Default::default(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        if self.unknown.contains(name) {
            return None;
        }
        self.known.get(name).map(String::as_str)
    }

    fn set(&mut self, name: &str, value: &Word) {
        let v = value.resolve(&|s| self.value_of(s));
        match v.as_literal() {
            Some(t) => {
                self.unknown.remove(name);
                self.known.insert(name.to_string(), t.to_string());
            }
            None => {
                self.unknown.insert(name.to_string());
            }
        }
    }

    /// The value of an expansion when it is a variable with a known value (or a literal default).
    pub fn value_of(&self, source: &str) -> Option<String> {
        let (name, default) = expansion_variable(source)?;
        let value = self.get(name);
        match (value, default) {
            (Some(""), Some((d, true))) => literal_default(d),
            (Some(v), _) => Some(v.to_string()),
            // Unset, but set in the container's environment we were not told about: unknown.
            (None, _) => None,
        }
    }
}

fn literal_default(d: &str) -> Option<String> {
    (!d.contains(['$', '`', '"', '\'', '\\'])).then(|| d.to_string())
}

/// A here-document attached to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub body: Word,
    /// `<<'EOF'` / `<<"EOF"` / `<<\EOF`: the body is taken literally (no expansion).
    pub quoted: bool,
    /// Line of the `<<` operator.
    pub line: usize,
}

/// Where a command's standard input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdin {
    Heredoc(Heredoc),
    /// `<<< word`: the word and a newline.
    HereString(Word),
    /// `< file`.
    File(Word),
}

/// A simple command: leading `NAME=value` assignments, then the words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    pub assignments: Vec<(String, Word)>,
    pub words: Vec<Word>,
    /// The last input redirection, if any.
    pub stdin: Option<Stdin>,
    /// True when the command reads the output of the previous command (`a | b`).
    pub piped: bool,
    /// True for `export NAME=value` (the assignments reach later commands' environment).
    pub export: bool,
    pub line: usize,
}

impl Command {
    /// The program name: the last path component of the first word (`/usr/bin/psql` → `psql`).
    pub fn program(&self) -> Option<&str> {
        self.words
            .first()
            .map(|w| w.text.rsplit('/').next().unwrap_or(&w.text))
    }

    /// The words after the program.
    pub fn args(&self) -> &[Word] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// The here-document this command reads, if any.
    pub fn heredoc(&self) -> Option<&Heredoc> {
        match &self.stdin {
            Some(Stdin::Heredoc(h)) => Some(h),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.assignments.is_empty() && self.stdin.is_none()
    }
}

enum Tok {
    Word(Word),
    /// `;`, `&`, newline, `(`, `)`, `&&`, `||`.
    Sep,
    /// `|` (`|&` too).
    Pipe,
    /// `<`, `>`, `>>`, `>&`, `<&`, `&>`… : the next word is its target.
    Redirect {
        input: bool,
    },
}

struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
}

/// A here-document whose body starts after the current line.
struct Pending {
    /// Index the owning command will have in the command list.
    command: usize,
    delim: String,
    strip: bool,
    quoted: bool,
    line: usize,
}

impl Lexer {
    fn peek(&self, k: usize) -> char {
        self.c.get(self.i + k).copied().unwrap_or('\0')
    }

    fn eof(&self) -> bool {
        self.i >= self.c.len()
    }

    fn bump(&mut self) -> char {
        let ch = self.peek(0);
        if ch == '\n' {
            self.line += 1;
        }
        self.i += 1;
        ch
    }

    /// At a `$`: read an expansion into `w` (`quoted`: inside double quotes or a
    /// here-document, where its value is not split), or a literal `$` when none starts here.
    fn read_dollar(&mut self, w: &mut Word, quoted: bool) {
        let mut source = String::from("$");
        let next = self.peek(1);
        match next {
            '{' | '(' => {
                let (open, close) = if next == '{' { ('{', '}') } else { ('(', ')') };
                self.i += 2;
                source.push(open);
                let mut depth = 1;
                while !self.eof() && depth > 0 {
                    let ch = self.bump();
                    if ch == open {
                        depth += 1;
                    } else if ch == close {
                        depth -= 1;
                    } else if ch == '\\' && !self.eof() {
                        source.push(ch);
                        let escaped = self.bump();
                        source.push(escaped);
                        continue;
                    }
                    source.push(ch);
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                self.i += 1;
                while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == '_' {
                    source.push(self.bump());
                }
            }
            // `$1` is one digit (`$10` is `${1}0`); specials are one character.
            c if c.is_ascii_digit() || matches!(c, '@' | '*' | '#' | '?' | '$' | '!' | '-') => {
                self.i += 2;
                source.push(c);
            }
            _ => {
                self.i += 1;
                w.push('$');
                return;
            }
        }
        if quoted {
            w.push_expansion(&source);
        } else {
            w.push_unquoted_expansion(&source);
        }
    }

    /// At a backquote: read the command substitution up to the closing backquote.
    fn read_backquote(&mut self, w: &mut Word, quoted: bool) {
        let mut source = String::from("`");
        self.i += 1;
        while !self.eof() && self.peek(0) != '`' {
            let ch = self.bump();
            source.push(ch);
            if ch == '\\' && !self.eof() {
                source.push(self.bump());
            }
        }
        if !self.eof() {
            self.i += 1;
        }
        source.push('`');
        if quoted {
            w.push_expansion(&source);
        } else {
            w.push_unquoted_expansion(&source);
        }
    }

    /// `$'…'`: ANSI-C quoting, after the `$'`.
    fn read_ansi_c(&mut self, w: &mut Word) {
        while !self.eof() && self.peek(0) != '\'' {
            let ch = self.bump();
            if ch != '\\' || self.eof() {
                w.push(ch);
                continue;
            }
            let e = self.bump();
            let simple = match e {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                'a' => Some('\u{7}'),
                'b' => Some('\u{8}'),
                'e' | 'E' => Some('\u{1b}'),
                'f' => Some('\u{c}'),
                'v' => Some('\u{b}'),
                '\\' | '\'' | '"' | '?' => Some(e),
                _ => None,
            };
            if let Some(c) = simple {
                w.push(c);
                continue;
            }
            let (radix, max) = match e {
                'x' => (16, 2),
                '0'..='7' => (8, 3),
                _ => {
                    w.push('\\');
                    w.push(e);
                    continue;
                }
            };
            let mut digits = String::new();
            if radix == 8 {
                digits.push(e);
            }
            while digits.len() < max && self.peek(0).is_digit(radix) {
                digits.push(self.bump());
            }
            match u32::from_str_radix(&digits, radix)
                .ok()
                .and_then(char::from_u32)
            {
                Some(c) if !digits.is_empty() => w.push(c),
                _ => {
                    w.push('\\');
                    w.push(e);
                }
            }
        }
        self.i += 1;
    }

    /// The inside of `"…"`, after the opening quote.
    fn read_double_quoted(&mut self, w: &mut Word) {
        while !self.eof() && self.peek(0) != '"' {
            let d = self.peek(0);
            if d == '\\' && matches!(self.peek(1), '"' | '\\' | '$' | '`' | '\n') {
                self.i += 1;
                let escaped = self.bump();
                if escaped != '\n' {
                    w.push(escaped);
                }
            } else if d == '$' {
                self.read_dollar(w, true);
            } else if d == '`' {
                self.read_backquote(w, true);
            } else {
                w.push(self.bump());
            }
        }
        self.i += 1;
    }

    fn read_word(&mut self) -> Word {
        let mut w = Word::default();
        while !self.eof() {
            let ch = self.peek(0);
            match ch {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                '\\' => {
                    if self.peek(1) == '\n' {
                        self.line += 1;
                    } else if self.i + 1 < self.c.len() {
                        w.push(self.peek(1));
                    }
                    self.i += 2;
                }
                '\'' => {
                    self.i += 1;
                    while !self.eof() && self.peek(0) != '\'' {
                        w.push(self.bump());
                    }
                    self.i += 1;
                }
                '"' => {
                    self.i += 1;
                    self.read_double_quoted(&mut w);
                }
                '$' if self.peek(1) == '\'' => {
                    self.i += 2;
                    self.read_ansi_c(&mut w);
                }
                '$' if self.peek(1) == '"' => {
                    self.i += 2;
                    self.read_double_quoted(&mut w);
                }
                '$' => self.read_dollar(&mut w, false),
                '`' => self.read_backquote(&mut w, false),
                _ => {
                    w.push(ch);
                    self.i += 1;
                }
            }
        }
        w
    }

    /// True when the word just read is a file-descriptor number of a redirection (`2>`, `3<<`).
    fn io_number(&self, start: usize) -> bool {
        self.i > start
            && self.c[start..self.i].iter().all(char::is_ascii_digit)
            && matches!(self.peek(0), '<' | '>')
    }
}

/// Parse a script into its simple commands, in order. Compound syntax (`if`, `for`, `{ }`,
/// functions) is flattened: every simple command inside is reported.
pub fn parse(src: &str) -> Vec<Command> {
    let mut lx = Lexer {
        c: src.chars().collect(),
        i: 0,
        line: 1,
    };
    let mut commands: Vec<Command> = Vec::new();
    let mut cur = Command::default();
    let mut pending: Vec<Pending> = Vec::new();
    // After `<<`/`<<-`: the next word is a delimiter (with the strip flag); after `<<<`, `<`,
    // `>`: the next word is a here-string, an input file or an output target.
    let mut expect_heredoc_delim: Option<bool> = None;
    let mut redirect: Option<Option<u8>> = None;
    let mut next_piped = false;
    loop {
        while matches!(lx.peek(0), ' ' | '\t') {
            lx.i += 1;
        }
        if lx.peek(0) == '\\' && lx.peek(1) == '\n' {
            lx.i += 2;
            lx.line += 1;
            continue;
        }
        let tok = if lx.eof() {
            None
        } else {
            let ch = lx.peek(0);
            Some(match ch {
                '#' => {
                    while !lx.eof() && lx.peek(0) != '\n' {
                        lx.i += 1;
                    }
                    continue;
                }
                '\n' => {
                    lx.i += 1;
                    lx.line += 1;
                    // Bodies of pending here-documents follow this newline.
                    for p in pending.drain(..) {
                        let body = read_heredoc(&mut lx, &p.delim, p.strip, p.quoted);
                        let stdin = Stdin::Heredoc(Heredoc {
                            body,
                            quoted: p.quoted,
                            line: p.line,
                        });
                        match commands.get_mut(p.command) {
                            Some(c) => c.stdin = Some(stdin),
                            None => cur.stdin = Some(stdin),
                        }
                    }
                    Tok::Sep
                }
                '|' if lx.peek(1) != '|' => {
                    lx.i += if lx.peek(1) == '&' { 2 } else { 1 };
                    Tok::Pipe
                }
                ';' | '&' | '|' | '(' | ')' => {
                    if ch == '&' && lx.peek(1) == '>' {
                        lx.i += 2;
                        if lx.peek(0) == '>' {
                            lx.i += 1;
                        }
                        Tok::Redirect { input: false }
                    } else {
                        // `&&`, `||`, `;;` are one separator.
                        lx.i += if matches!(ch, '&' | '|' | ';') && lx.peek(1) == ch {
                            2
                        } else {
                            1
                        };
                        Tok::Sep
                    }
                }
                '<' if lx.peek(1) == '<' && lx.peek(2) == '<' => {
                    lx.i += 3;
                    redirect = Some(Some(b'h'));
                    continue;
                }
                '<' if lx.peek(1) == '<' => {
                    let strip = lx.peek(2) == '-';
                    lx.i += if strip { 3 } else { 2 };
                    expect_heredoc_delim = Some(strip);
                    continue;
                }
                '<' | '>' => {
                    let input = ch == '<' && !matches!(lx.peek(1), '&' | '>');
                    while matches!(lx.peek(0), '<' | '>' | '&' | '|') {
                        lx.i += 1;
                    }
                    Tok::Redirect { input }
                }
                _ => {
                    let start = lx.i;
                    let word = lx.read_word();
                    lx.i = lx.i.min(lx.c.len());
                    if lx.io_number(start) {
                        continue;
                    }
                    if let Some(strip) = expect_heredoc_delim.take() {
                        let quoted = lx.c[start..lx.i]
                            .iter()
                            .any(|c| matches!(c, '\'' | '"' | '\\'));
                        pending.push(Pending {
                            command: commands.len(),
                            delim: word.text,
                            strip,
                            quoted,
                            line: lx.line,
                        });
                        continue;
                    }
                    Tok::Word(word)
                }
            })
        };
        match tok {
            None => break,
            Some(Tok::Sep) | Some(Tok::Pipe) => {
                let pipe = matches!(tok, Some(Tok::Pipe));
                redirect = None;
                // Here-documents of a finished command still reach it through its index.
                if !cur.is_empty() {
                    commands.push(std::mem::take(&mut cur));
                }
                next_piped = pipe;
            }
            Some(Tok::Redirect { input }) => redirect = Some(input.then_some(b'<')),
            Some(Tok::Word(w)) => {
                if let Some(kind) = redirect.take() {
                    match kind {
                        Some(b'h') => cur.stdin = Some(Stdin::HereString(w)),
                        Some(_) => cur.stdin = Some(Stdin::File(w)),
                        None => {}
                    }
                    continue;
                }
                if cur.is_empty() {
                    cur.line = lx.line;
                    cur.piped = std::mem::take(&mut next_piped);
                }
                if cur.words.is_empty()
                    && let Some((name, value)) = assignment(&w)
                {
                    cur.assignments.push((name, value));
                } else if cur.words.is_empty()
                    && cur.assignments.is_empty()
                    && matches!(w.text.as_str(), "export" | "local" | "declare" | "readonly")
                    && !w.expands()
                {
                    // `export A=b`: the assignments that follow are kept as assignments.
                    cur.export |= w.text == "export";
                } else {
                    cur.words.push(w);
                }
            }
        }
    }
    if !cur.is_empty() {
        commands.push(cur);
    }
    // Keywords of compound commands and `exec` are not programs: `then exec psql …` is `psql …`.
    for c in &mut commands {
        while c.words.first().is_some_and(|w| {
            !w.expands()
                && matches!(
                    w.text.as_str(),
                    "then"
                        | "else"
                        | "do"
                        | "if"
                        | "elif"
                        | "while"
                        | "until"
                        | "!"
                        | "{"
                        | "}"
                        | "exec"
                        | "nohup"
                        | "time"
                        | "command"
                )
        }) {
            c.words.remove(0);
        }
    }
    commands
}

/// `NAME=value` (NAME a valid shell identifier, written literally).
fn assignment(w: &Word) -> Option<(String, Word)> {
    let eq = w.text.find('=')?;
    let name = &w.text[..eq];
    if !is_name(name) || w.expansions.first().is_some_and(|r| r.start < eq) {
        return None;
    }
    Some((name.to_string(), w.tail(eq + 1)))
}

/// Read a here-document body up to the delimiter line. Unquoted bodies are read as bash reads
/// them: `\<newline>` joins lines (before the delimiter is looked for), `\$`, `\\` and `` \` ``
/// are unescaped, and `$…`/backquote expansions are located.
fn read_heredoc(lx: &mut Lexer, delim: &str, strip: bool, quoted: bool) -> Word {
    let mut raw = String::new();
    while !lx.eof() {
        let mut line = String::new();
        loop {
            let start = lx.i;
            while !lx.eof() && lx.peek(0) != '\n' {
                lx.i += 1;
            }
            let part: String = lx.c[start..lx.i].iter().collect();
            if !lx.eof() {
                lx.i += 1;
            }
            lx.line += 1;
            let part = if strip && line.is_empty() {
                part.trim_start_matches('\t').to_string()
            } else {
                part
            };
            // An odd number of trailing backslashes continues the line (unquoted bodies only).
            let trailing = part.chars().rev().take_while(|&c| c == '\\').count();
            if !quoted && trailing % 2 == 1 && !lx.eof() {
                line.push_str(&part[..part.len() - 1]);
                continue;
            }
            line.push_str(&part);
            break;
        }
        if line == delim {
            break;
        }
        raw.push_str(&line);
        raw.push('\n');
    }
    if quoted {
        return Word::literal(raw);
    }
    expand_heredoc(&raw)
}

/// The expansions of an unquoted here-document body.
fn expand_heredoc(raw: &str) -> Word {
    let mut lx = Lexer {
        c: raw.chars().collect(),
        i: 0,
        line: 0,
    };
    let mut w = Word::default();
    while !lx.eof() {
        let ch = lx.peek(0);
        match ch {
            '\\' if matches!(lx.peek(1), '$' | '\\' | '`') => {
                w.push(lx.peek(1));
                lx.i += 2;
            }
            '$' if !matches!(lx.peek(1), '\'' | '"') => lx.read_dollar(&mut w, true),
            '`' => lx.read_backquote(&mut w, true),
            _ => {
                w.push(ch);
                lx.i += 1;
            }
        }
    }
    w
}

/// One `psql` run: the connection it opens and the SQL it runs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsqlCall {
    /// The database it connects to; `None`: psql's default, the operating-system user name
    /// (`postgres` in the official image).
    pub database: Option<Word>,
    /// What it runs: `-c` commands and `-f` files in order, else its standard input.
    pub inputs: Vec<PsqlInput>,
    /// `-v ON_ERROR_STOP=1`: the first failing statement ends psql with an error.
    pub on_error_stop: bool,
    pub line: usize,
}

/// SQL one `psql` run executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsqlInput {
    /// SQL text in the script: a `-c` argument, or what psql reads on its standard input (a
    /// here-document, a here-string, echoed text).
    Sql {
        text: Word,
        line: usize,
        from_stdin: bool,
        /// False when it runs only if an earlier `-c '\connect …'` whose outcome depends on
        /// the server (a user, host or connection option) opened its connection.
        certain: bool,
    },
    /// SQL the script does not contain: `-f file`, `< file`, or the output of another program.
    Elsewhere { what: String, line: usize },
}

/// The psql options that take an argument (short and long).
const PSQL_SHORT_WITH_ARG: &str = "cdfFhLopPRTUv";
const PSQL_LONG_WITH_ARG: &[&str] = &[
    "command",
    "dbname",
    "file",
    "field-separator",
    "host",
    "log-file",
    "output",
    "port",
    "pset",
    "record-separator",
    "table-attr",
    "username",
    "set",
    "variable",
];

/// True for a word that runs psql: `psql`, `/usr/bin/psql`, the official image's
/// `"${psql[@]}"` array and its `docker_process_sql` function.
pub fn is_psql(program: &str) -> bool {
    program == "psql" || program.starts_with("${psql[") || program == "docker_process_sql"
}

/// Every psql run of a script, with the shell variables resolved that `env` (the container's
/// environment, e.g. `POSTGRES_DB`) and the script's own assignments define.
pub fn psql_calls(commands: &[Command], env: &BTreeMap<String, String>) -> Vec<PsqlCall> {
    let mut vars = Vars::new(env);
    let mut exported: BTreeMap<String, Word> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        if c.words.is_empty() {
            for (name, value) in &c.assignments {
                vars.set(name, value);
                if c.export || env.contains_key(name) || exported.contains_key(name) {
                    exported.insert(name.clone(), value.resolve(&|s| vars.value_of(s)));
                }
            }
            continue;
        }
        let Some(program) = c.program() else {
            continue;
        };
        if !is_psql(program) {
            continue;
        }
        let lookup = |s: &str| vars.value_of(s);
        let mut prefix: BTreeMap<&str, Word> = BTreeMap::new();
        for (name, value) in &c.assignments {
            prefix.insert(name, value.resolve(&lookup));
        }
        let env_var = |name: &str| -> Option<Word> {
            prefix
                .get(name)
                .cloned()
                .or_else(|| exported.get(name).cloned())
                .or_else(|| env.get(name).map(|v| Word::literal(v.clone())))
        };
        // The image's `docker_process_sql` runs psql with these options first.
        let mut args: Vec<Word> = Vec::new();
        if program != "psql" {
            let dollar = |n: &str| {
                let mut w = Word::default();
                w.push_expansion(&format!("${n}"));
                w.resolve(&lookup)
            };
            args.push(Word::literal("-v"));
            args.push(Word::literal("ON_ERROR_STOP=1"));
            args.push(Word::literal("--username"));
            args.push(dollar("POSTGRES_USER"));
            let db = dollar("POSTGRES_DB");
            if !db.text.is_empty() {
                args.push(Word::literal("--dbname"));
                args.push(db);
            }
        }
        args.extend(c.args().iter().map(|w| w.resolve(&lookup)));
        let opts = PsqlOptions::parse(&args);
        let mut call = PsqlCall {
            database: None,
            inputs: Vec::new(),
            on_error_stop: opts.on_error_stop,
            line: c.line,
        };
        // Connection: -d (or the first positional argument), which may be a connection string;
        // without a database name, PGDATABASE, then the user name (-U, PGUSER).
        let (db, user) = match &opts.dbname {
            Some(d) => conninfo(d),
            None => (None, None),
        };
        call.database = db
            .or_else(|| env_var("PGDATABASE"))
            .or(user)
            .or(opts.username.clone())
            .or_else(|| env_var("PGUSER"));
        let mut actions = Actions {
            on_error_stop: opts.on_error_stop,
            ..Actions::default()
        };
        for input in &opts.inputs {
            if actions.stopped {
                break;
            }
            match input {
                OptInput::Command(w) => {
                    if let Some((text, certain)) = actions.command(w) {
                        call.inputs.push(PsqlInput::Sql {
                            text,
                            line: c.line,
                            from_stdin: false,
                            certain,
                        });
                    }
                }
                OptInput::File(f) if f.text == "-" => {
                    call.inputs.extend(stdin_input(commands, i, &lookup));
                }
                OptInput::File(f) => call.inputs.push(PsqlInput::Elsewhere {
                    what: format!("file {}", f.text),
                    line: c.line,
                }),
            }
        }
        if opts.inputs.is_empty() {
            call.inputs.extend(stdin_input(commands, i, &lookup));
        }
        out.push(call);
    }
    out
}

/// What command `i` reads on its standard input.
fn stdin_input(
    commands: &[Command],
    i: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<PsqlInput> {
    let c = &commands[i];
    let line = c.line;
    let sql = |text: Word, line| {
        Some(PsqlInput::Sql {
            text,
            line,
            from_stdin: true,
            certain: true,
        })
    };
    match &c.stdin {
        Some(Stdin::Heredoc(h)) => return sql(h.body.resolve(lookup), h.line),
        Some(Stdin::HereString(w)) => {
            let mut text = w.resolve(lookup);
            text.push('\n');
            return sql(text, line);
        }
        Some(Stdin::File(f)) => {
            return Some(PsqlInput::Elsewhere {
                what: format!("file {}", f.text),
                line,
            });
        }
        None => {}
    }
    if !c.piped {
        // The entrypoint's own standard input: nothing.
        return None;
    }
    let prev = i.checked_sub(1).map(|p| &commands[p])?;
    let elsewhere = || {
        Some(PsqlInput::Elsewhere {
            what: format!("the output of {}", prev.program().unwrap_or("a command")),
            line,
        })
    };
    match prev.program() {
        Some("cat") if prev.args().is_empty() => stdin_input(commands, i - 1, lookup),
        Some("echo") => {
            // bash's echo: leading `-n`, `-e`, `-E` (combined too) are options, nothing else is.
            let args = prev.args();
            let opts = args
                .iter()
                .take_while(|a| {
                    !a.expands()
                        && a.text.len() > 1
                        && a.text.starts_with('-')
                        && a.text[1..].chars().all(|c| matches!(c, 'n' | 'e' | 'E'))
                })
                .count();
            let flags: String = args[..opts].iter().map(|a| &a.text[1..]).collect();
            let escapes = flags.rfind('e') > flags.rfind('E');
            let mut text = Word::default();
            for (n, a) in args[opts..].iter().enumerate() {
                if n > 0 {
                    text.push(' ');
                }
                text.append(&a.resolve(lookup));
            }
            if escapes && text.text.contains('\\') {
                return elsewhere();
            }
            if !flags.contains('n') {
                text.push('\n');
            }
            sql(text, prev.line)
        }
        _ => elsewhere(),
    }
}

/// psql's `-c` actions in order, as its `main` runs them: a `-c` that starts with a backslash
/// is one meta-command (the rest of its text is ignored); any other `-c` is sent to the server
/// as one query string, meta-commands in it included. A `\connect` that fails closes the
/// connection: the queries after it are not sent until a `\connect` opens one, and with
/// `ON_ERROR_STOP` psql stops at the first action that fails.
#[derive(Default)]
struct Actions {
    on_error_stop: bool,
    /// No connection: an earlier `\connect` certainly failed.
    down: bool,
    /// A `\connect` that may have failed and left psql without a connection.
    maybe_down: bool,
    /// A `\connect` that may have failed under `ON_ERROR_STOP`: psql may have stopped.
    maybe_stopped: bool,
    /// A `\connect` certainly failed under `ON_ERROR_STOP`: nothing more runs.
    stopped: bool,
}

impl Actions {
    /// The text of `-c w` psql acts on, if it does, and whether it certainly does.
    fn command(&mut self, w: &Word) -> Option<(Word, bool)> {
        if !w.text.starts_with('\\') {
            let certain = !self.maybe_stopped && !self.maybe_down;
            return (!self.down).then(|| (w.clone(), certain));
        }
        let certain = !self.maybe_stopped;
        let end = w.text.find('\n').unwrap_or(w.text.len());
        let meta = w.clone().head(end);
        let (rendered, _) = meta.render(&|_| "\u{FFFC}".to_string());
        let tokens = crate::sql::tokenize(&rendered);
        let Some(crate::sql::TokenKind::Meta { name, args }) = tokens.first().map(|t| &t.kind)
        else {
            return Some((meta, certain));
        };
        match *name {
            "c" | "connect" => {
                let expands = |k: usize| args.get(k).is_some_and(|a| a.contains('\u{FFFC}'));
                match crate::sql::connect_outcome(args, &expands) {
                    // Without ON_ERROR_STOP a failed connection is only closed: this one
                    // opens again (with the defaults, or the parameters that worked).
                    crate::sql::ConnectOutcome::Opens => {
                        self.down = false;
                        self.maybe_down = false;
                    }
                    crate::sql::ConnectOutcome::Unknown => {
                        self.maybe_down = true;
                        self.maybe_stopped |= self.on_error_stop;
                    }
                    crate::sql::ConnectOutcome::Fails => {
                        self.down = true;
                        self.maybe_down = false;
                        self.stopped = self.on_error_stop;
                        return None;
                    }
                }
            }
            "set" | "unset" if args.first().is_some_and(|a| a == "ON_ERROR_STOP") => {
                self.on_error_stop = match *name {
                    "unset" => false,
                    _ => args
                        .get(1)
                        .and_then(|v| crate::sql::psql_bool(v))
                        .unwrap_or(self.on_error_stop),
                };
            }
            _ => {}
        }
        Some((meta, certain))
    }
}

enum OptInput {
    Command(Word),
    File(Word),
}

/// psql's command line as its getopt_long reads it.
struct PsqlOptions {
    dbname: Option<Word>,
    username: Option<Word>,
    inputs: Vec<OptInput>,
    on_error_stop: bool,
}

impl PsqlOptions {
    fn parse(args: &[Word]) -> PsqlOptions {
        let mut o = PsqlOptions {
            dbname: None,
            username: None,
            inputs: Vec::new(),
            on_error_stop: false,
        };
        let mut positional = Vec::new();
        let mut i = 0;
        let mut only_positional = false;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            let t = a.text.as_str();
            if only_positional || !t.starts_with('-') || t == "-" {
                positional.push(a.clone());
                continue;
            }
            if t == "--" {
                only_positional = true;
                continue;
            }
            let (name, value) = if let Some(long) = t.strip_prefix("--") {
                let (n, inline) = match long.find('=') {
                    Some(eq) => (&long[..eq], Some(a.tail(eq + 3))),
                    None => (long, None),
                };
                if !PSQL_LONG_WITH_ARG.contains(&n) {
                    continue;
                }
                let value = inline.or_else(|| {
                    i += 1;
                    args.get(i - 1).cloned()
                });
                (n.to_string(), value)
            } else {
                // A cluster of short options: `-qAtc SQL`, `-tc"SQL"`.
                let mut found = None;
                for (pos, ch) in t.char_indices().skip(1) {
                    if PSQL_SHORT_WITH_ARG.contains(ch) {
                        let rest = pos + ch.len_utf8();
                        let value = if rest < t.len() {
                            Some(a.tail(rest))
                        } else {
                            i += 1;
                            args.get(i - 1).cloned()
                        };
                        found = Some((ch.to_string(), value));
                        break;
                    }
                }
                match found {
                    Some(f) => f,
                    None => continue,
                }
            };
            let Some(value) = value else { continue };
            match name.as_str() {
                "c" | "command" => o.inputs.push(OptInput::Command(value)),
                "f" | "file" => o.inputs.push(OptInput::File(value)),
                "d" | "dbname" => o.dbname = Some(value),
                "U" | "username" => o.username = Some(value),
                "v" | "set" | "variable" => match value.text.split_once('=') {
                    Some(("ON_ERROR_STOP", v)) => {
                        o.on_error_stop = crate::sql::psql_bool(v).unwrap_or(o.on_error_stop)
                    }
                    None if value.text == "ON_ERROR_STOP" => o.on_error_stop = false,
                    _ => {}
                },
                _ => {}
            }
        }
        // Positional arguments: the database name, then the user name.
        for p in positional {
            if o.dbname.is_none() {
                o.dbname = Some(p);
            } else if o.username.is_none() {
                o.username = Some(p);
            }
        }
        o
    }
}

/// The database and user a `-d` value names: a plain name, `key=value` pairs (values may be
/// quoted), or a `postgresql://` URI (percent-encoded).
fn conninfo(d: &Word) -> (Option<Word>, Option<Word>) {
    let t = d.text.as_str();
    // A part of the value: expansions in it are kept; otherwise the decoded text.
    let part = |range: Range<usize>, decoded: String| -> Option<Word> {
        if range.is_empty() && decoded.is_empty() {
            return None;
        }
        let overlaps = d
            .expansions
            .iter()
            .any(|e| e.start < range.end && range.start < e.end);
        if !overlaps {
            return Some(Word::literal(decoded));
        }
        Some(d.tail(range.start).head(range.end - range.start))
    };
    if let Some(rest) = t
        .strip_prefix("postgresql://")
        .or_else(|| t.strip_prefix("postgres://"))
    {
        let base = t.len() - rest.len();
        let end = rest.find('?').unwrap_or(rest.len());
        let (authority, path) = rest[..end].split_once('/').unwrap_or((&rest[..end], ""));
        let path_start = base + authority.len() + 1;
        let db = part(path_start..path_start + path.len(), percent_decode(path));
        let user = authority.rsplit_once('@').map(|(u, _)| {
            let u = u.split(':').next().unwrap_or(u);
            part(base..base + u.len(), percent_decode(u))
        });
        return (db, user.flatten());
    }
    if !t.contains('=') {
        return (Some(d.clone()), None);
    }
    let (mut db, mut user) = (None, None);
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &t[key_start..i];
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'=') {
            i += 1;
        }
        let mut start = i;
        let mut end = None;
        let mut value = String::new();
        if b.get(i) == Some(&b'\'') {
            i += 1;
            start = i;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = t[i..].chars().next().unwrap_or(' ');
                value.push(ch);
                i += ch.len_utf8();
            }
            end = Some(i);
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&t[start..i]);
        }
        let range = start..end.unwrap_or(i);
        match key {
            "dbname" => db = part(range, value),
            "user" => user = part(range, value),
            _ => {}
        }
    }
    (db, user)
}

/// `%XX` escapes of a URI part.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PsqlCall {
    /// The SQL texts it runs, with their lines.
    pub fn sql(&self) -> impl Iterator<Item = (&Word, usize)> {
        self.inputs.iter().filter_map(|i| match i {
            PsqlInput::Sql { text, line, .. } => Some((text, *line)),
            PsqlInput::Elsewhere { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(src: &str) -> Vec<PsqlCall> {
        psql_calls(&parse(src), &BTreeMap::new())
    }

    fn texts(c: &PsqlCall) -> Vec<String> {
        c.sql().map(|(w, _)| w.text.clone()).collect()
    }

    #[test]
    fn heredoc_to_psql() {
        let src = "#!/bin/bash\nset -e\n\npsql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname \"$POSTGRES_DB\" <<-EOSQL\n\
                   \tCREATE DATABASE sos_app_auth;\n\t\\connect sos_app_auth\n\tCREATE EXTENSION pgcrypto;\n\tSELECT \\$\\$x\\$\\$;\nEOSQL\necho done\n";
        let cmds = parse(src);
        let c = psql_calls(&cmds, &BTreeMap::new());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].database.as_ref().unwrap().text, "$POSTGRES_DB");
        assert!(c[0].database.as_ref().unwrap().expands());
        let sql = texts(&c[0]);
        assert!(sql[0].starts_with("CREATE DATABASE sos_app_auth;\n\\connect"));
        assert!(sql[0].contains("SELECT $$x$$;"));
        assert_eq!(cmds.last().unwrap().program(), Some("echo"));
        let env = BTreeMap::from([("POSTGRES_DB".to_string(), "app".to_string())]);
        let c = psql_calls(&cmds, &env);
        assert_eq!(c[0].database.as_ref().unwrap().as_literal(), Some("app"));
    }

    #[test]
    fn dash_c_and_quoting() {
        let src = "psql -d 'sos_app_medical' -c \"CREATE EXTENSION IF NOT EXISTS pgcrypto\" \\\n  --command='CREATE EXTENSION postgis'\n\
                   if true; then \"${psql[@]}\" --dbname=other <<'SQL'\nSELECT '$keep';\nSQL\nfi\npsql -qAtc 'SELECT 1' 2>/dev/null";
        let c = calls(src);
        assert_eq!(c.len(), 3);
        assert_eq!(
            texts(&c[0]),
            vec![
                "CREATE EXTENSION IF NOT EXISTS pgcrypto",
                "CREATE EXTENSION postgis"
            ]
        );
        assert_eq!(c[0].database.as_ref().unwrap().text, "sos_app_medical");
        assert_eq!(c[1].database.as_ref().unwrap().text, "other");
        assert_eq!(texts(&c[1]), vec!["SELECT '$keep';\n"]);
        assert!(!c[1].sql().next().unwrap().0.expands());
        assert_eq!(texts(&c[2]), vec!["SELECT 1"]);
        // `2>/dev/null` is a redirection, not a database name; the user names the database.
        assert_eq!(c[2].database, None);
    }

    /// What psql does with `-c`: a backslash `-c` is one meta-command, a `\connect` with a bad
    /// port fails (and ends the run under ON_ERROR_STOP, else leaves it disconnected until a
    /// `\connect` opens), one with a user or host may fail.
    #[test]
    fn dash_c_meta_commands_and_connects() {
        let certain = |c: &PsqlCall| -> Vec<(String, bool)> {
            c.inputs
                .iter()
                .filter_map(|i| match i {
                    PsqlInput::Sql { text, certain, .. } => Some((text.text.clone(), *certain)),
                    PsqlInput::Elsewhere { .. } => None,
                })
                .collect()
        };
        let bad_port = "-c 'SELECT 1' -c '\\connect db SELECT x FROM t;' -c 'SELECT 2'";
        let c = calls(&format!(
            "psql -v ON_ERROR_STOP=1 {bad_port}\npsql {bad_port} -c '\\c db' -c 'SELECT 3'"
        ));
        assert_eq!(certain(&c[0]), vec![("SELECT 1".to_string(), true)]);
        assert_eq!(
            certain(&c[1]),
            vec![
                ("SELECT 1".to_string(), true),
                ("\\c db".to_string(), true),
                ("SELECT 3".to_string(), true)
            ]
        );
        let c = calls(
            "psql -c '\\connect db someone\nCREATE EXTENSION x;' -c 'SELECT 1' -c '\\c other' -c 'SELECT 2'",
        );
        assert_eq!(
            certain(&c[0]),
            vec![
                ("\\connect db someone".to_string(), true),
                ("SELECT 1".to_string(), false),
                ("\\c other".to_string(), true),
                ("SELECT 2".to_string(), true)
            ]
        );
        // A query string is sent as it is: a meta-command inside it is not psql's.
        let c = calls("psql -c 'SELECT 1; \\connect db x y z' -c 'SELECT 2'");
        assert_eq!(
            texts(&c[0]),
            vec!["SELECT 1; \\connect db x y z", "SELECT 2"]
        );
        // A port from an expansion may be valid.
        let c = calls("psql -v ON_ERROR_STOP=1 -c \"\\\\connect db u h $PORT\" -c 'SELECT 1'");
        assert_eq!(certain(&c[0])[1], ("SELECT 1".to_string(), false));
    }

    #[test]
    fn expansions_in_heredocs_and_words() {
        let src = "psql <<EOF\nALTER ROLE a PASSWORD '$A_PW';\nALTER ROLE b PASSWORD '${B_PW}';\n\
                   ALTER ROLE c PASSWORD '$(cat /run/pw)';\nSELECT '\\$x', `id -u`, $1a, $$;\nEOF\n\
                   psql -c \"ALTER ROLE d PASSWORD '$D'\" -c 'SELECT $E'";
        let c = calls(src);
        let body = c[0].sql().next().unwrap().0;
        let parts: Vec<&str> = body
            .parts()
            .into_iter()
            .filter(|(_, e)| *e)
            .map(|(t, _)| t)
            .collect();
        assert_eq!(
            parts,
            vec!["$A_PW", "${B_PW}", "$(cat /run/pw)", "`id -u`", "$1", "$$"]
        );
        assert!(body.text.contains("SELECT '$x'"));
        let dc: Vec<&Word> = c[1].sql().map(|(w, _)| w).collect();
        assert!(dc[0].expands() && !dc[1].expands());
    }

    #[test]
    fn continuation_and_strip_in_heredocs() {
        let c = calls("psql <<EOF\nabc\\\nEOF\nEOF\npsql <<-'X'\n\tkeep\\\n\tX\n");
        assert_eq!(texts(&c[0]), vec!["abcEOF\n"]);
        assert_eq!(texts(&c[1]), vec!["keep\\\n"]);
    }

    #[test]
    fn variables_and_connection_defaults() {
        let src = "DB=sos_app; export PGDATABASE=fallback\npsql -d \"$DB\" -c 'SELECT 1'\npsql -c x\n\
                   PGDATABASE=one psql -c y\npsql -U bob -c z\npsql 'dbname=two user=u' -c w\n\
                   psql postgresql://u@/three -c v\nDB=$(cat f)\npsql -d \"$DB\" -c u";
        let c = calls(src);
        let dbs: Vec<Option<String>> = c
            .iter()
            .map(|c| c.database.as_ref().map(|d| d.text.clone()))
            .collect();
        assert_eq!(
            dbs,
            vec![
                Some("sos_app".into()),
                Some("fallback".into()),
                Some("one".into()),
                Some("fallback".into()),
                Some("two".into()),
                Some("three".into()),
                Some("$DB".into()),
            ]
        );
    }

    #[test]
    fn stdin_sources() {
        let src = "cat <<EOF | psql\nSELECT 1;\nEOF\necho \"SELECT 2;\" | psql\npsql <<< 'SELECT 3;'\n\
                   psql < /x.sql\npsql -c 'SELECT 4' <<EOF\nnot read\nEOF\ngunzip -c f | psql\npsql -f - <<EOF\nSELECT 5;\nEOF";
        let c = calls(src);
        assert_eq!(texts(&c[0]), vec!["SELECT 1;\n"]);
        assert_eq!(texts(&c[1]), vec!["SELECT 2;\n"]);
        assert_eq!(texts(&c[2]), vec!["SELECT 3;\n"]);
        assert!(
            matches!(&c[3].inputs[0], PsqlInput::Elsewhere { what, .. } if what == "file /x.sql")
        );
        assert_eq!(texts(&c[4]), vec!["SELECT 4"]);
        assert!(matches!(&c[5].inputs[0], PsqlInput::Elsewhere { .. }));
        assert_eq!(texts(&c[6]), vec!["SELECT 5;\n"]);
    }

    #[test]
    fn assignments() {
        let cmds = parse(
            "PGPASSWORD=s3cret psql -h db\nexport PGPASSWORD=\"$DB_PASS\" X=1\n# PGPASSWORD=no",
        );
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].assignments[0].0, "PGPASSWORD");
        assert_eq!(cmds[0].assignments[0].1.text, "s3cret");
        assert!(!cmds[0].assignments[0].1.expands());
        assert_eq!(cmds[0].program(), Some("psql"));
        assert!(cmds[1].assignments[0].1.expands());
        assert!(cmds[1].export);
        assert_eq!(cmds[1].assignments.len(), 2);
    }

    #[test]
    fn pipelines_and_lists_split_commands() {
        let cmds = parse(
            "redis-server /etc/redis.conf --maxmemory-policy noeviction && echo ok | cat; (x)",
        );
        let programs: Vec<_> = cmds.iter().filter_map(|c| c.program()).collect();
        assert_eq!(programs, vec!["redis-server", "echo", "cat", "x"]);
        assert_eq!(cmds[0].args()[2].text, "noeviction");
        assert!(cmds[2].piped && !cmds[1].piped);
    }

    #[test]
    fn ansi_c_quoting() {
        let cmds = parse("x $'a\\tb\\x41\\101\\'' $\"q $Y\"");
        assert_eq!(cmds[0].args()[0].text, "a\tbAA'");
        assert_eq!(cmds[0].args()[1].text, "q $Y");
        assert!(cmds[0].args()[1].expands());
    }

    #[test]
    fn garbage_does_not_panic() {
        for src in [
            "'",
            "\"",
            "$(",
            "${",
            "<<",
            "<<EOF\n",
            "\\",
            "`",
            "a=\"$",
            "$'\\",
            "$'\\x",
            "<<<",
            "psql -d",
            "psql --dbname",
            "psql 'dbname=",
            "psql postgresql://",
            "x |",
        ] {
            let _ = psql_calls(&parse(src), &BTreeMap::new());
        }
    }
}
