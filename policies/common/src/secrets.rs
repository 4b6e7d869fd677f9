//! Recognising credentials in text: sensitive names, passwords in URLs and command-line flags,
//! well-known token formats, weak placeholder values.
//!
//! Nothing here returns or formats a secret value for display: callers get kinds and names.

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

/// What follows a token format's literal start.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A run of `class` bytes, at least `min` long (`max`: exactly up to that many are read),
    /// then, with `boundary`, a non-word character or the end.
    Run {
        class: fn(u8) -> bool,
        min: usize,
        max: Option<usize>,
        boundary: bool,
    },
    /// `(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----` after `-----BEGIN `.
    PemLabel,
    /// `[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}` after `eyJ`.
    JwtRest,
}

/// A well-known token format: what it is, its literal starts (at a word boundary, except
/// PEM's), and what must follow. Each is the hand-written, linear-time form of the regex beside
/// it (`tokens_agree_with_their_regexes` checks them against `regex-lite`): a regex engine
/// without literal optimisations took seconds on a 3 MiB value full of near-misses.
struct TokenFormat {
    kind: &'static str,
    starts: &'static [&'static str],
    shape: Shape,
    #[cfg(test)]
    regex: &'static str,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn upper_or_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn alphanumeric(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn word_or_dash(b: u8) -> bool {
    is_word(b) || b == b'-'
}

fn alphanumeric_or_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

const TOKENS: &[TokenFormat] = &[
    TokenFormat {
        kind: "a private key (PEM)",
        starts: &["-----BEGIN "],
        shape: Shape::PemLabel,
        #[cfg(test)]
        regex: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    },
    TokenFormat {
        kind: "an AWS access key",
        starts: &["AKIA", "ASIA", "AROA", "AIDA"],
        shape: Shape::Run {
            class: upper_or_digit,
            min: 16,
            max: Some(16),
            boundary: true,
        },
        #[cfg(test)]
        regex: r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b",
    },
    TokenFormat {
        kind: "a GitHub token",
        starts: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        shape: Shape::Run {
            class: alphanumeric,
            min: 36,
            max: None,
            boundary: true,
        },
        #[cfg(test)]
        regex: r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    },
    TokenFormat {
        kind: "a GitHub token",
        starts: &["github_pat_"],
        shape: Shape::Run {
            class: is_word,
            min: 22,
            max: None,
            boundary: true,
        },
        #[cfg(test)]
        regex: r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
    },
    TokenFormat {
        kind: "a GitLab token",
        starts: &["glpat-"],
        shape: Shape::Run {
            class: word_or_dash,
            min: 20,
            max: None,
            boundary: false,
        },
        #[cfg(test)]
        regex: r"\bglpat-[A-Za-z0-9_\-]{20,}",
    },
    TokenFormat {
        kind: "a Slack token",
        starts: &["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"],
        shape: Shape::Run {
            class: alphanumeric_or_dash,
            min: 10,
            max: None,
            boundary: false,
        },
        #[cfg(test)]
        regex: r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    },
    TokenFormat {
        kind: "a JWT bearer token",
        starts: &["eyJ"],
        shape: Shape::JwtRest,
        #[cfg(test)]
        regex: r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    },
];

/// Length of the run of `class` bytes at the start of `b`.
fn run(b: &[u8], class: fn(u8) -> bool) -> usize {
    b.iter().take_while(|&&c| class(c)).count()
}

/// Does `rest` (the text after a start) complete the shape? `Err(n)`: it does not, and no
/// start within the next `n` bytes can either (their runs are the tail of this one).
fn completes(shape: Shape, rest: &[u8]) -> Result<(), usize> {
    match shape {
        Shape::Run {
            class,
            min,
            max,
            boundary,
        } => {
            let limit = max.map_or(rest.len(), |m| m.min(rest.len()));
            let n = run(&rest[..limit], class);
            let after_ok = !boundary || rest.get(n).is_none_or(|&c| !is_word(c));
            if n >= min && after_ok { Ok(()) } else { Err(n) }
        }
        Shape::PemLabel => {
            let label_len = run(rest, |c| upper_or_digit(c) || c == b' ');
            let label = &rest[..label_len];
            if !rest[label_len..].starts_with(b"-----") {
                return Err(label_len);
            }
            let body = label.strip_suffix(b" BLOCK").unwrap_or(label);
            let words = match body.strip_suffix(b"PRIVATE KEY") {
                Some(w) => w,
                None => return Err(label_len),
            };
            // `(?:[A-Z0-9]+ )*`: words, each followed by exactly one space.
            let ok = words.is_empty()
                || (words.ends_with(b" ")
                    && words[..words.len() - 1]
                        .split(|&c| c == b' ')
                        .all(|w| !w.is_empty()));
            if ok { Ok(()) } else { Err(label_len) }
        }
        Shape::JwtRest => {
            // Each part runs to the next `.` (which the class excludes), so parts are whole runs.
            let part = |b: &[u8]| run(b, word_or_dash);
            let first = part(rest);
            let fail = Err(first);
            if first < 8 || rest.get(first) != Some(&b'.') {
                return fail;
            }
            let second = &rest[first + 1..];
            if !second.starts_with(b"eyJ") {
                return fail;
            }
            let len = part(&second[3..]);
            if len < 8 || second.get(3 + len) != Some(&b'.') {
                return fail;
            }
            if part(&second[3 + len + 1..]) < 8 {
                return fail;
            }
            Ok(())
        }
    }
}

