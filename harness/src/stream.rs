//! Check inputs as they are read: each object is evaluated as soon as its document is parsed
//! and then dropped (a report needs only its identity and place), so memory follows one
//! document per thread, not the inputs. Parsing (a thread per file) and evaluation (a thread
//! per core) overlap through a bounded queue.
//!
//! Context-aware rules see the objects of the kinds they may look up; those arrive while
//! others are evaluated. An evaluation that looked anything up before every input was read
//! (see [`context::lookups`]) is made again once the cluster state is complete, so the findings
//! are exactly those of evaluating after reading everything. The context, and the objects kept
//! for that second pass (as their JSON text: a tenth to a thirtieth of their parsed size), are
//! bounded by a [`Budget`] (the objects by half of it); an object past it is parsed again from
//! its file's text (kept for the report) for the second pass, so the findings never depend on
//! the budget or on how far the evaluation is behind the reading.

use crate::check::Loaded;
use crate::config::Config;
use crate::context::{self, ObjectStore};
use crate::engine::{Engine, Finding, Subject, Worker, par_map};
use crate::manifest::{self, Input, InputError, Object, SourceFile};
use crate::yaml;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Parsed objects go to the evaluating threads in batches of this many (fewer at the end of
/// a file), and this many batches may wait for them.
const BATCH: usize = 16;
const QUEUE: usize = 4;

/// How [`check`] reads input `i` (`manifest::read`, or text already in memory).
pub type Read<'a> = dyn Fn(usize, &Input) -> Result<SourceFile, InputError> + Sync + 'a;

/// Work done on the thread that parses a file, beside the evaluation: `fix` repairs each object
/// as it is read (the repaired object is the one evaluated) and edits the file once it is read.
pub trait PerFile: Sync {
    /// What it keeps of one file.
    type State: Send + Default;
    /// An object of `src` as read, before it is evaluated: its value may be replaced by the one
    /// to evaluate (and the one read kept in `state`); `false`: do not evaluate it (its
    /// findings are found otherwise).
    fn object(&self, state: &mut Self::State, src: &SourceFile, o: &mut Object) -> bool;
    /// The same replacement for `o`, parsed again from its file for the second pass (without
    /// the file's state).
    fn again(&self, o: &mut Object);
    /// The file is read; `errors` are its unreadable documents.
    fn end(&self, state: &mut Self::State, src: &SourceFile, errors: &[InputError]);
}

/// A plain check.
impl PerFile for () {
    type State = ();
    fn object(&self, _: &mut (), _: &SourceFile, _: &mut Object) -> bool {
        true
    }
    fn again(&self, _: &mut Object) {}
    fn end(&self, _: &mut (), _: &SourceFile, _: &[InputError]) {}
}

/// One input read and parsed: its text, its unreadable documents and what [`PerFile`] kept.
type FileResult<S> = Result<(SourceFile, Vec<InputError>, S), InputError>;

/// An object of input `input` (the `seq`-th of its file) as evaluated while streaming.
struct Reviewed {
    input: usize,
    seq: usize,
    object: Object,
    findings: Vec<(usize, Option<String>, String)>,
    /// Policies to evaluate again once the cluster state is complete: on the object kept (its
    /// JSON text in `kept`), or (past the budget) on the object parsed again from its file.
    again: Vec<usize>,
    kept: Option<String>,
    /// Why this object's findings may miss context.
    error: Option<String>,
}

/// What the evaluating threads share.
struct Shared<'a> {
    engine: &'a Engine,
    /// What context-aware rules may look up (see [`Engine::context_kinds`]).
    context_kinds: Vec<(&'a str, &'a str)>,
    config: &'a Config,
    store: Arc<ObjectStore>,
    /// Every input has been read: the store is complete.
    complete: AtomicBool,
    /// What is kept for context and for evaluating again.
    budget: &'a Budget,
}

