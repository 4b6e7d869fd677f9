//! The generated files (`stackguard generate`) are up to date, well formed and consistent with
//! their sources; every version reference is Cargo's; `stackguard bump` rewrites them all.

use serde_json::Value;
use stackguard::generate::{self, VERSION, versions};
use stackguard::metadata::Metadata;
use stackguard::policies;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    stackguard::yaml::value(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn generated_files_are_up_to_date() {
    let outputs = generate::outputs(&root()).unwrap();
    assert_eq!(outputs.len(), 4 * policies::ALL.len() + 1);
    let stale = generate::stale(&root(), &outputs);
    assert!(
        stale.is_empty(),
        "stale generated files (run `make generate` and commit): {stale:?}"
    );
    let problems = versions::check(&root()).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The CLI says the same.
    let out = Command::new(env!("CARGO_BIN_EXE_stackguard"))
        .args(["generate", "--check", "--root"])
        .arg(root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

/// A copy of the files `generate` and `bump` read and write.
fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let copy = |rel: &str| {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(rel), &to).unwrap_or_else(|e| panic!("{rel}: {e}"));
    };
    for f in [
        "Cargo.toml",
        "CHANGELOG.md",
        "README.md",
        ".pre-commit-hooks.yaml",
        "harness/README.md",
    ] {
        copy(f);
    }
    for e in policies::ALL {
        for f in [
            "metadata.yml",
            "README.md",
            "questions-ui.yml",
            "artifacthub-pkg.yml",
            "settings.schema.json",
        ] {
            copy(&format!("policies/{}/{f}", e.name));
        }
    }
    for e in std::fs::read_dir(root().join("deploy/kubewarden")).unwrap() {
        let p = e.unwrap().path();
        copy(&format!(
            "deploy/kubewarden/{}",
            p.file_name().unwrap().to_string_lossy()
        ));
    }
    copy("deploy/README.md");
    dir
}

#[test]
fn a_stale_file_is_reported_and_regenerated() {
    let dir = scratch("generate-test");
    let readme = dir.join("policies/resource-limits/README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    std::fs::write(&readme, text.replace("| `maxLimits` |", "| `maxLimitz` |")).unwrap();
    std::fs::remove_file(dir.join("policies/run-as-non-root/questions-ui.yml")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stackguard"))
            .args(args)
            .arg("--root")
            .arg(&dir)
            .output()
            .unwrap()
    };
    // Only what generate writes is in the copy: create the config schema's directory.
    std::fs::create_dir_all(dir.join("harness")).unwrap();
    let check = run(&["generate", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("stale: policies/resource-limits/README.md"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stale: policies/run-as-non-root/questions-ui.yml"),
        "{stderr}"
    );
    let write = run(&["generate"]);
    assert_eq!(
        write.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&readme).unwrap(),
        std::fs::read_to_string(root().join("policies/resource-limits/README.md")).unwrap()
    );
    assert_eq!(run(&["generate", "--check"]).status.code(), Some(0));
}

#[test]
fn bump_rewrites_every_version_reference() {
    let dir = scratch("bump-test");
    let before = versions::check(&dir).unwrap();
    assert!(before.is_empty(), "{before:?}");
    let changed = versions::bump(&dir, "9.8.7", "2030-01-02").unwrap();
    for f in [
        "Cargo.toml",
        "CHANGELOG.md",
        "README.md",
        ".pre-commit-hooks.yaml",
        "deploy/kubewarden/run-as-non-root.yaml",
        "deploy/README.md",
        "harness/README.md",
        "policies/postgres-extensions/metadata.yml",
        "policies/run-as-non-root/artifacthub-pkg.yml",
    ] {
        assert!(
            changed.iter().any(|c| c == f),
            "{f} not updated: {changed:?}"
        );
    }
    // Every reference now names 9.8.7: this stackguard (built as VERSION) sees them all as
    // mismatches, and none naming its own version.
    let after = versions::check(&dir).unwrap();
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|p| !p.contains(&format!("names version {VERSION},"))),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .skip(1)
            .all(|p| p.contains("names version 9.8.7")),
        "{after:?}"
    );
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("\nversion = \"9.8.7\"\n"));
    assert_eq!(
        cargo.matches("9.8.7").count(),
        1,
        "only the workspace version changes"
    );
    let log = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
    let (unreleased, new, old) = (
        log.find("## [Unreleased]").unwrap(),
        log.find("## [9.8.7] - 2030-01-02").unwrap(),
        log.find(&format!("## [{VERSION}]")).unwrap(),
    );
    assert!(unreleased < new && new < old);
    // Bumping again changes nothing but what is already there.
    assert!(
        versions::bump(&dir, "9.8.7", "2030-01-02")
            .unwrap()
            .is_empty()
    );
    assert!(versions::bump(&dir, "nine", "2030-01-02").is_err());
}

