//! The redis.conf reader on any text: arguments split as Redis splits them, `include`s that
//! resolve to the text itself (cycles and fan-out), command-line options from the last line,
//! memory units; and the same text as a pub/sub instance's ConfigMap
//! (`redis-pubsub-noeviction`, `no-plaintext-secrets`): no panic, bounded work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stackguard_common::redisconf::{self, RedisConfig};
use stackguard_fuzz::{config_map, evaluate_with};

fuzz_target!(init: stackguard_fuzz::init("redisconf"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = match text.lines().last().map(redisconf::split_args) {
        Some(Ok(words)) => words,
        _ => Vec::new(),
    };
    let cfg = RedisConfig::load(text, "redis.conf", &options, &mut |_| Some(text.to_string()));
    let _ = cfg.save_points();
    let _ = cfg.maxmemory();
    if let Some(m) = cfg.value("maxmemory") {
        let _ = redisconf::parse_memory(&m);
    }
    let labels = json!({"stackguard.io/redis-role": "pubsub"});
    evaluate_with(
        &["redis-pubsub-noeviction", "no-plaintext-secrets"],
        &config_map(labels, "redis.conf", text),
    );
});
