//! Label selectors (`matchLabels`, `matchExpressions` with any key, operator and values)
//! against any labels: validation never panics, `matches` agrees with `mismatch` and with
//! `select`; and the selector in a Deployment's anti-affinity term and topology spread
//! constraint, and in `postgres-extensions`' settings (`pod-anti-affinity`,
//! `postgres-extensions`): no panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stackguard::admission::Op;
use stackguard::context::ObjectStore;
use stackguard_common::selector::{self, Labels, Selection, Selector};
use stackguard_common::workload::LabelSelector;
use stackguard_fuzz::shapes::{Dict, Selector as Shape, ToJson};
use stackguard_fuzz::{POLICIES, deployment, evaluate_both, evaluate_with, export};

#[derive(Debug, Arbitrary)]
struct Input {
    selector: Shape,
    labels: Dict,
}

fuzz_target!(init: stackguard_fuzz::init("selector"), |input: Input| {
    let sel_json = input.selector.to_json();
    let labels_json = input.labels.to_json();
    if let (Ok(sel), Ok(labels)) = (
        serde_json::from_value::<LabelSelector>(sel_json.clone()),
        serde_json::from_value::<Labels>(labels_json.clone()),
    ) {
        let checked = Selector::from_api(&sel);
        let selected = selector::select(Some(&sel), &[], &labels);
        match checked {
            Ok(s) => {
                assert_eq!(s.matches(&labels), s.mismatch(&labels).is_none());
                assert_eq!(selected.map(|r| r == Selection::Selected), Ok(s.matches(&labels)));
                let _ = s.to_string();
            }
            Err(e) => assert_eq!(selected, Err(e)),
        }
    }
    let term = json!({"labelSelector": sel_json, "topologyKey": "kubernetes.io/hostname"});
    let mut object = deployment(labels_json, json!({"name": "app", "image": "app:1"}));
    object["spec"]["replicas"] = json!(3);
    let spec = &mut object["spec"]["template"]["spec"];
    spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}});
    spec["topologySpreadConstraints"] = json!([{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": sel_json,
    }]);
    evaluate_with(&["pod-anti-affinity"], &object);
    // The same selector as the settings that pick the guarded Postgres instances.
    let index = POLICIES.iter().position(|e| e.name == "postgres-extensions").unwrap();
    let settings = json!({"selector": sel_json});
    if (POLICIES[index].settings)(Some(&settings.to_string())).is_ok() {
        let payload = evaluate_both(index, &object, Op::Create, &settings, &ObjectStore::new());
        export("validate/postgres-extensions", &payload);
    }
});
