//! Secrets of the stack: templates (`secrets.template.yaml`) say which keys to generate; values
//! come from the operating system's CSPRNG, are stored 0600 (local target) or as Kubernetes
//! Secrets (kube target), are never overwritten and never printed.

use super::stack::Manifest;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The annotation listing the keys to generate: `key[:length],…`.
pub const GENERATE_ANNOTATION: &str = "stackguard.io/generate";
const DEFAULT_LENGTH: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(s: String) -> Self {
        SecretValue(s)
    }
    /// The value itself: only for handing it to a client or a file, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a template asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub name: String,
    pub namespace: String,
    pub type_: String,
    /// `stringData` copied as it is (non-secret values such as user names).
    pub literals: BTreeMap<String, String>,
    /// Keys to generate and their length.
    pub generate: Vec<(String, usize)>,
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl SecretSpec {
    pub fn from_template(m: &Manifest) -> Result<SecretSpec> {
        let name = m.name();
        if name.is_empty() {
            bail!("{}: a Secret template without metadata.name", m.source);
        }
        if m.object.get("data").is_some() {
            bail!(
                "{}: Secret {name}: a template has no `data`; list generated keys in the \
                 {GENERATE_ANNOTATION} annotation",
                m.source
            );
        }
        let mut literals = BTreeMap::new();
        if let Some(sd) = m.object.get("stringData").and_then(Value::as_object) {
            for (k, v) in sd {
                let Some(s) = v.as_str() else {
                    bail!(
                        "{}: Secret {name}: stringData.{k} is not a string",
                        m.source
                    );
                };
                literals.insert(k.clone(), s.to_string());
            }
        }
        let mut generate = Vec::new();
        let ann = m.str_at(&["metadata", "annotations", GENERATE_ANNOTATION]);
        for item in ann.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, len) = match item.split_once(':') {
                Some((k, l)) => {
                    let len: usize = l.trim().parse().ok().filter(|n| (8..=4096).contains(n)).with_context(|| {
                        format!("{}: Secret {name}: {GENERATE_ANNOTATION}: length of `{}` must be a number from 8 to 4096", m.source, k.trim())
                    })?;
                    (k.trim(), len)
                }
                None => (item, DEFAULT_LENGTH),
            };
            if !valid_key(key) {
                bail!(
                    "{}: Secret {name}: {GENERATE_ANNOTATION}: `{key}` is not a valid Secret key",
                    m.source
                );
            }
            if literals.contains_key(key) || generate.iter().any(|(k, _)| k == key) {
                bail!("{}: Secret {name}: key {key} is listed twice", m.source);
            }
            generate.push((key.to_string(), len));
        }
        if let Some(bad) = literals.keys().find(|k| !valid_key(k)) {
            bail!(
                "{}: Secret {name}: `{bad}` is not a valid Secret key",
                m.source
            );
        }
        if generate.is_empty() && literals.is_empty() {
            bail!(
                "{}: Secret {name}: nothing to generate (no {GENERATE_ANNOTATION} annotation)",
                m.source
            );
        }
        Ok(SecretSpec {
            name: name.to_string(),
            namespace: m.namespace().to_string(),
            type_: match m.str_at(&["type"]) {
                "" => "Opaque".to_string(),
                t => t.to_string(),
            },
            literals,
            generate,
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.literals
            .keys()
            .map(String::as_str)
            .chain(self.generate.iter().map(|(k, _)| k.as_str()))
    }
}

/// A random alphanumeric string from the OS CSPRNG (rejection sampling: no modulo bias).
pub fn random_token(len: usize) -> Result<SecretValue> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)
            .map_err(|e| anyhow::anyhow!("the system random generator failed: {e}"))?;
        for &b in &buf {
            // 62 * 4 = 248: bytes at or above it would favour the first letters.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(SecretValue(out))
}

/// What to do about one Secret, given the keys it already has (`None`: it does not exist).
#[derive(Debug, PartialEq, Eq)]
pub enum SecretPlan {
    /// Everything is there: leave it alone.
    Keep,
    /// Create the Secret with these values.
    Create(BTreeMap<String, SecretValue>),
    /// The Secret exists but lacks keys: add exactly these, keep every existing value.
    AddKeys(BTreeMap<String, SecretValue>),
}

pub fn plan(
    spec: &SecretSpec,
    existing: Option<&BTreeSet<String>>,
    mut generate: impl FnMut(usize) -> Result<SecretValue>,
) -> Result<SecretPlan> {
    let mut values = BTreeMap::new();
    for (k, v) in &spec.literals {
        if existing.is_none_or(|e| !e.contains(k)) {
            values.insert(k.clone(), SecretValue(v.clone()));
        }
    }
    for (k, len) in &spec.generate {
        if existing.is_none_or(|e| !e.contains(k)) {
            values.insert(k.clone(), generate(*len)?);
        }
    }
    Ok(match existing {
        None => SecretPlan::Create(values),
        Some(_) if values.is_empty() => SecretPlan::Keep,
        Some(_) => SecretPlan::AddKeys(values),
    })
}

