//! Each policy's `validate` on raw bytes (any JSON, or not JSON at all), exactly as the waPC
//! module receives them: no panic, always an answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackguard_common::context::NoContext;
use stackguard_fuzz::{POLICIES, export};

fuzz_target!(init: stackguard_fuzz::init("evaluate_raw"), |data: &[u8]| {
    for entry in POLICIES {
        let response = (entry.validate)(data, &NoContext);
        assert!(
            response.accepted || response.message.is_some(),
            "{}: a rejection without a message",
            entry.name
        );
    }
    export("validate/any", data);
});
