//! Structure-aware inputs: `arbitrary` builds Kubernetes-shaped objects (workloads with pod
//! specs, ConfigMaps, Secrets, CloudNativePG `Cluster`s, anything else) whose every field may
//! also be absent, `null` or of the wrong type, and whose strings mostly come from the words
//! the rules look for (so that SQL, shell, redis.conf and selectors get assembled), sometimes
//! from anything.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Value, json};

/// Words and fragments the rules react to, joined into names, values and scripts.
const VOCAB: &[&str] = &[
    // separators
    " ",
    "\n",
    "\t",
    ";",
    "=",
    ":",
    ",",
    "'",
    "\"",
    "$",
    "\\",
    "--",
    "#",
    "/",
    "-",
    ".",
    "@",
    "{",
    "}",
    "(",
    ")",
    "*",
    "$$",
    "\\\n",
    "\r\n",
    // identities and images
    "postgres",
    "redis",
    "app",
    "api",
    "db",
    "sos-data",
    "default",
    "kube-system",
    "busybox",
    "postgres:15",
    "postgis/postgis:15-3.4",
    "timescale/timescaledb-ha:pg15",
    "redis:7",
    "bitnami/postgresql:15",
    "ghcr.io/cloudnative-pg/postgis:15",
    "valkey/valkey:8",
    "mongo:7",
    // keys and names
    "POSTGRES_PASSWORD",
    "PASSWORD",
    "DB_PASS",
    "REDIS_URL",
    "API_TOKEN",
    "SECRET_KEY",
    "DATABASE_URL",
    "PGPASSWORD",
    "PUBLIC_KEY",
    "USER",
    "init.sql",
    "01-init.sh",
    "redis.conf",
    ".env",
    "app.properties",
    "config.yaml",
    "config.json",
    "password",
    "token",
    "cpu",
    "memory",
    "ephemeral-storage",
    "stackguard.io/postgres-init",
    "stackguard.io/redis-role",
    "pubsub",
    "true",
    "false",
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "DoNotSchedule",
    "ScheduleAnyway",
    "ALL",
    "NET_ADMIN",
    "windows",
    "linux",
    "/docker-entrypoint-initdb.d",
    "/etc/redis",
    "/etc/redis/redis.conf",
    "/data",
    // values
    "0",
    "1",
    "1000",
    "-1",
    "500m",
    "0.5",
    "1Gi",
    "1G",
    "256Mi",
    "1e9",
    "2Ei",
    "100mb",
    "1gb",
    "Tr0ub4dor-and-3",
    "changeme",
    "$(DB_PASSWORD)",
    "${PASSWORD}",
    "$PGPASSWORD",
    "postgresql://user:secret@db:5432/app",
    "redis://:hunter22@redis:6379/0",
    "mongodb://u:p@a:1,b:2/db",
    "amqp://guest:guest@mq",
    "ghp_0123456789abcdefghijABCDEFGHIJ0123",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "-----BEGIN RSA PRIVATE KEY-----",
    "xoxb-123-456-abc",
    "glpat-0123456789abcdefghij",
    "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5",
    "md5d41d8cd98f00b204e9800998ecf8427e",
    // SQL
    "CREATE",
    "EXTENSION",
    "IF NOT EXISTS",
    "postgis",
    "pgcrypto",
    "timescaledb",
    "DROP",
    "CASCADE",
    "SCHEMA",
    "DATABASE",
    "TEMPLATE",
    "template1",
    "ROLE",
    "USER",
    "ALTER",
    "WITH",
    "LOGIN",
    "PASSWORD",
    "NULL",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "\\c",
    "\\connect",
    "\\gexec",
    "\\set",
    ":'pw'",
    ":pw",
    "E'",
    "$body$",
    "/*",
    "*/",
    "CREATE EXTENSION IF NOT EXISTS postgis;",
    "CREATE DATABASE gis TEMPLATE template_postgis;",
    "ALTER ROLE app PASSWORD 'x';",
    // shell
    "psql",
    "-c",
    "-f",
    "-v",
    "--set",
    "<<",
    "<<-",
    "<<'EOF'",
    "<<\"EOF\"",
    "EOF",
    "sh",
    "bash",
    "-ec",
    "set -e",
    "cat",
    "|",
    "&&",
    "||",
    "`",
    "$(",
    "export",
    "redis-cli",
    "-a",
    "--requirepass",
    "--password=",
    "redis-server",
    "--maxmemory",
    "--save",
    "--appendonly",
    "--maxmemory-policy",
    "--include",
    // redis.conf
    "maxmemory",
    "maxmemory-policy",
    "noeviction",
    "allkeys-lru",
    "save",
    "\"\"",
    "appendonly",
    "yes",
    "no",
    "include",
    "requirepass",
    "masterauth",
    "rename-command",
    "\\x41",
];

