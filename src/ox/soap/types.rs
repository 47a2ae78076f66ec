//! The OX data objects (Context, User, Group, Resource, UserModuleAccess, Credentials, …) with
//! their XML encoding.
//!
//! Every struct lists **all** fields of its XSD type, in `xs:sequence` order, so requests are
//! written in schema order and no field a real client may send is unknown to the emulator.
//! Fields are `Option`s (or `Vec`s for arrays) with OX's three-state meaning in `change`
//! requests: `None` = leave unchanged, `Some("")` = clear, `Some(v)` = set. Field names in JSON
//! (the emulator's state dump) are the XML names.
//!
//! Decoding is namespace-aware: in *lenient* mode (the client reading responses) unknown or
//! foreign elements are ignored, `xsi:nil` means absent; in *strict* mode (the emulator reading
//! requests) a child that is neither in the type's namespace nor unqualified, or whose local
//! name the type does not have, is an error, exactly where OX answers with a `soap:Client`
//! fault (`ox-soap.md` §2.1).

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::xml::{Element, Ns, XmlWriter};

/// Why a data object could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An element the type does not have, or one in a foreign namespace (strict mode only).
    #[error("unexpected element {name:?} (URI={uri:?})")]
    Unexpected { name: String, uri: String },
    /// A value that does not parse as its XSD type.
    #[error("invalid value {value:?} for {name:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: &'static str,
    },
}

impl DecodeError {
    pub(crate) fn unexpected(el: &Element) -> DecodeError {
        DecodeError::Unexpected {
            name: el.name.clone(),
            uri: el.uri().to_string(),
        }
    }
}

/// One field of a data object: how it is written, read and merged.
pub trait Field {
    /// Writes the field as element(s) named `name` in `ns`; nothing when unset (or a nil element
    /// when the writer asks for it and the field is nillable).
    fn write(&self, w: &mut XmlWriter, ns: Ns, name: &str, nillable: bool);
    /// Reads one element into the field (arrays append).
    fn read(&mut self, el: &Element, strict: bool) -> Result<(), DecodeError>;
    /// Partial update: takes `other` where it is set.
    fn merge(&mut self, other: &Self);
    /// Whether the field is unset (absent on the wire).
    fn is_unset(&self) -> bool;
}

/// A simple XSD value: string, int, long, boolean, date.
pub trait Scalar: Clone {
    /// `Ok(None)` drops the value silently (OX does that for unparseable dates).
    fn parse(text: &str) -> Result<Option<Self>, &'static str>;
    fn render(&self) -> String;
}

impl Scalar for String {
    fn parse(text: &str) -> Result<Option<Self>, &'static str> {
        Ok(Some(text.to_string()))
    }
    fn render(&self) -> String {
        self.clone()
    }
}

