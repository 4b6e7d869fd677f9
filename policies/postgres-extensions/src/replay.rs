//! Replaying init scripts the way a PostgreSQL server runs them, to know which extensions each
//! database holds afterwards.
//!
//! The official image's entrypoint runs `/docker-entrypoint-initdb.d/*` in name order: `*.sql`
//! through `psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB"`, `*.sh` sourced by bash (each
//! `psql` they start is a session of its own), other files ignored; the first command that fails
//! stops the entrypoint. The replay models what decides the extensions present: `\connect`,
//! `CREATE`/`DROP DATABASE` (a new database copies its template), `CREATE`/`DROP EXTENSION`
//! (`IF [NOT] EXISTS`, `SCHEMA`, `CASCADE` through the extensions' `requires`), `CREATE`/`DROP
//! SCHEMA` (dropping a schema with `CASCADE` drops the extensions in it), transactions and
//! savepoints (rolled back, or closed with the session), `DO` blocks, and the statements among
//! these that fail (and then stop everything, or are skipped without `ON_ERROR_STOP`).
//!
//! What it cannot know (names from shell expansions, conditional `DO` bodies, SQL in files the
//! scripts do not contain) makes the affected extensions *maybe* present, never wrongly present
//! or absent. `tests/oracle_sql.rs` checks the replay against a real PostgreSQL 15 with PostGIS.

use stackguard_common::shell::{self, PsqlInput, Word};
use stackguard_common::sql::{self, Event, Name, TxOp};
use std::collections::{BTreeMap, BTreeSet};

/// What the replay needs from an extension's control file.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// Extensions it requires (`CASCADE` creates them; without it they must exist).
    pub requires: &'static [&'static str],
    /// The schema it always goes to (created when missing); `None`: relocatable.
    pub schema: Option<&'static str>,
}

/// Control-file facts of the extensions shipped with PostgreSQL 15 and PostGIS 3 that require
/// others or have a fixed schema; every other extension requires nothing and is relocatable.
pub fn control(name: &str) -> Control {
    let (requires, schema): (&'static [&'static str], _) = match name {
        "earthdistance" => (&["cube"], None),
        "postgis_raster" | "postgis_sfcgal" => (&["postgis"], None),
        "postgis_topology" => (&["postgis"], Some("topology")),
        "postgis_tiger_geocoder" => (&["postgis", "fuzzystrmatch"], Some("tiger")),
        "plpgsql" | "adminpack" => (&[], Some("pg_catalog")),
        "hstore_plperl" | "hstore_plperlu" => (&["hstore", "plperl"], None),
        "jsonb_plperl" | "bool_plperl" => (&["plperl"], None),
        "jsonb_plperlu" | "bool_plperlu" => (&["plperlu"], None),
        "hstore_plpython3u" => (&["hstore", "plpython3u"], None),
        "ltree_plpython3u" => (&["ltree", "plpython3u"], None),
        "jsonb_plpython3u" => (&["plpython3u"], None),
        _ => (&[], None),
    };
    Control { requires, schema }
}

/// One database as the scripts leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Db {
    /// Extensions certainly present, with their schema.
    pub extensions: BTreeMap<String, String>,
    /// Extensions that may be present (the replay could not tell).
    pub maybe: BTreeSet<String>,
    /// An extension whose name the replay does not know may be present.
    pub maybe_any: bool,
    pub schemas: BTreeSet<String>,
}

impl Default for Db {
    /// A database as `initdb` creates it (`plpgsql` is not tracked).
    fn default() -> Self {
        Db {
            extensions: BTreeMap::new(),
            maybe: BTreeSet::new(),
            maybe_any: false,
            schemas: BTreeSet::from(["public".to_string()]),
        }
    }
}

/// Whether an extension is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Yes,
    Maybe,
    No,
}

impl Db {
    pub fn presence(&self, ext: &str) -> Presence {
        if self.extensions.contains_key(ext) {
            Presence::Yes
        } else if self.maybe_any || self.maybe.contains(ext) {
            Presence::Maybe
        } else {
            Presence::No
        }
    }

    /// Every extension certainly or maybe present.
    pub fn possible(&self) -> impl Iterator<Item = &str> {
        self.extensions
            .keys()
            .chain(self.maybe.iter())
            .map(String::as_str)
    }
}

