//! Hostile input, for every command that reads files (issue 11 §1): each command of
//! [`COMMANDS`] meets each hostile input of [`cases`] in a child process whose writable memory
//! is capped (`RLIMIT_DATA`), and must stay bounded: it exits on its own (no signal, no panic,
//! no hang), keeps its exit-code contract, names the hostile file or document in what it
//! reports, and still reports the good file checked beside it. A command that reads manifests
//! gets the hostile file plus `good.yaml`; a command that reads one admission request gets the
//! request.
//!
//! The commands: `check` (native rules), `check --policy dist/*.wasm` (every module),
//! `stackguard-hook`, `run` (a request through one module), `fix` (writes the files it fixes:
//! each run gets fresh copies) and `stackguard-hook fix` (the `stackguard-fix` pre-commit hook).
//! Adding a command is one line of [`COMMANDS`].
//!
//! `make test` runs every case once through `check`, `check --policy`, `fix` and `run` with
//! the case's own module; the hook binaries (the same library code) and `run` with every
//! module are left to the benchmark. Time and peak memory are measured, not asserted:
//! `make bench-limits` (the ignored test `bench` below) runs every pair several times and
//! writes the worst to `target/bench/limits.md`.
//!
//! The hostile inputs: the YAML reader's own (`tests/yaml/hostile.py`: alias bombs, deep
//! nesting, huge scalars, 50,000 documents, 16 MiB files) and the rules' (3 MiB objects, the
//! largest the API server accepts, full of SQL, shell here-documents, redis.conf includes,
//! containers, Secret data and token look-alikes; a 15 MiB file of them; requests nested
//! 100,000 deep or as alias bombs).

use serde_json::{Value, json};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Manifest files: the hostile one and `good.yaml`, in one run.
    Manifests,
    /// One AdmissionRequest (or AdmissionReview) file.
    Request,
}

/// A command under test: its argv, with placeholders `{stackguard}`, `{hook}` (the binaries),
/// `{modules}` (`--policy dist/<p>.wasm` for every policy), `{module}` (each policy module in
/// turn: one run per module; in `make test` only the case's own module), `{inputs}` (the
/// hostile file and `good.yaml`), `{input}`.
struct Cmd {
    name: &'static str,
    form: Form,
    argv: &'static [&'static str],
    /// Also in `make test` (else only in `make bench-limits`): the hook binaries run the very
    /// library code of `check` and `fix` (and `tests/yaml_limits.rs` runs `stackguard-hook` on
    /// the YAML reader's hostile files in `make test`).
    in_test: bool,
}

#[rustfmt::skip]
const COMMANDS: &[Cmd] = &[
    Cmd { name: "check", form: Form::Manifests, argv: &["{stackguard}", "check", "--color", "never", "{inputs}"], in_test: true },
    Cmd { name: "stackguard-hook", form: Form::Manifests, argv: &["{hook}", "--color", "never", "{inputs}"], in_test: false },
    Cmd { name: "check --policy", form: Form::Manifests, argv: &["{stackguard}", "check", "--color", "never", "{modules}", "{inputs}"], in_test: true },
    Cmd { name: "run", form: Form::Request, argv: &["{stackguard}", "run", "--timeout", "60", "{module}", "-r", "{input}"], in_test: true },
    Cmd { name: "fix", form: Form::Manifests, argv: &["{stackguard}", "fix", "--color", "never", "{inputs}"], in_test: true },
    Cmd { name: "stackguard-hook fix", form: Form::Manifests, argv: &["{hook}", "fix", "--color", "never", "{inputs}"], in_test: false },
    Cmd { name: "fix --diff", form: Form::Manifests, argv: &["{stackguard}", "fix", "--diff", "--color", "never", "{inputs}"], in_test: false },
];

/// Every policy of the registry (its module is `dist/<name>.wasm`).
fn policies() -> impl Iterator<Item = &'static str> {
    stackguard::policies::ALL.iter().map(|e| e.name)
}

/// The writable memory a command may map (heap, stacks, wasm linear memory): a hard bound
/// twice the 256 MB target, so that a runaway allocation fails the test instead of the machine.
const DATA_LIMIT: u64 = 512 << 20;

/// A command still running after this long is killed and the test fails (a hang, not a
/// measurement: the measurements are in `make bench-limits`).
const HANG: Duration = Duration::from_secs(120);