impl Scalar for i32 {
    fn parse(text: &str) -> Result<Option<Self>, &'static str> {
        text.trim().parse().map(Some).map_err(|_| "not an xs:int")
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Scalar for i64 {
    fn parse(text: &str) -> Result<Option<Self>, &'static str> {
        text.trim().parse().map(Some).map_err(|_| "not an xs:long")
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Scalar for bool {
    fn parse(text: &str) -> Result<Option<Self>, &'static str> {
        match text.trim() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err("not an xs:boolean"),
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl Scalar for NaiveDate {
    /// `YYYY-MM-DD` with an optional zone (`Z`, `+01:00`), as servers write it; anything else
    /// is dropped, as OX drops unparseable dates.
    fn parse(text: &str) -> Result<Option<Self>, &'static str> {
        let text = text.trim();
        let date = text.get(..10).unwrap_or(text);
        let zone = text.get(10..).unwrap_or("");
        let zone_ok = zone.is_empty()
            || zone == "Z"
            || (zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')));
        Ok(NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .filter(|_| zone_ok))
    }
    fn render(&self) -> String {
        self.format("%Y-%m-%d").to_string()
    }
}

/// Writes an optional field: a set value with `write_set`; an unset one as a nil element when
/// the field is nillable and the writer asks for nils (the emulator, like OX), else not at all.
fn write_optional<T>(
    value: &Option<T>,
    w: &mut XmlWriter,
    ns: Ns,
    name: &str,
    nillable: bool,
    write_set: impl FnOnce(&T, &mut XmlWriter),
) {
    match value {
        Some(v) => write_set(v, w),
        None if nillable && w.nil_for_none => w.nil(ns, name),
        None => {}
    }
}

fn read_scalar<T: Scalar>(el: &Element) -> Result<Option<T>, DecodeError> {
    if el.nil {
        return Ok(None);
    }
    T::parse(&el.text).map_err(|reason| DecodeError::Invalid {
        name: el.name.clone(),
        value: el.text.clone(),
        reason,
    })
}

/// `Field` for optional and repeated scalars. (A macro over the concrete types, because a
/// blanket `impl<T: Scalar> Field for Option<T>` would overlap the nested-object impl.)
macro_rules! scalar_fields {
    ($($t:ty),*) => {$(
        impl Field for Option<$t> {
            fn write(&self, w: &mut XmlWriter, ns: Ns, name: &str, nillable: bool) {
                write_optional(self, w, ns, name, nillable, |v, w| {
                    w.leaf(ns, name, &v.render())
                });
            }
            fn read(&mut self, el: &Element, _strict: bool) -> Result<(), DecodeError> {
                // `xsi:nil` means absent; a repeated single-valued field: the last one wins.
                if let Some(v) = read_scalar::<$t>(el)? {
                    *self = Some(v);
                }
                Ok(())
            }
            fn merge(&mut self, other: &Self) {
                if let Some(v) = other {
                    *self = Some(v.clone());
                }
            }
            fn is_unset(&self) -> bool {
                self.is_none()
            }
        }

        impl Field for Vec<$t> {
            fn write(&self, w: &mut XmlWriter, ns: Ns, name: &str, _nillable: bool) {
                for v in self {
                    w.leaf(ns, name, &v.render());
                }
            }
            fn read(&mut self, el: &Element, _strict: bool) -> Result<(), DecodeError> {
                if let Some(v) = read_scalar::<$t>(el)? {
                    self.push(v);
                }
                Ok(())
            }
            /// An empty array is absent on the wire, so it cannot clear: it leaves the value
            /// unchanged.
            fn merge(&mut self, other: &Self) {
                if !other.is_empty() {
                    *self = other.clone();
                }
            }
            fn is_unset(&self) -> bool {
                self.is_empty()
            }
        }
    )*};
}

scalar_fields!(String, i32, i64, bool, NaiveDate);

/// A data object: a complex type whose fields live in one namespace.
pub trait SoapObject: Default {
    /// The namespace of the fields.
    const NS: Ns;
    fn write_fields(&self, w: &mut XmlWriter);
    /// Reads one child element; `Ok(false)` when the type has no field of that name.
    fn read_field(&mut self, el: &Element, strict: bool) -> Result<bool, DecodeError>;
    /// Partial update with the fields set in `other`.
    fn merge_from(&mut self, other: &Self);

    /// Decodes the children of `el` into a new object.
    fn decode(el: &Element, strict: bool) -> Result<Self, DecodeError> {
        let mut object = Self::default();
        for child in &el.children {
            let namespace_ok = child.ns == Self::NS || child.ns == Ns::None;
            if namespace_ok && object.read_field(child, strict)? {
                continue;
            }
            if strict {
                return Err(DecodeError::unexpected(child));
            }
        }
        Ok(object)
    }

    /// Writes `<ns:name>fields</ns:name>`.
    fn write_as(&self, w: &mut XmlWriter, ns: Ns, name: &str) {
        w.open(ns, name);
        self.write_fields(w);
        w.close(ns, name);
    }
}

/// Nested objects (`User.default_group`, `Context.readDatabase`, …).
impl<T: SoapObject + Clone> Field for Option<Box<T>> {
    fn write(&self, w: &mut XmlWriter, ns: Ns, name: &str, nillable: bool) {
        write_optional(self, w, ns, name, nillable, |v, w| v.write_as(w, ns, name));
    }
    fn read(&mut self, el: &Element, strict: bool) -> Result<(), DecodeError> {
        if !el.nil {
            *self = Some(Box::new(T::decode(el, strict)?));
        }
        Ok(())
    }
    fn merge(&mut self, other: &Self) {
        if let Some(v) = other {
            *self = Some(v.clone());
        }
    }
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

/// `SOAPStringMap`: `entries*` of {`key`, `value`}.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StringMap(pub BTreeMap<String, String>);

/// `SOAPStringMapMap` (`userAttributes`): namespace → (key → value), e.g.
/// `config` → `com.openexchange.mail.specialuse.check` → `true`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StringMapMap(pub BTreeMap<String, BTreeMap<String, String>>);

impl StringMapMap {
    /// Sets `key` in namespace `namespace`.
    pub fn set(&mut self, namespace: &str, key: &str, value: &str) {
        self.0
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
}

fn read_entry(
    el: &Element,
    strict: bool,
) -> Result<(Option<String>, Option<&Element>), DecodeError> {
    let mut key = None;
    let mut value = None;
    for child in &el.children {
        let namespace_ok = child.ns == Ns::Do || child.ns == Ns::None;
        match child.name.as_str() {
            "key" if namespace_ok => key = read_scalar::<String>(child)?,
            "value" if namespace_ok => value = (!child.nil).then_some(child),
            _ if strict => return Err(DecodeError::unexpected(child)),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Reads the `entries*` of a map element (`SOAPStringMap`, `SOAPStringMapMap`): `value_of`
/// turns an entry's value element (`None` when absent or nil) into the map's value; entries
/// without a key are skipped.
fn read_entries<V>(
    el: &Element,
    strict: bool,
    value_of: impl Fn(Option<&Element>) -> Result<V, DecodeError>,
) -> Result<BTreeMap<String, V>, DecodeError> {
    let mut map = BTreeMap::new();
    for entry in &el.children {
        if !(entry.name == "entries" && (entry.ns == Ns::Do || entry.ns == Ns::None)) {
            if strict {
                return Err(DecodeError::unexpected(entry));
            }
            continue;
        }
        if entry.nil {
            continue;
        }
        let (key, value) = read_entry(entry, strict)?;
        if let Some(key) = key {
            map.insert(key, value_of(value)?);
        }
    }
    Ok(map)
}

fn read_string_map(el: &Element, strict: bool) -> Result<BTreeMap<String, String>, DecodeError> {
    read_entries(el, strict, |value| match value {
        Some(v) => Ok(read_scalar::<String>(v)?.unwrap_or_default()),
        None => Ok(String::new()),
    })
}

fn write_string_map(w: &mut XmlWriter, map: &BTreeMap<String, String>) {
    for (key, value) in map {
        w.open(Ns::Do, "entries");
        w.leaf(Ns::Do, "key", key);
        w.leaf(Ns::Do, "value", value);
        w.close(Ns::Do, "entries");
    }
}

impl Field for Option<StringMap> {
    fn write(&self, w: &mut XmlWriter, ns: Ns, name: &str, nillable: bool) {
        write_optional(self, w, ns, name, nillable, |map, w| {
            w.open(ns, name);
            write_string_map(w, &map.0);
            w.close(ns, name);
        });
    }
    fn read(&mut self, el: &Element, strict: bool) -> Result<(), DecodeError> {
        if !el.nil {
            *self = Some(StringMap(read_string_map(el, strict)?));
        }
        Ok(())
    }
    fn merge(&mut self, other: &Self) {
        if let Some(other) = other {
            let mine = self.get_or_insert_with(StringMap::default);
            for (k, v) in &other.0 {
                mine.0.insert(k.clone(), v.clone());
            }
        }
    }
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

impl Field for Option<StringMapMap> {
    fn write(&self, w: &mut XmlWriter, ns: Ns, name: &str, nillable: bool) {
        write_optional(self, w, ns, name, nillable, |map, w| {
            w.open(ns, name);
            for (namespace, inner) in &map.0 {
                w.open(Ns::Do, "entries");
                w.leaf(Ns::Do, "key", namespace);
                w.open(Ns::Do, "value");
                write_string_map(w, inner);
                w.close(Ns::Do, "value");
                w.close(Ns::Do, "entries");
            }
            w.close(ns, name);
        });
    }
    fn read(&mut self, el: &Element, strict: bool) -> Result<(), DecodeError> {
        if !el.nil {
            let map = read_entries(el, strict, |value| match value {
                Some(v) => read_string_map(v, strict),
                None => Ok(BTreeMap::new()),
            })?;
            *self = Some(StringMapMap(map));
        }
        Ok(())
    }
    /// Attributes are set key by key (OX keeps the others).
    fn merge(&mut self, other: &Self) {
        if let Some(other) = other {
            let mine = self.get_or_insert_with(StringMapMap::default);
            for (namespace, inner) in &other.0 {
                let target = mine.0.entry(namespace.clone()).or_default();
                for (k, v) in inner {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
    }
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

/// Declares a data object: the struct, its XML encoding in schema order, its partial-update
/// merge, and a `Debug` that shows only set fields and redacts every password.
macro_rules! soap_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $ns:path {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $xml:literal / $nillable:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $xml, skip_serializing_if = "Field::is_unset")]
                pub $field: $ty,
            )*
        }

        impl SoapObject for $name {
            const NS: Ns = $ns;

            fn write_fields(&self, w: &mut XmlWriter) {
                $( Field::write(&self.$field, w, $ns, $xml, $nillable); )*
            }

            fn read_field(&mut self, el: &Element, strict: bool) -> Result<bool, DecodeError> {
                match el.name.as_str() {
                    $( $xml => Field::read(&mut self.$field, el, strict)?, )*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            fn merge_from(&mut self, other: &Self) {
                $( Field::merge(&mut self.$field, &other.$field); )*
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut s = f.debug_struct(stringify!($name));
                $(
                    if !Field::is_unset(&self.$field) {
                        if $xml.to_ascii_lowercase().contains("password") {
                            s.field(stringify!($field), &"<redacted>");
                        } else {
                            s.field(stringify!($field), &self.$field);
                        }
                    }
                )*
                s.finish_non_exhaustive()
            }
        }
    };
}

soap_object! {
    /// `Context` (`do:` namespace): an OX context (tenant).
    pub struct Context in Ns::Do {
        average_size: Option<i64> = "average_size" / true,
        enabled: Option<bool> = "enabled" / true,
        filestore_id: Option<i32> = "filestoreId" / true,
        filestore_name: Option<String> = "filestore_name" / true,
        id: Option<i32> = "id" / true,
        login_mappings: Vec<String> = "loginMappings" / true,
        max_quota: Option<i64> = "maxQuota" / true,
        name: Option<String> = "name" / true,
        read_database: Option<Box<Database>> = "readDatabase" / true,
        used_quota: Option<i64> = "usedQuota" / true,
        user_attributes: Option<StringMapMap> = "userAttributes" / true,
        write_database: Option<Box<Database>> = "writeDatabase" / true,
    }
}

soap_object! {
    /// `Database` (`do:`): the database of a context (read-only for the connector).
    pub struct Database in Ns::Do {
        current_units: Option<i32> = "currentUnits" / true,
        driver: Option<String> = "driver" / true,
        id: Option<i32> = "id" / true,
        login: Option<String> = "login" / true,
        master: Option<bool> = "master" / true,
        master_id: Option<i32> = "masterId" / true,
        max_units: Option<i32> = "maxUnits" / true,
        name: Option<String> = "name" / true,
        password: Option<String> = "password" / true,
        pool_hard_limit: Option<i32> = "poolHardLimit" / true,
        pool_initial: Option<i32> = "poolInitial" / true,
        pool_max: Option<i32> = "poolMax" / true,
        read_id: Option<i32> = "read_id" / true,
        scheme: Option<String> = "scheme" / true,
        url: Option<String> = "url" / true,
    }
}

soap_object! {
    /// `Group` (`do:`): a group; `members` are user ids.
    pub struct Group in Ns::Do {
        displayname: Option<String> = "displayname" / true,
        id: Option<i32> = "id" / true,
        members: Vec<i32> = "members" / true,
        name: Option<String> = "name" / true,
    }
}

soap_object! {
    /// `Resource` (`do:`): a bookable resource (room, beamer, …).
    pub struct Resource in Ns::Do {
        available: Option<bool> = "available" / true,
        description: Option<String> = "description" / true,
        displayname: Option<String> = "displayname" / true,
        email: Option<String> = "email" / true,
        id: Option<i32> = "id" / true,
        name: Option<String> = "name" / true,
    }
}

soap_object! {
    /// `SchemaSelectStrategy` (`do:`): where context create puts the new context.
    pub struct SchemaSelectStrategy in Ns::Do {
        schema_name: Option<String> = "schema_name" / true,
        strategy: Option<String> = "strategy" / true,
    }
}

soap_object! {
    /// `UserModuleAccess` (`do:`): the 26 module rights of a user.
    pub struct UserModuleAccess in Ns::Do {
        olox20: Option<bool> = "OLOX20" / true,
        usm: Option<bool> = "USM" / true,
        active_sync: Option<bool> = "activeSync" / true,
        calendar: Option<bool> = "calendar" / true,
        collect_email_addresses: Option<bool> = "collectEmailAddresses" / true,
        contacts: Option<bool> = "contacts" / true,
        delegate_task: Option<bool> = "delegateTask" / true,
        denied_portal: Option<bool> = "deniedPortal" / true,
        edit_group: Option<bool> = "editGroup" / true,
        edit_password: Option<bool> = "editPassword" / true,
        edit_public_folders: Option<bool> = "editPublicFolders" / true,
        edit_resource: Option<bool> = "editResource" / true,
        global_address_book_disabled: Option<bool> = "globalAddressBookDisabled" / true,
        ical: Option<bool> = "ical" / true,
        infostore: Option<bool> = "infostore" / true,
        multiple_mail_accounts: Option<bool> = "multipleMailAccounts" / true,
        public_folder_editable: Option<bool> = "publicFolderEditable" / true,
        publication: Option<bool> = "publication" / true,
        read_create_shared_folders: Option<bool> = "readCreateSharedFolders" / true,
        subscription: Option<bool> = "subscription" / true,
        syncml: Option<bool> = "syncml" / true,
        tasks: Option<bool> = "tasks" / true,
        vcard: Option<bool> = "vcard" / true,
        webdav: Option<bool> = "webdav" / true,
        webdav_xml: Option<bool> = "webdavXml" / true,
        webmail: Option<bool> = "webmail" / true,
    }
}

soap_object! {
    /// `User` (`do:`): all 136 fields of the OX 7.10.x schema (plus the three newer ones).
///
/// `image1`/`image1ContentType` exist only on servers ≥ 7.10.6; leave them `None` for older servers.
    pub struct User in Ns::Do {
        aliases: Vec<String> = "aliases" / true,
        anniversary: Option<NaiveDate> = "anniversary" / true,
        assistant_name: Option<String> = "assistant_name" / true,
        birthday: Option<NaiveDate> = "birthday" / true,
        branches: Option<String> = "branches" / true,
        business_category: Option<String> = "business_category" / true,
        categories: Option<String> = "categories" / true,
        cellular_telephone1: Option<String> = "cellular_telephone1" / true,
        cellular_telephone2: Option<String> = "cellular_telephone2" / true,
        city_business: Option<String> = "city_business" / true,
        city_home: Option<String> = "city_home" / true,
        city_other: Option<String> = "city_other" / true,
        commercial_register: Option<String> = "commercial_register" / true,
        company: Option<String> = "company" / true,
        contextadmin: Option<bool> = "contextadmin" / false,
        country_business: Option<String> = "country_business" / true,
        country_home: Option<String> = "country_home" / true,
        country_other: Option<String> = "country_other" / true,
        drive_user_folder_mode: Option<String> = "drive_user_folder_mode" / true,
        default_sender_address: Option<String> = "defaultSenderAddress" / true,
        default_group: Option<Box<Group>> = "default_group" / true,
        department: Option<String> = "department" / true,
        display_name: Option<String> = "display_name" / true,
        email1: Option<String> = "email1" / true,
        email2: Option<String> = "email2" / true,
        email3: Option<String> = "email3" / true,
        employee_type: Option<String> = "employeeType" / true,
        fax_business: Option<String> = "fax_business" / true,
        fax_home: Option<String> = "fax_home" / true,
        fax_other: Option<String> = "fax_other" / true,
        filestore_id: Option<i32> = "filestoreId" / true,
        filestore_name: Option<String> = "filestore_name" / true,
        folder_tree: Option<i32> = "folderTree" / true,
        given_name: Option<String> = "given_name" / true,
        gui_preferences_for_soap: Option<StringMap> = "guiPreferencesForSoap" / true,
        gui_spam_filter_enabled: Option<bool> = "gui_spam_filter_enabled" / true,
        id: Option<i32> = "id" / true,
        imap_login: Option<String> = "imapLogin" / true,
        imap_port: Option<i32> = "imapPort" / false,
        imap_schema: Option<String> = "imapSchema" / true,
        imap_server: Option<String> = "imapServer" / true,
        imap_server_string: Option<String> = "imapServerString" / true,
        info: Option<String> = "info" / true,
        instant_messenger1: Option<String> = "instant_messenger1" / true,
        instant_messenger2: Option<String> = "instant_messenger2" / true,
        language: Option<String> = "language" / true,
        mail_folder_confirmed_ham_name: Option<String> = "mail_folder_confirmed_ham_name" / true,
        mail_folder_confirmed_spam_name: Option<String> = "mail_folder_confirmed_spam_name" / true,
        mail_folder_drafts_name: Option<String> = "mail_folder_drafts_name" / true,
        mail_folder_sent_name: Option<String> = "mail_folder_sent_name" / true,
        mail_folder_spam_name: Option<String> = "mail_folder_spam_name" / true,
        mail_folder_trash_name: Option<String> = "mail_folder_trash_name" / true,
        mail_folder_archive_full_name: Option<String> = "mail_folder_archive_full_name" / true,
        mailenabled: Option<bool> = "mailenabled" / true,
        manager_name: Option<String> = "manager_name" / true,
        marital_status: Option<String> = "marital_status" / true,
        max_quota: Option<i64> = "maxQuota" / true,
        middle_name: Option<String> = "middle_name" / true,
        name: Option<String> = "name" / true,
        nickname: Option<String> = "nickname" / true,
        note: Option<String> = "note" / true,
        number_of_children: Option<String> = "number_of_children" / true,
        number_of_employee: Option<String> = "number_of_employee" / true,
        password: Option<String> = "password" / true,
        password_mech: Option<String> = "passwordMech" / true,
        password_expired: Option<bool> = "password_expired" / true,
        position: Option<String> = "position" / true,
        postal_code_business: Option<String> = "postal_code_business" / true,
        postal_code_home: Option<String> = "postal_code_home" / true,
        postal_code_other: Option<String> = "postal_code_other" / true,
        primary_email: Option<String> = "primaryEmail" / true,
        profession: Option<String> = "profession" / true,
        room_number: Option<String> = "room_number" / true,
        sales_volume: Option<String> = "sales_volume" / true,
        smtp_port: Option<i32> = "smtpPort" / false,
        smtp_schema: Option<String> = "smtpSchema" / true,
        smtp_server: Option<String> = "smtpServer" / true,
        smtp_server_string: Option<String> = "smtpServerString" / true,
        spouse_name: Option<String> = "spouse_name" / true,
        state_business: Option<String> = "state_business" / true,
        state_home: Option<String> = "state_home" / true,
        state_other: Option<String> = "state_other" / true,
        street_business: Option<String> = "street_business" / true,
        street_home: Option<String> = "street_home" / true,
        street_other: Option<String> = "street_other" / true,
        suffix: Option<String> = "suffix" / true,
        sur_name: Option<String> = "sur_name" / true,
        tax_id: Option<String> = "tax_id" / true,
        telephone_assistant: Option<String> = "telephone_assistant" / true,
        telephone_business1: Option<String> = "telephone_business1" / true,
        telephone_business2: Option<String> = "telephone_business2" / true,
        telephone_callback: Option<String> = "telephone_callback" / true,
        telephone_car: Option<String> = "telephone_car" / true,
        telephone_company: Option<String> = "telephone_company" / true,
        telephone_home1: Option<String> = "telephone_home1" / true,
        telephone_home2: Option<String> = "telephone_home2" / true,
        telephone_ip: Option<String> = "telephone_ip" / true,
        telephone_isdn: Option<String> = "telephone_isdn" / true,
        telephone_other: Option<String> = "telephone_other" / true,
        telephone_pager: Option<String> = "telephone_pager" / true,
        telephone_primary: Option<String> = "telephone_primary" / true,
        telephone_radio: Option<String> = "telephone_radio" / true,
        telephone_telex: Option<String> = "telephone_telex" / true,
        telephone_ttytdd: Option<String> = "telephone_ttytdd" / true,
        timezone: Option<String> = "timezone" / true,
        title: Option<String> = "title" / true,
        upload_file_size_limit: Option<i32> = "uploadFileSizeLimit" / true,
        upload_file_size_limit_per_file: Option<i32> = "uploadFileSizeLimitPerFile" / true,
        url: Option<String> = "url" / true,
        used_quota: Option<i64> = "usedQuota" / true,
        user_attributes: Option<StringMapMap> = "userAttributes" / true,
        userfield01: Option<String> = "userfield01" / true,
        userfield02: Option<String> = "userfield02" / true,
        userfield03: Option<String> = "userfield03" / true,
        userfield04: Option<String> = "userfield04" / true,
        userfield05: Option<String> = "userfield05" / true,
        userfield06: Option<String> = "userfield06" / true,
        userfield07: Option<String> = "userfield07" / true,
        userfield08: Option<String> = "userfield08" / true,
        userfield09: Option<String> = "userfield09" / true,
        userfield10: Option<String> = "userfield10" / true,
        userfield11: Option<String> = "userfield11" / true,
        userfield12: Option<String> = "userfield12" / true,
        userfield13: Option<String> = "userfield13" / true,
        userfield14: Option<String> = "userfield14" / true,
        userfield15: Option<String> = "userfield15" / true,
        userfield16: Option<String> = "userfield16" / true,
        userfield17: Option<String> = "userfield17" / true,
        userfield18: Option<String> = "userfield18" / true,
        userfield19: Option<String> = "userfield19" / true,
        userfield20: Option<String> = "userfield20" / true,
        primary_account_name: Option<String> = "primaryAccountName" / true,
        convert_drive_user_folders: Option<bool> = "convert_drive_user_folders" / true,
        load_remote_mail_content_by_default: Option<bool> = "load_remote_mail_content_by_default" / true,
        image1: Option<String> = "image1" / true,
        image1_content_type: Option<String> = "image1ContentType" / true,
    }
}

soap_object! {
    /// `Credentials` (`cred:` namespace): login and password in every request body. `Debug` redacts
    /// the password.
    pub struct Credentials in Ns::Cred {
        login: Option<String> = "login" / true,
        password: Option<String> = "password" / true,
    }
}

soap_object! {
    /// `AccountDataOnCreate` (OXSecondaryAccountService, `do:`): a functional (secondary) mail account.
    pub struct AccountDataOnCreate in Ns::Do {
        login: Option<String> = "login" / true,
        password: Option<String> = "password" / true,
        name: Option<String> = "name" / true,
        primary_address: Option<String> = "primaryAddress" / true,
        personal: Option<String> = "personal" / true,
        reply_to: Option<String> = "replyTo" / true,
        mail_endpoint_source: Option<String> = "mailEndpointSource" / true,
        mail_server: Option<String> = "mailServer" / true,
        mail_port: Option<i32> = "mailPort" / true,
        mail_protocol: Option<String> = "mailProtocol" / true,
        mail_secure: Option<bool> = "mailSecure" / true,
        mail_start_tls: Option<bool> = "mailStartTls" / true,
        transport_login: Option<String> = "transportLogin" / true,
        transport_password: Option<String> = "transportPassword" / true,
        transport_endpoint_source: Option<String> = "transportEndpointSource" / true,
        transport_server: Option<String> = "transportServer" / true,
        transport_port: Option<i32> = "transportPort" / true,
        transport_protocol: Option<String> = "transportProtocol" / true,
        transport_secure: Option<bool> = "transportSecure" / true,
        transport_start_tls: Option<bool> = "transportStartTls" / true,
        archive_fullname: Option<String> = "archiveFullname" / true,
        drafts_fullname: Option<String> = "draftsFullname" / true,
        sent_fullname: Option<String> = "sentFullname" / true,
        spam_fullname: Option<String> = "spamFullname" / true,
        trash_fullname: Option<String> = "trashFullname" / true,
        confirmed_spam_fullname: Option<String> = "confirmedSpamFullname" / true,
        confirmed_ham_fullname: Option<String> = "confirmedHamFullname" / true,
    }
}

soap_object! {
    /// `Account` (OXSecondaryAccountService, `do:`): a secondary account as `list` returns it.
    pub struct Account in Ns::Do {
        context_id: Option<i32> = "contextId" / true,
        user_id: Option<i32> = "userId" / true,
        id: Option<i32> = "id" / true,
        login: Option<String> = "login" / true,
        password: Option<String> = "password" / true,
        name: Option<String> = "name" / true,
        primary_address: Option<String> = "primaryAddress" / true,
        personal: Option<String> = "personal" / true,
        reply_to: Option<String> = "replyTo" / true,
        mail_server: Option<String> = "mailServer" / true,
        mail_port: Option<i32> = "mailPort" / true,
        mail_protocol: Option<String> = "mailProtocol" / true,
        mail_secure: Option<bool> = "mailSecure" / true,
        mail_start_tls: Option<bool> = "mailStartTls" / true,
        transport_login: Option<String> = "transportLogin" / true,
        transport_password: Option<String> = "transportPassword" / true,
        transport_server: Option<String> = "transportServer" / true,
        transport_port: Option<i32> = "transportPort" / true,
        transport_protocol: Option<String> = "transportProtocol" / true,
        transport_secure: Option<bool> = "transportSecure" / true,
        transport_start_tls: Option<bool> = "transportStartTls" / true,
        archive_fullname: Option<String> = "archiveFullname" / true,
        drafts_fullname: Option<String> = "draftsFullname" / true,
        sent_fullname: Option<String> = "sentFullname" / true,
        spam_fullname: Option<String> = "spamFullname" / true,
        trash_fullname: Option<String> = "trashFullname" / true,
        confirmed_spam_fullname: Option<String> = "confirmedSpamFullname" / true,
        confirmed_ham_fullname: Option<String> = "confirmedHamFullname" / true,
    }
}

soap_object! {
    /// The id-only `Context`, `User` and `Group` of OXSecondaryAccountService (`do:`).
    pub struct IdOnly in Ns::Do {
        id: Option<i32> = "id" / true,
    }
}

impl Credentials {
    /// Login and password.
    pub fn new(login: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            login: Some(login.into()),
            password: Some(password.into()),
        }
    }

    /// The login, `""` when unset.
    pub fn login(&self) -> &str {
        self.login.as_deref().unwrap_or("")
    }
}

/// `with_id` (and `with_name`) constructors: an object that only names an existing context,
/// user, group or resource, as the calls addressing one send it.
macro_rules! references {
    ($($ty:ident: $noun:literal $(, by $name_noun:literal)?;)*) => {$(
        impl $ty {
            #[doc = concat!("A ", $noun, " reference by id.")]
            pub fn with_id(id: i32) -> $ty {
                $ty {
                    id: Some(id),
                    ..$ty::default()
                }
            }
            $(
                #[doc = concat!("A ", $noun, " reference by ", $name_noun, ".")]
                pub fn with_name(name: impl Into<String>) -> $ty {
                    $ty {
                        name: Some(name.into()),
                        ..$ty::default()
                    }
                }
            )?
        }
    )*};
}

// Every user/group/resource call needs the context reference.
references! {
    Context: "context";
    User: "user", by "login name";
    Group: "group", by "name";
    Resource: "resource", by "name";
}

impl IdOnly {
    pub fn new(id: i32) -> IdOnly {
        IdOnly { id: Some(id) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ox::soap::xml::{parse, Prefixes};

    fn written<T: SoapObject>(value: &T, nil_for_none: bool) -> String {
        let mut w = XmlWriter::new(Prefixes::CLIENT, nil_for_none);
        value.write_fields(&mut w);
        w.finish()
    }

    fn decode<T: SoapObject>(inner: &str, strict: bool) -> Result<T, DecodeError> {
        let doc = format!(
            r#"<r xmlns:do="http://dataobjects.soap.admin.openexchange.com/xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{inner}</r>"#
        );
        T::decode(&parse(doc.as_bytes()).unwrap(), strict)
    }

    #[test]
    fn only_set_fields_are_written_in_schema_order() {
        let user = User {
            sur_name: Some("Doe".into()),
            aliases: vec!["a@x".into(), "b@x".into()],
            id: Some(3),
            contextadmin: Some(false),
            ..User::default()
        };
        assert_eq!(
            written(&user, false),
            "<do:aliases>a@x</do:aliases><do:aliases>b@x</do:aliases><do:contextadmin>false</do:contextadmin><do:id>3</do:id><do:sur_name>Doe</do:sur_name>"
        );
    }

    #[test]
    fn servers_write_nil_for_unset_nillable_fields_only() {
        let out = written(&User::with_id(1), true);
        assert!(out.contains(r#"<do:anniversary xsi:nil="true"/>"#));
        assert!(
            !out.contains("contextadmin"),
            "contextadmin is not nillable"
        );
        assert!(!out.contains("imapPort") && !out.contains("<do:aliases"));
    }

    #[test]
    fn strict_decoding_accepts_unqualified_children_and_rejects_foreign_ones() {
        let user: User = decode(
            "<do:id>3</do:id><name>jdoe</name><do:title xsi:nil=\"true\"/>",
            true,
        )
        .unwrap();
        assert_eq!(
            (user.id, user.name.as_deref(), user.title),
            (Some(3), Some("jdoe"), None)
        );
        let foreign = decode::<User>(r#"<x:id xmlns:x="urn:x">3</x:id>"#, true).unwrap_err();
        assert_eq!(
            foreign,
            DecodeError::Unexpected {
                name: "id".into(),
                uri: "urn:x".into()
            }
        );
        assert!(decode::<User>("<do:unknown>1</do:unknown>", true).is_err());
        let lenient: User = decode("<do:unknown>1</do:unknown><do:id>4</do:id>", false).unwrap();
        assert_eq!(lenient.id, Some(4), "clients ignore what they do not know");
        assert!(decode::<User>("<do:id>x</do:id>", false).is_err());
    }

    #[test]
    fn merging_a_change_keeps_unset_fields_and_clears_with_empty_strings() {
        let mut stored = User {
            title: Some("Dr.".into()),
            city_home: Some("Bremen".into()),
            aliases: vec!["a@x".into()],
            ..User::default()
        };
        let mut attrs = StringMapMap::default();
        attrs.set("config", "k", "v");
        stored.user_attributes = Some(attrs);
        let mut change_attrs = StringMapMap::default();
        change_attrs.set("config", "k2", "v2");
        stored.merge_from(&User {
            title: Some(String::new()),
            user_attributes: Some(change_attrs),
            ..User::default()
        });
        assert_eq!(stored.title.as_deref(), Some(""));
        assert_eq!(stored.city_home.as_deref(), Some("Bremen"));
        assert_eq!(stored.aliases, ["a@x"]);
        assert_eq!(stored.user_attributes.unwrap().0["config"].len(), 2);
    }

    #[test]
    fn dates_parse_with_or_without_zone_and_bad_ones_are_dropped() {
        let user: User = decode(
            "<do:birthday>2016-04-18Z</do:birthday><do:anniversary>18.04.2016</do:anniversary>",
            true,
        )
        .unwrap();
        assert_eq!(user.birthday, NaiveDate::from_ymd_opt(2016, 4, 18));
        assert_eq!(user.anniversary, None);
    }

    #[test]
    fn debug_output_redacts_every_password() {
        let creds = Credentials::new("oxadmin", "s3cret");
        let user = User {
            password: Some("s3cret".into()),
            ..User::with_name("jdoe")
        };
        let account = AccountDataOnCreate {
            transport_password: Some("s3cret".into()),
            ..AccountDataOnCreate::default()
        };
        for debug in [
            format!("{creds:?}"),
            format!("{user:?}"),
            format!("{account:?}"),
        ] {
            assert!(!debug.contains("s3cret"), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
        }
        assert!(format!("{user:?}").contains("jdoe"));
    }
}
