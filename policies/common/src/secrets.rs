//! Recognising credentials in text: sensitive names, passwords in URLs and command-line flags,
//! well-known token formats, weak placeholder values.
//!
//! Nothing here returns or formats a secret value for display: callers get kinds and names.

use regex_lite::Regex;
use std::sync::OnceLock;

/// Words that make a name sensitive (after splitting on `_`, `-`, `.`, camelCase).
const SENSITIVE_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "authtoken",
    "pass",
];

/// Word pairs that are sensitive together (`API_KEY`, `PRIVATE_KEY`, …).
const SENSITIVE_PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("private", "key"),
    ("encryption", "key"),
    ("signing", "key"),
    ("master", "key"),
    ("client", "secret"),
    // `auth` alone is too often a name part (`sos_app_auth`); these are credentials.
    ("redis", "auth"),
    ("rediscli", "auth"),
    ("basic", "auth"),
    ("http", "auth"),
];

/// Suffixes of single words that carry a password (`PGPASSWORD`, `dbpassword`, `clientsecret`).
const SENSITIVE_SUFFIXES: &[&str] = &["password", "passwd", "secret", "token"];

/// Words that may follow a sensitive word and keep it sensitive (`SECRET_KEY`, `TOKEN_VALUE`).
const VALUE_WORDS: &[&str] = &[
    "key", "value", "text", "plain", "string", "str", "b64", "base64", "raw", "data", "access",
];

/// Split a name into lower-case words: `spring.datasource.password`, `DB_PASSWORD_FILE`,
/// `dbPassword`, `redis-auth`.
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// True when `name` names a credential: a sensitive word (or pair) that is the last word or is
/// followed only by value words. `PASSWORD_MIN_LENGTH`, `DB_PASSWORD_FILE`, `AUTH_URL` are not.
pub fn is_sensitive_name(name: &str) -> bool {
    let w = words(name);
    let tail_ok = |from: usize| w[from..].iter().all(|x| VALUE_WORDS.contains(&x.as_str()));
    for (i, word) in w.iter().enumerate() {
        let single = SENSITIVE_WORDS.contains(&word.as_str())
            || SENSITIVE_SUFFIXES
                .iter()
                .any(|s| word.len() > s.len() + 1 && word.ends_with(s));
        if single && tail_ok(i + 1) {
            return true;
        }
        if let Some(next) = w.get(i + 1)
            && SENSITIVE_PAIRS.contains(&(word.as_str(), next.as_str()))
            && tail_ok(i + 2)
        {
            return true;
        }
    }
    false
}

/// How a credential-carrying value is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueForm {
    /// Clear text.
    Literal,
    /// Only a Kubernetes `$(VAR)` reference.
    KubeRef(String),
    /// A shell/template expansion (`$VAR`, `${VAR}`, `{{ .x }}`, `%s`, `<password>`): not a value.
    Reference,
    /// Empty, a boolean, a number, an e-mail address or a file path: not a secret.
    NotSecret,
}

/// Classify a value found under a sensitive name.
pub fn classify(value: &str) -> ValueForm {
    let v = value.trim();
    if let Some(inner) = v.strip_prefix("$(").and_then(|r| r.strip_suffix(')'))
        && !inner.is_empty()
        && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return ValueForm::KubeRef(inner.to_string());
    }
    if v.is_empty()
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "none" | "~"
        )
        || v.parse::<f64>().is_ok()
        || is_email(v)
        || is_file_path(v)
    {
        return ValueForm::NotSecret;
    }
    let is_shell_ref = (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with('$')
            && v.len() > 1
            && v[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let is_template = (v.starts_with("{{") && v.ends_with("}}"))
        || (v.starts_with('<') && v.ends_with('>') && !v.contains(' '))
        || v == "%s"
        || v.chars().all(|c| c == '*');
    if is_shell_ref || is_template {
        return ValueForm::Reference;
    }
    ValueForm::Literal
}

fn is_email(v: &str) -> bool {
    let Some((user, domain)) = v.split_once('@') else {
        return false;
    };
    !user.is_empty()
        && !user.contains([':', '/', ' '])
        && domain.contains('.')
        && !domain.starts_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn is_file_path(v: &str) -> bool {
    (v.starts_with('/') || v.starts_with("./")) && v.len() > 1 && !v.contains(char::is_whitespace)
}

/// A password in the userinfo of a URL (`scheme://user:password@host…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPassword {
    /// Lower-case scheme, e.g. `postgresql`.
    pub scheme: String,
    pub form: ValueForm,
}

/// Every URL in `text` whose userinfo holds a non-empty password. Multi-host authorities
/// (`mongodb://u:p@h1,h2/?replicaSet=rs`) and unencoded `@` in the password are handled: the
/// userinfo ends at the last `@` before the path.
pub fn url_passwords(text: &str) -> Vec<UrlPassword> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let before = &rest[..pos];
        let scheme_start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = before[scheme_start..].to_ascii_lowercase();
        let after = &rest[pos + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '`'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        if !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && let Some(at) = authority.rfind('@')
            && let Some((_, password)) = authority[..at].split_once(':')
            && !password.is_empty()
        {
            let form = match classify(password) {
                ValueForm::NotSecret => ValueForm::Literal,
                f => f,
            };
            out.push(UrlPassword { scheme, form });
        }
        rest = &after[end..];
    }
    out
}

