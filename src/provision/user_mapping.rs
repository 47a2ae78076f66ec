//! The UDM → OX attribute mapping of users: which UDM property fills which OX `User` field.
//!
//! The default table is the original connector's (`DEFAULT_USER_MAPPING`); an admin can
//! override single entries in `<data-dir>/AttributeMapping.json`, in the original's format:
//!
//! ```json
//! {"department": {"ldap_attribute": "departmentNumber", "alternative_attributes": ["ou"]},
//!  "telephone_business2": {"ldap_attribute": "phone", "position": 1}}
//! ```
//!
//! Keys are OX field names (as in the WSDL), `ldap_attribute` a UDM property name,
//! `alternative_attributes` fallbacks used when it is empty, `position` the index into a
//! multi-valued property, `special_handling` one of `DEFAULT`, `DATE`, `IMAGE`, `IMAP_URL`,
//! `SMTP_URL`; an entry with `"ldap_attribute": null` (or `""`) switches the field off.
//!
//! Values: a single UDM value (or the element at `position`) becomes the OX field; an empty
//! value clears a text field (OX ignores `xsi:nil`, so clearing means `""`) and leaves other
//! fields untouched. Dates are sent as `YYYY-MM-DD` (UDM may give `DD.MM.YYYY`); a date that is
//! neither is left out with a warning instead of blocking the queue. `jpegPhoto` becomes
//! `image1` with `image1ContentType` `image/jpeg` when it is a JPEG. Mail server fields take the
//! host from `mailHomeServer` (or the setting) and scheme and port from `OX_IMAP_SERVER` /
//! `OX_SMTP_SERVER`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::udm::{self, Properties};

/// The overrides file in the data directory.
pub const FILE_NAME: &str = "AttributeMapping.json";

/// How a field's value is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Special {
    Default,
    Date,
    Image,
    ImapUrl,
    SmtpUrl,
}

/// One OX field's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub udm: String,
    pub alternatives: Vec<String>,
    pub position: Option<usize>,
    pub special: Special,
}

/// The mapping: OX field name → its source.
#[derive(Debug, Clone)]
pub struct UserMapping {
    entries: BTreeMap<String, Entry>,
}

const TEXT: &[(&str, &str)] = &[
    ("given_name", "firstname"),
    ("sur_name", "lastname"),
    ("email1", "mailPrimaryAddress"),
    ("primaryEmail", "mailPrimaryAddress"),
    ("email2", "oxEmail2"),
    ("email3", "oxEmail3"),
    ("company", "organisation"),
    ("city_business", "city"),
    ("street_business", "street"),
    ("postal_code_business", "postcode"),
    ("city_home", "oxCityHome"),
    ("city_other", "oxCityOther"),
    ("street_home", "oxStreetHome"),
    ("street_other", "oxStreetOther"),
    ("postal_code_home", "oxPostalCodeHome"),
    ("postal_code_other", "oxPostalCodeOther"),
    ("state_home", "oxStateHome"),
    ("state_business", "oxStateBusiness"),
    ("state_other", "oxStateOther"),
    ("country_home", "oxCountryHome"),
    ("country_business", "oxCountryBusiness"),
    ("country_other", "oxCountryOther"),
    ("cellular_telephone1", "oxMobileBusiness"),
    ("cellular_telephone2", "mobileTelephoneNumber"),
    ("telephone_pager", "pagerTelephoneNumber"),
    ("room_number", "roomNumber"),
    ("fax_business", "oxFaxBusiness"),
    ("fax_home", "oxFaxHome"),
    ("fax_other", "oxFaxOther"),
    ("telephone_assistant", "oxTelephoneAssistant"),
    ("telephone_car", "oxTelephoneCar"),
    ("telephone_company", "oxTelephoneCompany"),
    ("telephone_ip", "oxTelephoneIp"),
    ("telephone_other", "oxTelephoneOther"),
    ("telephone_telex", "oxTelephoneTelex"),
    ("telephone_ttytdd", "oxTelephoneTtydd"),
    ("instant_messenger1", "oxInstantMessenger1"),
    ("instant_messenger2", "oxInstantMessenger2"),
    ("department", "oxDepartment"),
    ("position", "oxPosition"),
    ("profession", "oxProfession"),
    ("branches", "oxBranches"),
    ("manager_name", "oxManagerName"),
    ("tax_id", "oxTaxId"),
    ("commercial_register", "oxCommercialRegister"),
    ("sales_volume", "oxSalesVolume"),
    ("middle_name", "oxMiddleName"),
    ("suffix", "oxSuffix"),
    ("nickname", "oxNickName"),
    ("note", "oxNote"),
    ("url", "oxUrl"),
    ("title", "title"),
    ("marital_status", "oxMarialStatus"),
    ("spouse_name", "oxSpouseName"),
    ("number_of_children", "oxNumOfChildren"),
    ("employeeType", "employeeType"),
    ("number_of_employee", "employeeNumber"),
];

