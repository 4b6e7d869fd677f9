//! `stackguard verify`: prove the guarded invariants on the running stack with real clients.
//! The checks are the same for both targets; only how the servers are reached differs.

use super::secrets::SecretValue;
use super::stack::{Stack, read_objects};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use redis::IntoConnectionInfo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::error::SqlState;

pub const SETTINGS_CONFIG: &str = "stack-settings";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to PostgreSQL over TCP with a password (no TLS: loopback or a port-forward).
pub async fn pg_connect(
    addr: SocketAddr,
    user: &str,
    password: &SecretValue,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .password(password.expose())
        .dbname(db)
        .application_name("stackguard")
        .connect_timeout(CLIENT_TIMEOUT)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A Redis connection, authenticated when a password is given.
pub async fn redis_connect(
    addr: SocketAddr,
    password: Option<&SecretValue>,
) -> Result<redis::aio::MultiplexedConnection> {
    let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(pw) = password {
        settings = settings.set_password(pw.expose());
    }
    let info = redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port())
        .into_connection_info()?
        .set_redis_settings(settings);
    let client = redis::Client::open(info)?;
    Ok(client.get_multiplexed_async_connection().await?)
}

/// How to reach the running stack.
pub struct Endpoints {
    pub postgres: SocketAddr,
    pub cache: SocketAddr,
    pub pubsub: SocketAddr,
    /// Password of each PostgreSQL role (by role name).
    pub pg_passwords: BTreeMap<String, SecretValue>,
    pub cache_password: SecretValue,
    /// Server processes and their uids (real, effective, …), or why they could not be read.
    pub processes: Vec<(String, Result<Vec<u32>, String>)>,
}

/// What must hold, read from the stack and the Kubewarden policy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// (database, login role, password key) in the order of the settings.
    pub databases: Vec<(String, String, String)>,
    /// (role, password key)
    pub readonly: (String, String),
    pub required_extensions: Vec<String>,
    pub per_database: BTreeMap<String, Vec<String>>,
}

impl Expectations {
    /// From ConfigMap `stack-settings` (POSTGRES_ROLES, POSTGRES_READONLY_ROLE) and the
    /// settings of the `postgres-extensions` ClusterAdmissionPolicy in `policies`.
    pub fn load(stack: &Stack, policies: &Path) -> Result<Expectations> {
        let roles = stack.config_value(SETTINGS_CONFIG, "POSTGRES_ROLES")?;
        let mut databases = Vec::new();
        for item in roles.split_whitespace() {
            let parts: Vec<&str> = item.split(':').collect();
            let [db, role, key] = parts.as_slice() else {
                bail!(
                    "ConfigMap {SETTINGS_CONFIG}: POSTGRES_ROLES: `{item}` is not database:role:key"
                );
            };
            databases.push((db.to_string(), role.to_string(), key.to_string()));
        }
        if databases.is_empty() {
            bail!("ConfigMap {SETTINGS_CONFIG}: POSTGRES_ROLES lists no database");
        }
        let ro = stack.config_value(SETTINGS_CONFIG, "POSTGRES_READONLY_ROLE")?;
        let Some((role, key)) = ro.trim().split_once(':') else {
            bail!("ConfigMap {SETTINGS_CONFIG}: POSTGRES_READONLY_ROLE is not role:key");
        };
        let settings = policy_settings(policies, "postgres-extensions")?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        let required_extensions = settings
            .get("requiredExtensions")
            .map(strings)
            .unwrap_or_else(|| vec!["postgis".into(), "pgcrypto".into()]);
        let per_database = settings
            .get("perDatabase")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
            .unwrap_or_default();
        Ok(Expectations {
            databases,
            readonly: (role.to_string(), key.to_string()),
            required_extensions,
            per_database,
        })
    }

    /// Every login role with its password key.
    pub fn roles(&self) -> impl Iterator<Item = (&str, &str)> {
        self.databases
            .iter()
            .map(|(_, r, k)| (r.as_str(), k.as_str()))
            .chain(std::iter::once((
                self.readonly.0.as_str(),
                self.readonly.1.as_str(),
            )))
    }
}

/// The `settings` of the ClusterAdmissionPolicy `name` among the manifests in `dir`.
pub fn policy_settings(dir: &Path, name: &str) -> Result<Value> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "{}: cannot read the Kubewarden policies (--policies)",
            dir.display()
        )
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for f in files {
        for m in read_objects(&f)? {
            if m.kind() == "ClusterAdmissionPolicy" && m.name() == name {
                return Ok(m.object["spec"]
                    .get("settings")
                    .cloned()
                    .unwrap_or(Value::Null));
            }
        }
    }
    bail!("{}: no ClusterAdmissionPolicy {name}", dir.display())
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn check(name: impl Into<String>, r: Result<String, String>) -> Check {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        name: name.into(),
        ok,
        detail,
    }
}

fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// Run every check.
pub async fn run(ep: &Endpoints, ex: &Expectations) -> Vec<Check> {
    let mut out = Vec::new();
    postgres_checks(ep, ex, &mut out).await;
    out.extend(pubsub_checks(ep).await);
    out.extend(cache_checks(ep).await);
    for (name, uids) in &ep.processes {
        out.push(check(
            format!("{name}: server process not uid 0"),
            match uids {
                Ok(u) if u.is_empty() => Err("no uid found".into()),
                Ok(u) if u.contains(&0) => Err(format!("runs as uid 0 (uids {u:?})")),
                Ok(u) => Ok(format!("uid {}", u[0])),
                Err(e) => Err(e.clone()),
            },
        ));
    }
    out
}

async fn postgres_checks(ep: &Endpoints, ex: &Expectations, out: &mut Vec<Check>) {
    let password = |role: &str| ep.pg_passwords.get(role).cloned();
    let mut all_dbs: Vec<&str> = ex.databases.iter().map(|(d, _, _)| d.as_str()).collect();
    all_dbs.push("postgres");
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (db, role, _) in &ex.databases {
        let name = format!("postgres: {role} reaches only {db}");
        let Some(pw) = password(role) else {
            out.push(check(name, Err("no password for this role".into())));
            continue;
        };
        let own = match pg_connect(ep.postgres, role, &pw, db).await {
            Ok(c) => c,
            Err(e) => {
                out.push(check(
                    name,
                    Err(format!("cannot connect to {db}: {}", db_error(&e))),
                ));
                continue;
            }
        };
        match own.query("SELECT extname FROM pg_extension", &[]).await {
            Ok(rows) => {
                found.insert(
                    db.clone(),
                    rows.iter().map(|r| r.get::<_, String>(0)).collect(),
                );
            }
            Err(e) => out.push(check(
                format!("postgres: extensions of {db}"),
                Err(db_error(&e)),
            )),
        }
        let mut problems = Vec::new();
        for other in all_dbs.iter().filter(|d| *d != db) {
            match pg_connect(ep.postgres, role, &pw, other).await {
                Ok(_) => problems.push(format!("also reaches {other}")),
                Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
                Err(e) => problems.push(format!("{other}: unexpected error {}", db_error(&e))),
            }
        }
        out.push(check(
            name,
            match problems.is_empty() {
                true => Ok(format!(
                    "refused by the other {} databases",
                    all_dbs.len() - 1
                )),
                false => Err(problems.join("; ")),
            },
        ));
    }

    let (ro, _) = &ex.readonly;
    let name = format!("postgres: {ro} reads every database, writes none");
    out.push(check(name, readonly_check(ep, ex, ro, password(ro)).await));

    for (db, wanted) in &ex.per_database {
        let have = found.get(db);
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|e| have.is_none_or(|h| !h.contains(*e)))
            .map(String::as_str)
            .collect();
        out.push(check(
            format!("postgres: extensions {} in {db}", wanted.join(", ")),
            match (have, missing.is_empty()) {
                (None, _) => Err(format!("{db} could not be inspected")),
                (Some(_), true) => Ok("present".into()),
                (Some(_), false) => Err(format!("missing: {}", missing.join(", "))),
            },
        ));
    }
    let everywhere: BTreeSet<&String> = found.values().flatten().collect();
    let missing: Vec<&str> = ex
        .required_extensions
        .iter()
        .filter(|e| !everywhere.contains(e))
        .map(String::as_str)
        .collect();
    out.push(check(
        format!(
            "postgres: required extensions {}",
            ex.required_extensions.join(", ")
        ),
        match missing.is_empty() {
            true => Ok(format!("found in {} database(s)", found.len())),
            false => Err(format!("in no database: {}", missing.join(", "))),
        },
    ));
}

async fn readonly_check(
    ep: &Endpoints,
    ex: &Expectations,
    role: &str,
    pw: Option<SecretValue>,
) -> Result<String, String> {
    let pw = pw.ok_or("no password for this role")?;
    for (db, _, _) in &ex.databases {
        let c = pg_connect(ep.postgres, role, &pw, db)
            .await
            .map_err(|e| format!("cannot connect to {db}: {}", db_error(&e)))?;
        match c
            .batch_execute("CREATE TABLE stackguard_verify_probe (x int)")
            .await
        {
            Ok(()) => {
                let _ = c.batch_execute("DROP TABLE stackguard_verify_probe").await;
                return Err(format!("could create a table in {db}"));
            }
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
            Err(e) => return Err(format!("{db}: unexpected error {}", db_error(&e))),
        }
        c.simple_query("SELECT count(*) FROM pg_class")
            .await
            .map_err(|e| format!("cannot read in {db}: {}", db_error(&e)))?;
    }
    Ok(format!(
        "connects to all {}, CREATE TABLE refused",
        ex.databases.len()
    ))
}

