//! The version: Cargo's workspace version is the only source. Every other mention (metadata
//! annotations, `ClusterAdmissionPolicy` module references, pre-commit `rev:`, raw URLs, the
//! CHANGELOG) is checked against it, and `stackguard bump` rewrites them all at once.

use super::{Result, VERSION};
use anyhow::{Context, anyhow, bail};
use regex_lite::Regex;
use std::path::{Path, PathBuf};

const SEMVER: &str = r"[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?";

/// Every pattern that names the current version; group 1 is the version.
fn patterns() -> Vec<Regex> {
    [
        r"ghcr\.io/stackguard/policies/[a-z0-9<>-]+:v(VER)",
        r"\brev: v(VER)",
        r"stackguard/stackguard/v(VER)/",
        r"…/v(VER)/",
        r"\bTAG=v(VER)\b",
        r"releases/download/v(VER)/",
        r"io\.kubewarden\.policy\.version: (VER)",
        r"com\.github\.release\.tag: v(VER)",
    ]
    .iter()
    .map(|p| Regex::new(&p.replace("VER", SEMVER)).expect("valid pattern"))
    .collect()
}

/// The files that mention the version: YAML and Markdown of the repository, except the
/// CHANGELOG (which names every past version) and build output.
fn files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(
                    name,
                    "target" | "node_modules" | ".git" | "dist" | "fixtures"
                ) {
                    walk(&path, out)?;
                }
            } else if (name.ends_with(".md") || name.ends_with(".yml") || name.ends_with(".yaml"))
                && name != "CHANGELOG.md"
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &mut out).with_context(|| format!("listing {}", root.display()))?;
    out.sort();
    Ok(out)
}

/// Each mention of a version other than Cargo's, as `path:line: …`.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let workspace = cargo_version(root)?;
    if workspace != VERSION {
        problems.push(format!(
            "Cargo.toml: version {workspace}, but this stackguard was built as {VERSION}: rebuild it"
        ));
    }
    let patterns = patterns();
    for path in files(root)? {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for re in &patterns {
                for caps in re.captures_iter(line) {
                    let found = &caps[1];
                    if found != VERSION {
                        problems.push(format!(
                            "{}:{}: names version {found}, Cargo's is {VERSION}: \
                             `make bump VERSION={VERSION}` rewrites every reference",
                            relative(root, &path),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    Ok(problems)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `version = "…"` of `[workspace.package]` in the root Cargo.toml.
fn cargo_version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let (start, end) = workspace_version_line(&text)?;
    let line = &text[start..end];
    Ok(line
        .split('"')
        .nth(1)
        .ok_or_else(|| anyhow!("Cargo.toml: malformed version line {line:?}"))?
        .to_string())
}

/// The byte range of the `version = "…"` line of `[workspace.package]`.
fn workspace_version_line(text: &str) -> Result<(usize, usize)> {
    let section = text
        .find("\n[workspace.package]")
        .ok_or_else(|| anyhow!("Cargo.toml has no [workspace.package]"))?;
    let header = &text[section + 1..];
    let body = section + 1 + header.find('\n').map_or(header.len(), |i| i + 1);
    let mut offset = body;
    for line in text[body..].split_inclusive('\n') {
        if line.starts_with('[') {
            break;
        }
        if line.trim_start().starts_with("version") {
            return Ok((
                offset + line.len() - line.trim_start().len(),
                offset + line.trim_end().len(),
            ));
        }
        offset += line.len();
    }
    bail!("Cargo.toml: [workspace.package] has no version")
}

/// The release date of the current version from CHANGELOG.md (`## [x.y.z] - YYYY-MM-DD`), as
/// RFC 3339.
pub fn release_date(root: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(root.join("CHANGELOG.md")).context("reading CHANGELOG.md")?;
    let heading = format!("## [{VERSION}] - ");
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix(&heading))
        .map(str::trim)
        .ok_or_else(|| anyhow!("CHANGELOG.md has no `{heading}YYYY-MM-DD` section"))?;
    let valid = Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$").expect("valid pattern");
    if !valid.is_match(date) {
        bail!("CHANGELOG.md: {date:?} is not a date (YYYY-MM-DD)");
    }
    Ok(format!("{date}T00:00:00Z"))
}

/// Set the version to `new` everywhere: Cargo.toml, every reference, and a CHANGELOG section
/// dated `date` (the `Unreleased` entries move under it). Returns the changed files.
pub fn bump(root: &Path, new: &str, date: &str) -> Result<Vec<String>> {
    if !crate::metadata::is_semver(new) {
        bail!("{new:?} is not a version such as 0.2.0");
    }
    let mut changed = Vec::new();
    let cargo = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo).context("reading Cargo.toml")?;
    let (start, end) = workspace_version_line(&text)?;
    let updated = format!("{}version = \"{new}\"{}", &text[..start], &text[end..]);
    if updated != text {
        std::fs::write(&cargo, updated).context("writing Cargo.toml")?;
        changed.push("Cargo.toml".to_string());
    }
    let patterns = patterns();
    for path in files(root)? {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut updated = text.clone();
        for re in &patterns {
            updated = re
                .replace_all(&updated, |caps: &regex_lite::Captures| {
                    let whole = &caps[0];
                    let m = caps.get(1).expect("group 1");
                    let at = m.start() - caps.get(0).expect("group 0").start();
                    format!("{}{new}{}", &whole[..at], &whole[at + m.len()..])
                })
                .into_owned();
        }
        if updated != text {
            std::fs::write(&path, &updated)
                .with_context(|| format!("writing {}", path.display()))?;
            changed.push(relative(root, &path));
        }
    }
    let log = root.join("CHANGELOG.md");
    let text = std::fs::read_to_string(&log).context("reading CHANGELOG.md")?;
    if !text.contains(&format!("## [{new}]")) {
        let unreleased = "## [Unreleased]\n";
        let at = text
            .find(unreleased)
            .ok_or_else(|| anyhow!("CHANGELOG.md has no `## [Unreleased]` section"))?
            + unreleased.len();
        let updated = format!("{}\n## [{new}] - {date}\n{}", &text[..at], &text[at..]);
        std::fs::write(&log, updated).context("writing CHANGELOG.md")?;
        changed.push("CHANGELOG.md".to_string());
    }
    Ok(changed)
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_version_line_is_found_and_only_it() {
        let text = "[package]\nversion = \"9.9.9\"\n\n[workspace.package]\nedition = \"2024\"\nversion = \"0.1.0\"\n[x]\nversion = \"1\"\n";
        let (s, e) = workspace_version_line(text).unwrap();
        assert_eq!(&text[s..e], "version = \"0.1.0\"");
        assert!(today().len() == 10 && today().starts_with("20"));
    }
}
