//! redis.conf as Redis (and Valkey/KeyDB) read it.
//!
//! One directive per line, arguments split like Redis' `sdssplitargs` (`"…"` with `\n \t \xHH`
//! escapes, `'…'` with `\'`), `#` comment lines, directive names case-insensitive, the last
//! occurrence wins. `save` lines accumulate and `save ""` clears them. `include` files are
//! followed through a resolver; the ones it cannot supply are reported. Command-line options
//! (`redis-server file --name args…`) are appended after the file, as Redis does.

use std::collections::{BTreeMap, BTreeSet};

/// Redis 7 built-in defaults for the directives the policies read.
pub const DEFAULT_SAVE: &[(u64, u64)] = &[(3600, 1), (300, 100), (60, 10000)];
pub const DEFAULT_MAXMEMORY_POLICY: &str = "noeviction";

/// At most this much included text is read for one configuration: a file that includes itself,
/// or includes the same file many times over, stops there with an error instead of expanding
/// without bound (Redis itself recurses until it crashes).
pub const MAX_INCLUDED_BYTES: usize = 1 << 20;

/// One directive with its source line (0 for command-line options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    /// Where it was read: a file name and line, or `command line`.
    pub origin: String,
}

/// The effective configuration after every file and option was applied.
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// Last occurrence of each directive (lower-case name).
    last: BTreeMap<String, Directive>,
    /// Save points after every `save` line; `None` when no `save` was ever given (defaults).
    save: Option<Vec<(u64, u64)>>,
    /// `include` targets the resolver could not supply.
    pub unresolved_includes: Vec<String>,
    /// Lines Redis would refuse to start with (unbalanced quotes, bad `save` arguments).
    pub errors: Vec<String>,
    /// The entries of `unresolved_includes` and `errors`, for reporting each once however
    /// often includes repeat a file.
    unresolved_seen: BTreeSet<String>,
    errors_seen: BTreeSet<String>,
    /// Bytes of included text read so far (bounded by [`MAX_INCLUDED_BYTES`]; `usize::MAX`
    /// once the expansion was cut).
    included_bytes: usize,
}

