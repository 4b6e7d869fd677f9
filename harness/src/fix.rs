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
use crate::context::ObjectStore;
use crate::engine::{Engine, Finding, Repair};
use crate::manifest::{self, Input, InputError, Object, SourceFile};
use crate::report::Report;
use crate::stream::{Budget, PerFile, Read};
use crate::yaml;
use crate::yaml_edit::{self, DocEdit};
use anyhow::Result;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
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
    /// Objects of it were repaired: they were evaluated as repaired, not as read
    /// ([`remaining`]).
    pub repaired: bool,
    /// One of them was too large to evaluate while it was held for the edit (it alone is over
    /// the budget): what remains in the file is found by reading it again.
    pub read_again: bool,
}

/// Everything `fix` read and found, before anything is written.
pub struct Fixed {
    /// The files as read (original texts), their objects' identities, and the errors: the
    /// unreadable documents, and the objects over the memory budget (not fixed in this run).
    pub loaded: Loaded,
    /// Per file of `loaded.files`.
    pub fixes: Vec<FileFix>,
    /// The findings on the files as read.
    findings: Vec<Finding>,
}

/// Read, repair and check every input (one object at a time: see [`crate::stream`]), and edit
/// each file with something to fix; nothing is written. A file with a read or parse error is
/// never edited.
pub fn run(inputs: &[Input], read: &Read<'_>, engine: &Engine, config: &Config) -> Result<Fixed> {
    engine.can_fix()?;
    let store = ObjectStore::new();
    let kinds = engine.fix_context_kinds();
    if !kinds.is_empty() {
        // A mutating policy that reads the cluster sees all of it (no policy of ours does).
        for (i, input) in inputs.iter().enumerate() {
            if let Ok(src) = read(i, input) {
                manifest::parse_each(i, &src, &mut |o| {
                    if kinds.contains(&(o.api_version(), o.kind())) {
                        store.insert(o.value);
                    }
                });
            }
        }
    }
    // Half the budget for the context and the objects waiting for it, half for the changed
    // objects held until they are written (apart: neither starves the other).
    let waiting = Budget::new(Budget::DEFAULT / 2);
    let held = Budget::new(Budget::DEFAULT / 2);
    let repairs = Repairs {
        engine,
        config,
        store,
        budget: &held,
    };
    let (loaded, findings, states) =
        crate::stream::check_with(inputs, read, engine, config, &waiting, &repairs);
    let fixes = states.into_iter().map(|s| s.fix).collect();
    Ok(Fixed {
        loaded,
        fixes,
        findings,
    })
}

/// `fix`'s work on each file as it is read: every object repaired on the parsing thread (kept
/// only when changed, within the memory budget), the file edited once read.
struct Repairs<'a> {
    engine: &'a Engine,
    config: &'a Config,
    store: ObjectStore,
    /// Holds the changed objects (as read and repaired) until their file is edited.
    budget: &'a Budget,
}

/// What [`Repairs`] keeps of one file.
#[derive(Default)]
struct FileState {
    /// The file's text with the edits made so far (`None`: none yet).
    text: Option<String>,
    /// The changed objects as read, and repaired, not yet written into `text`.
    held: Vec<(Object, Repair)>,
    /// Their share of the budget.
    kept: u64,
    changes: Vec<Change>,
    /// Why the file cannot be edited.
    failed: Option<String>,
    /// Lines the edits so far added (the held objects' lines are those of the file as read).
    added_lines: usize,
    /// Where the documents still to write start at the earliest: the start of the last
    /// flush's first region (a `kind: List` may have items on both sides of a flush).
    from: Mark,
    fix: FileFix,
}

/// A line start in a text: its byte offset and its (1-based) line number.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mark {
    offset: usize,
    line: usize,
}

impl Default for Mark {
    fn default() -> Self {
        Mark { offset: 0, line: 1 }
    }
}