/// Where the replay stopped: a statement that certainly fails under `ON_ERROR_STOP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The file (or CloudNativePG field) and line.
    pub at: String,
    pub reason: String,
}

type Databases = BTreeMap<String, Db>;

/// The cluster while the scripts run.
#[derive(Debug, Clone)]
pub struct Replay {
    pub databases: Databases,
    /// The database `.sql` files run in (`$POSTGRES_DB`).
    pub default_db: String,
    /// The container environment the scripts see (`POSTGRES_DB`, `POSTGRES_USER`).
    pub env: BTreeMap<String, String>,
    /// The first statement that certainly failed under `ON_ERROR_STOP`: nothing after it ran.
    pub stopped: Option<Stop>,
    /// What the replay could not follow, with where: each makes some extensions only maybe
    /// present.
    pub uncertain: Vec<String>,
    /// A statement may have failed under `ON_ERROR_STOP`: everything after it only maybe ran.
    may_have_stopped: bool,
    /// Extensions created in a database whose name comes from an expansion.
    pub somewhere: BTreeSet<String>,
    /// Databases were created or dropped under names the replay does not know.
    unknown_databases: bool,
}

/// One psql session.
struct Session<'a> {
    /// `None`: a database whose name the replay does not know.
    db: Option<String>,
    on_error_stop: bool,
    tx: Option<Tx>,
    origin: &'a str,
}

struct Tx {
    snapshot: Databases,
    savepoints: Vec<(Name, Databases)>,
    /// A statement failed: the rest fails until ROLLBACK (TO SAVEPOINT).
    aborted: bool,
}

/// The outcome of one statement.
enum Res {
    Done,
    /// It certainly fails, with the reason (and changes nothing).
    Fails(String),
    /// It may fail (the state it depends on is only maybe known); its effects are recorded as
    /// maybe.
    MayFail(String),
}

/// SQL a session runs (with the shell expansions it contains), the line it starts on in its
/// file, and whether it certainly runs (false after a `\connect` that may have failed).
type Input<'a> = (&'a Word, usize, bool);

