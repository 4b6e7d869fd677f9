//! A small PostgreSQL + psql lexer and the statement scanner the content policies need.
//!
//! It tokenizes the way PostgreSQL and psql do: case-insensitive keywords, `--` line comments and
//! nested `/* */` block comments, `'…'` strings (with `''`), `E'…'` strings (backslash escapes),
//! `$tag$…$tag$` dollar-quoted strings, `"quoted"` identifiers, psql meta-commands (a backslash
//! command up to the end of the line, e.g. `\connect db`) and psql variables (`:'var'`, `:"var"`,
//! `:var`, but not `::type` casts). Nothing inside a comment or a string is ever read as SQL.

use std::borrow::Cow;
use std::ops::Range;

/// One lexical token with the 1-based line it starts on; text borrows from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind<'a>,
    pub line: usize,
    /// Byte range of the token in the source.
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind<'a> {
    /// Unquoted keyword or identifier, as written (compare with [`Token::is_word`]).
    Word(&'a str),
    /// `"quoted identifier"`, unescaped.
    QuotedIdent(Cow<'a, str>),
    /// A string constant (`'…'`, `E'…'`, `$tag$…$tag$`), its value.
    Str(Cow<'a, str>),
    /// A psql variable: `:'name'`, `:"name"` or `:name`.
    Var(Cow<'a, str>),
    /// A number or any other operator/punctuation character.
    Other(u8),
    /// `;`
    Semicolon,
    /// A psql meta-command: name without the backslash (`c`, `connect`, `set`…) and its arguments.
    Meta { name: &'a str, args: Vec<String> },
}

impl Token<'_> {
    /// True for an unquoted word equal (ASCII case-insensitively) to `kw`.
    pub fn is_word(&self, kw: &str) -> bool {
        matches!(&self.kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The identifier this token names: unquoted words fold to lower case, quoted ones do not.
    pub fn ident(&self) -> Option<String> {
        match &self.kind {
            TokenKind::Word(w) => Some(w.to_ascii_lowercase()),
            TokenKind::QuotedIdent(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// Identifier bytes: ASCII letters, digits, `_`, `$`, and every byte of a non-ASCII character.
fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// Tokenize SQL text (with psql meta-commands). Unterminated strings or comments end at the end
/// of the input, as psql would keep waiting for more. Works on bytes: every syntax character is
/// ASCII, so slices always fall on character boundaries.
pub fn tokenize(src: &str) -> Vec<Token<'_>> {
    let b = src.as_bytes();
    let n = b.len();
    let at = |j: usize| b.get(j).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < n {
        let c = b[i];
        let start_line = line;
        let start = i;
        let tok = |kind| Token {
            kind,
            line: start_line,
            span: start..start,
        };
        let before = out.len();
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && at(i + 1) == b'-' {
            while i < n && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && at(i + 1) == b'*' {
            let mut depth = 0usize;
            while i < n {
                if b[i] == b'/' && at(i + 1) == b'*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && at(i + 1) == b'/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if (c == b'e' || c == b'E') && at(i + 1) == b'\'' {
            let (s, next) = read_quoted(src, i + 2, b'\'', true, &mut line);
            out.push(tok(TokenKind::Str(s)));
            i = next;
        } else if c == b'\'' {
            let (s, next) = read_quoted(src, i + 1, b'\'', false, &mut line);
            out.push(tok(TokenKind::Str(s)));
            i = next;
        } else if c == b'"' {
            let (s, next) = read_quoted(src, i + 1, b'"', false, &mut line);
            out.push(tok(TokenKind::QuotedIdent(s)));
            i = next;
        } else if c == b'$'
            && let Some(tag_end) = dollar_tag(b, i)
        {
            let tag = &src[i..=tag_end];
            let body_start = tag_end + 1;
            let body_end = src[body_start..].find(tag).map_or(n, |p| body_start + p);
            let body = &src[body_start..body_end];
            line += body.bytes().filter(|&x| x == b'\n').count();
            out.push(tok(TokenKind::Str(Cow::Borrowed(body))));
            i = if body_end == n {
                n
            } else {
                body_end + tag.len()
            };
        } else if is_ident_start(c) {
            let s = i;
            while i < n && is_ident_byte(b[i]) {
                i += 1;
            }
            out.push(tok(TokenKind::Word(&src[s..i])));
        } else if c == b':' && at(i + 1) == b':' {
            out.push(tok(TokenKind::Other(b':')));
            out.push(tok(TokenKind::Other(b':')));
            i += 2;
        } else if c == b':' && (at(i + 1) == b'\'' || at(i + 1) == b'"') {
            let (s, next) = read_quoted(src, i + 2, at(i + 1), false, &mut line);
            out.push(tok(TokenKind::Var(s)));
            i = next;
        } else if c == b':' && is_ident_start(at(i + 1)) {
            let s = i + 1;
            i += 1;
            while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(tok(TokenKind::Var(Cow::Borrowed(&src[s..i]))));
        } else if c == b'\\' {
            let s = i + 1;
            let mut j = s;
            while j < n && b[j].is_ascii_alphanumeric() {
                j += 1;
            }
            // A meta-command's arguments end at the end of the line or at the next backslash
            // command (`\gexec`), outside quotes.
            let mut e = j;
            let mut quote: Option<u8> = None;
            while e < n && b[e] != b'\n' {
                match (quote, b[e]) {
                    (None, b'\'' | b'"') => quote = Some(b[e]),
                    (Some(q), ch) if ch == q => quote = None,
                    (None, b'\\') => break,
                    _ => {}
                }
                e += 1;
            }
            out.push(tok(TokenKind::Meta {
                name: &src[s..j],
                args: meta_args(&src[j..e]),
            }));
            i = e.max(j.max(i + 1));
        } else if c == b';' {
            out.push(tok(TokenKind::Semicolon));
            i += 1;
        } else {
            out.push(tok(TokenKind::Other(c)));
            i += 1;
        }
        for t in &mut out[before..] {
            t.span = start..i.min(n);
        }
    }
    out
}

/// `$tag$` starting at `i`: the index of its closing `$`, or `None` (`$1`, `a$b`).
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while let Some(&c) = b.get(j) {
        if c == b'$' {
            return Some(j);
        }
        if !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80) {
            return None;
        }
        j += 1;
    }
    None
}

/// Read from `start` up to the closing `q` (a doubled `q` is a literal `q`; `escapes` enables
/// backslash escapes). Borrows when nothing needed unescaping.
fn read_quoted<'a>(
    src: &'a str,
    start: usize,
    q: u8,
    escapes: bool,
    line: &mut usize,
) -> (Cow<'a, str>, usize) {
    let b = src.as_bytes();
    let mut i = start;
    let mut owned: Option<String> = None;
    let mut plain_from = start;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            *line += 1;
        }
        let escaped = escapes && c == b'\\' && i + 1 < b.len();
        let doubled = c == q && b.get(i + 1) == Some(&q);
        if escaped || doubled {
            let s = owned.get_or_insert_with(String::new);
            s.push_str(&src[plain_from..i]);
            if escaped {
                // The escaped character may be multi-byte: copy it whole.
                let ch = src[i + 1..].chars().next().unwrap_or('\\');
                s.push(match ch {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
                i += 1 + ch.len_utf8();
            } else {
                s.push(char::from(q));
                i += 2;
            }
            plain_from = i;
            continue;
        }
        if c == q {
            return (finish(src, owned, plain_from, i), i + 1);
        }
        i += 1;
    }
    (finish(src, owned, plain_from, b.len()), b.len())
}

fn finish(src: &str, owned: Option<String>, from: usize, to: usize) -> Cow<'_, str> {
    let tail = src.get(from..to).unwrap_or("");
    match owned {
        Some(mut s) => {
            s.push_str(tail);
            Cow::Owned(s)
        }
        None => Cow::Borrowed(tail),
    }
}

/// Split meta-command arguments as psql does: whitespace-separated, `'…'` and `"…"` quoted.
fn meta_args(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    for c in rest.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has = true;
            }
            None if c.is_whitespace() => {
                if has {
                    args.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            None => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        args.push(cur);
    }
    args
}

/// A name in a statement: `None` when (part of) it comes from a shell expansion, so its value is
/// unknown.
pub type Name = Option<String>;

/// What a script does that the policies care about, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `\c db` / `\connect db`: later statements run in `db`.
    Connect { database: Name, line: usize },
    /// `CREATE DATABASE name [TEMPLATE t]`.
    CreateDatabase {
        name: Name,
        template: Option<Name>,
        line: usize,
    },
    /// `DROP DATABASE [IF EXISTS] name`.
    DropDatabase {
        name: Name,
        if_exists: bool,
        line: usize,
    },
    /// `CREATE EXTENSION [IF NOT EXISTS] name [WITH] [SCHEMA s] [VERSION v] [CASCADE]`.
    CreateExtension {
        name: Name,
        if_not_exists: bool,
        schema: Option<Name>,
        cascade: bool,
        line: usize,
    },
    /// `DROP EXTENSION [IF EXISTS] a, b [CASCADE | RESTRICT]`.
    DropExtension {
        names: Vec<Name>,
        if_exists: bool,
        cascade: bool,
        line: usize,
    },
    /// `CREATE SCHEMA [IF NOT EXISTS] name` (or `CREATE SCHEMA AUTHORIZATION role`).
    CreateSchema {
        name: Name,
        if_not_exists: bool,
        line: usize,
    },
    /// `DROP SCHEMA [IF EXISTS] a, b [CASCADE | RESTRICT]`.
    DropSchema {
        names: Vec<Name>,
        if_exists: bool,
        cascade: bool,
        line: usize,
    },
    /// A transaction-control statement.
    Transaction { op: TxOp, line: usize },
    /// `DO $$ … $$`: the statements of its body. `certain`: the body is a plain `BEGIN … END`
    /// block whose statements all run (no conditions, loops, dynamic SQL or handlers).
    Do {
        events: Vec<Event>,
        certain: bool,
        line: usize,
    },
    /// `CREATE|ALTER ROLE|USER name … PASSWORD …`.
    RolePassword {
        role: String,
        password: PasswordValue,
        line: usize,
    },
    /// `\set NAME value` (`None`: `\unset NAME`).
    SetVariable {
        name: String,
        value: Option<String>,
        line: usize,
    },
}

/// The `line` field of any [`Event`] (by reference or mutably): the one list of its variants.
macro_rules! event_line {
    ($event:expr) => {
        match $event {
            Event::Connect { line, .. }
            | Event::CreateDatabase { line, .. }
            | Event::DropDatabase { line, .. }
            | Event::CreateExtension { line, .. }
            | Event::DropExtension { line, .. }
            | Event::CreateSchema { line, .. }
            | Event::DropSchema { line, .. }
            | Event::Transaction { line, .. }
            | Event::Do { line, .. }
            | Event::RolePassword { line, .. }
            | Event::SetVariable { line, .. } => line,
        }
    };
}

impl Event {
    pub fn line(&self) -> usize {
        *event_line!(self)
    }

    /// The line, to move the event (a `DO` body's events count from the body's first line).
    fn line_mut(&mut self) -> &mut usize {
        event_line!(self)
    }
}

/// Transaction control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOp {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`; `chain`: `AND CHAIN` starts a new transaction.
    Commit {
        chain: bool,
    },
    /// `ROLLBACK`, `ABORT`.
    Rollback {
        chain: bool,
    },
    Savepoint(Name),
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo(Name),
    /// `RELEASE [SAVEPOINT] name`.
    Release(Name),
}

/// How a role password is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordValue {
    /// A string literal in clear text (never shown in messages).
    Plain(String),
    /// A pre-hashed verifier (`SCRAM-SHA-256$…`, `md5…`).
    Hashed,
    /// A psql variable (`:'auth_password'`).
    Variable(String),
    /// A shell expansion in a here-document or `-c` argument (`'$APP_PASSWORD'`): its value is
    /// not in the script.
    Expansion,
    /// `PASSWORD NULL`.
    Null,
}

/// Split into statements (at `;` and meta-commands) and report the events.
pub fn scan(src: &str) -> Vec<Event> {
    scan_with_unknown(src, &[])
}

/// [`scan`] for SQL a shell script hands to psql (a here-document, a `-c` argument): a name or
/// string that contains a shell expansion has a value the script does not show.
pub fn scan_shell(text: &crate::shell::Word) -> Vec<Event> {
    // The placeholder lexes like an identifier character, as most expansion values would.
    let (src, unknown) = text.render(&|_| "\u{FFFC}".to_string());
    scan_with_unknown(&src, &unknown)
}

/// `unknown`: byte ranges of `src` that stand for values the scanner cannot know.
fn scan_with_unknown(src: &str, unknown: &[Range<usize>]) -> Vec<Event> {
    let tokens = tokenize(src);
    let mut scanner = Scanner {
        unknown,
        events: Vec::new(),
    };
    let mut stmt: Vec<&Token<'_>> = Vec::new();
    for t in &tokens {
        match &t.kind {
            TokenKind::Semicolon => {
                scanner.statement(&stmt);
                stmt.clear();
            }
            TokenKind::Meta { name, args } => {
                scanner.statement(&stmt);
                stmt.clear();
                if *name == "set" || *name == "unset" {
                    if let Some(var) = args.first() {
                        scanner.events.push(Event::SetVariable {
                            name: var.clone(),
                            value: (*name == "set").then(|| args[1..].concat()),
                            line: t.line,
                        });
                    }
                } else if *name == "c" || *name == "connect" {
                    let database = match connect_target(args) {
                        Some(_) if scanner.is_unknown(&t.span) => None,
                        Some(db) => Some(db),
                        // `\c` alone or `\c -`: the same database again.
                        None => continue,
                    };
                    scanner.events.push(Event::Connect {
                        database,
                        line: t.line,
                    });
                }
            }
            _ => stmt.push(t),
        }
    }
    scanner.statement(&stmt);
    scanner.events
}

/// `\c [dbname [user …]]` or `\c dbname=x …`; `-` means "the current one".
fn connect_target(args: &[String]) -> Option<String> {
    let first = args.iter().find(|a| !a.starts_with("-reuse-previous"))?;
    if first.contains('=') {
        return first
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("dbname="))
            .map(str::to_string);
    }
    (first != "-").then(|| first.clone())
}

/// Whether a `\connect` reaches the server, as far as its arguments tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Only a database (or nothing): the connection opens when the database exists.
    Opens,
    /// A user, host or connection option is given: whether it opens depends on the server.
    Unknown,
    /// psql or libpq refuses the arguments (a port that is not a number from 1 to 65535).
    Fails,
}

/// How `\connect [-reuse-previous=…] [dbname [user [host [port]]]] | conninfo` ends, from its
/// arguments as psql splits them. `unknown`: an argument (by index) holds a shell expansion.
pub fn connect_outcome(args: &[String], unknown: &dyn Fn(usize) -> bool) -> ConnectOutcome {
    let skip = usize::from(
        args.first()
            .is_some_and(|a| a.starts_with("-reuse-previous=")),
    );
    let given = |k: usize| args.get(skip + k).filter(|a| a.as_str() != "-");
    if let Some(port) = given(3) {
        let valid = port
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| (1..=65535).contains(&p));
        if !valid && !port.trim().is_empty() {
            return if unknown(skip + 3) {
                ConnectOutcome::Unknown
            } else {
                ConnectOutcome::Fails
            };
        }
    }
    let only_dbname = given(0).is_none_or(|d| {
        match d
            .strip_prefix("postgresql://")
            .or_else(|| d.strip_prefix("postgres://"))
        {
            // A URI without host, user or parameters: `postgresql:///db`.
            Some(rest) => rest.starts_with('/') && !rest.contains('?'),
            None => d
                .split_whitespace()
                .all(|kv| kv.starts_with("dbname=") || !kv.contains('=')),
        }
    });
    if (1..4).any(|k| given(k).is_some()) || !only_dbname {
        ConnectOutcome::Unknown
    } else {
        ConnectOutcome::Opens
    }
}

struct Scanner<'u> {
    unknown: &'u [Range<usize>],
    events: Vec<Event>,
}

