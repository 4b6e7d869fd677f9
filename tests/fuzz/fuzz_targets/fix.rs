//! `stackguard fix` on any manifest text (as YAML and as JSON): the mutating policies' fill-ins
//! written as minimal edits (`yaml_edit`). No panic, no unbounded work; a file it edits reads
//! back as the repaired objects (`fix` checks that itself before it writes), and fixing the
//! fixed text again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackguard::config::Config;
use stackguard::engine::Engine;
use stackguard::manifest::{self, Input, SourceFile};

/// The fixed text of one file (`None`: nothing to fix, or the file is left untouched).
fn fix(engine: &Engine, config: &Config, text: String, json: bool) -> Option<String> {
    let src = SourceFile {
        input: Input::Stdin,
        name: "fuzz".to_string(),
        text,
        json,
    };
    let read = |_: usize, _: &Input| Ok(src.clone());
    let fixed = stackguard::fix::run(std::slice::from_ref(&src.input), &read, engine, config)
        .expect("native engine");
    fixed.fixes.into_iter().next().and_then(|f| f.fixed)
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
