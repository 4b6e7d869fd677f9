//! Enough of POSIX sh to see what a script runs: simple commands with their words after quote
//! removal, variable assignments, here-documents, comments and line continuations.
//!
//! Used to find what `.sh` init scripts feed to `psql` (here-documents, `-c` arguments), which
//! credentials they set (`PGPASSWORD=…`), and what `sh -c "…"` container commands start.

/// One word after quote removal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    /// Text with quotes removed and escapes resolved; expansions are kept verbatim (`$X`).
    pub text: String,
    /// True when an unquoted or double-quoted `$…` or backquote expansion is part of the word.
    pub expands: bool,
}

/// A here-document attached to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub body: String,
    /// `<<'EOF'` / `<<"EOF"` / `<<\EOF`: the body is taken literally (no expansion).
    pub quoted: bool,
    /// Line of the `<<` operator.
    pub line: usize,
}

/// A simple command: leading `NAME=value` assignments, then the words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    pub assignments: Vec<(String, Word)>,
    pub words: Vec<Word>,
    pub heredocs: Vec<Heredoc>,
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
}

enum Tok {
    Word(Word),
    Sep,
    Redirect,
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

    /// Read the rest of a `$(…)`, `${…}` or backquote expansion into `out`, balancing brackets.
    fn read_expansion(&mut self, out: &mut String) {
        let open = self.peek(1);
        let (o, cl) = match open {
            '(' => ('(', ')'),
            '{' => ('{', '}'),
            _ => {
                // `$NAME`, `$1`, `$@`…
                out.push('$');
                self.i += 1;
                while !self.eof() && (self.peek(0).is_alphanumeric() || self.peek(0) == '_') {
                    out.push(self.peek(0));
                    self.i += 1;
                }
                if out.ends_with('$') && matches!(self.peek(0), '@' | '*' | '#' | '?' | '$' | '!') {
                    out.push(self.peek(0));
                    self.i += 1;
                }
                return;
            }
        };
        out.push('$');
        out.push(o);
        self.i += 2;
        let mut depth = 1;
        while !self.eof() && depth > 0 {
            let ch = self.peek(0);
            if ch == o {
                depth += 1;
            } else if ch == cl {
                depth -= 1;
            } else if ch == '\n' {
                self.line += 1;
            }
            out.push(ch);
            self.i += 1;
        }
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
                        w.text.push(self.peek(1));
                    }
                    self.i += 2;
                }
                '\'' => {
                    self.i += 1;
                    while !self.eof() && self.peek(0) != '\'' {
                        if self.peek(0) == '\n' {
                            self.line += 1;
                        }
                        w.text.push(self.peek(0));
                        self.i += 1;
                    }
                    self.i += 1;
                }
                '"' => {
                    self.i += 1;
                    while !self.eof() && self.peek(0) != '"' {
                        let d = self.peek(0);
                        if d == '\\' && matches!(self.peek(1), '"' | '\\' | '$' | '`' | '\n') {
                            if self.peek(1) != '\n' {
                                w.text.push(self.peek(1));
                            }
                            self.i += 2;
                        } else if d == '$' && self.peek(1) != '"' {
                            w.expands = true;
                            self.read_expansion(&mut w.text);
                        } else {
                            if d == '\n' {
                                self.line += 1;
                            }
                            w.text.push(d);
                            self.i += 1;
                        }
                    }
                    self.i += 1;
                }
                '$' if self.peek(1) != '\0' && !self.peek(1).is_whitespace() => {
                    w.expands = true;
                    self.read_expansion(&mut w.text);
                }
                '`' => {
                    w.expands = true;
                    w.text.push('`');
                    self.i += 1;
                    while !self.eof() && self.peek(0) != '`' {
                        w.text.push(self.peek(0));
                        self.i += 1;
                    }
                    w.text.push('`');
                    self.i += 1;
                }
                _ => {
                    w.text.push(ch);
                    self.i += 1;
                }
            }
        }
        w
    }
}

