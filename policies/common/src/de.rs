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
pub fn from_str_with_path<'de, T: Deserialize<'de>>(json: &'de str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        describe_error(&path, e.inner())
    })
}

/// As [`from_str_with_path`], from an already parsed value.
pub fn from_value_with_path<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        describe_error(&path, e.inner())
    })
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
    fn int_or_string_accepts_both() {
        let v: Vec<IntOrString> = serde_json::from_str(r#"["500m", 2, 1.5]"#).unwrap();
        assert_eq!(v[0].0, "500m");
        assert_eq!(v[1].0, "2");
        assert_eq!(v[2].0, "1.5");
    }
}