impl Shared<'_> {
    /// Reserve `bytes` of the budget shared by the context and the objects waiting for it.
    fn keep(&self, bytes: u64) -> bool {
        self.budget.reserve(bytes)
    }

    /// Reserve `bytes` to keep an object waiting for the complete context, within half of the
    /// budget: the rest stays for the context (an object can be read again; the context not).
    fn keep_waiting(&self, bytes: u64) -> bool {
        self.budget.reserve_within(bytes, self.budget.limit / 2)
    }

    /// `value` as JSON text, reserved among the objects waiting for the complete context
    /// ([`Shared::keep_waiting`]); `None` when it does not fit (the writing stops there: an
    /// object with aliases may be far larger than its text).
    fn keep_json(&self, value: &Value) -> Option<String> {
        struct Capped(Vec<u8>, usize);
        impl std::io::Write for Capped {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0.len() + buf.len() > self.1 {
                    return Err(std::io::ErrorKind::OutOfMemory.into());
                }
                self.0.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let kept = self.budget.kept.load(Ordering::Relaxed);
        let room = (self.budget.limit / 2).saturating_sub(kept);
        let mut out = Capped(Vec::new(), usize::try_from(room).unwrap_or(usize::MAX));
        serde_json::to_writer(&mut out, value).ok()?;
        let json = String::from_utf8(out.0).ok()?;
        self.keep_waiting(json.len() as u64).then_some(json)
    }

    /// Add a context object (the `seq`-th of input `input`) to the store; `Some(reason)` when
    /// it is over budget.
    fn add_context(&self, input: usize, seq: usize, o: &Object) -> Option<String> {
        if !self.context_kinds.contains(&(o.api_version(), o.kind())) {
            return None;
        }
        if !self.keep(yaml::estimated_bytes(&o.value)) {
            return Some(format!(
                "{}: not kept as cluster context for the other objects: the context and the \
                 objects waiting for it would take more than {} MiB of memory",
                o.describe(),
                self.budget.mib()
            ));
        }
        self.store.insert_ranked(o.value.clone(), (input, seq));
        None
    }

    /// Evaluate `o` (unless `skip`); what looked up an incomplete store is marked to evaluate
    /// again (the object kept as JSON text while the budget allows).
    fn review(&self, worker: &mut Worker, (input, seq, o, skip): Queued) -> Reviewed {
        if skip {
            return Reviewed {
                input,
                seq,
                object: o.identity(),
                findings: Vec::new(),
                again: Vec::new(),
                kept: None,
                error: None,
            };
        }
        let complete = self.complete.load(Ordering::Acquire);
        let mut findings = Vec::new();
        let mut again = Vec::new();
        let subject = Subject::new(&o);
        for p in self.engine.applicable(&o, self.config) {
            let before = context::lookups();
            let got = self.engine.review(worker, p, &subject, &self.store);
            if context::lookups() != before && !complete {
                again.push(p);
                continue;
            }
            findings.extend(got.into_iter().map(|(path, m)| (p, path, m)));
        }
        let kept = if again.is_empty() {
            None
        } else {
            self.keep_json(&o.value)
        };
        Reviewed {
            input,
            seq,
            object: o.identity(),
            findings,
            again,
            kept,
            error: None,
        }
    }
}

/// Read, parse and evaluate every input; objects keep only their identity ([`Object::identity`]).
/// Files, objects, errors and findings come back in input order, as `check::load` and
/// `Engine::check` give them.
pub fn check(
    inputs: &[Input],
    read: &Read<'_>,
    engine: &Engine,
    config: &Config,
) -> (Loaded, Vec<Finding>) {
    let budget = Budget::new(Budget::DEFAULT);
    let (loaded, findings, _) = check_with(inputs, read, engine, config, &budget, &());
    (loaded, findings)
}

