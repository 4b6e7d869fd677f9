//! The engine of the stackguard playground: `stackguard check` compiled for the browser.
//!
//! Nothing here re-implements a rule or a reader: the text goes through the harness's own
//! manifest reader, the native policy registry, the engine and the JSON report, exactly as
//! `stackguard check --format json` runs them (sequentially: `wasm32-unknown-unknown` has no
//! threads, and the engine falls back to one worker there). The functions are plain Rust (tested
//! natively); the `#[wasm_bindgen]` wrappers at the bottom are the JavaScript API:
//!
//! - `check(yaml, settingsJson, name?) -> string`: the JSON report; throws on a bad config.
//! - `fix(yaml, settingsJson, name?) -> string`: what `stackguard fix` does to the text, as JSON
//!   (the fixed text, its unified diff, the repaired objects, the report of what remains).
//! - `policies() -> string`: every policy with its description and default settings, as JSON.
//! - `version() -> string`.

use serde_json::{Value, json};
use stackguard::check::{self, Loaded};
use stackguard::config::Config;
use stackguard::engine::Engine;
use stackguard::fix;
use stackguard::manifest::{self, Input, SourceFile};
use stackguard::metadata::Metadata;
use stackguard::policies;
use stackguard::report::Format;
use wasm_bindgen::prelude::*;

/// The file name findings carry for text typed into the page.
pub const INPUT_NAME: &str = "<playground>";

/// Where config errors point.
pub const CONFIG_NAME: &str = "settings";

/// Parse the playground's config: the `.stackguard.yaml` schema (`policies.<name>.settings`,
/// `policies.<name>.enabled`, `exemptions`), as JSON or YAML. Blank text means the defaults.
pub fn parse_config(text: &str) -> Result<Config, String> {
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    Config::parse(text, CONFIG_NAME).map_err(|e| format!("{e:#}"))
}

/// The report `stackguard check --format json` prints for one input holding `text`.
///
/// `name` is the input's file name as the CLI shows it (it also decides JSON vs YAML by its
/// extension, as for files); `None` is text typed in the page, named [`INPUT_NAME`] and read
/// like stdin (JSON when it starts with `{` or `[`). An `Err` is a config error: the CLI exits
/// with 2 and prints no report.
pub fn check_text(text: String, config: &str, name: Option<&str>) -> Result<String, String> {
    with_engine(config, |parsed, engine| {
        let loaded = load(text, name);
        let findings = engine.check(&loaded.objects, parsed);
        check::build_report(&loaded, engine, findings).render(Format::Json, false)
    })
}

/// What `stackguard fix` does to one input holding `text` (`name` as for [`check_text`]), as
/// JSON: `changed` (bool), `text` (the fixed text, or the text itself), `diff` (the unified diff
/// `stackguard fix --diff` prints, empty when nothing changes), `changes` (each repaired object:
/// `line`, `object`, `policies`), `skipped` (why nothing was edited although something needs
/// fixing, else `null`) and `report` (the `check --format json` report of the fixed text).
pub fn fix_text(text: String, config: &str, name: Option<&str>) -> Result<String, String> {
    with_engine(config, |parsed, engine| {
        let src = source(text, name);
        let read = |_: usize, _: &Input| Ok(src.clone());
        let run = fix::run(std::slice::from_ref(&src.input), &read, engine, parsed)
            .map_err(|e| format!("{e:#}"))?;
        let report = fix::remaining(&run, engine, parsed).render(Format::Json, false);
        let default = fix::FileFix::default();
        let file = run.fixes.first().unwrap_or(&default);
        let fixed = file.fixed.as_deref().unwrap_or(&src.text);
        let report: Value = serde_json::from_str(&report).map_err(|e| e.to_string())?;
        Ok(json!({
            "changed": file.fixed.is_some(),
            "text": fixed,
            "diff": fix::unified_diff(&src.name, &src.text, fixed),
            "changes": file.changes,
            "skipped": file.skipped,
            "report": report,
        })
        .to_string())
    })?
}

