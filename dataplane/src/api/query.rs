//! Query strings of GET routes: `application/x-www-form-urlencoded` decoding into `Fields`, so
//! query parameters get the same field-named errors as bodies.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::fields::Fields;
use crate::urlencoded::decode;

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

#[cfg(test)]
mod tests {
    use super::*;

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
