//! `stackguard fix` end to end, as users run it: on copies of `fixtures/broken-stack/`, of the
//! shared corpus and of small hand-made files. Asserts minimal edits (every original line kept,
//! in order, byte for byte: only additions), idempotency, fix-then-check (what `fix` wrote
//! passes the policies that changed it; the objects read back are the policies' own mutated
//! objects), unparseable files reported and left untouched while the others are fixed, atomic
//! writes keeping permissions and symlinks, exit codes as `check`.

use serde_json::Value;
use stackguard::check;
use stackguard::config::Config;
use stackguard::engine::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_stackguard");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh scratch directory under target/.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-fix")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// `stackguard ARGS` in `dir`: (exit code, stdout, stderr).
fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// `new` is `old` with text added: every line of `old` is still in `new`, in order and byte for
/// byte (line endings included), except the lines an addition has to go through, each still
/// recognisable: a flow collection taking an entry (`[NET_RAW]` → `[NET_RAW, ALL]`: the old line
/// is a subsequence of the new one), an empty value (`{}`, `[]`, `null`, `~`) replaced by a
/// block below its key, or the last line getting the line break it lacked.
fn only_insertions(old: &str, new: &str) -> Result<(), String> {
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let mut j = 0;
    for line in old.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        let emptied = ["{}", "[]", "null", "~"]
            .iter()
            .find_map(|e| body.strip_suffix(e))
            .map(|key| format!("{}{ending}", key.trim_end()));
        let same = |k: usize| new_lines[k] == line;
        let rewritten = |k: usize| {
            let n = new_lines[k];
            (body.contains(['{', '[']) && subsequence(body, n))
                // Entries added after the line's content (a flow collection's last entry).
                || (!body.trim().is_empty() && n.starts_with(body))
                || (ending.is_empty() && n.trim_end_matches(['\r', '\n']) == body)
                || emptied.as_ref().is_some_and(|e| {
                    n.starts_with(e.trim_end()) && n.trim_end().len() == e.trim_end().len()
                })
        };
        let k = (j..new_lines.len())
            .find(|&k| same(k))
            .or_else(|| (j..new_lines.len()).find(|&k| rewritten(k)))
            .ok_or_else(|| format!("original line lost or changed: {line:?}"))?;
        j = k + 1;
    }
    Ok(())
}

/// Is every byte of `a` in `b`, in order?
fn subsequence(a: &str, b: &str) -> bool {
    let mut rest = b.bytes();
    a.bytes().all(|x| rest.any(|y| y == x))
}

/// The changed files of `before` → `after`, each checked to only insert text.
fn additions(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
) -> Vec<PathBuf> {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "fix created or removed files"
    );
    let mut changed = Vec::new();
    for (p, old) in before {
        let new = &after[p];
        if old == new {
            continue;
        }
        let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
        only_insertions(&old, &new).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        changed.push(p.clone());
    }
    changed
}

