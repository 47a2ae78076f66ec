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

/// Case-insensitive glob match with `*`. Runs for every field of every message against every
/// pattern, so names and patterns in ASCII (all UDM attribute names) are compared in place.
fn matches(pattern: &str, name: &str) -> bool {
    if pattern.is_ascii() && name.is_ascii() {
        glob(pattern.as_bytes(), name.as_bytes())
    } else {
        glob(
            pattern.to_lowercase().as_bytes(),
            name.to_lowercase().as_bytes(),
        )
    }
}

/// Whether `name` matches `pattern` (`*`: any run), ASCII letters in any case.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let mut parts = pattern.split(|b| *b == b'*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = strip_prefix(name, first) else {
        return false;
    };
    let Some(last) = parts.next_back() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for middle in parts {
        match find(rest, middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest[rest.len() - last.len()..].eq_ignore_ascii_case(last)
}

fn strip_prefix<'a>(name: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
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
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "AxxBxxC"));
        assert!(!matches("a*b*c", "AxxCxxB"));
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("pässwort", "PÄSSWORT"));
        assert!(!matches("userPassword", "userPasswordX"));
    }
}
