//! `stackguard fix` on any manifest text (as YAML and as JSON): the mutating policies' fill-ins
//! written as minimal edits (`yaml_edit`). No panic, no unbounded work; a file it edits reads
//! back as the repaired objects (`fix` checks that itself before it writes), what it reports as
//! remaining is what a check of the fixed text finds (line for line), and fixing the fixed text
//! again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackguard::config::Config;
use stackguard::engine::Engine;
use stackguard::manifest::{self, Input, SourceFile};
use stackguard::report::Report;

fn source(text: String, json: bool) -> SourceFile {
    SourceFile {
        input: Input::Stdin,
        name: "fuzz".to_string(),
        text,
        json,
    }
}

/// The report of a check of `text`.
fn check(engine: &Engine, config: &Config, text: String, json: bool) -> Report {
    let src = source(text, json);
    let read = |_: usize, _: &Input| Ok(src.clone());
    let (loaded, findings) =
        stackguard::stream::check(std::slice::from_ref(&src.input), &read, engine, config);
    stackguard::check::build_report(&loaded, engine, findings)
}

/// The fixed text of one file (`None`: nothing to fix, or the file is left untouched), once
/// what `fix` reports as remaining is found to be what a check of the text it leaves finds.
fn fix(engine: &Engine, config: &Config, text: String, json: bool) -> Option<String> {
    let src = source(text, json);
    let read = |_: usize, _: &Input| Ok(src.clone());
    let fixed = stackguard::fix::run(std::slice::from_ref(&src.input), &read, engine, config)
        .expect("native engine");
    let remaining = stackguard::fix::remaining(&fixed, engine, config);
    let text = fixed.fixes.into_iter().next().and_then(|f| f.fixed);
    let after = check(engine, config, text.clone().unwrap_or(src.text), json);
    assert_eq!(
        remaining.findings, after.findings,
        "fix reports other findings than a check of what it leaves"
    );
    assert_eq!(
        remaining.errors, after.errors,
        "fix reports other errors than a check of what it leaves"
    );
    text
}

fuzz_target!(init: stackguard_fuzz::init("fix"), |data: &[u8]| {
    let Ok(text) = manifest::decode(data) else {
        return;
    };
    let config = Config::default();
    let engine = Engine::native(&config).expect("the built-in policies");
    for json in [false, true] {
        if let Some(fixed) = fix(&engine, &config, text.clone(), json) {
            let again = fix(&engine, &config, fixed.clone(), json);
            assert!(again.is_none(), "fixing the fixed text changed it again:\n{fixed}");
        }
    }
});