impl RedisConfig {
    /// Parse `text` (named `origin` in messages), following `include`s through `resolve`.
    pub fn parse(
        text: &str,
        origin: &str,
        resolve: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Self {
        let mut cfg = RedisConfig::default();
        cfg.apply_text(text, origin, resolve, 0);
        cfg
    }

    fn apply_text(
        &mut self,
        text: &str,
        origin: &str,
        resolve: &mut dyn FnMut(&str) -> Option<String>,
        depth: usize,
    ) {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin} line {}", n + 1);
            let args = match split_args(line) {
                Ok(a) => a,
                Err(e) => {
                    self.error(format!("{at}: {e}"));
                    continue;
                }
            };
            let Some((name, rest)) = args.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if name == "include" {
                for path in rest {
                    if self.included_bytes == usize::MAX {
                        return;
                    }
                    if self.included_bytes > MAX_INCLUDED_BYTES {
                        // Reported once; every level of the expansion stops here.
                        self.included_bytes = usize::MAX;
                        self.error(format!(
                            "{at}: include {path}: the includes expand to more than {} MiB of \
                             configuration (does a file include itself?)",
                            MAX_INCLUDED_BYTES >> 20
                        ));
                        return;
                    }
                    match (depth < 8).then(|| resolve(path)).flatten() {
                        Some(inner) => {
                            self.included_bytes = self.included_bytes.saturating_add(inner.len());
                            self.apply_text(&inner, path, resolve, depth + 1)
                        }
                        // Each reported once, however often the expansion meets it.
                        None => {
                            if self.unresolved_seen.insert(path.clone()) {
                                self.unresolved_includes.push(path.clone());
                            }
                        }
                    }
                }
                continue;
            }
            self.apply(name, rest.to_vec(), at);
        }
    }

    /// Apply command-line options: `["--maxmemory", "1gb", "--save", ""]`. Words before the first
    /// `--name` are ignored (the caller strips the config file argument).
    pub fn apply_options(&mut self, words: &[String]) {
        let mut cur: Option<(String, Vec<String>)> = None;
        for w in words {
            if let Some(name) = w.strip_prefix("--").filter(|n| !n.is_empty()) {
                if let Some((n, a)) = cur.take() {
                    self.apply(n, a, "command line".to_string());
                }
                cur = Some((name.to_ascii_lowercase(), Vec::new()));
            } else if let Some((_, a)) = cur.as_mut() {
                a.push(w.clone());
            }
        }
        if let Some((n, a)) = cur {
            self.apply(n, a, "command line".to_string());
        }
    }

    fn error(&mut self, message: String) {
        if self.errors_seen.insert(message.clone()) {
            self.errors.push(message);
        }
    }

    fn apply(&mut self, name: String, args: Vec<String>, origin: String) {
        if name == "save" {
            let points = self.save.get_or_insert_with(Vec::new);
            let valid = if args.len() == 1 && args[0].is_empty() {
                points.clear();
                true
            } else if args.len().is_multiple_of(2) {
                let mut valid = true;
                for pair in args.chunks(2) {
                    match (pair[0].parse::<u64>(), pair[1].parse::<u64>()) {
                        (Ok(s), Ok(c)) => points.push((s, c)),
                        _ => valid = false,
                    }
                }
                valid
            } else {
                false
            };
            if !valid {
                self.error(format!("{origin}: invalid save parameters"));
            }
        }
        self.last
            .insert(name.clone(), Directive { name, args, origin });
    }

    /// The last occurrence of `name` (lower case), if any.
    pub fn get(&self, name: &str) -> Option<&Directive> {
        self.last.get(name)
    }

    /// First argument of the last occurrence, lower-cased.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|d| d.args.first())
            .map(|a| a.to_ascii_lowercase())
    }

    /// Effective save points (Redis 7 defaults when no `save` was given).
    pub fn save_points(&self) -> Vec<(u64, u64)> {
        self.save.clone().unwrap_or_else(|| DEFAULT_SAVE.to_vec())
    }

    /// True when `save` was set explicitly (file or command line).
    pub fn save_is_explicit(&self) -> bool {
        self.save.is_some()
    }
}

/// Split one line like Redis' `sdssplitargs`.
pub fn split_args(line: &str) -> Result<Vec<String>, String> {
    let c: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        if i >= c.len() {
            return Ok(out);
        }
        let mut cur = String::new();
        let mut closed_quote = false;
        loop {
            let ch = c.get(i).copied();
            match ch {
                None => break,
                Some(ch) if ch.is_whitespace() => break,
                Some('"') => {
                    i += 1;
                    loop {
                        match c.get(i).copied() {
                            None => return Err("unbalanced quotes".to_string()),
                            Some('\\') => {
                                let next = c.get(i + 1).copied();
                                if next == Some('x')
                                    && let Some(v) = c
                                        .get(i + 2..i + 4)
                                        .map(|h| h.iter().collect::<String>())
                                        .and_then(|h| u8::from_str_radix(&h, 16).ok())
                                {
                                    cur.push(char::from(v));
                                    i += 4;
                                    continue;
                                }
                                cur.push(match next {
                                    Some('n') => '\n',
                                    Some('r') => '\r',
                                    Some('t') => '\t',
                                    Some('b') => '\u{8}',
                                    Some('a') => '\u{7}',
                                    Some(o) => o,
                                    None => return Err("unbalanced quotes".to_string()),
                                });
                                i += 2;
                            }
                            Some('"') => {
                                i += 1;
                                closed_quote = true;
                                break;
                            }
                            Some(o) => {
                                cur.push(o);
                                i += 1;
                            }
                        }
                    }
                }
                Some('\'') => {
                    i += 1;
                    loop {
                        match c.get(i).copied() {
                            None => return Err("unbalanced quotes".to_string()),
                            Some('\\') if c.get(i + 1) == Some(&'\'') => {
                                cur.push('\'');
                                i += 2;
                            }
                            Some('\'') => {
                                i += 1;
                                closed_quote = true;
                                break;
                            }
                            Some(o) => {
                                cur.push(o);
                                i += 1;
                            }
                        }
                    }
                }
                Some(o) => {
                    cur.push(o);
                    i += 1;
                }
            }
            if closed_quote {
                // Redis requires a space (or the end) right after a closing quote.
                if c.get(i).is_some_and(|ch| !ch.is_whitespace()) {
                    return Err("closing quote must be followed by a space".to_string());
                }
                break;
            }
        }
        out.push(cur);
    }
}

