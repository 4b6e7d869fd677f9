//! The manifest reader: decoding, YAML streams (and concatenated JSON), `kind: List`
//! expansion and field-line location, on any bytes: no panic, no unbounded work, and every line
//! it reports lies inside the text; a stream read in parts cut at its `---` lines reads as the
//! whole stream; documents on one line of JSON read as libyaml reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackguard::manifest::{self, Input, Object, SourceFile};
use stackguard::yaml;
use std::collections::{HashMap, HashSet};

fuzz_target!(init: stackguard_fuzz::init("yaml"), |data: &[u8]| {
    let Ok(text) = manifest::decode(data) else {
        return;
    };
    let lines = text.split('\n').count();
    for json in [false, true] {
        let src = SourceFile {
            input: Input::Stdin,
            name: "fuzz".to_string(),
            text: text.clone(),
            json,
        };
        let parsed = manifest::parse(0, &src);
        for e in &parsed.errors {
            let line = e.line.unwrap_or(1);
            assert!((1..=lines).contains(&line), "error line {line} of {lines}: {e}");
        }
        const PATHS: [&str; 3] = ["metadata.name", "spec.template.spec.containers[0].image", "data"];
        let objects: Vec<&Object> = parsed.objects.iter().collect();
        let mut wanted: HashMap<usize, HashSet<String>> = HashMap::new();
        for o in &parsed.objects {
            for path in PATHS {
                let full = manifest::full_path(o, path);
                let doc = wanted.entry(o.doc).or_default();
                doc.extend(stackguard::yaml::with_ancestors(&full).map(str::to_string));
            }
        }
        let located = manifest::locate(&src, &objects, &wanted);
        for o in &parsed.objects {
            assert!((1..=lines).contains(&o.line), "object line {} of {lines}", o.line);
            for path in PATHS {
                let line = manifest::field_line(&located, o, Some(path));
                assert!((1..=lines).contains(&line), "{path}: line {line} of {lines}");
            }
        }
    }
    let _ = stackguard::yaml::root_tag(&text);
    // Read in parts cut at `---` lines (as `fix` reads large texts back), the text reads as
    // one reading of the whole gives it.
    let mut whole = Vec::new();
    let errors = yaml::each_document(&text, &yaml::LIMITS, false, &mut |d| whole.push((d.index, d.value)));
    let cut = yaml::map_documents(&text, &yaml::LIMITS, 4, 1, &|v| v.clone());
    assert_eq!(cut, (whole, errors), "read in parts");
    // Documents on one line of JSON, read without libyaml: the same events and values, also
    // when small limits refuse some of them.
    let small = yaml::Limits { depth: 3, scalar_bytes: 8, ..yaml::LIMITS };
    for limits in [&yaml::LIMITS, &small] {
        if let Err(e) = yaml::json_line_agrees(&text, limits) {
            panic!("json_line: {e}");
        }
    }
});
