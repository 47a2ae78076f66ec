//! What the connector reads from listener files and what the app registers in the domain agree:
//! every UDM property the connector reads is defined, by UCS itself (users/user, groups/group),
//! by a shipped UDM module or by a shipped extended attribute; and every property and extended
//! attribute the app ships for the listener modules is read, or listed below with the reason it
//! is not.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::{json, Value};

use crate::support::ox;
use crate::ucs_udm::{describe, repo};

/// The properties the connector reads, per listener module. Kept by hand next to the code it
/// describes; `every_key_the_sources_read_is_listed_here` greps `src/` so that a new key is noticed.
fn read_by_the_connector() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut read: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut add = |module, keys: &[&str]| {
        read.entry(module)
            .or_default()
            .extend(keys.iter().map(|k| (*k).to_owned()));
    };
    // src/provision/context.rs
    add("oxmail/oxcontext", &["contextid", "name", "oxQuota"]);
    // src/provision/resource.rs, src/provision/scope.rs
    add(
        "oxresources/oxresources",
        &[
            "name",
            "displayname",
            "description",
            "resourceMailAddress",
            "oxContext",
        ],
    );
    // src/provision/group.rs ("name": the default OX_GROUP_IDENTIFIER), scope.rs, functional_account.rs
    add("groups/group", &["name", "isOxGroup", "users"]);
    // src/provision/user.rs ("username": the default OX_USER_IDENTIFIER), scope.rs, group.rs
    add(
        "users/user",
        &[
            "username",
            "isOxUser",
            "oxContext",
            "oxAccess",
            "mailPrimaryAddress",
            "mailAlternativeAddress",
            "firstname",
            "lastname",
            "groups",
        ],
    );
    // src/provision/user_mapping.rs, the default mapping
    add("users/user", &user_mapping_properties());
    // src/provision/access_profile.rs: the name and the 23 rights OX knows
    add("oxmail/accessprofile", &["name"]);
    add("oxmail/accessprofile", &access_profile_rights());
    // src/provision/functional_account.rs
    add(
        "oxmail/functional_account",
        &["name", "mailPrimaryAddress", "personal", "users", "groups"],
    );
    read
}

fn user_mapping_properties() -> Vec<&'static str> {
    let mut props = vec![
        "displayName",
        "oxDisplayName",
        "oxEmail2",
        "oxEmail3",
        "organisation",
        "city",
        "street",
        "postcode",
        "oxCityHome",
        "oxCityOther",
        "oxStreetHome",
        "oxStreetOther",
        "oxPostalCodeHome",
        "oxPostalCodeOther",
        "oxStateHome",
        "oxStateBusiness",
        "oxStateOther",
        "oxCountryHome",
        "oxCountryBusiness",
        "oxCountryOther",
        "oxMobileBusiness",
        "mobileTelephoneNumber",
        "pagerTelephoneNumber",
        "roomNumber",
        "oxFaxBusiness",
        "oxFaxHome",
        "oxFaxOther",
        "oxTelephoneAssistant",
        "oxTelephoneCar",
        "oxTelephoneCompany",
        "oxTelephoneIp",
        "oxTelephoneOther",
        "oxTelephoneTelex",
        "oxTelephoneTtydd",
        "oxInstantMessenger1",
        "oxInstantMessenger2",
        "oxDepartment",
        "oxPosition",
        "oxProfession",
        "oxBranches",
        "oxManagerName",
        "oxTaxId",
        "oxCommercialRegister",
        "oxSalesVolume",
        "oxMiddleName",
        "oxSuffix",
        "oxNickName",
        "oxNote",
        "oxUrl",
        "title",
        "oxMarialStatus",
        "oxSpouseName",
        "oxNumOfChildren",
        "employeeType",
        "employeeNumber",
        "phone",
        "homeTelephoneNumber",
        "oxUserQuota",
        "birthday",
        "oxAnniversary",
        "jpegPhoto",
        "mailHomeServer",
    ];
    props.extend(USERFIELDS);
    props
}

