//! redis.conf as Redis 7 reads it.
//!
//! One directive per line (trimmed of spaces, tabs and line ends), `#` comment lines, arguments
//! split like Redis' `sdssplitargs` (`"…"` with `\n \t \xHH` escapes, `'…'` with `\'`, a closing
//! quote followed by a space), directive names case-insensitive, the last occurrence winning.
//! Every line is checked the way Redis checks it before it starts: an unknown directive, a
//! single-valued directive followed by more text (`maxmemory-policy noeviction # comment`), a
//! value of the wrong type or out of bounds make Redis refuse the whole file; [`RedisConfig`]
//! records the first such line in `error`. `include` files are followed through a resolver.
//! Command-line options (`redis-server file --name args…`) are turned into configuration lines
//! and appended after the file, exactly as Redis' `main()` does. Checked against a real
//! `redis-server` by `tests/oracle_redis.rs`.

mod directives;

use std::collections::{BTreeMap, BTreeSet};

/// Redis 7 built-in defaults for the directives the policies read.
pub const DEFAULT_SAVE: &[(i64, i64)] = &[(3600, 1), (300, 100), (60, 10000)];
pub const DEFAULT_MAXMEMORY_POLICY: &str = "noeviction";

/// At most this much included text is read for one configuration: a file that includes itself,
/// or includes the same file many times over, is refused there instead of expanding without
/// bound (Redis itself recurses until it crashes, so it would not start either).
pub const MAX_INCLUDED_BYTES: usize = 1 << 20;

/// How Redis checks a directive's value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `yes` / `no`.
    Bool,
    /// One of these names (several, for a multi-argument directive: flags).
    Enum(&'static [&'static str]),
    /// A number within bounds; `unsigned`: compared as an unsigned 64-bit value.
    Num {
        lo: i128,
        hi: i128,
        unsigned: bool,
        flags: u8,
    },
    Str(Str),
    /// Checked by its own function (`save`, `bind`, `client-output-buffer-limit`…).
    Special,
}

/// Extra checks of string directives.
#[derive(Debug, Clone, Copy)]
enum Str {
    Any,
    /// A file name without a directory.
    BaseName,
    /// Letters, digits, `-` and `.` only.
    Hostname,
}

/// Number flags: a memory size (`1gb`), a percentage (`50%`), an octal number.
const MEM: u8 = 1;
const PCT: u8 = 2;
const OCT: u8 = 4;

/// One directive with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Canonical lower-case name (`slaveof` is `replicaof`).
    pub name: String,
    pub args: Vec<String>,
    /// A file name and line, or `command line`.
    pub origin: String,
}

/// The effective configuration after every file and option was applied.
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// Last occurrence of each directive, by canonical name.
    last: BTreeMap<String, Directive>,
    /// Save points; `None` while the defaults apply.
    save: Option<Vec<(i64, i64)>>,
    /// Redis appends `save` lines while it reads a file, but an `include` ends that mode for
    /// the rest of the including file: later `save` lines replace the list.
    reading_file: bool,
    /// The first `save` read from a file replaces the defaults.
    save_loaded: bool,
    /// `include` targets the resolver could not supply.
    pub unresolved_includes: Vec<String>,
    /// The first line Redis refuses, with where and why: it would not start.
    pub error: Option<String>,
    /// The entries of `unresolved_includes`, for reporting each once however often includes
    /// repeat a file.
    unresolved_seen: BTreeSet<String>,
    /// Bytes of included text read so far (bounded by [`MAX_INCLUDED_BYTES`]).
    included_bytes: usize,
}

/// Where the lines of the text being read come from.
struct Source<'a> {
    origin: &'a str,
    /// Lines after this many come from the command line.
    file_lines: usize,
}