/// A password given on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagPassword {
    /// The flag as written without its value, e.g. `--requirepass` or `-a`.
    pub flag: String,
    pub form: ValueForm,
}

/// Long flags whose value is a credential.
const PASSWORD_FLAGS: &[&str] = &[
    "--password",
    "--pass",
    "--passwd",
    "--requirepass",
    "--masterauth",
    "--token",
    "--api-key",
    "--apikey",
    "--secret",
    "--client-secret",
    "--auth",
];

/// Password-carrying flags in one command line (`argv[0]` is the program).
/// `--password=x`, `--password x`, any `--…-password`, `-a x` / `-ax` for redis-cli,
/// `-pX` for mysql.
pub fn flag_passwords(argv: &[String]) -> Vec<FlagPassword> {
    let program = argv
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("");
    let redis_cli = matches!(program, "redis-cli" | "valkey-cli" | "keydb-cli");
    let mysql = matches!(program, "mysql" | "mysqladmin" | "mysqldump" | "mariadb");
    let mut out = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        let push = |out: &mut Vec<FlagPassword>, flag: &str, v: &str| {
            out.push(FlagPassword {
                flag: flag.to_string(),
                form: classify(v),
            })
        };
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let flag = format!("--{name}");
            let sensitive = PASSWORD_FLAGS.contains(&flag.as_str())
                || name.ends_with("-password")
                || name.ends_with("-secret")
                || name.ends_with("-token");
            if sensitive {
                match inline {
                    Some(v) => push(&mut out, &flag, v),
                    None => {
                        if let Some(v) = argv.get(i + 1).filter(|v| !v.starts_with("--")) {
                            push(&mut out, &flag, v);
                            i += 1;
                        }
                    }
                }
            }
        } else if redis_cli && a == "-a" {
            if let Some(v) = argv.get(i + 1) {
                push(&mut out, "-a", v);
                i += 1;
            }
        } else if redis_cli && a.len() > 2 && a.starts_with("-a") {
            push(&mut out, "-a", &a[2..]);
        } else if mysql && a.len() > 2 && a.starts_with("-p") {
            push(&mut out, "-p", &a[2..]);
        }
        i += 1;
    }
    out.retain(|f| !matches!(f.form, ValueForm::NotSecret));
    out
}

