//! libyaml's event parser behind a safe API. The parser is `unsafe-libyaml`: libyaml 0.2.5 (the
//! C library go-yaml was ported from, and the one PyYAML's C loader uses) translated to Rust,
//! without dependencies, so it also builds for the browser. Its API is libyaml's C API; this
//! module is the only place that calls it.
//!
//! Marks are byte offsets into the input (libyaml counts each character's UTF-8 width), lines
//! and columns as libyaml counts them (0-based).

use std::ffi::CStr;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use unsafe_libyaml as unsafe_ffi;

/// A position in the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    /// Byte offset.
    pub index: usize,
    /// 0-based column, in characters.
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventData {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias {
        anchor: String,
    },
    Scalar {
        anchor: Option<String>,
        /// The resolved tag (`!!str` is `tag:yaml.org,2002:str`, `!Ref` is `!Ref`).
        tag: Option<String>,
        value: String,
        style: ScalarStyle,
    },
    SequenceStart {
        anchor: Option<String>,
        tag: Option<String>,
        flow: bool,
    },
    SequenceEnd,
    MappingStart {
        anchor: Option<String>,
        tag: Option<String>,
        flow: bool,
    },
    MappingEnd,
}

#[derive(Debug)]
pub(crate) struct Event {
    pub data: EventData,
    pub start: Mark,
    pub end: Mark,
}

/// A syntax error: what is wrong and where, and what the parser was reading.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub problem: String,
    pub mark: Mark,
    pub context: Option<(String, Mark)>,
}

/// A libyaml parser reading `input`.
pub(crate) struct Parser<'input> {
    /// libyaml keeps pointers into its parser: it lives on the heap and never moves.
    raw: Box<MaybeUninit<unsafe_ffi::yaml_parser_t>>,
    input: PhantomData<&'input [u8]>,
}

impl<'input> Parser<'input> {
    pub fn new(input: &'input [u8]) -> Self {
        let mut raw = Box::new(MaybeUninit::<unsafe_ffi::yaml_parser_t>::uninit());
        let p = raw.as_mut_ptr();
        // SAFETY: `p` is valid for writes of a parser, which `yaml_parser_initialize` fully
        // initializes (it only fails when an allocation fails, and Rust's allocator aborts
        // then). The input outlives the parser (`'input`), which reads it only while parsing.
        unsafe {
            let _ = unsafe_ffi::yaml_parser_initialize(p);
            // UTF-8 always: no byte-order-mark detection that would shift the marks.
            unsafe_ffi::yaml_parser_set_encoding(p, unsafe_ffi::YAML_UTF8_ENCODING);
            unsafe_ffi::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
        }
        Parser {
            raw,
            input: PhantomData,
        }
    }

    /// The next event. After an error, or the end of the stream, every call returns
    /// [`EventData::StreamEnd`].
    pub fn next(&mut self) -> Result<Event, ParseError> {
        let p = self.raw.as_mut_ptr();
        let mut ev = MaybeUninit::<unsafe_ffi::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized in `new` and is only used from `&mut self`;
        // `yaml_parser_parse` initializes the event when it succeeds, and the event is read
        // before `yaml_event_delete` frees what it points to.
        unsafe {
            if unsafe_ffi::yaml_parser_parse(p, ev.as_mut_ptr()).fail {
                return Err(parse_error(&*p));
            }
            let ev = ev.as_mut_ptr();
            let event = Event {
                data: event_data(&*ev),
                start: mark((*ev).start_mark),
                end: mark((*ev).end_mark),
            };
            unsafe_ffi::yaml_event_delete(ev);
            Ok(event)
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, deleted once.
        unsafe { unsafe_ffi::yaml_parser_delete(self.raw.as_mut_ptr()) }
    }
}

fn mark(m: unsafe_ffi::yaml_mark_t) -> Mark {
    Mark {
        index: m.index as usize,
        column: m.column as usize,
    }
}

/// A NUL-terminated string of libyaml (anchor, tag, error message), if any.
///
/// SAFETY: `p` is null or points to a NUL-terminated string that lives while this runs.
unsafe fn text(p: *const u8) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: see above.
    Some(
        unsafe { CStr::from_ptr(p.cast()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// SAFETY: `ev` was filled by a successful `yaml_parser_parse` and not yet deleted.
unsafe fn event_data(ev: &unsafe_ffi::yaml_event_t) -> EventData {
    // SAFETY: the union field read is the one of the event's type.
    unsafe {
        match ev.type_ {
            unsafe_ffi::YAML_STREAM_START_EVENT => EventData::StreamStart,
            unsafe_ffi::YAML_DOCUMENT_START_EVENT => EventData::DocumentStart,
            unsafe_ffi::YAML_DOCUMENT_END_EVENT => EventData::DocumentEnd,
            unsafe_ffi::YAML_ALIAS_EVENT => EventData::Alias {
                anchor: text(ev.data.alias.anchor).unwrap_or_default(),
            },
            unsafe_ffi::YAML_SCALAR_EVENT => {
                let s = ev.data.scalar;
                let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                EventData::Scalar {
                    anchor: text(s.anchor),
                    tag: text(s.tag),
                    value: String::from_utf8_lossy(bytes).into_owned(),
                    style: match s.style {
                        unsafe_ffi::YAML_SINGLE_QUOTED_SCALAR_STYLE => ScalarStyle::SingleQuoted,
                        unsafe_ffi::YAML_DOUBLE_QUOTED_SCALAR_STYLE => ScalarStyle::DoubleQuoted,
                        unsafe_ffi::YAML_LITERAL_SCALAR_STYLE => ScalarStyle::Literal,
                        unsafe_ffi::YAML_FOLDED_SCALAR_STYLE => ScalarStyle::Folded,
                        _ => ScalarStyle::Plain,
                    },
                }
            }
            unsafe_ffi::YAML_SEQUENCE_START_EVENT => {
                let s = ev.data.sequence_start;
                EventData::SequenceStart {
                    anchor: text(s.anchor),
                    tag: text(s.tag),
                    flow: s.style == unsafe_ffi::YAML_FLOW_SEQUENCE_STYLE,
                }
            }
            unsafe_ffi::YAML_SEQUENCE_END_EVENT => EventData::SequenceEnd,
            unsafe_ffi::YAML_MAPPING_START_EVENT => {
                let m = ev.data.mapping_start;
                EventData::MappingStart {
                    anchor: text(m.anchor),
                    tag: text(m.tag),
                    flow: m.style == unsafe_ffi::YAML_FLOW_MAPPING_STYLE,
                }
            }
            unsafe_ffi::YAML_MAPPING_END_EVENT => EventData::MappingEnd,
            // YAML_STREAM_END_EVENT, and YAML_NO_EVENT once the parser has stopped.
            _ => EventData::StreamEnd,
        }
    }
}

fn parse_error(p: &unsafe_ffi::yaml_parser_t) -> ParseError {
    // SAFETY: libyaml's messages are static NUL-terminated strings (or null).
    let (problem, context) = unsafe { (text(p.problem.cast()), text(p.context.cast())) };
    let at = if p.error == unsafe_ffi::YAML_READER_ERROR {
        // Reader errors (bad UTF-8, control characters) give a byte offset only.
        Mark {
            index: p.problem_offset as usize,
            column: 0,
        }
    } else {
        mark(p.problem_mark)
    };
    ParseError {
        problem: problem.unwrap_or_else(|| "the YAML parser failed".to_string()),
        mark: at,
        context: context.map(|c| (c, mark(p.context_mark))),
    }
}
