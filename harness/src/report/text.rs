//! The text report: findings grouped by file, each with `file:line`, the object, the policy
//! and the message; errors; a one-line summary. Colour only when asked (on a terminal).

use super::Report;
use std::fmt::Write;

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn render(r: &Report, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for f in &r.findings {
        if current != Some(f.file.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{}", p.bold(&f.file));
            current = Some(&f.file);
        }
        let object = if f.namespace.is_empty() {
            format!("{} {}", f.kind, display_name(&f.name))
        } else {
            format!("{} {}/{}", f.kind, f.namespace, display_name(&f.name))
        };
        let what = match &f.path {
            Some(path) => format!("{}: {}", p.dim(path), f.message),
            None => f.message.clone(),
        };
        let _ = writeln!(
            out,
            "  {}:{}  {}  {}  {}",
            f.file,
            f.line,
            object,
            p.red(&format!("[{}]", f.policy)),
            what
        );
    }
    if !r.errors.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        for e in &r.errors {
            let _ = writeln!(out, "{} {e}", p.yellow("error:"));
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let scope = format!(
        "{} in {}",
        plural(r.objects, "object", "objects"),
        plural(r.files, "file", "files")
    );
    let errors = if r.errors.is_empty() {
        String::new()
    } else {
        format!(", {}", plural(r.errors.len(), "error", "errors"))
    };
    if r.findings.is_empty() && r.errors.is_empty() {
        let _ = writeln!(out, "{} {scope}: all accepted", p.green("✓"));
    } else {
        let _ = writeln!(
            out,
            "{} {scope}: {} rejected ({}){errors}",
            p.red("✗"),
            r.rejected,
            plural(r.findings.len(), "finding", "findings")
        );
    }
    out
}

fn display_name(name: &str) -> &str {
    if name.is_empty() { "<unnamed>" } else { name }
}
