//! Differential test: the replay of init scripts in `postgres-extensions` against a real
//! PostgreSQL 15 with PostGIS.
//!
//! Generated init directories (one to three `.sql` files and sometimes a `.sh` with a
//! here-document) mix `CREATE`/`DROP EXTENSION` (`IF [NOT] EXISTS`, `SCHEMA`, `CASCADE`,
//! extensions that require others), `CREATE`/`DROP SCHEMA`, `CREATE DATABASE … TEMPLATE …`,
//! `DROP DATABASE`, `\c` switches, transactions and savepoints that commit or roll back, `DO`
//! blocks, comments, quoted identifiers, dollar-quoted strings that only look like SQL,
//! `\set ON_ERROR_STOP`, and statements that fail. Each directory runs in a scratch cluster
//! exactly as the postgres image's entrypoint runs it (the harness' `init_files_command`), then
//! the extensions of every database are read back and compared with the replay: what it says
//! is certainly there must be there, what it says is absent must be absent, and it must stop
//! exactly when the entrypoint fails.

#[path = "oracle/mod.rs"]
mod oracle;

use postgres_extensions::replay::{Presence, Replay};
use proptest::prelude::*;
use stackguard::deploy::local::ScratchPostgres;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Extensions shipped with PostgreSQL 15 and PostGIS, with weights: PostGIS takes seconds to
/// create, so it is rare. `earthdistance` requires `cube`; `postgis_raster` requires `postgis`.
const EXTENSIONS: &[(&str, u32)] = &[
    ("hstore", 6),
    ("citext", 6),
    ("cube", 6),
    ("earthdistance", 6),
    ("ltree", 4),
    ("pg_trgm", 4),
    ("\"uuid-ossp\"", 4),
    ("pgcrypto", 4),
    ("PGCRYPTO", 2),
    ("\"hstore\"", 2),
    ("fuzzystrmatch", 3),
    ("isn", 2),
    ("postgis", 1),
    ("postgis_raster", 1),
];

const SCHEMAS: &[&str] = &["ext", "\"Ext Schema\"", "public", "postgres"];
const DATABASES: &[&str] = &["sos_app", "\"My DB\"", "postgres", "template1", "other"];
const CONNECT: &[&str] = &[
    "sos_app",
    "\"My DB\"",
    "postgres",
    "template1",
    "other",
    "template0",
];
const TEMPLATES: &[&str] = &["template1", "template0", "sos_app", "postgres", "\"My DB\""];

#[derive(Debug, Clone)]
enum Stmt {
    CreateExt {
        ext: usize,
        if_not_exists: bool,
        schema: Option<usize>,
        cascade: bool,
        with: bool,
    },
    DropExt {
        exts: Vec<usize>,
        if_exists: bool,
        cascade: bool,
    },
    CreateSchema(usize, bool),
    DropSchema(usize, bool, bool),
    CreateDb(usize, Option<(usize, bool)>),
    DropDb(usize, bool),
    Connect(usize, bool),
    Tx(usize),
    Do(usize, bool),
    Noise(usize),
    OnErrorStop(bool),
}

fn ext_index() -> impl Strategy<Value = usize> {
    let weights: Vec<(u32, usize)> = EXTENSIONS
        .iter()
        .enumerate()
        .map(|(i, (_, w))| (*w, i))
        .collect();
    proptest::sample::select(
        weights
            .iter()
            .flat_map(|(w, i)| std::iter::repeat_n(*i, *w as usize))
            .collect::<Vec<_>>(),
    )
}

fn stmt() -> impl Strategy<Value = Stmt> {
    prop_oneof![
        10 => (ext_index(), any::<bool>(), proptest::option::weighted(0.3, 0..SCHEMAS.len()), prop::bool::weighted(0.3), any::<bool>())
            .prop_map(|(ext, if_not_exists, schema, cascade, with)| Stmt::CreateExt { ext, if_not_exists, schema, cascade, with }),
        4 => (proptest::collection::vec(ext_index(), 1..3), any::<bool>(), any::<bool>())
            .prop_map(|(exts, if_exists, cascade)| Stmt::DropExt { exts, if_exists, cascade }),
        2 => (0..SCHEMAS.len(), any::<bool>()).prop_map(|(s, i)| Stmt::CreateSchema(s, i)),
        2 => (0..SCHEMAS.len(), any::<bool>(), any::<bool>()).prop_map(|(s, i, c)| Stmt::DropSchema(s, i, c)),
        3 => (0..DATABASES.len(), proptest::option::of((0..TEMPLATES.len(), any::<bool>())))
            .prop_map(|(d, t)| Stmt::CreateDb(d, t)),
        1 => (0..DATABASES.len(), any::<bool>()).prop_map(|(d, i)| Stmt::DropDb(d, i)),
        4 => (prop::sample::select(vec![0usize, 0, 1, 2, 2, 3, 4, 5]), any::<bool>()).prop_map(|(d, long)| Stmt::Connect(d, long)),
        4 => (0..TX.len()).prop_map(Stmt::Tx),
        1 => (ext_index(), any::<bool>()).prop_map(|(e, c)| Stmt::Do(e, c)),
        3 => (0..NOISE.len()).prop_map(Stmt::Noise),
        1 => any::<bool>().prop_map(Stmt::OnErrorStop),
    ]
}

