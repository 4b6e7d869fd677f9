//! Each policy's evaluation of a structure-aware AdmissionRequest (workloads with pod specs,
//! ConfigMaps, Secrets, CloudNativePG Clusters, anything else; every field possibly missing,
//! null or mistyped), with cluster state and the policy's fixture settings: no panic, and the
//! module path and the CLI path give the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackguard::admission::Op;
use stackguard::context::ObjectStore;
use stackguard_fuzz::shapes::{Case, Operation, ToJson};
use stackguard_fuzz::{POLICIES, evaluate_both, export, fixture_settings};

fuzz_target!(init: stackguard_fuzz::init("evaluate"), |case: Case| {
    let object = case.object.to_json();
    let store = ObjectStore::new();
    for o in &case.context {
        store.insert(o.to_json());
    }
    let op = match case.operation {
        Operation::Create => Op::Create,
        Operation::Update => Op::Update,
        Operation::Delete => Op::Delete,
    };
    for (i, entry) in POLICIES.iter().enumerate() {
        let variants = &fixture_settings()[i];
        let settings = &variants[usize::from(case.settings) % variants.len()];
        let payload = evaluate_both(i, &object, op, settings, &store);
        export(&format!("validate/{}", entry.name), &payload);
    }
});