/// Secrets of the local target: `<dir>/<secret>/<key>`, directories 0700, files 0600.
pub struct LocalSecrets {
    pub dir: PathBuf,
    /// Owner of the files (the service user) when running as root.
    pub owner: Option<(u32, u32)>,
}

impl LocalSecrets {
    pub fn secret_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn existing_keys(&self, name: &str) -> Result<Option<BTreeSet<String>>> {
        let d = self.secret_dir(name);
        if !d.exists() {
            return Ok(None);
        }
        let mut keys = BTreeSet::new();
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            if let Some(n) = e.file_name().to_str() {
                keys.insert(n.to_string());
            }
        }
        Ok(Some(keys))
    }

    /// Create what is missing; returns how many keys were written.
    pub fn ensure(&self, spec: &SecretSpec) -> Result<usize> {
        let existing = self.existing_keys(&spec.name)?;
        let values = match plan(spec, existing.as_ref(), random_token)? {
            SecretPlan::Keep => return Ok(0),
            SecretPlan::Create(v) | SecretPlan::AddKeys(v) => v,
        };
        make_private_dir(&self.dir, self.owner)?;
        let d = self.secret_dir(&spec.name);
        make_private_dir(&d, self.owner)?;
        for (k, v) in &values {
            write_private(&d.join(k), v.expose().as_bytes(), self.owner)?;
        }
        Ok(values.len())
    }

    pub fn path(&self, name: &str, key: &str) -> PathBuf {
        self.secret_dir(name).join(key)
    }

    pub fn read(&self, name: &str, key: &str) -> Result<SecretValue> {
        let p = self.path(name, key);
        let s = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading secret file {} (run `stackguard deploy` first)",
                p.display()
            )
        })?;
        Ok(SecretValue(s.trim_end_matches('\n').to_string()))
    }
}

/// Create a directory with mode 0700 (if missing) owned by `owner`.
pub fn make_private_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .with_context(|| format!("changing the owner of {}", dir.display()))?;
    }
    Ok(())
}

/// Write a new file with mode 0600 (it must not exist: secrets are never overwritten).
pub fn write_private(path: &Path, bytes: &[u8], owner: Option<(u32, u32)>) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("changing the owner of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SecretSpec {
        SecretSpec {
            name: "db".into(),
            namespace: "ns".into(),
            type_: "Opaque".into(),
            literals: BTreeMap::from([("username".to_string(), "app".to_string())]),
            generate: vec![("password".into(), 24), ("keyfile".into(), 756)],
        }
    }

    fn keys(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_secret_is_created_with_every_key() {
        let p = plan(&spec(), None, random_token).unwrap();
        let SecretPlan::Create(v) = p else {
            panic!("expected Create, got {p:?}")
        };
        assert_eq!(
            v.keys().map(String::as_str).collect::<Vec<_>>(),
            ["keyfile", "password", "username"]
        );
        assert_eq!(v["password"].expose().len(), 24);
        assert_eq!(v["keyfile"].expose().len(), 756);
        assert_eq!(v["username"].expose(), "app");
    }

    #[test]
    fn complete_secret_is_kept_and_nothing_is_generated() {
        let mut calls = 0;
        let p = plan(
            &spec(),
            Some(&keys(&["username", "password", "keyfile", "extra"])),
            |n| {
                calls += 1;
                random_token(n)
            },
        )
        .unwrap();
        assert_eq!(p, SecretPlan::Keep);
        assert_eq!(calls, 0);
    }

    #[test]
    fn only_missing_keys_are_added() {
        let p = plan(&spec(), Some(&keys(&["password"])), random_token).unwrap();
        let SecretPlan::AddKeys(v) = p else {
            panic!("expected AddKeys, got {p:?}")
        };
        assert_eq!(
            v.keys().map(String::as_str).collect::<Vec<_>>(),
            ["keyfile", "username"]
        );
    }

    #[test]
    fn tokens_are_alphanumeric_and_differ() {
        let a = random_token(64).unwrap();
        let b = random_token(64).unwrap();
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "<redacted>");
    }

    #[test]
    fn local_secrets_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("stackguard-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = LocalSecrets {
            dir: dir.clone(),
            owner: None,
        };
        assert_eq!(store.ensure(&spec()).unwrap(), 3);
        let first = store.read("db", "password").unwrap();
        let mode = std::fs::metadata(store.path("db", "password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(store.secret_dir("db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert_eq!(store.ensure(&spec()).unwrap(), 0);
        assert_eq!(store.read("db", "password").unwrap(), first);
        std::fs::remove_file(store.path("db", "keyfile")).unwrap();
        assert_eq!(store.ensure(&spec()).unwrap(), 1);
        assert_eq!(store.read("db", "password").unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