impl Replay {
    /// A fresh cluster as the official image's entrypoint leaves it before the init scripts:
    /// `postgres`, `template1` and `$POSTGRES_DB` (default `$POSTGRES_USER`, default
    /// `postgres`). `env` is the container's environment, as far as it is known.
    pub fn new(env: &BTreeMap<String, String>) -> Replay {
        let mut env = env.clone();
        let user = env
            .get("POSTGRES_USER")
            .filter(|u| !u.is_empty())
            .cloned()
            .unwrap_or_else(|| "postgres".to_string());
        let default_db = env
            .get("POSTGRES_DB")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| user.clone());
        env.insert("POSTGRES_USER".into(), user);
        env.insert("POSTGRES_DB".into(), default_db.clone());
        let mut databases = Databases::new();
        for db in ["postgres", "template0", "template1", default_db.as_str()] {
            databases.insert(db.to_string(), Db::default());
        }
        Replay {
            databases,
            default_db,
            env,
            stopped: None,
            uncertain: Vec::new(),
            may_have_stopped: false,
            somewhere: BTreeSet::new(),
            unknown_databases: false,
        }
    }

    /// The superuser the scripts run as (`$POSTGRES_USER`): its schema comes first in
    /// `search_path`.
    fn superuser(&self) -> &str {
        self.env
            .get("POSTGRES_USER")
            .map_or("postgres", String::as_str)
    }

    /// The files of one init directory, in name order, as the official entrypoint runs them.
    pub fn init_dir(&mut self, files: &BTreeMap<String, String>) {
        for (name, text) in files {
            if self.stopped.is_some() {
                return;
            }
            if name.ends_with(".sql") {
                let db = self.default_db.clone();
                self.session(
                    Some(db),
                    true,
                    name,
                    &[(&Word::literal(text.as_str()), 1, true)],
                );
            } else if name.ends_with(".sh") {
                self.script(name, text);
            } else if name.ends_with(".sql.gz")
                || name.ends_with(".sql.xz")
                || name.ends_with(".sql.zst")
            {
                self.unknown_effects(format!("{name}: compressed SQL is not read"));
            }
        }
    }

    /// SQL the replay cannot read runs: anything may have happened, or failed.
    fn unknown_effects(&mut self, why: String) {
        self.uncertain.push(why);
        self.may_have_stopped = true;
        for db in self.databases.values_mut() {
            db.maybe_any = true;
        }
    }

    /// A `.sh` init script (sourced by the entrypoint): every psql it starts.
    fn script(&mut self, name: &str, text: &str) {
        let commands = shell::parse(text);
        for call in shell::psql_calls(&commands, &self.env) {
            if self.stopped.is_some() {
                return;
            }
            let db = match &call.database {
                Some(w) => w.as_literal().map(str::to_string),
                // psql's default: the operating-system user, `postgres` in the image.
                None => Some("postgres".to_string()),
            };
            let mut inputs: Vec<Input<'_>> = Vec::new();
            for input in &call.inputs {
                match input {
                    PsqlInput::Sql {
                        text,
                        line,
                        certain,
                        ..
                    } => inputs.push((text, *line, *certain)),
                    PsqlInput::Elsewhere { what, line } => self.unknown_effects(format!(
                        "{name} line {line}: psql runs SQL from {what}, which was not read"
                    )),
                }
            }
            self.session(db, call.on_error_stop, name, &inputs);
        }
    }

    /// SQL run by one client session in `database`, stopping at the first error
    /// (CloudNativePG's post-init SQL).
    pub fn sql(&mut self, text: &str, database: &str, origin: &str) {
        self.session(
            Some(database.to_string()),
            true,
            origin,
            &[(&Word::literal(text), 1, true)],
        );
    }

    /// One psql session: connect to `db`, run the inputs, close.
    fn session(
        &mut self,
        db: Option<String>,
        on_error_stop: bool,
        origin: &str,
        inputs: &[Input<'_>],
    ) {
        if self.stopped.is_some() {
            return;
        }
        let mut s = Session {
            db: None,
            on_error_stop,
            tx: None,
            origin,
        };
        let first = inputs.first().map_or(1, |i| i.1);
        if !self.connect(&mut s, db, first) {
            return;
        }
        for (text, first_line, certain) in inputs {
            if !certain && !self.may_have_stopped {
                // It runs only if an earlier connection opened: its effects are only maybe.
                self.uncertain.push(format!(
                    "{origin} line {first_line}: runs only if an earlier \\connect succeeded"
                ));
                self.may_have_stopped = true;
            }
            for e in sql::scan_shell(text) {
                let line = first_line + e.line() - 1;
                if !self.event(&mut s, &e, line) {
                    return;
                }
            }
        }
        // Closing the session rolls back an open transaction.
        if let Some(tx) = s.tx.take() {
            self.databases = tx.snapshot;
        }
    }

    /// Open a connection; false when the replay stops.
    fn connect(&mut self, s: &mut Session<'_>, db: Option<String>, line: usize) -> bool {
        // Leaving a connection rolls back its open transaction.
        if let Some(tx) = s.tx.take() {
            self.databases = tx.snapshot;
        }
        let Some(name) = db else {
            s.db = None;
            return true;
        };
        let reason = match self.databases.get(&name) {
            Some(_) if name == "template0" => Some(format!(
                "database \"{name}\" is not currently accepting connections"
            )),
            Some(_) => None,
            None if self.unknown_databases || self.may_have_stopped => {
                self.uncertain.push(format!(
                    "{} line {line}: database {name} may not exist",
                    s.origin
                ));
                self.databases.insert(name.clone(), unknown_db());
                None
            }
            None => Some(format!("database \"{name}\" does not exist")),
        };
        match reason {
            None => {
                s.db = Some(name);
                true
            }
            // A script's psql that loses its connection ends with an error, ON_ERROR_STOP or not.
            Some(r) => {
                self.stop(s, line, format!("\\connect fails: {r}"));
                false
            }
        }
    }

    fn stop(&mut self, s: &mut Session<'_>, line: usize, reason: String) {
        if let Some(tx) = s.tx.take() {
            self.databases = tx.snapshot;
        }
        self.stopped = Some(Stop {
            at: format!("{} line {line}", s.origin),
            reason,
        });
    }

    /// Apply one event; false when the replay stops.
    fn event(&mut self, s: &mut Session<'_>, e: &Event, line: usize) -> bool {
        match e {
            Event::Connect { database, .. } => return self.connect(s, database.clone(), line),
            Event::SetVariable { name, value, .. } if name == "ON_ERROR_STOP" => {
                // `\unset` turns it off; a value psql cannot read leaves it as it was.
                s.on_error_stop = match value {
                    None => false,
                    Some(v) => sql::psql_bool(v).unwrap_or(s.on_error_stop),
                };
                return true;
            }
            Event::RolePassword { .. } | Event::SetVariable { .. } => return true,
            _ => {}
        }
        if s.tx.as_ref().is_some_and(|t| t.aborted)
            && !matches!(
                e,
                Event::Transaction {
                    op: TxOp::Rollback { .. } | TxOp::Commit { .. } | TxOp::RollbackTo(_),
                    ..
                }
            )
        {
            // Only ROLLBACK (TO SAVEPOINT) and COMMIT do something in an aborted transaction.
            return true;
        }
        let before = self.databases.clone();
        let at = format!("{} line {line}", s.origin);
        match self.apply(s, e) {
            Res::Done => true,
            Res::MayFail(reason) => {
                self.uncertain.push(format!("{at}: may fail: {reason}"));
                if s.on_error_stop {
                    self.may_have_stopped = true;
                }
                true
            }
            Res::Fails(reason) => {
                // A failed statement changes nothing.
                self.databases = before;
                if s.on_error_stop {
                    self.stop(s, line, reason);
                    return false;
                }
                if let Some(tx) = &mut s.tx {
                    tx.aborted = true;
                }
                true
            }
        }
    }

    fn apply(&mut self, s: &mut Session<'_>, e: &Event) -> Res {
        match e {
            Event::Transaction { op, .. } => transaction(s, op, &mut self.databases),
            Event::Do {
                events, certain, ..
            } => {
                if events
                    .iter()
                    .any(|e| matches!(e, Event::CreateDatabase { .. } | Event::DropDatabase { .. }))
                {
                    return Res::Fails(
                        "CREATE/DROP DATABASE cannot be executed from a function".into(),
                    );
                }
                if !certain {
                    // Conditional: each statement may or may not run.
                    if let Some(db) = s.db.as_ref().and_then(|d| self.databases.get_mut(d)) {
                        for inner in events {
                            maybe_effects(db, inner);
                        }
                    }
                    return Res::MayFail("a DO block runs statements conditionally".into());
                }
                let mut result = Res::Done;
                for inner in events {
                    match self.apply(s, inner) {
                        Res::Done => {}
                        Res::Fails(r) => return Res::Fails(r),
                        may @ Res::MayFail(_) => result = may,
                    }
                }
                result
            }
            Event::CreateDatabase { name, template, .. } => self.create_database(s, name, template),
            Event::DropDatabase {
                name, if_exists, ..
            } => {
                if s.tx.is_some() {
                    return Res::Fails(
                        "DROP DATABASE cannot run inside a transaction block".into(),
                    );
                }
                let Some(name) = name else {
                    self.unknown_databases = true;
                    return Res::MayFail("a database named by an expansion is dropped".into());
                };
                if s.db.as_deref() == Some(name.as_str()) {
                    return Res::Fails("cannot drop the currently open database".into());
                }
                if name == "template0" || name == "template1" {
                    return Res::Fails("cannot drop a template database".into());
                }
                if self.may_have_stopped {
                    // It may not run: the database may still hold what it held.
                    return match self.databases.get_mut(name) {
                        Some(db) => {
                            only_maybe(db);
                            Res::Done
                        }
                        None if *if_exists => Res::Done,
                        None => Res::MayFail(format!("database \"{name}\" may not exist")),
                    };
                }
                if self.databases.remove(name).is_none() && !if_exists {
                    return Res::Fails(format!("database \"{name}\" does not exist"));
                }
                Res::Done
            }
            _ => self.in_database(s, e),
        }
    }

    fn create_database(&mut self, s: &Session<'_>, name: &Name, template: &Option<Name>) -> Res {
        if s.tx.is_some() {
            return Res::Fails("CREATE DATABASE cannot run inside a transaction block".into());
        }
        let Some(name) = name else {
            self.unknown_databases = true;
            return Res::Done;
        };
        let template = match template {
            None => "template1".to_string(),
            Some(Some(t)) => t.clone(),
            Some(None) => {
                self.databases.insert(name.clone(), unknown_db());
                return Res::MayFail(format!("the template of database {name} is not known"));
            }
        };
        if self.may_have_stopped {
            // It may not run, or run after the database was dropped: the database may hold what
            // it held or what the template holds.
            let Some(mut copy) = self.databases.get(&template).cloned() else {
                return Res::MayFail(format!("template database \"{template}\" may not exist"));
            };
            only_maybe(&mut copy);
            match self.databases.get_mut(name) {
                Some(db) => {
                    db.maybe.extend(copy.maybe);
                    db.maybe_any |= copy.maybe_any;
                }
                None => {
                    self.databases.insert(name.clone(), copy);
                }
            }
            return Res::Done;
        }
        if self.databases.contains_key(name) {
            return Res::Fails(format!("database \"{name}\" already exists"));
        }
        let Some(copy) = self.databases.get(&template).cloned() else {
            return Res::Fails(format!("template database \"{template}\" does not exist"));
        };
        self.databases.insert(name.clone(), copy);
        Res::Done
    }

    /// Statements acting inside the session's database.
    fn in_database(&mut self, s: &Session<'_>, e: &Event) -> Res {
        let certain = !self.may_have_stopped;
        let superuser = self.superuser().to_string();
        let Some(dbname) = s.db.clone() else {
            // A database the replay cannot name: extensions created there exist somewhere.
            if let Event::CreateExtension { name: Some(n), .. } = e {
                self.somewhere.insert(n.clone());
                for r in control(n).requires {
                    self.somewhere.insert((*r).to_string());
                }
            }
            return Res::Done;
        };
        let db = self.databases.entry(dbname).or_insert_with(unknown_db);
        if !certain {
            maybe_effects(db, e);
            return Res::Done;
        }
        match e {
            Event::CreateExtension {
                name,
                if_not_exists,
                schema,
                cascade,
                ..
            } => match (name, schema) {
                (Some(name), None | Some(Some(_))) => create_extension(
                    db,
                    name,
                    *if_not_exists,
                    schema.as_ref().and_then(|s| s.as_deref()),
                    *cascade,
                    &superuser,
                ),
                _ => {
                    maybe_effects(db, e);
                    Res::MayFail("the extension or its schema is named by an expansion".into())
                }
            },
            Event::DropExtension {
                names,
                if_exists,
                cascade,
                ..
            } => drop_extensions(db, names, *if_exists, *cascade),
            Event::CreateSchema {
                name,
                if_not_exists,
                ..
            } => match name {
                None => Res::Done,
                Some(n) if db.schemas.contains(n) && !if_not_exists => {
                    Res::Fails(format!("schema \"{n}\" already exists"))
                }
                Some(n) => {
                    db.schemas.insert(n.clone());
                    Res::Done
                }
            },
            Event::DropSchema {
                names,
                if_exists,
                cascade,
                ..
            } => drop_schemas(db, names, *if_exists, *cascade),
            _ => Res::Done,
        }
    }

    /// Whether `ext` is in `db` (or, with `None`, in some database).
    pub fn presence(&self, db: Option<&str>, ext: &str) -> Presence {
        let somewhere = self.somewhere.contains(ext);
        match db {
            Some(d) => match self.databases.get(d).map(|d| d.presence(ext)) {
                Some(Presence::Yes) => Presence::Yes,
                _ if somewhere => Presence::Maybe,
                Some(p) => p,
                None => Presence::No,
            },
            None => {
                let mut best = if somewhere {
                    Presence::Yes
                } else {
                    Presence::No
                };
                for p in self.databases.values().map(|d| d.presence(ext)) {
                    best = match (best, p) {
                        (Presence::Yes, _) | (_, Presence::Yes) => Presence::Yes,
                        (Presence::Maybe, _) | (_, Presence::Maybe) => Presence::Maybe,
                        _ => Presence::No,
                    };
                }
                best
            }
        }
    }

    /// Every extension certainly or maybe present anywhere.
    pub fn all_possible(&self) -> BTreeSet<&str> {
        let mut all: BTreeSet<&str> = self.somewhere.iter().map(String::as_str).collect();
        for d in self.databases.values() {
            all.extend(d.possible());
        }
        all
    }
}