/// Run `f` with the parsed config and the engine built from it (cached while the config's
/// text stays the same); an `Err` is a config error.
fn with_engine<T>(config: &str, f: impl FnOnce(&Config, &Engine) -> T) -> Result<T, String> {
    ENGINE.with_borrow_mut(|cache| {
        let (parsed, engine) = match cache.take() {
            Some((source, parsed, engine)) if source == config => (parsed, engine),
            _ => {
                let parsed = parse_config(config)?;
                let engine = Engine::native(&parsed).map_err(|e| format!("{e:#}"))?;
                (parsed, engine)
            }
        };
        let out = f(&parsed, &engine);
        *cache = Some((config.to_string(), parsed, engine));
        Ok(out)
    })
}

thread_local! {
    /// The engine of the last config, keyed by the config's text: re-checking as the user types
    /// reuses it (building it costs about a fifth of checking a small stack).
    static ENGINE: std::cell::RefCell<Option<(String, Config, Engine)>> =
        const { std::cell::RefCell::new(None) };
}

/// One input as `check` reads it: `name` decides JSON vs YAML like a file's, `None` is text
/// typed in the page, read like stdin.
fn source(text: String, name: Option<&str>) -> SourceFile {
    match name {
        Some(n) => manifest::source(&Input::File(n.into()), text),
        None => SourceFile {
            name: INPUT_NAME.to_string(),
            ..manifest::source(&Input::Stdin, text)
        },
    }
}

/// The input of [`source`], parsed.
fn load(text: String, name: Option<&str>) -> Loaded {
    let src = source(text, name);
    let parsed = manifest::parse(0, &src);
    Loaded {
        files: vec![src],
        objects: parsed.objects,
        errors: parsed.errors,
    }
}

/// Every policy of the registry: name, title, description, the kinds it reviews, and its
/// default settings (what the page prefills).
pub fn policy_list() -> Value {
    let list: Vec<Value> = policies::ALL
        .iter()
        .map(|entry| {
            let annotations = Metadata::from_yaml(entry.metadata_yml, entry.name)
                .ok()
                .and_then(|m| m.annotations)
                .unwrap_or_default();
            let note = |key: &str| annotations.get(key).cloned().unwrap_or_default();
            json!({
                "name": entry.name,
                "title": note("io.artifacthub.displayName"),
                "description": note("io.kubewarden.policy.description"),
                "resources": note("io.artifacthub.resources"),
                "url": note("io.kubewarden.policy.source"),
                "defaults": default_settings(entry),
            })
        })
        .collect();
    Value::Array(list)
}

/// A policy's settings with every default filled in, as its own settings type writes them.
fn default_settings(entry: &policies::Entry) -> Value {
    match (entry.prepare)(None) {
        Ok(p) => p.settings(),
        Err(_) => json!({}),
    }
}

/// JavaScript: `check(yaml, settingsJson, name?)`. See [`check_text`].
#[wasm_bindgen(js_name = check)]
pub fn check_js(
    yaml: String,
    settings_json: &str,
    name: Option<String>,
) -> Result<String, JsError> {
    check_text(yaml, settings_json, name.as_deref()).map_err(|e| JsError::new(&e))
}

/// JavaScript: `fix(yaml, settingsJson, name?)`. See [`fix_text`].
#[wasm_bindgen(js_name = fix)]
pub fn fix_js(yaml: String, settings_json: &str, name: Option<String>) -> Result<String, JsError> {
    fix_text(yaml, settings_json, name.as_deref()).map_err(|e| JsError::new(&e))
}

/// JavaScript: `policies()`. See [`policy_list`].
#[wasm_bindgen(js_name = policies)]
pub fn policies_js() -> String {
    policy_list().to_string()
}