/// The largest object the API server accepts (its request body limit).
const API_MAX: usize = 3 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stackguard() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stackguard"))
}

/// The lean pre-commit binary, built beside `stackguard` by `cargo test --workspace`.
fn hook() -> PathBuf {
    let p = stackguard().with_file_name("stackguard-hook");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --release -p stackguard-hook`",
        p.display()
    );
    p
}

fn module(policy: &str) -> PathBuf {
    let p = root().join("dist").join(format!("{policy}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make policies`",
        p.display()
    );
    p
}

/// One hostile input.
struct Case {
    /// File name (its extension decides JSON or YAML).
    file: String,
    form: Form,
    text: String,
    /// Fragments a `check`-style report of the file must contain (the clear error or finding).
    expect: Vec<&'static str>,
    /// The module `run` takes in `make test` (the policy whose rules read the object most);
    /// `make bench-limits` runs every module.
    module: &'static str,
}

/// A root Pod: every run must still report it (`run-as-non-root`).
const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: good\n  namespace: app\nspec:\n  containers:\n  - name: app\n    image: nginx:1.27\n    securityContext:\n      runAsUser: 0\n";

fn meta(name: &str, labels: Value) -> Value {
    json!({"name": name, "namespace": "sos-data", "labels": labels})
}

/// Repeat `unit(i)` until the text reaches `size` bytes.
fn fill(size: usize, unit: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(size + 256);
    let mut i = 0;
    while out.len() < size {
        out.push_str(&unit(i));
        i += 1;
    }
    out
}

/// Init SQL: databases templated on each other in a chain, `\c` switches, dollar quotes,
/// nested comments, an occasional plaintext role password.
fn sql(size: usize) -> String {
    fill(size, |i| {
        let password = if i % 2000 == 0 {
            format!("CREATE ROLE r{i} LOGIN PASSWORD 'plain-text-{i}';\n")
        } else {
            String::new()
        };
        format!(
            "-- block {i}\nCREATE DATABASE db{i} TEMPLATE db{};\n\\c db{i}\nCREATE EXTENSION IF NOT EXISTS postgis;\nDO $f$ BEGIN RAISE NOTICE 'x;'; END $f$;\n/* a /* nested */ comment */ DROP EXTENSION IF EXISTS pgcrypto CASCADE;\n{password}",
            i.saturating_sub(1)
        )
    })
}

/// An init script: here-documents into psql, `psql -c`, and a last here-document never closed.
fn shell(size: usize) -> String {
    let mut s = fill(size, |i| {
        format!(
            "psql -v ON_ERROR_STOP=1 --dbname db{i} <<-EOSQL\n\tCREATE EXTENSION IF NOT EXISTS postgis;\n\tALTER ROLE app PASSWORD '${{APP_PASSWORD}}';\nEOSQL\npsql -c \"CREATE EXTENSION pgcrypto\" db{i}\n"
        )
    });
    s.push_str("psql <<'EOF'\nCREATE EXTENSION postgis;\n");
    s
}

/// redis.conf: a self-including fan-out (one path per `include`, as Redis reads it) before
/// save points and comments up to `size`: Redis would refuse it, and the reader must say so
/// without expanding it.
fn redis_conf(size: usize) -> String {
    let mut s = String::from("maxmemory-policy allkeys-lru\n");
    s.push_str(&"include /etc/redis/redis.conf\n".repeat(4));
    s.push_str(&fill(size, |i| {
        format!("save {} 1\n# \"unbalanced {i} in a comment\n", i + 1)
    }));
    s
}

/// Text that keeps starting token and key formats without finishing them, then one real
/// (made-up) GitHub token at the very end.
fn token_lookalikes(size: usize) -> String {
    let mut s = fill(size, |i| {
        format!(
            "ghp_{i} AKIA{i} glpat- xoxb- eyJ{i}. -----BEGIN postgresql://u@h/{i} password= {i}\n"
        )
    });
    s.push_str("ghp_0123456789abcdefghijABCDEFGHIJ012345\n");
    s
}

