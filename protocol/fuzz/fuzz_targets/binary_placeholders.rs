//! `binary::fill_placeholders` / `binary::extract_binary` on any JSON document.
//!
//! The first byte is the attachment count; the rest is parsed as JSON. Checks: filling never
//! panics and refuses out-of-range placeholders; once filled, no placeholder is left; extracting
//! the filled-in values gives placeholders numbered in document order, and filling those back
//! restores the filled document exactly (extract and fill are inverse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use socketio_hub_protocol::binary::{extract_binary, fill_placeholders, placeholder_num};
use socketio_hub_protocol::SocketError;

/// The stand-in for an attachment: an object no placeholder can be confused with.
fn stand_in(n: usize) -> Value {
    json!({ "$att": n })
}

fn as_stand_in(v: &Value) -> Option<Vec<u8>> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let n = obj.get("$att")?.as_u64()?;
    Some(n.to_le_bytes().to_vec())
}

fn count_placeholders(v: &Value) -> usize {
    if placeholder_num(v).is_some() {
        return 1;
    }
    match v {
        Value::Array(items) => items.iter().map(count_placeholders).sum(),
        Value::Object(map) => map.values().map(count_placeholders).sum(),
        _ => 0,
    }
}

fn contains_stand_in(v: &Value) -> bool {
    as_stand_in(v).is_some()
        || match v {
            Value::Array(items) => items.iter().any(contains_stand_in),
            Value::Object(map) => map.values().any(contains_stand_in),
            _ => false,
        }
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, json)) = data.split_first() else { return };
    let attachments = usize::from(count % 16);
    let Ok(original) = serde_json::from_slice::<Value>(json) else { return };
    // Documents that already hold stand-ins cannot round-trip (they would be extracted too).
    if contains_stand_in(&original) {
        return;
    }

    let mut filled = original.clone();
    let mut seen = Vec::new();
    match fill_placeholders(&mut filled, attachments, &mut |n| {
        assert!(n < attachments);
        seen.push(n);
        stand_in(n)
    }) {
        Ok(()) => assert_eq!(count_placeholders(&filled), 0),
        Err(e) => {
            assert_eq!(e, SocketError::Placeholder);
            return;
        }
    }

    let mut extracted = filled.clone();
    let mut out = Vec::new();
    extract_binary(&mut extracted, &mut as_stand_in, &mut out);
    assert_eq!(out.len(), seen.len());
    assert_eq!(count_placeholders(&extracted), out.len());

    let mut back = extracted.clone();
    fill_placeholders(&mut back, out.len(), &mut |n| {
        let num = u64::from_le_bytes(out[n].as_slice().try_into().expect("8 bytes"));
        stand_in(num as usize)
    })
    .expect("every extracted placeholder is in range");
    assert_eq!(back, filled);
});
