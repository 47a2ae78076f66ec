//! Removes secrets from objects before an admin command shows them: passwords, password hashes,
//! Kerberos keys, tokens. A key is secret when its name (case-insensitive) contains `password`,
//! `passwd`, `hash`, `secret`, `token` or `krb5key`, or is one of the UDM/LDAP names listed in
//! [`SECRET_KEYS`]. The value is replaced by `"<redacted>"` (the key stays, so an admin sees that
//! it was there).

use serde_json::Value;

/// Secret keys whose names the substring rule does not catch.
pub const SECRET_KEYS: &[&str] = &[
    "userPassword",
    "sambaNTPassword",
    "sambaLMPassword",
    "krb5Key",
    "krb5KeyVersionNumber",
    "pwhistory",
    "sambaPasswordHistory",
    "adminpass",
    "oxDbPassword",
];

const SECRET_PARTS: &[&str] = &["password", "passwd", "hash", "secret", "token", "krb5key"];

/// What a secret value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Whether the value of `key` must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
        || SECRET_PARTS.iter().any(|part| lower.contains(part))
}

/// Replaces every secret value in `value`, at any depth.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_key(key) && !inner.is_null() {
                    *inner = Value::String(REDACTED.into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A redacted copy of `value`.
pub fn redacted(value: &Value) -> Value {
    let mut copy = value.clone();
    redact(&mut copy);
    copy
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn passwords_hashes_and_keys_are_redacted_at_any_depth() {
        let value = json!({
            "dn": "uid=anna",
            "object": {
                "username": "anna",
                "password": "plain",
                "userPassword": ["{crypt}$6$x"],
                "sambaNTPassword": "A1B2",
                "krb5Key": ["a", "b"],
                "passwordHash": "h",
                "oxAccess": "premium",
                "nested": [{"adminpass": "x", "name": "keep"}],
                "unset": null
            }
        });
        let shown = redacted(&value);
        let text = shown.to_string();
        for secret in ["plain", "{crypt}", "A1B2", "\"a\"", "\"h\"", "\"x\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(shown["object"]["username"], "anna");
        assert_eq!(shown["object"]["oxAccess"], "premium");
        assert_eq!(shown["object"]["nested"][0]["name"], "keep");
        assert_eq!(shown["object"]["password"], REDACTED);
        assert!(shown["object"]["unset"].is_null());
    }
}
