//! `stackguard check` end to end: the built binary on manifests under `tests/data/cli/`, with
//! exit codes, text/JSON/SARIF output, config handling, stdin, encodings and `--policy` modules.
//!
//! Most cases use a config that leaves only `run-as-non-root` enabled (built from the native
//! registry, so new policies never change these expectations).

use serde_json::Value;
use stackguard::policies;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stackguard");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data() -> PathBuf {
    root().join("tests/data/cli")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-check-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run stackguard");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked"),
        "stackguard panicked: {}",
        o.stderr
    );
    o
}

/// A config enabling only `keep` (YAML text).
fn only(keep: &str) -> String {
    let mut s = String::from("policies:\n");
    for e in policies::ALL {
        if e.name != keep {
            s.push_str(&format!("  {}: {{enabled: false}}\n", e.name));
        }
    }
    if s == "policies:\n" {
        s = "policies: {}\n".to_string();
    }
    s
}

/// Scratch dir with the CLI data files and a run-as-non-root-only `.stackguard.yaml`.
fn workspace(name: &str) -> PathBuf {
    let dir = scratch(name);
    for f in ["good.yaml", "bad.yaml", "broken.yaml", "list.json"] {
        std::fs::copy(data().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join(".stackguard.yaml"), only("run-as-non-root")).unwrap();
    dir
}

fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()))
        + 1
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr))
}