/// Does `text` hold a token of this format? Linear in the length of `text`.
fn contains_token(format: &TokenFormat, text: &str) -> bool {
    let bytes = text.as_bytes();
    format.starts.iter().any(|start| {
        // Most values (env values, labels) are short or lack the start's first byte: skip
        // building a substring searcher for them.
        if text.len() < start.len() || !bytes.contains(&start.as_bytes()[0]) {
            return false;
        }
        let word_start = !matches!(format.shape, Shape::PemLabel);
        // Bytes already known not to complete the shape from any later start.
        let mut dead_until = 0;
        for (i, _) in text.match_indices(start) {
            if i < dead_until || (word_start && i > 0 && is_word(bytes[i - 1])) {
                continue;
            }
            let after = i + start.len();
            match completes(format.shape, &bytes[after..]) {
                Ok(()) => return true,
                Err(n) => dead_until = after + n,
            }
        }
        false
    })
}

/// The kinds of well-known secret formats present in `text` (deduplicated, stable order).
pub fn token_kinds(text: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for format in TOKENS {
        if !kinds.contains(&format.kind) && contains_token(format, text) {
            kinds.push(format.kind);
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

    /// The hand-written matchers answer as the regexes they replace, on the cases above, on
    /// near-misses of every format and on generated mixtures of their pieces.
    #[test]
    fn tokens_agree_with_their_regexes() {
        let regexes: Vec<regex_lite::Regex> = TOKENS
            .iter()
            .map(|f| regex_lite::Regex::new(f.regex).unwrap())
            .collect();
        let pieces = [
            "ghp_",
            "gho_",
            "ghx_",
            "github_pat_",
            "glpat-",
            "xoxb-",
            "xoxz-",
            "AKIA",
            "ASIA",
            "eyJ",
            "-----BEGIN ",
            "RSA ",
            "PRIVATE KEY",
            " BLOCK",
            "-----",
            "PUBLIC KEY",
            ".",
            "-",
            "_",
            " ",
            "\n",
            "a",
            "Z",
            "0",
            "0123456789",
            "abcdefghij",
            "ABCDEFGHIJKLMNOP",
            "é",
            "x",
            "  ",
        ];
        let mut cases: Vec<String> = Vec::new();
        // Up to nine pieces, each repeated up to four times (a fixed-seed generator).
        let mut seed: u64 = 0x5eed;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(seed % 9 + 1) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let piece = pieces[(seed >> 33) as usize % pieces.len()];
                for _ in 0..=((seed >> 20) % 4) {
                    s.push_str(piece);
                }
            }
            cases.push(s);
        }
        cases.extend(
            [
                "-----BEGIN RSA PRIVATE KEY-----",
                "-----BEGIN PGP PRIVATE KEY BLOCK-----",
                "-----BEGIN  RSA PRIVATE KEY-----",
                "-----BEGIN RSA  PRIVATE KEY-----",
                "-----BEGIN PRIVATE KEY-----",
                "-----BEGIN ENCRYPTED PRIVATE KEY BLOCK BLOCK-----",
                "xAKIAIOSFODNN7EXAMPLE",
                "AKIAIOSFODNN7EXAMPLE_",
                "AKIAIOSFODNN7EXAMPLEX",
                "AKIAIOSFODNN7EXAMPL",
                "ghp_0123456789abcdefghijABCDEFGHIJ012345_",
                "ghp_0123456789abcdefghijABCDEFGHIJ01234",
                "-ghp_0123456789abcdefghijABCDEFGHIJ012345-",
                "eyJaaaaaaaa.eyJbbbbbbbb.cccccccc",
                "eyJaaaaaaa.eyJbbbbbbbb.cccccccc",
                "a-eyJaaaaaaaa.eyJbbbbbbbb.ccccccc",
                "eyJ-eyJ-eyJaaaaaaaa.eyJbbbbbbbb.cccccccc",
                "glpat-glpat-glpat-glpat-",
            ]
            .map(String::from),
        );
        for text in &cases {
            let by_regex: Vec<&str> = TOKENS
                .iter()
                .zip(&regexes)
                .filter(|(_, re)| re.is_match(text))
                .map(|(f, _)| f.kind)
                .fold(Vec::new(), |mut v, k| {
                    if !v.contains(&k) {
                        v.push(k);
                    }
                    v
                });
            assert_eq!(token_kinds(text), by_regex, "{text:?}");
        }
    }

    /// A 3 MiB value of near-misses of every format is scanned in linear time (it took
    /// seconds with the regexes, over the policy-server timeout in the module).
    #[test]
    fn near_misses_are_linear() {
        let mut text = String::new();
        let mut i = 0;
        while text.len() < 3 << 20 {
            text.push_str(&format!(
                "ghp_{i} AKIA{i} glpat- xoxb- eyJ{i}. eyJ-eyJ-eyJ -----BEGIN A PUBLIC KEY-----\n"
            ));
            i += 1;
        }
        assert!(token_kinds(&text).is_empty());
        text.push_str("ghp_0123456789abcdefghijABCDEFGHIJ012345");
        assert_eq!(token_kinds(&text), vec!["a GitHub token"]);
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