/// questions-ui.yml as the Rancher UI reads it: every question well formed and tied to a setting.
#[test]
fn questions_ui_is_the_upstream_format() {
    const TYPES: &[&str] = &[
        "string",
        "boolean",
        "int",
        "enum",
        "array[",
        "map[",
        "sequence[",
    ];
    fn check(q: &Value, schema: &Value, inside_sequence: bool, file: &str) {
        let variable = q["variable"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: {q}"));
        let ty = q["type"].as_str().unwrap();
        assert!(TYPES.contains(&ty), "{file}: {variable}: type {ty}");
        assert_eq!(q["group"], "Settings", "{file}: {variable}");
        assert!(
            q["label"].as_str().is_some_and(|l| !l.is_empty()),
            "{file}: {variable}"
        );
        let name = if inside_sequence {
            variable
        } else {
            variable.rsplit('.').next().unwrap()
        };
        let prop = &schema["properties"][name];
        assert!(prop.is_object(), "{file}: {variable} is not a setting");
        if ty == "enum" {
            assert!(
                q["options"].as_array().is_some_and(|o| !o.is_empty()),
                "{file}: {variable}"
            );
        }
        if let Some(subs) = q["subquestions"].as_array() {
            assert_eq!(ty, "map[", "{file}: {variable}");
            for s in subs {
                assert!(
                    s["variable"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{variable}."))
                );
                check(s, prop, false, file);
            }
        }
        if let Some(subs) = q["sequence_questions"].as_array() {
            assert_eq!(ty, "sequence[", "{file}: {variable}");
            for s in subs {
                check(s, &prop["items"], true, file);
            }
        }
    }
    for e in policies::ALL {
        let file = format!("policies/{}/questions-ui.yml", e.name);
        let doc = yaml(&root().join(&file));
        let questions = doc["questions"].as_array().unwrap();
        assert_eq!(questions[0]["variable"], "description");
        assert_eq!(questions[0]["hide_input"], true);
        let schema: Value = serde_json::from_slice(
            &std::fs::read(root().join(format!("policies/{}/settings.schema.json", e.name)))
                .unwrap(),
        )
        .unwrap();
        let mut covered = BTreeSet::new();
        for q in &questions[1..] {
            check(q, &schema, false, &file);
            covered.insert(q["variable"].as_str().unwrap().to_string());
        }
        // Every setting has a question, or the description names it as YAML-only.
        for name in schema["properties"].as_object().unwrap().keys() {
            let description = questions[0]["description"].as_str().unwrap();
            assert!(
                covered.contains(name) || description.contains(&format!("`{name}`")),
                "{file}: no question for {name}"
            );
        }
    }
}

/// artifacthub-pkg.yml carries what `kwctl scaffold artifacthub` puts there, from metadata.yml.
#[test]
fn artifacthub_packages_match_their_metadata() {
    let repo = yaml(&root().join("policies/artifacthub-repo.yml"));
    assert!(
        repo["owners"][0]["email"]
            .as_str()
            .is_some_and(|e| e.contains('@'))
    );
    for e in policies::ALL {
        let dir = root().join("policies").join(e.name);
        let pkg = yaml(&dir.join("artifacthub-pkg.yml"));
        let meta = Metadata::from_yaml(e.metadata_yml, e.name).unwrap();
        let a = meta.annotations.unwrap();
        assert_eq!(pkg["version"], VERSION);
        assert_eq!(pkg["name"], e.name);
        assert_eq!(
            pkg["displayName"].as_str(),
            a.get("io.artifacthub.displayName").map(String::as_str)
        );
        let image = format!("{}:v{VERSION}", a["io.kubewarden.policy.ociUrl"]);
        assert_eq!(pkg["containersImages"][0]["image"], image.as_str());
        assert!(
            pkg["install"]
                .as_str()
                .unwrap()
                .contains(&format!("kwctl pull {image}"))
        );
        assert_eq!(pkg["provider"]["name"], "kubewarden");
        assert_eq!(
            pkg["annotations"]["kubewarden/mutation"],
            meta.mutating.to_string().as_str()
        );
        assert_eq!(
            pkg["annotations"]["kubewarden/questions-ui"]
                .as_str()
                .unwrap(),
            std::fs::read_to_string(dir.join("questions-ui.yml")).unwrap()
        );
        let rules =
            stackguard::yaml::value(pkg["annotations"]["kubewarden/rules"].as_str().unwrap())
                .unwrap();
        assert_eq!(rules, serde_json::to_value(&meta.rules).unwrap());
        assert_eq!(
            pkg["annotations"]["kubewarden/contextAwareResources"].is_string(),
            !meta.context_aware_resources.is_empty()
        );
        assert!(pkg["createdAt"].as_str().unwrap().ends_with("T00:00:00Z"));
        let links: Vec<&str> = pkg["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["url"].as_str().unwrap())
            .collect();
        assert!(
            links.contains(
                &format!(
                    "https://github.com/stackguard/stackguard/releases/download/v{VERSION}/{}.wasm",
                    e.name
                )
                .as_str()
            )
        );
    }
}
