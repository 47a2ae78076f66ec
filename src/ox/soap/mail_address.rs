//! Which e-mail addresses OX accepts in a user's mail fields.
//!
//! OX refuses a user `create` or `change` with `Invalid email address` when one of the user's
//! addresses is not what `new QuotedInternetAddress(address)` parses into exactly one address
//! (`GenericChecks.checkValidMailAddress`, called by `OXToolMySQLStorage.checkValidEmailsInUserObject`
//! for `primaryEmail`, `email1`, `email2`, `email3`, `defaultSenderAddress` and every alias;
//! empty and blank values are not checked). The OX emulator applies [`ox_accepts`] the way OX
//! does; the connector applies it before sending, so that a bad address blocks with the UDM
//! attribute that holds it instead of OX's bare text.
//!
//! [`ox_accepts`] follows OX's parser (`com.openexchange.mail.mime.QuotedInternetAddress`, a copy
//! of JavaMail's `InternetAddress` "strict" parsing) for the inputs a directory holds:
//! - one address, optionally as `Name <local@domain>`; surrounding blanks are ignored; a comma
//!   between two addresses makes two (refused);
//! - the local part: no blank, control or non-ASCII character and none of `()<>@,;:\"[]`
//!   unless quoted or escaped; an unbalanced quote, `<`, `>`, `(`, `)` or `[` is refused;
//! - `@` then a domain that is not empty, does not start or end with a dot, has no `..`, no
//!   blank, control or special character (a second `@` is one);
//! - a non-ASCII domain is converted to its ASCII (punycode) form first, as OX's `IDNA.toACE`
//!   does (STD3 rules); one that cannot be converted is refused. So `anna@müller.de` is
//!   accepted, `jörg@example.org` (non-ASCII local part) is refused;
//! - like JavaMail, a simple name without `@domain` (`anna`) is accepted, and the local part's
//!   dots are not checked (`.anna.@example.org` passes).
//!
//! Not modelled: RFC 2047 encoded words (`=?UTF-8?…?=`), which OX decodes first.

/// Characters that are special in an address, except `.` (JavaMail's `SPECIALS_NO_DOT`).
const SPECIALS_NO_DOT: &str = "()<>@,;:\\\"[]";

/// Whether OX accepts `address` in a user's mail field: blank values are not checked (OX's
/// `Strings.isNotEmpty`), others must parse like [`QuotedInternetAddress`](self).
pub fn ox_accepts(address: &str) -> bool {
    address.trim().is_empty() || parse(address).is_some_and(|list| list == 1)
}

/// Why an address does not parse (JavaMail's `AddressException` texts; only for debugging).
type Refused = &'static str;

/// The parse state of one address in the list.
#[derive(Default)]
struct Token {
    start: Option<usize>,
    end: Option<usize>,
    route_addr: bool,
}

/// The number of addresses `text` holds, or `None` when it does not parse (strict, not a
/// header: every error is fatal).
fn parse(text: &str) -> Option<usize> {
    let s: Vec<char> = text.chars().collect();
    let mut count = 0;
    let mut token = Token::default();
    let mut in_group = false;
    let mut index = 0;
    while index < s.len() {
        match s[index] {
            '(' => {
                if token.start.is_some() && token.end.is_none() {
                    token.end = Some(index);
                }
                index = skip_comment(&s, index).ok()?;
            }
            ')' | '>' => return None,
            '<' => {
                if token.route_addr {
                    return None; // "Extra route-addr"
                }
                let close = find_route_end(&s, index).ok()?;
                if !in_group {
                    token.start = Some(index + 1);
                }
                token.route_addr = true;
                token.end = Some(close);
                index = close;
            }
            '"' => {
                token.start.get_or_insert(index);
                index = skip_until(&s, index, '"').ok()?;
            }
            '[' => index = skip_until(&s, index, ']').ok()?,
            ';' if token.start.is_none() => token = Token::default(),
            ';' => {
                if !in_group {
                    return None; // "Illegal semicolon, not in group"
                }
                // A group (`name:a@b.c;`) is one address, not checked further.
                in_group = false;
                count += 1;
                token = Token::default();
            }
            ',' if token.start.is_none() => token = Token::default(),
            ',' if in_group => token.route_addr = false,
            ',' => {
                check_token(&s, &token, index).ok()?;
                count += 1;
                token = Token::default();
            }
            ':' => {
                if in_group {
                    return None; // "Nested group"
                }
                token.start.get_or_insert(index);
                in_group = true;
            }
            ' ' | '\t' | '\r' | '\n' => {}
            _ => {
                token.start.get_or_insert(index);
            }
        }
        index += 1;
    }
    if token.start.is_some() {
        check_token(&s, &token, s.len()).ok()?;
        count += 1;
    }
    Some(count)
}