impl Repairs<'_> {
    /// Write the held objects into the file's text and let them go.
    fn flush(&self, state: &mut FileState, src: &SourceFile) {
        let held = std::mem::take(&mut state.held);
        self.budget.release(std::mem::take(&mut state.kept));
        if held.is_empty() || state.failed.is_some() {
            return;
        }
        state.changes.extend(held.iter().map(|(o, r)| {
            Change {
                line: o.line,
                object: o.describe(),
                policies: r
                    .by
                    .iter()
                    .map(|&p| self.engine.policies[p].name.clone())
                    .collect(),
            }
        }));
        let mut text = state.text.take().unwrap_or_else(|| src.text.clone());
        // Only the documents from the first held object's to the last one's are read and
        // edited again (a JSON file is one value): flushing costs what it writes, not the file.
        // A large region is cut into runs of whole documents, edited at once on every core.
        let parts: Vec<Part<'_>> = if src.json {
            vec![Part {
                range: 0..text.len(),
                start: Mark::default(),
                first_doc: 0,
                held: &held[..],
            }]
        } else {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            runs(&text, &held, state.added_lines, state.from, threads)
                .into_iter()
                .map(|run| {
                    let (range, start, first_doc) =
                        region(&text, run, state.added_lines, state.from);
                    Part {
                        range,
                        start,
                        first_doc,
                        held: run,
                    }
                })
                .collect()
        };
        let edit_part = |p: &Part<'_>| edit(&text[p.range.clone()], src.json, p.first_doc, p.held);
        let edited: Vec<Result<String, String>> = match &parts[..] {
            [one] => vec![edit_part(one)],
            [first, rest @ ..] => std::thread::scope(|s| {
                let others: Vec<_> = rest.iter().map(|p| s.spawn(|| edit_part(p))).collect();
                let joined = others
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                std::iter::once(edit_part(first)).chain(joined).collect()
            }),
            [] => Vec::new(),
        };
        // The first failure in the file's order; else every run written in, the last first
        // (the earlier ranges stay where they are).
        match edited.iter().find_map(|e| e.as_ref().err()) {
            Some(reason) => state.failed = Some(reason.clone()),
            None => {
                for (part, edited) in parts.iter().zip(edited).rev() {
                    let edited = edited.unwrap_or_default();
                    state.added_lines += lines(&edited) - lines(&text[part.range.clone()]);
                    text.replace_range(part.range.clone(), &edited);
                }
                // Nothing before the first region changed.
                if let Some(first) = parts.first() {
                    state.from = first.start;
                }
            }
        }
        state.text = Some(text);
    }
}

/// Held objects to write into one region of a file's text.
struct Part<'h> {
    range: Range<usize>,
    /// The region's first line.
    start: Mark,
    /// The index of the region's first document in the file.
    first_doc: usize,
    held: &'h [(Object, Repair)],
}

/// Below this, the documents of a flush are edited together: a smaller text is not worth a
/// thread, and its style (indentation, quotes) is told from all of it.
const MIN_RUN: usize = 64 << 10;

/// `held` cut into up to `n` runs that share no document (their regions do not overlap): a cut
/// at the first new document past each equal share. Only a region of at least twice
/// [`MIN_RUN`] bytes of `text` is cut.
fn runs<'h>(
    text: &str,
    held: &'h [(Object, Repair)],
    added_lines: usize,
    from: Mark,
    n: usize,
) -> Vec<&'h [(Object, Repair)]> {
    let (whole, _, _) = region(text, held, added_lines, from);
    if n < 2 || whole.len() < 2 * MIN_RUN {
        return vec![held];
    }
    let mut cuts = vec![0];
    for k in 1..n {
        let from = (held.len() * k / n).max(cuts[cuts.len() - 1] + 1);
        if let Some(at) = (from..held.len()).find(|&i| held[i].0.doc != held[i - 1].0.doc) {
            cuts.push(at);
        }
    }
    cuts.push(held.len());
    cuts.dedup();
    cuts.windows(2).map(|w| &held[w[0]..w[1]]).collect()
}

/// The part of `text` (the file with `added_lines` more lines than as read) from the line the
/// first held object's document starts on to the `---` line after the last one's (or the end),
/// where it starts, and the index of that first document. `text` is read from `from`: a line
/// start at or before the first held object's document, inside the document of a `kind: List`
/// item only at its start.
fn region(
    text: &str,
    held: &[(Object, Repair)],
    added_lines: usize,
    from: Mark,
) -> (Range<usize>, Mark, usize) {
    let (first, last) = (&held[0].0, &held[held.len() - 1].0);
    let (first_line, last_line) = (first.line + added_lines, last.line + added_lines);
    // An item of a `kind: List` (its earlier items may have been written in an earlier round)
    // is edited with its whole document: from the line after the `---` before it.
    let whole_document = !first.prefix.is_empty();
    let mut document_start = from;
    let mut start = from;
    let mut end = text.len();
    let mut offset = from.offset;
    for (i, line) in text[from.offset..].split_inclusive('\n').enumerate() {
        let number = from.line + i;
        if number < first_line && yaml::is_document_marker(line) {
            document_start = Mark {
                offset: offset + line.len(),
                line: number + 1,
            };
        }
        if number == first_line {
            start = if whole_document {
                document_start
            } else {
                Mark {
                    offset,
                    line: number,
                }
            };
        }
        if number > last_line && yaml::is_document_marker(line) {
            end = offset;
            break;
        }
        offset += line.len();
    }
    (start.offset..end, start, first.doc)
}

