//! Binary attachments: the `{"_placeholder":true,"num":N}` objects that stand for them.
//!
//! The hub forwards binary packets as they came (placeholders and attachments untouched);
//! these helpers are for the edges that must turn attachments into another representation
//! (webhooks and the REST API carry them as `{"_binary":"<base64>"}`).

use serde_json::{Map, Value};

use crate::SocketError;

/// The placeholder's attachment index, when `value` is a placeholder.
pub fn placeholder_num(value: &Value) -> Option<usize> {
    let obj = value.as_object()?;
    if obj.get("_placeholder")?.as_bool()? {
        obj.get("num")?.as_u64().and_then(|n| usize::try_from(n).ok())
    } else {
        None
    }
}

/// A placeholder for attachment `num`.
pub fn placeholder(num: usize) -> Value {
    let mut obj = Map::with_capacity(2);
    obj.insert("_placeholder".into(), Value::Bool(true));
    obj.insert("num".into(), Value::from(num));
    Value::Object(obj)
}

/// Replace every placeholder with `f(num)`; fails when `num >= attachments`.
/// Recursion depth is bounded by serde_json's parser (128 levels), so this cannot overflow.
pub fn fill_placeholders(
    value: &mut Value,
    attachments: usize,
    f: &mut impl FnMut(usize) -> Value,
) -> Result<(), SocketError> {
    if let Some(num) = placeholder_num(value) {
        if num >= attachments {
            return Err(SocketError::Placeholder);
        }
        *value = f(num);
        return Ok(());
    }
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(|v| fill_placeholders(v, attachments, f)),
        Value::Object(map) => map.values_mut().try_for_each(|v| fill_placeholders(v, attachments, f)),
        _ => Ok(()),
    }
}

/// Replace every value for which `as_binary` returns bytes with a placeholder, collecting the
/// bytes in order as the attachments.
pub fn extract_binary(
    value: &mut Value,
    as_binary: &mut impl FnMut(&Value) -> Option<Vec<u8>>,
    out: &mut Vec<Vec<u8>>,
) {
    if let Some(bytes) = as_binary(value) {
        *value = placeholder(out.len());
        out.push(bytes);
        return;
    }
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| extract_binary(v, as_binary, out)),
        Value::Object(map) => map.values_mut().for_each(|v| extract_binary(v, as_binary, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_and_fills_at_any_depth() {
        let mut v = json!(["ev", {"a": [1, {"$b": "AQI="}]}, {"$b": "Aw=="}]);
        let mut atts = Vec::new();
        let mut as_bin = |v: &Value| v.get("$b").and_then(Value::as_str).map(|s| s.as_bytes().to_vec());
        extract_binary(&mut v, &mut as_bin, &mut atts);
        assert_eq!(v, json!(["ev", {"a": [1, placeholder(0)]}, placeholder(1)]));
        assert_eq!(atts, vec![b"AQI=".to_vec(), b"Aw==".to_vec()]);
        fill_placeholders(&mut v, 2, &mut |n| json!({"n": n})).unwrap();
        assert_eq!(v, json!(["ev", {"a": [1, {"n": 0}]}, {"n": 1}]));
    }

    #[test]
    fn refuses_out_of_range_placeholders() {
        let mut v = json!([placeholder(3)]);
        assert_eq!(fill_placeholders(&mut v, 3, &mut |_| Value::Null), Err(SocketError::Placeholder));
    }
}