/// Parse a script into its simple commands, in order. Compound syntax (`if`, `for`, `{ }`,
/// functions, pipelines) is flattened: every simple command inside is reported.
pub fn parse(src: &str) -> Vec<Command> {
    let mut lx = Lexer {
        c: src.chars().collect(),
        i: 0,
        line: 1,
    };
    let mut commands: Vec<Command> = Vec::new();
    let mut cur = Command::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut expect_heredoc_delim: Option<bool> = None;
    let mut after_redirect = false;
    loop {
        // Skip blanks.
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
                        let heredoc = Heredoc {
                            body,
                            quoted: p.quoted,
                            line: p.line,
                        };
                        match commands.get_mut(p.command) {
                            Some(c) => c.heredocs.push(heredoc),
                            None => cur.heredocs.push(heredoc),
                        }
                    }
                    Tok::Sep
                }
                ';' | '&' | '|' | '(' | ')' => {
                    lx.i += 1;
                    Tok::Sep
                }
                '<' if lx.peek(1) == '<' && lx.peek(2) != '<' => {
                    let strip = lx.peek(2) == '-';
                    lx.i += if strip { 3 } else { 2 };
                    expect_heredoc_delim = Some(strip);
                    continue;
                }
                '<' | '>' => {
                    while matches!(lx.peek(0), '<' | '>' | '&') {
                        lx.i += 1;
                    }
                    Tok::Redirect
                }
                _ => {
                    let start = lx.i;
                    let word = lx.read_word();
                    lx.i = lx.i.min(lx.c.len());
                    let quoted = lx.c[start..lx.i]
                        .iter()
                        .any(|c| matches!(c, '\'' | '"' | '\\'));
                    if let Some(strip) = expect_heredoc_delim.take() {
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
            Some(Tok::Sep) => {
                after_redirect = false;
                // Here-documents of a finished command still reach it through its index.
                if !cur.words.is_empty() || !cur.assignments.is_empty() || !cur.heredocs.is_empty()
                {
                    commands.push(std::mem::take(&mut cur));
                }
            }
            Some(Tok::Redirect) => after_redirect = true,
            Some(Tok::Word(w)) => {
                if after_redirect {
                    after_redirect = false;
                    continue;
                }
                if cur.words.is_empty() && cur.assignments.is_empty() && cur.heredocs.is_empty() {
                    cur.line = lx.line;
                }
                if cur.words.is_empty()
                    && let Some((name, value)) = assignment(&w)
                {
                    cur.assignments.push((name, value));
                } else if cur.words.is_empty() && matches!(w.text.as_str(), "export" | "local") {
                    // `export A=b`: the assignments that follow are kept as assignments.
                } else {
                    cur.words.push(w);
                }
            }
        }
    }
    if !cur.words.is_empty() || !cur.assignments.is_empty() || !cur.heredocs.is_empty() {
        commands.push(cur);
    }
    // Keywords of compound commands and `exec` are not programs: `then exec psql …` is `psql …`.
    for c in &mut commands {
        while c.words.first().is_some_and(|w| {
            matches!(
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
            )
        }) {
            c.words.remove(0);
        }
    }
    commands
}

/// `NAME=value` (NAME a valid shell identifier).
fn assignment(w: &Word) -> Option<(String, Word)> {
    let (name, value) = w.text.split_once('=')?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| {
        (
            name.to_string(),
            Word {
                text: value.to_string(),
                expands: w.expands,
            },
        )
    })
}

