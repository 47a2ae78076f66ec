//! The converted listener file format: five keys, `object: null` for a delete.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Files larger than this are refused: a UDM object is a few KiB, a large group a few MiB.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A parsed and validated listener file.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerFile {
    /// The file name (not the path), e.g. `2025-03-07-14-02-09-381275.json`.
    pub name: String,
    /// LDAP DN of the object (the new DN after a move; the DN at deletion time for a delete).
    pub dn: String,
    /// The entry UUID: stable across renames and moves, the key of all remembered state.
    pub entry_uuid: String,
    /// The UDM module, e.g. `users/user`.
    pub udm_object_type: String,
    /// UDM properties; `None` means the object was deleted.
    pub object: Option<Map<String, Value>>,
    /// UDM options; `None` on a delete.
    pub options: Option<Vec<String>>,
    /// The exact bytes read, so the message id can be derived from them.
    pub raw: Vec<u8>,
    /// The requeue generation when the file came back from `skipped/` or `broken/`
    /// ([`super::requeue`]); part of the message id, so the re-queued file is published again.
    pub requeue_generation: Option<String>,
}

/// Why a listener file could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ListenerFileError {
    #[error("{path}: cannot read the file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: the file is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}: invalid JSON: {source}")]
    InvalidJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: the top level is {found}, expected a JSON object")]
    NotAnObject { path: PathBuf, found: &'static str },
    #[error("{path}: the key {key:?} is missing")]
    MissingKey { path: PathBuf, key: &'static str },
    #[error("{path}: the key {key:?} is {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}: the key {key:?} is empty")]
    Empty { path: PathBuf, key: &'static str },
    #[error("{path}: {value:?} is not a UDM module name like \"users/user\"")]
    InvalidModule { path: PathBuf, value: String },
}

/// Reads at most [`MAX_FILE_BYTES`] of the regular file at `path`. Symbolic links are not
/// followed and a named pipe or device is refused without waiting for a writer, so a hostile
/// entry in the folder can neither block the reader nor make it read without end; the size is
/// checked on the open file, so a file swapped for a larger one meanwhile is caught too.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, ListenerFileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| ListenerFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(read_err)?;
    let metadata = file.metadata().map_err(read_err)?;
    if !metadata.is_file() {
        return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(ListenerFileError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut raw = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(read_err)?;
    Ok(raw)
}

impl ListenerFileError {
    /// Whether the file vanished between listing and reading (an admin `rm`, or the host
    /// deleting it after a successful trigger run): not an error, the file is just gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

impl ListenerFile {
    /// Reads and validates the listener file at `path`.
    pub fn read(path: &Path) -> Result<Self, ListenerFileError> {
        let raw = read_bounded(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(path, name, raw)
    }

    /// Validates `raw`, the content of the file `name` found at `path` (used in messages).
    pub fn parse(path: &Path, name: String, raw: Vec<u8>) -> Result<Self, ListenerFileError> {
        let mut top = top_object(path, &raw)?;
        let path = || path.to_owned();
        let mut take = |key: &'static str| {
            top.remove(key)
                .ok_or(ListenerFileError::MissingKey { path: path(), key })
        };
        let wrong = |key, expected, found: &Value| ListenerFileError::WrongType {
            path: path(),
            key,
            expected,
            found: json_kind(found),
        };
        let non_empty_string = |key: &'static str, value: Value| match value {
            Value::String(s) if s.trim().is_empty() => {
                Err(ListenerFileError::Empty { path: path(), key })
            }
            Value::String(s) => Ok(s),
            other => Err(wrong(key, "a string", &other)),
        };

        let dn = non_empty_string("dn", take("dn")?)?;
        let entry_uuid = non_empty_string("id", take("id")?)?;
        let udm_object_type = non_empty_string("udm_object_type", take("udm_object_type")?)?;
        if !is_udm_module(&udm_object_type) {
            return Err(ListenerFileError::InvalidModule {
                path: path(),
                value: udm_object_type,
            });
        }
        let object = match take("object")? {
            Value::Null => None,
            Value::Object(map) => Some(map),
            other => return Err(wrong("object", "an object or null", &other)),
        };
        let options = match take("options")? {
            Value::Null => None,
            Value::Array(items) => Some(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s),
                        other => Err(wrong("options", "a list of strings", &other)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            other => return Err(wrong("options", "a list of strings or null", &other)),
        };
        Ok(Self {
            name,
            dn,
            entry_uuid,
            udm_object_type,
            object,
            options,
            raw,
            requeue_generation: None,
        })
    }

    /// Whether this file reports a deleted object.
    pub fn is_delete(&self) -> bool {
        self.object.is_none()
    }
}

/// A UDM module name as it may appear in a NATS subject token: `flavour/name`, lower-case
/// letters, digits, `_` and `-` only (no `.`, `*`, `>` or white space).
fn is_udm_module(value: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    matches!(value.split_once('/'), Some((a, b)) if ok(a) && ok(b))
}

/// The top-level JSON object of a listener file's content: not too large, UTF-8, JSON, an
/// object.
fn top_object(
    path: &Path,
    raw: &[u8],
) -> Result<serde_json::Map<String, Value>, ListenerFileError> {
    let path = || path.to_owned();
    if raw.len() as u64 > MAX_FILE_BYTES {
        return Err(ListenerFileError::TooLarge {
            path: path(),
            size: raw.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    if let Err(e) = std::str::from_utf8(raw) {
        return Err(ListenerFileError::NotUtf8 {
            path: path(),
            offset: e.valid_up_to(),
        });
    }
    let value: Value =
        serde_json::from_slice(raw).map_err(|source| ListenerFileError::InvalidJson {
            path: path(),
            source,
        })?;
    match value {
        Value::Object(top) => Ok(top),
        other => Err(ListenerFileError::NotAnObject {
            path: path(),
            found: json_kind(&other),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ListenerFile, ListenerFileError> {
        ListenerFile::parse(
            Path::new("/q/2025-03-07-14-02-09-381275.json"),
            "2025-03-07-14-02-09-381275.json".into(),
            text.as_bytes().to_vec(),
        )
    }

    #[test]
    fn version_1_string_values_are_accepted() {
        let file = parse(
            r#"{
    "dn": "uid=akoch,cn=users,dc=example,dc=org",
    "id": "c41e7a90-3d2b-103f-9b0c-11a2b3c4d5e6",
    "object": {
        "displayName": "Anna Koch-\u015eahin",
        "isOxUser": "OK",
        "oxContext": "10",
        "uidNumber": "2107"
    },
    "options": [
        "default"
    ],
    "udm_object_type": "users/user"
}"#,
        )
        .unwrap();
        assert_eq!(file.entry_uuid, "c41e7a90-3d2b-103f-9b0c-11a2b3c4d5e6");
        assert_eq!(file.udm_object_type, "users/user");
        let object = file.object.unwrap();
        assert_eq!(object["displayName"], "Anna Koch-Şahin");
        assert_eq!(object["oxContext"], "10");
        assert_eq!(file.options.unwrap(), vec!["default"]);
    }

    #[test]
    fn version_2_typed_values_are_accepted() {
        let file = parse(
            r#"{"dn": "cn=context20,cn=open-xchange,dc=example,dc=org",
                "id": "7b0d5f12-4e6a-103f-8c7d-22b3c4d5e6f7",
                "object": {"contextid": 20, "name": "context20", "oxQuota": 4096, "x": true},
                "options": [], "udm_object_type": "oxmail/oxcontext"}"#,
        )
        .unwrap();
        assert_eq!(file.object.unwrap()["contextid"], 20);
        assert_eq!(file.options, Some(vec![]));
    }

    #[test]
    fn a_null_object_is_a_delete() {
        let file = parse(
            r#"{"dn": "cn=g,dc=x", "id": "e90a", "object": null, "options": null,
                "udm_object_type": "groups/group"}"#,
        )
        .unwrap();
        assert!(file.is_delete());
        assert_eq!(file.options, None);
    }

    #[test]
    fn errors_name_the_file_and_the_reason() {
        let cases = [
            (r#"{"dn": "#, "invalid JSON"),
            (r#"[1]"#, "the top level is a list"),
            (
                r#"{"id": "x", "object": null, "options": null, "udm_object_type": "users/user"}"#,
                "the key \"dn\" is missing",
            ),
            (
                r#"{"dn": 5, "id": "x", "object": null, "options": null, "udm_object_type": "users/user"}"#,
                "the key \"dn\" is a number, expected a string",
            ),
            (
                r#"{"dn": "cn=x", "id": " ", "object": null, "options": null, "udm_object_type": "users/user"}"#,
                "the key \"id\" is empty",
            ),
            (
                r#"{"dn": "cn=x", "id": "u", "object": [], "options": null, "udm_object_type": "users/user"}"#,
                "the key \"object\" is a list, expected an object or null",
            ),
            (
                r#"{"dn": "cn=x", "id": "u", "object": {}, "options": [1], "udm_object_type": "users/user"}"#,
                "the key \"options\" is a number, expected a list of strings",
            ),
            (
                r#"{"dn": "cn=x", "id": "u", "object": {}, "options": [], "udm_object_type": "users.user"}"#,
                "is not a UDM module name",
            ),
            (
                r#"{"dn": "cn=x", "id": "u", "object": {}, "udm_object_type": "users/user"}"#,
                "the key \"options\" is missing",
            ),
        ];
        for (text, reason) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(
                message.starts_with("/q/2025-03-07-14-02-09-381275.json: "),
                "{message}"
            );
            assert!(message.contains(reason), "{message:?} lacks {reason:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_offset() {
        let err = ListenerFile::parse(
            Path::new("/q/a.json"),
            "a.json".into(),
            b"{\"dn\xff".to_vec(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ListenerFileError::NotUtf8 { offset: 4, .. }),
            "{err}"
        );
    }
}