/// OX fields that are not text (everything else the mapping sets is a string).
fn is_text_field(field: &str) -> bool {
    !matches!(
        field,
        "birthday" | "anniversary" | "maxQuota" | "image1" | "imapServer" | "smtpServer"
    )
}

impl Default for UserMapping {
    fn default() -> Self {
        let mut entries = BTreeMap::new();
        let mut add = |field: &str, udm: &str, alternatives: &[&str], position, special| {
            entries.insert(
                field.to_owned(),
                Entry {
                    udm: udm.to_owned(),
                    alternatives: alternatives.iter().map(|a| (*a).to_owned()).collect(),
                    position,
                    special,
                },
            );
        };
        add(
            "display_name",
            "oxDisplayName",
            &["displayName"],
            None,
            Special::Default,
        );
        for (field, udm) in TEXT {
            add(field, udm, &[], None, Special::Default);
        }
        add(
            "telephone_business1",
            "phone",
            &[],
            Some(0),
            Special::Default,
        );
        add(
            "telephone_business2",
            "phone",
            &[],
            Some(1),
            Special::Default,
        );
        add(
            "telephone_home1",
            "homeTelephoneNumber",
            &[],
            Some(0),
            Special::Default,
        );
        add(
            "telephone_home2",
            "homeTelephoneNumber",
            &[],
            Some(1),
            Special::Default,
        );
        for n in 1..=20 {
            add(
                &format!("userfield{n:02}"),
                &format!("oxUserfield{n:02}"),
                &[],
                None,
                Special::Default,
            );
        }
        add("maxQuota", "oxUserQuota", &[], None, Special::Default);
        add("birthday", "birthday", &[], None, Special::Date);
        add("anniversary", "oxAnniversary", &[], None, Special::Date);
        add("image1", "jpegPhoto", &[], None, Special::Image);
        add("imapServer", "mailHomeServer", &[], None, Special::ImapUrl);
        add("smtpServer", "mailHomeServer", &[], None, Special::SmtpUrl);
        Self { entries }
    }
}

/// One entry of `AttributeMapping.json`.
#[derive(Debug, Deserialize)]
struct Override {
    ldap_attribute: Option<String>,
    #[serde(default)]
    alternative_attributes: Vec<String>,
    #[serde(default)]
    position: Option<usize>,
    #[serde(default)]
    special_handling: Option<Special>,
}