/// JavaScript: `version()`: the stackguard version the module was built from.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: ns\nspec:\n  containers:\n    - name: c\n      image: busybox\n      securityContext:\n        privileged: true\n";

    fn report(text: &str, config: &str) -> Value {
        serde_json::from_str(&check_text(text.to_string(), config, None).unwrap()).unwrap()
    }

    fn policies_reporting(r: &Value) -> Vec<&str> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["policy"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn findings_name_the_playground_input() {
        let r = report(ROOT_POD, "");
        let f = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["policy"] == "run-as-non-root"
                    && f["message"].as_str().unwrap().contains("privileged")
            })
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(f["file"], INPUT_NAME);
        assert_eq!(f["kind"], "Pod");
        assert_eq!(f["path"], "spec.containers[0].securityContext.privileged");
        assert_eq!(r["summary"]["rejected"], 1);
    }

    #[test]
    fn config_enables_and_configures_policies() {
        let off = report(
            ROOT_POD,
            r#"{"policies": {"run-as-non-root": {"enabled": false}}}"#,
        );
        assert!(
            !policies_reporting(&off).contains(&"run-as-non-root"),
            "{off}"
        );
        assert!(policies_reporting(&report(ROOT_POD, "")).contains(&"run-as-non-root"));
        let e = check_text(
            ROOT_POD.to_string(),
            r#"{"policies": {"run-as-non-root": {"settings": {"bogus": 1}}}}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("run-as-non-root") && e.contains("bogus"), "{e}");
        let e = check_text(ROOT_POD.to_string(), "{nope", None).unwrap_err();
        assert!(e.starts_with(CONFIG_NAME), "{e}");
    }

    #[test]
    fn bad_yaml_is_an_error_with_a_line() {
        let r = report("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n", "");
        assert_eq!(r["errors"][0]["file"], INPUT_NAME);
        assert!(r["errors"][0]["line"].as_u64().unwrap() >= 3, "{r}");
        assert!(r["errors"][0]["message"].as_str().unwrap().contains("YAML"));
    }

    #[test]
    fn names_decide_json_like_files() {
        let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": true}}]}}"#;
        let r: Value =
            serde_json::from_str(&check_text(json.into(), "", Some("./a/b.json")).unwrap())
                .unwrap();
        assert_eq!(r["findings"][0]["file"], "a/b.json");
        let bad: Value =
            serde_json::from_str(&check_text("{\"a\": }".into(), "", Some("x.json")).unwrap())
                .unwrap();
        let message = bad["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("invalid JSON") && message.ends_with("(column 7)"),
            "{bad}"
        );
        // Typed text is sniffed like stdin.
        assert!(report(json, "")["summary"]["findings"].as_u64().unwrap() > 0);
    }

    #[test]
    fn fix_fills_in_and_shows_the_diff() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: ns\nspec:\n  containers:\n    - name: c\n      image: busybox\n      securityContext:\n        runAsNonRoot: true\n";
        let only = r#"{"policies": {"resource-limits": {"enabled": false}, "pod-anti-affinity": {"enabled": false}}}"#;
        let out: Value = serde_json::from_str(&fix_text(text.into(), only, None).unwrap()).unwrap();
        assert_eq!(out["changed"], true, "{out}");
        let fixed = out["text"].as_str().unwrap();
        assert!(fixed.starts_with(text.trim_end()), "{fixed}");
        assert!(fixed.contains("allowPrivilegeEscalation: false"), "{fixed}");
        let diff = out["diff"].as_str().unwrap();
        assert!(
            diff.starts_with("--- a/<playground>\n+++ b/<playground>\n"),
            "{diff}"
        );
        assert!(
            diff.contains("+        allowPrivilegeEscalation: false"),
            "{diff}"
        );
        assert_eq!(out["changes"][0]["policies"], json!(["run-as-non-root"]));
        assert_eq!(out["report"]["summary"]["findings"], 0, "{out}");
        // Fixing the fixed text changes nothing.
        let again: Value =
            serde_json::from_str(&fix_text(fixed.into(), only, None).unwrap()).unwrap();
        assert_eq!(again["changed"], false);
        assert_eq!(again["diff"], "");
        assert!(fix_text(text.into(), "{nope", None).is_err());
    }

    #[test]
    fn every_policy_is_listed() {
        let list = policy_list();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let all: Vec<&str> = policies::ALL.iter().map(|e| e.name).collect();
        assert_eq!(names, all);
        for p in list.as_array().unwrap() {
            assert!(p["description"].as_str().unwrap().len() > 10, "{p}");
            // The defaults are complete settings that the policy accepts as they are.
            let defaults = &p["defaults"];
            assert!(defaults.as_object().is_some_and(|d| !d.is_empty()), "{p}");
            let entry = policies::find(p["name"].as_str().unwrap()).unwrap();
            let again = (entry.prepare)(Some(&defaults.to_string())).unwrap();
            assert_eq!(&again.settings(), defaults);
        }
    }
}
