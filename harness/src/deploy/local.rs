//! `--target local`: PostgreSQL 15 + PostGIS and the two Redis servers from Debian packages,
//! configured from the very ConfigMaps of the stack, on 127.0.0.1, as a non-root user, with
//! their data in a state directory.

use super::Progress;
use super::secrets::{LocalSecrets, SecretSpec, SecretValue, make_private_dir};
use super::stack::Stack;
use super::verify::{Endpoints, Expectations, pg_connect, redis_connect};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const POSTGIS_CONTROL: &str = "/usr/share/postgresql/15/extension/postgis.control";
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// The system user the servers run as when `stackguard` runs as root.
pub const SERVICE_USER: &str = "stackguard";

/// What the local target takes from the stack.
pub const POSTGRES_INIT: &str = "postgres-init";
pub const POSTGRES_SECRET: &str = "postgres-credentials";
pub const POSTGRES_SUPERUSER: &str = "postgres";
pub const POSTGRES_SUPERUSER_KEY: &str = "postgres-password";
pub const CACHE_CONFIG: &str = "redis-cache-config";
pub const CACHE_SECRET: &str = "redis-cache-credentials";
pub const CACHE_SECRET_KEY: &str = "password";
pub const PUBSUB_CONFIG: &str = "redis-pubsub-config";
pub const REDIS_CONF_KEY: &str = "redis.conf";

/// The servers, in start order.
pub const COMPONENTS: [&str; 3] = ["postgres", "redis-cache", "redis-pubsub"];
const DEFAULT_PORTS: [u16; 3] = [15432, 16379, 16380];
const STATE_FILE: &str = "state.json";

/// What the local target keeps across runs (`<state-dir>/state.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The stack the servers were configured from.
    pub stack: PathBuf,
    pub ports: BTreeMap<String, u16>,
    pub pids: BTreeMap<String, u32>,
    /// Command line each running server was started with (a change means a restart).
    #[serde(default)]
    pub args: BTreeMap<String, Vec<String>>,
    pub postgres_initialized: bool,
}

impl State {
    pub fn load(state_dir: &Path) -> Result<Option<State>> {
        let p = state_dir.join(STATE_FILE);
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{}: not a stackguard state file", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    fn save(&self, state_dir: &Path) -> Result<()> {
        let p = state_dir.join(STATE_FILE);
        let tmp = state_dir.join(".state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))
    }

    pub fn port(&self, component: &str) -> Result<u16> {
        self.ports.get(component).copied().with_context(|| {
            format!("the state file records no port for {component}; run `stackguard deploy`")
        })
    }

    pub fn addr(&self, component: &str) -> Result<SocketAddr> {
        Ok(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            self.port(component)?,
        )))
    }
}

/// The default state directory: `$XDG_STATE_HOME/stackguard` or `~/.local/state/stackguard`;
/// `/var/lib/stackguard` for root, whose home the service user cannot enter.
pub fn default_state_dir() -> PathBuf {
    if running_as_root() {
        return PathBuf::from("/var/lib/stackguard");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("stackguard");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/state/stackguard")
}

pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The user the servers run as.
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether child processes must switch to it (we are root).
    pub switch: bool,
}

impl ServiceUser {
    /// Owner to give files to (only when running as root).
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.switch.then_some((self.uid, self.gid))
    }
}

fn passwd_entry(name: &str) -> Result<Option<(u32, u32)>> {
    let text = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    Ok(text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        match f.as_slice() {
            [n, _, uid, gid, ..] if *n == name => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    }))
}