/// A string that mostly comes from [`VOCAB`].
#[derive(Debug, Clone)]
pub enum Text {
    Word(Word),
    Joined(Vec<Word>),
    Free(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Word(&'static str);

impl<'a> Arbitrary<'a> for Word {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Word(u.choose(VOCAB)?))
    }
}

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=9u8)? {
            0..=3 => Text::Word(u.arbitrary()?),
            4..=8 => Text::Joined(u.arbitrary()?),
            _ => Text::Free(u.arbitrary()?),
        })
    }
}

impl Text {
    pub fn string(&self) -> String {
        match self {
            Text::Word(w) => w.0.to_string(),
            Text::Joined(ws) => ws.iter().map(|w| w.0).collect(),
            Text::Free(s) => s.clone(),
        }
    }
}

/// Any JSON value (the wrong type in a typed field, or a whole unknown object).
#[derive(Debug, Arbitrary)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Arr(Vec<Json>),
    Obj(Vec<(Text, Json)>),
}

/// A typed field that may also be absent, `null`, or a value of another type.
#[derive(Debug, Arbitrary)]
pub enum Field<T> {
    Absent,
    Null,
    Set(T),
    Wrong(Json),
}

/// Conversion of every shape to JSON.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

impl ToJson for Json {
    fn to_json(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => json!(b),
            Json::Int(i) => json!(i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(t) => t.to_json(),
            Json::Arr(a) => Value::Array(a.iter().map(ToJson::to_json).collect()),
            Json::Obj(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.string(), v.to_json())).collect())
            }
        }
    }
}

impl ToJson for Text {
    fn to_json(&self) -> Value {
        Value::String(self.string())
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        json!(self)
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Value {
        json!(self)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

/// A string map (labels, data, requests).
#[derive(Debug, Arbitrary)]
pub struct Dict(Vec<(Text, Text)>);

impl ToJson for Dict {
    fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.string(), v.to_json()))
                .collect(),
        )
    }
}

fn put<T: ToJson>(map: &mut Map<String, Value>, key: &str, field: &Field<T>) {
    match field {
        Field::Absent => {}
        Field::Null => {
            map.insert(key.to_string(), Value::Null);
        }
        Field::Set(v) => {
            map.insert(key.to_string(), v.to_json());
        }
        Field::Wrong(j) => {
            map.insert(key.to_string(), j.to_json());
        }
    }
}

macro_rules! object {
    ($($key:literal => $field:expr),* $(,)?) => {{
        let mut m = Map::new();
        $(put(&mut m, $key, $field);)*
        Value::Object(m)
    }};
}

#[derive(Debug, Arbitrary)]
pub struct Meta {
    name: Field<Text>,
    generate_name: Field<Text>,
    namespace: Field<Text>,
    labels: Field<Dict>,
    annotations: Field<Dict>,
}

