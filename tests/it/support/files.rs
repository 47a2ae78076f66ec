//! Listener files written the way the UCS converter writes them: sorted keys, 4-space indent,
//! ASCII escapes, no trailing newline, `<name>.converting.tmp` then a rename.

use std::path::Path;

use serde_json::{json, Value};

/// `2025-01-01-00-00-00-<n:06>.json`: names that sort in the order of `n`.
pub(crate) fn name(n: u32) -> String {
    format!("2025-01-01-00-00-00-{n:06}.json")
}

/// The five keys of a converted listener file.
pub(crate) fn user(entry_uuid: &str, username: &str) -> Value {
    json!({
        "dn": format!("uid={username},cn=users,dc=example,dc=org"),
        "id": entry_uuid,
        "object": {"username": username, "isOxUser": "OK", "oxContext": "10"},
        "options": ["default"],
        "udm_object_type": "users/user",
    })
}

pub(crate) use ox_connector::listener::write::converter_json;

/// Writes `value` as listener file `name` in `dir`, atomically like the converter.
pub(crate) fn write(dir: &Path, name: &str, value: &Value) {
    ox_connector::listener::write::write(dir, name, value).unwrap();
}

/// Writes listener file `n` (user `u<n>` named `user<n>`) for each of `numbers`, in that order.
pub(crate) fn write_users(dir: &Path, numbers: impl IntoIterator<Item = u32>) {
    for n in numbers {
        write(dir, &name(n), &user(&format!("u{n}"), &format!("user{n}")));
    }
}

/// Writes raw bytes as listener file `name` in `dir`, atomically like the converter.
pub(crate) fn write_raw(dir: &Path, name: &str, bytes: &[u8]) {
    ox_connector::listener::write::write_raw(dir, name, bytes).unwrap();
}

/// Names of the `*.json` files directly in `dir`, sorted.
pub(crate) fn listener_files(dir: &Path) -> Vec<String> {
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

/// An old file of the Python connector (`state import`): queue format plus its enrichment keys,
/// written as `<id>.json` into `dir`.
pub(crate) fn old_file(dir: &Path, mut content: Value, enrichment: Value) {
    if let (Some(object), Some(extra)) = (content["object"].as_object_mut(), enrichment.as_object())
    {
        object.extend(extra.clone());
    }
    let id = content["id"].as_str().unwrap().to_owned();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!("{id}.json")),
        serde_json::to_vec_pretty(&content).unwrap(),
    )
    .unwrap();
}
