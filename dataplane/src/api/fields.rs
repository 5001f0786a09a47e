//! Reading a JSON request body field by field, so every error names the field it is about.
//!
//! `Fields::parse` separates "not JSON" from "not an object"; `required`/`optional` take one
//! field each and prefix any type error with its name; `finish` refuses fields nobody took
//! (typos such as `exceptRoom` would otherwise be silently ignored). `null` counts as absent.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;

/// The fields of one JSON object body, taken one by one.
#[derive(Debug)]
pub struct Fields {
    obj: Map<String, Value>,
    known: Vec<&'static str>,
}

impl Fields {
    /// Parse a body that must be a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::EmptyBody);
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::NotJson(e.to_string()))?;
        match value {
            Value::Object(obj) => Ok(Fields { obj, known: Vec::new() }),
            other => Err(ApiError::NotObject(kind(&other))),
        }
    }

    /// Fields from an already-built map (query parameters).
    pub fn from_map(obj: Map<String, Value>) -> Self {
        Fields { obj, known: Vec::new() }
    }

    /// Take `name` if present and not `null`.
    pub fn optional<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<Option<T>, ApiError> {
        self.known.push(name);
        match self.obj.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some).map_err(|e| ApiError::field(name, e.to_string())),
        }
    }

    /// Take `name`, which must be present.
    pub fn required<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<T, ApiError> {
        self.optional(name)?.ok_or_else(|| ApiError::field(name, "is required"))
    }

    /// Take `name` as a list (absent means empty), at most `max` items.
    pub fn list<T: DeserializeOwned>(&mut self, name: &'static str, max: usize) -> Result<Vec<T>, ApiError> {
        let items: Vec<T> = self.optional(name)?.unwrap_or_default();
        if items.len() > max {
            return Err(ApiError::field(name, format!("at most {max} items, got {}", items.len())));
        }
        Ok(items)
    }

    /// Refuse whatever was not taken.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.obj.into_iter().next() {
            None => Ok(()),
            Some((field, _)) => Err(ApiError::UnknownField { field, expected: self.known.join(", ") }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn body_must_be_a_json_object() {
        assert!(matches!(Fields::parse(b"  \n"), Err(ApiError::EmptyBody)));
        assert!(err(Fields::parse(b"{\"event\": oops"))
            .starts_with("the request body is not JSON: expected value"));
        assert_eq!(err(Fields::parse(b"[1]")), "the request body must be a JSON object, not an array");
        assert!(Fields::parse(b"{}").is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let mut f = Fields::parse(br#"{"rooms":"a","n":-1,"x":null,"typo":1}"#).unwrap();
        assert_eq!(
            err(f.list::<String>("rooms", 4)),
            "rooms: invalid type: string \"a\", expected a sequence"
        );
        assert_eq!(err(f.required::<u64>("n")), "n: invalid value: integer `-1`, expected u64");
        assert_eq!(err(f.required::<String>("x")), "x: is required");
        assert_eq!(err(f.required::<String>("missing")), "missing: is required");
        assert_eq!(err(f.finish()), "unknown field \"typo\"; expected one of: rooms, n, x, missing");
    }

    #[test]
    fn lists_default_to_empty_and_are_bounded() {
        let mut f = Fields::parse(br#"{"a":[1,2,3]}"#).unwrap();
        assert_eq!(err(f.list::<u8>("a", 2)), "a: at most 2 items, got 3");
        assert_eq!(f.list::<u8>("b", 2).unwrap(), Vec::<u8>::new());
        f.finish().unwrap();
    }
}