impl ToJson for Meta {
    fn to_json(&self) -> Value {
        object! {
            "name" => &self.name, "generateName" => &self.generate_name,
            "namespace" => &self.namespace, "labels" => &self.labels,
            "annotations" => &self.annotations,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct Capabilities {
    add: Field<Vec<Text>>,
    drop: Field<Vec<Text>>,
}

impl ToJson for Capabilities {
    fn to_json(&self) -> Value {
        object! { "add" => &self.add, "drop" => &self.drop }
    }
}

#[derive(Debug, Arbitrary)]
pub struct SecurityContext {
    run_as_user: Field<i64>,
    run_as_group: Field<i64>,
    run_as_non_root: Field<bool>,
    privileged: Field<bool>,
    allow_privilege_escalation: Field<bool>,
    read_only_root_filesystem: Field<bool>,
    capabilities: Field<Capabilities>,
}

impl ToJson for SecurityContext {
    fn to_json(&self) -> Value {
        object! {
            "runAsUser" => &self.run_as_user, "runAsGroup" => &self.run_as_group,
            "runAsNonRoot" => &self.run_as_non_root, "privileged" => &self.privileged,
            "allowPrivilegeEscalation" => &self.allow_privilege_escalation,
            "readOnlyRootFilesystem" => &self.read_only_root_filesystem,
            "capabilities" => &self.capabilities,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct KeyRef {
    name: Field<Text>,
    key: Field<Text>,
}

impl ToJson for KeyRef {
    fn to_json(&self) -> Value {
        object! { "name" => &self.name, "key" => &self.key }
    }
}

#[derive(Debug, Arbitrary)]
pub struct EnvSource {
    secret_key_ref: Field<KeyRef>,
    config_map_key_ref: Field<KeyRef>,
}

impl ToJson for EnvSource {
    fn to_json(&self) -> Value {
        object! {
            "secretKeyRef" => &self.secret_key_ref,
            "configMapKeyRef" => &self.config_map_key_ref,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct EnvVar {
    name: Field<Text>,
    value: Field<Text>,
    value_from: Field<EnvSource>,
}

impl ToJson for EnvVar {
    fn to_json(&self) -> Value {
        object! { "name" => &self.name, "value" => &self.value, "valueFrom" => &self.value_from }
    }
}

#[derive(Debug, Arbitrary)]
pub struct Resources {
    requests: Field<Dict>,
    limits: Field<Dict>,
}

impl ToJson for Resources {
    fn to_json(&self) -> Value {
        object! { "requests" => &self.requests, "limits" => &self.limits }
    }
}

#[derive(Debug, Arbitrary)]
pub struct Mount {
    name: Field<Text>,
    mount_path: Field<Text>,
    sub_path: Field<Text>,
}

impl ToJson for Mount {
    fn to_json(&self) -> Value {
        object! { "name" => &self.name, "mountPath" => &self.mount_path, "subPath" => &self.sub_path }
    }
}

#[derive(Debug, Arbitrary)]
pub struct Container {
    name: Field<Text>,
    image: Field<Text>,
    command: Field<Vec<Text>>,
    args: Field<Vec<Text>>,
    env: Field<Vec<EnvVar>>,
    security_context: Field<SecurityContext>,
    resources: Field<Resources>,
    volume_mounts: Field<Vec<Mount>>,
}

impl ToJson for Container {
    fn to_json(&self) -> Value {
        object! {
            "name" => &self.name, "image" => &self.image, "command" => &self.command,
            "args" => &self.args, "env" => &self.env, "securityContext" => &self.security_context,
            "resources" => &self.resources, "volumeMounts" => &self.volume_mounts,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct KeyToPath {
    key: Field<Text>,
    path: Field<Text>,
}

impl ToJson for KeyToPath {
    fn to_json(&self) -> Value {
        object! { "key" => &self.key, "path" => &self.path }
    }
}

#[derive(Debug, Arbitrary)]
pub struct ConfigMapVolume {
    name: Field<Text>,
    items: Field<Vec<KeyToPath>>,
}

impl ToJson for ConfigMapVolume {
    fn to_json(&self) -> Value {
        object! { "name" => &self.name, "items" => &self.items }
    }
}

#[derive(Debug, Arbitrary)]
pub enum VolumeSource {
    ConfigMap(ConfigMapVolume),
    Secret(Field<Text>),
    Projected(Vec<Field<ConfigMapVolume>>),
    EmptyDir,
}

#[derive(Debug, Arbitrary)]
pub struct Volume {
    name: Field<Text>,
    source: VolumeSource,
}

impl ToJson for Volume {
    fn to_json(&self) -> Value {
        let mut v = object! { "name" => &self.name };
        let (key, body) = match &self.source {
            VolumeSource::ConfigMap(c) => ("configMap", c.to_json()),
            VolumeSource::Secret(name) => ("secret", object! { "secretName" => name }),
            VolumeSource::Projected(sources) => {
                let list: Vec<Value> = sources
                    .iter()
                    .map(|c| object! { "configMap" => c })
                    .collect();
                ("projected", json!({ "sources": list }))
            }
            VolumeSource::EmptyDir => ("emptyDir", json!({})),
        };
        v[key] = body;
        v
    }
}

#[derive(Debug, Arbitrary)]
pub struct Requirement {
    key: Field<Text>,
    operator: Field<Text>,
    values: Field<Vec<Text>>,
}

impl ToJson for Requirement {
    fn to_json(&self) -> Value {
        object! { "key" => &self.key, "operator" => &self.operator, "values" => &self.values }
    }
}

/// `metav1.LabelSelector`.
#[derive(Debug, Arbitrary)]
pub struct Selector {
    match_labels: Field<Dict>,
    match_expressions: Field<Vec<Requirement>>,
}

impl ToJson for Selector {
    fn to_json(&self) -> Value {
        object! {
            "matchLabels" => &self.match_labels,
            "matchExpressions" => &self.match_expressions,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct AffinityTerm {
    label_selector: Field<Selector>,
    namespaces: Field<Vec<Text>>,
    namespace_selector: Field<Selector>,
    topology_key: Field<Text>,
    match_label_keys: Field<Vec<Text>>,
    mismatch_label_keys: Field<Vec<Text>>,
}

impl ToJson for AffinityTerm {
    fn to_json(&self) -> Value {
        object! {
            "labelSelector" => &self.label_selector, "namespaces" => &self.namespaces,
            "namespaceSelector" => &self.namespace_selector, "topologyKey" => &self.topology_key,
            "matchLabelKeys" => &self.match_label_keys,
            "mismatchLabelKeys" => &self.mismatch_label_keys,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct Weighted {
    weight: Field<i64>,
    term: Field<AffinityTerm>,
}

impl ToJson for Weighted {
    fn to_json(&self) -> Value {
        object! { "weight" => &self.weight, "podAffinityTerm" => &self.term }
    }
}

#[derive(Debug, Arbitrary)]
pub struct AntiAffinity {
    required: Field<Vec<AffinityTerm>>,
    preferred: Field<Vec<Weighted>>,
}

impl ToJson for AntiAffinity {
    fn to_json(&self) -> Value {
        let inner = object! {
            "requiredDuringSchedulingIgnoredDuringExecution" => &self.required,
            "preferredDuringSchedulingIgnoredDuringExecution" => &self.preferred,
        };
        json!({ "podAntiAffinity": inner })
    }
}

#[derive(Debug, Arbitrary)]
pub struct Spread {
    max_skew: Field<i64>,
    topology_key: Field<Text>,
    when_unsatisfiable: Field<Text>,
    label_selector: Field<Selector>,
    match_label_keys: Field<Vec<Text>>,
}

impl ToJson for Spread {
    fn to_json(&self) -> Value {
        object! {
            "maxSkew" => &self.max_skew, "topologyKey" => &self.topology_key,
            "whenUnsatisfiable" => &self.when_unsatisfiable,
            "labelSelector" => &self.label_selector, "matchLabelKeys" => &self.match_label_keys,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct PodSpec {
    security_context: Field<SecurityContext>,
    containers: Field<Vec<Container>>,
    init_containers: Field<Vec<Container>>,
    ephemeral_containers: Field<Vec<Container>>,
    volumes: Field<Vec<Volume>>,
    affinity: Field<AntiAffinity>,
    topology_spread_constraints: Field<Vec<Spread>>,
    os: Field<Text>,
}

impl ToJson for PodSpec {
    fn to_json(&self) -> Value {
        let mut v = object! {
            "securityContext" => &self.security_context, "containers" => &self.containers,
            "initContainers" => &self.init_containers,
            "ephemeralContainers" => &self.ephemeral_containers, "volumes" => &self.volumes,
            "affinity" => &self.affinity,
            "topologySpreadConstraints" => &self.topology_spread_constraints,
        };
        if let Field::Set(name) = &self.os {
            v["os"] = json!({ "name": name.string() });
        }
        v
    }
}

/// A pod template (`metadata` + `spec`).
#[derive(Debug, Arbitrary)]
pub struct Template {
    metadata: Field<Meta>,
    spec: Field<PodSpec>,
}

impl ToJson for Template {
    fn to_json(&self) -> Value {
        object! { "metadata" => &self.metadata, "spec" => &self.spec }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    ReplicaSet,
    DaemonSet,
    ReplicationController,
    Job,
}

impl WorkloadKind {
    fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::ReplicationController => "v1",
            WorkloadKind::Job => "batch/v1",
            _ => "apps/v1",
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct Initdb {
    database: Field<Text>,
    post_init_sql: Field<Vec<Text>>,
    post_init_template_sql: Field<Vec<Text>>,
    post_init_application_sql: Field<Vec<Text>>,
    post_init_sql_refs: Field<SqlRefs>,
    post_init_application_sql_refs: Field<SqlRefs>,
}

impl ToJson for Initdb {
    fn to_json(&self) -> Value {
        object! {
            "database" => &self.database, "postInitSQL" => &self.post_init_sql,
            "postInitTemplateSQL" => &self.post_init_template_sql,
            "postInitApplicationSQL" => &self.post_init_application_sql,
            "postInitSQLRefs" => &self.post_init_sql_refs,
            "postInitApplicationSQLRefs" => &self.post_init_application_sql_refs,
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct SqlRefs {
    config_map_refs: Field<Vec<KeyRef>>,
    secret_refs: Field<Vec<KeyRef>>,
}

impl ToJson for SqlRefs {
    fn to_json(&self) -> Value {
        object! { "configMapRefs" => &self.config_map_refs, "secretRefs" => &self.secret_refs }
    }
}

/// Secret values: base64 of a text (as the API stores them), or raw text (invalid base64).
#[derive(Debug, Arbitrary)]
pub enum SecretValue {
    Encoded(Text),
    Raw(Text),
}

impl ToJson for SecretValue {
    fn to_json(&self) -> Value {
        use base64::Engine;
        match self {
            SecretValue::Encoded(t) => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(t.string()))
            }
            SecretValue::Raw(t) => t.to_json(),
        }
    }
}

#[derive(Debug, Arbitrary)]
pub struct SecretData(Vec<(Text, SecretValue)>);

impl ToJson for SecretData {
    fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.string(), v.to_json()))
                .collect(),
        )
    }
}

/// One object under review (or cluster state).
#[derive(Debug, Arbitrary)]
pub enum Object {
    Workload {
        kind: WorkloadKind,
        metadata: Field<Meta>,
        replicas: Field<i64>,
        selector: Field<Selector>,
        template: Field<Template>,
    },
    CronJob {
        metadata: Field<Meta>,
        template: Field<Template>,
    },
    Pod {
        metadata: Field<Meta>,
        spec: Field<PodSpec>,
    },
    ConfigMap {
        metadata: Field<Meta>,
        data: Field<Dict>,
    },
    Secret {
        metadata: Field<Meta>,
        data: Field<SecretData>,
        string_data: Field<Dict>,
        kind: Field<Text>,
    },
    Cluster {
        metadata: Field<Meta>,
        image_name: Field<Text>,
        initdb: Field<Initdb>,
    },
    Other {
        api_version: Text,
        kind: Text,
        metadata: Field<Meta>,
        body: Vec<(Text, Json)>,
    },
}

impl ToJson for Object {
    fn to_json(&self) -> Value {
        let with = |api: &str, kind: &str, meta: &Field<Meta>, mut rest: Value| {
            rest["apiVersion"] = json!(api);
            rest["kind"] = json!(kind);
            put(rest.as_object_mut().expect("an object"), "metadata", meta);
            rest
        };
        match self {
            Object::Workload {
                kind,
                metadata,
                replicas,
                selector,
                template,
            } => {
                let spec = object! {
                    "replicas" => replicas, "selector" => selector, "template" => template,
                };
                with(
                    kind.api_version(),
                    &format!("{kind:?}"),
                    metadata,
                    json!({ "spec": spec }),
                )
            }
            Object::CronJob { metadata, template } => {
                let job = json!({ "spec": object! { "template" => template } });
                let spec = json!({ "schedule": "* * * * *", "jobTemplate": job });
                with("batch/v1", "CronJob", metadata, json!({ "spec": spec }))
            }
            Object::Pod { metadata, spec } => {
                with("v1", "Pod", metadata, object! { "spec" => spec })
            }
            Object::ConfigMap { metadata, data } => {
                with("v1", "ConfigMap", metadata, object! { "data" => data })
            }
            Object::Secret {
                metadata,
                data,
                string_data,
                kind,
            } => with(
                "v1",
                "Secret",
                metadata,
                object! { "data" => data, "stringData" => string_data, "type" => kind },
            ),
            Object::Cluster {
                metadata,
                image_name,
                initdb,
            } => {
                let bootstrap = object! { "initdb" => initdb };
                let mut spec = object! { "imageName" => image_name };
                spec["bootstrap"] = bootstrap;
                with(
                    "postgresql.cnpg.io/v1",
                    "Cluster",
                    metadata,
                    json!({ "spec": spec }),
                )
            }
            Object::Other {
                api_version,
                kind,
                metadata,
                body,
            } => {
                let rest = Value::Object(
                    body.iter()
                        .map(|(k, v)| (k.string(), v.to_json()))
                        .collect(),
                );
                with(&api_version.string(), &kind.string(), metadata, rest)
            }
        }
    }
}

/// The admission operations a policy sees.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// One fuzz case: the object under review, cluster state for context-aware rules, and which
/// of the policy's fixture settings to use (0: the defaults).
#[derive(Debug, Arbitrary)]
pub struct Case {
    pub operation: Operation,
    pub object: Object,
    pub context: Vec<Object>,
    pub settings: u8,
}