#[test]
fn accepted_manifest_exits_0() {
    let dir = workspace("accepted");
    let o = run_in(&dir, &["check", "good.yaml"], None);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("1 object in 1 file: all accepted"),
        "{}",
        o.stdout
    );
    assert!(
        !o.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn rejection_text_names_file_line_object_policy() {
    let dir = workspace("text");
    let o = run_in(&dir, &["check", "bad.yaml", "good.yaml"], None);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    let line = line_of(&dir.join("bad.yaml"), "runAsUser: 0");
    let expected = format!(
        "bad.yaml:{line}  Deployment shop/api  [run-as-non-root]  spec.template.spec.securityContext.runAsUser: container 'api' runs as root"
    );
    assert!(
        o.stdout.contains(&expected),
        "{expected:?} not in\n{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("✗ 3 objects in 2 files: 1 rejected (1 finding)"),
        "{}",
        o.stdout
    );
    let colored = run_in(&dir, &["check", "--color=always", "bad.yaml"], None);
    assert!(colored.stdout.contains("\x1b[31m[run-as-non-root]\x1b[0m"));
}

#[test]
fn json_report_schema() {
    let dir = workspace("json");
    let o = run_in(&dir, &["check", "-f", "json", "."], None);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let v = json(&o);
    assert_eq!(v["version"], 1);
    let s = &v["summary"];
    assert_eq!(s["files"], 4);
    // good 1 + bad 2 + broken 2 (the malformed middle document is an error) + list 2
    assert_eq!(s["objects"], 7);
    assert_eq!(s["rejected"], 3);
    assert_eq!(s["errors"], 1);
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(s["findings"], findings.len());
    for f in findings {
        for key in [
            "file",
            "line",
            "apiVersion",
            "kind",
            "namespace",
            "name",
            "policy",
            "path",
            "message",
        ] {
            assert!(f.get(key).is_some(), "finding lacks {key}: {f}");
        }
        assert_eq!(f["policy"], "run-as-non-root");
    }
    let by_name = |n: &str| {
        findings
            .iter()
            .find(|f| f["name"] == n)
            .unwrap_or_else(|| panic!("no finding for {n}: {findings:?}"))
    };
    // A List item in a JSON file: the field's own line.
    let list = by_name("from-list");
    assert_eq!(list["file"], "list.json");
    assert_eq!(list["kind"], "Pod");
    assert_eq!(list["namespace"], "batch");
    assert_eq!(
        list["line"],
        line_of(&dir.join("list.json"), "\"runAsUser\": 0")
    );
    // The document after a malformed one is still checked.
    let after = by_name("root-after");
    assert_eq!(after["file"], "broken.yaml");
    assert_eq!(
        after["line"],
        line_of(&dir.join("broken.yaml"), "runAsUser: 0")
    );
    let err = &v["errors"][0];
    assert_eq!(err["file"], "broken.yaml");
    assert!(err["line"].as_u64().unwrap() >= 16, "{err}");
    assert!(err["message"].as_str().unwrap().starts_with("invalid YAML"));
}

#[test]
fn sarif_validates_against_the_2_1_0_schema() {
    let dir = workspace("sarif");
    let o = run_in(&dir, &["check", "--format", "sarif", "."], None);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let v = json(&o);
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let rnr = rules
        .iter()
        .find(|r| r["id"] == "run-as-non-root")
        .expect("a rule per policy");
    assert!(!rnr["help"]["text"].as_str().unwrap().is_empty());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "3 findings and 1 parse error");
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with(".yaml")
                || loc["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .ends_with(".json")
        );
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
    }
    // The official schema, from the npm package that ships it, checked with Python's
    // jsonschema (both installed by tests/setup.sh).
    let schema = root().join("target/sarif-schema/package/lib/schemas/sarif-2.1.0-rtm.5.json");
    assert!(
        schema.exists(),
        "{} is missing: run tests/setup.sh",
        schema.display()
    );
    let report = dir.join("report.sarif");
    std::fs::write(&report, &o.stdout).unwrap();
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft4Validator(schema).validate(json.load(open(sys.argv[2])))\n",
        )
        .arg(&schema)
        .arg(&report)
        .output()
        .expect("python3");
    assert!(
        check.status.success(),
        "SARIF does not validate: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn stdin_utf16_and_bom() {
    let dir = workspace("stdin");
    let bad = std::fs::read(dir.join("bad.yaml")).unwrap();
    let o = run_in(&dir, &["check", "-f", "json", "-"], Some(&bad));
    assert_eq!(o.code, 1);
    let v = json(&o);
    assert_eq!(v["findings"][0]["file"], "<stdin>");
    assert_eq!(
        v["findings"][0]["line"],
        line_of(&dir.join("bad.yaml"), "runAsUser: 0")
    );

    let text = String::from_utf8(bad).unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(dir.join("utf16.yaml"), utf16).unwrap();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(text.as_bytes());
    std::fs::write(dir.join("bom.yml"), bom).unwrap();
    let o = run_in(
        &dir,
        &["check", "-f", "json", "utf16.yaml", "bom.yml"],
        None,
    );
    let v = json(&o);
    assert_eq!(v["summary"]["objects"], 4, "{}", o.stdout);
    assert_eq!(v["summary"]["rejected"], 2);
    assert_eq!(v["summary"]["errors"], 0);
}

#[test]
fn usage_errors_exit_2() {
    let dir = workspace("usage");
    let o = run_in(&dir, &["check", "no-such-dir"], None);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("no-such-dir: cannot read"),
        "{}",
        o.stderr
    );

    std::fs::write(dir.join("typo.yaml"), "policies: {}\nexclud: [x]\n").unwrap();
    let o = run_in(&dir, &["check", "-c", "typo.yaml", "good.yaml"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("typo.yaml:2:"), "{}", o.stderr);
    assert!(o.stderr.contains("exclud"), "{}", o.stderr);

    std::fs::write(dir.join("unknown.yaml"), "policies: {no-such-policy: {}}\n").unwrap();
    let o = run_in(&dir, &["check", "-c", "unknown.yaml", "good.yaml"], None);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("unknown policy"), "{}", o.stderr);

    // The policy's own settings validation decides.
    std::fs::write(
        dir.join("settings.yaml"),
        "policies:\n  run-as-non-root:\n    settings: {bogusKey: true}\n",
    )
    .unwrap();
    let o = run_in(&dir, &["check", "-c", "settings.yaml", "good.yaml"], None);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("policies.run-as-non-root.settings") && o.stderr.contains("bogusKey"),
        "{}",
        o.stderr
    );
}

