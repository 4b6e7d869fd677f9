//! `stackguard annotate` as `kwctl annotate`: the README embedded as `io.kubewarden.policy.usage`,
//! the version from Cargo, and the host capabilities a module calls checked against its
//! `hostCapabilities` (the kwctl warnings; errors with `--strict`). And a policy denied a host
//! capability it needs degrades as under a restricted PolicyServer.

use stackguard::capabilities;
use stackguard::metadata::{self, Metadata};
use stackguard::policies;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dist(policy: &str) -> Vec<u8> {
    let p = root().join(format!("dist/{policy}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}: run `make policies`", p.display()))
}

/// The module before annotation, as cargo built it.
fn raw(policy: &str) -> PathBuf {
    let p = root().join(format!(
        "target/wasm32-wasip1/wasm/{}.wasm",
        policy.replace('-', "_")
    ));
    assert!(
        p.exists(),
        "{} is missing: run `make policies`",
        p.display()
    );
    p
}

fn stackguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stackguard"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn modules_carry_readme_version_and_their_host_capabilities() {
    for entry in policies::ALL {
        let module = dist(entry.name);
        let embedded = metadata::read(&module).unwrap().expect("annotated");
        let source = Metadata::from_yaml(entry.metadata_yml, entry.name).unwrap();
        let a = embedded.annotations.clone().unwrap();
        let readme =
            std::fs::read_to_string(root().join(format!("policies/{}/README.md", entry.name)))
                .unwrap();
        assert!(
            a["io.kubewarden.policy.usage"] == readme,
            "{}: the embedded usage is not policies/{}/README.md (rebuild: make policies)",
            entry.name,
            entry.name
        );
        assert_eq!(a["io.kubewarden.policy.version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            a["com.github.release.tag"],
            format!("v{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(embedded.protocol_version.as_deref(), Some("v1"));
        assert_eq!(
            embedded.host_capabilities, source.host_capabilities,
            "{}",
            entry.name
        );
        assert_eq!(
            embedded.minimum_kubewarden_version,
            source.minimum_kubewarden_version
        );
        for key in [
            "io.artifacthub.displayName",
            "io.artifacthub.resources",
            "io.artifacthub.keywords",
            "io.kubewarden.policy.ociUrl",
            "io.kubewarden.policy.title",
            "io.kubewarden.policy.description",
            "io.kubewarden.policy.author",
            "io.kubewarden.policy.url",
            "io.kubewarden.policy.source",
            "io.kubewarden.policy.license",
            "io.kubewarden.policy.category",
            "io.kubewarden.policy.severity",
        ] {
            assert!(
                a.get(key).is_some_and(|v| !v.is_empty()),
                "{}: no {key}",
                entry.name
            );
        }
        assert!(
            ["info", "low", "medium", "high", "critical"]
                .contains(&a["io.kubewarden.policy.severity"].as_str())
        );
        // What the module can call is exactly what it declares.
        let detected = capabilities::detect(&module).unwrap();
        assert_eq!(Some(detected), source.host_capabilities, "{}", entry.name);
    }
}

/// A copy of a policy's metadata.yml with `edit` applied.
fn metadata_copy(policy: &str, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = root().join("target/annotate-test");
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        std::fs::read_to_string(root().join(format!("policies/{policy}/metadata.yml"))).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn annotate(policy: &str, meta: &Path, strict: bool) -> Output {
    let out = root().join("target/annotate-test/out.wasm");
    let mut args = vec![
        "annotate".to_string(),
        raw(policy).display().to_string(),
        "-m".into(),
        meta.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if strict {
        args.push("--strict".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stackguard(&args)
}

#[test]
fn host_capabilities_drift_warns_and_fails_with_strict() {
    let undeclared = metadata_copy("postgres-extensions", "undeclared.yml", |t| {
        t.replace("hostCapabilities:\n  - kubernetes/get_resource\n", "")
    });
    let out = annotate("postgres-extensions", &undeclared, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("host capabilities used by the policy but not declared in metadata: kubernetes/get_resource"),
        "{stderr}"
    );
    let out = annotate("postgres-extensions", &undeclared, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kubernetes/get_resource") && stderr.contains("hostCapabilities"),
        "{stderr}"
    );

    let unused = metadata_copy("run-as-non-root", "unused.yml", |t| {
        t.replace("hostCapabilities: []", "hostCapabilities: [oci/*]")
    });
    let out = annotate("run-as-non-root", &unused, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("declared in metadata but not detected in the policy: oci/*"),
        "{stderr}"
    );
    assert_eq!(
        annotate("run-as-non-root", &unused, true).status.code(),
        Some(2)
    );

    let invalid = metadata_copy("run-as-non-root", "invalid.yml", |t| {
        t.replace(
            "hostCapabilities: []",
            "hostCapabilities: [kubernetes/get_everything]",
        )
    });
    let out = annotate("run-as-non-root", &invalid, false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown host capability"));
}

#[test]
fn the_version_comes_from_cargo() {
    let stale = metadata_copy("run-as-non-root", "stale.yml", |t| {
        t.replace(
            "io.kubewarden.policy.version: ",
            "io.kubewarden.policy.version: 9.9.9 #",
        )
    });
    let out = annotate("run-as-non-root", &stale, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("9.9.9")
            && stderr.contains(&format!("built as version {}", env!("CARGO_PKG_VERSION"))),
        "{stderr}"
    );
    // Without the annotations, annotate writes them from the module's Cargo version.
    let bare = metadata_copy("run-as-non-root", "bare.yml", |t| {
        t.lines()
            .filter(|l| {
                !l.contains("io.kubewarden.policy.version") && !l.contains("com.github.release.tag")
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert_eq!(
        annotate("run-as-non-root", &bare, true).status.code(),
        Some(0)
    );
    let written = std::fs::read(root().join("target/annotate-test/out.wasm")).unwrap();
    let a = metadata::read(&written)
        .unwrap()
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(a["io.kubewarden.policy.version"], env!("CARGO_PKG_VERSION"));
    assert!(
        !a.contains_key("io.kubewarden.policy.usage"),
        "no -u, no usage"
    );
}

/// A context-aware policy on a PolicyServer that does not grant `kubernetes/get_resource`: the
/// host refuses the call as policy-server does, and the policy accepts with a warning saying
/// what it could not check (granted, the same request is judged on the ConfigMap).
#[test]
fn a_denied_host_capability_degrades_to_a_warning() {
    let fixture = root().join("fixtures/postgres-extensions/workload-missing-pgcrypto.yaml");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let docs = stackguard::yaml::values(&text).unwrap();
    let dir = root().join("target/annotate-test");
    std::fs::create_dir_all(&dir).unwrap();
    let request = serde_json::json!({
        "uid": "u", "kind": {"group": "apps", "version": "v1", "kind": docs[1]["kind"]},
        "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
        "operation": "CREATE", "namespace": docs[1]["metadata"]["namespace"],
        "name": docs[1]["metadata"]["name"], "object": docs[1],
        "userInfo": {"username": "test"}
    });
    std::fs::write(dir.join("request.json"), request.to_string()).unwrap();
    let context = dir.join("context.yaml");
    std::fs::write(
        &context,
        docs[2..]
            .iter()
            .map(|d| serde_json::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("\n---\n"),
    )
    .unwrap();
    let module = root().join("dist/postgres-extensions.wasm");
    let settings = serde_json::to_string(&docs[0]["settings"]).unwrap();
    let run = |caps: &[&str]| {
        let mut args = vec![
            "run",
            module.to_str().unwrap(),
            "-r",
            "target/annotate-test/request.json",
            "--settings-json",
            &settings,
            "--context",
            context.to_str().unwrap(),
            "--allowed-host-capabilities",
        ];
        args.extend_from_slice(caps);
        let out = Command::new(env!("CARGO_BIN_EXE_stackguard"))
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (granted, _) = run(&["kubernetes/get_resource"]);
    assert_eq!(granted["allowed"], false, "{granted}");
    let (denied, log) = run(&[]);
    assert_eq!(denied["allowed"], true, "{denied}");
    assert!(
        denied["warnings"]
            .to_string()
            .contains("could not be fetched"),
        "{denied}"
    );
    assert!(
        log.contains("not been granted access to the 'kubernetes/get_resource' host capability"),
        "{log}"
    );
    let (everything, _) = run(&["*"]);
    assert_eq!(everything, granted);
    let set: BTreeSet<String> = capabilities::KNOWN.iter().map(|s| s.to_string()).collect();
    assert!(set.contains("kubernetes/get_resource"));
}