/// From the `(` at `open`, the index of the `)` that closes it (comments nest, `\` escapes).
fn skip_comment(s: &[char], open: usize) -> Result<usize, Refused> {
    let mut depth = 1;
    let mut index = open + 1;
    while index < s.len() {
        match s[index] {
            '\\' => index += 1,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(index);
                }
            }
            _ => {}
        }
        index += 1;
    }
    Err("Missing ')'")
}

/// From the `<` at `open`, the index of the `>` outside quotes that closes the route address.
fn find_route_end(s: &[char], open: usize) -> Result<usize, Refused> {
    let mut in_quote = false;
    let mut index = open + 1;
    while index < s.len() {
        match s[index] {
            '\\' => index += 1,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return Ok(index),
            _ => {}
        }
        index += 1;
    }
    Err(if in_quote {
        "Missing '\"'"
    } else {
        "Missing '>'"
    })
}

/// From the opening character at `open`, the index of `close` (`\` escapes).
fn skip_until(s: &[char], open: usize, close: char) -> Result<usize, Refused> {
    let mut index = open + 1;
    while index < s.len() {
        match s[index] {
            '\\' => index += 1,
            c if c == close => return Ok(index),
            _ => {}
        }
        index += 1;
    }
    Err("Missing closing character")
}

/// Checks the address of `token` (ending at `end` unless the token knows its end).
fn check_token(s: &[char], token: &Token, end: usize) -> Result<(), Refused> {
    let start = token.start.unwrap_or(0);
    let end = token.end.unwrap_or(end).max(start);
    let address: String = s[start..end].iter().collect();
    check_address(&to_ace(address.trim())?, token.route_addr)
}

/// OX's `IDNA.toACE`: a non-ASCII address with `@` gets the part after its first `@` in ASCII
/// (punycode, STD3 rules); an ASCII address is left alone.
fn to_ace(address: &str) -> Result<String, Refused> {
    if address.is_ascii() {
        return Ok(address.to_owned());
    }
    let Some(at) = address.find('@') else {
        return Ok(address.to_owned());
    };
    let (local, domain) = (&address[..at], &address[at + 1..]);
    if domain.is_empty() {
        return Ok(address.to_owned());
    }
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| "not a valid IDN domain")?;
    Ok(format!("{local}@{ascii}"))
}

/// JavaMail's `checkAddress(addr, routeAddr, validate = false)`: a mailbox `local@domain` (or
/// a simple name), with an optional route `@a,@b:` before it.
fn check_address(address: &str, route_addr: bool) -> Result<(), Refused> {
    let s: Vec<char> = address.chars().collect();
    if s.is_empty() {
        return Err("Empty address");
    }
    let start = if route_addr && s[0] == '@' {
        route_end(&s)?
    } else {
        0
    };
    let Some((at, before_at)) = local_part_end(&s, start)? else {
        return Ok(()); // a simple name: allowed when not validating
    };
    check_domain(&s[at + 1..], before_at)
}

