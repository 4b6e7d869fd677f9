//! Differential test: our redis.conf reader (`stackguard_common::redisconf`) against a real
//! `redis-server` (Debian's Redis 7).
//!
//! Generated files (quoting and escapes, repeated directives, memory units, `save` in all its
//! forms, `include`, unknown and malformed lines, text after a single-valued directive, CRLF and
//! tabs) and command-line options (`--name value`, `"--name value"` in one word, a `--save`
//! without value, words Redis takes as values) start a real `redis-server` per case on a free
//! port of 127.0.0.1. When it runs, `CONFIG GET maxmemory-policy`, `save`, `appendonly` and
//! `maxmemory` must equal what the reader computes; when it refuses to start, the reader must
//! say so, and `redis-pubsub-noeviction` must reject the file saying Redis would not load it.

#[path = "oracle/mod.rs"]
mod oracle;

use proptest::prelude::*;
use redis_pubsub_noeviction::RedisPubsubNoeviction;
use stackguard::deploy::local::{Local, REDIS_SERVER, any_free_port, service_user};
use stackguard::deploy::verify::redis_connect;
use stackguard_common::redisconf::{self, RedisConfig};
use stackguard_common::request::{Object, Operation};
use stackguard_common::{Policy, Request};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Line {
    Policy(usize, usize, usize),
    Maxmemory(usize, usize),
    Save(usize),
    Appendonly(usize, usize),
    Other(usize),
    Include,
}

const POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "volatile-lfu",
    "NoEviction",
    "ALLKEYS-RANDOM",
    "volatile-ttl",
    "lru",
    "no-eviction",
];
const MEMORY: &[&str] = &[
    "0",
    "100mb",
    "1gb",
    "1G",
    "256MB",
    "2000000",
    "512k",
    "64KB",
    "1.5gb",
    "-1",
    "10xb",
    "mb",
    "99999999999999999999",
    "18446744073709551615",
    "00100",
    "1b",
];
const SAVES: &[&str] = &[
    "save \"\"",
    "save ''",
    "save 60 1",
    "save 900 1 300 10",
    "save \"60 1 300 10\"",
    "save 0 1",
    "save 60",
    "save 60 -1",
    "save 60 \"\"",
    "save +60 1",
    "save",
    "SAVE 3600 1",
    "save 60 1 # hourly",
    "save 2147483648 4294967297",
];
const BOOLS: &[&str] = &["yes", "no", "YES", "\"no\"", "'yes'", "maybe", "yes no"];
/// How a value is written: plain, double-quoted, single-quoted, with a trailing comment, with
/// an escape, closed quote then text, unbalanced.
const WRAPS: &[&str] = &[
    "{}",
    "\"{}\"",
    "'{}'",
    "{} # comment",
    "{}   ",
    "\"{}\"x",
    "\"{}",
    "{}\t",
];
const OTHERS: &[&str] = &[
    "# a comment",
    "",
    "   # indented comment",
    "loglevel notice",
    "loglevel chatty",
    "databases 16",
    "databases 0",
    "tcp-keepalive 300",
    "timeout 0",
    "hz 10",
    "maxclients 100",
    "notify-keyspace-events Ex",
    "notify-keyspace-events Q",
    "client-output-buffer-limit pubsub 32mb 8mb 60",
    "client-output-buffer-limit master 0 0 0",
    "lazyfree-lazy-eviction yes",
    "appendfsync everysec",
    "appendfsync sometimes",
    "rename-command FLUSHALL \"\"",
    "maxmemory-polcy noeviction",
    "maxmemory-samples 5",
    "latency-tracking-info-percentiles 50 99 99.9",
    "oom-score-adj-values 0 200 800",
    "unixsocketperm 700",
    "maxmemory-clients 10%",
    "slaveof no one",
    "protected-mode no",
    "list-max-ziplist-entries 512",
    "port 06379",
    "tcp-backlog \"511\"",
    "activerehashing yes yes",
    "requirepass \"\"",
    "include",
    "\"maxmemory\" 1mb",
    "maxmemory-policy\tallkeys-lfu",
    "\u{a0}maxmemory 1mb",
];

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        5 => (0..POLICIES.len(), 0..WRAPS.len(), prop::sample::select(vec![0usize, 0, 0, 1])).prop_map(|(p, w, c)| Line::Policy(p, w, c)),
        4 => (0..MEMORY.len(), 0..WRAPS.len()).prop_map(|(m, w)| Line::Maxmemory(m, w)),
        4 => (0..SAVES.len()).prop_map(Line::Save),
        3 => (0..BOOLS.len(), 0..WRAPS.len()).prop_map(|(b, w)| Line::Appendonly(b, w)),
        5 => (0..OTHERS.len()).prop_map(Line::Other),
        1 => Just(Line::Include),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    lines: Vec<Line>,
    crlf: bool,
    include: Vec<Line>,
    options: Vec<usize>,
}

