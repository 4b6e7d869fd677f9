//! End to end, with the real Debian servers (tests/setup.sh installs postgresql-15,
//! postgresql-15-postgis-3 and redis-server): `deploy --target local`, `verify`, a second
//! `deploy` (no change), `down`, `deploy` again (data kept: a marker row survives), `verify`,
//! `down --purge`. In a temporary state directory, on free ports chosen at the first deploy, so
//! it never meets a developer's own stack.

use stackguard::deploy::local::{COMPONENTS, State, process_running, process_uids};
use stackguard::deploy::secrets::SecretValue;
use stackguard::deploy::verify::pg_connect;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Run {
    code: i32,
    out: String,
}

fn stackguard(state: &Path, args: &[&str], log: &mut Vec<String>) -> Run {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_stackguard"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .current_dir(root())
        .output()
        .expect("running stackguard");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!(
        "$ stackguard {} ({:.1} s, exit {:?})\n{text}",
        args.join(" "),
        start.elapsed().as_secs_f64(),
        out.status.code()
    );
    log.push(text.clone());
    Run {
        code: out.status.code().unwrap_or(-1),
        out: text,
    }
}

fn secret_values(state: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(state.join("secrets")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
            v.push(std::fs::read_to_string(&p).unwrap());
        }
    }
    v
}

/// Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on `port`.
fn listeners(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3 && f[3] == "0A" && f[1].ends_with(&format!(":{port:04X}")) {
                out.push(f[1].to_string());
            }
        }
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn auth_client(state_dir: &Path) -> (State, SecretValue) {
    let st = State::load(state_dir).unwrap().expect("state file");
    let pw = std::fs::read_to_string(state_dir.join("secrets/postgres-credentials/auth-password"))
        .unwrap();
    (st, SecretValue::new(pw))
}

#[test]
fn deploy_verify_redeploy_down_keeps_data_and_purges() {
    let state = std::env::temp_dir().join(format!("stackguard-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let s = state.to_str().unwrap();
    let mut log = Vec::new();

    // 1. First deploy: secrets generated, servers started on free ports.
    let r = stackguard(
        &state,
        &["deploy", "--target", "local", "--base-port", "0"],
        &mut log,
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("generated") && r.out.contains("started"),
        "{}",
        r.out
    );
    assert!(r.out.contains("TimescaleDB and MongoDB"), "{}", r.out);
    let st = State::load(&state).unwrap().unwrap();
    let pids: Vec<u32> = COMPONENTS.iter().map(|c| st.pids[*c]).collect();
    for (c, pid) in COMPONENTS.iter().zip(&pids) {
        let uids = process_uids(*pid).unwrap();
        assert!(!uids.contains(&0), "{c} runs as root: {uids:?}");
    }
    for (c, port) in &st.ports {
        let l = listeners(*port);
        assert!(!l.is_empty(), "{c}: nothing listens on {port}");
        assert!(
            l.iter().all(|a| a.starts_with("0100007F:")),
            "{c} listens beyond 127.0.0.1: {l:?}"
        );
    }
    let dmode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);

    // 2. verify: every check passes.
    let r = stackguard(&state, &["verify"], &mut log);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("checks passed") && !r.out.contains("FAILED"),
        "{}",
        r.out
    );
    for needle in [
        "sos_auth reaches only sos_app_auth",
        "maxmemory-policy noeviction",
        "publish/subscribe round trip",
        "refuses unauthenticated clients",
        "allkeys-lru",
        "not uid 0",
        "postgis",
    ] {
        assert!(
            r.out.contains(needle),
            "verify lacks {needle:?}:\n{}",
            r.out
        );
    }

    // 3. Second deploy: nothing to do, same processes.
    let r = stackguard(&state, &["deploy"], &mut log);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("no change"), "{}", r.out);
    let st2 = State::load(&state).unwrap().unwrap();
    assert_eq!(st2.pids, st.pids);
    assert_eq!(st2.ports, st.ports);

    // A marker row written by the auth service's own role.
    let rt = runtime();
    let (st, pw) = auth_client(&state);
    rt.block_on(async {
        let c = pg_connect(
            st.addr("postgres").unwrap(),
            "sos_auth",
            &pw,
            "sos_app_auth",
        )
        .await
        .unwrap();
        c.batch_execute(
            "CREATE TABLE marker (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), note text);
             INSERT INTO marker (note) VALUES ('survives down');",
        )
        .await
        .unwrap();
    });

    // 4. down: the recorded processes stop, data stays.
    let r = stackguard(&state, &["down"], &mut log);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("kept"), "{}", r.out);
    for (c, pid) in COMPONENTS.iter().zip(&pids) {
        assert!(
            !process_running(*pid, ""),
            "{c} (pid {pid}) still runs after down"
        );
    }
    assert!(state.join("postgres/data/PG_VERSION").exists());
    // With the servers down, verify fails and says so.
    let r = stackguard(&state, &["verify"], &mut log);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("FAILED"), "{}", r.out);

    // 5. deploy again: same data (the marker row), same secrets.
    let before = secret_values(&state);
    let r = stackguard(&state, &["deploy"], &mut log);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("started") && !r.out.contains("generated"),
        "{}",
        r.out
    );
    assert_eq!(
        secret_values(&state),
        before,
        "secrets must never be regenerated"
    );
    let (st, pw) = auth_client(&state);
    let note: String = rt.block_on(async {
        let c = pg_connect(
            st.addr("postgres").unwrap(),
            "sos_auth",
            &pw,
            "sos_app_auth",
        )
        .await
        .unwrap();
        c.query_one("SELECT note FROM marker", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(note, "survives down");

    // 6. verify again.
    let r = stackguard(&state, &["verify"], &mut log);
    assert_eq!(r.code, 0, "{}", r.out);

    // No secret value ever appeared in any output.
    let secrets = secret_values(&state);
    assert!(secrets.len() >= 8);
    for out in &log {
        for v in &secrets {
            assert!(!out.contains(v.trim()), "a secret value was printed");
        }
    }

    // 7. down --purge: stopped and gone.
    let st = State::load(&state).unwrap().unwrap();
    let r = stackguard(&state, &["down", "--purge"], &mut log);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        !Path::new(s).exists(),
        "the state directory must be deleted"
    );
    for pid in st.pids.values() {
        assert!(
            !process_running(*pid, ""),
            "pid {pid} still runs after down --purge"
        );
    }
}