/// [`check`] within `budget`, with `per_file` run on each file as it is read; its states come
/// back in the order of `Loaded::files`.
pub fn check_with<H: PerFile>(
    inputs: &[Input],
    read: &Read<'_>,
    engine: &Engine,
    config: &Config,
    budget: &Budget,
    per_file: &H,
) -> (Loaded, Vec<Finding>, Vec<H::State>) {
    let shared = Shared {
        engine,
        context_kinds: engine.context_kinds(),
        config,
        store: Arc::new(ObjectStore::new()),
        complete: AtomicBool::new(false),
        budget,
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut files: Vec<Option<FileResult<H::State>>> = (0..inputs.len()).map(|_| None).collect();
    let mut reviewed = if cores <= 1 {
        inline(inputs, read, &shared, per_file, &mut files)
    } else {
        threaded(inputs, read, &shared, per_file, &mut files, cores)
    };
    reviewed.sort_unstable_by_key(|r| (r.input, r.seq));

    // Number files and objects as `check::load` does.
    let mut loaded = Loaded {
        files: Vec::new(),
        objects: Vec::new(),
        errors: Vec::new(),
    };
    let mut next = reviewed.into_iter().peekable();
    let mut findings = Vec::new();
    let mut again = Vec::new();
    // Per file (position in `loaded.files`): (seq in the file, index, policies) of the objects
    // to evaluate again that were not kept.
    let mut reread: BTreeMap<usize, Wanted> = BTreeMap::new();
    let mut states = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        match file {
            Some(Ok((src, errors, state))) => {
                states.push(state);
                let position = loaded.files.len();
                while let Some(r) = next.next_if(|r| r.input == i) {
                    let index = loaded.objects.len();
                    if let Some(e) = r.error {
                        loaded.errors.push(InputError {
                            file: src.name.clone(),
                            line: Some(r.object.line),
                            message: e,
                        });
                    }
                    findings.extend(r.findings.into_iter().map(|(policy, path, message)| {
                        Finding {
                            object: index,
                            policy,
                            path,
                            message,
                        }
                    }));
                    match r.kept {
                        Some(json) => again.push((position, r.seq, index, r.again, json)),
                        None if !r.again.is_empty() => {
                            reread
                                .entry(position)
                                .or_default()
                                .push((r.seq, index, r.again));
                        }
                        None => {}
                    }
                    loaded.objects.push(Object {
                        file: position,
                        ..r.object
                    });
                }
                loaded.errors.extend(errors);
                loaded.files.push(src);
            }
            Some(Err(e)) => loaded.errors.push(e),
            None => {}
        }
    }

    // The second pass, on the complete cluster state: the objects kept, read from their JSON
    // text (one deeper than serde_json reads, 128 levels, is parsed again from its file).
    let store = shared.store;
    let redone = par_map(
        &again,
        || engine.worker(&store),
        |worker, _, (_, _, index, policies, json)| {
            let mut out = Vec::new();
            let Ok(value) = serde_json::from_str(json) else {
                return (out, false);
            };
            let object = Object {
                value,
                ..loaded.objects[*index].clone()
            };
            review_again(
                engine,
                worker,
                &store,
                (*index, policies, &object),
                &mut out,
            );
            (out, true)
        },
    );
    for ((found, read), (position, seq, index, policies, _)) in redone.into_iter().zip(again) {
        findings.extend(found);
        if !read {
            let wanted = reread.entry(position).or_default();
            let at = wanted.partition_point(|w| w.0 < seq);
            wanted.insert(at, (seq, index, policies));
        }
    }
    // The objects not kept, parsed again from their files' text: each document of a YAML file
    // alone, on every core; what is not found so, and JSON files, from the whole file.
    let read_again = |units: &[Again]| {
        par_map(
            units,
            || engine.worker(&store),
            |worker, _, unit| {
                let mut out = Vec::new();
                let left = unit.parse(&loaded, per_file, &mut |index, policies, o| {
                    review_again(engine, worker, &store, (index, policies, o), &mut out);
                });
                (out, left)
            },
        )
    };
    let mut whole: BTreeMap<usize, Wanted> = BTreeMap::new();
    let units = documents_again(&loaded, reread);
    for (unit, (found, left)) in units.iter().zip(read_again(&units)) {
        findings.extend(found);
        whole.entry(unit.position).or_default().extend(left);
    }
    let units: Vec<Again> = whole
        .into_iter()
        .filter(|(_, left)| !left.is_empty())
        .map(|(position, mut wanted)| {
            wanted.sort_unstable_by_key(|w| w.0);
            Again {
                position,
                span: None,
                wanted,
            }
        })
        .collect();
    findings.extend(read_again(&units).into_iter().flat_map(|(found, _)| found));
    // Object order, then policy order; a policy's own findings keep theirs.
    findings.sort_by_key(|f| (f.object, f.policy));
    (loaded, findings, states)
}

/// Objects of one file to evaluate again: (seq in the file, index, policies), in file order.
type Wanted = Vec<(usize, usize, Vec<usize>)>;

