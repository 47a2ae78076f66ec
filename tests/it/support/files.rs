//! Listener files written the way the UCS converter writes them: sorted keys, 4-space indent,
//! ASCII escapes, no trailing newline, `<name>.converting.tmp` then a rename.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

/// `2025-01-01-00-00-00-<n:06>.json`: names that sort in the order of `n`.
pub fn name(n: u32) -> String {
    format!("2025-01-01-00-00-00-{n:06}.json")
}

/// The five keys of a converted listener file.
pub fn user(entry_uuid: &str, username: &str) -> Value {
    json!({
        "dn": format!("uid={username},cn=users,dc=example,dc=org"),
        "id": entry_uuid,
        "object": {"username": username, "isOxUser": "OK", "oxContext": "10"},
        "options": ["default"],
        "udm_object_type": "users/user",
    })
}

/// Serialises like Python's `json.dumps(obj, sort_keys=True, indent=4)` (ensure_ascii on).
pub fn converter_json(value: &Value) -> Vec<u8> {
    // serde_json's Map is ordered by key (no preserve_order feature), so keys come out sorted.
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
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

/// Writes `value` as listener file `name` in `dir`, atomically like the converter.
pub fn write(dir: &Path, name: &str, value: &Value) {
    write_raw(dir, name, &converter_json(value));
}

/// Writes raw bytes as listener file `name` in `dir`, atomically like the converter.
pub fn write_raw(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!("{name}.converting.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Names of the `*.json` files directly in `dir`, sorted.
pub fn listener_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
