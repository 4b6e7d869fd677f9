//! Differential test: our shell reader (`stackguard_common::shell`) against bash and psql.
//!
//! Generated `.sh` init scripts (here-documents quoted and not, `<<-`, here-strings, pipes from
//! `cat` and `echo`, `psql -c` in every quoting, combined flags, `-d`/`--dbname`/positional
//! databases and connection strings, variables, `$(…)` and backquotes, escapes) are sourced by
//! bash exactly as the postgres image's entrypoint sources them. `psql` is a stub on the `PATH`
//! that records its arguments and standard input, then runs the real `psql` against a socket
//! where this test answers as a server: the startup packet tells which database psql connects
//! to, the queries which `-c` commands it runs and whether it reads its standard input.
//! For each run the reader must find the same psql runs, databases and SQL (the parts that come
//! from expansions it cannot know match anything), and `no-plaintext-secrets` must call a role
//! password plaintext exactly when psql receives it as written in the script.

#[path = "oracle/mod.rs"]
mod oracle;

use no_plaintext_secrets::NoPlaintextSecrets;
use proptest::prelude::*;
use stackguard::deploy::local::{Local, init_files_command, service_user};
use stackguard_common::request::{Object, Operation};
use stackguard_common::shell::{self, PsqlInput, Word};
use stackguard_common::sql::{self, Event, PasswordValue};
use stackguard_common::{Policy, Request};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";
/// What the stub feeds the real psql on standard input: it shows whether psql reads it.
const STDIN_MARKER: &str = "SELECT 'stdin-marker';";

/// Values of the environment the script runs with. The reader is told `POSTGRES_*` and
/// `PGUSER` (the container's environment); the passwords it is not told.
const ENV: &[(&str, &str)] = &[("APP_DB", "sos_app"), ("OTHER_DB", "sos_other")];
const SECRETS: &[(&str, &str)] = &[
    ("APP_PASSWORD", "Env-Secret-7f3a"),
    ("DB_PASS", "Env-Secret-91c2"),
];
const LITERAL_SECRETS: &[&str] = &["Lit-Secret-52de", "Lit-Secret-0b7e"];

// ---- the fake server -------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Connection {
    /// `application_name`: the stub sets it to the number of the psql run.
    run: String,
    database: String,
    queries: Vec<String>,
}

/// Answers psql on a Unix socket: trusts every login, completes every query.
struct FakeServer {
    dir: PathBuf,
    log: Arc<Mutex<Vec<Connection>>>,
}

