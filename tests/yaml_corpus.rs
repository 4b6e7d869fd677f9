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
//!
//! The same corpus is the property test of the minimal-edit engine (`yaml_edit`).

use serde_json::{Value, json};
use stackguard::manifest::{self, Input};
use stackguard::yaml_edit::{DocEdit, apply_additions};
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

/// The three corpus files with multi-line quoted scalars whose continuation lines sit at the
/// parent's indentation (libyaml and kubectl accept them; the yaml-rust2 loader refused them).
const QUOTED_CONTINUATION: [&str; 3] = [
    "argoproj__argo-cd/resource_customizations__db.atlasgo.io__AtlasSchema__testdata__healthy.yaml",
    "argoproj__argo-cd/resource_customizations__work.karmada.io__ClusterResourceBinding__testdata__progressing.yaml",
    "argoproj__argo-cd/resource_customizations__work.karmada.io__ResourceBinding__testdata__progressing.yaml",
];

#[test]
fn quoted_scalars_continued_at_the_parent_indentation_are_read() {
    let corpus = root().join("../shared/corpus");
    for name in QUOTED_CONTINUATION {
        let src = manifest::read(&Input::File(corpus.join(name))).unwrap();
        let stream = stackguard::yaml::parse_stream(&src.text);
        assert!(stream.errors.is_empty(), "{name}: {:?}", stream.errors);
        let v = &stream.documents[0].value;
        let message = v["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or("");
        // The continuation lines are folded into the value, one space per line break.
        assert!(
            message.len() > 40 && !message.contains('\n'),
            "{name}: {message:?}"
        );
    }
}

/// Line numbers stay exact: in every document of the corpus, every mapping key that
/// `locate_paths` places (the lines findings are reported at) is on that line of the file.
#[test]
fn every_key_of_the_corpus_is_located_on_its_own_line() {
    let corpus = root().join("../shared/corpus");
    let (mut keys, mut failures) = (0usize, Vec::new());
    for entry in walk(&corpus) {
        let Ok(src) = manifest::read(&Input::File(entry.clone())) else {
            continue;
        };
        let stream = stackguard::yaml::parse_stream(&src.text);
        let wanted: Vec<usize> = stream.documents.iter().map(|d| d.index).collect();
        let lines: Vec<&str> = src.text.split('\n').collect();
        for (_, paths) in stackguard::yaml::locate_paths(&src.text, &wanted) {
            for (path, line) in paths {
                // The last segment of `a.b.c` (not a sequence item `a[0]`, not a dotted key).
                let Some(key) = path.rsplit('.').next().filter(|k| {
                    !k.is_empty()
                        && !k.ends_with(']')
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
                }) else {
                    continue;
                };
                keys += 1;
                if !lines.get(line - 1).is_some_and(|l| l.contains(key)) {
                    failures.push(format!("{}: {path} is not on line {line}", entry.display()));
                }
            }
        }
    }
    eprintln!("{keys} keys located on their lines");
    assert!(keys > 100_000, "only {keys} keys");
    assert!(
        failures.is_empty(),
        "{} keys misplaced: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
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

/// `v` grown with additions everywhere `stackguard fix` may add things: new keys in mappings
/// (scalars that need quoting, nested mappings and lists), items appended to lists, null and
/// empty values filled in. Deterministic: `n` counts the nodes visited.
fn grow(v: &Value, n: &mut usize, depth: usize) -> Value {
    *n += 1;
    match v {
        Value::Object(m) if m.is_empty() => json!({"added": "1"}),
        Value::Object(m) if depth < 8 => {
            let mut out: serde_json::Map<String, Value> = m
                .iter()
                .map(|(k, x)| (k.clone(), grow(x, n, depth + 1)))
                .collect();
            let key = format!("zz-added-{n}");
            match *n % 4 {
                0 => out.insert(key, json!("1")),
                1 => out.insert(
                    key,
                    json!({"nested": {"on": "yes", "list": ["a: b", 2, {"k": null}]}}),
                ),
                2 => out.insert(key, json!(["x", "#y"])),
                _ => out.insert(key, json!(true)),
            };
            Value::Object(out)
        }
        Value::Array(a) if a.is_empty() => json!(["added"]),
        Value::Array(a) if depth < 8 => {
            let mut out: Vec<Value> = a.iter().map(|x| grow(x, n, depth + 1)).collect();
            out.push(match a.last() {
                Some(Value::Object(_)) => json!({"name": "added", "port": 8080}),
                _ => json!("added-item"),
            });
            Value::Array(out)
        }
        Value::Null if n.is_multiple_of(2) => json!({"filled": "in"}),
        other => other.clone(),
    }
}

/// Is `old` a subsequence of `new` (the line only gained characters)?
fn only_gained(old: &str, new: &str) -> bool {
    let mut rest = new.chars();
    old.chars().all(|c| rest.any(|d| d == c))
}

/// `stackguard::yaml_edit` on every document of the corpus, with synthetic additions: each edit
/// reads back as `after` (the engine checks that itself), re-applying is a no-op, and every line
/// of the file is untouched except where something was added to it in place (a flow
/// collection, or a null/empty value that now holds a mapping or list).
#[test]
fn synthetic_additions_to_every_corpus_document() {
    let corpus = root().join("../shared/corpus");
    let (mut edited, mut refused, mut files) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for entry in walk(&corpus) {
        let Ok(src) = manifest::read(&Input::File(entry.clone())) else {
            continue;
        };
        let stream = stackguard::yaml::parse_stream(&src.text);
        let mut n = 0usize;
        let grown: Vec<(usize, &Value, Value)> = stream
            .documents
            .iter()
            .filter(|d| d.value.is_object())
            .map(|d| (d.index, &d.value, grow(&d.value, &mut n, 0)))
            .collect();
        if grown.is_empty() {
            continue;
        }
        files += 1;
        let edits: Vec<DocEdit<'_>> = grown
            .iter()
            .map(|(i, before, after)| DocEdit {
                doc_index: *i,
                before,
                after,
            })
            .collect();
        let name = entry.strip_prefix(&corpus).unwrap().display().to_string();
        let out = match apply_additions(&src.text, &edits) {
            Ok(out) => out,
            Err(e)
                if ["anchor", "alias", "merge key"]
                    .iter()
                    .any(|w| e.message.contains(w)) =>
            {
                refused += 1;
                continue;
            }
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        edited += 1;
        let again: Vec<DocEdit<'_>> = grown
            .iter()
            .map(|(i, _, after)| DocEdit {
                doc_index: *i,
                before: after,
                after,
            })
            .collect();
        if apply_additions(&out, &again).as_deref() != Ok(out.as_str()) {
            failures.push(format!("{name}: re-applying changed the text"));
        }
        let diff = similar::TextDiff::from_lines(src.text.as_str(), out.as_str());
        let old_lines: Vec<&str> = src.text.split_inclusive('\n').collect();
        let new_lines: Vec<&str> = out.split_inclusive('\n').collect();
        for op in diff.ops() {
            let (tag, old, new) = op.as_tag_tuple();
            let ok = match tag {
                similar::DiffTag::Equal | similar::DiffTag::Insert => true,
                similar::DiffTag::Delete => false,
                similar::DiffTag::Replace => old_lines[old.clone()].iter().all(|line| {
                    let line = line.trim_end_matches(['\r', '\n']);
                    new_lines[new.clone()].iter().any(|n| {
                        only_gained(line, n)
                            || [" null", " ~", " {}", " []", "null", "{}", "[]"]
                                .iter()
                                .any(|t| {
                                    line.contains(t) && only_gained(&line.replacen(t, "", 1), n)
                                })
                    })
                }),
            };
            if !ok {
                failures.push(format!(
                    "{name}: lines {old:?} were changed, not only added to"
                ));
                break;
            }
        }
    }
    eprintln!(
        "yaml_edit on the corpus: {files} files, {edited} edited, {refused} refused (anchors, aliases, merge keys)"
    );
    assert!(edited > 2900, "only {edited} of {files} files edited");
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
}

/// Every `.yaml`, `.yml` and `.json` file under `dir`, sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