const USERFIELDS: [&str; 20] = [
    "oxUserfield01",
    "oxUserfield02",
    "oxUserfield03",
    "oxUserfield04",
    "oxUserfield05",
    "oxUserfield06",
    "oxUserfield07",
    "oxUserfield08",
    "oxUserfield09",
    "oxUserfield10",
    "oxUserfield11",
    "oxUserfield12",
    "oxUserfield13",
    "oxUserfield14",
    "oxUserfield15",
    "oxUserfield16",
    "oxUserfield17",
    "oxUserfield18",
    "oxUserfield19",
    "oxUserfield20",
];

fn access_profile_rights() -> Vec<&'static str> {
    vec![
        "usm",
        "activesync",
        "calendar",
        "collectemailaddresses",
        "contacts",
        "delegatetask",
        "deniedportal",
        "editgroup",
        "editpassword",
        "editpublicfolders",
        "editresource",
        "globaladdressbookdisabled",
        "ical",
        "infostore",
        "multiplemailaccounts",
        "readcreatesharedfolders",
        "subscription",
        "syncml",
        "tasks",
        "vcard",
        "webdav",
        "webdavxml",
        "webmail",
    ]
}

/// Properties UCS's own users/user and groups/group define (not shipped by this app) that the
/// connector or the fixtures use.
fn ucs_core_properties(module: &str) -> BTreeSet<String> {
    let props: &[&str] = match module {
        "users/user" => &[
            "username",
            "firstname",
            "lastname",
            "displayName",
            "mailPrimaryAddress",
            "mailAlternativeAddress",
            "groups",
            "disabled",
            "organisation",
            "city",
            "street",
            "postcode",
            "phone",
            "homeTelephoneNumber",
            "mobileTelephoneNumber",
            "pagerTelephoneNumber",
            "roomNumber",
            "title",
            "employeeType",
            "employeeNumber",
            "birthday",
            "jpegPhoto",
            "mailHomeServer",
        ],
        "groups/group" => &["name", "users", "description", "mailAddress"],
        _ => &[],
    };
    props.iter().map(|p| (*p).to_owned()).collect()
}

/// Shipped properties the connector does not read, and why.
const NOT_READ: &[(&str, &str, &str)] = &[
    ("oxmail/accessprofile", "displayName", "shown in UDM only"),
    (
        "oxmail/accessprofile",
        "publicfoldereditable",
        "no OX module-access right; kept for existing data",
    ),
    (
        "oxmail/functional_account",
        "oxQuota",
        "OX functional accounts have no quota",
    ),
    (
        "oxresources/oxresources",
        "resourceadmin",
        "UDM gives the manager oxResourceMailAddress; OX is not told",
    ),
    (
        "users/user",
        "oxLanguage",
        "language and time zone are set at creation from the app settings",
    ),
    (
        "users/user",
        "oxTimeZone",
        "language and time zone are set at creation from the app settings",
    ),
    (
        "groups/group",
        "oxContext",
        "a group is in the contexts of its members",
    ),
];

/// Shipped definitions per listener module: module properties and extended attributes (CLIName).
fn shipped(described: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut defined: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, definition) in described["modules"].as_object().unwrap() {
        let props = definition["properties"].as_object().unwrap();
        defined
            .entry(module.clone())
            .or_default()
            .extend(props.keys().cloned());
    }
    for attribute in described["extended_attributes"].as_array().unwrap() {
        defined
            .entry(attribute["module"].as_str().unwrap().to_owned())
            .or_default()
            .insert(attribute["CLIName"].as_str().unwrap().to_owned());
    }
    defined
}

fn listener_modules() -> BTreeSet<String> {
    let ini = std::fs::read_to_string(repo().join("appcenter/ini")).unwrap();
    let line = ini
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("listenerudmmodules"))
        .unwrap();
    line.split_once('=')
        .unwrap()
        .1
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect()
}

