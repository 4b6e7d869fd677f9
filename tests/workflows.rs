//! `.github/workflows/*.yml` pass actionlint (with ShellCheck on their `run:` scripts), the
//! checker tests/setup.sh installs into target/actionlint-venv. The workflows themselves cannot
//! run here (no GitHub runner, no internet): this is what can be checked of them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn actionlint() -> PathBuf {
    let bin = root().join("target/actionlint-venv/bin/actionlint");
    assert!(
        bin.exists(),
        "{} is missing: run tests/setup.sh",
        bin.display()
    );
    bin
}

fn lint(files: &[PathBuf]) -> std::process::Output {
    Command::new(actionlint())
        .arg("-no-color")
        .args(files)
        .current_dir(root())
        .output()
        .expect("actionlint runs")
}

#[test]
fn workflows_pass_actionlint() {
    let dir = root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["ci.yml", "release.yml"]);
    let out = lint(&files);
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ShellCheck is there, so the run: scripts were checked too.
    assert!(
        Command::new("shellcheck")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "shellcheck is missing: run tests/setup.sh"
    );
}

/// The checker really checks: a workflow with a typo'd key, an undefined job dependency and a
/// shell bug is rejected with each problem named.
#[test]
fn actionlint_rejects_a_broken_workflow() {
    let dir = root().join("target/actionlint-test/.github/workflows");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nowhere\n    steps:\n      - run: echo $UNQUOTED_VAR\n        shel: bash\n",
    )
    .unwrap();
    let out = lint(&[bad]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for problem in ["shel", "nowhere", "SC2086"] {
        assert!(
            text.contains(problem),
            "actionlint did not report {problem}:\n{text}"
        );
    }
}
