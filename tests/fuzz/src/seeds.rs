//! Seed corpora, generated (never committed): every target starts from what the fixtures and
//! the shared real-world corpus hold for it. Run a target with `STACKGUARD_FUZZ_SEEDS=<dir>`
//! and it writes its seeds there and exits (see [`crate::init`]); `make fuzz` does this.

use serde_json::Value;
use stackguard::admission::{Op, request_for};
use stackguard::manifest::{self, Input};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Seeds above this size are left out (libFuzzer would cut them at `-max_len` anyway).
pub const MAX_SEED: usize = 64 * 1024;

/// The repository root (this crate lives in `tests/fuzz`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Manifest files under `fixtures/` and `../shared/corpus` (when present), sorted.
fn manifest_files() -> Vec<PathBuf> {
    let root = repo_root();
    let dirs = [root.join("fixtures"), root.join("../shared/corpus")];
    let existing: Vec<PathBuf> = dirs.into_iter().filter(|d| d.is_dir()).collect();
    let (inputs, _) = manifest::discover(&existing, &[]);
    inputs
        .into_iter()
        .filter_map(|i| match i {
            Input::File(p) => Some(p),
            Input::Stdin => None,
        })
        .collect()
}

/// Every object of every manifest file (fixture headers included: they are documents too).
fn objects(files: &[PathBuf]) -> Vec<Value> {
    let mut out = Vec::new();
    for f in files {
        let Ok(src) = manifest::read(&Input::File(f.clone())) else {
            continue;
        };
        out.extend(
            manifest::parse(0, &src)
                .objects
                .into_iter()
                .map(|o| o.value),
        );
    }
    out
}

/// String values of the data keys (ConfigMap `data`, Secret `stringData`) whose names end
/// with one of `suffixes`.
fn data_values(objects: &[Value], suffixes: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        for field in ["data", "stringData"] {
            let Some(map) = o.get(field).and_then(Value::as_object) else {
                continue;
            };
            for (k, v) in map {
                if let Some(s) = v
                    .as_str()
                    .filter(|_| suffixes.iter().any(|x| k.ends_with(x)))
                {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

/// Every value under the keys named `key`, anywhere in the objects.
fn values_under<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == key {
                    out.push(child);
                }
                values_under(child, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| values_under(c, key, out)),
        _ => {}
    }
}

fn strings_under(objects: &[Value], key: &str) -> Vec<String> {
    let mut found = Vec::new();
    for o in objects {
        values_under(o, key, &mut found);
    }
    found
        .into_iter()
        .flat_map(|v| match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Container `command` + `args` joined as a shell line.
fn command_lines(objects: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    for o in objects {
        values_under(o, "containers", &mut found);
    }
    let words = |c: &Value, k: &str| -> Vec<String> {
        c.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    found
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .map(|c| {
            let mut w = words(c, "command");
            w.extend(words(c, "args"));
            w.join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Quantities under `requests` and `limits` (strings and bare numbers).
fn quantities(objects: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    for o in objects {
        values_under(o, "requests", &mut found);
        values_under(o, "limits", &mut found);
    }
    found
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.values())
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// Settings seeds: `[policy index] + settings JSON`, from `fixtures/<policy>/settings.yaml`
/// (valid and invalid cases) and the fixture headers.
fn settings(files: &[PathBuf]) -> Vec<Vec<u8>> {
    let root = repo_root().join("fixtures");
    let mut out = Vec::new();
    for (i, entry) in crate::POLICIES.iter().enumerate() {
        let dir = root.join(entry.name);
        for f in files.iter().filter(|f| f.starts_with(&dir)) {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            let Ok(docs) = stackguard::yaml::values(&text) else {
                continue;
            };
            let mut found = Vec::new();
            for d in &docs {
                values_under(d, "settings", &mut found);
            }
            for s in found {
                let mut seed = vec![i as u8];
                seed.extend(s.to_string().into_bytes());
                out.push(seed);
            }
        }
    }
    out
}

/// `validate` payloads: each fixture object with its header's settings, each corpus object
/// with the defaults.
fn payloads(files: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let Ok(docs) = stackguard::yaml::values(&text) else {
            continue;
        };
        let header_settings = docs
            .first()
            .filter(|h| h.get("expect").is_some())
            .and_then(|h| h.get("settings").cloned())
            .unwrap_or(Value::Null);
        for d in docs.iter().filter(|d| d.get("kind").is_some()) {
            let payload = serde_json::json!({
                "request": request_for(d, Op::Create, "seed"),
                "settings": header_settings,
            });
            out.push(payload.to_string().into_bytes());
        }
    }
    out
}

/// JSONPath seeds: `query\ndocument` for the fixture objects and queries users write.
fn jsonpath(objects: &[Value]) -> Vec<Vec<u8>> {
    const QUERIES: &[&str] = &[
        "$.spec.bootstrap.initdb.postInitSQL[*]",
        "$..image",
        "$.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']",
        "$.spec.template.spec.containers[0:2].env[*].value",
        "$..containers[-1:]",
        "$['data'][*]",
        "$..[0]",
        "$.*",
    ];
    let mut out: Vec<Vec<u8>> = strings_under(objects, "extraPaths")
        .into_iter()
        .map(String::into_bytes)
        .collect();
    for (o, q) in objects.iter().zip(QUERIES.iter().cycle()) {
        out.push(format!("{q}\n{o}").into_bytes());
    }
    out
}

/// The objects written as one line of JSON per document, three documents per stream (what
/// `yaml::json_line` reads without libyaml).
fn json_lines(objects: &[Value]) -> Vec<Vec<u8>> {
    objects
        .chunks(3)
        .map(|docs| {
            docs.iter()
                .map(|d| format!("---\n{d}\n"))
                .collect::<String>()
                .into_bytes()
        })
        .collect()
}

/// The seeds of one target.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let files = manifest_files();
    let texts = |v: Vec<String>| v.into_iter().map(String::into_bytes).collect();
    match target {
        "yaml" | "fix" => {
            let mut v: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
            v.extend(json_lines(&objects(&files)));
            v
        }
        "sql" => {
            let objects = objects(&files);
            let mut v = data_values(&objects, &[".sql"]);
            v.extend(strings_under(&objects, "postInitSQL"));
            v.extend(strings_under(&objects, "postInitApplicationSQL"));
            texts(v)
        }
        "shell" => {
            let objects = objects(&files);
            let mut v = data_values(&objects, &[".sh"]);
            v.extend(command_lines(&objects));
            texts(v)
        }
        "redisconf" => {
            let objects = objects(&files);
            let mut v = data_values(&objects, &[".conf"]);
            v.extend(
                command_lines(&objects)
                    .into_iter()
                    .filter(|l| l.contains("redis")),
            );
            texts(v)
        }
        "quantity" => texts(quantities(&objects(&files))),
        "jsonpath" => jsonpath(&objects(&files)),
        "settings" => settings(&files),
        "evaluate_raw" => payloads(&files),
        _ => Vec::new(),
    }
}

/// Write the seeds of `target` to `dir` (one file per distinct seed, named by its hash).
pub fn write(target: &str, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).expect("seed directory");
    let distinct: BTreeSet<Vec<u8>> = seeds(target)
        .into_iter()
        .filter(|s| !s.is_empty() && s.len() <= MAX_SEED)
        .collect();
    for s in &distinct {
        std::fs::write(dir.join(format!("seed-{:016x}", crate::hash(s))), s).expect("seed file");
    }
    distinct.len()
}