/// What a database certainly holds becomes what it may hold.
fn only_maybe(db: &mut Db) {
    let certain = std::mem::take(&mut db.extensions);
    db.maybe.extend(certain.into_keys());
}

/// A database the replay knows nothing about.
fn unknown_db() -> Db {
    Db {
        maybe_any: true,
        ..Db::default()
    }
}

fn transaction(s: &mut Session<'_>, op: &TxOp, databases: &mut Databases) -> Res {
    let new_tx = |databases: &Databases| Tx {
        snapshot: databases.clone(),
        savepoints: Vec::new(),
        aborted: false,
    };
    match op {
        TxOp::Begin => {
            if s.tx.is_none() {
                s.tx = Some(new_tx(databases));
            }
        }
        TxOp::Commit { chain: true } | TxOp::Rollback { chain: true } if s.tx.is_none() => {
            return Res::Fails("AND CHAIN can only be used in transaction blocks".into());
        }
        TxOp::Commit { chain } | TxOp::Rollback { chain } => {
            let rollback =
                matches!(op, TxOp::Rollback { .. }) || s.tx.as_ref().is_some_and(|t| t.aborted);
            if let Some(tx) = s.tx.take()
                && rollback
            {
                *databases = tx.snapshot;
            }
            if *chain {
                s.tx = Some(new_tx(databases));
            }
        }
        TxOp::Savepoint(name) => match &mut s.tx {
            Some(tx) => tx.savepoints.push((name.clone(), databases.clone())),
            None => return Res::Fails("SAVEPOINT can only be used in transaction blocks".into()),
        },
        TxOp::RollbackTo(name) | TxOp::Release(name) => {
            let Some(tx) = &mut s.tx else {
                return Res::Fails("savepoints can only be used in transaction blocks".into());
            };
            let Some(pos) = tx
                .savepoints
                .iter()
                .rposition(|(n, _)| n.is_none() || name.is_none() || n == name)
            else {
                return Res::Fails("savepoint does not exist".into());
            };
            if matches!(op, TxOp::Release(_)) {
                tx.savepoints.truncate(pos);
            } else {
                tx.savepoints.truncate(pos + 1);
                *databases = tx.savepoints[pos].1.clone();
                tx.aborted = false;
            }
        }
    }
    Res::Done
}

