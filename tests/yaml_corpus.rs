//! YAML as Kubernetes reads it: every file of `../shared/corpus` must load to the same JSON
//! with our reader as with libyaml under Kubernetes' rules. The reference is
//! `tests/yaml/kubectl_libyaml.py`: PyYAML's libyaml parser (the C extension of the PyPI wheel)
//! for the grammar, go-yaml v2's resolution and decoding and sigs.k8s.io/yaml's JSON conversion
//! on top, documents cut at `---` lines as kubectl cuts them. It runs in a venv under target/
//! (tests/setup.sh creates it; this test creates it when missing).
//!
//! Per file we compare the documents' values (null documents dropped) and the number of
//! documents that cannot be read. Every difference left is listed in `ALLOWED` with its reason;
//! the test fails on any other difference, and on an allowed one that is gone.

use stackguard::manifest::{self, Input};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files whose reading differs from the reference on purpose: (file, reason).
const ALLOWED: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// `target/yaml-oracle-venv/bin/python` with PyYAML (and its libyaml extension) from PyPI.
fn oracle_python() -> PathBuf {
    let venv = root().join("target/yaml-oracle-venv");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args([
                "-c",
                "import yaml, sys; sys.exit(0 if yaml.__with_libyaml__ else 1)",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "PyYAML==6.0.3"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "cannot install PyYAML into {}", venv.display());
        assert!(
            ready(&python),
            "PyYAML in {} has no libyaml",
            venv.display()
        );
    }
    python
}

/// Read every file under `dir` with both readers: (files, documents, differences by file).
fn compare(dir: &Path) -> (usize, usize, BTreeMap<String, String>) {
    let out = Command::new(oracle_python())
        .arg(root().join("tests/yaml/kubectl_libyaml.py"))
        .arg(dir)
        .output()
        .expect("run the reference reader");
    assert!(
        out.status.success(),
        "reference reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut differences = BTreeMap::new();
    let (mut files, mut documents) = (0usize, 0usize);
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let reference: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = reference["file"].as_str().unwrap().to_string();
        let want_docs = reference["docs"].as_array().unwrap();
        let want_errors = reference["errors"].as_u64().unwrap() as usize;
        let (docs, errors) = match manifest::read(&Input::File(dir.join(&file))) {
            Ok(src) => {
                let (docs, errors) = manifest::documents(&src);
                let values: Vec<serde_json::Value> = docs
                    .into_iter()
                    .map(|d| d.value)
                    .filter(|v| !v.is_null())
                    .collect();
                (values, errors.len())
            }
            Err(_) => (Vec::new(), 1),
        };
        files += 1;
        documents += docs.len();
        if docs != *want_docs || errors != want_errors {
            let first = docs
                .iter()
                .zip(want_docs)
                .position(|(a, b)| a != b)
                .map_or_else(
                    || format!("{} documents vs {}", docs.len(), want_docs.len()),
                    |i| format!("document {i} differs: {} vs {}", docs[i], want_docs[i]),
                );
            differences.insert(
                file,
                format!("{first}; errors: ours {errors}, reference {want_errors}"),
            );
        }
    }
    (files, documents, differences)
}

#[test]
fn every_corpus_file_reads_as_kubectl_reads_it() {
    let corpus = root().join("../shared/corpus");
    assert!(corpus.is_dir(), "{} is missing", corpus.display());
    let (files, documents, differences) = compare(&corpus);
    assert!(files > 3000, "only {files} files in the corpus");
    let allowed: BTreeMap<&str, &str> = ALLOWED.iter().copied().collect();
    let unexpected: Vec<_> = differences
        .iter()
        .filter(|(f, _)| !allowed.contains_key(f.as_str()))
        .collect();
    let gone: Vec<_> = allowed
        .keys()
        .filter(|f| !differences.contains_key(**f))
        .collect();
    eprintln!(
        "{files} files, {documents} documents compared with libyaml under Kubernetes' rules; {} allowed differences",
        allowed.len()
    );
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "differences from kubectl's reading: {unexpected:#?}\nallowed differences that are gone: {gone:?}"
    );
}

/// The corpus has no `yes`/`on`/`0o17`/… and few anchors: `tests/data/yaml/` holds every rule
/// of the resolution table, merges, aliases and the documents kubectl refuses.
#[test]
fn every_resolution_rule_reads_as_kubectl_reads_it() {
    let (files, documents, differences) = compare(&root().join("tests/data/yaml"));
    assert!(
        files >= 1 && documents >= 5,
        "{files} files, {documents} documents"
    );
    assert!(differences.is_empty(), "{differences:#?}");
}
