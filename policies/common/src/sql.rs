//! A small PostgreSQL + psql lexer and the statement scanner the content policies need.
//!
//! It tokenizes the way PostgreSQL and psql do: case-insensitive keywords, `--` line comments and
//! nested `/* */` block comments, `'…'` strings (with `''`), `E'…'` strings (backslash escapes),
//! `$tag$…$tag$` dollar-quoted strings, `"quoted"` identifiers, psql meta-commands (a backslash
//! command up to the end of the line, e.g. `\connect db`) and psql variables (`:'var'`, `:"var"`,
//! `:var`, but not `::type` casts). Nothing inside a comment or a string is ever read as SQL.

use std::borrow::Cow;

/// One lexical token with the 1-based line it starts on; text borrows from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind<'a>,
    pub line: usize,
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
        let tok = |kind| Token {
            kind,
            line: start_line,
        };
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

/// What a script does that the policies care about, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `\c db` / `\connect db`: later statements run in `db`.
    Connect { database: String, line: usize },
    /// `CREATE DATABASE name [TEMPLATE t]`.
    CreateDatabase {
        name: String,
        template: Option<String>,
        line: usize,
    },
    /// `CREATE EXTENSION [IF NOT EXISTS] name …`.
    CreateExtension { name: String, line: usize },
    /// `CREATE|ALTER ROLE|USER name … PASSWORD …`.
    RolePassword {
        role: String,
        password: PasswordValue,
        line: usize,
    },
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
    /// `PASSWORD NULL`.
    Null,
}

/// Split into statements (at `;` and meta-commands) and report the events.
pub fn scan(src: &str) -> Vec<Event> {
    let tokens = tokenize(src);
    let mut events = Vec::new();
    let mut stmt: Vec<&Token<'_>> = Vec::new();
    for t in &tokens {
        match &t.kind {
            TokenKind::Semicolon => {
                statement_events(&stmt, &mut events);
                stmt.clear();
            }
            TokenKind::Meta { name, args } => {
                statement_events(&stmt, &mut events);
                stmt.clear();
                if (*name == "c" || *name == "connect")
                    && let Some(db) = connect_target(args)
                {
                    events.push(Event::Connect {
                        database: db,
                        line: t.line,
                    });
                }
            }
            _ => stmt.push(t),
        }
    }
    statement_events(&stmt, &mut events);
    events
}

/// `\c [dbname [user …]]` or `\c dbname=x …`; `-` means "the current one".
fn connect_target(args: &[String]) -> Option<String> {
    let first = args.first()?;
    if first.contains('=') {
        return first
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("dbname="))
            .map(str::to_string);
    }
    (first != "-").then(|| first.clone())
}

fn statement_events(stmt: &[&Token<'_>], events: &mut Vec<Event>) {
    let Some(first) = stmt.first() else {
        return;
    };
    let line = first.line;
    let kw = |i: usize, k: &str| stmt.get(i).is_some_and(|t| t.is_word(k));
    if kw(0, "create") && kw(1, "extension") {
        let mut i = 2;
        if kw(i, "if") && kw(i + 1, "not") && kw(i + 2, "exists") {
            i += 3;
        }
        if let Some(name) = stmt.get(i).and_then(|t| t.ident()) {
            events.push(Event::CreateExtension { name, line });
        }
    } else if kw(0, "create") && kw(1, "database") {
        if let Some(name) = stmt.get(2).and_then(|t| t.ident()) {
            let template = stmt
                .iter()
                .position(|t| t.is_word("template"))
                .and_then(|p| {
                    let mut j = p + 1;
                    if stmt
                        .get(j)
                        .is_some_and(|t| t.kind == TokenKind::Other(b'='))
                    {
                        j += 1;
                    }
                    stmt.get(j).and_then(|t| t.ident())
                });
            events.push(Event::CreateDatabase {
                name,
                template,
                line,
            });
        }
    } else if (kw(0, "create") || kw(0, "alter")) && (kw(1, "role") || kw(1, "user")) {
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
            let password = match stmt.get(p + 1).map(|t| &t.kind) {
                Some(TokenKind::Str(s)) if is_hashed_password(s) => PasswordValue::Hashed,
                Some(TokenKind::Str(s)) => PasswordValue::Plain(s.to_string()),
                Some(TokenKind::Var(v)) => PasswordValue::Variable(v.to_string()),
                Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("null") => PasswordValue::Null,
                _ => continue,
            };
            events.push(Event::RolePassword {
                role: role.clone(),
                password,
                line: t.line,
            });
        }
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
                Event::CreateExtension { name, .. } => Some(name),
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
    fn connect_and_databases() {
        let src = "CREATE DATABASE sos_app_emergency TEMPLATE = template0;\n\\connect sos_app_emergency\n\
                   CREATE EXTENSION postgis;\n\\c \"sos_app_auth\" postgres\nCREATE EXTENSION pgcrypto;\n\\c dbname=x user=y\n";
        let ev = scan(src);
        assert_eq!(
            ev[0],
            Event::CreateDatabase {
                name: "sos_app_emergency".into(),
                template: Some("template0".into()),
                line: 1
            }
        );
        assert!(
            matches!(&ev[1], Event::Connect { database, line: 2 } if database == "sos_app_emergency")
        );
        assert!(matches!(&ev[2], Event::CreateExtension { name, line: 3 } if name == "postgis"));
        assert!(matches!(&ev[3], Event::Connect { database, .. } if database == "sos_app_auth"));
        assert!(matches!(&ev[5], Event::Connect { database, .. } if database == "x"));
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