/// A Deployment with `n` containers, each with env values (one a plaintext password).
fn deployment(n: usize) -> Value {
    let containers: Vec<Value> = (0..n)
        .map(|i| {
            let env: Vec<Value> = (0..8)
                .map(|k| json!({"name": format!("SETTING_{k}"), "value": format!("value-{i}-{k}")}))
                .chain([json!({"name": "DB_PASSWORD", "value": format!("plain-{i}-Tr0ub4dor")})])
                .collect();
            json!({
                "name": format!("c{i}"), "image": "postgres:15",
                "command": ["sh", "-c", format!("redis-cli -a secret{i} ping")],
                "env": env,
                "resources": {"requests": {"cpu": "100m", "memory": "1e3"}, "limits": {"cpu": "99999999999999999999999999999999999999999Ei", "memory": "0.000000000000001"}},
                "volumeMounts": [{"name": "init", "mountPath": "/docker-entrypoint-initdb.d"}],
            })
        })
        .collect();
    let labels = json!({"app": "db", "stackguard.io/postgres-init": "true", "stackguard.io/redis-role": "pubsub"});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("many-containers", labels.clone()),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": containers, "volumes": [{"name": "init", "configMap": {"name": "init"}}]},
            },
        },
    })
}

fn config_map(name: &str, labels: Value, key: &str, text: String) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, labels), "data": {key: text}})
}

/// The objects whose rules do the most work, each just under the API server's limit: (name,
/// the policy whose rules read it most, object, what the report must contain).
#[allow(clippy::type_complexity)]
fn big_objects() -> Vec<(&'static str, &'static str, Value, Vec<&'static str>)> {
    let size = API_MAX - (64 << 10);
    let pg = json!({"stackguard.io/postgres-init": "true"});
    let pubsub = json!({"stackguard.io/redis-role": "pubsub"});
    let secret_text = fill(size / 2, |i| format!("password=plain-{i}\nuser=app{i}\n"));
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret_text.as_bytes());
    vec![
        (
            "sql-init",
            "postgres-extensions",
            config_map("sql-init", pg.clone(), "init.sql", sql(size)),
            vec!["plaintext PASSWORD"],
        ),
        (
            "shell-heredocs",
            "postgres-extensions",
            config_map("shell-heredocs", pg, "init.sh", shell(size)),
            vec!["ConfigMap"],
        ),
        (
            "redis-conf",
            "redis-pubsub-noeviction",
            config_map("redis-conf", pubsub, "redis.conf", redis_conf(size)),
            vec!["the includes expand to more than 1 MiB"],
        ),
        (
            "token-lookalikes",
            "no-plaintext-secrets",
            config_map(
                "token-lookalikes",
                json!({}),
                "notes.txt",
                token_lookalikes(size),
            ),
            vec!["GitHub"],
        ),
        (
            "secret-data",
            "no-plaintext-secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("secret-data", json!({})),
                   "data": {"app.env": encoded, "password": "Y2hhbmdlbWU="}}),
            vec!["secret-data", "password"],
        ),
        (
            "many-containers",
            "resource-limits",
            deployment(3600),
            vec!["plaintext password"],
        ),
    ]
}

/// 16 MiB of PostgreSQL StatefulSets whose init ConfigMap comes last: each one looks the
/// ConfigMap up before it is read, so each waits (its whole value kept) to be evaluated again
/// with the complete cluster state, until those waiting exceed half the memory budget; the rest
/// are parsed again from the file's text for that second pass. Every one is judged with the
/// ConfigMap (its extensions never include postgis), none with a partial context.
fn context_waiting(size: usize) -> String {
    let mut s = fill(size, |i| {
        let env: Vec<Value> = (0..60)
            .map(|k| json!({"name": format!("S{k}"), "value": format!("{k}")}))
            .collect();
        let labels = json!({"app": format!("pg{i}"), "stackguard.io/postgres-init": "true"});
        let sts = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": meta(&format!("pg{i}"), labels.clone()),
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "containers": [{"name": "postgres", "image": "postgis/postgis:15-3.4", "env": env,
                    "volumeMounts": [{"name": "init", "mountPath": "/docker-entrypoint-initdb.d"}]}],
                "volumes": [{"name": "init", "configMap": {"name": "init"}}]}}},
        });
        format!("---\n{sts}\n")
    });
    let init = config_map(
        "init",
        json!({}),
        "init.sql",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto;\n".to_string(),
    );
    s.push_str(&format!("---\n{init}\n"));
    s
}