#[test]
fn diff_on_the_broken_stack_shows_only_additions_and_writes_nothing() {
    let dir = scratch("broken-diff");
    copy_tree(
        &root().join("fixtures/broken-stack"),
        &dir.join("broken-stack"),
    );
    let before = snapshot(&dir);
    let (code, stdout, stderr) = run(&dir, &["fix", "--diff", "broken-stack/"], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("--- a/broken-stack/postgres.yaml\n+++ b/broken-stack/postgres.yaml\n"),
        "{stdout}"
    );
    for line in stdout
        .lines()
        .filter(|l| !l.starts_with("---") && !l.starts_with("+++"))
    {
        assert!(!line.starts_with('-'), "the diff removes a line: {line}");
    }
    assert!(
        stdout.contains("+        podAntiAffinity:") || stdout.contains("podAntiAffinity"),
        "{stdout}"
    );
    assert!(
        stderr.contains("would fix broken-stack/postgres.yaml"),
        "{stderr}"
    );
    assert_eq!(snapshot(&dir), before, "--diff wrote something");
    // The diff, applied by git, gives what `fix` writes.
    let mut apply = Command::new("git")
        .args(["apply", "-p1", "-"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run git apply");
    {
        use std::io::Write;
        apply
            .stdin
            .take()
            .unwrap()
            .write_all(stdout.as_bytes())
            .unwrap();
    }
    assert!(
        apply.wait().unwrap().success(),
        "git apply refused:\n{stdout}"
    );
    let patched = snapshot(&dir);
    let fixed_dir = scratch("broken-diff-fixed");
    copy_tree(
        &root().join("fixtures/broken-stack"),
        &fixed_dir.join("broken-stack"),
    );
    run(&fixed_dir, &["fix", "broken-stack/"], None);
    assert_ne!(patched, before);
    assert_eq!(patched, snapshot(&fixed_dir));
}

#[test]
fn fix_edits_minimally_passes_the_policies_it_ran_and_is_idempotent() {
    let dir = scratch("broken-fix");
    copy_tree(
        &root().join("fixtures/broken-stack"),
        &dir.join("broken-stack"),
    );
    let before = snapshot(&dir);
    let (code, stdout, _) = run(&dir, &["fix", "--color", "never", "broken-stack/"], None);
    assert_eq!(
        code, 1,
        "findings remain (runAsUser: 0, plaintext secrets): {stdout}"
    );
    assert!(
        stdout.contains("fixed broken-stack/postgres.yaml"),
        "{stdout}"
    );
    let after = snapshot(&dir);
    let changed = additions(&before, &after);
    assert!(!changed.is_empty());
    // Fix-then-check: the fill-ins are there, the explicit root user is still reported.
    let (_, report, _) = run(&dir, &["check", "--format", "json", "broken-stack/"], None);
    let report: Value = serde_json::from_str(&report).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let of = |policy: &str| findings.iter().filter(|f| f["policy"] == policy).count();
    assert_eq!(of("pod-anti-affinity"), 0, "{report}");
    assert!(of("run-as-non-root") > 0, "runAsUser: 0 is never rewritten");
    assert!(of("no-plaintext-secrets") > 0);
    // Idempotent.
    let (code, stdout, _) = run(&dir, &["fix", "broken-stack/"], None);
    assert_eq!(code, 1, "findings still remain");
    assert!(!stdout.contains("fixed "), "{stdout}");
    assert_eq!(snapshot(&dir), after, "a second fix changed something");
}

#[test]
fn an_unparseable_file_is_left_untouched_and_the_others_are_fixed() {
    let dir = scratch("unparseable");
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n";
    let good = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n    securityContext:\n      runAsNonRoot: true\n    resources:\n      limits: {cpu: 100m, memory: 64Mi}\n";
    std::fs::write(dir.join("bad.yaml"), bad).unwrap();
    std::fs::write(dir.join("good.yaml"), good).unwrap();
    let (code, stdout, _) = run(&dir, &["fix", "--color", "never", "."], None);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.join("bad.yaml")).unwrap(), bad);
    assert!(
        stdout.contains("error: bad.yaml:") && stdout.contains("invalid YAML"),
        "the unreadable file is reported with its line: {stdout}"
    );
    let fixed = std::fs::read_to_string(dir.join("good.yaml")).unwrap();
    only_insertions(good, &fixed).unwrap();
    assert!(fixed.contains("allowPrivilegeEscalation: false"), "{fixed}");
    assert!(fixed.contains("requests:"), "{fixed}");
}