/// Parse a Redis memory value: `1k`=1000, `1kb`=1024, `1m`=1000000, `1mb`=1048576, `1g`, `1gb`
/// (case-insensitive); a bare number is bytes.
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RedisConfig {
        RedisConfig::parse(text, "redis.conf", &mut |_| None)
    }

    /// Fuzzing found it: 23 bytes that include themselves seven times per level ran out of
    /// memory (7^8 expansions). The expansion now stops at `MAX_INCLUDED_BYTES`, with one error.
    #[test]
    fn self_including_fan_out_is_bounded() {
        let text = "include a a a a a a a\nmaxmemory-policy noeviction\n";
        let c = RedisConfig::parse(text, "redis.conf", &mut |_| Some(text.to_string()));
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        assert!(c.errors[0].contains("include a: the includes expand to more than 1 MiB"));
        assert_eq!(c.value("maxmemory-policy").as_deref(), Some("noeviction"));
    }

    #[test]
    fn last_occurrence_wins_case_insensitively() {
        let c = parse(
            "maxmemory-policy allkeys-lru\n# maxmemory-policy volatile-lru\nMAXMEMORY-POLICY NoEviction\n",
        );
        assert_eq!(c.value("maxmemory-policy").as_deref(), Some("noeviction"));
        assert_eq!(
            c.get("maxmemory-policy").unwrap().origin,
            "redis.conf line 3"
        );
    }

    #[test]
    fn save_points() {
        assert_eq!(parse("").save_points(), DEFAULT_SAVE.to_vec());
        assert!(!parse("").save_is_explicit());
        assert_eq!(
            parse("save 900 1\nsave 300 10").save_points(),
            vec![(900, 1), (300, 10)]
        );
        assert!(parse("save 900 1\nsave \"\"").save_points().is_empty());
        assert_eq!(
            parse("save ''\nsave 60 5 10 100").save_points(),
            vec![(60, 5), (10, 100)]
        );
        let mut c = parse("save 900 1");
        c.apply_options(&[
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
        ]);
        assert!(c.save_points().is_empty());
        assert_eq!(c.value("appendonly").as_deref(), Some("no"));
        assert_eq!(c.get("appendonly").unwrap().origin, "command line");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            split_args(r#"requirepass "a b\"c\x41" 'it\'s'"#).unwrap(),
            vec!["requirepass", "a b\"cA", "it's"]
        );
        assert!(split_args(r#"x "abc"d"#).is_err());
        assert!(split_args(r#"x "abc"#).is_err());
        let c = parse("bad \"x\nmaxmemory 1mb");
        assert_eq!(c.errors.len(), 1);
        assert_eq!(c.value("maxmemory").as_deref(), Some("1mb"));
    }

    #[test]
    fn includes() {
        let mut resolve = |p: &str| {
            (p == "/etc/redis/extra.conf").then(|| "maxmemory-policy allkeys-lfu".to_string())
        };
        let c = RedisConfig::parse(
            "include /etc/redis/extra.conf\ninclude /missing.conf",
            "redis.conf",
            &mut resolve,
        );
        assert_eq!(c.value("maxmemory-policy").as_deref(), Some("allkeys-lfu"));
        assert_eq!(c.unresolved_includes, vec!["/missing.conf"]);
        let mut looping = |_: &str| Some("include /self.conf".to_string());
        let c = RedisConfig::parse("include /self.conf", "r", &mut looping);
        assert_eq!(c.unresolved_includes, vec!["/self.conf"]);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1mb"), Some(1_048_576));
        assert_eq!(parse_memory("1m"), Some(1_000_000));
        assert_eq!(parse_memory("2GB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("100kb"), Some(102_400));
        assert_eq!(parse_memory("12345"), Some(12345));
        assert_eq!(parse_memory("1tb"), None);
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(parse_memory("99999999999999999999gb"), None);
    }
}
