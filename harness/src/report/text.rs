//! The text report: findings grouped by file, each with `file:line`, the object, the policy
//! and the message; errors; a one-line summary. Colour only when asked (on a terminal).

use super::{Finding, Totals};
use crate::manifest::InputError;
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

/// One finding line, after a heading (the file) when it starts a new file.
pub fn finding(out: &mut String, last_file: Option<&str>, f: &Finding, color: bool) {
    let p = Paint(color);
    if last_file != Some(f.file.as_str()) {
        if last_file.is_some() {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", p.bold(&f.file));
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
    // An object from a cluster has no line: its heading already names it.
    let place = match f.line {
        0 => String::new(),
        line => format!("{}:{line}  ", f.file),
    };
    let _ = writeln!(
        out,
        "  {place}{}  {}  {}",
        object,
        p.red(&format!("[{}]", f.policy)),
        what
    );
}

/// The errors and the summary line.
pub fn finish(
    out: &mut String,
    any_findings: bool,
    errors: &[InputError],
    t: &Totals,
    color: bool,
) {
    let p = Paint(color);
    if !errors.is_empty() {
        if any_findings {
            out.push('\n');
        }
        for e in errors {
            let _ = writeln!(out, "{} {e}", p.yellow("error:"));
        }
    }
    if any_findings || !errors.is_empty() {
        out.push('\n');
    }
    let scope = match &t.cluster {
        None => format!(
            "{} in {}",
            plural(t.objects, "object", "objects"),
            plural(t.files, "file", "files")
        ),
        Some(c) => format!(
            "{} in {} of {}",
            plural(t.objects, "object", "objects"),
            plural(c.namespaces, "namespace", "namespaces"),
            c.context
        ),
    };
    let error_count = if t.errors == 0 {
        String::new()
    } else {
        format!(", {}", plural(t.errors, "error", "errors"))
    };
    if t.findings == 0 && t.errors == 0 {
        let _ = writeln!(out, "{} {scope}: all accepted", p.green("✓"));
    } else {
        let _ = writeln!(
            out,
            "{} {scope}: {} rejected ({}){error_count}",
            p.red("✗"),
            t.rejected,
            plural(t.findings, "finding", "findings")
        );
    }
}

fn display_name(name: &str) -> &str {
    if name.is_empty() { "<unnamed>" } else { name }
}