fn lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

impl PerFile for Repairs<'_> {
    type State = FileState;

    fn object(&self, state: &mut FileState, src: &SourceFile, o: &mut Object) -> bool {
        let Some(repair) = self.engine.repair(o, self.config, &self.store) else {
            return true;
        };
        state.fix.repaired = true;
        // The object as read and repaired, and as much again for the syntax tree its edit
        // builds. Over the budget, what this file holds is written into its text first (the
        // documents keep their places: an edit only adds).
        let bytes = 2 * (yaml::estimated_bytes(&o.value) + yaml::estimated_bytes(&repair.object));
        if !self.budget.reserve(bytes) {
            self.flush(state, src);
            // Held by other files' threads: this one object goes over (one document's worth).
            if !self.budget.reserve(bytes) {
                self.budget.force(bytes);
            }
        }
        state.kept += bytes;
        if bytes > self.budget.limit() {
            // Too large to evaluate a copy while it is edited: judged by reading the fixed
            // file again (see `remaining`).
            state.fix.read_again = true;
            state.held.push((o.clone(), repair));
            return false;
        }
        // The object is evaluated as repaired; the one read is held (moved, not copied).
        let read = std::mem::replace(&mut o.value, repair.object.clone());
        let held = Object {
            file: o.file,
            doc: o.doc,
            prefix: o.prefix.clone(),
            line: o.line,
            value: read,
        };
        state.held.push((held, repair));
        true
    }

    fn again(&self, o: &mut Object) {
        if let Some(repair) = self.engine.repair(o, self.config, &self.store) {
            o.value = repair.object;
        }
    }

    fn end(&self, state: &mut FileState, src: &SourceFile, errors: &[InputError]) {
        self.flush(state, src);
        if state.changes.is_empty() || !errors.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut state.changes);
        let fix = std::mem::take(&mut state.fix);
        state.fix = match state.failed.take() {
            None => FileFix {
                fixed: state.text.take(),
                changes,
                ..fix
            },
            Some(reason) => FileFix {
                skipped: Some(reason),
                changes,
                ..fix
            },
        };
    }
}

