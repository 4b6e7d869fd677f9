//! Hostile YAML: `stackguard check` (built as `limits_check` in the harness package) and the
//! lean pre-commit binary `stackguard-hook` (built as `limits_hook` in the root package) on the
//! files of `tests/yaml/hostile.py`: an alias bomb, alias fan-out, deep flow and block nesting,
//! an 8 MiB scalar, 50,000 documents, 16 MiB flow sequences of scalars and of mappings, and
//! 16 MiB of real Deployments.
//! Each time the bad document is reported with its file, document and line, and the good
//! documents around it are still checked. Time and memory are measured by
//! `tests/bench/yaml_hostile.sh`, not asserted here.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The binary under test: whichever of the two this test target was built with.
fn bin() -> &'static str {
    option_env!("CARGO_BIN_EXE_stackguard-hook")
        .or(option_env!("CARGO_BIN_EXE_stackguard"))
        .expect("built as a test of the stackguard or stackguard-hook package")
}

fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("harness").is_dir() {
        here.to_path_buf()
    } else {
        here.join("..")
    }
}

/// The hostile files, generated once per test binary.
fn files() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "yaml-hostile-{}",
            Path::new(bin()).file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let ok = Command::new("python3")
            .arg(root().join("tests/yaml/hostile.py"))
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tests/yaml/hostile.py failed");
        dir
    })
}

/// `check --format json` on one hostile file (only run-as-non-root enabled, so the good
/// documents' findings are the root Pods'): (exit code, report).
fn check(name: &str) -> (i32, Value) {
    let dir = files();
    let config = dir.join("only-run-as-non-root.yaml");
    if !config.exists() {
        let mut text = String::from("policies:\n");
        for e in stackguard::policies::ALL {
            if e.name != "run-as-non-root" {
                text.push_str(&format!("  {}: {{enabled: false}}\n", e.name));
            }
        }
        std::fs::write(&config, text).unwrap();
    }
    // The hook binary is `check` itself: it takes check's arguments without the subcommand.
    let subcommand: &[&str] = if bin().ends_with("stackguard-hook") {
        &[]
    } else {
        &["check"]
    };
    let out = Command::new(bin())
        .current_dir(dir)
        .args(subcommand)
        .args(["--format", "json", "--config"])
        .arg(&config)
        .arg(name)
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: not a JSON report ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), report)
}

/// The names of the objects with findings, and the errors (line, message).
fn summary(report: &Value) -> (Vec<String>, Vec<(u64, String)>) {
    let mut names: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.dedup();
    let errors = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (names, errors)
}

/// A file with a bad document between the root Pods `before` and `after`.
fn bad_document_between_good_ones(name: &str, line: u64, message: &str) {
    let (code, report) = check(name);
    assert_eq!(code, 1, "{name}: {report}");
    let (names, errors) = summary(&report);
    assert_eq!(names, ["before", "after"], "{name}: {report}");
    assert_eq!(errors.len(), 1, "{name}: {errors:?}");
    assert_eq!(errors[0].0, line, "{name}: {errors:?}");
    assert!(
        errors[0].1.starts_with("document 2 ") && errors[0].1.contains(message),
        "{name}: {errors:?}"
    );
    assert_eq!(report["errors"][0]["file"], name, "{name}");
}

#[test]
fn alias_bomb() {
    bad_document_between_good_ones("alias-bomb.yaml", 19, "excessive aliasing");
}

#[test]
fn alias_fanout() {
    bad_document_between_good_ones("alias-fanout.yaml", 20040, "excessive aliasing");
}

#[test]
fn deep_flow_nesting() {
    bad_document_between_good_ones("deep-flow.yaml", 16, "nesting deeper than 128 levels");
}

#[test]
fn deep_block_nesting() {
    bad_document_between_good_ones("deep-block.yaml", 144, "nesting deeper than 128 levels");
}

#[test]
fn huge_scalar() {
    bad_document_between_good_ones("huge-scalar.yaml", 17, "a scalar of 8388608 bytes");
}

#[test]
fn wide_flow_sequence() {
    bad_document_between_good_ones(
        "wide-flow.yaml",
        15,
        "its data would take more than 96 MiB of memory",
    );
}

#[test]
fn tiny_mappings() {
    bad_document_between_good_ones(
        "tiny-maps.yaml",
        15,
        "its data would take more than 96 MiB of memory",
    );
}

#[test]
fn a_big_scalar_under_the_limit_is_read() {
    let (code, report) = check("big-scalar-ok.yaml");
    assert_eq!(code, 1);
    let (names, errors) = summary(&report);
    assert_eq!(names, ["before", "after"], "{report}");
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn fifty_thousand_documents() {
    let (code, report) = check("many-documents.yaml");
    assert_eq!(code, 1);
    let (names, errors) = summary(&report);
    // The root Pod (document 3) is checked; documents from 10,001 on are reported once.
    assert_eq!(names, ["root"], "{report}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 40007, "{errors:?}");
    assert!(
        errors[0]
            .1
            .starts_with("document 10001 not read: more than 10000 documents"),
        "{errors:?}"
    );
}

/// 16 MiB of ordinary Deployments: `check` streams them (each object is evaluated as it is
/// read and then dropped), so every document is checked, the root Pods before and after them
/// are reported, and nothing is left unread.
#[test]
fn sixteen_mib_of_deployments_are_all_checked() {
    let (code, report) = check("big-16mb.yaml");
    assert_eq!(code, 1);
    let (names, errors) = summary(&report);
    assert_eq!(names, ["before", "after"], "{report}");
    assert!(errors.is_empty(), "{errors:?}");
    let text = std::fs::read_to_string(files().join("big-16mb.yaml")).unwrap();
    let documents = text.matches("\n---\n").count() as u64 + 1;
    assert!(documents > 5000, "{documents}");
    assert_eq!(
        report["summary"]["objects"].as_u64(),
        Some(documents),
        "{}",
        report["summary"]
    );
}
