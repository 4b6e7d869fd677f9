//! `stackguard fix`: repair manifest files with the fill-ins of the mutating policies (the very
//! rule code the admission chain runs), as minimal edits: only the added keys and list items
//! change, every other byte of the file stays as it was (`yaml_edit`). `--diff` prints a unified
//! diff instead of writing.
//!
//! Each object meets the mutating policies that review it one after the other (as the API
//! server calls mutating webhooks), each filling in what it finds missing whatever its `mutate`
//! setting (fixing is what was asked for), with the other settings, exclusions and exemptions of
//! `.stackguard.yaml`. A policy only ever fills in all of what it needs or nothing (see
//! `stackguard_common::mutate`), so what `fix` writes passes every policy that changed it.
//!
//! A file that cannot be read or parsed, or whose edit would not be safe, is reported and left
//! untouched; the other files are still fixed. Writes are atomic (a temporary file in the same
//! directory, renamed over the original). Fixing again changes nothing.
//!
//! Exit codes as `check`: 0 nothing needed fixing and no finding remains; 1 something was fixed
//! (with `--diff`: would be), a finding remains, or a file was skipped or unreadable; 2 usage
//! and config errors.

use crate::check::{self, Color, Loaded};
use crate::config::Config;
use crate::engine::{Engine, Repair};
use crate::manifest::{self, Object, SourceFile};
use crate::report::{Format, Report};
use crate::yaml_edit::{self, DocEdit};
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Files or directories (recursive: .yaml, .yml, .json) to fix in place; `-` reads stdin
    /// and writes the fixed text to stdout. Default: the current directory.
    pub paths: Vec<PathBuf>,
    /// Print the changes as a unified diff on stdout and write nothing.
    #[arg(long)]
    pub diff: bool,
    /// Config file (default: .stackguard.yaml in the current directory, if present).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Colour of the report: auto (only on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// One repaired object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Line where the object starts.
    pub line: usize,
    /// `Kind namespace/name`.
    pub object: String,
    /// The policies that filled something in, in the order they ran.
    pub policies: Vec<String>,
}

/// What fixing one file gives.
#[derive(Debug, Clone, Default)]
pub struct FileFix {
    /// The fixed text (`None`: nothing to fix, or the file is skipped).
    pub fixed: Option<String>,
    pub changes: Vec<Change>,
    /// Why the file is left untouched although something in it needs fixing.
    pub skipped: Option<String>,
}

/// Fix every file of `loaded`, the objects of all of them forming the cluster state. A file
/// with a read or parse error is never edited (the error is in `loaded.errors`).
pub fn fix_loaded(loaded: &Loaded, engine: &Engine, config: &Config) -> Result<Vec<FileFix>> {
    let repaired = engine.fix(&loaded.objects, config)?;
    let mut per_file: Vec<Vec<(&Object, &Repair)>> = vec![Vec::new(); loaded.files.len()];
    for (o, r) in loaded.objects.iter().zip(&repaired) {
        if let Some(r) = r {
            per_file[o.file].push((o, r));
        }
    }
    let work: Vec<(usize, &SourceFile)> = loaded.files.iter().enumerate().collect();
    Ok(crate::engine::par_map(
        &work,
        || (),
        |_, _, (i, src)| {
            let changed = &per_file[*i];
            if changed.is_empty() || loaded.errors.iter().any(|e| e.file == src.name) {
                return FileFix::default();
            }
            let changes = changed
                .iter()
                .map(|(o, r)| Change {
                    line: o.line,
                    object: describe(o),
                    policies: r
                        .by
                        .iter()
                        .map(|&p| engine.policies[p].name.clone())
                        .collect(),
                })
                .collect();
            let file_objects: Vec<&Object> =
                loaded.objects.iter().filter(|o| o.file == *i).collect();
            match edit(src, &file_objects, changed) {
                Ok(text) => FileFix {
                    fixed: Some(text),
                    changes,
                    skipped: None,
                },
                Err(reason) => FileFix {
                    fixed: None,
                    changes,
                    skipped: Some(reason),
                },
            }
        },
    ))
}

/// `Kind namespace/name`, as the text report names objects.
fn describe(o: &Object) -> String {
    match o.namespace() {
        "" => format!("{} {}", o.kind(), o.name()),
        ns => format!("{} {ns}/{}", o.kind(), o.name()),
    }
}