/// `text` (JSON when `json`; its documents are the file's from `first_doc` on) with the
/// repaired objects, edited in place; `yaml_edit` reads it back (a JSON file is also read back
/// as JSON).
fn edit(
    text: &str,
    json: bool,
    first_doc: usize,
    changed: &[(Object, Repair)],
) -> Result<String, String> {
    if json && json_values(text) > 1 {
        return Err("several concatenated JSON values: not edited".to_string());
    }
    // The documents of `kind: List`s with a changed item, read again whole.
    let lists: BTreeSet<usize> = changed
        .iter()
        .filter(|(o, _)| !o.prefix.is_empty())
        .map(|(o, _)| o.doc - first_doc)
        .collect();
    let mut whole: BTreeMap<usize, Value> = BTreeMap::new();
    if !lists.is_empty() {
        yaml::each_document(text, &yaml::LIMITS, false, &mut |d| {
            if lists.contains(&d.index) {
                whole.insert(d.index, d.value);
            }
        });
    }
    // Per document: its value before and after (a `kind: List` gets its items replaced).
    let mut docs: BTreeMap<usize, (Cow<'_, Value>, Cow<'_, Value>)> = BTreeMap::new();
    for (o, r) in changed {
        let fixed = &r.object;
        if o.prefix.is_empty() {
            docs.insert(
                o.doc - first_doc,
                (Cow::Borrowed(&o.value), Cow::Borrowed(fixed)),
            );
            continue;
        }
        let index = list_index(&o.prefix)
            .ok_or_else(|| format!("document {}: {}: unexpected place", o.doc + 1, o.prefix))?;
        let (_, after) = match docs.entry(o.doc - first_doc) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let doc = whole
                    .get(&(o.doc - first_doc))
                    .ok_or_else(|| format!("document {} not found again", o.doc + 1))?;
                v.insert((Cow::Borrowed(doc), Cow::Owned(doc.clone())))
            }
        };
        match after.to_mut().pointer_mut(&format!("/items/{index}")) {
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
    let text = yaml_edit::apply_additions(text, &edits).map_err(|mut e| {
        // Documents counted in the file.
        e.doc_index += first_doc;
        e.to_string()
    })?;
    if json {
        let same = match serde_json::from_str::<Value>(&text) {
            Ok(v) => edits.first().is_some_and(|e| *e.after == v),
            Err(e) => {
                return Err(format!(
                    "the edited text would not read back (JSON line {}: invalid JSON: {}); not edited",
                    e.line().max(1),
                    manifest::json_reason(&e)
                ));
            }
        };
        if !same {
            return Err(
                "the edited text reads back as other objects than the fixed ones; not edited"
                    .to_string(),
            );
        }
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
    let mut out = Vec::new();
    let _ = write_diff(&mut out, name, old, new);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`unified_diff`], written to `out` as it is made.
///
/// The lines that changed come from imara-diff (histogram diff, git's slider heuristic): it sets
/// aside the lines found on one side only before aligning the rest, as GNU diff and git do, so
/// a file whose every other line changed (one-line JSON documents) takes milliseconds, not the
/// seconds of a plain Myers diff. The hunks are printed here, as `diff -u` prints them (ranges
/// `start,len`, a lone line as `start`, `\ No newline at end of file`), straight to `out`: the
/// crate's own printer builds each hunk in a string first.
pub fn write_diff(
    out: &mut impl std::io::Write,
    name: &str,
    old: &str,
    new: &str,
) -> std::io::Result<()> {
    use imara_diff::{Algorithm, Diff, InternedInput};
    const CONTEXT: u32 = 3;
    let input = InternedInput::new(old, new);
    let mut diff = Diff::compute(Algorithm::Histogram, &input);
    diff.postprocess_lines(&input);
    let (before, after) = (&input.before, &input.after);
    let line = |t: imara_diff::Token| input.interner[t];
    let write_line = |out: &mut dyn std::io::Write, tag: u8, text: &str| {
        out.write_all(&[tag])?;
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n\\ No newline at end of file\n")?;
        }
        Ok::<(), std::io::Error>(())
    };
    // Hunks closer than twice the context share one block of the output.
    let mut groups: Vec<Vec<imara_diff::Hunk>> = Vec::new();
    for hunk in diff.hunks() {
        match groups.last_mut() {
            Some(g) if hunk.before.start - g[g.len() - 1].before.end <= 2 * CONTEXT => g.push(hunk),
            _ => groups.push(vec![hunk]),
        }
    }
    if !groups.is_empty() {
        writeln!(out, "--- a/{name}\n+++ b/{name}")?;
    }
    let range = |start: u32, end: u32| match end - start {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        len => format!("{},{len}", start + 1),
    };
    for g in &groups {
        let (first, last) = (&g[0], &g[g.len() - 1]);
        let lead = first.before.start.min(CONTEXT);
        let trail = (before.len() as u32 - last.before.end).min(CONTEXT);
        let (old_start, new_start) = (first.before.start - lead, first.after.start - lead);
        let old_end = last.before.end + trail;
        let new_end = last.after.end + trail;
        writeln!(
            out,
            "@@ -{} +{} @@",
            range(old_start, old_end),
            range(new_start, new_end)
        )?;
        let mut pos = old_start;
        for hunk in g {
            for &t in &before[pos as usize..hunk.before.start as usize] {
                write_line(out, b' ', line(t))?;
            }
            for &t in &before[hunk.before.start as usize..hunk.before.end as usize] {
                write_line(out, b'-', line(t))?;
            }
            for &t in &after[hunk.after.start as usize..hunk.after.end as usize] {
                write_line(out, b'+', line(t))?;
            }
            pos = hunk.before.end;
        }
        for &t in &before[pos as usize..old_end as usize] {
            write_line(out, b' ', line(t))?;
        }
    }
    Ok(())
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

/// The report of what the policies still find once fixed. The repaired objects were evaluated
/// as repaired when they were read ([`run`]): a fixed file keeps those findings, its objects
/// and errors moved to their lines in the fixed text ([`Moved`]). A file with repaired objects
/// that was not fixed (skipped, unreadable, or not written: its objects are the ones read), or
/// with one too large to evaluate while it was edited ([`FileFix::read_again`]), is read again,
/// and with it every file holding objects the policies may look up (the cluster state they
/// see); every file when one not fixed holds such objects (the first reading saw them repaired).
pub fn remaining(fixed: &Fixed, engine: &Engine, config: &Config) -> Report {
    let Fixed {
        loaded,
        fixes,
        findings,
    } = fixed;
    let count = loaded.files.len();
    let repaired = |k: usize| fixes.get(k).is_some_and(|f| f.repaired);
    if !(0..count).any(repaired) {
        return check::build_report(loaded, engine, findings.clone());
    }
    let moved: Vec<Option<Moved>> = (0..count)
        .map(|k| {
            let fix = fixes.get(k).filter(|f| !f.read_again)?;
            Moved::new(&loaded.files[k].text, fix.fixed.as_deref()?)
        })
        .collect();
    let stale = |k: usize| repaired(k) && moved[k].is_none();
    let kinds = engine.context_kinds();
    let mut holds_context = vec![false; count];
    for o in &loaded.objects {
        if kinds.contains(&(o.api_version(), o.kind())) {
            holds_context[o.file] = true;
        }
    }
    let context_stale = (0..count).any(|k| {
        repaired(k) && holds_context[k] && fixes.get(k).is_some_and(|f| f.fixed.is_none())
    });
    let any_stale = (0..count).any(stale);
    // In input order, so that of two objects of the same identity the later still counts.
    let again_files: Vec<usize> = (0..count)
        .filter(|&k| context_stale || stale(k) || (any_stale && holds_context[k]))
        .collect();
    let (again, again_findings) = if again_files.is_empty() {
        (Loaded::default(), Vec::new())
    } else {
        let inputs: Vec<Input> = again_files
            .iter()
            .map(|&k| loaded.files[k].input.clone())
            .collect();
        let read = |j: usize, _: &Input| {
            let k = again_files[j];
            let src = &loaded.files[k];
            Ok(SourceFile {
                input: src.input.clone(),
                name: src.name.clone(),
                text: fixes[k].fixed.clone().unwrap_or_else(|| src.text.clone()),
                json: src.json,
            })
        };
        crate::stream::check(&inputs, &read, engine, config)
    };

    // The objects of each file, from the first reading (moved when fixed) or the second,
    // renumbered; the errors of a file read again are those of the second reading.
    let read_again: std::collections::HashSet<&str> = again_files
        .iter()
        .map(|&k| loaded.files[k].name.as_str())
        .collect();
    let moved_by_name: std::collections::HashMap<&str, &Moved> = (0..count)
        .filter_map(|k| Some((loaded.files[k].name.as_str(), moved[k].as_ref()?)))
        .collect();
    let mut merged = Loaded {
        files: Vec::with_capacity(count),
        objects: Vec::new(),
        errors: loaded
            .errors
            .iter()
            .filter(|e| !read_again.contains(e.file.as_str()))
            .map(|e| InputError {
                line: e
                    .line
                    .map(|l| moved_by_name.get(e.file.as_str()).map_or(l, |m| m.line(l))),
                ..e.clone()
            })
            .collect(),
    };
    merged.errors.extend(again.errors);
    let mut merged_findings = Vec::new();
    let first_reading = file_ranges(&loaded.objects, count);
    let second_reading = file_ranges(&again.objects, again.files.len());
    for (k, src) in loaded.files.iter().enumerate() {
        let position = merged.files.len();
        let (objects, findings, range, file, shift) = match again_files.iter().position(|&c| c == k)
        {
            Some(j) => (
                &again.objects,
                &again_findings,
                second_reading[j].clone(),
                again.files[j].clone(),
                None,
            ),
            None => {
                let shift = moved[k].as_ref();
                let file = match fixes.get(k).and_then(|f| f.fixed.as_ref()) {
                    Some(text) if shift.is_some() => SourceFile {
                        text: text.clone(),
                        ..src.clone()
                    },
                    _ => src.clone(),
                };
                (
                    &loaded.objects,
                    findings,
                    first_reading[k].clone(),
                    file,
                    shift,
                )
            }
        };
        let base = merged.objects.len();
        merged
            .objects
            .extend(objects[range.clone()].iter().map(|o| Object {
                file: position,
                line: shift.map_or(o.line, |m| m.line(o.line)),
                ..o.clone()
            }));
        // Findings are in object order.
        let from = findings.partition_point(|f| f.object < range.start);
        let to = findings.partition_point(|f| f.object < range.end);
        merged_findings.extend(findings[from..to].iter().map(|f| Finding {
            object: f.object - range.start + base,
            ..f.clone()
        }));
        merged.files.push(file);
    }
    check::build_report(&merged, engine, merged_findings)
}

/// Where the lines of a file as read are in its fixed text. An edit only adds to a document,
/// after the line it starts on (an object's line, also for the items of a `kind: List`), and
/// never a `---` line: the documents pair up by their markers, and a line at or after a
/// document's start moves with the document's marker.
struct Moved {
    /// The `---` lines of the text as read, and of the fixed text.
    old: Vec<usize>,
    new: Vec<usize>,
}

impl Moved {
    /// `None` when the two texts' document markers do not pair up.
    fn new(old: &str, new: &str) -> Option<Moved> {
        let markers = |text: &str| -> Vec<usize> {
            yaml::document_markers(text)
                .into_iter()
                .map(|m| m.0)
                .collect()
        };
        let (old, new) = (markers(old), markers(new));
        (old.len() == new.len()).then_some(Moved { old, new })
    }

    /// Line `line` of the text as read in the fixed text.
    fn line(&self, line: usize) -> usize {
        match self.old.partition_point(|&m| m <= line) {
            0 => line,
            k => line - self.old[k - 1] + self.new[k - 1],
        }
    }
}

/// The range of `objects` (grouped by file, in file order) each of `files` files holds.
fn file_ranges(objects: &[Object], files: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::with_capacity(files);
    let mut start = 0;
    for file in 0..files {
        let end = start
            + objects[start..]
                .iter()
                .take_while(|o| o.file == file)
                .count();
        out.push(start..end);
        start = end;
    }
    out
}

/// Run `fix`; returns the exit code. An `Err` is a usage or config error (exit 2).
#[cfg(not(target_arch = "wasm32"))]
pub fn main(args: Args) -> Result<i32> {
    use std::io::Write;

    let config = check::load_config(args.config.as_deref())?;
    let inputs = check::inputs(&args.paths, &config)?;
    let engine = Engine::native(&config)?;
    let mut fixed = run(&inputs, &|_, i| manifest::read(i), &engine, &config)?;
    let (loaded, fixes) = (&fixed.loaded, &mut fixed.fixes);

    // The diffs, or the text of stdin, go out as they are made (a diff can be larger than
    // the file).
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for (src, fix) in loaded.files.iter().zip(fixes.iter_mut()) {
        let Some(text) = &fix.fixed else {
            if src.input == Input::Stdin && !args.diff {
                let _ = stdout.write_all(src.text.as_bytes());
            }
            continue;
        };
        if args.diff {
            let _ = write_diff(&mut stdout, &src.name, &src.text, text);
            continue;
        }
        match &src.input {
            Input::Stdin => {
                let _ = stdout.write_all(text.as_bytes());
            }
            Input::File(path) => {
                if let Err(e) = write::replace(path, &src.text, text) {
                    fix.skipped = Some(e);
                    fix.fixed = None;
                }
            }
        }
    }
    let report = remaining(&fixed, &engine, &config);
    let mut text = summary(&fixed.loaded, &fixed.fixes, args.diff);
    let color = args.color.enabled();
    text.push_str(&report.render(crate::report::Format::Text, color));
    // The diff, or the fixed text of stdin, owns stdout: the rest goes to stderr then.
    let to_stderr = args.diff || inputs.contains(&Input::Stdin);
    if to_stderr {
        let _ = stdout.flush();
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
    let changed = fixed
        .fixes
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

#[cfg(test)]
mod tests {
    use super::{Mark, Object, Repair, region, unified_diff};
    use crate::manifest::{self, Input, SourceFile};

    /// The objects of `text` (a YAML file), each with a repair that changes nothing.
    fn held(text: &str) -> Vec<(Object, Repair)> {
        let src = SourceFile {
            input: Input::Stdin,
            name: "-".to_string(),
            text: text.to_string(),
            json: false,
        };
        let mut out = Vec::new();
        let errors = manifest::parse_each(0, &src, &mut |o| {
            let object = o.value.clone();
            out.push((o, Repair { object, by: vec![] }));
        });
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    #[test]
    fn a_region_read_from_the_last_flush_is_the_one_read_from_the_start() {
        let pod = |name: &str, indent: &str| {
            format!(
                "{indent}apiVersion: v1\n{indent}kind: Pod\n{indent}metadata: {{name: {name}}}\n"
            )
        };
        let item = |name: &str| format!("-{}", &pod(name, "  ")[1..]);
        let text = &format!(
            "# head\n---\n{}---\n# a list\napiVersion: v1\nkind: List\nitems:\n{}{}{}---\n{}...\n---\n{}",
            pod("a", ""),
            item("b"),
            item("c"),
            item("d"),
            pod("e", ""),
            pod("f", "")
        );
        let objects = held(text);
        assert_eq!(objects.len(), 6);
        let line_of = |m: &Mark| text[..m.offset].matches('\n').count() + 1;
        // Any two flushes in a row (the second one starting anywhere after the first): read
        // from where the first flush's region starts, the second flush's region is the one read
        // from the start, and so is where it starts.
        for begin in 0..objects.len() {
            for cut in begin + 1..objects.len() {
                for end in cut + 1..=objects.len() {
                    let (first, from, _) = region(text, &objects[begin..cut], 0, Mark::default());
                    assert_eq!(from.offset, first.start);
                    assert_eq!(from.line, line_of(&from));
                    let second = &objects[cut..end];
                    let whole = region(text, second, 0, Mark::default());
                    let resumed = region(text, second, 0, from);
                    assert_eq!(resumed, whole, "{begin}..{cut}, then ..{end}");
                    assert_eq!(whole.1.line, line_of(&whole.1));
                }
            }
        }
        // A list item's region is its whole document, from the line after its `---`.
        let (range, start, doc) = region(text, &objects[2..3], 0, Mark::default());
        assert_eq!(doc, 1);
        assert!(text[range.clone()].starts_with("# a list\napiVersion: v1\nkind: List\n"));
        assert!(text[range].ends_with("  metadata: {name: d}\n"));
        assert_eq!(start.line, 7);
    }

    /// `diff -u` (GNU diffutils) of two texts, without its two header lines.
    fn gnu_diff(old: &str, new: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, old).unwrap();
        std::fs::write(&b, new).unwrap();
        let out = std::process::Command::new("diff")
            .arg("-u")
            .args([&a, &b])
            .output()
            .expect("run diff");
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .skip(2)
            .flat_map(|l| [l, "\n"])
            .collect::<String>()
    }

    #[test]
    fn the_diff_is_the_one_diff_u_prints() {
        let numbered = |n: usize| (1..=n).map(|i| format!("line {i}\n")).collect::<String>();
        let ten = numbered(10);
        let twenty = numbered(20);
        let cases: Vec<(String, String)> = vec![
            // An addition at the start, in the middle, at the end.
            (ten.clone(), format!("new\n{ten}")),
            (ten.clone(), ten.replace("line 5\n", "line 5\n  added\n")),
            (ten.clone(), format!("{ten}last\n")),
            // Two additions 6 lines apart share a hunk; 7 apart they do not.
            (
                twenty.clone(),
                twenty
                    .replace("line 4\n", "line 4\nA\n")
                    .replace("line 10\n", "line 10\nB\n"),
            ),
            (
                twenty.clone(),
                twenty
                    .replace("line 4\n", "line 4\nA\n")
                    .replace("line 11\n", "line 11\nB\n"),
            ),
            // A changed line; the last line without a newline, changed or kept.
            (ten.clone(), ten.replace("line 7\n", "line 7 changed\n")),
            (
                ten.trim_end().to_string(),
                ten.trim_end().replace("line 10", "line 10 changed"),
            ),
            (ten.trim_end().to_string(), ten.clone()),
            (
                ten.trim_end().to_string(),
                ten.replace("line 9\n", "line 9\nX\n")
                    .trim_end()
                    .to_string(),
            ),
            // From and to an empty file.
            (String::new(), "a\nb\n".to_string()),
            ("a\n".to_string(), String::new()),
        ];
        for (old, new) in cases {
            let ours = unified_diff("f", &old, &new);
            let (header, body) = ours.split_at(ours.find("@@").unwrap_or(0));
            assert_eq!(header, "--- a/f\n+++ b/f\n", "{old:?} -> {new:?}");
            assert_eq!(body, gnu_diff(&old, &new), "{old:?} -> {new:?}");
        }
        assert_eq!(unified_diff("f", &ten, &ten), "");
    }
}