impl RedisConfig {
    /// Parse `text` (named `origin` in messages), following `include`s through `resolve`.
    pub fn parse(
        text: &str,
        origin: &str,
        resolve: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Self {
        Self::load(text, origin, &[], resolve)
    }

    /// Parse a config file and the command-line options that follow it on `redis-server`'s
    /// command line (`["--maxmemory", "1gb", "--save", ""]`), as one text the way Redis does.
    pub fn load(
        text: &str,
        origin: &str,
        options: &[String],
        resolve: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Self {
        let mut cfg = RedisConfig::default();
        let file_lines = text.split('\n').count();
        let mut all = text.to_string();
        if !options.is_empty() {
            all.push('\n');
            all.push_str(&options_text(options));
        }
        let src = Source { origin, file_lines };
        cfg.load_string(&all, &src, resolve, 0);
        cfg
    }

    fn load_string(
        &mut self,
        text: &str,
        src: &Source<'_>,
        resolve: &mut dyn FnMut(&str) -> Option<String>,
        depth: usize,
    ) {
        self.reading_file = true;
        for (n, raw) in text.split('\n').enumerate() {
            if self.error.is_some() {
                return;
            }
            let at = if n < src.file_lines {
                format!("{} line {}", src.origin, n + 1)
            } else {
                "command line".to_string()
            };
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let argv = match split_args(line) {
                Ok(a) => a,
                Err(_) => {
                    self.refuse(&at, "unbalanced quotes in configuration line");
                    return;
                }
            };
            let Some((name, rest)) = argv.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if let Err(e) = self.line(&name, rest, &at, resolve, depth) {
                self.refuse(&at, &e);
                return;
            }
        }
        self.reading_file = false;
    }

    fn refuse(&mut self, at: &str, why: &str) {
        self.error = Some(format!("{at}: {why}"));
    }

    /// One configuration line.
    fn line(
        &mut self,
        name: &str,
        args: &[String],
        at: &str,
        resolve: &mut dyn FnMut(&str) -> Option<String>,
        depth: usize,
    ) -> Result<(), String> {
        if let Some(&(canonical, _, multi, kind)) = directives::DIRECTIVES
            .iter()
            .find(|(n, alias, ..)| *n == name || *alias == Some(name))
        {
            if !multi && args.len() != 1 {
                return Err(format!(
                    "{name} takes one argument, the line gives {}",
                    args.len()
                ));
            }
            // A single argument of a multi-argument directive is split again (`save "60 1"`).
            let split;
            let args = if multi && args.len() == 1 && !args[0].is_empty() {
                split = split_args(&args[0]).unwrap_or_default();
                &split[..]
            } else {
                args
            };
            check(canonical, kind, args)?;
            if canonical == "save" {
                self.set_save(args);
            }
            self.last.insert(
                canonical.to_string(),
                Directive {
                    name: canonical.to_string(),
                    args: args.to_vec(),
                    origin: at.to_string(),
                },
            );
            return Ok(());
        }
        let argc = args.len() + 1;
        match name {
            "list-max-ziplist-entries" | "list-max-ziplist-value" | "lua-replicate-commands"
                if argc == 2 =>
            {
                Ok(())
            }
            "include" if argc == 2 => {
                let path = &args[0];
                match (depth < 8).then(|| resolve(path)).flatten() {
                    Some(inner) => {
                        self.included_bytes = self.included_bytes.saturating_add(inner.len());
                        if self.included_bytes > MAX_INCLUDED_BYTES {
                            return Err(format!(
                                "include {path}: the includes expand to more than {} MiB of \
                                 configuration (does a file include itself?)",
                                MAX_INCLUDED_BYTES >> 20
                            ));
                        }
                        let src = Source {
                            origin: path,
                            file_lines: usize::MAX,
                        };
                        self.load_string(&inner, &src, resolve, depth + 1);
                        // Redis leaves "reading a file" mode after an included file.
                        self.reading_file = false;
                    }
                    // Each reported once, however often the expansion meets it.
                    None => {
                        if self.unresolved_seen.insert(path.clone()) {
                            self.unresolved_includes.push(path.clone());
                        }
                    }
                }
                Ok(())
            }
            "rename-command" if argc == 3 => Ok(()),
            "user" | "loadmodule" if argc >= 2 => Ok(()),
            _ if name.contains('.') => {
                if argc < 2 {
                    Err("module config specified without value".into())
                } else {
                    Ok(())
                }
            }
            "sentinel" if argc == 1 => Ok(()),
            "sentinel" => Err("sentinel directive while not in sentinel mode".into()),
            _ if directives::LATER.contains(&name) => Ok(()),
            _ => Err(format!(
                "{name} is not a Redis directive, or not with {} argument(s)",
                argc - 1
            )),
        }
    }

    /// `save` as Redis applies it (arguments already checked).
    fn set_save(&mut self, args: &[String]) {
        let args = if args.len() == 1 && args[0].is_empty() {
            self.save = Some(Vec::new());
            &[][..]
        } else {
            args
        };
        if !self.reading_file {
            self.save = Some(Vec::new());
        } else if !self.save_loaded {
            self.save_loaded = true;
            self.save = Some(Vec::new());
        }
        let points = self.save.get_or_insert_with(Vec::new);
        for pair in args.chunks(2) {
            let seconds = strtoll(&pair[0]).map_or(0, |(v, _)| v);
            // Redis keeps the number of changes in a C int.
            let changes = strtoll(&pair[1]).map_or(0, |(v, _)| i64::from(v as i32));
            points.push((seconds, changes));
        }
    }

    /// The last occurrence of `name` (canonical lower-case name), if any.
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
    pub fn save_points(&self) -> Vec<(i64, i64)> {
        self.save.clone().unwrap_or_else(|| DEFAULT_SAVE.to_vec())
    }

    /// True when `save` was set explicitly (file or command line).
    pub fn save_is_explicit(&self) -> bool {
        self.save.is_some()
    }

    /// `maxmemory` in bytes (0: no limit), as `CONFIG GET maxmemory` reports it.
    pub fn maxmemory(&self) -> u64 {
        self.get("maxmemory")
            .and_then(|d| d.args.first())
            .and_then(|a| memtoull(a))
            .unwrap_or(0)
    }
}

/// The configuration text Redis builds from its command-line options: `--name` starts a line,
/// the following words are quoted arguments; a word before any option name, or a value that
/// looks like an option after a name without value, is taken as Redis takes it.
pub fn options_text(words: &[String]) -> String {
    let mut out = String::new();
    let mut handled_last = true;
    for (j, w) in words.iter().enumerate() {
        let last = j + 1 == words.len();
        if handled_last && w.starts_with("--") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&w[2..]);
            out.push(' ');
            // `--port` alone, or `"--port 6380"` in one word.
            if split_args(w).map_or(0, |a| a.len()) == 1 {
                handled_last = false;
                let next_is_option = words.get(j + 1).is_some_and(|n| n.starts_with("--"));
                let is = |opt: &str| w.eq_ignore_ascii_case(opt);
                if is("--save") && (next_is_option || last) {
                    out.push_str("\"\"");
                    handled_last = next_is_option;
                } else if is("--sentinel") && next_is_option {
                    handled_last = true;
                }
            } else {
                handled_last = true;
            }
        } else {
            out.push_str(&repr(w));
            out.push(' ');
            handled_last = true;
        }
    }
    out
}

