//! The pre-commit hooks for real: install `pre-commit` from PyPI into a venv under target/,
//! make a scratch git repository, run `pre-commit try-repo <this clone> stackguard` and check
//! that a bad manifest fails the hook with our message and the fixed one passes; then
//! `stackguard-fix`: it fixes a manifest in place and fails the commit because it changed it (as
//! `end-of-file-fixer` does), and passes once nothing is left to fix. The first run builds the
//! lean hook (`cargo install --path .`): its duration is printed (the README quotes it). Both
//! hooks run in one test so that they share that build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn sh(dir: &Path, cmd: &mut Command) -> (bool, String) {
    let out = cmd.current_dir(dir).output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `target/precommit-venv/bin/pre-commit`, installed from PyPI when missing.
fn pre_commit() -> PathBuf {
    let venv = root().join("target/precommit-venv");
    let bin = venv.join("bin/pre-commit");
    if !bin.exists() {
        let (ok, out) = sh(
            &root(),
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        );
        assert!(ok, "python3 -m venv failed (install python3-venv): {out}");
        let (ok, out) = sh(
            &root(),
            Command::new(venv.join("bin/pip")).args(["install", "-q", "pre-commit>=3"]),
        );
        assert!(ok, "pip install pre-commit failed: {out}");
    }
    bin
}

fn git(dir: &Path, args: &[&str]) {
    let (ok, out) = sh(
        dir,
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args),
    );
    assert!(ok, "git {args:?}: {out}");
}

#[test]
fn hooks_check_and_fix_manifests() {
    let pre_commit = pre_commit();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("precommit-repo");
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("precommit-home");
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);

    let bad = std::fs::read_to_string(root().join("tests/data/cli/bad.yaml")).unwrap();
    std::fs::write(work.join("app.yaml"), &bad).unwrap();
    // Only run-as-non-root, so the expectation does not move when policies are added.
    let mut config = String::from("policies:\n");
    for e in stackguard::policies::ALL {
        if e.name != "run-as-non-root" {
            config.push_str(&format!("  {}: {{enabled: false}}\n", e.name));
        }
    }
    if config == "policies:\n" {
        config = "policies: {}\n".into();
    }
    std::fs::write(work.join(".stackguard.yaml"), config).unwrap();
    git(&work, &["add", "."]);

    let try_repo_hook = |hook: &str, label: &str| {
        let started = Instant::now();
        let (ok, out) = sh(
            &work,
            Command::new(&pre_commit)
                .args(["try-repo"])
                .arg(root())
                .args([hook, "--all-files", "--color=never"])
                // A private cache: the first run really builds the hook.
                .env("PRE_COMMIT_HOME", &home),
        );
        eprintln!(
            "pre-commit try-repo ({label}): {:.1} s",
            started.elapsed().as_secs_f64()
        );
        (ok, out)
    };
    let try_repo = |label: &str| try_repo_hook("stackguard", label);

    let (ok, out) = try_repo("first run: builds the hook");
    assert!(!ok, "the hook must fail on a root container:\n{out}");
    assert!(
        out.contains("app.yaml:24  Deployment shop/api  [run-as-non-root]"),
        "{out}"
    );
    assert!(out.contains("container 'api' runs as root"), "{out}");

    let fixed = bad.replace(
        "runAsUser: 0",
        "runAsNonRoot: true\n        runAsUser: 10001",
    );
    std::fs::write(work.join("app.yaml"), fixed).unwrap();
    git(&work, &["add", "."]);
    let (ok, out) = try_repo("second run: cached when the clone is clean");
    assert!(ok, "the fixed manifest must pass:\n{out}");
    assert!(out.contains("Passed"), "{out}");

    // stackguard-fix: the Deployment without allowPrivilegeEscalation and capabilities.
    let unfixed = bad.replace("runAsUser: 0", "runAsNonRoot: true").replace(
        "          securityContext:\n            allowPrivilegeEscalation: false\n            capabilities:\n              drop: [ALL]",
        "          ports:\n            - containerPort: 8080",
    );
    assert_ne!(unfixed, bad);
    std::fs::write(work.join("app.yaml"), &unfixed).unwrap();
    git(&work, &["add", "."]);
    let (ok, out) = try_repo_hook("stackguard-fix", "stackguard-fix: fixes the file");
    assert!(
        !ok,
        "the fix hook must fail the commit when it changed a file:\n{out}"
    );
    assert!(out.contains("files were modified by this hook"), "{out}");
    let fixed = std::fs::read_to_string(work.join("app.yaml")).unwrap();
    let docs = stackguard::yaml::values(&fixed).unwrap();
    assert_eq!(
        docs[1]["spec"]["template"]["spec"]["containers"][0]["securityContext"],
        serde_json::json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        "{fixed}"
    );
    // Every original line is still there, in order: only additions.
    let mut rest = fixed.lines();
    for line in unfixed.lines() {
        assert!(
            rest.any(|l| l == line),
            "line lost or changed: {line:?}\n{fixed}"
        );
    }
    git(&work, &["add", "."]);
    let (ok, out) = try_repo_hook("stackguard-fix", "stackguard-fix: nothing left to fix");
    assert!(ok, "nothing left to fix, the fix hook passes:\n{out}");
    assert_eq!(
        std::fs::read_to_string(work.join("app.yaml")).unwrap(),
        fixed
    );
    let (ok, out) = try_repo("stackguard on the fixed file");
    assert!(
        ok,
        "the check hook passes on what the fix hook wrote:\n{out}"
    );
}
