//! `stackguard run` end to end, as `kwctl run` is used: a module, a request (bare or inside an
//! AdmissionReview, JSON or YAML), settings, context manifests or a recorded kwctl session.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackguard");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn module() -> String {
    let m = root().join("dist/run-as-non-root.wasm");
    assert!(
        m.exists(),
        "{} is missing: build the modules first with `make policies`",
        m.display()
    );
    m.to_string_lossy().into_owned()
}

fn data(f: &str) -> String {
    root()
        .join("tests/data/cli")
        .join(f)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run stackguard");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn review_is_denied_with_the_policy_message() {
    let m = module();
    let (code, stdout, stderr) = run(&["run", &m, "-r", &data("review-root.json")]);
    assert_eq!(code, 0, "deny still exits 0, as kwctl: {stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["uid"], "1299d386-525b-4032-98ae-1949f69f9cfc");
    assert_eq!(v["allowed"], false);
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(msg.contains("Pod 'default/root-pod'"), "{msg}");
    assert!(msg.contains("runs as root"), "{msg}");
}

#[test]
fn bare_yaml_request_is_allowed() {
    let m = module();
    let (code, stdout, stderr) = run(&[
        "run",
        &m,
        "--request-path",
        &data("request-ok.yaml"),
        "--settings-json",
        "{}",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["uid"], "req-ok");
    assert_eq!(v["allowed"], true);
}

#[test]
fn settings_are_validated_by_the_module() {
    let m = module();
    let (code, _, stderr) = run(&[
        "run",
        &m,
        "-r",
        &data("request-ok.yaml"),
        "--settings-json",
        r#"{"bogusKey": 1}"#,
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("settings rejected by the policy"),
        "{stderr}"
    );
    assert!(stderr.contains("bogusKey"), "{stderr}");
}

#[test]
fn context_manifests_and_replay_sessions_load() {
    let m = module();
    let (code, stdout, stderr) = run(&[
        "run",
        &m,
        "-r",
        &data("review-root.json"),
        "--context",
        &root().join("deploy").to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"allowed\":false"));

    // This policy makes no host call: the recorded exchange is left over, and we say so.
    let (code, stdout, stderr) = run(&[
        "run",
        &m,
        "-r",
        &data("request-ok.yaml"),
        "--replay-host-capabilities-interactions",
        &data("session.yml"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"allowed\":true"));
    assert!(
        stderr.contains("1 recorded host-capability exchange(s) were not replayed"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&[
        "run",
        &m,
        "-r",
        &data("request-ok.yaml"),
        "--replay-host-capabilities-interactions",
        &data("good.yaml"),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("not a kwctl host-capabilities session"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&[
        "run",
        &m,
        "-r",
        &data("request-ok.yaml"),
        "--context",
        "nope/",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--context: nope"), "{stderr}");
}

/// A tiny waPC guest (tests/data/cli/host-call-guest.wat) that asks the host for the Namespace
/// `default`: the real host answers from `--context` manifests or a replayed kwctl session.
#[test]
fn host_calls_are_answered_from_context_or_a_replayed_session() {
    let wat = std::fs::read_to_string(root().join("tests/data/cli/host-call-guest.wat")).unwrap();
    let wasm = wat::parse_str(&wat).expect("valid WAT");
    let guest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-call-guest.wasm");
    std::fs::write(&guest, wasm).unwrap();
    let guest = guest.to_string_lossy().into_owned();
    let request = data("request-ok.yaml");
    let allowed = |extra: &[&str]| {
        let mut args = vec!["run", guest.as_str(), "-r", request.as_str()];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        (v["allowed"].as_bool().unwrap(), stderr)
    };
    // No cluster: the host call fails.
    assert!(!allowed(&[]).0);
    // Manifests as cluster state: found.
    assert!(allowed(&["--context", &data("namespace.yaml")]).0);
    // Manifests without that Namespace: not found.
    assert!(!allowed(&["--context", &data("good.yaml")]).0);
    // The kwctl recording answers, and is used up.
    let (ok, stderr) = allowed(&[
        "--replay-host-capabilities-interactions",
        &data("session.yml"),
    ]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("not replayed"), "{stderr}");
    // A recording of another request is not replayed.
    let other = Path::new(env!("CARGO_TARGET_TMPDIR")).join("other-session.yml");
    std::fs::write(
        &other,
        std::fs::read_to_string(data("session.yml"))
            .unwrap()
            .replace("name: default", "name: kube-system"),
    )
    .unwrap();
    let (ok, _) = allowed(&[
        "--replay-host-capabilities-interactions",
        &other.to_string_lossy(),
    ]);
    assert!(!ok);
}

/// The README's mutating example: with `mutate: true` the answer carries the JSONPatch as
/// policy-server sends it; without, the same request is denied and nothing is patched.
#[test]
fn mutation_is_answered_with_a_base64_json_patch() {
    use base64::Engine;
    let m = module();
    let request = data("request-mutate.yaml");
    let (code, stdout, stderr) = run(&[
        "run",
        &m,
        "-r",
        &request,
        "--settings-json",
        r#"{"mutate": true}"#,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["uid"], "req-mutate");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(v["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        serde_json::json!([{"op": "add", "path": "/spec/containers/0/securityContext", "value": {
            "runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}])
    );
    let (code, stdout, _) = run(&["run", &m, "-r", &request]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["allowed"], false);
    assert!(
        v.get("patch").is_none() && v.get("patchType").is_none(),
        "{v}"
    );
}

#[test]
fn a_module_used_often_is_never_recompressed_in_the_cache() {
    // wasmtime's cache recompresses an entry with zstd level 20 once it has been loaded 256
    // times, in a background thread of whichever run comes next: seconds and over 100 MB in a
    // user's `check`. Give the cached module a use count far past that threshold, then load it
    // in runs long enough for that thread to act: the use is counted, yet no recompression is
    // ever started (it would leave a `.wip-` lock while it works) and the entry keeps the
    // baseline level. The count is seeded because a short run often ends before the thread
    // counts its use (on a busy machine, most are lost).
    const SEEDED: u64 = 1_000_000;
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-run-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let module = module();
    let request = data("request-ok.yaml");
    let bench = |n: &str| {
        let out = Command::new(BIN)
            .args(["bench", "--policy", &module, "-n", n, "-r", &request])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .expect("run stackguard bench");
        assert!(out.status.success(), "{out:?}");
    };
    let mut runs = 0;
    let stats_path = loop {
        if let Some(path) = stats_paths(&cache).into_iter().next() {
            break path;
        }
        assert!(runs < 50, "{runs} runs, the module was never cached");
        bench("100");
        runs += 1;
    };
    let seeded = std::fs::read_to_string(&stats_path)
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("usages = ") {
            true => format!("usages = {SEEDED}\n"),
            false => format!("{l}\n"),
        })
        .collect::<String>();
    assert!(seeded.contains("optimized-compression = 3"), "{seeded}");
    std::fs::write(&stats_path, seeded).unwrap();
    let mut runs = 0;
    while usages(&stats_files(&cache)) <= SEEDED {
        assert!(
            runs < 20,
            "{runs} runs, no use counted: {:?}",
            stats_files(&cache)
        );
        bench("3000");
        runs += 1;
    }
    let stats = stats_files(&cache);
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert!(
        stats[0].contains("optimized-compression = 3"),
        "{}",
        stats[0]
    );
}

/// The `.stats` files of a wasmtime cache directory. Fails if a recompression was started: it
/// locks its entry with `ENTRY.wip-PID` (`.cleanup.wip-PID` is the size cleanup's lock,
/// `….wip-atomic-write-stats` a stats file being written).
fn stats_paths(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut stats = Vec::new();
    let mut stack = vec![cache.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let recompressing = !name.starts_with(".cleanup")
                && name
                    .rsplit_once(".wip-")
                    .is_some_and(|(_, pid)| pid.bytes().all(|b| b.is_ascii_digit()));
            assert!(!recompressing, "a recompression was started: {name}");
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".stats") {
                stats.push(p);
            }
        }
    }
    stats
}

/// The contents of the `.stats` files (see [`stats_paths`]).
fn stats_files(cache: &Path) -> Vec<String> {
    stats_paths(cache)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// The use count of the one cached module (0 before it is cached).
fn usages(stats: &[String]) -> u64 {
    stats
        .first()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("usages = ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