/// The words that end the name list of a `DROP` statement.
const DROP_TAIL: &[&str] = &["cascade", "restrict"];

impl Scanner<'_> {
    fn is_unknown(&self, span: &Range<usize>) -> bool {
        self.unknown
            .iter()
            .any(|u| u.start < span.end && span.start < u.end)
    }

    /// The name a token gives, `None` when it is not a name at all; `Some(None)` when unknown.
    fn name(&self, t: Option<&&Token<'_>>) -> Option<Name> {
        let t = t?;
        let ident = t.ident()?;
        Some((!self.is_unknown(&t.span)).then_some(ident))
    }

    /// Names separated by commas from `i`, up to CASCADE/RESTRICT or the end.
    fn name_list(&self, stmt: &[&Token<'_>], mut i: usize) -> (Vec<Name>, usize) {
        let mut names = Vec::new();
        while let Some(name) = self.name(stmt.get(i)) {
            if DROP_TAIL.iter().any(|k| stmt[i].is_word(k)) {
                break;
            }
            names.push(name);
            i += 1;
            if stmt
                .get(i)
                .is_some_and(|t| t.kind == TokenKind::Other(b','))
            {
                i += 1;
            } else {
                break;
            }
        }
        (names, i)
    }

    fn statement(&mut self, stmt: &[&Token<'_>]) {
        let Some(first) = stmt.first() else {
            return;
        };
        let line = first.line;
        let kw = |i: usize, k: &str| stmt.get(i).is_some_and(|t| t.is_word(k));
        if kw(0, "create") && kw(1, "extension") {
            let mut i = 2;
            let if_not_exists = kw(i, "if") && kw(i + 1, "not") && kw(i + 2, "exists");
            if if_not_exists {
                i += 3;
            }
            let Some(name) = self.name(stmt.get(i)) else {
                return;
            };
            let schema = stmt
                .iter()
                .position(|t| t.is_word("schema"))
                .filter(|&p| p > i)
                .map(|p| self.name(stmt.get(p + 1)).unwrap_or(None));
            self.events.push(Event::CreateExtension {
                name,
                if_not_exists,
                schema,
                cascade: stmt[i + 1..].iter().any(|t| t.is_word("cascade")),
                line,
            });
        } else if kw(0, "drop") && (kw(1, "extension") || kw(1, "schema")) {
            let mut i = 2;
            let if_exists = kw(i, "if") && kw(i + 1, "exists");
            if if_exists {
                i += 2;
            }
            let (names, end) = self.name_list(stmt, i);
            if names.is_empty() {
                return;
            }
            let cascade = kw(end, "cascade");
            self.events.push(if kw(1, "extension") {
                Event::DropExtension {
                    names,
                    if_exists,
                    cascade,
                    line,
                }
            } else {
                Event::DropSchema {
                    names,
                    if_exists,
                    cascade,
                    line,
                }
            });
        } else if kw(0, "create") && kw(1, "schema") {
            let mut i = 2;
            let if_not_exists = kw(i, "if") && kw(i + 1, "not") && kw(i + 2, "exists");
            if if_not_exists {
                i += 3;
            }
            // `CREATE SCHEMA AUTHORIZATION role` names the schema after the role.
            if kw(i, "authorization") {
                i += 1;
            }
            if let Some(name) = self.name(stmt.get(i)) {
                self.events.push(Event::CreateSchema {
                    name,
                    if_not_exists,
                    line,
                });
            }
        } else if kw(0, "create") && kw(1, "database") {
            let Some(name) = self.name(stmt.get(2)) else {
                return;
            };
            let template = stmt
                .iter()
                .skip(3)
                .position(|t| t.is_word("template"))
                .map(|p| {
                    let mut j = p + 4;
                    if stmt
                        .get(j)
                        .is_some_and(|t| t.kind == TokenKind::Other(b'='))
                    {
                        j += 1;
                    }
                    self.name(stmt.get(j)).unwrap_or(None)
                });
            self.events.push(Event::CreateDatabase {
                name,
                template,
                line,
            });
        } else if kw(0, "drop") && kw(1, "database") {
            let mut i = 2;
            let if_exists = kw(i, "if") && kw(i + 1, "exists");
            if if_exists {
                i += 2;
            }
            if let Some(name) = self.name(stmt.get(i)) {
                self.events.push(Event::DropDatabase {
                    name,
                    if_exists,
                    line,
                });
            }
        } else if let Some(op) = transaction(stmt, |t| self.name(t).unwrap_or(None)) {
            self.events.push(Event::Transaction { op, line });
        } else if kw(0, "do") {
            if let Some((body, body_line)) = stmt.iter().find_map(|t| match &t.kind {
                TokenKind::Str(s) => Some((s, t.line)),
                _ => None,
            }) {
                self.events.push(do_block(body, body_line, line));
            }
        } else if (kw(0, "create") || kw(0, "alter")) && (kw(1, "role") || kw(1, "user")) {
            self.role_password(stmt);
        }
    }

    fn role_password(&mut self, stmt: &[&Token<'_>]) {
        let role = stmt
            .get(2)
            .map(|t| match &t.kind {
                TokenKind::Var(v) => format!(":{v}"),
                _ => t.ident().unwrap_or_default(),
            })
            .unwrap_or_default();
        for (p, t) in stmt.iter().enumerate() {
            if !t.is_word("password") {
                continue;
            }
            let next = stmt.get(p + 1);
            let password = match next.map(|t| &t.kind) {
                Some(TokenKind::Str(_)) if next.is_some_and(|n| self.is_unknown(&n.span)) => {
                    PasswordValue::Expansion
                }
                Some(TokenKind::Str(s)) if is_hashed_password(s) => PasswordValue::Hashed,
                Some(TokenKind::Str(s)) => PasswordValue::Plain(s.to_string()),
                Some(TokenKind::Var(v)) => PasswordValue::Variable(v.to_string()),
                Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("null") => PasswordValue::Null,
                _ => continue,
            };
            self.events.push(Event::RolePassword {
                role: role.clone(),
                password,
                line: t.line,
            });
        }
    }
}

/// A transaction-control statement, if `stmt` is one.
fn transaction(stmt: &[&Token<'_>], name: impl Fn(Option<&&Token<'_>>) -> Name) -> Option<TxOp> {
    let kw = |i: usize, k: &str| stmt.get(i).is_some_and(|t| t.is_word(k));
    // `WORK` / `TRANSACTION` are noise words after BEGIN, COMMIT, END, ROLLBACK, ABORT.
    let noise = |i: usize| usize::from(kw(i, "work") || kw(i, "transaction"));
    let chain = |i: usize| kw(i, "and") && kw(i + 1, "chain");
    if kw(0, "begin") || (kw(0, "start") && kw(1, "transaction")) {
        return Some(TxOp::Begin);
    }
    if kw(0, "commit") || kw(0, "end") {
        if kw(1, "prepared") {
            return None;
        }
        return Some(TxOp::Commit {
            chain: chain(1 + noise(1)),
        });
    }
    if kw(0, "savepoint") {
        return Some(TxOp::Savepoint(name(stmt.get(1))));
    }
    if kw(0, "release") {
        let i = 1 + usize::from(kw(1, "savepoint"));
        return Some(TxOp::Release(name(stmt.get(i))));
    }
    if kw(0, "rollback") || kw(0, "abort") {
        if kw(1, "prepared") {
            return None;
        }
        let i = 1 + noise(1);
        if kw(0, "rollback") && kw(i, "to") {
            let j = i + 1 + usize::from(kw(i + 1, "savepoint"));
            return Some(TxOp::RollbackTo(name(stmt.get(j))));
        }
        return Some(TxOp::Rollback { chain: chain(i) });
    }
    None
}

/// PL/pgSQL keywords that make a `DO` body's statements conditional, repeated or dynamic.
const PLPGSQL_CONTROL: &[&str] = &[
    "if",
    "case",
    "loop",
    "while",
    "for",
    "foreach",
    "exit",
    "continue",
    "return",
    "exception",
    "execute",
    "declare",
    "raise",
    "get",
];

/// PL/pgSQL words after which a new statement starts.
const PLPGSQL_SPLIT: &[&str] = &[
    "then",
    "else",
    "elsif",
    "loop",
    "begin",
    "declare",
    "exception",
];

/// The statements of a `DO` body (`BEGIN … END`, starting on `body_line`), and whether they
/// certainly all run.
fn do_block(body: &str, body_line: usize, line: usize) -> Event {
    let tokens = tokenize(body);
    let begin = tokens.iter().position(|t| t.is_word("begin"));
    let end = tokens.iter().rposition(|t| t.is_word("end"));
    let certain = begin.is_some()
        && end > begin
        && !tokens
            .iter()
            .any(|t| PLPGSQL_CONTROL.iter().any(|k| t.is_word(k)));
    let (from, to) = match (begin, end) {
        (Some(b), Some(e)) if e > b => (b + 1, e),
        _ => (0, tokens.len()),
    };
    // Statements end at `;` and at the PL/pgSQL words that open or continue a block, so that
    // `IF … THEN CREATE EXTENSION x; END IF` shows its CREATE EXTENSION.
    let mut scanner = Scanner {
        unknown: &[],
        events: Vec::new(),
    };
    let mut stmt: Vec<&Token<'_>> = Vec::new();
    for t in &tokens[from..to] {
        if t.kind == TokenKind::Semicolon || PLPGSQL_SPLIT.iter().any(|k| t.is_word(k)) {
            scanner.statement(&stmt);
            stmt.clear();
        } else {
            stmt.push(t);
        }
    }
    scanner.statement(&stmt);
    // `END IF`, `END LOOP` close PL/pgSQL blocks: no transaction control is read in a body.
    let mut events: Vec<Event> = scanner
        .events
        .into_iter()
        .filter(|e| !matches!(e, Event::Transaction { .. }))
        .collect();
    // Lines inside the body count from the line the body starts on.
    let offset = body_line - 1;
    for e in &mut events {
        shift_line(e, offset);
    }
    Event::Do {
        events,
        certain,
        line,
    }
}

fn shift_line(e: &mut Event, by: usize) {
    *e.line_mut() += by;
    if let Event::Do { events, .. } = e {
        for e in events {
            shift_line(e, by);
        }
    }
}

/// A psql boolean variable value (`on`, `off`, `true`, `1`, unique prefixes…), as psql's
/// `ParseVariableBool` reads it; `None` when psql would reject it.
pub fn psql_bool(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || v == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// A verifier PostgreSQL stores as is: `SCRAM-SHA-256$<iter>:<salt>$<key>:<key>` or `md5` + 32 hex.
pub fn is_hashed_password(s: &str) -> bool {
    let md5 = s.len() == 35
        && s.starts_with("md5")
        && s.get(3..)
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    let scram = s.starts_with("SCRAM-SHA-256$") && s.contains(':') && s.matches('$').count() >= 2;
    md5 || scram
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exts(src: &str) -> Vec<String> {
        scan(src)
            .into_iter()
            .filter_map(|e| match e {
                Event::CreateExtension { name, .. } => name,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn create_extension_forms() {
        let src = "create extension postgis;\nCREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;\n\
                   Create\n  Extension\n  IF not EXISTS pgcrypto\n  VERSION '1.3' CASCADE;\nCREATE EXTENSION \"PostGIS\"";
        assert_eq!(
            exts(src),
            vec!["postgis", "uuid-ossp", "pgcrypto", "PostGIS"]
        );
    }

    #[test]
    fn comments_and_strings_are_not_sql() {
        let src = "-- CREATE EXTENSION a;\n/* outer /* CREATE EXTENSION b; */ still comment CREATE EXTENSION c; */\n\
                   SELECT 'CREATE EXTENSION d;';\nSELECT E'it\\'s; CREATE EXTENSION e';\n\
                   DO $body$ BEGIN EXECUTE 'CREATE EXTENSION f'; END $body$;\nSELECT $$;CREATE EXTENSION g;$$;\n\
                   CREATE EXTENSION real_one;";
        assert_eq!(exts(src), vec!["real_one"]);
    }

    #[test]
    fn connect_outcomes() {
        let outcome = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            connect_outcome(&args, &|_| false)
        };
        assert_eq!(outcome(&[]), ConnectOutcome::Opens);
        assert_eq!(outcome(&["db"]), ConnectOutcome::Opens);
        assert_eq!(
            outcome(&["-reuse-previous=on", "db", "-"]),
            ConnectOutcome::Opens
        );
        assert_eq!(outcome(&["dbname=db"]), ConnectOutcome::Opens);
        assert_eq!(outcome(&["postgresql:///db"]), ConnectOutcome::Opens);
        assert_eq!(outcome(&["db", "someone"]), ConnectOutcome::Unknown);
        assert_eq!(
            outcome(&["db", "u", "host", "5433"]),
            ConnectOutcome::Unknown
        );
        assert_eq!(outcome(&["dbname=db host=h"]), ConnectOutcome::Unknown);
        assert_eq!(outcome(&["postgresql://h/db"]), ConnectOutcome::Unknown);
        assert_eq!(outcome(&["db", "u", "h", "FROM"]), ConnectOutcome::Fails);
        assert_eq!(outcome(&["db", "u", "h", "70000"]), ConnectOutcome::Fails);
        let args: Vec<String> = ["db", "u", "h", "\u{FFFC}"].map(String::from).to_vec();
        assert_eq!(connect_outcome(&args, &|k| k == 3), ConnectOutcome::Unknown);
    }

    #[test]
    fn connect_and_databases() {
        let src = "CREATE DATABASE sos_app_emergency TEMPLATE = template0;\n\\connect sos_app_emergency\n\
                   CREATE EXTENSION postgis;\n\\c \"sos_app_auth\" postgres\nCREATE EXTENSION pgcrypto;\n\\c dbname=x user=y\n";
        let ev = scan(src);
        assert_eq!(
            ev[0],
            Event::CreateDatabase {
                name: Some("sos_app_emergency".into()),
                template: Some(Some("template0".into())),
                line: 1
            }
        );
        let db = |e: &Event| match e {
            Event::Connect { database, .. } => database.clone(),
            _ => None,
        };
        assert_eq!(db(&ev[1]).as_deref(), Some("sos_app_emergency"));
        assert!(
            matches!(&ev[2], Event::CreateExtension { name: Some(n), line: 3, .. } if n == "postgis")
        );
        assert_eq!(db(&ev[3]).as_deref(), Some("sos_app_auth"));
        assert_eq!(db(&ev[5]).as_deref(), Some("x"));
    }

    #[test]
    fn drops_schemas_transactions_and_do_blocks() {
        let src = "DROP EXTENSION IF EXISTS a, \"B\" CASCADE;\nCREATE EXTENSION x WITH SCHEMA \"S\" CASCADE;\n\
                   CREATE SCHEMA IF NOT EXISTS s; DROP SCHEMA s, t RESTRICT;\nBEGIN; SAVEPOINT p; ROLLBACK TO SAVEPOINT p;\n\
                   RELEASE p; COMMIT AND CHAIN; END; ABORT; START TRANSACTION;\nDROP DATABASE IF EXISTS d;\n\
                   DO $$ BEGIN CREATE EXTENSION y; END $$;\nDO $$ BEGIN IF true THEN DROP EXTENSION z; END IF; END $$;\n\
                   \\set ON_ERROR_STOP off\n";
        let ev = scan(src);
        assert_eq!(
            ev[0],
            Event::DropExtension {
                names: vec![Some("a".into()), Some("B".into())],
                if_exists: true,
                cascade: true,
                line: 1
            }
        );
        assert_eq!(
            ev[1],
            Event::CreateExtension {
                name: Some("x".into()),
                if_not_exists: false,
                schema: Some(Some("S".into())),
                cascade: true,
                line: 2
            }
        );
        assert!(
            matches!(&ev[3], Event::DropSchema { names, cascade: false, .. } if names.len() == 2)
        );
        let ops: Vec<&TxOp> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Transaction { op, .. } => Some(op),
                _ => None,
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                &TxOp::Begin,
                &TxOp::Savepoint(Some("p".into())),
                &TxOp::RollbackTo(Some("p".into())),
                &TxOp::Release(Some("p".into())),
                &TxOp::Commit { chain: true },
                &TxOp::Commit { chain: false },
                &TxOp::Rollback { chain: false },
                &TxOp::Begin,
            ]
        );
        let dos: Vec<(bool, usize)> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Do {
                    events, certain, ..
                } => Some((*certain, events.len())),
                _ => None,
            })
            .collect();
        assert_eq!(dos, vec![(true, 1), (false, 1)]);
        assert!(
            matches!(ev.last(), Some(Event::SetVariable { name, value: Some(v), .. }) if name == "ON_ERROR_STOP" && v == "off")
        );
        assert_eq!(psql_bool("of"), Some(false));
        assert_eq!(psql_bool("o"), None);
        assert_eq!(psql_bool("TR"), Some(true));
    }

    #[test]
    fn expansions_make_values_unknown() {
        let w = crate::shell::parse(
            "psql <<EOF\nALTER ROLE a PASSWORD '$PW';\nCREATE EXTENSION $EXT;\n\\c $DB\nALTER ROLE b PASSWORD 'lit';\nEOF\n",
        );
        let body = &w[0].heredoc().unwrap().body;
        let ev = scan_shell(body);
        assert!(matches!(
            &ev[0],
            Event::RolePassword {
                password: PasswordValue::Expansion,
                ..
            }
        ));
        assert!(matches!(&ev[1], Event::CreateExtension { name: None, .. }));
        assert!(matches!(&ev[2], Event::Connect { database: None, .. }));
        assert!(
            matches!(&ev[3], Event::RolePassword { password: PasswordValue::Plain(p), .. } if p == "lit")
        );
        // The placeholder is only special for shell text: in a .sql file it is a character.
        let ev = scan("ALTER ROLE a PASSWORD 'x\u{FFFC}';");
        assert!(matches!(
            &ev[0],
            Event::RolePassword {
                password: PasswordValue::Plain(_),
                ..
            }
        ));
    }

    #[test]
    fn role_passwords() {
        let src = "CREATE ROLE a LOGIN PASSWORD 'hunter2';\nALTER USER b WITH ENCRYPTED PASSWORD :'b_password';\n\
                   CREATE USER c PASSWORD NULL;\nALTER ROLE d PASSWORD 'md50123456789abcdef0123456789abcdef';\n\
                   CREATE ROLE e PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy';\n\
                   SELECT x::text FROM t; -- ALTER ROLE f PASSWORD 'no'";
        let pw: Vec<PasswordValue> = scan(src)
            .into_iter()
            .filter_map(|e| match e {
                Event::RolePassword { password, .. } => Some(password),
                _ => None,
            })
            .collect();
        assert_eq!(
            pw,
            vec![
                PasswordValue::Plain("hunter2".into()),
                PasswordValue::Variable("b_password".into()),
                PasswordValue::Null,
                PasswordValue::Hashed,
                PasswordValue::Hashed,
            ]
        );
    }

    #[test]
    fn psql_variables_and_casts() {
        let t = tokenize("SELECT :'v', :\"i\", :raw, a::int, $1, a$b");
        let vars: Vec<_> = t
            .iter()
            .filter_map(|t| match &t.kind {
                TokenKind::Var(v) => Some(v.as_ref()),
                _ => None,
            })
            .collect();
        assert_eq!(vars, vec!["v", "i", "raw"]);
        assert!(t.iter().any(|t| t.is_word("a$b")));
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for src in ["'abc", "$x$ abc", "/* /* */", "E'\\", "\\", ":'", "\"x"] {
            let _ = scan(src);
        }
        let t = tokenize("SELECT E'ä\\é''x', 'ü''y', $ä$ a;b $ä$, \"Ü\"\"n\";");
        let strs: Vec<String> = t
            .iter()
            .filter_map(|t| match &t.kind {
                TokenKind::Str(s) | TokenKind::QuotedIdent(s) => Some(s.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(strs, vec!["äé'x", "ü'y", " a;b ", "Ü\"n"]);
    }
}