#[test]
fn config_exemptions_excludes_and_no_self_exemption() {
    let dir = workspace("config");
    let base = only("run-as-non-root");
    std::fs::write(
        dir.join(".stackguard.yaml"),
        format!(
            "{base}exclude: [\"broken.*\", \"*.json\"]\nexemptions:\n  - {{policy: run-as-non-root, kind: Deployment, namespace: shop, name: \"ap*\"}}\n"
        ),
    )
    .unwrap();
    let o = run_in(&dir, &["check", "-f", "json"], None);
    let v = json(&o);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(v["summary"]["files"], 2, "excluded files are not read");

    // An annotation on the object exempts nothing.
    let text = std::fs::read_to_string(data().join("bad.yaml"))
        .unwrap()
        .replace(
            "  name: api\n",
            "  name: api\n  annotations:\n    stackguard.io/exempt: run-as-non-root\n",
        );
    std::fs::write(dir.join("annotated.yaml"), text).unwrap();
    std::fs::write(dir.join(".stackguard.yaml"), &base).unwrap();
    let o = run_in(&dir, &["check", "annotated.yaml"], None);
    assert_eq!(o.code, 1, "{}", o.stdout);

    // A disabled policy reports nothing.
    std::fs::write(
        dir.join(".stackguard.yaml"),
        base.replacen(
            "policies:\n",
            "policies:\n  run-as-non-root: {enabled: false}\n",
            1,
        ),
    )
    .unwrap();
    let o = run_in(&dir, &["check", "annotated.yaml"], None);
    assert_eq!(o.code, 0, "{}", o.stdout);
}

/// `--policy` evaluates the compiled modules through the waPC host: same findings as native.
#[cfg(feature = "host")]
#[test]
fn modules_give_the_native_results() {
    let dir = workspace("modules");
    let mut native_args = vec!["check", "-f", "json", "."];
    let native = run_in(&dir, &native_args, None);
    let module = root().join("dist/run-as-non-root.wasm");
    assert!(
        module.exists(),
        "{} is missing: build the modules first with `make policies`",
        module.display()
    );
    let module = module.to_string_lossy().into_owned();
    native_args.extend(["--policy", module.as_str()]);
    let wasm = run_in(&dir, &native_args, None);
    assert_eq!(wasm.code, native.code, "{}", wasm.stderr);
    let (n, w) = (json(&native), json(&wasm));
    assert!(!n["findings"].as_array().unwrap().is_empty());
    assert_eq!(n["findings"], w["findings"]);
    assert_eq!(n["summary"], w["summary"]);
}

/// With `mutate: true` in the config, `check` answers as the admission chain would: what the
/// policy can repair is accepted (patched), natively and through the module alike; what it
/// cannot (`runAsUser: 0`) is still reported.
#[cfg(feature = "host")]
#[test]
fn mutating_settings_accept_what_the_policy_repairs_natively_and_through_the_module() {
    let dir = workspace("mutating");
    let repairable = "apiVersion: v1\nkind: Pod\nmetadata: {name: bare, namespace: shop}\nspec:\n  containers:\n  - {name: c, image: busybox}\n";
    std::fs::write(dir.join("bare.yaml"), repairable).unwrap();
    let before = json(&run_in(&dir, &["check", "-f", "json", "."], None));
    let reported = |v: &Value, name: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == name)
    };
    assert!(reported(&before, "bare"), "{before}");
    let mut config = only("run-as-non-root");
    config.push_str("  run-as-non-root:\n    settings: {mutate: true}\n");
    std::fs::write(dir.join(".stackguard.yaml"), config).unwrap();
    let native = json(&run_in(&dir, &["check", "-f", "json", "."], None));
    assert!(!reported(&native, "bare"), "{native}");
    assert!(
        reported(&native, "api"),
        "runAsUser: 0 is never repaired: {native}"
    );
    let module = root().join("dist/run-as-non-root.wasm");
    let wasm = json(&run_in(
        &dir,
        &[
            "check",
            "-f",
            "json",
            ".",
            "--policy",
            &module.to_string_lossy(),
        ],
        None,
    ));
    assert_eq!(native["findings"], wasm["findings"]);
    assert_eq!(native["summary"], wasm["summary"]);
}