/// The hostile inputs of both forms.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    out.push(Case {
        file: "context-waiting.yaml".to_string(),
        form: Form::Manifests,
        text: context_waiting(16 << 20),
        expect: vec!["never create the required extension(s) postgis"],
        module: "",
    });
    let mut all = Vec::new();
    for (name, module, object, expect) in big_objects() {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": stackguard::admission::request_for(&object, stackguard::admission::Op::Create, name),
        });
        out.push(Case {
            file: format!("{name}.json"),
            form: Form::Manifests,
            text: object.to_string(),
            expect,
            module,
        });
        out.push(Case {
            file: format!("{name}-request.json"),
            form: Form::Request,
            text: review.to_string(),
            expect: Vec::new(),
            module,
        });
        all.push(object);
    }
    // Five of them in one 15 MiB file.
    all.truncate(5);
    out.push(Case {
        file: "big-list.json".to_string(),
        form: Form::Manifests,
        text: json!({"apiVersion": "v1", "kind": "List", "items": all}).to_string(),
        expect: vec![
            "plaintext PASSWORD",
            "the includes expand to more than 1 MiB",
        ],
        module: "",
    });
    // Requests the API server would never send, but a file may hold.
    let deep = 100_000;
    out.push(Case {
        file: "deep-request.json".to_string(),
        form: Form::Request,
        text: format!(
            "{{\"kind\": {{\"kind\": \"ConfigMap\"}}, \"operation\": \"CREATE\", \"object\": {}{}}}",
            "{\"a\":[".repeat(deep),
            "]}".repeat(deep)
        ),
        expect: Vec::new(),
        module: "run-as-non-root",
    });
    let mut bomb = String::from(
        "kind: AdmissionReview\nrequest:\n  operation: CREATE\n  kind: {kind: ConfigMap}\n  object:\n    kind: ConfigMap\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='i' {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        let _ = writeln!(bomb, "    {c}: &{c} [{refs}]");
        prev = c;
    }
    out.push(Case {
        file: "alias-bomb-request.yaml".to_string(),
        form: Form::Request,
        text: bomb,
        expect: Vec::new(),
        module: "run-as-non-root",
    });
    out.push(Case {
        file: "huge-scalar-request.yaml".to_string(),
        form: Form::Request,
        text: format!(
            "request:\n  operation: CREATE\n  kind: {{kind: ConfigMap}}\n  object:\n    kind: ConfigMap\n    data:\n      k: {}\n",
            "x".repeat(16 << 20)
        ),
        expect: Vec::new(),
        module: "run-as-non-root",
    });
    out.extend(yaml_hostile());
    out
}

/// The YAML reader's hostile files (`tests/yaml/hostile.py`), as manifests.
fn yaml_hostile() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("limits-yaml-hostile");
    let _ = std::fs::remove_dir_all(&dir);
    let ok = Command::new("python3")
        .arg(root().join("tests/yaml/hostile.py"))
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tests/yaml/hostile.py failed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("hostile files")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| Case {
            file: p.file_name().unwrap().to_string_lossy().to_string(),
            form: Form::Manifests,
            text: std::fs::read_to_string(&p).expect("hostile file"),
            // Each holds Pods running as root around the hostile document.
            expect: vec!["runs as root"],
            module: "",
        })
        .collect()
}

/// How one child process ended.
struct Outcome {
    /// Exit code, or `None` when a signal ended it.
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    wall: Duration,
    /// Peak resident set size (kB), as GNU time reports it (`wait4` of a child it forked:
    /// the command's own, not inherited from this large test process).
    max_rss_kb: u64,
}