/// The attribute mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl UserMapping {
    /// The default mapping with the overrides of `file` (if it exists).
    pub fn load(file: &Path) -> Result<Self, MappingError> {
        let mut mapping = Self::default();
        let text = match std::fs::read(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(mapping),
            Err(source) => {
                return Err(MappingError::Read {
                    path: file.to_owned(),
                    source,
                })
            }
        };
        let overrides: BTreeMap<String, Override> =
            serde_json::from_slice(&text).map_err(|source| MappingError::Invalid {
                path: file.to_owned(),
                source,
            })?;
        for (field, o) in overrides {
            match o.ldap_attribute.filter(|a| !a.is_empty()) {
                None => {
                    mapping.entries.remove(&field);
                }
                Some(udm) => {
                    let special = o.special_handling.unwrap_or_else(|| {
                        mapping
                            .entries
                            .get(&field)
                            .map_or(Special::Default, |e| e.special)
                    });
                    mapping.entries.insert(
                        field,
                        Entry {
                            udm,
                            alternatives: o.alternative_attributes,
                            position: o.position,
                            special,
                        },
                    );
                }
            }
        }
        Ok(mapping)
    }

    /// The UDM property mapped to the OX `field` (`None` when the field is switched off).
    pub fn source(&self, field: &str) -> Option<&str> {
        self.entries.get(field).map(|entry| entry.udm.as_str())
    }

    /// The text the OX `field` gets from `object`, with the UDM property it comes from (the
    /// mapped one, else the first alternative with a value), as [`UserMapping::map`] picks it.
    pub fn value_of(&self, field: &str, object: &Properties) -> Option<(&str, String)> {
        let entry = self.entries.get(field)?;
        std::iter::once(&entry.udm)
            .chain(&entry.alternatives)
            .find_map(|udm_name| Some((udm_name.as_str(), pick(object, udm_name, entry.position)?)))
    }

    /// The OX fields (WSDL names → JSON values) for the UDM `object`. `clear_empty` sends `""`
    /// for empty text fields (on change); otherwise they are left out (on create).
    pub fn map(
        &self,
        object: &Properties,
        servers: &MailServers,
        clear_empty: bool,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (field, entry) in &self.entries {
            let value = std::iter::once(&entry.udm)
                .chain(&entry.alternatives)
                .find_map(|udm_name| pick(object, udm_name, entry.position));
            match entry.special {
                Special::Default => match value {
                    Some(v) if field == "maxQuota" => {
                        if let Ok(quota) = v.trim().parse::<i64>() {
                            out.insert(field.clone(), json!(quota));
                        }
                    }
                    Some(v) => {
                        out.insert(field.clone(), json!(v));
                    }
                    None if field == "maxQuota" => {
                        out.insert(field.clone(), json!(-1));
                    }
                    None if clear_empty && is_text_field(field) => {
                        out.insert(field.clone(), json!(""));
                    }
                    None => {}
                },
                Special::Date => {
                    if let Some(v) = value {
                        match iso_date(&v) {
                            Some(date) => {
                                out.insert(field.clone(), json!(date));
                            }
                            None => tracing::warn!(
                                field = %field,
                                value = %v,
                                "Date is neither YYYY-MM-DD nor DD.MM.YYYY; leaving it unchanged in OX."
                            ),
                        }
                    }
                }
                Special::Image => match value {
                    Some(base64) => {
                        let base64: String = base64.split_whitespace().collect();
                        out.insert("image1".into(), json!(base64));
                        if is_jpeg(&base64) {
                            out.insert("image1ContentType".into(), json!("image/jpeg"));
                        } else {
                            tracing::warn!("The user's photo is not a JPEG image; sending it without a content type.");
                        }
                    }
                    None if clear_empty => {
                        out.insert("image1ContentType".into(), json!(""));
                    }
                    None => {}
                },
                Special::ImapUrl | Special::SmtpUrl => {
                    let (url, prefix) = if entry.special == Special::ImapUrl {
                        (&servers.imap, "imap")
                    } else {
                        (&servers.smtp, "smtp")
                    };
                    let (scheme, default_host, port) = split_server_url(url);
                    let host = value.unwrap_or(default_host);
                    out.insert(format!("{prefix}Server"), json!(host));
                    if let Some(port) = port {
                        out.insert(format!("{prefix}Port"), json!(port));
                    }
                    out.insert(format!("{prefix}Schema"), json!(format!("{scheme}://")));
                }
            }
        }
        out
    }
}

/// `OX_LANGUAGE` as OX takes it: OX refuses a language without an underscore
/// (`Language must contain an underscore, e.g. en_US.`), so such a setting is refused here,
/// before anything is sent.
pub fn ox_language(setting: &str) -> Result<&str, String> {
    let language = setting.trim();
    if language.contains('_') {
        Ok(language)
    } else {
        Err(format!(
            "OX_LANGUAGE {setting:?} is not a locale like de_DE or en_US; OX refuses a language \
             without an underscore. Fix the app setting, then `queue retry`"
        ))
    }
}

/// `OX_IMAP_SERVER` and `OX_SMTP_SERVER`.
#[derive(Debug, Clone)]
pub struct MailServers {
    pub imap: String,
    pub smtp: String,
}