/// What a statement may do when the replay cannot tell whether it runs or succeeds.
fn maybe_effects(db: &mut Db, e: &Event) {
    match e {
        Event::CreateExtension { name: Some(n), .. } if !db.extensions.contains_key(n) => {
            db.maybe.insert(n.clone());
            for r in control(n).requires {
                if !db.extensions.contains_key(*r) {
                    db.maybe.insert((*r).to_string());
                }
            }
        }
        Event::CreateExtension { name: None, .. } => db.maybe_any = true,
        Event::DropExtension { names, .. } => {
            let targets: Vec<String> = if names.iter().any(Option::is_none) {
                db.extensions.keys().cloned().collect()
            } else {
                names.iter().flatten().cloned().collect()
            };
            for n in targets {
                for d in dependents(db, &n).into_iter().chain([n]) {
                    if db.extensions.remove(&d).is_some() {
                        db.maybe.insert(d);
                    }
                }
            }
        }
        Event::DropSchema { names, .. } => {
            let unknown = names.iter().any(Option::is_none);
            let inside: Vec<String> = db
                .extensions
                .iter()
                .filter(|(_, s)| unknown || names.iter().flatten().any(|n| n == *s))
                .map(|(e, _)| e.clone())
                .collect();
            for e in inside {
                for d in dependents(db, &e).into_iter().chain([e]) {
                    if db.extensions.remove(&d).is_some() {
                        db.maybe.insert(d);
                    }
                }
            }
        }
        Event::CreateSchema { name: Some(n), .. } => {
            db.schemas.insert(n.clone());
        }
        Event::Do { events, .. } => {
            for inner in events {
                maybe_effects(db, inner);
            }
        }
        _ => {}
    }
}