/// A quoted string as Redis' `sdscatrepr` writes it.
fn repr(s: &str) -> String {
    let mut out = String::from("\"");
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Check the arguments of a known directive as Redis does.
fn check(name: &str, kind: Kind, args: &[String]) -> Result<(), String> {
    match kind {
        Kind::Bool => match args[0].to_ascii_lowercase().as_str() {
            "yes" | "no" => Ok(()),
            _ => Err(format!("{name}: argument must be 'yes' or 'no'")),
        },
        Kind::Enum(values) => {
            let known = |a: &String| values.iter().any(|v| v.eq_ignore_ascii_case(a));
            if !args.is_empty() && args.iter().all(known) {
                let has = |f: &str| args.iter().any(|a| a.eq_ignore_ascii_case(f));
                if has("save") && has("nosave") {
                    return Err(format!("{name}: save and nosave are exclusive"));
                }
                Ok(())
            } else {
                Err(format!(
                    "{name}: argument(s) must be one of the following: {}",
                    values.join(", ")
                ))
            }
        }
        Kind::Num {
            lo,
            hi,
            unsigned,
            flags,
        } => {
            let v = parse_number(&args[0], flags).ok_or_else(|| {
                format!(
                    "{name}: argument must be {}",
                    match flags {
                        f if f & MEM != 0 && f & PCT != 0 => "a memory or percent value",
                        f if f & MEM != 0 => "a memory value",
                        f if f & OCT != 0 => "an octal number",
                        _ => "an integer",
                    }
                )
            })?;
            let v = if unsigned {
                i128::from(v as u64)
            } else {
                i128::from(v)
            };
            let below = if flags & PCT != 0 && v < 0 {
                v < lo
            } else {
                v < lo || v > hi
            };
            if below {
                return Err(format!("{name}: argument must be between {lo} and {hi}"));
            }
            Ok(())
        }
        Kind::Str(s) => {
            let v = &args[0];
            match s {
                Str::BaseName if v.contains('/') => {
                    Err(format!("{name} can't be a path, just a filename"))
                }
                Str::Hostname
                    if !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
                {
                    Err(format!(
                        "{name}: hostnames may only contain letters, digits, - and ."
                    ))
                }
                _ => Ok(()),
            }
        }
        Kind::Special => special(name, args),
    }
}

fn special(name: &str, args: &[String]) -> Result<(), String> {
    let strtoll_full = |s: &str| {
        strtoll(s)
            .filter(|(_, rest)| rest.is_empty())
            .map(|(v, _)| v)
    };
    match name {
        "save" => {
            let args = if args.len() == 1 && args[0].is_empty() {
                &[][..]
            } else {
                args
            };
            let valid = args.len().is_multiple_of(2)
                && args.iter().enumerate().all(|(j, a)| {
                    strtoll_full(a).is_some_and(|v| if j % 2 == 0 { v >= 1 } else { v >= 0 })
                });
            if valid {
                Ok(())
            } else {
                Err("invalid save parameters".into())
            }
        }
        "client-output-buffer-limit" => {
            if !args.len().is_multiple_of(4) {
                return Err("wrong number of arguments in buffer limit configuration".into());
            }
            for c in args.chunks(4) {
                let class = c[0].to_ascii_lowercase();
                if !matches!(class.as_str(), "normal" | "replica" | "slave" | "pubsub") {
                    return Err("invalid client class in buffer limit configuration".into());
                }
                let seconds = strtoll(&c[3]);
                if memtoull(&c[1]).is_none()
                    || memtoull(&c[2]).is_none()
                    || !seconds.is_some_and(|(v, rest)| v >= 0 && rest.is_empty())
                {
                    return Err(
                        "error in hard, soft or soft_seconds setting in buffer limit configuration"
                            .into(),
                    );
                }
            }
            Ok(())
        }
        "oom-score-adj-values" => {
            let ok = args.len() == 3
                && args
                    .iter()
                    .all(|a| strtoll_full(a).is_some_and(|v| (-2000..=2000).contains(&v)));
            if ok {
                Ok(())
            } else {
                Err("oom-score-adj-values takes three numbers between -2000 and 2000".into())
            }
        }
        "notify-keyspace-events" => {
            if args[0].chars().all(|c| "Ag$lshzxeKEtmdn".contains(c)) {
                Ok(())
            } else {
                Err("invalid event class character; use 'Ag$lshzxeKEtmdn'".into())
            }
        }
        "bind" if args.len() > 16 => Err("too many bind addresses specified".into()),
        "replicaof" => {
            if args.len() != 2 {
                return Err("replicaof takes a host and a port, or no one".into());
            }
            let no_one = args[0].eq_ignore_ascii_case("no") && args[1].eq_ignore_ascii_case("one");
            let port_ok = strtoll(&args[1])
                .is_some_and(|(v, rest)| rest.is_empty() && (0..=65535).contains(&v));
            if no_one || port_ok {
                Ok(())
            } else {
                Err("invalid master port".into())
            }
        }
        "latency-tracking-info-percentiles" => {
            let args = if args.len() == 1 && args[0].is_empty() {
                &[][..]
            } else {
                args
            };
            let ok = args.iter().all(|a| {
                a.parse::<f64>()
                    .is_ok_and(|p| (0.0..=100.0).contains(&p) && !a.starts_with('+'))
            });
            if ok {
                Ok(())
            } else {
                Err("latency-tracking-info-percentiles takes numbers between 0 and 100".into())
            }
        }
        "dir" if args.len() != 1 => Err("wrong number of arguments".into()),
        // `dir` must exist in the container, which a policy cannot see.
        _ => Ok(()),
    }
}

/// A number as Redis' `numericParseString` reads it, with the given flags.
fn parse_number(s: &str, flags: u8) -> Option<i64> {
    if flags & MEM != 0
        && let Some(v) = memtoull(s)
    {
        return Some(v as i64);
    }
    if flags & PCT != 0
        && s.len() > 1
        && let Some(p) = s.strip_suffix('%')
        && let Some(v) = string2ll(p)
        && v >= 0
    {
        return Some(-v);
    }
    if flags & OCT != 0 {
        let digits = s.trim_start_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']);
        let (neg, digits) = match digits.as_bytes().first() {
            Some(b'-') => (true, &digits[1..]),
            Some(b'+') => (false, &digits[1..]),
            _ => (false, digits),
        };
        if !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let v = i64::from_str_radix(digits, 8).ok()?;
            return Some(if neg { -v } else { v });
        }
        return None;
    }
    if flags == 0 {
        return string2ll(s);
    }
    None
}