async fn config_get(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Result<String, String> {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(key)
        .query_async(c)
        .await
        .map_err(|e| format!("CONFIG GET {key}: {e}"))?;
    v.get(1)
        .cloned()
        .ok_or(format!("CONFIG GET {key}: no value"))
}

fn expect_value(actual: Result<String, String>, want: &str) -> Result<String, String> {
    match actual {
        Ok(v) if v == want => Ok(format!("{v:?}")),
        Ok(v) => Err(format!("is {v:?}, must be {want:?}")),
        Err(e) => Err(e),
    }
}

async fn pubsub_checks(ep: &Endpoints) -> Vec<Check> {
    let mut c = match redis_connect(ep.pubsub, None).await {
        Ok(c) => c,
        Err(e) => {
            return vec![check(
                "redis-pubsub: reachable",
                Err(format!("{}: {e}", ep.pubsub)),
            )];
        }
    };
    vec![
        check(
            "redis-pubsub: maxmemory-policy noeviction",
            expect_value(config_get(&mut c, "maxmemory-policy").await, "noeviction"),
        ),
        check(
            "redis-pubsub: no save points",
            expect_value(config_get(&mut c, "save").await, ""),
        ),
        check(
            "redis-pubsub: appendonly no",
            expect_value(config_get(&mut c, "appendonly").await, "no"),
        ),
        check(
            "redis-pubsub: publish/subscribe round trip",
            pubsub_round_trip(ep.pubsub, &mut c).await,
        ),
    ]
}

async fn pubsub_round_trip(
    addr: SocketAddr,
    publisher: &mut redis::aio::MultiplexedConnection,
) -> Result<String, String> {
    let token = super::secrets::random_token(16).map_err(|e| e.to_string())?;
    let channel = format!("stackguard-verify-{}", token.expose());
    let client = redis::Client::open(
        redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port())
            .into_connection_info()
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut sub = client
        .get_async_pubsub()
        .await
        .map_err(|e| format!("subscriber: {e}"))?;
    sub.subscribe(&channel)
        .await
        .map_err(|e| format!("SUBSCRIBE: {e}"))?;
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("ping")
        .query_async(publisher)
        .await
        .map_err(|e| format!("PUBLISH: {e}"))?;
    let mut stream = sub.on_message();
    match tokio::time::timeout(CLIENT_TIMEOUT, stream.next()).await {
        Ok(Some(msg)) if msg.get_payload::<String>().is_ok_and(|p| p == "ping") => {
            Ok(format!("message delivered to {receivers} subscriber(s)"))
        }
        Ok(Some(_)) => Err("received a different message".into()),
        Ok(None) => Err("subscription closed".into()),
        Err(_) => Err(format!("no message within {} s", CLIENT_TIMEOUT.as_secs())),
    }
}

async fn cache_checks(ep: &Endpoints) -> Vec<Check> {
    let unauth = async {
        let mut c = match redis_connect(ep.cache, None).await {
            Ok(c) => c,
            Err(e) if e.to_string().contains("NOAUTH") => {
                return Ok("refused at connect (NOAUTH)".to_string());
            }
            Err(e) => return Err(format!("{}: {e}", ep.cache)),
        };
        match redis::cmd("PING").query_async::<String>(&mut c).await {
            Ok(_) => Err("PING without a password succeeded".to_string()),
            Err(e) if e.code() == Some("NOAUTH") || e.to_string().contains("NOAUTH") => {
                Ok("PING refused: NOAUTH".to_string())
            }
            Err(e) => Err(format!("unexpected error: {e}")),
        }
    };
    let mut out = vec![check(
        "redis-cache: refuses unauthenticated clients",
        unauth.await,
    )];
    match redis_connect(ep.cache, Some(&ep.cache_password)).await {
        Ok(mut c) => {
            out.push(check(
                "redis-cache: maxmemory-policy allkeys-lru",
                expect_value(config_get(&mut c, "maxmemory-policy").await, "allkeys-lru"),
            ));
            let save = config_get(&mut c, "save").await;
            let aof = config_get(&mut c, "appendonly").await;
            out.push(check(
                "redis-cache: persists (RDB save points and AOF)",
                match (save, aof) {
                    (Ok(s), Ok(a)) if !s.is_empty() && a == "yes" => {
                        Ok(format!("save {s:?}, appendonly yes"))
                    }
                    (Ok(s), Ok(a)) => Err(format!("save {s:?}, appendonly {a}")),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
            ));
        }
        Err(e) => out.push(check(
            "redis-cache: reachable with its password",
            Err(e.to_string()),
        )),
    }
    out
}

/// Print the table; returns whether every check passed.
pub fn print_table(checks: &[Check]) -> bool {
    let width = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<width$}  {:<6}  detail", "check", "result");
    println!(
        "{}  {}  {}",
        "-".repeat(width),
        "-".repeat(6),
        "-".repeat(30)
    );
    for c in checks {
        let r = if c.ok { "ok" } else { "FAILED" };
        println!("{:<width$}  {r:<6}  {}", c.name, c.detail);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    println!();
    if failed == 0 {
        println!("all {} checks passed", checks.len());
    } else {
        println!("{failed} of {} checks FAILED", checks.len());
    }
    failed == 0
}