/// As root: the `stackguard` system user (created if missing). Otherwise: ourselves.
pub fn service_user(create: bool) -> Result<ServiceUser> {
    let me = std::fs::metadata("/proc/self").context("reading /proc/self")?;
    if me.uid() != 0 {
        return Ok(ServiceUser {
            name: std::env::var("USER").unwrap_or_else(|_| me.uid().to_string()),
            uid: me.uid(),
            gid: me.gid(),
            switch: false,
        });
    }
    if passwd_entry(SERVICE_USER)?.is_none() && create {
        let out = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(SERVICE_USER)
            .output()
            .context("running useradd to create the service user")?;
        // Another stackguard may have created it meanwhile: only a user still missing is an error.
        if !out.status.success() && passwd_entry(SERVICE_USER)?.is_none() {
            bail!(
                "could not create the system user {SERVICE_USER} (useradd: {}); create it by hand",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let (uid, gid) = passwd_entry(SERVICE_USER)?.with_context(|| {
        format!("no system user {SERVICE_USER}; run `stackguard deploy` as root to create it")
    })?;
    Ok(ServiceUser {
        name: SERVICE_USER.into(),
        uid,
        gid,
        switch: true,
    })
}

/// Fail early with the install command when a package is missing.
pub fn check_packages() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new(PG_BIN).join("postgres").exists() {
        missing.push("postgresql-15");
    }
    if !Path::new(POSTGIS_CONTROL).exists() {
        missing.push("postgresql-15-postgis-3");
    }
    if !Path::new(REDIS_SERVER).exists() {
        missing.push("redis-server");
    }
    if !missing.is_empty() {
        bail!(
            "the local target needs Debian packages that are not installed: {}\n  \
             install them with: apt-get update && apt-get install -y --no-install-recommends {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    Ok(())
}

/// Whether `pid` is alive and runs `program` (guards against a recycled PID).
pub fn process_running(pid: u32, program: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let zombie = status
        .lines()
        .any(|l| l.starts_with("State:") && (l.contains("Z (") || l.contains("X (")));
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    !zombie && String::from_utf8_lossy(argv0).contains(program)
}

/// Real, effective, saved and filesystem uid of a process, from `/proc/<pid>/status`.
pub fn process_uids(pid: u32) -> Result<Vec<u32>> {
    let p = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?;
    parse_uids(&status).with_context(|| p.clone())
}

/// The `Uid:` line of a `/proc/<pid>/status` text.
pub fn parse_uids(status: &str) -> Result<Vec<u32>> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .context("no Uid line in the process status")?;
    line.split_whitespace()
        .map(|u| u.parse().context("bad Uid line in the process status"))
        .collect()
}

fn program_of(component: &str) -> &'static str {
    match component {
        "postgres" => "postgres",
        _ => "redis-server",
    }
}

/// Send `signal` to a process we started.
fn signal(pid: u32, sig: i32) -> Result<()> {
    let pid = i32::try_from(pid).context("PID out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        bail!("kill({pid}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A free TCP port on 127.0.0.1.
pub fn any_free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Choose the ports: recorded ones stay; `base` puts the three servers on base, base+1, base+2
/// (0: any free ports); otherwise the defaults, or free ports where a default is taken.
fn choose_ports(
    recorded: &BTreeMap<String, u16>,
    base: Option<u16>,
) -> Result<BTreeMap<String, u16>> {
    let mut out = BTreeMap::new();
    for (i, c) in COMPONENTS.iter().enumerate() {
        let port = match (base, recorded.get(*c)) {
            (Some(0), Some(p)) => *p,
            (Some(0), None) => any_free_port()?,
            (Some(b), _) => b
                .checked_add(i as u16)
                .with_context(|| format!("--base-port {b} leaves no room for three ports"))?,
            (None, Some(p)) => *p,
            (None, None) if port_free(DEFAULT_PORTS[i]) => DEFAULT_PORTS[i],
            (None, None) => any_free_port()?,
        };
        out.insert(c.to_string(), port);
    }
    Ok(out)
}

/// The local stack: paths under the state directory.
pub struct Local {
    pub state_dir: PathBuf,
    pub user: ServiceUser,
}

impl Local {
    pub fn secrets(&self) -> LocalSecrets {
        LocalSecrets {
            dir: self.state_dir.join("secrets"),
            owner: self.user.owner(),
        }
    }
    fn dir(&self, component: &str) -> PathBuf {
        self.state_dir.join(component)
    }

    /// A command that runs as the service user, with a clean environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        if self.user.switch {
            c.uid(self.user.uid).gid(self.user.gid);
        }
        c
    }

    pub fn private_dir(&self, dir: &Path) -> Result<()> {
        make_private_dir(dir, self.user.owner())
    }

    /// Write a private file owned by the service user, replacing it; true when it changed.
    pub fn write_file(&self, path: &Path, content: &str) -> Result<bool> {
        if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
            return Ok(false);
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(content.as_bytes())
                .with_context(|| format!("writing {}", tmp.display()))?;
        }
        if let Some((uid, gid)) = self.user.owner() {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
                .with_context(|| format!("changing the owner of {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(true)
    }

    fn log_file(&self, path: &Path) -> Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if let Some((uid, gid)) = self.user.owner() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(f)
    }

    /// Run a program to completion as the service user; output goes to `log`.
    fn run(&self, what: &str, mut cmd: Command, log: &Path) -> Result<()> {
        let f = self.log_file(log)?;
        let status = cmd
            .stdout(f.try_clone()?)
            .stderr(f)
            .status()
            .with_context(|| format!("{what}: could not start"))?;
        if !status.success() {
            bail!("{what} failed ({status}); see {}", log.display());
        }
        Ok(())
    }

    /// Start a server in its own process group, detached from us; its output goes to `log`.
    pub fn spawn(&self, mut cmd: Command, cwd: &Path, log: &Path) -> Result<Child> {
        let f = self.log_file(log)?;
        cmd.current_dir(cwd)
            .stdout(f.try_clone()?)
            .stderr(f)
            .process_group(0)
            .spawn()
            .context("starting the server")
    }
}

/// How one component ended up after `deploy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Started,
    Restarted(String),
}

/// What `deploy --target local` needs from its caller.
pub struct DeployOptions {
    pub state_dir: PathBuf,
    pub base_port: Option<u16>,
    pub timeout: Duration,
}

/// Prepare the state directory and check the service user can use it.
fn prepare_state_dir(local: &Local) -> Result<()> {
    local.private_dir(&local.state_dir)?;
    if local.user.switch {
        let ok = local
            .command("/usr/bin/test")
            .arg("-w")
            .arg(&local.state_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!(
                "the service user {} cannot reach {} (a parent directory is private to another \
                 user); choose a state directory it can enter, e.g. --state-dir /var/lib/stackguard",
                local.user.name,
                local.state_dir.display()
            );
        }
    }
    Ok(())
}

pub async fn deploy(stack: &Stack, opts: &DeployOptions, progress: &Progress) -> Result<bool> {
    check_packages()?;
    let state_dir = std::path::absolute(&opts.state_dir)
        .with_context(|| format!("resolving {}", opts.state_dir.display()))?;
    let local = Local {
        state_dir: state_dir.clone(),
        user: service_user(true)?,
    };
    prepare_state_dir(&local)?;
    let mut state = State::load(&state_dir)?.unwrap_or_default();
    state.stack = std::path::absolute(&stack.root)?;

    // Everything read from the stack first: a broken stack changes nothing.
    let init_scripts = stack.config_map(POSTGRES_INIT)?;
    let cache_conf = stack.config_value(CACHE_CONFIG, REDIS_CONF_KEY)?;
    let pubsub_conf = stack.config_value(PUBSUB_CONFIG, REDIS_CONF_KEY)?;
    let pg_secret = SecretSpec::from_template(stack.secret_template(POSTGRES_SECRET)?)?;
    let cache_secret = SecretSpec::from_template(stack.secret_template(CACHE_SECRET)?)?;
    for key in init_scripts.keys() {
        check_init_file_name(key).with_context(|| format!("ConfigMap {POSTGRES_INIT}"))?;
    }

    let mut changed = false;
    let secrets = local.secrets();
    for spec in [&pg_secret, &cache_secret] {
        let n = secrets.ensure(spec)?;
        if n > 0 {
            progress.line(&format!(
                "secrets: generated {n} value(s) of {} in {} (0600, not shown)",
                spec.name,
                secrets.secret_dir(&spec.name).display()
            ));
            changed = true;
        }
    }

    let ports = choose_ports(&state.ports, opts.base_port)?;
    state.ports = ports;
    state.save(&state_dir)?;

    let outcomes = [
        (
            "postgres",
            deploy_postgres(&local, &mut state, &init_scripts, opts.timeout, progress).await?,
        ),
        (
            "redis-cache",
            deploy_redis(
                &local,
                &mut state,
                "redis-cache",
                &cache_conf,
                Some(&secrets.read(CACHE_SECRET, CACHE_SECRET_KEY)?),
                opts.timeout,
                progress,
            )
            .await?,
        ),
        (
            "redis-pubsub",
            deploy_redis(
                &local,
                &mut state,
                "redis-pubsub",
                &pubsub_conf,
                None,
                opts.timeout,
                progress,
            )
            .await?,
        ),
    ];
    for (c, o) in &outcomes {
        let port = state.port(c)?;
        let pid = state.pids.get(*c).copied().unwrap_or_default();
        let what = match o {
            Outcome::Unchanged => "unchanged, running".to_string(),
            Outcome::Started => "started".to_string(),
            Outcome::Restarted(why) => format!("restarted ({why})"),
        };
        progress.line(&format!(
            "{c:<13} 127.0.0.1:{port:<5}  pid {pid:<7}  {what}"
        ));
        changed |= *o != Outcome::Unchanged;
    }
    progress.line(&format!(
        "servers run as user {} (uid {}); data, logs and secrets in {}",
        local.user.name,
        local.user.uid,
        state_dir.display()
    ));
    progress.line(
        "not run locally: TimescaleDB and MongoDB (not packaged in Debian main); \
         use --target kube for the whole stack",
    );
    Ok(changed)
}

fn postgres_args(local: &Local, port: u16) -> Vec<String> {
    let dir = local.dir("postgres");
    vec![
        "-D".into(),
        dir.join("data").display().to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-c".into(),
        format!("port={port}"),
        "-c".into(),
        format!("unix_socket_directories={}", dir.join("run").display()),
        "-c".into(),
        "unix_socket_permissions=0700".into(),
    ]
}

/// Decide what to do with a server: keep it, (re)start it.
fn reconcile(state: &State, component: &str, args: &[String]) -> Option<Outcome> {
    let running = state
        .pids
        .get(component)
        .is_some_and(|&pid| process_running(pid, program_of(component)));
    match running {
        true if state.args.get(component).is_some_and(|a| a == args) => None,
        true => Some(Outcome::Restarted("configuration changed".into())),
        false => Some(Outcome::Started),
    }
}

async fn deploy_postgres(
    local: &Local,
    state: &mut State,
    init_scripts: &BTreeMap<String, String>,
    timeout: Duration,
    progress: &Progress,
) -> Result<Outcome> {
    let dir = local.dir("postgres");
    let data = dir.join("data");
    for d in [&dir, &dir.join("run"), &dir.join("init")] {
        local.private_dir(d)?;
    }
    let secrets = local.secrets();
    let superuser_password = secrets.read(POSTGRES_SECRET, POSTGRES_SUPERUSER_KEY)?;
    if !data.join("PG_VERSION").exists() {
        state.postgres_initialized = false;
        let pb = progress.spinner("postgres: initdb");
        let mut cmd = local.command(Path::new(PG_BIN).join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .arg(format!("--username={POSTGRES_SUPERUSER}"))
            .arg("--pwfile")
            .arg(secrets.path(POSTGRES_SECRET, POSTGRES_SUPERUSER_KEY))
            // The socket directory is private to the service user: trust there, passwords on TCP.
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--encoding=UTF8", "--locale=C.UTF-8"]);
        local.run("initdb", cmd, &dir.join("initdb.log"))?;
        pb.finish_and_clear();
    }
    let port = state.port("postgres")?;
    let args = postgres_args(local, port);
    let outcome = reconcile(state, "postgres", &args);
    if let Some(o) = &outcome {
        if matches!(o, Outcome::Restarted(_)) {
            stop(state, "postgres", timeout, progress)?;
        }
        if !port_free(port) {
            bail!(
                "port {port} (postgres) is in use by another program; pick others with --base-port"
            );
        }
        let mut cmd = local.command(Path::new(PG_BIN).join("postgres"));
        cmd.args(&args);
        let mut child = local.spawn(cmd, &dir, &dir.join("server.log"))?;
        state.pids.insert("postgres".into(), child.id());
        state.args.insert("postgres".into(), args);
        state.save(&local.state_dir)?;
        let addr = state.addr("postgres")?;
        wait_ready(
            "postgres",
            &mut child,
            timeout,
            &dir.join("server.log"),
            progress,
            || async {
                let c =
                    pg_connect(addr, POSTGRES_SUPERUSER, &superuser_password, "postgres").await?;
                c.simple_query("SELECT 1").await?;
                Ok(())
            },
        )
        .await?;
    }
    if !state.postgres_initialized {
        let pb = progress.spinner("postgres: running the init scripts of ConfigMap postgres-init");
        run_init_scripts(local, state, init_scripts)?;
        pb.finish_and_clear();
        state.postgres_initialized = true;
        state.save(&local.state_dir)?;
        progress.line(&format!(
            "postgres: ran the {} init script(s) of ConfigMap {POSTGRES_INIT}",
            init_scripts
                .keys()
                .filter(|k| k.ends_with(".sh") || k.ends_with(".sql"))
                .count()
        ));
        return Ok(outcome.unwrap_or(Outcome::Restarted("initialised".into())));
    }
    Ok(outcome.unwrap_or(Outcome::Unchanged))
}

/// A bash script that runs init files exactly as the official postgres image's
/// `docker-entrypoint.sh` does (`docker_process_init_files` and `docker_process_sql`): under
/// `set -Eeo pipefail`, in the given order, `*.sh` sourced (run when executable) with the
/// `psql` array the image defines, `*.sql` through `psql -v ON_ERROR_STOP=1 --username
/// "$POSTGRES_USER" --no-password --no-psqlrc --dbname "$POSTGRES_DB"`, other files ignored.
/// The one difference: the server is reached through `PGHOST`/`PGPORT` from the environment
/// (the image clears them to use its default socket).
pub fn entrypoint_script(files: &[PathBuf]) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let list: Vec<String> = files.iter().map(|p| quote(p)).collect();
    format!(
        r#"set -Eeo pipefail
docker_process_sql() {{
	local query_runner=( psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc )
	if [ -n "$POSTGRES_DB" ]; then
		query_runner+=( --dbname "$POSTGRES_DB" )
	fi
	"${{query_runner[@]}}" "$@"
}}
psql=( docker_process_sql )
for f in {list}; do
	case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				printf '%s: running %s\n' "$0" "$f"
				"$f"
			else
				printf '%s: sourcing %s\n' "$0" "$f"
				. "$f"
			fi
			;;
		*.sql) printf '%s: running %s\n' "$0" "$f"; docker_process_sql -f "$f"; printf '\n' ;;
		*) printf '%s: ignoring %s\n' "$0" "$f" ;;
	esac
done
"#,
        list = list.join(" ")
    )
}

/// Init files are ConfigMap keys written into one directory: plain names only.
fn check_init_file_name(key: &str) -> Result<()> {
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || key.starts_with('.')
    {
        bail!("key `{key}` is not a plain file name");
    }
    Ok(())
}

/// Write init files into `dir` (private to the service user) and return the bash command that
/// runs them as the image's entrypoint does (see [`entrypoint_script`]), with `psql` of
/// PostgreSQL 15 first on the `PATH` and the environment the image gives them: `POSTGRES_USER`,
/// `POSTGRES_DB`, and `PGUSER` standing for the image's operating-system user `postgres`.
pub fn init_files_command(
    local: &Local,
    dir: &Path,
    files: &BTreeMap<String, String>,
    postgres_db: &str,
) -> Result<Command> {
    local.private_dir(dir)?;
    let mut paths = Vec::new();
    for (key, body) in files {
        check_init_file_name(key)?;
        let path = dir.join(key);
        local.write_file(&path, body)?;
        paths.push(path);
    }
    let mut cmd = local.command("/bin/bash");
    cmd.arg("-c")
        .arg(entrypoint_script(&paths))
        .arg("docker-entrypoint.sh")
        .env("PATH", format!("{PG_BIN}:/usr/local/bin:/usr/bin:/bin"))
        .env("POSTGRES_USER", POSTGRES_SUPERUSER)
        .env("POSTGRES_DB", postgres_db)
        .env("PGUSER", POSTGRES_SUPERUSER);
    Ok(cmd)
}

/// Run the init ConfigMap as the postgres image does, on the private socket as the superuser.
fn run_init_scripts(
    local: &Local,
    state: &State,
    scripts: &BTreeMap<String, String>,
) -> Result<()> {
    let dir = local.dir("postgres");
    let mut cmd = init_files_command(local, &dir.join("init"), scripts, "postgres")?;
    cmd.env("PGHOST", dir.join("run"))
        .env("PGPORT", state.port("postgres")?.to_string())
        .env(
            "STACKGUARD_SECRETS_DIR",
            local.secrets().secret_dir(POSTGRES_SECRET),
        )
        // A failing statement (CREATE ROLE … PASSWORD) must not reach the server log.
        .env("PGOPTIONS", "-c log_min_error_statement=panic");
    let log = dir.join("init.log");
    local.run("the init scripts", cmd, &log).map_err(|e| {
        // Only psql's error lines: its context lines could quote a statement with a password.
        let errors: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ERROR:") || l.contains("postgres-init:"))
            .map(|l| format!("  {l}"))
            .collect();
        anyhow::anyhow!(
            "{e}\n{}\n  the init scripts run once, on a fresh data directory: fix the ConfigMap, \
             then `stackguard down --purge` and deploy again",
            errors.join("\n")
        )
    })
}

/// A PostgreSQL 15 server of our own for tests: initialised in `dir`, reachable only through a
/// private Unix socket (trust, as the image's init scripts reach theirs), run by the service
/// user, stopped when dropped.
pub struct ScratchPostgres {
    pub local: Local,
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
}

impl ScratchPostgres {
    /// `initdb` and start, with extra `-c name=value` settings; waits until it accepts
    /// connections.
    pub async fn start(
        dir: &Path,
        settings: &[&str],
        timeout: Duration,
    ) -> Result<ScratchPostgres> {
        check_packages()?;
        let local = Local {
            state_dir: dir.to_path_buf(),
            user: service_user(true)?,
        };
        for d in [dir, &dir.join("run")] {
            local.private_dir(d)?;
        }
        let mut cmd = local.command(Path::new(PG_BIN).join("initdb"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg(format!("--username={POSTGRES_SUPERUSER}"))
            .args(["--auth-local=trust", "--auth-host=reject"])
            .args(["--encoding=UTF8", "--locale=C.UTF-8"]);
        local.run("initdb", cmd, &dir.join("initdb.log"))?;
        let port = any_free_port()?;
        let mut cmd = local.command(Path::new(PG_BIN).join("postgres"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!("port={port}"))
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                dir.join("run").display()
            ));
        for s in settings {
            cmd.args(["-c", s]);
        }
        let mut child = local.spawn(cmd, dir, &dir.join("server.log"))?;
        let log = dir.join("server.log");
        let quiet = super::Progress::quiet();
        let socket = dir.join("run");
        wait_ready("postgres", &mut child, timeout, &log, &quiet, || async {
            let c = scratch_connect(&socket, port, "postgres").await?;
            c.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await?;
        Ok(ScratchPostgres {
            local,
            dir: dir.to_path_buf(),
            port,
            child,
        })
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// A superuser connection to `db` over the socket.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client> {
        scratch_connect(&self.socket_dir(), self.port, db).await
    }

    /// Run init files as the image's entrypoint does, with `$POSTGRES_DB` = `postgres_db`.
    /// Ok(true) when every file ran, Ok(false) when one failed (the log is in `dir/init.log`).
    pub fn run_init_files(
        &self,
        files: &BTreeMap<String, String>,
        postgres_db: &str,
        env: &[(&str, &str)],
    ) -> Result<bool> {
        let init = self.dir.join("init");
        let _ = std::fs::remove_dir_all(&init);
        let mut cmd = init_files_command(&self.local, &init, files, postgres_db)?;
        cmd.env("PGHOST", self.socket_dir())
            .env("PGPORT", self.port.to_string());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(self.dir.join("init.log"))?;
        let status = cmd.stdout(log.try_clone()?).stderr(log).status()?;
        Ok(status.success())
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        if signal(self.child.id(), libc::SIGINT).is_ok() {
            let _ = self.child.wait();
        }
    }
}

async fn scratch_connect(socket: &Path, port: u16, db: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::Config::new()
        .host_path(socket)
        .port(port)
        .user(POSTGRES_SUPERUSER)
        .dbname(db)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn redis_files(
    local: &Local,
    component: &str,
    port: u16,
    password: Option<&SecretValue>,
    conf: &str,
) -> Result<(bool, PathBuf)> {
    let dir = local.dir(component);
    local.private_dir(&dir)?;
    local.private_dir(&dir.join("data"))?;
    let mut changed = local.write_file(&dir.join("redis.conf"), conf)?;
    let mut top = format!(
        "# Written by `stackguard deploy --target local`: the stack's redis.conf (ConfigMap), then\n\
         # what differs on this machine. The last occurrence of a directive wins.\n\
         include {dir}/redis.conf\n\
         bind 127.0.0.1\n\
         port {port}\n\
         dir {dir}/data\n\
         daemonize no\n\
         supervised no\n\
         pidfile {dir}/redis.pid\n\
         logfile {dir}/redis.log\n",
        dir = dir.display()
    );
    if let Some(pw) = password {
        let secret_conf = dir.join("secret.conf");
        changed |= local.write_file(&secret_conf, &format!("requirepass {}\n", pw.expose()))?;
        top.push_str(&format!("include {}\n", secret_conf.display()));
    }
    let path = dir.join("stackguard.conf");
    changed |= local.write_file(&path, &top)?;
    Ok((changed, path))
}

async fn deploy_redis(
    local: &Local,
    state: &mut State,
    component: &str,
    conf: &str,
    password: Option<&SecretValue>,
    timeout: Duration,
    progress: &Progress,
) -> Result<Outcome> {
    let port = state.port(component)?;
    let (files_changed, path) = redis_files(local, component, port, password, conf)?;
    let args = vec![path.display().to_string()];
    let outcome = match reconcile(state, component, &args) {
        None if files_changed => Some(Outcome::Restarted("redis.conf changed".into())),
        o => o,
    };
    let Some(outcome) = outcome else {
        return Ok(Outcome::Unchanged);
    };
    if matches!(outcome, Outcome::Restarted(_)) {
        stop(state, component, timeout, progress)?;
    }
    if !port_free(port) {
        bail!(
            "port {port} ({component}) is in use by another program; pick others with --base-port"
        );
    }
    let dir = local.dir(component);
    let mut cmd = local.command(REDIS_SERVER);
    cmd.args(&args);
    let mut child = local.spawn(cmd, &dir.join("data"), &dir.join("server.log"))?;
    state.pids.insert(component.into(), child.id());
    state.args.insert(component.into(), args);
    state.save(&local.state_dir)?;
    let addr = state.addr(component)?;
    wait_ready(
        component,
        &mut child,
        timeout,
        &dir.join("redis.log"),
        progress,
        || async {
            let mut c = redis_connect(addr, password).await?;
            let pong: String = redis::cmd("PING").query_async(&mut c).await?;
            anyhow::ensure!(pong == "PONG", "unexpected PING reply");
            Ok(())
        },
    )
    .await?;
    Ok(outcome)
}

/// Poll `probe` until it succeeds, the child exits, or the timeout passes.
async fn wait_ready<F, Fut>(
    component: &str,
    child: &mut Child,
    timeout: Duration,
    log: &Path,
    progress: &Progress,
    probe: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let pb = progress.spinner(&format!(
        "{component}: waiting until it accepts connections"
    ));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            pb.finish_and_clear();
            bail!(
                "{component} exited while starting ({status}); see {}",
                log.display()
            );
        }
        let last = match tokio::time::timeout(Duration::from_secs(5), probe()).await {
            Ok(Ok(())) => {
                pb.finish_and_clear();
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 5 s".to_string(),
        };
        if start.elapsed() > timeout {
            pb.finish_and_clear();
            bail!(
                "{component} did not accept connections within {} s (last error: {last}); see {} \
                 or raise --timeout",
                timeout.as_secs(),
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stop one server by its recorded PID (SIGINT for PostgreSQL's fast shutdown, SIGTERM for
/// Redis), wait for it, and forget the PID. Returns whether something was running.
fn stop(
    state: &mut State,
    component: &str,
    timeout: Duration,
    progress: &Progress,
) -> Result<bool> {
    let Some(pid) = state.pids.remove(component) else {
        return Ok(false);
    };
    state.args.remove(component);
    if !process_running(pid, program_of(component)) {
        return Ok(false);
    }
    let sig = if component == "postgres" {
        libc::SIGINT
    } else {
        libc::SIGTERM
    };
    signal(pid, sig).with_context(|| format!("stopping {component} (pid {pid})"))?;
    let pb = progress.spinner(&format!("{component}: stopping (pid {pid})"));
    let start = Instant::now();
    while process_running(pid, program_of(component)) {
        if start.elapsed() > timeout {
            pb.finish_and_clear();
            bail!(
                "{component} (pid {pid}) did not stop within {} s; stop it with `kill {pid}`",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    pb.finish_and_clear();
    Ok(true)
}

/// `down --target local`: stop what `deploy` started; with `purge`, delete the state directory.
pub fn down(state_dir: &Path, purge: bool, timeout: Duration, progress: &Progress) -> Result<()> {
    let Some(mut state) = State::load(state_dir)? else {
        if purge && state_dir.exists() {
            bail!(
                "{} holds no stackguard state file; not deleting a directory stackguard did not create",
                state_dir.display()
            );
        }
        progress.line(&format!("nothing deployed in {}", state_dir.display()));
        return Ok(());
    };
    for c in COMPONENTS.iter().rev() {
        let pid = state.pids.get(*c).copied();
        let stopped = stop(&mut state, c, timeout, progress)?;
        state.save(state_dir)?;
        match (stopped, pid) {
            (true, Some(pid)) => progress.line(&format!("{c:<13} stopped (pid {pid})")),
            _ => progress.line(&format!("{c:<13} was not running")),
        }
    }
    if purge {
        std::fs::remove_dir_all(state_dir)
            .with_context(|| format!("deleting {}", state_dir.display()))?;
        progress.line(&format!(
            "purged {} (data and secrets deleted)",
            state_dir.display()
        ));
    } else {
        progress.line(&format!(
            "data and secrets kept in {}; `stackguard down --purge` deletes them",
            state_dir.display()
        ));
    }
    Ok(())
}

/// How `verify` reaches the local servers: recorded ports, secrets from the state directory,
/// uids from `/proc/<recorded pid>/status`.
pub fn endpoints(state_dir: &Path, state: &State, ex: &Expectations) -> Result<Endpoints> {
    let secrets = LocalSecrets {
        dir: state_dir.join("secrets"),
        owner: None,
    };
    let mut pg_passwords = BTreeMap::new();
    for (role, key) in ex.roles() {
        pg_passwords.insert(role.to_string(), secrets.read(POSTGRES_SECRET, key)?);
    }
    let processes = COMPONENTS
        .iter()
        .map(|c| {
            let uids = match state.pids.get(*c) {
                Some(&pid) if process_running(pid, program_of(c)) => {
                    process_uids(pid).map_err(|e| e.to_string())
                }
                Some(&pid) => Err(format!("pid {pid} is not running; run `stackguard deploy`")),
                None => Err("not started; run `stackguard deploy`".to_string()),
            };
            (c.to_string(), uids)
        })
        .collect();
    Ok(Endpoints {
        postgres: state.addr("postgres")?,
        cache: state.addr("redis-cache")?,
        pubsub: state.addr("redis-pubsub")?,
        pg_passwords,
        cache_password: secrets.read(CACHE_SECRET, CACHE_SECRET_KEY)?,
        processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_ports_are_kept_and_base_port_spreads() {
        let recorded = BTreeMap::from([
            ("postgres".to_string(), 20000),
            ("redis-cache".to_string(), 20001),
            ("redis-pubsub".to_string(), 20002),
        ]);
        assert_eq!(choose_ports(&recorded, None).unwrap(), recorded);
        assert_eq!(choose_ports(&recorded, Some(0)).unwrap(), recorded);
        let p = choose_ports(&BTreeMap::new(), Some(30000)).unwrap();
        assert_eq!(
            p.values().copied().collect::<Vec<_>>(),
            [30000, 30001, 30002]
        );
        assert!(choose_ports(&BTreeMap::new(), Some(65535)).is_err());
    }

    #[test]
    fn our_own_process_is_running_and_has_uids() {
        let me = std::process::id();
        assert!(process_running(me, ""));
        assert!(!process_running(me, "no-such-program-name"));
        assert_eq!(process_uids(me).unwrap().len(), 4);
    }
}