/// What to parse again of one file: the objects `wanted` from one document of a YAML file, its
/// text from its `---` line to the next (`span`, with the number of lines before it), or, from
/// a JSON file (`span: None`), from the whole file.
struct Again {
    position: usize,
    span: Option<(std::ops::Range<usize>, usize)>,
    wanted: Wanted,
}

/// The objects not kept for the second pass (per file position), by document.
fn documents_again(loaded: &Loaded, reread: BTreeMap<usize, Wanted>) -> Vec<Again> {
    let mut out = Vec::new();
    for (position, wanted) in reread {
        let src = &loaded.files[position];
        if src.json {
            out.push(Again {
                position,
                span: None,
                wanted,
            });
            continue;
        }
        let markers = yaml::document_markers(&src.text);
        let mut wanted = wanted.into_iter().peekable();
        while let Some(first) = wanted.next() {
            let doc = loaded.objects[first.1].doc;
            let line = loaded.objects[first.1].line;
            let mut group = vec![first];
            while let Some(w) = wanted.next_if(|w| loaded.objects[w.1].doc == doc) {
                group.push(w);
            }
            let k = markers.partition_point(|&(n, _)| n <= line);
            let (skipped, start) = match k {
                0 => (0, 0),
                k => (markers[k - 1].0 - 1, markers[k - 1].1),
            };
            let end = markers.get(k).map_or(src.text.len(), |m| m.1);
            out.push(Again {
                position,
                span: Some((start..end, skipped)),
                wanted: group,
            });
        }
    }
    out
}

impl Again {
    /// Parse the wanted objects again and hand each to `each` (index, policies, object, with
    /// `per_file`'s value in its place); returns those not found in the span.
    fn parse<H: PerFile>(
        &self,
        loaded: &Loaded,
        per_file: &H,
        each: &mut dyn FnMut(usize, &[usize], &Object),
    ) -> Wanted {
        let src = &loaded.files[self.position];
        let Some((span, skipped)) = &self.span else {
            let mut wanted = self.wanted.iter().peekable();
            let mut seq = 0;
            manifest::parse_each(self.position, src, &mut |mut o| {
                if let Some((_, index, policies)) = wanted.next_if(|w| w.0 == seq) {
                    per_file.again(&mut o);
                    each(*index, policies, &o);
                }
                seq += 1;
            });
            return Vec::new();
        };
        let document = SourceFile {
            input: src.input.clone(),
            name: src.name.clone(),
            text: src.text[span.clone()].to_string(),
            json: false,
        };
        let mut found = vec![false; self.wanted.len()];
        manifest::parse_each(self.position, &document, &mut |mut o| {
            o.line += skipped;
            let at = self.wanted.iter().position(|(_, index, _)| {
                let known = &loaded.objects[*index];
                known.line == o.line && known.prefix == o.prefix
            });
            let Some(k) = at.filter(|&k| !found[k]) else {
                return;
            };
            per_file.again(&mut o);
            if o.identity().value == loaded.objects[self.wanted[k].1].value {
                found[k] = true;
                each(self.wanted[k].1, &self.wanted[k].2, &o);
            }
        });
        self.wanted
            .iter()
            .zip(found)
            .filter(|(_, f)| !f)
            .map(|(w, _)| w.clone())
            .collect()
    }
}

/// The findings of `policies` on the object at `index`, evaluated again on the complete cluster
/// state, into `out`.
fn review_again(
    engine: &Engine,
    worker: &mut Worker,
    store: &ObjectStore,
    (index, policies, object): (usize, &[usize], &Object),
    out: &mut Vec<Finding>,
) {
    let subject = Subject::new(object);
    for &p in policies {
        let got = engine.review(worker, p, &subject, store);
        out.extend(got.into_iter().map(|(path, message)| Finding {
            object: index,
            policy: p,
            path,
            message,
        }));
    }
}

