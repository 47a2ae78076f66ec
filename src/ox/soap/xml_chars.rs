//! Characters XML 1.0 forbids (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+FFFE, U+FFFF;
//! lone surrogates cannot occur in a Rust string). A request that carries one is not
//! well-formed, so OX's SOAP stack refuses it as a whole. The parser rejects them the way OX's
//! (Woodstox) does; the client's writer never sends them: per field it either drops them with a
//! warning (descriptive text a person reads, where the rest of the value is still right) or
//! refuses the whole request naming the field (names, addresses, logins, passwords, settings:
//! a silently changed value would be a different identity or a broken setting).

/// Whether XML 1.0 allows `c` in a document (`Char` production).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The first forbidden character of `text` with its 1-based row and column, as a parser
/// reports it.
pub fn first_illegal(text: &str) -> Option<(char, usize, usize)> {
    // Fast path: every forbidden character is a control byte or U+FFFE/U+FFFF (EF BF BE/BF).
    let suspicious = text
        .bytes()
        .any(|b| (b < 0x20 && !matches!(b, 9 | 10 | 13)) || b == 0xEF);
    if !suspicious {
        return None;
    }
    let (mut row, mut col) = (1, 0);
    for c in text.chars() {
        if c == '\n' {
            row += 1;
            col = 0;
            continue;
        }
        col += 1;
        if !is_xml_char(c) {
            return Some((c, row, col));
        }
    }
    None
}

/// Woodstox's text for a forbidden character in the document.
pub fn illegal_char_message(c: char, row: usize, col: usize) -> String {
    let code = u32::from(c);
    let what = if code < 0x20 {
        format!("((CTRL-CHAR, code {code}))")
    } else {
        format!("(code 0x{code:x})")
    };
    format!("Illegal character {what}\n at [row,col {{unknown-source}}]: [{row},{col}]")
}

/// Descriptive text fields (by element name): forbidden characters are dropped with a warning.
/// Every other string field refuses the request.
pub fn may_drop_illegal(field: &str) -> bool {
    const DESCRIPTIVE: [&str; 53] = [
        // User: names and contact data shown in the address book.
        "display_name",
        "given_name",
        "sur_name",
        "middle_name",
        "suffix",
        "title",
        "nickname",
        "note",
        "info",
        "categories",
        "company",
        "department",
        "position",
        "profession",
        "branches",
        "business_category",
        "manager_name",
        "assistant_name",
        "marital_status",
        "spouse_name",
        "number_of_children",
        "number_of_employee",
        "employeeType",
        "tax_id",
        "commercial_register",
        "sales_volume",
        "room_number",
        "url",
        "instant_messenger1",
        "instant_messenger2",
        "cellular_telephone1",
        "cellular_telephone2",
        "fax_business",
        "fax_home",
        "fax_other",
        "city_business",
        "city_home",
        "city_other",
        "street_business",
        "street_home",
        "street_other",
        "postal_code_business",
        "postal_code_home",
        "postal_code_other",
        "state_business",
        "state_home",
        "state_other",
        "country_business",
        "country_home",
        "country_other",
        // Group and resource: display names and descriptions.
        "displayname",
        "description",
        // Functional account: the sender's display name.
        "personal",
    ];
    DESCRIPTIVE.contains(&field)
        || field.starts_with("telephone_")
        || (field.starts_with("userfield") && field[9..].chars().all(|c| c.is_ascii_digit()))
}

/// What the client's writer did with forbidden characters.
#[derive(Debug, Default)]
pub struct Guard {
    /// Open elements (local names), for the field path in messages.
    path: Vec<String>,
    /// Fields whose forbidden characters were dropped.
    pub dropped: Vec<String>,
    /// The first field that refuses them.
    pub refused: Option<String>,
}

impl Guard {
    pub fn enter(&mut self, local: &str) {
        self.path.push(local.to_string());
    }

    pub fn leave(&mut self) {
        self.path.pop();
    }

    /// `text` without forbidden characters (borrowed when it has none), noting the field.
    pub fn clean<'t>(&mut self, local: &str, text: &'t str) -> std::borrow::Cow<'t, str> {
        if first_illegal(text).is_none() {
            return std::borrow::Cow::Borrowed(text);
        }
        let field = self
            .path
            .iter()
            .map(String::as_str)
            .chain([local])
            .collect::<Vec<_>>()
            .join("/");
        if may_drop_illegal(local) {
            self.dropped.push(field);
        } else if self.refused.is_none() {
            self.refused = Some(field);
        }
        std::borrow::Cow::Owned(text.chars().filter(|c| is_xml_char(*c)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forbidden_characters_are_exactly_those_of_xml_1_0() {
        for c in [
            '\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{E}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
        ] {
            assert!(!is_xml_char(c), "{c:?}");
            assert!(first_illegal(&format!("ab{c}")).is_some(), "{c:?}");
        }
        for c in [
            '\t', '\n', '\r', ' ', 'ä', '\u{D7FF}', '\u{E000}', '\u{FFFD}', '🙂',
        ] {
            assert!(is_xml_char(c), "{c:?}");
        }
        assert_eq!(first_illegal("a\nbc\u{1}"), Some(('\u{1}', 2, 3)));
        assert_eq!(
            illegal_char_message('\u{1}', 2, 3),
            "Illegal character ((CTRL-CHAR, code 1))\n at [row,col {unknown-source}]: [2,3]"
        );
    }

    #[test]
    fn descriptive_fields_drop_and_identity_fields_refuse() {
        for field in [
            "display_name",
            "telephone_business1",
            "userfield07",
            "description",
        ] {
            assert!(may_drop_illegal(field), "{field}");
        }
        for field in [
            "name",
            "primaryEmail",
            "aliases",
            "password",
            "language",
            "userfieldX",
        ] {
            assert!(!may_drop_illegal(field), "{field}");
        }
    }
}