/// The schema a new extension goes to without `SCHEMA`: the first of `"$user"` and `public`
/// that exists.
fn default_schema(db: &Db, superuser: &str) -> Option<String> {
    [superuser, "public"]
        .into_iter()
        .find(|s| db.schemas.contains(*s))
        .map(str::to_string)
}

fn create_extension(
    db: &mut Db,
    name: &str,
    if_not_exists: bool,
    schema: Option<&str>,
    cascade: bool,
    superuser: &str,
) -> Res {
    if db.extensions.contains_key(name) {
        return if if_not_exists {
            Res::Done
        } else {
            Res::Fails(format!("extension \"{name}\" already exists"))
        };
    }
    let maybe_there = db.maybe_any || db.maybe.contains(name);
    if maybe_there && !if_not_exists {
        maybe_effects(
            db,
            &Event::CreateExtension {
                name: Some(name.to_string()),
                if_not_exists,
                schema: None,
                cascade,
                line: 0,
            },
        );
        return Res::MayFail(format!("extension \"{name}\" may already exist"));
    }
    if let Some(s) = schema
        && !db.schemas.contains(s)
    {
        return Res::Fails(format!("schema \"{s}\" does not exist"));
    }
    let c = control(name);
    let target = match (c.schema, schema) {
        (Some(fixed), Some(given)) if fixed != given => {
            return Res::Fails(format!(
                "extension \"{name}\" must be installed in schema \"{fixed}\""
            ));
        }
        (Some(fixed), _) => {
            db.schemas.insert(fixed.to_string());
            fixed.to_string()
        }
        (None, Some(given)) => given.to_string(),
        (None, None) => match default_schema(db, superuser) {
            Some(s) => s,
            None => return Res::Fails("no schema has been selected to create in".into()),
        },
    };
    for r in c.requires {
        if db.extensions.contains_key(*r) {
            continue;
        }
        if !cascade {
            return Res::Fails(format!("required extension \"{r}\" is not installed"));
        }
        match create_extension(db, r, false, schema, true, superuser) {
            Res::Done => {}
            other => return other,
        }
    }
    db.maybe.remove(name);
    db.extensions.insert(name.to_string(), target);
    Res::Done
}