const OPTIONS: &[&[&str]] = &[
    &["--maxmemory-policy", "allkeys-lru"],
    &["--maxmemory-policy", "noeviction"],
    &["--save", ""],
    &["--save"],
    &["--save", "60", "1"],
    &["--appendonly", "yes"],
    &["--appendonly", "no"],
    &["--maxmemory", "100mb"],
    &["--maxmemory 1gb"],
    &["--maxmemory", "1", "gb"],
    &["orphan"],
    &["--maxmemory-policy"],
    &["--loglevel", "warning"],
];

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(line(), 0..8),
        prop::bool::weighted(0.15),
        proptest::collection::vec(line(), 0..4),
        proptest::collection::vec(0..OPTIONS.len(), 0..3),
    )
        .prop_map(|(lines, crlf, include, options)| Case {
            lines,
            crlf,
            include,
            options,
        })
}

fn wrap(w: usize, v: &str) -> String {
    WRAPS[w].replace("{}", v)
}

fn render_line(l: &Line, include_path: &Path) -> String {
    match l {
        Line::Policy(p, w, case) => {
            let name = ["maxmemory-policy", "MAXMEMORY-POLICY"][*case % 2];
            format!("{name} {}", wrap(*w, POLICIES[*p]))
        }
        Line::Maxmemory(m, w) => format!("maxmemory {}", wrap(*w, MEMORY[*m])),
        Line::Save(s) => SAVES[*s].to_string(),
        Line::Appendonly(b, w) => format!("appendonly {}", wrap(*w, BOOLS[*b])),
        Line::Other(o) => OTHERS[*o].to_string(),
        Line::Include => format!("include {}", include_path.display()),
    }
}

impl Case {
    fn text(lines: &[Line], crlf: bool, include_path: &Path) -> String {
        let eol = if crlf { "\r\n" } else { "\n" };
        lines
            .iter()
            .map(|l| render_line(l, include_path) + eol)
            .collect()
    }

    fn main_text(&self, include_path: &Path) -> String {
        Case::text(&self.lines, self.crlf, include_path)
    }

    /// The included file (it never includes itself).
    fn include_text(&self, include_path: &Path) -> String {
        let lines: Vec<Line> = self
            .include
            .iter()
            .filter(|l| !matches!(l, Line::Include))
            .cloned()
            .collect();
        Case::text(&lines, false, include_path)
    }

    fn options(&self) -> Vec<String> {
        self.options
            .iter()
            .flat_map(|o| OPTIONS[*o].iter().map(|s| s.to_string()))
            .collect()
    }
}

/// What the server reports, or why it did not start.
#[derive(Debug, PartialEq)]
enum Outcome {
    Running(BTreeMap<String, String>),
    Refused(String),
}

struct Env {
    local: Local,
    dir: PathBuf,
}

