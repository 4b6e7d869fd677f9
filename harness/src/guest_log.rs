//! Log events that policies send through `kubewarden/tracing/log`, printed on stderr.

/// Print one guest log event (a JSON object with `level`, `msg` and fields).
pub fn emit(payload: &[u8]) {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(mut fields)) => {
            let level = fields
                .remove("level")
                .and_then(|v| v.as_str().map(str::to_uppercase))
                .unwrap_or_else(|| "INFO".to_string());
            let msg = fields
                .remove("msg")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let rest = serde_json::Value::Object(fields);
            eprintln!("[policy {level}] {msg} {rest}");
        }
        _ => eprintln!("[policy] {}", String::from_utf8_lossy(payload)),
    }
}