/// Well-known token formats: what they are, literal markers one of which every match contains
/// (a cheap test before the regex runs), and the pattern.
const TOKENS: &[(&str, &[&str], &str)] = &[
    (
        "a private key (PEM)",
        &["-----BEGIN"],
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    ),
    (
        "an AWS access key",
        &["AKIA", "ASIA", "AROA", "AIDA"],
        r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b",
    ),
    ("a GitHub token", &["gh"], r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    (
        "a GitHub token",
        &["github_pat_"],
        r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
    ),
    (
        "a GitLab token",
        &["glpat-"],
        r"\bglpat-[A-Za-z0-9_\-]{20,}",
    ),
    (
        "a Slack token",
        &["xox"],
        r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    ),
    (
        "a JWT bearer token",
        &["eyJ"],
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
];

/// The compiled [`TOKENS`] patterns, once per process (module instance).
fn token_regexes() -> &'static [Regex] {
    static SET: OnceLock<Vec<Regex>> = OnceLock::new();
    SET.get_or_init(|| {
        TOKENS
            .iter()
            .map(|(_, _, p)| Regex::new(p).expect("token patterns are valid"))
            .collect()
    })
}

/// The kinds of well-known secret formats present in `text` (deduplicated, stable order).
pub fn token_kinds(text: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for ((kind, markers, _), re) in TOKENS.iter().zip(token_regexes()) {
        if markers.iter().any(|m| text.contains(m)) && re.is_match(text) && !kinds.contains(kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// Well-known weak or placeholder passwords (compared case-insensitively, ignoring `_`/`-`).
pub const WEAK_VALUES: &[&str] = &[
    "changeme",
    "changeit",
    "password",
    "passw0rd",
    "password1",
    "password123",
    "postgres",
    "postgres123",
    "admin",
    "admin123",
    "root",
    "secret",
    "test",
    "default",
    "example",
    "letmein",
    "qwerty",
    "123456",
    "12345678",
    "redis",
    "mysql",
    "todo",
    "replaceme",
    "yourpassword",
    "mypassword",
];

/// Why a secret value is weak, or `None`. `extra` extends the built-in list.
pub fn weakness(value: &str, min_len: usize, extra: &[String]) -> Option<&'static str> {
    let v = value.trim();
    let norm: String = v
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    let listed = WEAK_VALUES.contains(&norm.as_str())
        || extra.iter().any(|e| {
            let e: String = e
                .chars()
                .filter(|c| !matches!(c, '_' | '-' | ' '))
                .flat_map(char::to_lowercase)
                .collect();
            e == norm
        });
    if listed {
        Some("a well-known default or placeholder")
    } else if (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with("${") && v.ends_with('}'))
        || (v.len() >= 3 && v.chars().all(|c| c == 'x' || c == 'X' || c == '*'))
    {
        Some("a placeholder")
    } else if v.chars().count() < min_len {
        Some("too short")
    } else {
        None
    }
}

/// Decode standard base64 (padding optional, whitespace ignored), as in a Secret's `data`.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padding = false;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding = true;
                continue;
            }
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        if padding {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

/// `key = value` / `key: value` / `"key": "value",` / `export KEY=value` lines of an `.env`,
/// properties, YAML or JSON file: (1-based line, key, value). Comments are skipped.
pub fn key_value_lines(text: &str) -> Vec<(usize, &str, &str)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim().trim_start_matches("- ");
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with("//")
            || line.starts_with('!')
        {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let sep = line.find(['=', ':']);
        let Some(sep) = sep else { continue };
        let key = line[..sep].trim().trim_matches(|c| c == '"' || c == '\'');
        let mut value = line[sep + 1..].trim();
        value = value.strip_suffix(',').unwrap_or(value).trim();
        if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            value = &value[1..value.len() - 1];
        }
        let structural = matches!(value, "|" | "|-" | "|+" | ">" | ">-" | ">+" | "{" | "[");
        if key.is_empty()
            || key.contains(char::is_whitespace)
            || value.starts_with("//")
            || structural
        {
            continue;
        }
        out.push((n + 1, key, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names() {
        for n in [
            "PASSWORD",
            "POSTGRES_PASSWORD",
            "dbPassword",
            "PGPASSWORD",
            "spring.datasource.password",
            "redis-auth",
            "API_KEY",
            "apiKey",
            "APIKEY",
            "PRIVATE_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "SECRET_KEY",
            "GITHUB_TOKEN",
            "AUTH_TOKEN",
            "DB_CREDENTIALS",
            "MYSQL_PWD",
            "client_secret",
            "DB_PASS",
            "REDISCLI_AUTH",
        ] {
            assert!(is_sensitive_name(n), "{n} should be sensitive");
        }
        for n in [
            "PASSWORD_MIN_LENGTH",
            "DB_PASSWORD_FILE",
            "COMPASS",
            "BYPASS_CACHE",
            "TOKENIZER_MODEL",
            "SECRETARY",
            "AUTH_URL",
            "AUTH_SERVICE_HOST",
            "AWS_ACCESS_KEY_ID",
            "USERNAME",
            "CACHE_KEY",
            "PASSWORD_POLICY",
            "sos_app_auth",
            "PASS_THROUGH_HEADERS",
        ] {
            assert!(!is_sensitive_name(n), "{n} should not be sensitive");
        }
    }

    #[test]
    fn value_forms() {
        assert_eq!(classify("s3cr3t-value"), ValueForm::Literal);
        assert_eq!(classify("$(DB_PASS)"), ValueForm::KubeRef("DB_PASS".into()));
        for v in ["", "true", "8", "3.5", "ops@example.com", "/run/secrets/db"] {
            assert_eq!(classify(v), ValueForm::NotSecret, "{v}");
        }
        for v in [
            "${DB_PASS}",
            "$DB_PASS",
            "{{ .Values.pw }}",
            "<password>",
            "****",
        ] {
            assert_eq!(classify(v), ValueForm::Reference, "{v}");
        }
    }

    #[test]
    fn urls() {
        let u = url_passwords("postgresql://app:pa55@db:5432/x and redis://:r3dis@cache:6379/0");
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].scheme, "postgresql");
        assert_eq!(u[1].scheme, "redis");
        let m = url_passwords("mongodb://u:p@ss@h1:27017,h2:27017/?replicaSet=rs");
        assert_eq!(
            m,
            vec![UrlPassword {
                scheme: "mongodb".into(),
                form: ValueForm::Literal
            }]
        );
        assert_eq!(
            url_passwords("amqp://guest:$(RABBIT_PW)@mq")[0].form,
            ValueForm::KubeRef("RABBIT_PW".into())
        );
        assert!(url_passwords("https://example.com/a:b@c").is_empty());
        assert!(url_passwords("postgresql://app@db/x").is_empty());
        assert!(url_passwords("redis://:@cache").is_empty());
        assert!(url_passwords("://x:y@z").is_empty());
        assert_eq!(url_passwords("é€redis://:pw@h")[0].scheme, "redis");
        assert!(url_passwords("€://x:y@z").is_empty());
    }

    #[test]
    fn flags() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let f = flag_passwords(&argv(
            "redis-server /etc/r.conf --requirepass abc --port 6379",
        ));
        assert_eq!(f[0].flag, "--requirepass");
        assert_eq!(
            flag_passwords(&argv("app --db-password=xyz"))[0].flag,
            "--db-password"
        );
        assert_eq!(flag_passwords(&argv("redis-cli -a pw ping"))[0].flag, "-a");
        assert_eq!(flag_passwords(&argv("redis-cli -apw ping"))[0].flag, "-a");
        assert!(flag_passwords(&argv("grep -a x")).is_empty());
        assert!(
            flag_passwords(&argv("app --password $(PW)"))[0].form
                == ValueForm::KubeRef("PW".into())
        );
        assert!(flag_passwords(&argv("app --password-file /run/s/pw")).is_empty());
        assert_eq!(flag_passwords(&argv("mysql -psecretpw"))[0].flag, "-p");
    }

    #[test]
    fn tokens() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE...";
        assert_eq!(token_kinds(pem), vec!["a private key (PEM)"]);
        assert_eq!(
            token_kinds("key AKIAIOSFODNN7EXAMPLE here"),
            vec!["an AWS access key"]
        );
        assert_eq!(
            token_kinds("ghp_0123456789abcdefghijABCDEFGHIJ012345"),
            vec!["a GitHub token"]
        );
        assert_eq!(
            token_kinds("glpat-abcdefghij0123456789"),
            vec!["a GitLab token"]
        );
        assert_eq!(token_kinds("xoxb-1234567890-abcdef"), vec!["a Slack token"]);
        assert_eq!(
            token_kinds("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlXzEy"),
            vec!["a JWT bearer token"]
        );
        assert!(token_kinds("-----BEGIN PUBLIC KEY-----").is_empty());
        assert!(token_kinds("the ghost_writer").is_empty());
    }

    #[test]
    fn weak_values() {
        let none: &[String] = &[];
        for v in [
            "changeme",
            "CHANGE_ME",
            "Password",
            "postgres123",
            "admin",
            "<password>",
            "xxxx",
        ] {
            assert!(weakness(v, 12, none).is_some(), "{v}");
        }
        assert_eq!(weakness("short", 12, none), Some("too short"));
        assert_eq!(weakness("kV9#pL2!wQ7@zR4$", 12, none), None);
        assert!(weakness("corp-default-pw-2024", 12, &["corp_default_pw_2024".into()]).is_some());
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("cG9zdGdyZXMxMjM=").unwrap(), b"postgres123");
        assert_eq!(decode_base64("YWRtaW4").unwrap(), b"admin");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("not base64!").is_none());
        assert!(decode_base64("YQ=x").is_none());
    }

    #[test]
    fn key_values() {
        let text = "# c\nspring.datasource.password=pw1\nexport DB_PASS='x'\n  \"password\": \"y\",\nredis:\n  auth: z\nnot a pair\n";
        let kv = key_value_lines(text);
        let keys: Vec<_> = kv.iter().map(|k| k.1).collect();
        assert_eq!(
            keys,
            vec![
                "spring.datasource.password",
                "DB_PASS",
                "password",
                "redis",
                "auth"
            ]
        );
        assert_eq!(kv[2].2, "y");
        assert_eq!(kv[0].0, 2);
    }
}