/// Every compiled module in dist/ agrees with the native registry on the example stacks.
#[cfg(feature = "host")]
#[test]
fn every_module_matches_native_on_the_stacks() {
    let dir = scratch("all-modules");
    let mut modules = Vec::new();
    for e in policies::ALL {
        let m = root().join(format!("dist/{}.wasm", e.name));
        if m.exists() {
            modules.push(m.to_string_lossy().into_owned());
        }
    }
    assert!(
        !modules.is_empty(),
        "no modules in dist/: run `make policies`"
    );
    // Native, restricted to the policies that have a module.
    let mut config = String::from("policies:\n");
    for e in policies::ALL {
        if !modules
            .iter()
            .any(|m| m.ends_with(&format!("/{}.wasm", e.name)))
        {
            config.push_str(&format!("  {}: {{enabled: false}}\n", e.name));
        }
    }
    if config == "policies:\n" {
        config = "policies: {}\n".into();
    }
    std::fs::write(dir.join("c.yaml"), config).unwrap();
    let stacks = [
        root().join("deploy").to_string_lossy().into_owned(),
        root().join("tests/data/cli").to_string_lossy().into_owned(),
    ];
    let mut args: Vec<&str> = vec!["check", "-f", "json", "-c", "c.yaml"];
    args.extend(stacks.iter().map(String::as_str));
    let native = json(&run_in(&dir, &args, None));
    std::fs::write(dir.join("c.yaml"), "policies: {}\n").unwrap();
    for m in &modules {
        args.extend(["--policy", m.as_str()]);
    }
    let wasm = json(&run_in(&dir, &args, None));
    assert_eq!(native["findings"], wasm["findings"]);
}

/// The real-world corpus (`../shared/corpus`, beside the clone): never a panic, exit 1 (it has
/// findings and a few unparseable files, not a usage error), every unreadable document reported
/// with file and line, and every other object checked.
#[test]
fn corpus_is_checked_without_crashing() {
    let corpus = root().join("../shared/corpus");
    if !corpus.join("MANIFEST.tsv").exists() {
        eprintln!("skipped: no corpus at {}", corpus.display());
        return;
    }
    let o = run_in(
        &root(),
        &["check", "-f", "json", &corpus.to_string_lossy()],
        None,
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    let v = json(&o);
    let files = v["summary"]["files"].as_u64().unwrap();
    let objects = v["summary"]["objects"].as_u64().unwrap();
    assert!(files >= 3000, "{files} files");
    assert!(objects >= 4000, "{objects} objects");
    let errors = v["errors"].as_array().unwrap();
    assert!(
        !errors.is_empty(),
        "the corpus has files no YAML parser accepts"
    );
    assert!(errors.len() < 20, "{errors:#?}");
    for e in errors {
        let file = e["file"].as_str().unwrap();
        assert!(Path::new(file).exists(), "{file}");
        let line = e["line"].as_u64().expect("a line for every parse error");
        let lines = std::fs::read_to_string(file).map_or(0, |t| t.lines().count());
        assert!(line >= 1 && line as usize <= lines + 1, "{file}:{line}");
    }
    // The UTF-16 file and the concatenated-JSON file are read.
    let utf16 = "argoproj__argo-cd/reposerver__repository__testdata__utf-16__utf-16.yaml";
    assert!(
        !errors
            .iter()
            .any(|e| e["file"].as_str().unwrap().ends_with(utf16))
    );
}