/// The value of `udm_name` (the element at `position` of a list), as text; `None` when empty.
fn pick(object: &Properties, udm_name: &str, position: Option<usize>) -> Option<String> {
    match position {
        None => udm::text(object, udm_name),
        Some(i) => udm::texts(object, udm_name).into_iter().nth(i),
    }
}

/// `imap://host:143` → (`imap`, `host`, `Some(143)`).
fn split_server_url(url: &str) -> (String, String, Option<i32>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("imap", url));
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
            (scheme.to_owned(), host.to_owned(), port.parse().ok())
        }
        _ => (scheme.to_owned(), rest.to_owned(), None),
    }
}

/// `YYYY-MM-DD` or `DD.MM.YYYY` (UDM's German format) as ISO `YYYY-MM-DD`.
fn iso_date(value: &str) -> Option<String> {
    let value = value.trim();
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(value, "%d.%m.%Y"))
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// Whether base64 data starts with the JPEG magic bytes `FF D8 FF` (base64 `/9j/`).
fn is_jpeg(base64: &str) -> bool {
    base64.starts_with("/9j/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> MailServers {
        MailServers {
            imap: "imap://mail.example.org:143".into(),
            smtp: "smtp://mail.example.org:587".into(),
        }
    }

    fn object(value: Value) -> Properties {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn languages_without_an_underscore_are_refused_before_calling_ox() {
        assert_eq!(ox_language(" de_DE "), Ok("de_DE"));
        let refused = ox_language("de").unwrap_err();
        assert!(refused.contains("OX_LANGUAGE \"de\""), "{refused}");
    }

    #[test]
    fn the_default_mapping_fills_the_ox_fields() {
        let fields = UserMapping::default().map(
            &object(json!({
                "firstname": "Anna", "lastname": "Koch", "displayName": "Anna Koch",
                "mailPrimaryAddress": "anna@example.org", "phone": ["+49 1", "+49 2"],
                "birthday": "03.11.1987", "oxUserQuota": "1024", "mailHomeServer": "mx1.example.org",
                "oxUserfield07": "seven", "jpegPhoto": "/9j/4AAQ"
            })),
            &servers(),
            false,
        );
        assert_eq!(fields["given_name"], "Anna");
        assert_eq!(
            fields["display_name"], "Anna Koch",
            "falls back to displayName"
        );
        assert_eq!(fields["primaryEmail"], "anna@example.org");
        assert_eq!(fields["telephone_business2"], "+49 2");
        assert_eq!(fields["birthday"], "1987-11-03");
        assert_eq!(fields["maxQuota"], 1024);
        assert_eq!(fields["imapServer"], "mx1.example.org");
        assert_eq!(fields["imapPort"], 143);
        assert_eq!(fields["imapSchema"], "imap://");
        assert_eq!(fields["smtpPort"], 587);
        assert_eq!(fields["userfield07"], "seven");
        assert_eq!(fields["image1ContentType"], "image/jpeg");
        assert!(
            !fields.contains_key("department"),
            "empty fields are left out on create"
        );
    }

    #[test]
    fn empty_text_clears_on_change_and_bad_dates_are_left_out() {
        let fields = UserMapping::default().map(
            &object(json!({"oxDepartment": "", "birthday": "yesterday"})),
            &servers(),
            true,
        );
        assert_eq!(fields["department"], "");
        assert!(!fields.contains_key("birthday"));
        assert_eq!(fields["maxQuota"], -1);
        assert_eq!(
            fields["imapServer"], "mail.example.org",
            "host from the setting"
        );
    }

    #[test]
    fn attribute_mapping_json_overrides_single_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("AttributeMapping.json");
        std::fs::write(
            &file,
            r#"{"department": {"ldap_attribute": "departmentNumber"},
                "note": {"ldap_attribute": null}}"#,
        )
        .unwrap();
        let mapping = UserMapping::load(&file).unwrap();
        let fields = mapping.map(
            &object(json!({"departmentNumber": "R&D", "oxNote": "x", "oxDepartment": "no"})),
            &servers(),
            false,
        );
        assert_eq!(fields["department"], "R&D");
        assert!(!fields.contains_key("note"));
    }
}
