//! A small PostgreSQL + psql lexer and the statement scanner the content policies need.
//!
//! It tokenizes the way PostgreSQL and psql do: case-insensitive keywords, `--` line comments and
//! nested `/* */` block comments, `'…'` strings (with `''`), `E'…'` strings (backslash escapes),
//! `$tag$…$tag$` dollar-quoted strings, `"quoted"` identifiers, psql meta-commands (a backslash
//! command up to the end of the line, e.g. `\connect db`) and psql variables (`:'var'`, `:"var"`,
//! `:var`, but not `::type` casts). Nothing inside a comment or a string is ever read as SQL.

/// One lexical token with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// Unquoted keyword or identifier, as written (compare with [`Token::is_word`]).
    Word(String),
    /// `"quoted identifier"`, unescaped.
    QuotedIdent(String),
    /// A string constant (`'…'`, `E'…'`, `$tag$…$tag$`), its value.
    Str(String),
    /// A psql variable: `:'name'`, `:"name"` or `:name`.
    Var(String),
    /// A number or any other operator/punctuation character.
    Other(char),
    /// `;`
    Semicolon,
    /// A psql meta-command: name without the backslash (`c`, `connect`, `set`…) and its arguments.
    Meta { name: String, args: Vec<String> },
}

impl Token {
    /// True for an unquoted word equal (ASCII case-insensitively) to `kw`.
    pub fn is_word(&self, kw: &str) -> bool {
        matches!(&self.kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The identifier this token names: unquoted words fold to lower case, quoted ones do not.
    pub fn ident(&self) -> Option<String> {
        match &self.kind {
            TokenKind::Word(w) => Some(w.to_ascii_lowercase()),
            TokenKind::QuotedIdent(s) => Some(s.clone()),
            _ => None,
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Tokenize SQL text (with psql meta-commands). Unterminated strings or comments end at the end
/// of the input, as psql would keep waiting for more.
pub fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let n = chars.len();
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    while i < n {
        let c = chars[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '-' && at(i + 1) == '-' {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0usize;
            while i < n {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if (c == 'e' || c == 'E') && at(i + 1) == '\'' {
            let (s, next) = read_quoted(&chars, i + 2, '\'', true, &mut line);
            out.push(tok(TokenKind::Str(s), start_line));
            i = next;
        } else if c == '\'' {
            let (s, next) = read_quoted(&chars, i + 1, '\'', false, &mut line);
            out.push(tok(TokenKind::Str(s), start_line));
            i = next;
        } else if c == '"' {
            let (s, next) = read_quoted(&chars, i + 1, '"', false, &mut line);
            out.push(tok(TokenKind::QuotedIdent(s), start_line));
            i = next;
        } else if c == '$'
            && let Some(tag_end) = dollar_tag(&chars, i)
        {
            let tag: Vec<char> = chars[i..=tag_end].to_vec();
            let body_start = tag_end + 1;
            let mut j = body_start;
            let mut end = None;
            while j < n {
                if chars[j] == '$' && chars[j..].starts_with(&tag) {
                    end = Some(j);
                    break;
                }
                j += 1;
            }
            let body_end = end.unwrap_or(n);
            let body: String = chars[body_start..body_end].iter().collect();
            line += body.matches('\n').count();
            out.push(tok(TokenKind::Str(body), start_line));
            i = end.map_or(n, |e| e + tag.len());
        } else if is_ident_start(c) {
            let s = i;
            while i < n && is_ident_char(chars[i]) {
                i += 1;
            }
            out.push(tok(
                TokenKind::Word(chars[s..i].iter().collect()),
                start_line,
            ));
        } else if c == ':' && at(i + 1) == ':' {
            out.push(tok(TokenKind::Other(':'), start_line));
            out.push(tok(TokenKind::Other(':'), start_line));
            i += 2;
        } else if c == ':' && (at(i + 1) == '\'' || at(i + 1) == '"') {
            let q = at(i + 1);
            let (s, next) = read_quoted(&chars, i + 2, q, false, &mut line);
            out.push(tok(TokenKind::Var(s), start_line));
            i = next;
        } else if c == ':' && is_ident_start(at(i + 1)) {
            let s = i + 1;
            i += 1;
            while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(tok(
                TokenKind::Var(chars[s..i].iter().collect()),
                start_line,
            ));
        } else if c == '\\' {
            let s = i + 1;
            let mut j = s;
            while j < n && chars[j].is_alphanumeric() {
                j += 1;
            }
            let name: String = chars[s..j].iter().collect();
            let mut e = j;
            // A meta-command's arguments end at the end of the line or at the next backslash
            // command (`\gexec`), outside quotes.
            let mut quote: Option<char> = None;
            while e < n && chars[e] != '\n' {
                match (quote, chars[e]) {
                    (None, '\'' | '"') => quote = Some(chars[e]),
                    (Some(q), ch) if ch == q => quote = None,
                    (None, '\\') => break,
                    _ => {}
                }
                e += 1;
            }
            let rest: String = chars[j..e].iter().collect();
            out.push(tok(
                TokenKind::Meta {
                    name,
                    args: meta_args(&rest),
                },
                start_line,
            ));
            i = e.max(j.max(i + 1));
        } else if c == ';' {
            out.push(tok(TokenKind::Semicolon, start_line));
            i += 1;
        } else {
            out.push(tok(TokenKind::Other(c), start_line));
            i += 1;
        }
    }
    out
}

fn tok(kind: TokenKind, line: usize) -> Token {
    Token { kind, line }
}

/// `$tag$` starting at `i`: the index of its closing `$`, or `None` (`$1`, `a$b`).
fn dollar_tag(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while let Some(&c) = chars.get(j) {
        if c == '$' {
            return Some(j);
        }
        if !(c.is_alphanumeric() || c == '_') {
            return None;
        }
        j += 1;
    }
    None
}

/// Read up to the closing `q` (doubled `q` is a literal `q`; `escapes` enables backslashes).
fn read_quoted(
    chars: &[char],
    mut i: usize,
    q: char,
    escapes: bool,
    line: &mut usize,
) -> (String, usize) {
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            *line += 1;
        }
        if escapes
            && c == '\\'
            && let Some(&next) = chars.get(i + 1)
        {
            s.push(match next {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            });
            i += 2;
            continue;
        }
        if c == q {
            if chars.get(i + 1) == Some(&q) {
                s.push(q);
                i += 2;
                continue;
            }
            return (s, i + 1);
        }
        s.push(c);
        i += 1;
    }
    (s, i)
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
    let mut stmt: Vec<&Token> = Vec::new();
    for t in &tokens {
        match &t.kind {
            TokenKind::Semicolon => {
                statement_events(&stmt, &mut events);
                stmt.clear();
            }
            TokenKind::Meta { name, args } => {
                statement_events(&stmt, &mut events);
                stmt.clear();
                if (name == "c" || name == "connect")
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

fn statement_events(stmt: &[&Token], events: &mut Vec<Event>) {
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
                    if stmt.get(j).is_some_and(|t| t.kind == TokenKind::Other('=')) {
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
                Some(TokenKind::Str(s)) => PasswordValue::Plain(s.clone()),
                Some(TokenKind::Var(v)) => PasswordValue::Variable(v.clone()),
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
                TokenKind::Var(v) => Some(v.as_str()),
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
    }
}
