//! JSONPath on any query (first line) and any JSON document (the rest): parsing and selecting
//! never panic and stay bounded; every node a query selects is named by a normalized path that, parsed as a query,
//! selects exactly that node again; and the query as `no-plaintext-secrets`' `extraPaths` over
//! the document: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use stackguard::admission::Op;
use stackguard::context::ObjectStore;
use stackguard_common::jsonpath::Query;
use stackguard_fuzz::{POLICIES, evaluate_both, export};

fuzz_target!(init: stackguard_fuzz::init("jsonpath"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (query, doc) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(q) = Query::parse(query) else {
        return;
    };
    let doc: Value = serde_json::from_str(doc).unwrap_or_else(|_| json!({"spec": {"a": [1, {"b": "x"}]}}));
    // A bounded error for node lists that grow too large; otherwise every path re-selects.
    for (path, node) in q.select(&doc).unwrap_or_default().into_iter().take(64) {
        let again = Query::parse(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let found = again.select(&doc).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(found.len(), 1, "{path} selects {} nodes", found.len());
        assert_eq!(found[0].0, path);
        assert!(std::ptr::eq(found[0].1, node), "{path} selects another node");
    }
    let mut object = match doc {
        Value::Object(m) => Value::Object(m),
        other => json!({"spec": other}),
    };
    object["apiVersion"] = json!("postgresql.cnpg.io/v1");
    object["kind"] = json!("Cluster");
    let index = POLICIES.iter().position(|e| e.name == "no-plaintext-secrets").unwrap();
    let settings = json!({"extraPaths": [query]});
    if (POLICIES[index].settings)(Some(&settings.to_string())).is_ok() {
        let payload = evaluate_both(index, &object, Op::Create, &settings, &ObjectStore::new());
        export("validate/no-plaintext-secrets", &payload);
    }
});