/// The index after a route `@a,@b:` at the start of `s`.
fn route_end(s: &[char]) -> Result<usize, Refused> {
    let mut start = 0;
    while let Some(offset) = s[start..].iter().position(|c| *c == ',' || *c == ':') {
        let i = start + offset;
        if s[start] != '@' {
            return Err("Illegal route-addr");
        }
        start = i + 1;
        if s[i] == ':' {
            break;
        }
    }
    Ok(start)
}

/// Scans the local part from `start`: the index of the `@` that ends it and the character
/// before that `@`, or `None` for a simple name.
fn local_part_end(s: &[char], start: usize) -> Result<Option<(usize, Option<char>)>, Refused> {
    let mut c: Option<char> = None;
    let mut in_quote = false;
    for (i, &ch) in s.iter().enumerate().skip(start) {
        let last = c;
        c = Some(ch);
        if ch == '\\' || last == Some('\\') {
            continue;
        }
        if ch == '"' {
            in_quote = !in_quote;
            continue;
        }
        if in_quote {
            continue;
        }
        if ch == '@' {
            if i == 0 {
                return Err("Missing local name");
            }
            return Ok(Some((i, last)));
        }
        if ch <= ' ' || !ch.is_ascii() || ch == '\u{7f}' {
            return Err("Local address contains control/whitespace or non-ascii character");
        }
        if SPECIALS_NO_DOT.contains(ch) {
            return Err("Local address contains illegal character");
        }
    }
    if in_quote {
        return Err("Unterminated quote");
    }
    Ok(None)
}

/// The domain after `@` (`before_at` is the character before the `@`, which JavaMail's
/// dot-dot check starts from).
fn check_domain(domain: &[char], before_at: Option<char>) -> Result<(), Refused> {
    let Some(first) = domain.first() else {
        return Err("Missing domain");
    };
    if *first == '.' {
        return Err("Domain starts with dot");
    }
    let mut last = before_at;
    for &c in domain {
        if c == '[' {
            return Ok(()); // a domain literal is not validated
        }
        if c <= ' ' || !c.is_ascii() || c == '\u{7f}' {
            return Err("Domain contains control or whitespace");
        }
        if SPECIALS_NO_DOT.contains(c) {
            return Err("Domain contains illegal character");
        }
        if c == '.' && last == Some('.') {
            return Err("Domain contains dot-dot");
        }
        last = Some(c);
    }
    if last == Some('.') {
        return Err("Domain ends with dot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ox_accepts;

    #[test]
    fn addresses_ox_accepts() {
        for address in [
            "anna@example.org",
            "Anna.Koch+news@mail.example.org",
            "o'brien@example.org",
            "anna@müller.de",
            "anna@EXAMPLE.org",
            " anna@example.org ",
            "Anna Koch <anna@example.org>",
            "\"anna koch\"@example.org",
            "anna@[192.0.2.1]",
            "anna",
            ".anna.@example.org",
            "",
            "   ",
        ] {
            assert!(ox_accepts(address), "{address:?} should be accepted");
        }
    }

    #[test]
    fn addresses_ox_refuses() {
        for address in [
            "@example.org",
            "anna@",
            "anna koch@example.org",
            "anna@exa mple.org",
            "anna@@example.org",
            "anna@b@example.org",
            "anna@example.org.",
            "anna@.example.org",
            "anna@example..org",
            "\"anna@example.org",
            "anna\"@example.org",
            "jörg@example.org",
            "anna@exa_mple.de\u{fc}",
            "anna@-müller.de",
            "anna@example.org, bert@example.org",
            "<anna@example.org",
            "anna@example.org>",
            "anna(@example.org",
            "anna;@example.org",
            "a:b@example.org",
            "anna@exam(ple.org",
            "anna\u{1}@example.org",
        ] {
            assert!(!ox_accepts(address), "{address:?} should be refused");
        }
    }
}
