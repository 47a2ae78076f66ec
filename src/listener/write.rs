//! Writing listener files exactly as the App Center's converter does: keys sorted, 4-space
//! indent, non-ASCII escaped as `\uXXXX`, no trailing newline, written to
//! `<name>.converting.tmp` and renamed into place, named after the local time
//! (`%Y-%m-%d-%H-%M-%S-%f.json`). Used by the demo and the tests; the daemon itself never writes
//! into the listener folder.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

/// Serialises like Python's `json.dumps(value, sort_keys=True, indent=4)` (ASCII only).
pub fn converter_json(value: &Value) -> Vec<u8> {
    let sorted = sort_keys(value);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serialising a `Value` into a `Vec` cannot fail.
    let _ = sorted.serialize(&mut serializer);
    let mut ascii = String::with_capacity(out.len());
    for c in String::from_utf8_lossy(&out).chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    ascii.into_bytes()
}

/// A copy with every object's keys in code-point order (independent of serde_json's map type).
fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sort_keys(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// Writes `bytes` as listener file `name` in `dir`: temporary name, then rename.
pub fn write_raw(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.converting.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Writes `value` as listener file `name` in `dir`, formatted like the converter.
pub fn write(dir: &Path, name: &str, value: &Value) -> std::io::Result<()> {
    write_raw(dir, name, &converter_json(value))
}

/// A listener file name for the current local time.
pub fn name_now() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d-%H-%M-%S-%6f.json")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_matches_python_json_dumps() {
        let value = json!({"b": [1, {"z": null, "a": "Ş"}], "a": {}, "c": []});
        // python3 -c 'import json; print(json.dumps({"b": [1, {"z": None, "a": "Ş"}], "a": {}, "c": []}, sort_keys=True, indent=4), end="")'
        let expected = "{\n    \"a\": {},\n    \"b\": [\n        1,\n        {\n            \"a\": \"\\u015e\",\n            \"z\": null\n        }\n    ],\n    \"c\": []\n}";
        assert_eq!(String::from_utf8(converter_json(&value)).unwrap(), expected);
    }

    #[test]
    fn names_are_listener_file_names() {
        assert!(crate::listener::is_listener_file_name(&name_now()));
    }
}