const TX: &[&str] = &[
    "BEGIN;",
    "COMMIT;",
    "ROLLBACK;",
    "START TRANSACTION;",
    "END;",
    "ABORT;",
    "SAVEPOINT sp;",
    "ROLLBACK TO SAVEPOINT sp;",
    "RELEASE sp;",
    "COMMIT AND CHAIN;",
];

const NOISE: &[&str] = &[
    "-- CREATE EXTENSION hstore;",
    "/* DROP EXTENSION cube; /* nested */ CREATE EXTENSION ltree; */",
    "SELECT 'CREATE EXTENSION citext;';",
    "SELECT $tag$ DROP SCHEMA public CASCADE; $tag$;",
    "SELECT 1;",
    "SET client_min_messages = warning;",
    "CREATE FUNCTION f_noise() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    "SELECT E'\\';CREATE EXTENSION isn;';",
];

fn ext(i: usize) -> &'static str {
    EXTENSIONS[i].0
}

fn render_stmt(s: &Stmt) -> String {
    match s {
        Stmt::CreateExt {
            ext: e,
            if_not_exists,
            schema,
            cascade,
            with,
        } => {
            let mut t = String::from("CREATE EXTENSION ");
            if *if_not_exists {
                t.push_str("IF NOT EXISTS ");
            }
            t.push_str(ext(*e));
            if let Some(sc) = schema {
                t.push_str(if *with { " WITH SCHEMA " } else { " SCHEMA " });
                t.push_str(SCHEMAS[*sc]);
            }
            if *cascade {
                t.push_str(" CASCADE");
            }
            t.push(';');
            t
        }
        Stmt::DropExt {
            exts,
            if_exists,
            cascade,
        } => {
            let names: Vec<&str> = exts.iter().map(|e| ext(*e)).collect();
            format!(
                "DROP EXTENSION {}{}{};",
                if *if_exists { "IF EXISTS " } else { "" },
                names.join(", "),
                if *cascade { " CASCADE" } else { "" }
            )
        }
        Stmt::CreateSchema(s, ine) => format!(
            "CREATE SCHEMA {}{};",
            if *ine { "IF NOT EXISTS " } else { "" },
            SCHEMAS[*s]
        ),
        Stmt::DropSchema(s, ie, c) => format!(
            "DROP SCHEMA {}{}{};",
            if *ie { "IF EXISTS " } else { "" },
            SCHEMAS[*s],
            if *c { " CASCADE" } else { "" }
        ),
        Stmt::CreateDb(d, t) => match t {
            None => format!("CREATE DATABASE {};", DATABASES[*d]),
            Some((t, eq)) => format!(
                "CREATE DATABASE {} {}TEMPLATE {}{};",
                DATABASES[*d],
                if *eq { "WITH " } else { "" },
                if *eq { "= " } else { "" },
                TEMPLATES[*t]
            ),
        },
        Stmt::DropDb(d, ie) => format!(
            "DROP DATABASE {}{};",
            if *ie { "IF EXISTS " } else { "" },
            DATABASES[*d]
        ),
        Stmt::Connect(d, long) => {
            format!("\\{} {}", if *long { "connect" } else { "c" }, CONNECT[*d])
        }
        Stmt::Tx(i) => TX[*i].to_string(),
        Stmt::Do(e, certain) => {
            if *certain {
                format!(
                    "DO $do$ BEGIN CREATE EXTENSION IF NOT EXISTS {}; END $do$;",
                    ext(*e)
                )
            } else {
                format!(
                    "DO $do$ BEGIN IF random() < 2 THEN CREATE EXTENSION IF NOT EXISTS {}; END IF; END $do$;",
                    ext(*e)
                )
            }
        }
        Stmt::Noise(i) => NOISE[*i].to_string(),
        Stmt::OnErrorStop(on) => format!("\\set ON_ERROR_STOP {}", if *on { "on" } else { "off" }),
    }
}

#[derive(Debug, Clone)]
struct Case {
    /// `$POSTGRES_DB`: `postgres` or `sos_app`.
    app_db: bool,
    files: Vec<(bool, Vec<Stmt>)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        proptest::collection::vec(
            (
                prop::bool::weighted(0.25),
                proptest::collection::vec(stmt(), 1..9),
            ),
            1..4,
        ),
    )
        .prop_map(|(app_db, files)| Case { app_db, files })
}