/// The text of `src` with the repaired objects, edited in place; checked by reading it back.
fn edit(
    src: &SourceFile,
    objects: &[&Object],
    changed: &[(&Object, &Repair)],
) -> Result<String, String> {
    if src.json && json_values(&src.text) > 1 {
        return Err("several concatenated JSON values: not edited".to_string());
    }
    // Per document: its value before and after (a `kind: List` gets its items replaced).
    let mut docs: BTreeMap<usize, (Value, Value)> = BTreeMap::new();
    let mut whole: Option<Vec<crate::yaml::Document>> = None;
    for (o, r) in changed {
        let fixed = &r.object;
        if o.prefix.is_empty() {
            docs.insert(o.doc, (o.value.clone(), fixed.clone()));
            continue;
        }
        let index = list_index(&o.prefix)
            .ok_or_else(|| format!("document {}: {}: unexpected place", o.doc + 1, o.prefix))?;
        let (_, after) = match docs.entry(o.doc) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let all =
                    whole.get_or_insert_with(|| crate::yaml::parse_stream(&src.text).documents);
                let doc = all
                    .iter()
                    .find(|d| d.index == o.doc)
                    .ok_or_else(|| format!("document {} not found again", o.doc + 1))?;
                v.insert((doc.value.clone(), doc.value.clone()))
            }
        };
        match after.pointer_mut(&format!("/items/{index}")) {
            Some(item) => *item = fixed.clone(),
            None => {
                return Err(format!(
                    "document {}: {} not found again",
                    o.doc + 1,
                    o.prefix
                ));
            }
        }
    }
    let edits: Vec<DocEdit<'_>> = docs
        .iter()
        .map(|(&doc_index, (before, after))| DocEdit {
            doc_index,
            before,
            after,
        })
        .collect();
    let text = yaml_edit::apply_additions(&src.text, &edits).map_err(|e| e.to_string())?;
    // Read it back: exactly the fixed objects, in the same places, or nothing is written.
    let back = manifest::parse(
        0,
        &SourceFile {
            text: text.clone(),
            ..src.clone()
        },
    );
    let expected = objects.iter().map(|o| {
        changed
            .iter()
            .find(|(c, _)| std::ptr::eq(*c, *o))
            .map_or(&o.value, |(_, r)| &r.object)
    });
    if let Some(e) = back.errors.first() {
        let line = e.line.map_or(String::new(), |l| format!(" line {l}:"));
        return Err(format!(
            "the edited text would not read back ({}{line} {}); not edited",
            if src.json { "JSON" } else { "YAML" },
            e.message
        ));
    }
    let same =
        back.objects.len() == objects.len() && back.objects.iter().map(|o| &o.value).eq(expected);
    if !same {
        return Err(
            "the edited text reads back as other objects than the fixed ones; not edited"
                .to_string(),
        );
    }
    Ok(text)
}

