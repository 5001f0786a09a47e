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
    use proptest::prelude::*;
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

    /// Any JSON without floats, where some leaves are binary stand-ins `{"$b": n}`.
    fn arb_doc() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
            (0u8..=255).prop_map(|n| json!({ "$b": n })),
        ];
        leaf.prop_recursive(5, 64, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z$_]{0,4}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn as_stand_in(v: &Value) -> Option<Vec<u8>> {
        let obj = v.as_object().filter(|o| o.len() == 1)?;
        Some(vec![u8::try_from(obj.get("$b")?.as_u64()?).ok()?])
    }

    proptest! {
        #[test]
        fn extract_then_fill_round_trips(doc in arb_doc()) {
            let mut v = doc.clone();
            let mut atts = Vec::new();
            extract_binary(&mut v, &mut as_stand_in, &mut atts);
            // Placeholders are numbered in document order, one per attachment.
            let mut nums = Vec::new();
            fill_placeholders(&mut v.clone(), atts.len(), &mut |n| {
                nums.push(n);
                Value::Null
            })
            .unwrap();
            prop_assert_eq!(nums, (0..atts.len()).collect::<Vec<_>>());
            fill_placeholders(&mut v, atts.len(), &mut |n| json!({ "$b": atts[n][0] })).unwrap();
            prop_assert_eq!(v, doc);
        }

        #[test]
        fn fill_refuses_too_few_attachments(doc in arb_doc()) {
            let mut v = doc;
            let mut atts = Vec::new();
            extract_binary(&mut v, &mut as_stand_in, &mut atts);
            if let Some(fewer) = atts.len().checked_sub(1) {
                prop_assert_eq!(fill_placeholders(&mut v, fewer, &mut |_| Value::Null), Err(SocketError::Placeholder));
            }
        }
    }

    #[test]
    fn refuses_out_of_range_placeholders() {
        let mut v = json!([placeholder(3)]);
        assert_eq!(fill_placeholders(&mut v, 3, &mut |_| Value::Null), Err(SocketError::Placeholder));
    }
}