impl Case {
    fn postgres_db(&self) -> &'static str {
        if self.app_db { "sos_app" } else { "postgres" }
    }

    fn files(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (i, (sh, stmts)) in self.files.iter().enumerate() {
            let sql: Vec<String> = stmts.iter().map(render_stmt).collect();
            if *sh {
                // A here-document with a quoted delimiter: psql gets the SQL as written.
                let body: String = sql.iter().map(|l| format!("\t{l}\n")).collect();
                out.insert(
                    format!("{i:02}-init.sh"),
                    format!(
                        "#!/bin/bash\nset -e\npsql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname \"$POSTGRES_DB\" <<-'EOSQL'\n{body}EOSQL\n"
                    ),
                );
            } else {
                out.insert(format!("{i:02}-init.sql"), sql.join("\n") + "\n");
            }
        }
        out
    }
}

/// Extensions by database, as the server has them (without `plpgsql`).
type State = BTreeMap<String, BTreeSet<String>>;

async fn reset(pg: &ScratchPostgres, admin: &tokio_postgres::Client, app_db: &str) {
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname NOT IN ('template0', 'oracle_admin')",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let name: String = r.get(0);
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        if name == "template1" {
            admin
                .batch_execute("ALTER DATABASE template1 IS_TEMPLATE false")
                .await
                .unwrap();
        }
        admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", q(&name)))
            .await
            .unwrap();
    }
    for sql in [
        "CREATE DATABASE template1 TEMPLATE template0 IS_TEMPLATE true STRATEGY file_copy",
        "CREATE DATABASE postgres TEMPLATE template0 STRATEGY file_copy",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    if app_db != "postgres" {
        // The entrypoint's docker_setup_db creates $POSTGRES_DB before the init scripts.
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {app_db} TEMPLATE template1 STRATEGY file_copy"
            ))
            .await
            .unwrap();
    }
    let _ = pg;
}

async fn state(pg: &ScratchPostgres, admin: &tokio_postgres::Client) -> State {
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'oracle_admin'",
            &[],
        )
        .await
        .unwrap();
    let mut out = State::new();
    for r in rows {
        let name: String = r.get(0);
        let c = pg.connect(&name).await.unwrap();
        let exts: BTreeSet<String> = c
            .query(
                "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        out.insert(name, exts);
    }
    out
}

fn compare(replay: &Replay, ok: bool, real: &State) -> Result<(), String> {
    let certain_run = replay.uncertain.is_empty();
    match (&replay.stopped, ok) {
        (Some(stop), true) => {
            return Err(format!(
                "the replay stops at {} ({}), the entrypoint ran every file",
                stop.at, stop.reason
            ));
        }
        (None, false) if certain_run => {
            return Err("the entrypoint failed, the replay ran every file".into());
        }
        _ => {}
    }
    let model_dbs: BTreeSet<&str> = replay
        .databases
        .keys()
        .map(String::as_str)
        .filter(|d| *d != "template0")
        .collect();
    let real_dbs: BTreeSet<&str> = real.keys().map(String::as_str).collect();
    if certain_run && model_dbs != real_dbs {
        return Err(format!(
            "databases: the replay has {model_dbs:?}, the server {real_dbs:?}"
        ));
    }
    for (db, exts) in real {
        for e in exts {
            if replay.presence(Some(db), e) == Presence::No {
                return Err(format!(
                    "database {db}: the server has extension {e}, the replay says it is absent"
                ));
            }
        }
        if let Some(m) = replay.databases.get(db) {
            for e in m.extensions.keys() {
                if !exts.contains(e) {
                    return Err(format!(
                        "database {db}: the replay says extension {e} is there, the server does not have it"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn show(c: &Case) -> String {
    let mut out = format!("POSTGRES_DB={}\n", c.postgres_db());
    for (name, text) in c.files() {
        out.push_str(&format!("== {name}\n{text}"));
    }
    out
}

#[test]
fn init_script_replay_agrees_with_postgresql() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tmp = oracle::TempDir::new("sql");
    let dir = tmp.0.clone();
    let pg = rt
        .block_on(ScratchPostgres::start(
            &dir,
            &[
                "fsync=off",
                "full_page_writes=off",
                "synchronous_commit=off",
            ],
            Duration::from_secs(60),
        ))
        .expect("starting a scratch PostgreSQL (tests/setup.sh installs postgresql-15)");
    let admin = rt.block_on(async {
        let c = pg.connect("postgres").await.unwrap();
        c.batch_execute("CREATE DATABASE oracle_admin")
            .await
            .unwrap();
        pg.connect("oracle_admin").await.unwrap()
    });
    let run = oracle::Run::from_env("sql", 120);
    run.check(
        case(),
        |c| {
            let files = c.files();
            rt.block_on(reset(&pg, &admin, c.postgres_db()));
            let ok = pg
                .run_init_files(&files, c.postgres_db(), &[])
                .map_err(|e| e.to_string())?;
            let real = rt.block_on(state(&pg, &admin));
            let env = BTreeMap::from([("POSTGRES_DB".to_string(), c.postgres_db().to_string())]);
            let mut replay = Replay::new(&env);
            replay.init_dir(&files);
            compare(&replay, ok, &real)
        },
        show,
    );
    drop(admin);
    drop(pg);
}
