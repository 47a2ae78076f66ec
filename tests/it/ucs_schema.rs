//! The OX LDAP schema (`ucs/ldap`) loads into a real OpenLDAP (Debian's slapd) together with
//! core, cosine, inetorgperson, nis and the stand-in of the UCS definitions it builds on
//! (`tests/ucs/ucs-standin.schema`), keeps the OIDs of existing OX installations, and a
//! running slapd stores an OX context, user, group, resource, access profile and functional
//! account made from the project's listener-file fixtures (`support::ox`) through the LDAP
//! mapping of the shipped UDM modules and extended attributes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::ox;
use crate::ucs_udm::{describe, repo, text};

const SUFFIX: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "test-only-secret";

fn slapd_bin(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/sbin").join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/setup installs slapd and ldap-utils",
        path.display()
    );
    path
}

fn schema_includes() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["core", "cosine", "inetorgperson", "nis"]
        .iter()
        .map(|s| PathBuf::from(format!("/etc/ldap/schema/{s}.schema")))
        .collect();
    files.push(repo().join("tests/ucs/ucs-standin.schema"));
    files.push(repo().join("ucs/ldap/oxforucs-extra.schema"));
    files.push(repo().join("ucs/ldap/oxforucs.schema"));
    files
}

fn write_config(dir: &Path) -> PathBuf {
    let mut config = String::new();
    for file in schema_includes() {
        config.push_str(&format!("include {}\n", file.display()));
    }
    std::fs::create_dir_all(dir.join("db")).unwrap();
    config.push_str(&format!(
        "pidfile {dir}/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
         database mdb\nmaxsize 104857600\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\n\
         rootpw {ROOT_PW}\ndirectory {dir}/db\n",
        dir = dir.display()
    ));
    let path = dir.join("slapd.conf");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn the_ox_schema_loads_into_openldap_with_the_schemas_it_builds_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let output = Command::new(slapd_bin("slaptest"))
        .args(["-u", "-f"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "slaptest: {}", text(&output));
}

#[test]
fn without_the_ucs_definitions_the_ox_schema_does_not_load() {
    // The stand-in is needed: mailPrimaryAddress is UCS's, not the OX schema's.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let standin = repo().join("tests/ucs/ucs-standin.schema");
    let without: String = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .filter(|l| !l.contains(standin.to_str().unwrap()))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, without).unwrap();
    let output = Command::new(slapd_bin("slaptest"))
        .args(["-u", "-f"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("mailPrimaryAddress"),
        "{}",
        text(&output)
    );
}

/// A slapd on a free loopback port with its own temp dir; killed on drop.
struct Slapd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Slapd {
    fn start() -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let config = write_config(dir.path());
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let url = format!("ldap://127.0.0.1:{port}/");
            let child = Command::new(slapd_bin("slapd"))
                .args(["-d", "0", "-h", &url, "-f"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let mut slapd = Slapd {
                child,
                url,
                _dir: dir,
            };
            if slapd.wait_until_ready() {
                return slapd;
            }
            // Dropping it kills it; the port was probably taken meanwhile: another one.
        }
        panic!("slapd did not start (its messages are above)");
    }

    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let probe = Command::new("ldapsearch")
                .args([
                    "-x",
                    "-H",
                    &self.url,
                    "-b",
                    "",
                    "-s",
                    "base",
                    "namingContexts",
                ])
                .output();
            if probe.is_ok_and(|o| o.status.success()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn ldap(&self, tool: &str, ldif: &str) -> std::process::Output {
        let mut child = Command::new(tool)
            .args(["-x", "-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e}; scripts/setup installs ldap-utils"));
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        self.search_scope(base, "sub", filter, attrs)
    }

    fn search_scope(&self, base: &str, scope: &str, filter: &str, attrs: &[&str]) -> String {
        let output = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.url,
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
            ])
            .args(["-b", base, "-s", scope, filter])
            .args(attrs)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ldapsearch {filter}: {}",
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// UCS's own LDAP mapping of the core users/user and groups/group properties the fixtures carry
/// (`None`: not an attribute of the entry: group memberships live on the group, `disabled` is
/// derived from several attributes).
fn ucs_core_mapping(module: &str, property: &str) -> Option<Option<&'static str>> {
    let attribute = match (module, property) {
        ("users/user", "username") => Some("uid"),
        ("users/user", "firstname") => Some("givenName"),
        ("users/user", "lastname") => Some("sn"),
        ("users/user", "displayName") => Some("displayName"),
        ("users/user", "mailPrimaryAddress") => Some("mailPrimaryAddress"),
        ("users/user", "mailAlternativeAddress") => Some("mailAlternativeAddress"),
        ("users/user", "groups" | "disabled") => None,
        ("groups/group", "name") => Some("cn"),
        ("groups/group", "users") => Some("uniqueMember"),
        _ => return None,
    };
    Some(attribute)
}

/// The LDAP entry UDM would write for a listener file: object classes of the module (UCS's for
/// users and groups) and of the extended attributes used, each property through its mapping.
fn entry(file: &Value, described: &Value) -> String {
    let module = file["udm_object_type"].as_str().unwrap();
    let object = file["object"].as_object().unwrap();
    let mut classes: BTreeSet<String> = BTreeSet::from(["univentionObject".to_owned()]);
    let mut values: Vec<(String, String)> = vec![("univentionObjectType".into(), module.into())];
    match module {
        "users/user" => {
            classes.extend(["inetOrgPerson", "posixAccount", "univentionMail"].map(String::from));
            // What UDM adds itself for a POSIX user.
            let uid = object["username"].as_str().unwrap();
            for (attribute, value) in [
                ("cn", uid.to_owned()),
                ("uidNumber", "2001".to_owned()),
                ("gidNumber", "5001".to_owned()),
                ("homeDirectory", format!("/home/{uid}")),
            ] {
                values.push((attribute.into(), value));
            }
        }
        "groups/group" => {
            classes.extend(["posixGroup", "univentionGroup"].map(String::from));
            values.push(("gidNumber".into(), "5002".into()));
        }
        _ => {
            for class in described["modules"][module]["objectClasses"]
                .as_array()
                .unwrap()
            {
                classes.insert(class.as_str().unwrap().to_owned());
            }
        }
    }
    for (property, value) in object {
        let extended = described["extended_attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["module"] == module && a["CLIName"] == property.as_str());
        let attribute = if let Some(extended) = extended {
            classes.insert(extended["objectClass"].as_str().unwrap().to_owned());
            extended["ldapMapping"].as_str().map(String::from)
        } else if let Some(ldap) =
            described["modules"][module]["properties"][property]["ldap"].as_str()
        {
            Some(ldap.to_owned())
        } else {
            ucs_core_mapping(module, property)
                .unwrap_or_else(|| panic!("{module}: no LDAP mapping for {property}"))
                .map(String::from)
        };
        let Some(attribute) = attribute else { continue };
        let list = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in list {
            let item = match item {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !item.is_empty() && !values.contains(&(attribute.clone(), item.clone())) {
                values.push((attribute.clone(), item));
            }
        }
    }
    let mut ldif = format!("dn: {}\n", file["dn"].as_str().unwrap());
    for class in classes {
        ldif.push_str(&format!("objectClass: {class}\n"));
    }
    for (attribute, value) in values {
        ldif.push_str(&format!("{attribute}: {value}\n"));
    }
    ldif
}

fn containers() -> String {
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n"
    );
    for dn in [
        "cn=users",
        "cn=groups",
        "cn=open-xchange",
        "cn=oxresources,cn=open-xchange",
        "cn=accessprofiles,cn=open-xchange",
        "cn=functional_accounts,cn=open-xchange",
    ] {
        let cn = dn.split(',').next().unwrap().trim_start_matches("cn=");
        ldif.push_str(&format!(
            "dn: {dn},{SUFFIX}\nobjectClass: organizationalRole\ncn: {cn}\n\n"
        ));
    }
    ldif
}

fn fixtures() -> Vec<Value> {
    vec![
        ox::context("c10", 10, Some(2048)),
        ox::user(
            "u1",
            "anna",
            10,
            json!({"mailAlternativeAddress": ["a.k@example.org"], "oxDisplayName": "Anna K",
                   "oxUserQuota": "500", "oxUserfield01": "x"}),
        ),
        ox::group("g1", "staff", &["anna"], json!({})),
        // UDM requires a manager of a resource; the fixture's extra carries it.
        ox::resource("r1", "room1", 10, json!({"resourceadmin": "2001"})),
        ox::access_profile("p1", "pim", &["webmail", "calendar", "contacts", "tasks"]),
        ox::functional_account("f1", "team", "team@example.org", &["anna"]),
    ]
}

#[test]
fn slapd_stores_every_ox_object_of_the_listener_fixtures_and_checks_the_schema() {
    let described = describe();
    let slapd = Slapd::start();
    let output = slapd.ldap("ldapadd", &containers());
    assert!(output.status.success(), "containers: {}", text(&output));
    for file in fixtures() {
        let ldif = entry(&file, &described);
        let output = slapd.ldap("ldapadd", &ldif);
        assert!(
            output.status.success(),
            "ldapadd of\n{ldif}\n{}",
            text(&output)
        );
    }

    let users = slapd.search(
        SUFFIX,
        "(&(objectClass=oxUserObject)(isOxUser=OK)(oxContextIDNum=10))",
        &["uid", "oxAccess"],
    );
    assert!(
        users.contains("uid: anna") && users.contains("oxAccess: premium"),
        "{users}"
    );
    let context = slapd.search(
        SUFFIX,
        "(&(objectClass=oxContext)(oxContextIDNum=10))",
        &["cn", "oxQuota"],
    );
    assert!(
        context.contains("cn: context10") && context.contains("oxQuota: 2048"),
        "{context}"
    );
    let profile = slapd.search(
        SUFFIX,
        "(&(objectClass=oxAccessProfile)(oxRightCalendar=TRUE))",
        &["cn"],
    );
    assert!(profile.contains("cn: pim"), "{profile}");
    let account = slapd.search(
        SUFFIX,
        "(objectClass=oxFunctionalAccount)",
        &["uniqueMember", "oxPersonal"],
    );
    assert!(
        account.contains("uniqueMember: uid=anna,cn=users,dc=example,dc=org"),
        "{account}"
    );
    let resource = slapd.search(
        SUFFIX,
        "(&(objectClass=oxResourceObject)(oxContextIDNum=10))",
        &["mailPrimaryAddress"],
    );
    assert!(
        resource.contains("mailPrimaryAddress: room1@example.org"),
        "{resource}"
    );
    let group = slapd.search(SUFFIX, "(&(objectClass=oxGroup)(isOxGroup=OK))", &["cn"]);
    assert!(group.contains("cn: staff"), "{group}");

    // The server enforces the schema: a resource without its manager (MUST oxResourceAdmin)
    // and a boolean right that is not TRUE/FALSE are refused.
    let unmanaged = entry(&ox::resource("r2", "room2", 10, json!({})), &described);
    let output = slapd.ldap("ldapadd", &unmanaged);
    assert!(!output.status.success(), "{unmanaged} was accepted");
    assert!(
        text(&output).contains("oxResourceAdmin"),
        "{}",
        text(&output)
    );
    let bad = entry(&ox::access_profile("p2", "odd", &[]), &described) + "oxRightWebmail: maybe\n";
    let output = slapd.ldap("ldapadd", &bad);
    assert!(!output.status.success(), "{bad} was accepted");
}

/// OIDs and names that existing OX installations on UCS have in their data and that must never
/// change.
const KNOWN_DEFINITIONS: &[(&str, &str)] = &[
    ("1.3.6.1.4.1.31353.2.2.5", "oxDisplayName"),
    ("1.3.6.1.4.1.31353.2.2.9", "oxAccess"),
    ("1.3.6.1.4.1.31353.2.2.86", "isOxGroup"),
    ("1.3.6.1.4.1.31353.2.2.87", "isOxUser"),
    ("1.3.6.1.4.1.31353.2.2.94", "oxQuota"),
    ("1.3.6.1.4.1.31353.2.2.95", "oxContextIDNum"),
    ("1.3.6.1.4.1.31353.2.2.122", "oxResourceAdmin"),
    ("1.3.6.1.4.1.31353.2.2.128", "oxResourceMailAddress"),
    ("1.3.6.1.4.1.31353.2.2.130", "oxUserQuota"),
    ("1.3.6.1.4.1.31353.2.2.131", "oxRightUsm"),
    ("1.3.6.1.4.1.31353.2.2.154", "oxRightWebmail"),
    ("1.3.6.1.4.1.31353.2.2.155", "oxPersonal"),
    (
        "1.3.6.1.4.1.31353.2.2.156",
        "oxFunctionalAccountDefaultContainer",
    ),
    ("1.3.6.1.4.1.31353.2.1.1", "oxUserObject"),
    ("1.3.6.1.4.1.31353.2.1.2", "oxGroup"),
    ("1.3.6.1.4.1.31353.2.1.9", "oxContext"),
    ("1.3.6.1.4.1.31353.2.1.14", "oxResourceObject"),
    ("1.3.6.1.4.1.31353.2.1.16", "oxAccessProfile"),
    ("1.3.6.1.4.1.31353.2.1.17", "oxFunctionalAccount"),
    ("1.3.6.1.4.1.31353.2.1.18", "oxDefaultContainers"),
    ("1.3.6.1.4.1.19414.2.1.651", "acl"),
    ("1.3.6.1.4.1.19414.2.1.605", "cyrus-userquota"),
    ("1.3.6.1.4.1.19419.1.1.1.2", "unrestrictedMailSize"),
];

#[test]
fn the_running_server_knows_the_ox_definitions_by_their_established_oids() {
    let slapd = Slapd::start();
    let schema = slapd.search_scope(
        "cn=Subschema",
        "base",
        "(objectClass=subschema)",
        &["attributeTypes", "objectClasses"],
    );
    for (oid, name) in KNOWN_DEFINITIONS {
        assert!(
            schema.contains(&format!("( {oid} NAME '{name}'")),
            "the server has no {name} with OID {oid}"
        );
    }
    let ox_attributes = schema.matches("( 1.3.6.1.4.1.31353.2.2.").count();
    let ox_classes = schema.matches("( 1.3.6.1.4.1.31353.2.1.").count();
    assert_eq!(
        (ox_attributes, ox_classes),
        (146, 15),
        "OX attribute types and object classes"
    );
}