/// The installed extensions that require `ext`, directly or not.
fn dependents(db: &Db, ext: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![ext.to_string()];
    while let Some(e) = todo.pop() {
        for installed in db.extensions.keys() {
            if control(installed).requires.contains(&e.as_str()) && out.insert(installed.clone()) {
                todo.push(installed.clone());
            }
        }
    }
    out
}

fn drop_extensions(db: &mut Db, names: &[Name], if_exists: bool, cascade: bool) -> Res {
    let mut gone = BTreeSet::new();
    let mut doubt = None;
    for n in names {
        let Some(n) = n else {
            maybe_effects(
                db,
                &Event::DropExtension {
                    names: vec![None],
                    if_exists,
                    cascade,
                    line: 0,
                },
            );
            return Res::MayFail("an extension named by an expansion is dropped".into());
        };
        if db.extensions.contains_key(n) {
            gone.insert(n.clone());
        } else if db.maybe_any || db.maybe.contains(n) {
            if if_exists {
                db.maybe.remove(n);
            } else {
                doubt = Some(format!("extension \"{n}\" may not exist"));
            }
        } else if !if_exists {
            return Res::Fails(format!("extension \"{n}\" does not exist"));
        }
    }
    let mut all = gone.clone();
    for n in &gone {
        let deps = dependents(db, n);
        if let Some(d) = deps.iter().find(|d| !gone.contains(*d))
            && !cascade
        {
            return Res::Fails(format!(
                "cannot drop extension {n} because other objects depend on it (extension {d})"
            ));
        }
        all.extend(deps);
    }
    for n in &all {
        db.extensions.remove(n);
        if doubt.is_some() {
            db.maybe.insert(n.clone());
        }
    }
    doubt.map_or(Res::Done, Res::MayFail)
}

fn drop_schemas(db: &mut Db, names: &[Name], if_exists: bool, cascade: bool) -> Res {
    let mut gone = BTreeSet::new();
    for n in names {
        let Some(n) = n else {
            maybe_effects(
                db,
                &Event::DropSchema {
                    names: vec![None],
                    if_exists,
                    cascade,
                    line: 0,
                },
            );
            return Res::MayFail("a schema named by an expansion is dropped".into());
        };
        if db.schemas.contains(n) {
            gone.insert(n.clone());
        } else if !if_exists {
            return Res::Fails(format!("schema \"{n}\" does not exist"));
        }
    }
    let inside: BTreeSet<String> = db
        .extensions
        .iter()
        .filter(|(_, s)| gone.contains(*s))
        .map(|(e, _)| e.clone())
        .collect();
    if let Some(e) = inside.iter().next()
        && !cascade
    {
        return Res::Fails(format!(
            "cannot drop schema because extension {e} depends on it"
        ));
    }
    let mut all = inside.clone();
    for e in &inside {
        all.extend(dependents(db, e));
    }
    for e in &all {
        db.extensions.remove(e);
    }
    for s in &gone {
        db.schemas.remove(s);
    }
    Res::Done
}