#[test]
fn nothing_to_fix_exits_0_and_usage_errors_exit_2() {
    let dir = scratch("clean");
    copy_tree(&root().join("deploy"), &dir.join("deploy"));
    let before = snapshot(&dir);
    let (code, stdout, stderr) = run(&dir, &["fix", "--diff", "deploy/"], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "", "no diff for the reference stack");
    assert_eq!(snapshot(&dir), before);
    let (code, _, stderr) = run(&dir, &["fix", "nope/"], None);
    assert_eq!(code, 2);
    assert!(stderr.contains("nope"), "{stderr}");
    std::fs::write(dir.join("bad-config.yaml"), "policies: {bogus: {}}\n").unwrap();
    let (code, _, stderr) = run(
        &dir,
        &["fix", "--config", "bad-config.yaml", "deploy/"],
        None,
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown policy"), "{stderr}");
}

#[test]
fn stdin_is_a_filter_and_settings_come_from_the_config() {
    let dir = scratch("stdin");
    std::fs::write(
        dir.join(".stackguard.yaml"),
        "policies:\n  run-as-non-root: {enabled: false}\n  resource-limits:\n    settings:\n      defaultRequests: {cpu: 10m, memory: 16Mi}\n      defaultLimits: {cpu: 200m, memory: 64Mi}\n",
    )
    .unwrap();
    let pod = "kind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox}\n";
    let (code, stdout, stderr) = run(&dir, &["fix", "-"], Some(pod));
    assert_eq!(code, 1, "{stderr}");
    only_insertions(pod, &stdout).unwrap();
    let fixed = stackguard::yaml::value(&stdout).unwrap();
    assert_eq!(
        fixed["spec"]["containers"][0]["resources"],
        serde_json::json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}})
    );
    assert!(
        fixed["spec"]["containers"][0]
            .get("securityContext")
            .is_none(),
        "run-as-non-root is disabled"
    );
}