/// One thread: read, parse and evaluate in turn (the browser build has no threads).
fn inline<H: PerFile>(
    inputs: &[Input],
    read: &Read<'_>,
    shared: &Shared<'_>,
    per_file: &H,
    files: &mut [Option<FileResult<H::State>>],
) -> Vec<Reviewed> {
    let mut worker = shared.engine.worker(&shared.store);
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        files[i] = Some(read_file(i, input, read, shared, per_file, &mut |batch| {
            for (queued, context_error) in batch {
                let mut r = shared.review(&mut worker, queued);
                r.error = r.error.or(context_error);
                out.push(r);
            }
        }));
    }
    out
}

/// Read and parse input `i`, handing its objects to `send` in batches.
fn read_file<H: PerFile>(
    i: usize,
    input: &Input,
    read: &Read<'_>,
    shared: &Shared<'_>,
    per_file: &H,
    send: &mut dyn FnMut(Parsed),
) -> FileResult<H::State> {
    let src = read(i, input)?;
    let mut state = H::State::default();
    let mut seq = 0;
    let mut batch = Vec::with_capacity(BATCH);
    let errors = manifest::parse_each(i, &src, &mut |mut o| {
        let skip = !per_file.object(&mut state, &src, &mut o);
        let e = shared.add_context(i, seq, &o);
        batch.push(((i, seq, o, skip), e));
        seq += 1;
        if batch.len() == BATCH {
            send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
        }
    });
    if !batch.is_empty() {
        send(batch);
    }
    per_file.end(&mut state, &src, &errors);
    Ok((src, errors, state))
}

/// An object to review: its input, its place in the file, the object, and whether to skip
/// evaluating it.
type Queued = (usize, usize, Object, bool);

/// A message from a parsing thread: objects to review, each with an error about it.
type Parsed = Vec<(Queued, Option<String>)>;