/// Redis' `string2ll`: an optional `-`, then digits without a leading zero (or just `0`).
fn string2ll(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = digits.starts_with(|c: char| ('1'..='9').contains(&c))
        && digits.bytes().all(|b| b.is_ascii_digit());
    if ok { s.parse().ok() } else { None }
}

/// C's `strtoll` in base 10: leading white space, a sign, digits (saturating); the value and
/// the unparsed rest. `None` when no digits were read (the rest is then the whole string, as
/// C leaves it; an empty string reads as 0).
fn strtoll(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']);
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = body
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(body.len());
    if end == 0 {
        return s.is_empty().then_some((0, ""));
    }
    let mut v: i64 = 0;
    for b in body[..end].bytes() {
        let d = i64::from(b - b'0');
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
    }
    Some((v, &body[end..]))
}

/// A memory size split as Redis' `memtoull` reads it: the number (`None` when it overflows)
/// and the unit's multiplier: digits, then `b`, `k`=1000, `kb`=1024, `m`, `mb`, `g`, `gb` (any
/// case) or nothing.
fn memory_parts(s: &str) -> Option<(Option<u64>, u64)> {
    if s.starts_with('-') {
        return None;
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mul: u64 = match s[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits >= 128 {
        return None;
    }
    // No digits reads as 0, as C's strtoull does.
    let n = if digits == 0 {
        Some(0)
    } else {
        s[..digits].parse::<u64>().ok()
    };
    Some((n, mul))
}

/// A memory size exactly as Redis computes it: a number that overflows saturates and the
/// product wraps around.
pub fn memtoull(s: &str) -> Option<u64> {
    memory_parts(s).map(|(n, mul)| n.unwrap_or(u64::MAX).wrapping_mul(mul))
}

/// A memory size for a policy: as Redis reads it, but `None` for a value too large for 64 bits
/// (Redis would wrap it around to a size nobody meant).
pub fn parse_memory(s: &str) -> Option<u64> {
    let (n, mul) = memory_parts(s)?;
    n?.checked_mul(mul)
}

/// `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Split one line like Redis' `sdssplitargs` (bytes; invalid UTF-8 from `\xHH` is replaced).
pub fn split_args(line: &str) -> Result<Vec<String>, String> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && is_c_space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let mut cur: Vec<u8> = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            let c = b.get(i).copied();
            if inq {
                match c {
                    Some(b'\\')
                        if b.get(i + 1) == Some(&b'x')
                            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                            && b.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("0");
                        cur.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                        i += 4;
                        continue;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        cur.push(match b[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            o => o,
                        });
                        i += 2;
                        continue;
                    }
                    Some(b'"') => {
                        if b.get(i + 1).is_some_and(|&n| !is_c_space(n)) {
                            return Err("closing quote must be followed by a space".into());
                        }
                        i += 1;
                        break;
                    }
                    None => return Err("unbalanced quotes".into()),
                    Some(o) => cur.push(o),
                }
            } else if insq {
                match c {
                    Some(b'\\') if b.get(i + 1) == Some(&b'\'') => {
                        cur.push(b'\'');
                        i += 2;
                        continue;
                    }
                    Some(b'\'') => {
                        if b.get(i + 1).is_some_and(|&n| !is_c_space(n)) {
                            return Err("closing quote must be followed by a space".into());
                        }
                        i += 1;
                        break;
                    }
                    None => return Err("unbalanced quotes".into()),
                    Some(o) => cur.push(o),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => inq = true,
                    Some(b'\'') => insq = true,
                    Some(o) => cur.push(o),
                }
            }
            i += 1;
        }
        out.push(String::from_utf8_lossy(&cur).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RedisConfig {
        RedisConfig::parse(text, "redis.conf", &mut |_| None)
    }

    /// Fuzzing found it: a few bytes that include themselves seven times per level ran out of
    /// memory (7^8 expansions). The expansion now stops at `MAX_INCLUDED_BYTES`: Redis would
    /// not start either (it recurses until it crashes).
    #[test]
    fn self_including_fan_out_is_bounded() {
        let text = "include a\n".repeat(7) + "maxmemory-policy noeviction\n";
        let mut reads = 0;
        let c = RedisConfig::parse(&text, "redis.conf", &mut |_| {
            reads += 1;
            Some(text.clone())
        });
        let error = c.error.expect("the expansion is refused");
        assert!(
            error.contains("include a: the includes expand to more than 1 MiB"),
            "{error}"
        );
        assert!(
            reads <= MAX_INCLUDED_BYTES / text.len() + 1,
            "{reads} reads"
        );
    }

    /// An include that cannot be followed is reported once, however often it is met.
    #[test]
    fn unresolved_includes_are_reported_once() {
        let c = parse("include a.conf\ninclude b.conf\ninclude a.conf\n");
        assert_eq!(c.unresolved_includes, ["a.conf", "b.conf"]);
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
        assert_eq!(c.error, None);
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
        let c = RedisConfig::load(
            "save 900 1",
            "redis.conf",
            &[
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
            ],
            &mut |_| None,
        );
        assert!(c.save_points().is_empty());
        assert_eq!(c.value("appendonly").as_deref(), Some("no"));
        assert_eq!(c.get("appendonly").unwrap().origin, "command line");
        // After an include, each save line replaces the list.
        let mut inc = |_: &str| Some(String::new());
        let c = RedisConfig::parse("include x.conf\nsave 60 1\nsave 300 10", "r", &mut inc);
        assert_eq!(c.save_points(), vec![(300, 10)]);
        assert!(parse("save 0 1").error.is_some());
        assert!(parse("save 60").error.is_some());
    }

    #[test]
    fn lines_redis_refuses() {
        for bad in [
            "maxmemory-policy noeviction # no eviction",
            "maxmemory-policy lru",
            "appendonly maybe",
            "maxmemory 1.5gb",
            "no-such-directive 1",
            "port 06379",
            "include a b",
            "bad \"x",
            "x \"abc\"d",
        ] {
            assert!(parse(bad).error.is_some(), "{bad}");
        }
        for good in [
            "maxmemory 0",
            "maxmemory 1GB",
            "maxmemory-clients 10%",
            "unixsocketperm 700",
            "slaveof no one",
            "save \"60 1 300 10\"",
            "client-output-buffer-limit pubsub 32mb 8mb 60",
            "rename-command CONFIG \"\"",
            "list-max-ziplist-entries 512",
        ] {
            assert_eq!(parse(good).error, None, "{good}");
        }
        let c = parse("maxmemory 1mb\nbad \"x\nmaxmemory 2mb");
        assert_eq!(
            c.error.as_deref(),
            Some("redis.conf line 2: unbalanced quotes in configuration line")
        );
        assert_eq!(c.maxmemory(), 1_048_576);
    }

    #[test]
    fn command_line_options() {
        let t = options_text(&[
            "--maxmemory".into(),
            "1".into(),
            "gb".into(),
            "--save".into(),
            "--port 7000".into(),
        ]);
        assert_eq!(t, "maxmemory \"1\" \"gb\" \nsave \"\"\nport 7000 ");
        let c = RedisConfig::load(
            "",
            "r",
            &["--maxmemory".into(), "1".into(), "gb".into()],
            &mut |_| None,
        );
        assert!(c.error.is_some());
        let c = RedisConfig::load("", "r", &["orphan".into()], &mut |_| None);
        assert!(c.error.is_some());
    }

    #[test]
    fn quoting() {
        assert_eq!(
            split_args(r#"requirepass "a b\"c\x41" 'it\'s'"#).unwrap(),
            vec!["requirepass", "a b\"cA", "it's"]
        );
        assert!(split_args(r#"x "abc"d"#).is_err());
        assert!(split_args(r#"x "abc"#).is_err());
        // Only ASCII white space separates arguments.
        assert_eq!(split_args("a\u{a0}b").unwrap(), vec!["a\u{a0}b"]);
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
        assert_eq!(memtoull("mb"), Some(0));
    }
}