#[cfg(unix)]
#[test]
fn writes_keep_permissions_symlinks_line_endings_and_the_missing_final_newline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("atomic");
    let text = "apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: p\r\nspec:\r\n  containers:\r\n  - name: c\r\n    image: busybox\r\n    securityContext:\r\n      runAsNonRoot: true\r\n      allowPrivilegeEscalation: false\r\n    resources:\r\n      limits: {cpu: 100m, memory: 64Mi}\r\n      requests: {cpu: 100m, memory: 64Mi}";
    std::fs::create_dir_all(dir.join("real")).unwrap();
    let real = dir.join("real/pod.yaml");
    std::fs::write(&real, text).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("real/pod.yaml", dir.join("link.yaml")).unwrap();
    let (code, stdout, stderr) = run(&dir, &["fix", "link.yaml"], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        std::fs::symlink_metadata(dir.join("link.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let fixed = std::fs::read_to_string(&real).unwrap();
    only_insertions(text, &fixed).unwrap();
    assert!(fixed.contains("drop:"), "{fixed}");
    assert!(
        !fixed.ends_with('\n'),
        "a missing final newline stays missing"
    );
    assert_eq!(
        fixed.matches('\n').count(),
        fixed.matches("\r\n").count(),
        "CRLF kept: {fixed:?}"
    );
    assert_eq!(
        std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("real")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

/// The whole shared corpus: `fix` writes only additions; every object read back from the fixed
/// files is exactly what the policies' own mutation gives (natively, in-process); the policies
/// that changed an object accept it; a second `fix` changes nothing. The time of `fix` is printed
/// (the README quotes it).
#[test]
fn fix_then_check_on_the_shared_corpus() {
    let corpus = root().join("../shared/corpus");
    assert!(corpus.is_dir(), "{} is missing", corpus.display());
    let dir = scratch("corpus");
    copy_tree(&corpus, &dir.join("corpus"));
    let before = snapshot(&dir);
    let started = Instant::now();
    let (code, stdout, stderr) = run(&dir, &["fix", "--color", "never", "corpus"], None);
    let took = started.elapsed();
    assert!(code == 1, "{stderr}");
    let after = snapshot(&dir);
    let changed = additions(&before, &after);
    let skipped = stdout.lines().filter(|l| l.starts_with("skipped ")).count();
    eprintln!(
        "stackguard fix on the corpus: {:.2} s, {} files fixed, {skipped} skipped",
        took.as_secs_f64(),
        changed.len()
    );
    assert!(changed.len() > 100, "only {} files fixed", changed.len());
    // What `fix` reports as remaining (its objects judged as repaired, moved to their lines in
    // the fixed files; the skipped files read again) is what `check` finds in the files now.
    let (_, checked, _) = run(&dir, &["check", "--color", "never", "corpus"], None);
    assert!(
        stdout.ends_with(&checked),
        "fix:\n{stdout}\ncheck:\n{checked}"
    );

    // In-process: the original objects through Engine::fix, against the objects read back.
    let config = Config::default();
    let engine = Engine::native(&config).unwrap();
    let load = |p: &Path| {
        let (inputs, _) = stackguard::manifest::discover(&[p.to_path_buf()], &[]);
        check::load(&inputs)
    };
    let original = load(&corpus);
    let fixed = load(&dir.join("corpus"));
    let repaired = engine.fix(&original.objects, &config).unwrap();
    assert_eq!(original.objects.len(), fixed.objects.len());
    // Was the file of each object written (fixed), or left as it was (nothing to fix, skipped)?
    let written: Vec<bool> = fixed
        .objects
        .iter()
        .map(|f| {
            let name = Path::new(&fixed.files[f.file].name);
            changed
                .iter()
                .any(|c| name.strip_prefix(&dir).is_ok_and(|rel| rel == c))
        })
        .collect();
    let mut compared = 0;
    for (i, ((o, r), f)) in original
        .objects
        .iter()
        .zip(&repaired)
        .zip(&fixed.objects)
        .enumerate()
    {
        let at = format!("{}:{}", fixed.files[f.file].name, o.line);
        match (r, written[i]) {
            (Some(repair), true) => {
                assert_eq!(
                    f.value, repair.object,
                    "{at}: read back != the policies' mutation"
                );
                compared += 1;
            }
            _ => assert_eq!(f.value, o.value, "{at}: changed without a mutation"),
        }
    }
    assert!(compared > 100, "{compared}");
    // The policies that changed an object written back now accept it.
    for finding in engine.check(&fixed.objects, &config) {
        if let (Some(repair), true) = (&repaired[finding.object], written[finding.object]) {
            assert!(
                !repair.by.contains(&finding.policy),
                "{}: {} still rejects what it fixed: {}",
                fixed.files[fixed.objects[finding.object].file].name,
                engine.policies[finding.policy].name,
                finding.message
            );
        }
    }
    // Idempotent.
    let (_, stdout, _) = run(&dir, &["fix", "corpus"], None);
    assert!(!stdout.lines().any(|l| l.starts_with("fixed ")), "{stdout}");
    assert_eq!(snapshot(&dir), after, "a second fix changed the corpus");
}

/// Multi-document files and `kind: List`: each object is fixed in its own document or item, the
/// others stay as they were; a JSON file is never left unreadable (fixed into valid JSON, or left
/// untouched with the reason).
#[test]
fn lists_multi_document_files_and_json() {
    let dir = scratch("lists");
    let text = "# two documents\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: ok}\n  spec:\n    securityContext: {runAsNonRoot: true}\n    containers:\n    - name: c\n      image: busybox\n      securityContext:\n        allowPrivilegeEscalation: false\n        capabilities: {drop: [ALL]}\n      resources:\n        requests: {cpu: 10m, memory: 16Mi}\n        limits: {cpu: 10m, memory: 16Mi}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: bare}\n  spec:\n    containers:\n    - name: c\n      image: busybox\n      resources:\n        limits: {cpu: 10m, memory: 16Mi}\n";
    std::fs::write(dir.join("list.yaml"), text).unwrap();
    let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},
 "spec": {"securityContext": {"runAsNonRoot": true},
  "containers": [{"name": "c", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": false},
   "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}, "requests": {"cpu": "10m", "memory": "16Mi"}}}]}}
"#;
    std::fs::write(dir.join("pod.json"), json).unwrap();
    let (code, stdout, stderr) = run(&dir, &["fix", "--color", "never", "."], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let fixed = std::fs::read_to_string(dir.join("list.yaml")).unwrap();
    only_insertions(text, &fixed).unwrap();
    let docs = stackguard::yaml::values(&fixed).unwrap();
    assert_eq!(docs[0], stackguard::yaml::values(text).unwrap()[0]);
    let items = docs[1]["items"].as_array().unwrap();
    assert_eq!(
        items[0],
        stackguard::yaml::values(text).unwrap()[1]["items"][0]
    );
    let bare = &items[1]["spec"]["containers"][0];
    assert_eq!(bare["securityContext"]["runAsNonRoot"], true, "{fixed}");
    assert_eq!(
        bare["resources"]["requests"], bare["resources"]["limits"],
        "{fixed}"
    );
    // The JSON file: still JSON, and when written, the repaired object.
    let after = std::fs::read_to_string(dir.join("pod.json")).unwrap();
    let value: Value = serde_json::from_str(&after)
        .unwrap_or_else(|e| panic!("fix left invalid JSON ({e}):\n{after}"));
    if after == json {
        assert!(stdout.contains("skipped pod.json: "), "{stdout}");
    } else {
        assert_eq!(
            value["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
    }
}

/// Flow style is edited in place (entries added inside the brackets); an edit that would have to
/// go through an anchor is skipped with a message naming the anchor and the file stays
/// byte-identical, while the other files of the run are still fixed.
#[test]
fn flow_style_is_edited_and_anchors_are_skipped_with_a_message() {
    let dir = scratch("flow-anchors");
    let flow = "# flow style\n{apiVersion: v1, kind: Pod, metadata: {name: f},\n spec: {securityContext: {runAsNonRoot: true}, containers: [{name: c, image: busybox,\n   securityContext: {capabilities: {drop: [NET_RAW]}},\n   resources: {limits: {cpu: 10m, memory: 16Mi}}}]}}\n";
    let anchored = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  securityContext:\n    runAsNonRoot: true\n  containers:\n  - name: c\n    image: busybox\n    securityContext: &sc\n      capabilities:\n        drop: [ALL]\n    resources: &res\n      limits: {cpu: 10m, memory: 16Mi}\n      requests: {cpu: 10m, memory: 16Mi}\n  - name: d\n    image: busybox\n    securityContext: *sc\n    resources: *res\n";
    std::fs::write(dir.join("flow.yaml"), flow).unwrap();
    std::fs::write(dir.join("anchored.yaml"), anchored).unwrap();
    let (code, stdout, stderr) = run(&dir, &["fix", "--color", "never", "."], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("anchored.yaml")).unwrap(),
        anchored,
        "a file whose edit goes through an anchor stays byte-identical"
    );
    assert!(
        stdout.contains("skipped anchored.yaml: ") && stdout.contains("anchor &sc"),
        "{stdout}"
    );
    let fixed = std::fs::read_to_string(dir.join("flow.yaml")).unwrap();
    only_insertions(flow, &fixed).unwrap();
    assert_eq!(
        fixed.lines().count(),
        flow.lines().count(),
        "flow entries are added inside the brackets, not as new lines:\n{fixed}"
    );
    let pod = &stackguard::yaml::values(&fixed).unwrap()[0];
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["NET_RAW", "ALL"]),
        "{fixed}"
    );
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["resources"]["requests"], c["resources"]["limits"]);
    // Fixing again: the flow file is done, the anchored one is skipped again.
    let (code, stdout, _) = run(&dir, &["fix", "--color", "never", "."], None);
    assert_eq!(code, 1, "the skipped file still needs fixing: {stdout}");
    assert_eq!(
        std::fs::read_to_string(dir.join("flow.yaml")).unwrap(),
        fixed
    );
}

/// A file whose changed objects are more than `fix` holds at once (3 MiB of Deployments that
/// each need a fill-in): it is edited part by part while it is read, and every object is fixed
/// in one run, exactly to the policies' mutation; a second run changes nothing.
#[test]
fn a_file_of_many_changed_objects_is_fixed_in_one_run() {
    // Over 3 MiB: written in several rounds, each cut into runs edited at once on every core.
    // Unchanged documents and `kind: List`s (whose items a cut never separates) in between.
    let dir = scratch("many-changed");
    let count = 1700;
    let deployment = |i: usize, indent: &str| {
        let env: String = (0..30)
            .map(|k| format!("        - name: SETTING_{k}\n          value: \"v-{i}-{k}\"\n"))
            .collect();
        let body = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n      - name: web\n        image: registry.example/app:1.{i}\n        env:\n{env}"
        );
        if indent.is_empty() {
            return body;
        }
        let mut lines = body.lines().map(|l| format!("{indent}{l}\n"));
        let first = lines.next().unwrap_or_default();
        format!("- {}{}", &first[indent.len()..], lines.collect::<String>())
    };
    let mut docs = Vec::new();
    let mut i = 0;
    while i < count {
        if docs.len() % 50 == 7 {
            docs.push(format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{i}\n  namespace: shop\ndata:\n  a: b\n"
            ));
        }
        let n = 2 + docs.len() % 5;
        if docs.len() % 3 == 1 && i + n <= count {
            let items: String = (i..i + n).map(|k| deployment(k, "  ")).collect();
            docs.push(format!("apiVersion: v1\nkind: List\nitems:\n{items}"));
            i += n;
        } else {
            docs.push(deployment(i, ""));
            i += 1;
        }
    }
    let text = docs.join("---\n");
    assert!(text.len() > 3 << 20, "{}", text.len());
    std::fs::write(dir.join("many.yaml"), &text).unwrap();
    let (code, stdout, stderr) = run(&dir, &["fix", "--color", "never", "many.yaml"], None);
    assert_eq!(code, 1, "{stderr}");
    let listed = stdout
        .lines()
        .filter(|l| {
            l.starts_with("  many.yaml:") && l.contains(" Deployment shop/app-") && l.ends_with(']')
        })
        .count();
    assert_eq!(listed, count, "{}", &stdout[..stdout.len().min(2000)]);

    // In-process: every object as read back is the policies' repair of the original, or the
    // original when nothing needed repairing.
    let config = Config::default();
    let engine = Engine::native(&config).unwrap();
    let load = |text: &str| {
        let src = stackguard::manifest::source(
            &stackguard::manifest::Input::File(PathBuf::from("many.yaml")),
            text.to_string(),
        );
        stackguard::manifest::parse(0, &src).objects
    };
    let original = load(&text);
    let fixed = load(&std::fs::read_to_string(dir.join("many.yaml")).unwrap());
    let repaired = engine.fix(&original, &config).unwrap();
    assert_eq!(fixed.len(), original.len());
    assert!(original.iter().any(|o| !o.prefix.is_empty()));
    let mut unchanged = 0;
    for ((r, f), o) in repaired.iter().zip(&fixed).zip(&original) {
        match r {
            Some(repair) => assert_eq!(f.value, repair.object, "{}", o.name()),
            None => {
                assert_eq!(o.kind(), "ConfigMap", "{} was not repaired", o.name());
                assert_eq!(f.value, o.value, "{}", o.name());
                unchanged += 1;
            }
        }
    }
    assert!(unchanged > 10, "{unchanged}");
    let (_, again, _) = run(&dir, &["fix", "--color", "never", "many.yaml"], None);
    assert!(!again.lines().any(|l| l.starts_with("fixed ")), "{again}");
}

#[test]
fn what_remains_is_what_check_finds_in_the_fixed_files() {
    // The StatefulSet (fixed) reads its init ConfigMap from another file, which `fix` does not
    // change: what remains must still be judged against that ConfigMap.
    let dir = scratch("remains-with-context");
    let text =
        std::fs::read_to_string(root().join("fixtures/postgres-extensions/stack-statefulset.yaml"))
            .unwrap();
    let docs: Vec<&str> = text.split("\n---\n").collect();
    std::fs::write(dir.join("a-statefulset.yaml"), docs[1]).unwrap();
    let config_map = docs[2].replace("CREATE EXTENSION IF NOT EXISTS postgis;", "");
    std::fs::write(dir.join("b-init.yaml"), &config_map).unwrap();
    let (code, fixed, _) = run(&dir, &["fix", "--color", "never", "."], None);
    assert_eq!(code, 1, "{fixed}");
    assert!(fixed.starts_with("fixed a-statefulset.yaml\n"), "{fixed}");
    assert_eq!(
        std::fs::read_to_string(dir.join("b-init.yaml")).unwrap(),
        config_map
    );
    let (code, checked, _) = run(&dir, &["check", "--color", "never", "."], None);
    assert_eq!(code, 1, "{checked}");
    assert!(
        checked.contains("a-statefulset.yaml")
            && checked.contains("never create the required extension(s) postgis"),
        "{checked}"
    );
    assert!(
        fixed.ends_with(&checked),
        "fix:\n{fixed}\ncheck:\n{checked}"
    );
}

/// Every fixture, a file of many block-style documents that each grow by the lines `fix` adds
/// (the later objects' findings move down), and a `kind: List` whose first item is repaired:
/// the remaining findings and errors `fix --diff` and `fix` report (the repaired objects judged
/// when read, moved to their lines in the fixed text) are the ones `check` then finds in the
/// fixed files, line for line.
#[test]
fn what_fix_reports_remaining_is_what_check_finds_after_it() {
    let dir = scratch("remains-everywhere");
    copy_tree(&root().join("fixtures"), &dir.join("fixtures"));
    // Filled in: requests, securityContext; left: the plaintext password.
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      limits: {{cpu: 10m, memory: 16Mi}}\n    env:\n    - name: PASSWORD\n      value: hunter2\n"
        )
    };
    let item = |pod: String| {
        pod.lines()
            .enumerate()
            .map(|(i, l)| format!("{}{l}\n", if i == 0 { "- " } else { "  " }))
            .collect::<String>()
    };
    let mut text = String::from("# many documents\n");
    for i in 0..30 {
        text.push_str(&format!("---\n{}", pod(&format!("p{i}"))));
    }
    std::fs::write(dir.join("many.yaml"), &text).unwrap();
    // The first item is clean once fixed, the second keeps its password.
    let clean = pod("l0").replace("    env:\n    - name: PASSWORD\n      value: hunter2\n", "");
    assert_ne!(clean, pod("l0"));
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}",
        item(clean),
        item(pod("l1"))
    );
    std::fs::write(dir.join("list.yaml"), &list).unwrap();
    // One object too large to evaluate while it is held for its edit: its file is read again.
    let containers: Vec<Value> = (0..2000)
        .map(|i| {
            serde_json::json!({"name": format!("c{i}"), "image": "busybox",
                "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}},
                "env": (0..8).map(|k| serde_json::json!({"name": format!("K{k}"), "value": "v"}))
                    .chain([serde_json::json!({"name": "PASSWORD", "value": "hunter2"})])
                    .collect::<Vec<_>>()})
        })
        .collect();
    let big = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
        "spec": {"containers": containers}});
    std::fs::write(
        dir.join("big.json"),
        serde_json::to_string_pretty(&big).unwrap(),
    )
    .unwrap();

    let (_, diff_out, diff_report) = run(&dir, &["fix", "--diff", "--color", "never", "."], None);
    assert!(diff_out.contains("+++ "), "{diff_out}");
    let (code, fixed, _) = run(&dir, &["fix", "--color", "never", "."], None);
    assert_eq!(code, 1, "{fixed}");
    for file in ["many.yaml", "list.yaml", "big.json", "fixtures/"] {
        assert!(fixed.contains(&format!("fixed {file}")), "{fixed}");
    }
    let grown = std::fs::read_to_string(dir.join("many.yaml")).unwrap();
    assert!(grown.lines().count() > text.lines().count() + 30, "{grown}");
    let (_, checked, _) = run(&dir, &["check", "--color", "never", "."], None);
    for file in ["many.yaml:", "list.yaml:", "big.json:"] {
        assert!(checked.contains(file), "{checked}");
    }
    assert!(
        fixed.ends_with(&checked),
        "fix:\n{fixed}\ncheck:\n{checked}"
    );
    assert!(
        diff_report.ends_with(&checked),
        "fix --diff:\n{diff_report}\ncheck:\n{checked}"
    );
}