#[test]
fn every_property_the_connector_reads_is_defined_in_the_domain() {
    let defined = shipped(&describe());
    let read = read_by_the_connector();
    assert_eq!(
        read.keys().map(|m| m.to_string()).collect::<BTreeSet<_>>(),
        listener_modules(),
        "the modules of appcenter/ini"
    );
    let mut undefined = Vec::new();
    for (module, keys) in &read {
        let mut known = ucs_core_properties(module);
        known.extend(defined.get(*module).cloned().unwrap_or_default());
        undefined.extend(keys.difference(&known).map(|k| format!("{module}: {k}")));
    }
    assert!(
        undefined.is_empty(),
        "read but defined nowhere: {undefined:?}"
    );
}

#[test]
fn every_shipped_property_of_a_listener_module_is_read_or_explained() {
    let defined = shipped(&describe());
    let read = read_by_the_connector();
    let listened = listener_modules();
    let mut unexplained = Vec::new();
    for (module, props) in &defined {
        if !listened.contains(module) {
            // settings/usertemplate and settings/directory: not in any listener file
            continue;
        }
        for prop in props {
            let is_read = read.get(module.as_str()).is_some_and(|r| r.contains(prop));
            let explained = NOT_READ.iter().any(|(m, p, _)| m == module && p == prop);
            assert!(
                !(is_read && explained),
                "{module}: {prop} is read, drop it from NOT_READ"
            );
            if !is_read && !explained {
                unexplained.push(format!("{module}: {prop}"));
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "shipped but never read: {unexplained:?}"
    );
    for (module, prop, _) in NOT_READ {
        assert!(
            defined.get(*module).is_some_and(|d| d.contains(*prop)),
            "NOT_READ names {module}: {prop}, which is not shipped"
        );
    }
}

#[test]
fn every_key_the_sources_read_is_listed_here() {
    let listed: BTreeSet<String> = read_by_the_connector().into_values().flatten().collect();
    let direct =
        Regex::new(r#"udm::(?:text|texts|integer|flag)\(\s*[^,]+,\s*"([A-Za-z0-9_-]+)"\s*\)"#)
            .unwrap();
    let mapping = Regex::new(r#"\(\s*"[A-Za-z0-9_]+",\s*"([A-Za-z0-9_]+)"\s*\)"#).unwrap();
    let added = Regex::new(r#"add\(\s*"[^"]+",\s*"([A-Za-z0-9_]+)",\s*&\[([^\]]*)\]"#).unwrap();
    let rights = Regex::new(r#"(?m)^\s*\("([a-z]+)", "[A-Za-z]+"\),$"#).unwrap();
    let mut found = BTreeSet::new();
    for dir in ["src/provision", "src/listener"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let code = source.split("#[cfg(test)]").next().unwrap();
            found.extend(direct.captures_iter(code).map(|c| c[1].to_owned()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "user_mapping.rs" {
                found.extend(mapping.captures_iter(code).map(|c| c[1].to_owned()));
                for c in added.captures_iter(code) {
                    found.insert(c[1].to_owned());
                    found.extend(
                        c[2].split(',')
                            .map(|a| a.trim().trim_matches('"').to_owned())
                            .filter(|a| !a.is_empty()),
                    );
                }
            }
            if name == "access_profile.rs" {
                found.extend(rights.captures_iter(code).map(|c| c[1].to_owned()));
            }
        }
    }
    assert!(found.len() > 40, "the patterns found too little: {found:?}");
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "src/ reads {missing:?}; add them to read_by_the_connector() and define them in ucs/"
    );
}

#[test]
fn the_listener_file_fixtures_carry_only_defined_properties() {
    let defined = shipped(&describe());
    let fixtures = [
        ox::context("c", 10, Some(100)),
        ox::user("u", "anna", 10, json!({})),
        ox::group("g", "staff", &["anna"], json!({})),
        ox::resource("r", "room1", 10, json!({})),
        ox::access_profile("p", "premium", &access_profile_rights()),
        ox::functional_account("f", "team", "team@example.org", &["anna"]),
    ];
    for file in fixtures {
        let module = file["udm_object_type"].as_str().unwrap();
        let mut known = ucs_core_properties(module);
        known.extend(defined.get(module).cloned().unwrap_or_default());
        for key in file["object"].as_object().unwrap().keys() {
            assert!(
                known.contains(key),
                "fixture of {module} carries undefined {key}"
            );
        }
    }
}

/// Object class name -> (MUST, MAY) of `ucs/ldap/oxforucs.schema`.
fn schema_classes() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let schema = std::fs::read_to_string(repo().join("ucs/ldap/oxforucs.schema")).unwrap();
    let class = Regex::new(r"(?s)objectclass \( \S+ NAME '([^']+)'(.*?)\n\n").unwrap();
    let list = |body: &str, keyword: &str| -> BTreeSet<String> {
        let pattern = Regex::new(&format!(r"(?s){keyword} \(([^)]*)\)")).unwrap();
        pattern
            .captures(body)
            .map(|c| {
                c[1].split('$')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    class
        .captures_iter(&format!("{schema}\n\n"))
        .map(|c| (c[1].to_owned(), (list(&c[2], "MUST"), list(&c[2], "MAY"))))
        .collect()
}

#[test]
fn the_modules_and_extended_attributes_fit_the_schema_syntax_and_hooks() {
    let described = describe();
    let classes = schema_classes();
    assert_eq!(classes.len(), 15, "{:?}", classes.keys());
    let allowed = |class: &str| -> BTreeSet<String> {
        let (must, may) = classes
            .get(class)
            .unwrap_or_else(|| panic!("no class {class}"));
        must.union(may).cloned().collect()
    };

    // Modules: every mapped attribute is allowed, every MUST attribute has a required property.
    for (module, definition) in described["modules"].as_object().unwrap() {
        let mut may_use = BTreeSet::new();
        let mut must = BTreeSet::new();
        for class in definition["objectClasses"].as_array().unwrap() {
            may_use.extend(allowed(class.as_str().unwrap()));
            must.extend(classes[class.as_str().unwrap()].0.clone());
        }
        let mut required = BTreeSet::new();
        for (prop, property) in definition["properties"].as_object().unwrap() {
            let ldap = property["ldap"].as_str().unwrap();
            assert!(
                may_use.contains(ldap),
                "{module}: {prop} -> {ldap} not in its classes"
            );
            if property["required"] == true {
                required.insert(ldap.to_owned());
            }
        }
        assert!(
            must.is_subset(&required),
            "{module}: MUST {must:?}, required properties give {required:?}"
        );
    }

    // Extended attributes: class and attribute of the schema, a syntax and hook that exist.
    let syntax_file = std::fs::read_to_string(repo().join("ucs/udm/syntax/50_ox.py")).unwrap();
    let ucs_syntaxes = ["string", "OkOrNot", "emailAddress", "ldapDn"];
    for attribute in described["extended_attributes"].as_array().unwrap() {
        let name = attribute["name"].as_str().unwrap();
        let class = attribute["objectClass"].as_str().unwrap();
        let ldap = attribute["ldapMapping"].as_str().unwrap();
        assert!(
            allowed(class).contains(ldap),
            "{name}: {ldap} not allowed by {class}"
        );
        let syntax = attribute["syntax"].as_str().unwrap();
        assert!(
            ucs_syntaxes.contains(&syntax) || syntax_file.contains(&format!("class {syntax}(")),
            "{name}: unknown syntax {syntax}"
        );
        let hook = attribute["hook"].as_str().unwrap_or_default();
        if !hook.is_empty() {
            let file = repo().join(format!("ucs/udm/hooks/{hook}.py"));
            let source = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                source.contains(&format!("class {hook}(simpleHook)")),
                "{name}: hook {hook}"
            );
        }
    }
}