/// Run `argv` under GNU time, with writable memory capped at [`DATA_LIMIT`], in a process
/// group of its own that is killed after [`HANG`]; with `cache` as its cache directory
/// (`XDG_CACHE_HOME`) when given.
fn run_bounded(argv: &[OsString], scratch: &Path, cache: Option<&Path>) -> Outcome {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    let time_path = scratch.join("time");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&time_path)
        .arg("--")
        .args(argv)
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    if let Some(cache) = cache {
        cmd.env("XDG_CACHE_HOME", cache);
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: DATA_LIMIT,
                rlim_max: DATA_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 || libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .expect("/usr/bin/time (Debian package time: tests/setup.sh)");
    let group = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + HANG;
            while !done.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    // SAFETY: the group is the one this test started (the child is not reaped
                    // before `done` is set, so the id is still ours).
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let status = child.wait().expect("wait");
    done.store(true, Ordering::SeqCst);
    let wall = started.elapsed();
    let hung = watchdog.join().expect("watchdog");
    assert!(!hung, "{argv:?}: still running after {HANG:?}: killed");
    let report = std::fs::read_to_string(&time_path).unwrap_or_default();
    // GNU time: "Command terminated by signal N" when the command was killed.
    let signal = report
        .lines()
        .find_map(|l| l.strip_prefix("Command terminated by signal "))
        .and_then(|n| n.trim().parse().ok())
        .or(status.signal());
    Outcome {
        code: if signal.is_some() {
            None
        } else {
            status.code()
        },
        signal,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        wall,
        max_rss_kb: report
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// Which pairs run: `make test` ([`Scope::Test`]) or `make bench-limits` (every pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Test,
    Bench,
}

/// The argv of `cmd` on `input` (one per module for `{module}` commands: every module, or in
/// `make test` the case's own), with a label.
fn expand(
    cmd: &Cmd,
    case: &Case,
    scope: Scope,
    input: &Path,
    good: &Path,
) -> Vec<(String, Vec<OsString>)> {
    let modules: Vec<&str> = if !cmd.argv.contains(&"{module}") {
        vec![""]
    } else if scope == Scope::Test {
        vec![case.module]
    } else {
        policies().collect()
    };
    modules
        .iter()
        .map(|m| {
            let mut argv: Vec<OsString> = Vec::new();
            for a in cmd.argv {
                match *a {
                    "{stackguard}" => argv.push(stackguard().into()),
                    "{hook}" => argv.push(hook().into()),
                    "{module}" => argv.push(module(m).into()),
                    "{modules}" => policies().for_each(|p| {
                        argv.push("--policy".into());
                        argv.push(module(p).into());
                    }),
                    "{inputs}" => {
                        argv.push(input.into());
                        argv.push(good.into());
                    }
                    "{input}" => argv.push(input.into()),
                    other => argv.push(other.into()),
                }
            }
            let label = if m.is_empty() {
                cmd.name.to_string()
            } else {
                format!("{} {m}", cmd.name)
            };
            (label, argv)
        })
        .collect()
}

/// Every (command, case) pair of `scope`: (command label, case file, outcome or the problems
/// found).
fn run_all(scope: Scope, runs: usize) -> Vec<(String, String, Outcome, Vec<String>)> {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("limits");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let good = scratch.join("good.yaml");
    let mut results = Vec::new();
    for case in cases() {
        let input = scratch.join(&case.file);
        let commands = COMMANDS
            .iter()
            .filter(|c| c.form == case.form && (c.in_test || scope == Scope::Bench));
        for cmd in commands {
            for (label, argv) in expand(cmd, &case, scope, &input, &good) {
                let mut worst: Option<Outcome> = None;
                // With modules, the benchmark first runs once more with a new module cache:
                // the memory of a first run after installing them, which compiles them (its
                // time is not a pair's time: compiling happens once per module version).
                let modules = argv.iter().any(|a| a.to_string_lossy().ends_with(".wasm"));
                let extra = usize::from(scope == Scope::Bench && modules);
                let (mut cold_rss, mut cold_problems) = (0, Vec::new());
                for run in 0..runs + extra {
                    // Afresh for every run: `fix` edits the files in place.
                    std::fs::write(&good, GOOD).expect("good.yaml");
                    std::fs::write(&input, &case.text).expect("hostile file");
                    let cold = (run < extra).then(|| {
                        let cache = scratch.join("new-module-cache");
                        let _ = std::fs::remove_dir_all(&cache);
                        cache
                    });
                    let o = run_bounded(&argv, &scratch, cold.as_deref());
                    if cold.is_some() {
                        cold_rss = o.max_rss_kb;
                        cold_problems = judge(cmd, &case, &o);
                        continue;
                    }
                    if worst.as_ref().is_none_or(|w| o.wall > w.wall) {
                        let rss = worst.as_ref().map_or(0, |w| w.max_rss_kb);
                        worst = Some(Outcome {
                            max_rss_kb: o.max_rss_kb.max(rss),
                            ..o
                        });
                    } else if let Some(w) = worst.as_mut() {
                        w.max_rss_kb = w.max_rss_kb.max(o.max_rss_kb);
                    }
                }
                let mut o = worst.expect("at least one run");
                o.max_rss_kb = o.max_rss_kb.max(cold_rss);
                let mut problems = judge(cmd, &case, &o);
                problems.extend(cold_problems.into_iter().map(|p| format!("first run: {p}")));
                eprintln!(
                    "{label:<34} {:<28} {:>7.2} s {:>6} MB  exit {:?}{}",
                    case.file,
                    o.wall.as_secs_f64(),
                    o.max_rss_kb / 1024,
                    o.code,
                    if problems.is_empty() { "" } else { "  FAILED" }
                );
                results.push((label, case.file.clone(), o, problems));
            }
        }
        let _ = std::fs::remove_file(&input);
    }
    results
}

/// What bounded behaviour means for one run.
fn judge(cmd: &Cmd, case: &Case, o: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let output = format!("{}\n{}", o.stdout, o.stderr);
    if let Some(sig) = o.signal {
        problems.push(format!(
            "killed by signal {sig} (memory above {DATA_LIMIT} bytes?)"
        ));
    }
    if o.stderr.contains("panicked") {
        problems.push("panicked".to_string());
    }
    match cmd.form {
        Form::Manifests => {
            // Exit 1: findings (good.yaml has one) or unreadable documents; never 2 (that would
            // mean the run gave up on every file).
            if o.code != Some(1) {
                problems.push(format!("exit {:?} instead of 1", o.code));
            }
            if !output.contains("good.yaml") {
                problems.push("good.yaml was not checked".to_string());
            }
            // What the case must produce: the file named, with its error or finding.
            if !case.expect.is_empty() && !output.contains(&case.file) {
                problems.push(format!("nothing names {}", case.file));
            }
            for e in &case.expect {
                if !output.contains(e) {
                    problems.push(format!("the report lacks {e:?}"));
                }
            }
        }
        Form::Request => match o.code {
            Some(0) => match serde_json::from_str::<Value>(o.stdout.trim()) {
                Ok(resp) => {
                    let msg = resp["status"]["message"].as_str().unwrap_or("");
                    if msg.contains("policy evaluation failed") {
                        problems.push(format!("the module trapped or timed out: {msg}"));
                    }
                }
                Err(e) => problems.push(format!("stdout is not an AdmissionResponse: {e}")),
            },
            Some(2) if o.stderr.contains(&case.file) => {}
            other => problems.push(format!(
                "exit {other:?} without an error naming {}: {}",
                case.file,
                o.stderr.lines().next().unwrap_or("")
            )),
        },
    }
    problems
}

#[test]
fn every_command_stays_bounded_on_hostile_input() {
    let results = run_all(Scope::Test, 1);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.3.is_empty())
        .map(|(cmd, file, _, problems)| format!("{cmd} on {file}: {}", problems.join("; ")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} runs unbounded:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

/// `make bench-limits`: the worst wall time and peak RSS of `LIMITS_RUNS` runs (default 3) of
/// every pair, as a Markdown table in `target/bench/limits.md`.
#[test]
#[ignore = "a benchmark: make bench-limits"]
fn bench() {
    let runs = std::env::var("LIMITS_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let results = run_all(Scope::Bench, runs);
    let mut table = format!(
        "Worst of {runs} runs per pair (wall clock, peak RSS), `RLIMIT_DATA` {} MiB.\n\n| command | input | worst time | worst peak RSS | exit | bounded |\n|---|---|---:|---:|---:|---|\n",
        DATA_LIMIT >> 20
    );
    for (cmd, file, o, problems) in &results {
        let _ = writeln!(
            table,
            "| {cmd} | {file} | {:.2} s | {} MB | {} | {} |",
            o.wall.as_secs_f64(),
            o.max_rss_kb / 1024,
            o.code.map_or("signal".to_string(), |c| c.to_string()),
            if problems.is_empty() {
                "yes".to_string()
            } else {
                problems.join("; ")
            }
        );
    }
    let worst_time = results.iter().max_by_key(|r| r.2.wall).expect("results");
    let worst_rss = results
        .iter()
        .max_by_key(|r| r.2.max_rss_kb)
        .expect("results");
    let _ = writeln!(
        table,
        "\nWorst time: {:.2} s ({} on {}). Worst peak RSS: {} MB ({} on {}).",
        worst_time.2.wall.as_secs_f64(),
        worst_time.0,
        worst_time.1,
        worst_rss.2.max_rss_kb / 1024,
        worst_rss.0,
        worst_rss.1
    );
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("limits.md"), &table).expect("limits.md");
    println!("{table}");
}
