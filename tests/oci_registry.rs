//! `stackguard push` / `pull` against a real OCI registry: Debian's `docker-registry` (CNCF
//! Distribution), started here on 127.0.0.1 with htpasswd authentication, plain HTTP (marked
//! insecure in a kwctl `sources.yaml`), credentials in a Docker config (`~/.docker/config.json`
//! for `make push`, `DOCKER_CONFIG` for the rest). The six annotated modules are pushed by
//! `make push REGISTRY=… TAG=…` and pulled back byte for byte (by tag and by digest), with their
//! metadata in the layer, the config and the manifest annotations; a wrong password, missing
//! credentials, a missing tag and an unmarked plain-HTTP registry each give one clear error.

use base64::Engine;
use serde_json::Value;
use stackguard::metadata;
use stackguard::oci::{self, Sources};
use stackguard::policies;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The registry process, stopped (by its PID) when the test ends.
struct Registry {
    child: Child,
    host: String,
    dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const USER: &str = "stackguard-ci";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A random password, never printed.
fn password() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn start(password: &str) -> Registry {
    let bin = Path::new("/usr/bin/docker-registry");
    assert!(
        bin.exists(),
        "docker-registry is missing: run tests/setup.sh"
    );
    let dir = root().join("target/oci-registry-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // bcrypt entry from the real htpasswd (apache2-utils), password on stdin.
    let mut htpasswd = Command::new("htpasswd")
        .args(["-B", "-i", "-n", USER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("htpasswd (apache2-utils, tests/setup.sh)");
    use std::io::Write;
    htpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = htpasswd.wait_with_output().unwrap();
    assert!(out.status.success());
    std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}}}\n\
             http: {{addr: {host}, secret: stackguard-test}}\n\
             auth: {{htpasswd: {{realm: stackguard-test, path: {}}}}}\n",
            dir.join("data").display(),
            dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry { child, host, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&registry.host).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    registry
}

/// A Docker config directory with `password` for the registry (or none), and a kwctl
/// sources.yaml marking it insecure (or not).
fn client_files(
    registry: &Registry,
    name: &str,
    password: Option<&str>,
    insecure: bool,
) -> (PathBuf, PathBuf) {
    let docker = registry.dir.join(name);
    std::fs::create_dir_all(&docker).unwrap();
    let auths = match password {
        Some(p) => {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{p}"));
            format!(
                "{{\"auths\": {{\"{}\": {{\"auth\": \"{token}\"}}}}}}",
                registry.host
            )
        }
        None => "{\"auths\": {}}".to_string(),
    };
    std::fs::write(docker.join("config.json"), auths).unwrap();
    let sources = docker.join("sources.yaml");
    let list = if insecure {
        format!("[\"{}\"]", registry.host)
    } else {
        "[]".to_string()
    };
    std::fs::write(&sources, format!("insecure_sources: {list}\n")).unwrap();
    (docker, sources)
}

fn stackguard(docker: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stackguard"))
        .env("DOCKER_CONFIG", docker)
        .env("HOME", docker)
        .args(args)
        .output()
        .unwrap()
}

fn module(policy: &str) -> PathBuf {
    let p = root().join(format!("dist/{policy}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make policies`",
        p.display()
    );
    p
}

/// One line on stderr, exit 2, the password nowhere.
fn one_clear_error(out: &Output, password: &str, wanted: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.contains(wanted), "{stderr:?} lacks {wanted:?}");
    assert!(!stderr.contains(password) && !String::from_utf8_lossy(&out.stdout).contains(password));
    stderr
}

#[test]
fn push_pull_round_trip_against_a_real_registry() {
    let secret = password();
    let registry = start(&secret);
    let (docker, sources) = client_files(&registry, "good", Some(&secret), true);
    let sources_arg = sources.to_str().unwrap();
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));

    // `make push` pushes all six, with the credentials of ~/.docker/config.json (no
    // DOCKER_CONFIG), as a maintainer runs it after `make policies`.
    let home = registry.dir.join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::copy(docker.join("config.json"), home.join(".docker/config.json")).unwrap();
    let out = Command::new("make")
        .current_dir(root())
        .env_remove("DOCKER_CONFIG")
        .env("HOME", &home)
        .args(["-s", "-o", "policies", "push"])
        .arg(format!("STACKGUARD={}", env!("CARGO_BIN_EXE_stackguard")))
        .arg(format!("REGISTRY={}/stackguard/policies", registry.host))
        .arg(format!("TAG={tag}"))
        .arg(format!("PUSH_FLAGS=--sources-path {sources_arg}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Policy successfully pushed: "))
        .collect();
    assert_eq!(pushed.len(), policies::ALL.len(), "{stdout}");

    for entry in policies::ALL {
        let uri = format!(
            "registry://{}/stackguard/policies/{}:{tag}",
            registry.host, entry.name
        );
        let src = module(entry.name);
        let repo = format!(
            "{}/stackguard/policies/{}@sha256:",
            registry.host, entry.name
        );
        let immutable = *pushed
            .iter()
            .find(|r| r.starts_with(&repo))
            .unwrap_or_else(|| panic!("{} not pushed: {stdout}", entry.name));
        // As release.yml reads it: `-o json`, the same digest when pushed again.
        if entry.name == "postgres-extensions" {
            let out = stackguard(
                &docker,
                &[
                    "push",
                    src.to_str().unwrap(),
                    &uri,
                    "--sources-path",
                    sources_arg,
                    "-o",
                    "json",
                ],
            );
            let again: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(again["immutable_ref"], immutable);
        }

        // Pulled back by tag and by digest: the same bytes.
        for (n, reference) in [uri.clone(), format!("registry://{immutable}")]
            .iter()
            .enumerate()
        {
            let dest = registry.dir.join(format!("{}-{n}.wasm", entry.name));
            let out = stackguard(
                &docker,
                &[
                    "pull",
                    reference,
                    "-o",
                    dest.to_str().unwrap(),
                    "--sources-path",
                    sources_arg,
                ],
            );
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains(entry.name));
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                std::fs::read(&src).unwrap(),
                "{reference}: not byte-identical"
            );
        }
    }

    // The artifact as Kubewarden lays it out, metadata intact.
    let bytes = std::fs::read(module("postgres-extensions")).unwrap();
    let embedded = metadata::custom_section(&bytes, metadata::SECTION)
        .unwrap()
        .unwrap()
        .to_vec();
    let meta = metadata::read(&bytes).unwrap().unwrap();
    let uri = format!(
        "registry://{}/stackguard/policies/postgres-extensions:{tag}",
        registry.host
    );
    let sources = Sources::load(Some(&sources)).unwrap();
    let pulled = with_docker_config(&docker, || oci::pull(&uri, &sources)).unwrap();
    assert_eq!(pulled.module, bytes);
    assert_eq!(
        pulled.config, embedded,
        "the config blob is the embedded metadata"
    );
    assert_eq!(metadata::read(&pulled.module).unwrap().unwrap(), meta);
    let m = &pulled.manifest;
    assert_eq!(
        m.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(m.config.media_type, "application/vnd.wasm.config.v1+json");
    assert_eq!(m.layers.len(), 1);
    assert_eq!(
        m.layers[0].media_type,
        "application/vnd.wasm.content.layer.v1+wasm"
    );
    let ann = m.annotations.clone().unwrap();
    let a = meta.annotations.unwrap();
    assert_eq!(
        ann["io.kubewarden.policy.title"],
        a["io.kubewarden.policy.title"]
    );
    assert_eq!(
        ann["io.kubewarden.policy.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        ann["org.opencontainers.image.source"],
        a["io.kubewarden.policy.source"]
    );
    assert!(
        !ann.contains_key("io.kubewarden.policy.usage"),
        "multi-line annotations stay out of the manifest"
    );
    assert!(pulled.digest.starts_with("sha256:"));

    // Errors: one clear line each, never the password.
    let target = module("run-as-non-root");
    let target = target.to_str().unwrap();
    let uri = format!(
        "registry://{}/stackguard/policies/run-as-non-root:{tag}",
        registry.host
    );
    let (wrong, wrong_sources) = client_files(&registry, "wrong", Some("not-the-password"), true);
    let wrong_sources = wrong_sources.to_str().unwrap();
    let out = stackguard(
        &wrong,
        &["push", target, &uri, "--sources-path", wrong_sources],
    );
    one_clear_error(&out, &secret, "rejected the credentials");
    let dest = registry.dir.join("never.wasm");
    let out = stackguard(
        &wrong,
        &[
            "pull",
            &uri,
            "-o",
            dest.to_str().unwrap(),
            "--sources-path",
            wrong_sources,
        ],
    );
    one_clear_error(&out, &secret, "rejected the credentials");
    assert!(!dest.exists());

    let (anonymous, anon_sources) = client_files(&registry, "anonymous", None, true);
    let out = stackguard(
        &anonymous,
        &[
            "pull",
            &uri,
            "-o",
            dest.to_str().unwrap(),
            "--sources-path",
            anon_sources.to_str().unwrap(),
        ],
    );
    one_clear_error(&out, &secret, "requires authentication");

    let missing = format!(
        "registry://{}/stackguard/policies/run-as-non-root:v0.0.0-missing",
        registry.host
    );
    let out = stackguard(
        &docker,
        &[
            "pull",
            &missing,
            "-o",
            dest.to_str().unwrap(),
            "--sources-path",
            sources_arg,
        ],
    );
    one_clear_error(&out, &secret, "not found");
    assert!(!dest.exists());

    // Plain HTTP only for a registry marked insecure.
    let (_, secure_sources) = client_files(&registry, "secure", Some(&secret), false);
    let out = stackguard(
        &docker,
        &[
            "push",
            target,
            &uri,
            "--sources-path",
            secure_sources.to_str().unwrap(),
        ],
    );
    let e = one_clear_error(&out, &secret, "over https");
    assert!(e.contains("insecure_sources"), "{e}");

    // Without metadata, as kwctl: refused unless --force.
    let raw = registry.dir.join("raw.wasm");
    std::fs::write(&raw, b"\0asm\x01\0\0\0").unwrap();
    let out = stackguard(
        &docker,
        &[
            "push",
            raw.to_str().unwrap(),
            &uri,
            "--sources-path",
            sources_arg,
        ],
    );
    one_clear_error(&out, &secret, "not annotated");
}

/// Run `f` with `DOCKER_CONFIG` pointing at `dir` (the library reads the Docker config as the
/// CLI does). Only this test in this binary touches the environment.
fn with_docker_config<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    // SAFETY: no other thread of this test binary reads or writes the environment meanwhile
    // (this file has a single test).
    unsafe { std::env::set_var("DOCKER_CONFIG", dir) };
    let out = f();
    unsafe { std::env::remove_var("DOCKER_CONFIG") };
    out
}