/// Read a here-document body up to the delimiter line. Unquoted bodies get `\$`, `\\` and
/// `` \` `` unescaped as the shell does (expansions stay verbatim).
fn read_heredoc(lx: &mut Lexer, delim: &str, strip: bool, quoted: bool) -> String {
    let mut body = String::new();
    while !lx.eof() {
        let start = lx.i;
        while !lx.eof() && lx.peek(0) != '\n' {
            lx.i += 1;
        }
        let raw: String = lx.c[start..lx.i].iter().collect();
        if !lx.eof() {
            lx.i += 1;
        }
        lx.line += 1;
        let text = if strip {
            raw.trim_start_matches('\t')
        } else {
            raw.as_str()
        };
        if text == delim {
            break;
        }
        if quoted {
            body.push_str(text);
        } else {
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\\' && matches!(chars.peek(), Some('$' | '\\' | '`')) {
                    if let Some(n) = chars.next() {
                        body.push(n);
                    }
                } else {
                    body.push(c);
                }
            }
        }
        body.push('\n');
    }
    body
}

/// The SQL a script hands to `psql`, with the database it runs in (`None`: psql's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsqlInput {
    pub sql: String,
    pub database: Option<String>,
    pub line: usize,
}

/// True for a word that starts psql: `psql`, `/usr/bin/psql`, or the official image's
/// `"${psql[@]}"` array.
pub fn is_psql(program: &str) -> bool {
    program == "psql" || program.starts_with("${psql[")
}

/// Every piece of SQL the script feeds to psql: `-c`/`--command` arguments and here-documents.
pub fn psql_inputs(commands: &[Command]) -> Vec<PsqlInput> {
    let mut out = Vec::new();
    for c in commands {
        let Some(program) = c.program() else {
            continue;
        };
        if !is_psql(program) {
            continue;
        }
        let mut database = None;
        let mut sqls = Vec::new();
        let args = c.args();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].text.as_str();
            let next = args.get(i + 1).map(|w| w.text.clone());
            if a == "-c" || a == "--command" {
                sqls.extend(next);
                i += 2;
                continue;
            }
            if let Some(v) = a.strip_prefix("--command=") {
                sqls.push(v.to_string());
            } else if let Some(v) = a.strip_prefix("-c").filter(|v| !v.is_empty()) {
                sqls.push(v.to_string());
            } else if a == "-d" || a == "--dbname" {
                database = next;
                i += 2;
                continue;
            } else if let Some(v) = a.strip_prefix("--dbname=") {
                database = Some(v.to_string());
            } else if matches!(
                a,
                "-U" | "--username"
                    | "-h"
                    | "--host"
                    | "-p"
                    | "--port"
                    | "-v"
                    | "--set"
                    | "-f"
                    | "--file"
                    | "-o"
                    | "--output"
            ) {
                i += 2;
                continue;
            } else if !a.starts_with('-') && database.is_none() {
                database = Some(a.to_string());
            }
            i += 1;
        }
        for sql in sqls {
            out.push(PsqlInput {
                sql,
                database: database.clone(),
                line: c.line,
            });
        }
        for h in &c.heredocs {
            out.push(PsqlInput {
                sql: h.body.clone(),
                database: database.clone(),
                line: h.line,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_to_psql() {
        let src = "#!/bin/bash\nset -e\n\npsql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname \"$POSTGRES_DB\" <<-EOSQL\n\
                   \tCREATE DATABASE sos_app_auth;\n\t\\connect sos_app_auth\n\tCREATE EXTENSION pgcrypto;\n\tSELECT \\$\\$x\\$\\$;\nEOSQL\necho done\n";
        let cmds = parse(src);
        let inputs = psql_inputs(&cmds);
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].database.as_deref(), Some("$POSTGRES_DB"));
        assert!(
            inputs[0]
                .sql
                .starts_with("CREATE DATABASE sos_app_auth;\n\\connect")
        );
        assert!(inputs[0].sql.contains("SELECT $$x$$;"));
        assert_eq!(cmds.last().unwrap().program(), Some("echo"));
    }

    #[test]
    fn dash_c_and_quoting() {
        let src = "psql -d 'sos_app_medical' -c \"CREATE EXTENSION IF NOT EXISTS pgcrypto\" \\\n  --command='CREATE EXTENSION postgis'\n\
                   if true; then \"${psql[@]}\" --dbname=other <<'SQL'\nSELECT '$keep';\nSQL\nfi";
        let inputs = psql_inputs(&parse(src));
        assert_eq!(inputs.len(), 3);
        assert_eq!(inputs[0].sql, "CREATE EXTENSION IF NOT EXISTS pgcrypto");
        assert_eq!(inputs[1].sql, "CREATE EXTENSION postgis");
        assert_eq!(inputs[0].database.as_deref(), Some("sos_app_medical"));
        assert_eq!(inputs[2].database.as_deref(), Some("other"));
        assert_eq!(inputs[2].sql, "SELECT '$keep';\n");
    }

    #[test]
    fn assignments() {
        let cmds = parse(
            "PGPASSWORD=s3cret psql -h db\nexport PGPASSWORD=\"$DB_PASS\" X=1\n# PGPASSWORD=no",
        );
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].assignments[0].0, "PGPASSWORD");
        assert_eq!(cmds[0].assignments[0].1.text, "s3cret");
        assert!(!cmds[0].assignments[0].1.expands);
        assert_eq!(cmds[0].program(), Some("psql"));
        assert!(cmds[1].assignments[0].1.expands);
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
    }

    #[test]
    fn garbage_does_not_panic() {
        for src in ["'", "\"", "$(", "${", "<<", "<<EOF\n", "\\", "`", "a=\"$"] {
            let _ = parse(src);
        }
    }
}
