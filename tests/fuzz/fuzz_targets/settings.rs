//! Each policy's settings validation on raw bytes (the first byte picks the policy): no panic,
//! and valid settings survive the round trip through their own serialisation (what the
//! playground shows and sends back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackguard_fuzz::{POLICIES, export};

fuzz_target!(init: stackguard_fuzz::init("settings"), |data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let entry = &POLICIES[usize::from(pick) % POLICIES.len()];
    // As the module reads it: bytes that are not UTF-8 are the empty text.
    let text = std::str::from_utf8(rest).unwrap_or("");
    let module = (entry.settings)(Some(text));
    let native = stackguard::policies::find(entry.name).expect("registered policy");
    match (native.prepare)(Some(text)) {
        Ok(prepared) => {
            assert!(module.is_ok(), "{}: module and CLI disagree", entry.name);
            let shown = prepared.settings();
            let again = (native.prepare)(Some(&shown.to_string()))
                .unwrap_or_else(|e| panic!("{}: its own settings {shown} are rejected: {e}", entry.name));
            assert_eq!(again.settings(), shown, "{}: settings round trip", entry.name);
        }
        Err(e) => assert_eq!(module, Err(e), "{}: module and CLI disagree", entry.name),
    }
    export(&format!("settings/{}", entry.name), rest);
});
