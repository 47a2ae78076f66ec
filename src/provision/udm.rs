//! Reading UDM properties in both listener encodings: ListenerUDMVersion 1 (every value a
//! string: `"OK"`, `"TRUE"`, `"10"`) and version 2 (typed: `true`, `10`). Absent, `null`, `""`
//! and `[]` all mean "empty".

use serde_json::{Map, Value};

/// The UDM properties of an object.
pub type Properties = Map<String, Value>;

/// A single value as text: strings as they are, numbers and booleans printed, the first element
/// of a list. `None` when empty.
pub fn text(props: &Properties, key: &str) -> Option<String> {
    scalar_text(props.get(key)?)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items.iter().find_map(scalar_text),
        Value::Null | Value::Object(_) => None,
    }
}

/// All values as text (a single value becomes a one-element list); empty values are left out.
pub fn texts(props: &Properties, key: &str) -> Vec<String> {
    match props.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(other) => scalar_text(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// An integer given as a number or as decimal text.
pub fn integer(props: &Properties, key: &str) -> Option<i64> {
    match props.get(key)? {
        Value::Number(n) => n.as_i64(),
        other => scalar_text(other)?.trim().parse().ok(),
    }
}

/// A UDM boolean-like flag: `"OK"`, `"TRUE"`, `"1"`, `"yes"` or `true` (case-insensitive) is
/// true; everything else, including absence, is false.
pub fn flag(props: &Properties, key: &str) -> bool {
    match props.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => {
            matches!(s.to_ascii_lowercase().as_str(), "ok" | "true" | "1" | "yes")
        }
        Some(Value::Array(items)) => items.first().is_some_and(|v| {
            let mut one = Map::new();
            one.insert(key.to_owned(), v.clone());
            flag(&one, key)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(value: Value) -> Properties {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn version_1_and_version_2_values_read_alike() {
        let v1 = props(json!({"isOxUser": "OK", "oxContext": "10", "flag": "TRUE", "no": "Not"}));
        let v2 = props(json!({"isOxUser": true, "oxContext": 10, "flag": true, "no": false}));
        for p in [&v1, &v2] {
            assert!(flag(p, "isOxUser"));
            assert!(flag(p, "flag"));
            assert!(!flag(p, "no"));
            assert!(!flag(p, "missing"));
            assert_eq!(integer(p, "oxContext"), Some(10));
            assert_eq!(text(p, "oxContext").as_deref(), Some("10"));
        }
    }

    #[test]
    fn empty_values_are_absent() {
        let p = props(json!({"a": "", "b": [], "c": null, "d": ["", "x"], "e": ["y", "z"]}));
        assert_eq!(text(&p, "a"), None);
        assert_eq!(text(&p, "b"), None);
        assert_eq!(text(&p, "c"), None);
        assert_eq!(text(&p, "d").as_deref(), Some("x"));
        assert_eq!(texts(&p, "e"), ["y", "z"]);
        assert_eq!(texts(&p, "a"), Vec::<String>::new());
    }
}