impl FakeServer {
    fn start(dir: &Path) -> FakeServer {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.join(".s.PGSQL.5432");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let log: Arc<Mutex<Vec<Connection>>> = Arc::default();
        let l = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(s) = stream else { break };
                let index = {
                    let mut g = l.lock().unwrap();
                    g.push(Connection::default());
                    g.len() - 1
                };
                // psql keeps its old connection open while `\\connect` opens the next one.
                let l = l.clone();
                std::thread::spawn(move || serve(s, &l, index));
            }
        });
        FakeServer {
            dir: dir.to_path_buf(),
            log,
        }
    }

    fn take(&self) -> Vec<Connection> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn read_exact(s: &mut UnixStream, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).ok()?;
    Some(b)
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn serve(mut s: UnixStream, log: &Mutex<Vec<Connection>>, index: usize) {
    // Startup packet: length, protocol 3.0, then name\0value\0 pairs.
    let Some(len) = read_exact(&mut s, 4) else {
        return;
    };
    let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
    let Some(body) = read_exact(&mut s, len.saturating_sub(4)) else {
        return;
    };
    let fields: Vec<&[u8]> = body[4..].split(|&b| b == 0).collect();
    let mut params = BTreeMap::new();
    for pair in fields.chunks(2) {
        if let [k, v] = pair {
            params.insert(
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            );
        }
    }
    let user = params.get("user").cloned().unwrap_or_default();
    {
        let mut g = log.lock().unwrap();
        g[index].database = params.get("database").cloned().unwrap_or(user);
        g[index].run = params.get("application_name").cloned().unwrap_or_default();
    }
    let mut out = message(b'R', &0u32.to_be_bytes());
    for (k, v) in [
        ("server_version", "15.18"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("standard_conforming_strings", "on"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
    ] {
        out.extend(message(b'S', format!("{k}\0{v}\0").as_bytes()));
    }
    out.extend(message(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
    out.extend(message(b'Z', b"I"));
    if s.write_all(&out).is_err() {
        return;
    }
    loop {
        let Some(head) = read_exact(&mut s, 5) else {
            return;
        };
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let Some(body) = read_exact(&mut s, len.saturating_sub(4)) else {
            return;
        };
        match head[0] {
            b'Q' => {
                let q = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body));
                log.lock().unwrap()[index].queries.push(q.into_owned());
                let mut reply = message(b'I', b"");
                reply.extend(message(b'Z', b"I"));
                if s.write_all(&reply).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

// ---- generation ------------------------------------------------------------------------

/// A piece of SQL text as the script writes it.
#[derive(Debug, Clone)]
enum Piece {
    Text(&'static str),
    /// A role password: `ALTER ROLE r PASSWORD '<value>'`.
    Password(Pw),
    /// An expansion inside the SQL: `$APP_DB`, `${APP_DB}`, `$(printf %s x)`, `` `…` ``.
    Expand(usize),
    /// An escaped `$`, `\\` or backquote (`\$`).
    Escape(usize),
}

#[derive(Debug, Clone)]
enum Pw {
    Literal(usize),
    Var(usize, bool),
    Command(usize),
}

const TEXTS: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
    "SELECT 'it''s; -- not a comment';",
    "-- a comment with $ and ' and \"",
    "SELECT \"Quoted Name\" FROM t;",
    "DO $body$ BEGIN PERFORM 1; END $body$;",
    "SELECT E'\\\\n', 'tab\there';",
    "\\connect sos_app",
    "SELECT 1 WHERE 2 > 1 AND 3 < 4;",
    "  indented line; ",
    "SELECT '#not a shell comment';",
    "SELECT $$ dollar $$;",
];

const EXPANSIONS: &[&str] = &[
    "$APP_DB",
    "${APP_DB}",
    "${OTHER_DB:-fallback}",
    "$(printf %s sub)",
    "`printf %s bq`",
    "$UNSET_VAR",
    "${LOCAL_VAR}",
];
const ESCAPES: &[&str] = &["\\$", "\\\\", "\\`", "\\\"", "\\'"];

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => (0..TEXTS.len()).prop_map(|i| Piece::Text(TEXTS[i])),
        2 => prop_oneof![
            (0..LITERAL_SECRETS.len()).prop_map(Pw::Literal),
            (0..SECRETS.len(), any::<bool>()).prop_map(|(i, b)| Pw::Var(i, b)),
            (0..SECRETS.len()).prop_map(Pw::Command),
        ]
        .prop_map(Piece::Password),
        2 => (0..EXPANSIONS.len()).prop_map(Piece::Expand),
        1 => (0..ESCAPES.len()).prop_map(Piece::Escape),
    ]
}

/// How SQL reaches psql.
#[derive(Debug, Clone)]
enum Feed {
    /// `<<EOF`, `<<-EOF` (body indented with tabs), `<<'EOF'`, `<<"EOF"`, `<<\EOF`.
    Heredoc {
        strip: bool,
        quote: usize,
    },
    HereString,
    CatPipe,
    EchoPipe,
    /// `-c` arguments (each a line of pieces) in a quoting style.
    DashC {
        style: usize,
    },
    /// Nothing: psql reads the entrypoint's (empty) standard input.
    None,
}

#[derive(Debug, Clone)]
enum Db {
    Flag(usize, usize),
    Positional(usize),
    Conninfo(usize),
    Uri(usize),
    None,
}

const DB_WORDS: &[&str] = &[
    "sos_app",
    "\"$APP_DB\"",
    "'My DB'",
    "$OTHER_DB",
    "\"${LOCAL_VAR}\"",
    "postgres",
];

#[derive(Debug, Clone)]
struct Call {
    program: usize,
    db: Db,
    user: Option<usize>,
    flags: Vec<usize>,
    feed: Feed,
    lines: Vec<Vec<Piece>>,
    redirect: bool,
    prefix_env: bool,
    in_if: bool,
}

const PROGRAMS: &[&str] = &["psql", "\"${psql[@]}\"", "docker_process_sql"];
const FLAGS: &[&str] = &[
    "-v ON_ERROR_STOP=1",
    "--set=ON_ERROR_STOP=on",
    "-X",
    "-q",
    "-At",
    "--no-psqlrc",
    "-v ON_ERROR_STOP=0",
];
const USERS: &[&str] = &[
    "-U postgres",
    "--username=\"$POSTGRES_USER\"",
    "-Uapp_owner",
];

fn call() -> impl Strategy<Value = Call> {
    let db = prop_oneof![
        (0..DB_WORDS.len(), 0..3usize).prop_map(|(d, f)| Db::Flag(d, f)),
        (0..DB_WORDS.len()).prop_map(Db::Positional),
        (0..DB_WORDS.len()).prop_map(Db::Conninfo),
        (0..DB_WORDS.len()).prop_map(Db::Uri),
        Just(Db::None),
    ];
    let feed = prop_oneof![
        4 => (any::<bool>(), 0..5usize).prop_map(|(strip, quote)| Feed::Heredoc { strip, quote }),
        1 => Just(Feed::HereString),
        1 => Just(Feed::CatPipe),
        1 => Just(Feed::EchoPipe),
        3 => (0..5usize).prop_map(|style| Feed::DashC { style }),
        1 => Just(Feed::None),
    ];
    (
        0..PROGRAMS.len(),
        db,
        proptest::option::of(0..USERS.len()),
        proptest::collection::vec(0..FLAGS.len(), 0..3),
        feed,
        proptest::collection::vec(proptest::collection::vec(piece(), 1..4), 1..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(program, db, user, flags, feed, lines, redirect, prefix_env, in_if)| Call {
                program,
                db,
                user,
                flags,
                feed,
                lines,
                redirect,
                prefix_env,
                in_if,
            },
        )
}

#[derive(Debug, Clone)]
struct Script {
    local_var: Option<usize>,
    export_pgdatabase: bool,
    calls: Vec<Call>,
}

fn script() -> impl Strategy<Value = Script> {
    (
        proptest::option::of(0..3usize),
        prop::bool::weighted(0.15),
        proptest::collection::vec(call(), 1..4),
    )
        .prop_map(|(local_var, export_pgdatabase, calls)| Script {
            local_var,
            export_pgdatabase,
            calls,
        })
}

/// Where a piece is written: it decides how it must be written to stay inside.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// An unquoted here-document: expansions and `\$` escapes work, quotes are plain text.
    Heredoc,
    /// A double-quoted word (`-c "…"`, `<<< "…"`, `echo "…"`): `"` must be escaped.
    Dq,
    /// A quoted here-document or `-c '…'`: everything is literal.
    Literal,
}

fn password_text(p: &Pw) -> String {
    match p {
        Pw::Literal(i) => LITERAL_SECRETS[*i].to_string(),
        Pw::Var(i, braces) if *braces => format!("${{{}}}", SECRETS[*i].0),
        Pw::Var(i, _) => format!("${}", SECRETS[*i].0),
        Pw::Command(i) => format!("$(printf %s \"${}\")", SECRETS[*i].0),
    }
}

fn render_line(pieces: &[Piece], ctx: Ctx) -> String {
    let mut out = String::new();
    for p in pieces {
        let text = match p {
            Piece::Text(t) if ctx == Ctx::Dq => t.replace('"', "\\\""),
            Piece::Text(t) => t.to_string(),
            Piece::Password(pw) => format!("ALTER ROLE app PASSWORD '{}';", password_text(pw)),
            Piece::Expand(i) => format!("SELECT '{}';", EXPANSIONS[*i]),
            Piece::Escape(i) => format!("SELECT '{}';", ESCAPES[*i]),
        };
        out.push_str(&text);
        out.push(' ');
    }
    out.trim_end().to_string()
}

const DELIMS: &[(&str, &str)] = &[
    ("EOSQL", "EOSQL"),
    ("'EOSQL'", "EOSQL"),
    ("\"EOSQL\"", "EOSQL"),
    ("\\EOSQL", "EOSQL"),
    ("E'O'SQL", "EOSQL"),
];

fn render_db(db: &Db) -> String {
    match db {
        Db::Flag(d, f) => match f {
            0 => format!(" -d {}", DB_WORDS[*d]),
            1 => format!(" --dbname={}", DB_WORDS[*d]),
            _ => format!(" --dbname {}", DB_WORDS[*d]),
        },
        Db::Positional(d) => format!(" {}", DB_WORDS[*d]),
        Db::Conninfo(d) => format!(" -d \"dbname='{}' user=postgres\"", unquote(DB_WORDS[*d])),
        Db::Uri(d) => format!(
            " postgresql:///{}",
            unquote(DB_WORDS[*d]).replace(' ', "%20")
        ),
        Db::None => String::new(),
    }
}

/// A database word without its shell quotes (inside a double-quoted conninfo).
fn unquote(w: &str) -> String {
    w.trim_matches(|c| c == '"' || c == '\'').replace('\'', "")
}

fn render_call(c: &Call) -> String {
    let mut head = String::new();
    if c.prefix_env {
        head.push_str("PGAPPNAME=oracle ");
    }
    head.push_str(PROGRAMS[c.program]);
    for f in &c.flags {
        head.push(' ');
        head.push_str(FLAGS[*f]);
    }
    if let Some(u) = c.user {
        head.push(' ');
        head.push_str(USERS[u]);
    }
    head.push_str(&render_db(&c.db));
    let redirect = if c.redirect { " 2>/dev/null" } else { "" };
    let body = |ctx: Ctx| -> Vec<String> { c.lines.iter().map(|l| render_line(l, ctx)).collect() };
    let text = match &c.feed {
        Feed::Heredoc { strip, quote } => {
            let (open, close) = DELIMS[*quote];
            let ctx = if *quote == 0 {
                Ctx::Heredoc
            } else {
                Ctx::Literal
            };
            let op = if *strip { "<<-" } else { "<<" };
            let indent = if *strip { "\t" } else { "" };
            let mut t = format!("{head} {op}{open}{redirect}\n");
            for l in body(ctx) {
                t.push_str(&format!("{indent}{l}\n"));
            }
            t.push_str(&format!("{indent}{close}\n"));
            t
        }
        Feed::HereString => format!("{head} <<< \"{}\"{redirect}\n", body(Ctx::Dq).join("\n")),
        Feed::CatPipe => {
            let mut t = format!("cat <<EOSQL | {head}{redirect}\n");
            for l in body(Ctx::Heredoc) {
                t.push_str(&l);
                t.push('\n');
            }
            t.push_str("EOSQL\n");
            t
        }
        Feed::EchoPipe => format!("echo \"{}\" | {head}{redirect}\n", body(Ctx::Dq).join(" ")),
        Feed::DashC { style } => {
            let mut t = head.clone();
            let ctx = if *style == 1 { Ctx::Literal } else { Ctx::Dq };
            for l in body(ctx) {
                let arg = match style {
                    0 => format!(" -c \"{l}\""),
                    1 => format!(" -c '{}'", l.replace('\'', "'\\''")),
                    2 => format!(" --command=\"{l}\""),
                    3 => format!(" -qtAc \"{l}\""),
                    _ => format!(" -c\"{l}\""),
                };
                t.push_str(&arg);
            }
            t.push_str(redirect);
            t.push('\n');
            t
        }
        Feed::None => format!("{head}{redirect}\n"),
    };
    if c.in_if {
        format!("if true; then\n{text}fi\n")
    } else {
        text
    }
}

fn render(s: &Script) -> String {
    let mut out = String::from("#!/bin/bash\n# generated by tests/oracle_shell.rs\nset -e\n");
    if let Some(v) = s.local_var {
        out.push_str(&format!(
            "LOCAL_VAR={}\n",
            ["sos_local", "\"a b\"", "$APP_DB"][v]
        ));
    }
    if s.export_pgdatabase {
        out.push_str("export PGDATABASE=sos_exported\n");
    }
    for c in &s.calls {
        out.push_str(&render_call(c));
    }
    out
}

// ---- comparison ------------------------------------------------------------------------

/// Does `actual` read as `expected`, where the expansions of `expected` stand for any text?
fn matches(expected: &Word, actual: &str) -> bool {
    fn go(parts: &[(&str, bool)], s: &str) -> bool {
        match parts.split_first() {
            None => s.is_empty(),
            Some(((text, false), rest)) => s.strip_prefix(text).is_some_and(|r| go(rest, r)),
            Some(((_, true), rest)) => s
                .char_indices()
                .map(|(i, _)| i)
                .chain([s.len()])
                .any(|i| go(rest, &s[i..])),
        }
    }
    go(&expected.parts(), actual)
}

/// One psql run as bash and psql did it: what it got on standard input, the database of its
/// first connection, and the queries of all its connections (`\\c` in `-c` reconnects).
#[derive(Debug)]
struct Recorded {
    stdin: String,
    connection: Connection,
}

struct Env {
    stub_dir: PathBuf,
    rec_dir: PathBuf,
    server: FakeServer,
    local: Local,
    work: PathBuf,
    _tmp: oracle::TempDir,
}

fn setup() -> Env {
    let tmp = oracle::TempDir::new("shell");
    let base = tmp.0.clone();
    let local = Local {
        state_dir: base.clone(),
        user: service_user(true).unwrap(),
    };
    local.private_dir(&base).unwrap();
    // The stub and the recordings are shared with the service user that runs bash.
    let stub_dir = base.join("bin");
    let rec_dir = base.join("rec");
    for d in [&stub_dir, &rec_dir] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = FakeServer::start(&base.join("sock"));
    let stub = format!(
        r#"#!/bin/bash
# The psql of tests/oracle_shell.rs: record, then let the real psql talk to the test's server.
n=$(ls "{rec}" | grep -c '\.argv$' || true)
printf '%s\0' "$@" > "{rec}/$n.argv"
cat > "{rec}/$n.stdin"
printf '%s\n' "{marker}" | PGAPPNAME="run-$n" PGHOST="{sock}" PGPORT=5432 PGCONNECT_TIMEOUT=5 {psql} "$@" > /dev/null 2>&1
exit 0
"#,
        rec = rec_dir.display(),
        sock = server.dir.display(),
        marker = STDIN_MARKER,
        psql = PSQL,
    );
    let stub_path = stub_dir.join("psql");
    std::fs::write(&stub_path, stub).unwrap();
    std::fs::set_permissions(&stub_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Env {
        stub_dir,
        rec_dir,
        server,
        local,
        work: base,
        _tmp: tmp,
    }
}

/// Source the script as the entrypoint does; the recorded psql runs.
fn run_bash(env: &Env, script: &str) -> Result<Vec<Recorded>, String> {
    for f in std::fs::read_dir(&env.rec_dir).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    env.server.take();
    let files = BTreeMap::from([("init.sh".to_string(), script.to_string())]);
    let mut cmd = init_files_command(&env.local, &env.work.join("init"), &files, "postgres")
        .map_err(|e| e.to_string())?;
    cmd.env(
        "PATH",
        format!("{}:/usr/local/bin:/usr/bin:/bin", env.stub_dir.display()),
    );
    for (k, v) in ENV.iter().chain(SECRETS) {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "bash failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let connections = env.server.take();
    let mut n = 0;
    let mut runs = Vec::new();
    while env.rec_dir.join(format!("{n}.argv")).exists() {
        let stdin = std::fs::read_to_string(env.rec_dir.join(format!("{n}.stdin"))).unwrap();
        let mine: Vec<&Connection> = connections
            .iter()
            .filter(|c| c.run == format!("run-{n}"))
            .collect();
        let Some(first) = mine.first() else {
            return Err(format!("psql run {n} never connected"));
        };
        runs.push(Recorded {
            stdin,
            connection: Connection {
                run: first.run.clone(),
                database: first.database.clone(),
                queries: mine.iter().flat_map(|c| c.queries.clone()).collect(),
            },
        });
        n += 1;
    }
    Ok(runs)
}

/// The reader's view of the script, given the container environment.
fn reader_env() -> BTreeMap<String, String> {
    [
        ("POSTGRES_USER", "postgres"),
        ("POSTGRES_DB", "postgres"),
        ("PGUSER", "postgres"),
        ("APP_DB", "sos_app"),
        ("OTHER_DB", "sos_other"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Compare the reader with the recorded runs. `Ok(true)`: a literal role password is in a `-c`
/// the reader says only maybe runs.
fn compare(script: &str, runs: &[Recorded]) -> Result<bool, String> {
    let calls = shell::psql_calls(&shell::parse(script), &reader_env());
    let mut maybe_literal = false;
    if calls.len() != runs.len() {
        return Err(format!(
            "the reader finds {} psql runs, bash ran psql {} times",
            calls.len(),
            runs.len()
        ));
    }
    for (k, (call, run)) in calls.iter().zip(runs).enumerate() {
        let db = call
            .database
            .clone()
            .unwrap_or_else(|| Word::literal("postgres"));
        if !matches(&db, &run.connection.database) {
            return Err(format!(
                "psql run {k}: the reader says database {:?}, psql connected to {:?}",
                db.text, run.connection.database
            ));
        }
        let reads_stdin = run.connection.queries.iter().any(|q| q == STDIN_MARKER);
        let commands: Vec<&String> = run
            .connection
            .queries
            .iter()
            .filter(|q| *q != STDIN_MARKER)
            .collect();
        let mut expected_commands = Vec::new();
        let mut expected_stdin = None;
        for input in &call.inputs {
            match input {
                PsqlInput::Sql {
                    text,
                    from_stdin,
                    certain,
                    ..
                } => {
                    if *from_stdin {
                        expected_stdin = Some(text);
                    } else if !text.text.starts_with('\\') {
                        // A `-c` that starts with a backslash is one psql meta-command.
                        expected_commands.push((text, *certain));
                    }
                }
                PsqlInput::Elsewhere { what, .. } => {
                    return Err(format!("psql run {k}: the reader could not read {what}"));
                }
            }
        }
        let Some(aligned) = align(&expected_commands, &commands) else {
            return Err(format!(
                "psql run {k}: -c commands differ: reader {:?}, psql ran {:?}",
                expected_commands
                    .iter()
                    .map(|(w, certain)| (&w.text, if *certain { "runs" } else { "maybe" }))
                    .collect::<Vec<_>>(),
                commands
            ));
        };
        maybe_literal |= expected_commands
            .iter()
            .any(|(w, certain)| !certain && has_literal_password(w));
        match (expected_stdin, reads_stdin) {
            (Some(w), true) if matches(w, &run.stdin) => {}
            (None, true) if run.stdin.is_empty() => {}
            (None, false) => {}
            (e, r) => {
                return Err(format!(
                    "psql run {k}: standard input differs: reader {:?}, psql {} it and got {:?}",
                    e.map(|w| &w.text),
                    if r { "reads" } else { "does not read" },
                    run.stdin
                ));
            }
        }
        // Passwords: plaintext exactly when psql gets the text written in the script.
        let mut pairs: Vec<(&Word, &str)> = aligned;
        if let Some(w) = expected_stdin {
            pairs.push((w, run.stdin.as_str()));
        }
        for (reader, actual) in pairs {
            check_passwords(script, reader, actual).map_err(|e| format!("psql run {k}: {e}"))?;
        }
    }
    Ok(maybe_literal)
}

/// Pair the reader's `-c` commands with the queries psql sent, in order. A command the reader
/// marks as not certain (after a `\connect` whose outcome depends on the server: a user or a
/// host) may be missing; every certain one must be there, and nothing else.
fn align<'a, 'b>(
    expected: &[(&'a Word, bool)],
    actual: &[&'b String],
) -> Option<Vec<(&'a Word, &'b str)>> {
    let Some(((w, certain), rest)) = expected.split_first() else {
        return actual.is_empty().then(Vec::new);
    };
    if let Some((a, more)) = actual.split_first()
        && matches(w, a)
        && let Some(mut tail) = align(rest, more)
    {
        tail.insert(0, (*w, a.as_str()));
        return Some(tail);
    }
    if *certain { None } else { align(rest, actual) }
}

fn has_literal_password(w: &Word) -> bool {
    passwords(sql::scan_shell(w))
        .iter()
        .any(|p| matches!(p, PasswordValue::Plain(_)))
}

fn passwords(events: Vec<Event>) -> Vec<PasswordValue> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::RolePassword { password, .. } => Some(password),
            _ => None,
        })
        .collect()
}

fn check_passwords(script: &str, reader: &Word, actual: &str) -> Result<(), String> {
    let ours = passwords(sql::scan_shell(reader));
    let real = passwords(sql::scan(actual));
    if ours.len() != real.len() {
        return Err(format!(
            "the reader sees {} role passwords, psql gets {}",
            ours.len(),
            real.len()
        ));
    }
    for (o, r) in ours.iter().zip(&real) {
        let PasswordValue::Plain(got) = r else {
            return Err("psql gets a password that is not a string literal".into());
        };
        let in_script = script.contains(&format!("'{got}'"));
        match o {
            PasswordValue::Plain(p) if p == got && in_script => {}
            PasswordValue::Expansion if !in_script => {}
            _ => {
                return Err(format!(
                    "a role password is {} for the reader but {} in the script",
                    match o {
                        PasswordValue::Plain(_) => "plaintext",
                        PasswordValue::Expansion => "an expansion",
                        _ => "neither",
                    },
                    if in_script {
                        "written as it is"
                    } else {
                        "not written"
                    }
                ));
            }
        }
    }
    Ok(())
}

/// The policy on a ConfigMap holding the script: plaintext findings exactly for the literal
/// passwords psql receives, and no secret value in any message.
/// `maybe_literal`: the reader puts a literal password in a `-c` that only maybe runs; the
/// policy then reports it (conservatively) even when psql never sent it.
fn check_policy(script: &str, runs: &[Recorded], maybe_literal: bool) -> Result<(), String> {
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "init", "namespace": "db"},
        "data": {"init.sh": script}
    });
    let request = Request {
        operation: Operation::Create,
        kind: "ConfigMap",
        namespace: "db",
        name: "init",
        object: Object::Value(&cm),
    };
    let verdict = NoPlaintextSecrets::evaluate(
        &request,
        &Default::default(),
        &stackguard_common::context::NoContext,
    );
    let all: Vec<String> = verdict
        .findings
        .iter()
        .map(|f| f.message.clone())
        .chain(verdict.warnings.clone())
        .collect();
    for secret in SECRETS
        .iter()
        .map(|s| s.1)
        .chain(LITERAL_SECRETS.iter().copied())
    {
        if all.iter().any(|m| m.contains(secret)) {
            return Err("a policy message contains a secret value".into());
        }
    }
    // A password psql receives as it is written in the script.
    let literal_received = runs.iter().any(|r| {
        let reads_stdin = r.connection.queries.iter().any(|q| q == STDIN_MARKER);
        let stdin = reads_stdin.then_some(&r.stdin);
        r.connection.queries.iter().chain(stdin).any(|q| {
            passwords(sql::scan(q))
                .iter()
                .any(|p| matches!(p, PasswordValue::Plain(v) if script.contains(&format!("'{v}'"))))
        })
    });
    let reported = all.iter().any(|m| m.contains("plaintext PASSWORD"));
    if literal_received != reported && !(reported && maybe_literal) {
        return Err(format!(
            "psql {} a password written in the script; no-plaintext-secrets {} it",
            if literal_received {
                "receives"
            } else {
                "never receives"
            },
            if reported {
                "reports"
            } else {
                "does not report"
            }
        ));
    }
    Ok(())
}

fn secrets() -> Vec<String> {
    SECRETS
        .iter()
        .map(|s| s.1.to_string())
        .chain(LITERAL_SECRETS.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn shell_reader_agrees_with_bash_and_psql() {
    let env = setup();
    let run = oracle::Run::from_env("shell", 300);
    run.check(
        script(),
        |s| {
            let text = render(s);
            let runs = run_bash(&env, &text)?;
            let maybe_literal = compare(&text, &runs)?;
            check_policy(&text, &runs, maybe_literal)
        },
        |s| oracle::redact(&render(s), &secrets()),
    );
}
