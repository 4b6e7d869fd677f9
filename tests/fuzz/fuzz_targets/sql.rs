//! The SQL lexer and statement scanner on any text, and the extension tracking of
//! `postgres-extensions` (plus the role-password check of `no-plaintext-secrets`) on the same
//! text as a guarded init-script ConfigMap: no panic, tokens in line order inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stackguard_common::sql;
use stackguard_fuzz::{config_map, evaluate_with};

fuzz_target!(init: stackguard_fuzz::init("sql"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let mut last = 1;
    for t in sql::tokenize(text) {
        assert!(t.line >= last && t.line <= lines, "token line {} after {last} of {lines}", t.line);
        last = t.line;
    }
    let _ = sql::scan(text);
    let labels = json!({"stackguard.io/postgres-init": "true"});
    evaluate_with(
        &["postgres-extensions", "no-plaintext-secrets"],
        &config_map(labels, "init.sql", text),
    );
});
