//! Query strings of GET routes: `application/x-www-form-urlencoded` decoding into `Fields`, so
//! query parameters get the same field-named errors as bodies.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::fields::Fields;

/// Decode `a=1&b=%2Fchat` into string fields. A repeated parameter is an error (it would be
/// ambiguous), and so is invalid percent-encoding or UTF-8.
pub fn parse(query: &str) -> Result<Fields, ApiError> {
    let mut map = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name).ok_or_else(|| ApiError::field("query", "invalid percent-encoding"))?;
        let value = decode(value).ok_or_else(|| ApiError::field(name.clone(), "invalid percent-encoding"))?;
        if map.insert(name.clone(), Value::String(value)).is_some() {
            return Err(ApiError::field(name, "given more than once"));
        }
    }
    Ok(Fields::from_map(map))
}

/// Percent-decode one component (`+` is a space). `None` when malformed or not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_components() {
        assert_eq!(decode("%2Fchat").as_deref(), Some("/chat"));
        assert_eq!(decode("/a+b%20c").as_deref(), Some("/a b c"));
        assert_eq!(decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode("%2"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn parses_into_fields() {
        let mut f = parse("namespace=/chat&&x").unwrap();
        assert_eq!(f.required::<String>("namespace").unwrap(), "/chat");
        assert_eq!(f.required::<String>("x").unwrap(), "");
        f.finish().unwrap();
        assert_eq!(parse("a=1&a=2").unwrap_err().to_string(), "a: given more than once");
        assert_eq!(parse("a=%").unwrap_err().to_string(), "a: invalid percent-encoding");
        assert!(parse("").unwrap().finish().is_ok());
    }
}
