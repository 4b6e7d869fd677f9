//! The shell reader (words, quoting, here-documents, `psql -c`) on any text, and the same text
//! as an init script (`postgres-extensions`, `no-plaintext-secrets`) and as a container's
//! `sh -c` script (`no-plaintext-secrets`, `redis-pubsub-noeviction`): no panic, SQL handed to
//! psql found at lines inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stackguard_common::shell;
use stackguard_fuzz::{config_map, deployment, evaluate_with};
use std::collections::BTreeMap;

fuzz_target!(init: stackguard_fuzz::init("shell"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let commands = shell::parse(text);
    let env = BTreeMap::from([("POSTGRES_DB".to_string(), "app".to_string())]);
    for call in shell::psql_calls(&commands, &env) {
        for (sql, line) in call.sql() {
            assert!((1..=lines).contains(&line), "psql input line {line} of {lines}");
            let _ = stackguard_common::sql::scan_shell(sql);
        }
    }
    let init = json!({"stackguard.io/postgres-init": "true"});
    evaluate_with(
        &["postgres-extensions", "no-plaintext-secrets"],
        &config_map(init, "init.sh", text),
    );
    let pubsub = json!({"stackguard.io/redis-role": "pubsub"});
    let container = json!({
        "name": "redis",
        "image": "redis:7",
        "command": ["sh", "-c", text],
        "resources": {"limits": {"memory": "256Mi"}},
    });
    evaluate_with(
        &["no-plaintext-secrets", "redis-pubsub-noeviction"],
        &deployment(pubsub, container),
    );
});