/// `items[3]` → 3.
fn list_index(prefix: &str) -> Option<usize> {
    prefix
        .strip_prefix("items[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// How many top-level JSON values a (readable) JSON file holds.
fn json_values(text: &str) -> usize {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde::de::IgnoredAny>()
        .take_while(Result::is_ok)
        .count()
}

/// A unified diff of one file (`a/NAME`, `b/NAME` headers, 3 lines of context), as `git diff`
/// shows it; empty when nothing changed.
pub fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// `loaded` with the fixed texts in place of the originals (for the report of what remains).
pub fn after(loaded: &Loaded, fixes: &[FileFix]) -> Loaded {
    let mut out = Loaded {
        files: Vec::with_capacity(loaded.files.len()),
        objects: Vec::with_capacity(loaded.objects.len()),
        errors: loaded.errors.clone(),
    };
    let mut originals: Vec<Vec<&Object>> = vec![Vec::new(); loaded.files.len()];
    for o in &loaded.objects {
        originals[o.file].push(o);
    }
    for (i, (src, fix)) in loaded.files.iter().zip(fixes).enumerate() {
        match &fix.fixed {
            Some(text) => {
                let src = SourceFile {
                    text: text.clone(),
                    ..src.clone()
                };
                out.objects.extend(manifest::parse(i, &src).objects);
                out.files.push(src);
            }
            None => {
                out.objects
                    .extend(originals[i].iter().map(|o| (*o).clone()));
                out.files.push(src.clone());
            }
        }
    }
    out
}

/// What `fix` prints about the files: one block per fixed or skipped file.
pub fn summary(loaded: &Loaded, fixes: &[FileFix], diff: bool) -> String {
    let mut out = String::new();
    for (src, fix) in loaded.files.iter().zip(fixes) {
        if let Some(reason) = &fix.skipped {
            out.push_str(&format!("skipped {}: {reason}\n", src.name));
            continue;
        }
        if fix.fixed.is_none() {
            continue;
        }
        let verb = if diff { "would fix" } else { "fixed" };
        out.push_str(&format!("{verb} {}\n", src.name));
        for c in &fix.changes {
            out.push_str(&format!(
                "  {}:{}  {}  [{}]\n",
                src.name,
                c.line,
                c.object,
                c.policies.join(", ")
            ));
        }
    }
    out
}

/// The report of what the policies still find once fixed.
pub fn remaining(loaded: &Loaded, fixes: &[FileFix], engine: &Engine, config: &Config) -> Report {
    let fixed = after(loaded, fixes);
    let findings = engine.check(&fixed.objects, config);
    check::build_report(&fixed, engine, findings)
}

/// Run `fix`; returns the exit code. An `Err` is a usage or config error (exit 2).
#[cfg(not(target_arch = "wasm32"))]
pub fn main(args: Args) -> Result<i32> {
    use crate::manifest::Input;
    use std::io::Write;

    let config = check::load_config(args.config.as_deref())?;
    let inputs = check::inputs(&args.paths, &config)?;
    let engine = Engine::native(&config)?;
    let loaded = check::load(&inputs);
    let mut fixes = fix_loaded(&loaded, &engine, &config)?;

    let mut stdout = String::new();
    for (src, fix) in loaded.files.iter().zip(fixes.iter_mut()) {
        let Some(text) = &fix.fixed else {
            if src.input == Input::Stdin && !args.diff {
                stdout.push_str(&src.text);
            }
            continue;
        };
        if args.diff {
            stdout.push_str(&unified_diff(&src.name, &src.text, text));
            continue;
        }
        match &src.input {
            Input::Stdin => stdout.push_str(text),
            Input::File(path) => {
                if let Err(e) = write::replace(path, &src.text, text) {
                    fix.skipped = Some(e);
                    fix.fixed = None;
                }
            }
        }
    }
    let report = remaining(&loaded, &fixes, &engine, &config);
    let mut text = summary(&loaded, &fixes, args.diff);
    let color = args.color.enabled();
    text.push_str(&report.render(Format::Text, color));
    // The diff, or the fixed text of stdin, owns stdout: the rest goes to stderr then.
    let to_stderr = args.diff || inputs.contains(&Input::Stdin);
    let _ = std::io::stdout().lock().write_all(stdout.as_bytes());
    if to_stderr {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
    let changed = fixes
        .iter()
        .any(|f| f.fixed.is_some() || f.skipped.is_some());
    Ok(
        if changed || !report.findings.is_empty() || !report.errors.is_empty() {
            1
        } else {
            0
        },
    )
}

/// Atomic replacement of a file's text.
#[cfg(not(target_arch = "wasm32"))]
mod write {
    use std::io::Write;
    use std::path::Path;

    /// Replace the file's text `old` (as decoded when read) by `new`: written to a temporary
    /// file in the same directory (same permissions, a UTF-8 byte-order mark kept), flushed to
    /// disk, then renamed over the file (over a symlink's target). Refused when the file changed
    /// since it was read or is UTF-16.
    pub fn replace(path: &Path, old: &str, new: &str) -> Result<(), String> {
        let fail = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let target = std::fs::canonicalize(path).map_err(|e| fail("cannot resolve", e))?;
        let bytes = std::fs::read(&target).map_err(|e| fail("cannot read again", e))?;
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return Err("UTF-16 files are not rewritten".to_string());
        }
        const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];
        let bom = bytes.starts_with(BOM);
        if &bytes[if bom { 3 } else { 0 }..] != old.as_bytes() {
            return Err("changed while it was being fixed; not written".to_string());
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| fail("cannot create a temporary file", e))?;
        let permissions = std::fs::metadata(&target)
            .map_err(|e| fail("cannot read permissions", e))?
            .permissions();
        let written = (|| {
            if bom {
                tmp.write_all(BOM)?;
            }
            tmp.write_all(new.as_bytes())?;
            tmp.as_file().sync_all()?;
            tmp.as_file().set_permissions(permissions)
        })();
        written.map_err(|e| fail("cannot write", e))?;
        tmp.persist(&target)
            .map_err(|e| fail("cannot replace the file", e.error))?;
        Ok(())
    }
}
