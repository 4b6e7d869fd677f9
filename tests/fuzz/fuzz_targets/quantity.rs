//! Kubernetes quantities on any text: a parsed quantity prints in plain decimal notation that
//! parses back to the same value; and the text as requests and limits (`resource-limits`,
//! `redis-pubsub-noeviction`'s memory limit): no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stackguard_common::quantity::{Quantity, Spelled};
use stackguard_fuzz::{deployment, evaluate_with};

fuzz_target!(init: stackguard_fuzz::init("quantity"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Quantity::parse(text);
    assert_eq!(Spelled::parse(text).map(|s| s.value), parsed.clone());
    if let Ok(q) = parsed {
        let shown = q.to_string();
        assert_eq!(Quantity::parse(&shown), Ok(q), "{shown} does not parse back");
    }
    let container = json!({
        "name": "redis",
        "image": "redis:7",
        "args": ["--maxmemory", "100mb"],
        "resources": {
            "requests": {"cpu": text, "memory": text},
            "limits": {"cpu": "1", "memory": text},
        },
    });
    let labels = json!({"stackguard.io/redis-role": "pubsub"});
    evaluate_with(
        &["resource-limits", "redis-pubsub-noeviction"],
        &deployment(labels, container),
    );
});