/// Parsing threads (one per file at a time) feed evaluating threads (one per core).
fn threaded<H: PerFile>(
    inputs: &[Input],
    read: &Read<'_>,
    shared: &Shared<'_>,
    per_file: &H,
    files: &mut [Option<FileResult<H::State>>],
    cores: usize,
) -> Vec<Reviewed> {
    let (tx, rx) = sync_channel::<Parsed>(QUEUE);
    // The last evaluating thread to stop (even by a panic) drops the receiver, so no parsing
    // thread waits on a full queue forever.
    let rx: Mutex<Option<Receiver<Parsed>>> = Mutex::new(Some(rx));
    let next = AtomicUsize::new(0);
    let parsing = AtomicUsize::new(cores.min(inputs.len()).max(1));
    let evaluating = AtomicUsize::new(cores);
    let slots: Vec<Mutex<Option<_>>> = files.iter_mut().map(|f| Mutex::new(f.take())).collect();
    let out = std::thread::scope(|s| {
        for _ in 0..parsing.load(Ordering::Relaxed) {
            let tx: SyncSender<Parsed> = tx.clone();
            let (next, parsing, slots) = (&next, &parsing, &slots);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    let result = read_file(i, input, read, shared, per_file, &mut |batch| {
                        let _ = tx.send(batch);
                    });
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                }
                if parsing.fetch_sub(1, Ordering::AcqRel) == 1 {
                    shared.complete.store(true, Ordering::Release);
                }
            });
        }
        drop(tx);
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                let (rx, evaluating) = (&rx, &evaluating);
                s.spawn(move || {
                    struct Last<'r>(&'r AtomicUsize, &'r Mutex<Option<Receiver<Parsed>>>);
                    impl Drop for Last<'_> {
                        fn drop(&mut self) {
                            if self.0.fetch_sub(1, Ordering::AcqRel) == 1
                                && let Ok(mut rx) = self.1.lock()
                            {
                                rx.take();
                            }
                        }
                    }
                    let _last = Last(evaluating, rx);
                    let mut worker = shared.engine.worker(&shared.store);
                    let mut got = Vec::new();
                    loop {
                        let msg = match rx.lock() {
                            Ok(rx) => rx.as_ref().and_then(|rx| rx.recv().ok()),
                            Err(_) => None,
                        };
                        let Some(batch) = msg else {
                            break;
                        };
                        for (queued, context_error) in batch {
                            let mut r = shared.review(&mut worker, queued);
                            r.error = r.error.or(context_error);
                            got.push(r);
                        }
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (f, slot) in files.iter_mut().zip(slots) {
        *f = slot.into_inner().unwrap_or_else(|p| p.into_inner());
    }
    out
}

/// A bound on the estimated memory ([`yaml::estimated_bytes`]) of what a run holds beyond one
/// document per thread: the cluster context, the objects waiting for it, and what `fix` holds
/// until it edits a file.
pub struct Budget {
    limit: u64,
    kept: AtomicU64,
}

impl Budget {
    /// 96 MiB: with the text of a 16 MiB file, the documents in flight, the report and (for
    /// `fix`) the edited text and its diff, a run stays under 256 MB (`make bench-limits`).
    pub const DEFAULT: u64 = 96 << 20;

    pub fn new(limit: u64) -> Budget {
        Budget {
            limit,
            kept: AtomicU64::new(0),
        }
    }

    /// Reserve `bytes`; `false` (and nothing reserved) when they do not fit.
    pub fn reserve(&self, bytes: u64) -> bool {
        self.reserve_within(bytes, self.limit)
    }

    /// Reserve `bytes` if no more than `limit` (at most the budget's) is then reserved.
    fn reserve_within(&self, bytes: u64, limit: u64) -> bool {
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
                (k + bytes <= limit).then_some(k + bytes)
            })
            .is_ok()
    }

    /// Reserve `bytes` whether they fit or not (one document's worth, to make progress).
    pub fn force(&self, bytes: u64) {
        self.kept.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Give back what was reserved.
    pub fn release(&self, bytes: u64) {
        self.kept.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The limit in MiB, for messages.
    pub fn mib(&self) -> u64 {
        self.limit >> 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The reference stack's PostgreSQL StatefulSet, its init ConfigMap, and the ConfigMap
    /// changed never to create `postgis`: what `postgres-extensions` says depends on which
    /// ConfigMap it reads.
    fn stack() -> (String, String, String) {
        let text = include_str!("../../fixtures/postgres-extensions/stack-statefulset.yaml");
        let docs: Vec<&str> = text.split("\n---\n").collect();
        let without = docs[2].replace("CREATE EXTENSION IF NOT EXISTS postgis;", "");
        (docs[1].to_string(), docs[2].to_string(), without)
    }

    /// The StatefulSet's findings: (policy, path, message).
    fn of_statefulset(
        loaded: &Loaded,
        findings: &[Finding],
        engine: &Engine,
    ) -> Vec<(String, Option<String>, String)> {
        let mut out: Vec<_> = findings
            .iter()
            .filter(|f| loaded.objects[f.object].kind() == "StatefulSet")
            .map(|f| {
                let policy = engine.policies[f.policy].name.clone();
                (policy, f.path.clone(), f.message.clone())
            })
            .collect();
        out.sort();
        out
    }

    /// Two input files, `a.yaml` and `b.yaml`.
    fn two_files() -> [Input; 2] {
        [
            Input::File(PathBuf::from("a.yaml")),
            Input::File(PathBuf::from("b.yaml")),
        ]
    }

    /// An object 128 levels deep (as deep as the reader reads) waits for its context: its JSON
    /// text is one level more than serde_json reads back, so it is parsed again from its file,
    /// and judged with the whole context all the same.
    #[test]
    fn an_object_kept_as_json_too_deep_to_read_back_is_read_again() {
        let config = Config::default();
        let engine = Engine::native(&config).unwrap();
        let (statefulset, _, config_map) = stack();
        let deep = format!(
            "{}\ndeep: {}{}\n",
            statefulset.trim_end(),
            "[".repeat(127),
            "]".repeat(127)
        );
        let value = manifest::documents(&manifest::source(&two_files()[0], deep.clone()))
            .0
            .remove(0)
            .value;
        assert!(serde_json::from_str::<Value>(&value.to_string()).is_err());
        let texts = [deep, config_map];
        let late = |i: usize, input: &Input| {
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Ok(manifest::source(input, texts[i].clone()))
        };
        let (loaded, findings) = check(&two_files(), &late, &engine, &config);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let found = of_statefulset(&loaded, &findings, &engine);
        assert!(found.iter().any(|f| f.2.contains("postgis")), "{found:?}");
    }

    #[test]
    fn context_read_after_the_workload_is_seen() {
        let config = Config::default();
        let engine = Engine::native(&config).unwrap();
        let (statefulset, _, config_map) = stack();
        let texts = [statefulset, config_map];
        let inputs = two_files();
        // The ConfigMap's file is read last, well after the StatefulSet was evaluated.
        let late = |i: usize, input: &Input| {
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Ok(manifest::source(input, texts[i].clone()))
        };
        let (loaded, findings) = check(&inputs, &late, &engine, &config);
        let seen_late = of_statefulset(&loaded, &findings, &engine);
        assert!(
            seen_late.iter().any(|f| f.2.contains("postgis")),
            "{seen_late:?}"
        );
        // The same objects, the ConfigMap first.
        let first = |i: usize, input: &Input| Ok(manifest::source(input, texts[1 - i].clone()));
        let (loaded, findings) = check(&inputs, &first, &engine, &config);
        assert_eq!(of_statefulset(&loaded, &findings, &engine), seen_late);
        // Only identities are kept.
        assert!(loaded.objects.iter().all(|o| o.value.get("spec").is_none()));
    }

    #[test]
    fn objects_past_the_budget_are_read_again_for_the_complete_context() {
        let config = Config::default();
        let engine = Engine::native(&config).unwrap();
        let (statefulset, _, config_map) = stack();
        let copies: Vec<String> = (0..40)
            .map(|i| statefulset.replace("name: postgres\n", &format!("name: pg{i}\n")))
            .collect();
        let values: Vec<Value> = copies
            .iter()
            .map(|c| {
                let src = manifest::source(&Input::File(PathBuf::from("c.yaml")), c.clone());
                manifest::documents(&src).0.remove(0).value
            })
            .collect();
        // A StatefulSet waits as its JSON text.
        let size = values[0].to_string().len() as u64;
        // The StatefulSets as YAML documents, as concatenated JSON values, as one `kind: List`.
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values});
        let forms = [
            ("a.yaml", copies.join("\n---\n")),
            ("a.json", values.iter().map(|v| format!("{v}\n")).collect()),
            ("a.yaml", format!("---\n{list}\n")),
        ];
        for (name, text) in forms {
            let inputs = [
                Input::File(PathBuf::from(name)),
                Input::File(PathBuf::from("b.yaml")),
            ];
            let texts = [text, config_map.clone()];
            let late = |i: usize, input: &Input| {
                if i == 1 {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
                Ok(manifest::source(input, texts[i].clone()))
            };
            // Room for the ConfigMap and, among the waiting objects (half of it), a few
            // StatefulSets: the others are parsed again from their file.
            let cm = manifest::documents(&manifest::source(&inputs[1], texts[1].clone())).0;
            let tight = Budget::new(2 * yaml::estimated_bytes(&cm[0].value).max(size) + 1);
            assert!(tight.limit / 2 / size < 10, "{size} {}", tight.limit);
            let (loaded, findings, _) = check_with(&inputs, &late, &engine, &config, &tight, &());
            assert!(loaded.errors.is_empty(), "{name}: {:?}", loaded.errors);
            let statefulsets = loaded.objects.iter().filter(|o| o.kind() == "StatefulSet");
            assert_eq!(statefulsets.count(), 40, "{name}");
            let mut flagged: Vec<usize> = findings
                .iter()
                .filter(|f| loaded.objects[f.object].kind() == "StatefulSet")
                .filter(|f| {
                    f.message
                        .contains("never create the required extension(s) postgis")
                })
                .map(|f| f.object)
                .collect();
            flagged.dedup();
            assert_eq!(flagged.len(), 40, "{name}");
            // What a run with room for every object finds, and one with the ConfigMap first.
            let (roomy, roomy_findings) = check(&inputs, &late, &engine, &config);
            let all = |loaded: &Loaded, findings: &[Finding]| {
                let mut out: Vec<_> = findings
                    .iter()
                    .map(|f| {
                        let o = &loaded.objects[f.object];
                        (
                            o.describe(),
                            o.line,
                            f.policy,
                            f.path.clone(),
                            f.message.clone(),
                        )
                    })
                    .collect();
                out.sort();
                out
            };
            assert_eq!(
                all(&loaded, &findings),
                all(&roomy, &roomy_findings),
                "{name}"
            );
            let swapped = [inputs[1].clone(), inputs[0].clone()];
            let first = |i: usize, input: &Input| Ok(manifest::source(input, texts[1 - i].clone()));
            let (early, early_findings) = check(&swapped, &first, &engine, &config);
            assert_eq!(
                all(&loaded, &findings),
                all(&early, &early_findings),
                "{name}"
            );
        }
    }

    #[test]
    fn a_document_is_read_again_from_its_marker_to_the_next() {
        let text = "# head\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n--- \
                    {apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: C, metadata: {name: c}}, {apiVersion: v1, kind: D, metadata: {name: d}}]}\n\
                    ---\n# note\napiVersion: v1\nkind: E\nmetadata: {name: e}\n";
        let src = manifest::source(&Input::File(PathBuf::from("f.yaml")), text.to_string());
        let mut objects = Vec::new();
        manifest::parse_each(0, &src, &mut |o| objects.push(o));
        let kinds: Vec<&str> = objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["A", "B", "C", "D", "E"]);
        let loaded = Loaded {
            files: vec![src],
            objects,
            errors: Vec::new(),
        };
        let wanted: Wanted = [0, 2, 3, 4].iter().map(|&i| (i, i, vec![0])).collect();
        let again = documents_again(&loaded, BTreeMap::from([(0, wanted)]));
        let text = &loaded.files[0].text;
        let read: Vec<(&str, usize, Vec<usize>)> = again
            .iter()
            .map(|a| {
                let (span, skipped) = a.span.clone().unwrap();
                (&text[span], skipped, a.wanted.iter().map(|w| w.1).collect())
            })
            .collect();
        assert_eq!(
            read,
            [
                (
                    "# head\napiVersion: v1\nkind: A\nmetadata: {name: a}\n",
                    0,
                    vec![0]
                ),
                (
                    "--- {apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: C, metadata: {name: c}}, {apiVersion: v1, kind: D, metadata: {name: d}}]}\n",
                    8,
                    vec![2, 3]
                ),
                (
                    "---\n# note\napiVersion: v1\nkind: E\nmetadata: {name: e}\n",
                    9,
                    vec![4]
                ),
            ]
        );
        // Each read alone gives its objects at their lines in the file.
        for a in &again {
            let (span, skipped) = a.span.clone().unwrap();
            let part = manifest::source(&loaded.files[0].input, text[span].to_string());
            let mut lines = Vec::new();
            manifest::parse_each(0, &part, &mut |o| {
                lines.push((o.kind().to_string(), o.line + skipped))
            });
            let known: Vec<(String, usize)> = a
                .wanted
                .iter()
                .map(|w| {
                    (
                        loaded.objects[w.1].kind().to_string(),
                        loaded.objects[w.1].line,
                    )
                })
                .collect();
            assert_eq!(lines, known);
        }
        // A JSON file is read whole.
        let json = manifest::source(
            &Input::File(PathBuf::from("f.json")),
            "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n{\"apiVersion\": \"v1\", \"kind\": \"B\"}\n".to_string(),
        );
        let mut objects = Vec::new();
        manifest::parse_each(0, &json, &mut |o| objects.push(o));
        let loaded = Loaded {
            files: vec![json],
            objects,
            errors: Vec::new(),
        };
        let again = documents_again(&loaded, BTreeMap::from([(0, vec![(1, 1, vec![0])])]));
        assert!(again.len() == 1 && again[0].span.is_none());
    }

    #[test]
    fn a_later_object_of_the_same_identity_wins_whatever_the_timing() {
        let config = Config::default();
        let engine = Engine::native(&config).unwrap();
        // The first file holds a ConfigMap of the same identity that creates everything; the
        // second, read first, the one without postgis: the later in input order counts.
        let (statefulset, complete, config_map) = stack();
        let texts = [format!("{statefulset}\n---\n{complete}"), config_map];
        let inputs = two_files();
        let read = |i: usize, input: &Input| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Ok(manifest::source(input, texts[i].clone()))
        };
        let (loaded, findings) = check(&inputs, &read, &engine, &config);
        let seen = of_statefulset(&loaded, &findings, &engine);
        assert!(seen.iter().any(|f| f.2.contains("postgis")), "{seen:?}");
    }
}
