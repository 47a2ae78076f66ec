//! Redaction: fields removed from `body.new`/`body.old` before a message reaches a subscriber.
//!
//! Patterns are field names compared case-insensitively; `*` matches any run of characters
//! (`*Hash*`). They apply at every depth of the object.

use serde_json::{Map, Value};

use crate::message::ProvisioningMessage;

/// The default: password material UCS keeps on users. (`*Password*` is deliberately not a
/// default: it would also remove access-profile rights such as `editpassword`.)
pub const DEFAULT_FIELDS: [&str; 7] = [
    "password",
    "userPassword",
    "sambaNTPassword",
    "sambaLMPassword",
    "sambaPasswordHistory",
    "krb5Key",
    "pwhistory",
];

/// Removes the fields matching `patterns` from the message's bodies.
pub fn redact(message: &mut ProvisioningMessage, patterns: &[String]) {
    if patterns.is_empty() {
        return;
    }
    for body in [&mut message.body.new, &mut message.body.old]
        .into_iter()
        .flatten()
    {
        redact_map(body, patterns);
    }
}

fn redact_map(map: &mut Map<String, Value>, patterns: &[String]) {
    map.retain(|key, _| !patterns.iter().any(|p| matches(p, key)));
    for value in map.values_mut() {
        redact_value(value, patterns);
    }
}

fn redact_value(value: &mut Value, patterns: &[String]) {
    match value {
        Value::Object(map) => redact_map(map, patterns),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, patterns)),
        _ => {}
    }
}

/// Case-insensitive glob match with `*`.
fn matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let name = name.to_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns_match_case_insensitively() {
        assert!(matches("userPassword", "userpassword"));
        assert!(matches("*Hash*", "ntHashValue"));
        assert!(matches("krb5*", "krb5Key"));
        assert!(!matches("password", "editpassword"));
        assert!(!matches("*Hash", "hashes"));
    }
}
