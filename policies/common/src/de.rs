//! Deserialisation helpers for Kubernetes JSON as people write it.

use serde::{Deserialize, Deserializer};

/// Treat an explicit `null` like an absent field (`containers: null` is legal YAML).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A scalar that Kubernetes accepts as int-or-string (quantities, ports, ...), kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntOrString(pub String);

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                Ok(IntOrString(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<IntOrString, E> {
                Ok(IntOrString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Describe a deserialisation error by field path, without echoing the offending value
/// (which could be a secret).
pub fn describe_error(path: &str, err: &serde_json::Error) -> String {
    let text = err.to_string();
    // serde_json: `invalid type: string "…", expected …at line 1 column 7`
    let mut out = String::with_capacity(text.len());
    let mut in_quotes = false;
    for ch in text.chars() {
        if ch == '"' {
            if !in_quotes {
                out.push_str("<value>");
            }
            in_quotes = !in_quotes;
        } else if !in_quotes {
            out.push(ch);
        }
    }
    let out = match out.find(" at line ") {
        Some(i) => &out[..i],
        None => out.as_str(),
    };
    if path.is_empty() || path == "." {
        format!("cannot parse the object: {out}")
    } else {
        format!("cannot parse field {path}: {out}")
    }
}

/// Deserialize `T` and on failure return a message that names the field path.
///
/// One plain serde_json pass: no path tracking while parsing (a tracking wrapper costs about
/// as much time as the parse and doubles the deserialisation code in every module). On error,
/// the path is recovered from the error position by [`path_at`].
pub fn from_str_with_path<'de, T: Deserialize<'de>>(json: &'de str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| {
        let mut offset = byte_offset(json, e.line(), e.column());
        // An error raised by a value's own `Deserialize` (a custom message) is positioned after
        // the enclosing object or array when the value was its last entry: step back inside.
        // Missing fields and lengths concern the container itself.
        let text = e.to_string();
        if e.is_data() && !(text.starts_with("missing field") || text.starts_with("invalid length"))
        {
            let before = json.get(..offset).unwrap_or(json).trim_end();
            if before.ends_with(['}', ']']) {
                offset = before.len() - 1;
            }
        }
        describe_error(&path_at(json, offset), &e)
    })
}

/// As [`from_str_with_path`], from an already parsed value (native callers only). Read from the
/// value itself; a value that does not read is re-encoded and read as modules read it, so that
/// modules and native code give one result and one message.
pub fn from_value_with_path<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, String> {
    T::deserialize(value).or_else(|_| {
        let text = serde_json::to_string(value).map_err(|e| describe_error("", &e))?;
        from_str_with_path(&text)
    })
}

/// Byte offset of a serde_json error position (1-based line, byte column within the line).
fn byte_offset(json: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        json.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .nth(line - 2)
            .map_or(json.len(), |(i, _)| i + 1)
    };
    (line_start + column).min(json.len())
}

/// The field path (`spec.containers[0].image` style; `.` for the root) of the value being read
/// at byte `offset` of `json`: object keys and array indices of the enclosing values.
pub fn path_at(json: &str, offset: usize) -> String {
    enum Frame<'a> {
        /// `key` once read; `in_value` after its colon.
        Object { key: Option<&'a str> },
        /// `started`: a value at `index` has begun.
        Array { index: usize, started: bool },
    }
    let bytes = json.as_bytes();
    let end = offset.min(bytes.len());
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut i = 0;
    while i < end {
        let b = bytes[i];
        if let Some(Frame::Array { started, .. }) = stack.last_mut()
            && !b.is_ascii_whitespace()
            && b != b','
            && b != b']'
        {
            *started = true;
        }
        match b {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key }) = stack.last_mut()
                    && key.is_none()
                {
                    *key = json.get(start..j.min(bytes.len()));
                }
                i = j;
            }
            b'{' => stack.push(Frame::Object { key: None }),
            b'[' => stack.push(Frame::Array {
                index: 0,
                started: false,
            }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key }) => *key = None,
                Some(Frame::Array { index, started }) => {
                    *index += 1;
                    *started = false;
                }
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k) } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Array {
                index,
                started: true,
            } => path.push_str(&format!("[{index}]")),
            _ => {}
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_echo_values() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            a: Vec<String>,
        }
        let err = from_str_with_path::<S>(r#"{"a": "hunter2-secret"}"#).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("field a"), "{err}");
    }

    #[test]
    fn error_paths_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct C {
            name: String,
            #[serde(default)]
            limits: std::collections::BTreeMap<String, String>,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Spec {
            replicas: Option<i64>,
            #[serde(default)]
            containers: Vec<C>,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        #[serde(deny_unknown_fields)]
        struct Obj {
            spec: Spec,
        }
        let err = |json: &str| from_str_with_path::<Obj>(json).unwrap_err();
        assert!(
            err(r#"{"spec": {"replicas": "three"}}"#)
                .starts_with("cannot parse field spec.replicas: invalid type")
        );
        let pretty = "{\n  \"spec\": {\n    \"containers\": [\n      {\"name\": \"a\"},\n      {\"name\": 5}\n    ]\n  }\n}";
        assert!(
            err(pretty).starts_with("cannot parse field spec.containers[1].name: invalid type"),
            "{}",
            err(pretty)
        );
        assert!(
            err(r#"{"spec": {"containers": [{"name": "a", "limits": ["cpu"]}]}}"#)
                .starts_with("cannot parse field spec.containers[0].limits: invalid type")
        );
        assert!(
            err(r#"{"spec": {"containers": [{"limits": {}}]}}"#)
                .starts_with("cannot parse field spec.containers[0]: missing field `name`")
        );
        assert!(err(r#"{"spec": {}, "extra\"key": 1}"#).contains("unknown field"));
        assert!(
            err(r#"{"spec": {"containers": "oops"}}"#)
                .starts_with("cannot parse field spec.containers: invalid type")
        );
        #[derive(Debug)]
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?;
                Err(serde::de::Error::custom("not acceptable"))
            }
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Settings {
            #[serde(default)]
            a: Option<std::collections::BTreeMap<String, Picky>>,
            #[serde(default)]
            b: Vec<Picky>,
        }
        let serr = |json: &str| from_str_with_path::<Settings>(json).unwrap_err();
        assert_eq!(
            serr(r#"{"a": {"x": "1", "y": "2"}}"#),
            "cannot parse field a.x: not acceptable"
        );
        assert_eq!(
            serr(r#"{"a": {"y": "2"} }"#),
            "cannot parse field a.y: not acceptable"
        );
        assert_eq!(
            serr(r#"{"b": ["1"]}"#),
            "cannot parse field b[0]: not acceptable"
        );
        assert!(err("5").starts_with("cannot parse the object: invalid type"));
        assert!(
            err(r#"{"spec": {"replicas": 1}"#).starts_with("cannot parse field spec: EOF"),
            "{}",
            err(r#"{"spec": {"replicas": 1}"#)
        );
    }

    #[test]
    fn int_or_string_accepts_both() {
        let v: Vec<IntOrString> = serde_json::from_str(r#"["500m", 2, 1.5]"#).unwrap();
        assert_eq!(v[0].0, "500m");
        assert_eq!(v[1].0, "2");
        assert_eq!(v[2].0, "1.5");
    }
}
