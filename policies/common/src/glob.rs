//! Shell-style glob matching (`*`, `?`) for image and name patterns.

/// `*` matches any run of characters (including `/` and `:`), `?` exactly one.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// True when any pattern matches.
pub fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| matches(p, text))
}

/// Settings check for a glob list: an empty pattern is a mistake, never a wildcard.
pub fn validate_patterns(setting: &str, patterns: &[String]) -> Result<(), String> {
    match patterns.iter().find(|p| p.trim().is_empty()) {
        Some(p) => Err(format!("{setting}: empty pattern {p:?} is not allowed")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globbing() {
        assert!(matches("postgis/postgis:*", "postgis/postgis:15-3.4"));
        assert!(matches("*redis*", "docker.io/library/redis:7"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "abbc"));
        assert!(!matches("postgres:*", "postgis/postgis:15"));
        assert!(matches("*", ""));
        assert!(matches("ghcr.io/*/x:1", "ghcr.io/a/b/x:1"));
    }
}