fn start(env: &Env, conf: &Path, options: &[String], rt: &tokio::runtime::Runtime) -> Outcome {
    let port = any_free_port().unwrap();
    let data = env.dir.join("data");
    let mut cmd = env.local.command(REDIS_SERVER);
    cmd.arg(conf)
        .args(options)
        // Ours, last: they win over the file and the generated options.
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--daemonize", "no", "--logfile", "", "--dir"])
        .arg(&data)
        .current_dir(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting redis-server");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            ]
            .into_iter()
            .flatten()
            {
                let mut p = pipe;
                let _ = p.read_to_string(&mut out);
            }
            let reason = out
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            return Outcome::Refused(format!("exit {status}: {reason}"));
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let values = rt.block_on(async {
        let mut c = redis_connect(addr, None).await.unwrap();
        let mut out = BTreeMap::new();
        for key in ["maxmemory-policy", "save", "appendonly", "maxmemory"] {
            let v: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(key)
                .query_async(&mut c)
                .await
                .unwrap();
            out.insert(key.to_string(), v.get(1).cloned().unwrap_or_default());
        }
        out
    });
    let _ = child.kill();
    let _ = child.wait();
    Outcome::Running(values)
}

/// What the reader says the server reports.
fn expected(cfg: &RedisConfig) -> Outcome {
    if let Some(e) = &cfg.error {
        return Outcome::Refused(e.clone());
    }
    let save: Vec<String> = cfg
        .save_points()
        .iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect();
    Outcome::Running(BTreeMap::from([
        (
            "maxmemory-policy".to_string(),
            cfg.value("maxmemory-policy")
                .unwrap_or_else(|| redisconf::DEFAULT_MAXMEMORY_POLICY.to_string()),
        ),
        ("save".to_string(), save.join(" ")),
        (
            "appendonly".to_string(),
            cfg.value("appendonly").unwrap_or_else(|| "no".to_string()),
        ),
        ("maxmemory".to_string(), cfg.maxmemory().to_string()),
    ]))
}

/// The policy on a labelled ConfigMap with the file: "would not load" exactly when the reader
/// (and so Redis) refuses the file.
fn policy_says_refused(main: &str, include_key: &str, include: &str) -> bool {
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "pubsub", "namespace": "db", "labels": {"stackguard.io/redis-role": "pubsub"}},
        "data": {"redis.conf": main, include_key: include}
    });
    let request = Request {
        operation: Operation::Create,
        kind: "ConfigMap",
        namespace: "db",
        name: "pubsub",
        object: Object::Value(&cm),
    };
    let v = RedisPubsubNoeviction::evaluate(
        &request,
        &Default::default(),
        &stackguard_common::context::NoContext,
    );
    // Every `*.conf` key is judged on its own: only the main file's findings count here.
    v.findings
        .iter()
        .any(|f| f.path == "data.redis.conf" && f.message.contains("Redis would not load the file"))
}

fn compare(env: &Env, c: &Case, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let include_path = env.dir.join("extra.conf");
    let conf_path = env.dir.join("redis.conf");
    let main = c.main_text(&include_path);
    let include = c.include_text(&include_path);
    env.local.write_file(&conf_path, &main).unwrap();
    env.local.write_file(&include_path, &include).unwrap();
    let options = c.options();
    let real = start(env, &conf_path, &options, rt);
    let inc = include.clone();
    let mut resolve = |p: &str| (p == include_path.to_str().unwrap()).then(|| inc.clone());
    let argv: Vec<String> = options
        .iter()
        .cloned()
        .chain(
            [
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
                "--logfile",
                "",
                "--dir",
                "x",
            ]
            .map(String::from),
        )
        .collect();
    let cfg = RedisConfig::load(&main, "redis.conf", &argv, &mut resolve);
    let ours = expected(&cfg);
    match (&ours, &real) {
        (Outcome::Running(a), Outcome::Running(b)) if a == b => {}
        (Outcome::Refused(_), Outcome::Refused(_)) => {}
        _ => {
            return Err(format!(
                "the reader says {ours:?}, redis-server {}",
                match &real {
                    Outcome::Running(v) => format!("runs with {v:?}"),
                    Outcome::Refused(r) => format!("refuses to start ({r})"),
                }
            ));
        }
    }
    // ConfigMap mode: the file alone (its include is a sibling key).
    let file_only = RedisConfig::parse(&main, "redis.conf", &mut |p: &str| {
        (p == include_path.to_str().unwrap()).then(|| include.clone())
    });
    let said = policy_says_refused(&main, "extra.conf", &include);
    if said != file_only.error.is_some() {
        return Err(format!(
            "redis-pubsub-noeviction {} that Redis would not load the file, the reader {}",
            if said { "says" } else { "does not say" },
            if file_only.error.is_some() {
                "refuses it"
            } else {
                "accepts it"
            }
        ));
    }
    Ok(())
}

fn show(c: &Case) -> String {
    let p = Path::new("/tmp/extra.conf");
    format!(
        "== redis.conf\n{}== extra.conf\n{}== options {:?}",
        c.main_text(p).replace('\r', "\\r"),
        c.include_text(p),
        c.options()
    )
}

#[test]
fn redis_conf_reader_agrees_with_redis_server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = oracle::TempDir::new("redis");
    let dir = tmp.0.clone();
    let local = Local {
        state_dir: dir.clone(),
        user: service_user(true).unwrap(),
    };
    local.private_dir(&dir).unwrap();
    local.private_dir(&dir.join("data")).unwrap();
    let env = Env { local, dir };
    let run = oracle::Run::from_env("redis", 300);
    run.check(case(), |c| compare(&env, c, &rt), show);
}
