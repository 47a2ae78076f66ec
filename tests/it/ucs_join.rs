//! The join script (`appcenter/inst`), the unjoin script and the hand-over of the UCS files by
//! `appcenter/configure`, run against the recording stand-ins of `ucs_registerLDAPExtension`,
//! `univention-directory-manager`, `ucr` and the join library (`tests/ucs/joinscript/README.md`):
//! a first run registers and creates everything, a second run changes nothing, an upgrade over
//! the Python app's registrations replaces them and keeps what it created.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::ucs_udm::{repo, text};

const BASE: &str = "dc=example,dc=org";
const PYTHON_APP_VERSION: &str = "11.0.0-67.1A~4.4.0.202009111232";

/// A UCS domain as the stand-ins see it: `ldap.json`, `ucr.json`, `registry.json`,
/// `joinstatus` and `changes.log` in a temp dir.
struct Domain {
    state: tempfile::TempDir,
}

impl Domain {
    fn new(role: &str) -> Self {
        let state = tempfile::tempdir().unwrap();
        let mut ldap = serde_json::Map::new();
        for (dn, module) in [
            (BASE.to_owned(), "container/dc"),
            (format!("cn=univention,{BASE}"), "container/cn"),
            (
                format!("cn=custom attributes,cn=univention,{BASE}"),
                "container/cn",
            ),
            (format!("cn=templates,cn=univention,{BASE}"), "container/cn"),
            (format!("cn=groups,{BASE}"), "container/cn"),
        ] {
            let name = dn
                .split(',')
                .next()
                .unwrap()
                .split('=')
                .nth(1)
                .unwrap()
                .to_owned();
            ldap.insert(dn, json!({"module": module, "props": {"name": [name]}}));
        }
        ldap.insert(
            format!("cn=default containers,cn=univention,{BASE}"),
            json!({"module": "settings/directory", "props": {"name": ["default containers"]}}),
        );
        let domain = Self { state };
        domain.write("ldap.json", &Value::Object(ldap));
        domain.write(
            "ucr.json",
            &json!({
                "ldap/base": BASE, "ldap/master": "primary.example.org", "ldap/master/port": "7389",
                "domainname": "example.org", "server/role": role, "ox/context/id": "20",
                "groups/default/domainusers": "Domain Users",
            }),
        );
        std::fs::write(domain.path().join("bind.secret"), "not-a-real-password").unwrap();
        domain
    }

    fn path(&self) -> &Path {
        self.state.path()
    }

    fn write(&self, name: &str, value: &Value) {
        std::fs::write(
            self.path().join(name),
            serde_json::to_vec_pretty(value).unwrap(),
        )
        .unwrap();
    }

    fn read(&self, name: &str) -> Value {
        std::fs::read(self.path().join(name))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(json!({}))
    }

    fn standins() -> PathBuf {
        repo().join("tests/ucs/joinscript")
    }

    fn command(&self, script: &str, files: &Path) -> Command {
        let path = format!(
            "{}:{}",
            Self::standins().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg(repo().join(script))
            .args([
                "--binddn",
                &format!("uid=Administrator,cn=users,{BASE}"),
                "--bindpwdfile",
            ])
            .arg(self.path().join("bind.secret"))
            .env("PATH", path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("UCS_STANDIN_STATE", self.path())
            .env("OX_CONNECTOR_UCS_ROOT", Self::standins())
            .env("OX_CONNECTOR_UCS_FILES", files);
        command
    }

    fn join_with(&self, files: &Path) -> Output {
        self.command("appcenter/inst", files).output().unwrap()
    }

    fn join(&self) -> Output {
        self.join_with(&repo().join("ucs"))
    }

    /// The changes recorded since the last call (and forgets them).
    fn changes(&self) -> Vec<Value> {
        let log = self.path().join("changes.log");
        let content = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::write(&log, "").unwrap();
        content
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn objects(&self, module: &str) -> BTreeMap<String, Value> {
        self.read("ldap.json")
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, o)| o["module"] == module)
            .map(|(dn, o)| (dn.clone(), o["props"].clone()))
            .collect()
    }

    fn joinstatus(&self) -> String {
        std::fs::read_to_string(self.path().join("joinstatus")).unwrap_or_default()
    }
}

fn package_version() -> String {
    let inst = std::fs::read_to_string(repo().join("appcenter/inst")).unwrap();
    inst.lines()
        .find_map(|l| l.strip_prefix("PACKAGE_VERSION=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

fn registered_objects() -> BTreeSet<String> {
    [
        "schema oxforucs",
        "schema oxforucs-extra",
        "udm_syntax 50_ox",
        "udm_hook oxAccess",
        "udm_hook oxContextRW",
        "udm_hook oxGroupHook",
        "udm_hook oxUserDefaults",
        "udm_module oxmail/oxcontext",
        "udm_module oxmail/accessprofile",
        "udm_module oxmail/functional_account",
        "udm_module oxresources/oxresources",
    ]
    .map(String::from)
    .into()
}

fn extended_attributes() -> Vec<Value> {
    let spec: Value = serde_json::from_slice(
        &std::fs::read(repo().join("ucs/udm/extended_attributes.json")).unwrap(),
    )
    .unwrap();
    spec["attributes"].as_array().unwrap().clone()
}

/// The default access profiles and their rights (ucs-side.md, step 6).
fn expected_profiles() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let webmail = [
        "contacts",
        "webmail",
        "collectemailaddresses",
        "multiplemailaccounts",
        "subscription",
    ];
    let pim: Vec<&str> = [&webmail[..], &["calendar", "delegatetask", "tasks"]].concat();
    let groupware: Vec<&str> = [
        &pim[..],
        &["infostore", "editpublicfolders", "readcreatesharedfolders"],
    ]
    .concat();
    let set = |rights: &[&'static str]| rights.iter().copied().collect::<BTreeSet<_>>();
    BTreeMap::from([
        ("none", BTreeSet::new()),
        ("webmail", set(&webmail)),
        (
            "webmail_drive",
            set(&[&webmail[..], &["infostore"]].concat()),
        ),
        ("pim", set(&pim)),
        ("pim_drive", set(&[&pim[..], &["infostore"]].concat())),
        ("groupware", set(&groupware)),
        (
            "premium",
            set(&[
                &groupware[..],
                &["ical", "vcard", "webdav", "webdavxml", "usm"],
            ]
            .concat()),
        ),
    ])
}

fn rights_of(props: &Value) -> BTreeSet<String> {
    props
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v[0] == "TRUE")
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn a_first_run_registers_and_creates_everything_and_a_second_run_changes_nothing() {
    let domain = Domain::new("domaincontroller_master");
    let output = domain.join();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("not-a-real-password"));

    let registry = domain.read("registry.json");
    let registered: BTreeSet<String> = registry.as_object().unwrap().keys().cloned().collect();
    assert_eq!(registered, registered_objects());
    for (object, entry) in registry.as_object().unwrap() {
        assert_eq!(entry["package"], "univention-ox", "{object}");
        assert_eq!(entry["version"], package_version().as_str(), "{object}");
        assert_eq!(entry["ucsversionstart"], "5.0-0", "{object}");
    }

    let container = format!("cn=open-xchange,cn=custom attributes,cn=univention,{BASE}");
    let attributes = domain.objects("settings/extended_attribute");
    assert_eq!(attributes.len(), extended_attributes().len());
    for attribute in extended_attributes() {
        let dn = format!("cn={},{container}", attribute["name"].as_str().unwrap());
        let props = &attributes
            .get(&dn)
            .unwrap_or_else(|| panic!("{dn} missing"));
        for key in ["CLIName", "module", "objectClass", "ldapMapping", "syntax"] {
            assert_eq!(props[key][0], attribute[key], "{dn}: {key}");
        }
        assert!(
            props["translationShortDescription"][0]
                .as_str()
                .unwrap()
                .starts_with("\"de_DE\" \""),
            "{dn}: German text"
        );
    }
    let default_of =
        |name: &str| attributes[&format!("cn={name},{container}")]["default"][0].clone();
    assert_eq!(
        default_of("oxContextUser"),
        "20",
        "the default context from UCR ox/context/id"
    );
    assert_eq!(default_of("oxContextResource"), "20");
    assert_eq!(default_of("isOxUser"), "OK");
    assert_eq!(default_of("oxAccess"), "premium");

    let containers: BTreeSet<String> = domain.objects("container/cn").into_keys().collect();
    for name in [
        "",
        "cn=oxresources,",
        "cn=accessprofiles,",
        "cn=functional_accounts,",
    ] {
        assert!(
            containers.contains(&format!("{name}cn=open-xchange,{BASE}")),
            "{name}"
        );
    }
    let directory = &domain.objects("settings/directory")
        [&format!("cn=default containers,cn=univention,{BASE}")];
    assert_eq!(
        directory["ox_functional_accounts"],
        json!([format!("cn=functional_accounts,cn=open-xchange,{BASE}")])
    );

    let profiles: BTreeMap<String, BTreeSet<String>> = domain
        .objects("oxmail/accessprofile")
        .values()
        .map(|props| {
            (
                props["name"][0].as_str().unwrap().to_owned(),
                rights_of(props),
            )
        })
        .collect();
    let expected: BTreeMap<String, BTreeSet<String>> = expected_profiles()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(profiles, expected);

    let template = &domain.objects("settings/usertemplate")
        [&format!("cn=open-xchange groupware account,cn=templates,cn=univention,{BASE}")];
    assert_eq!(
        template["mailPrimaryAddress"],
        json!(["<username>@example.org"])
    );
    assert_eq!(template["oxAccess"], json!(["premium"]));
    assert_eq!(template["oxDisplayName"], json!(["<firstname> <lastname>"]));
    assert_eq!(
        template["primaryGroup"],
        json!([format!("cn=Domain Users,cn=groups,{BASE}")])
    );

    assert_eq!(domain.read("ucr.json")["ldap/refint"], "true");
    let changes = domain.changes();
    assert!(
        changes.iter().any(|c| c["tool"] == "systemctl"),
        "slapd restarted for refint"
    );
    assert_eq!(domain.joinstatus(), "ox-connector v10 successful\n");

    // Run again: the join library skips a version that ran.
    let output = domain.join();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("has run already"),
        "{}",
        text(&output)
    );
    assert_eq!(domain.changes(), Vec::<Value>::new());

    // Forced (status forgotten, as after `univention-run-join-scripts --force`): still nothing.
    std::fs::remove_file(domain.path().join("joinstatus")).unwrap();
    let output = domain.join();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(domain.changes(), Vec::<Value>::new(), "{}", text(&output));
}

/// What the Python OX Connector left: its registrations (older version, other content), the
/// attribute container with two attributes (one with an administrator's default, one whose
/// default was never set), the containers, a changed premium profile and the template.
fn python_app_domain() -> Domain {
    let domain = Domain::new("domaincontroller_master");
    let mut registry = serde_json::Map::new();
    for object in registered_objects() {
        registry.insert(
            object,
            json!({"package": "univention-ox", "version": PYTHON_APP_VERSION, "sha256": "python-app",
                   "file": "/var/lib/univention-appcenter/apps/ox-connector/data/resources/...",
                   "ucsversionstart": "4.4-3", "ucsversionend": "5.99-0"}),
        );
    }
    domain.write("registry.json", &Value::Object(registry));
    let mut ldap = domain.read("ldap.json");
    let objects = ldap.as_object_mut().unwrap();
    let container = format!("cn=open-xchange,cn=custom attributes,cn=univention,{BASE}");
    objects.insert(
        container.clone(),
        json!({"module": "container/cn", "props": {"name": ["open-xchange"]}}),
    );
    objects.insert(
        format!("cn=isOxUser,{container}"),
        json!({"module": "settings/extended_attribute", "props": {
            "name": ["isOxUser"], "CLIName": ["isOxUser"], "module": ["users/user"],
            "objectClass": ["oxUserObject"], "ldapMapping": ["isOxUser"], "default": ["Not"]}}),
    );
    objects.insert(
        format!("cn=oxContextUser,{container}"),
        json!({"module": "settings/extended_attribute", "props": {
            "name": ["oxContextUser"], "CLIName": ["oxContext"], "module": ["users/user"],
            "objectClass": ["oxUserObject"], "ldapMapping": ["oxContextIDNum"], "default": [""]}}),
    );
    for dn in [
        "cn=open-xchange",
        "cn=accessprofiles,cn=open-xchange",
        "cn=oxresources,cn=open-xchange",
    ] {
        let name = dn.split(',').next().unwrap()[3..].to_owned();
        objects.insert(
            format!("{dn},{BASE}"),
            json!({"module": "container/cn", "props": {"name": [name]}}),
        );
    }
    objects.insert(
        format!("cn=premium,cn=accessprofiles,cn=open-xchange,{BASE}"),
        json!({"module": "oxmail/accessprofile", "props": {
            "name": ["premium"], "displayName": ["Everything (changed by the admin)"], "webmail": ["TRUE"]}}),
    );
    domain.write("ldap.json", &ldap);
    std::fs::write(
        domain.path().join("joinstatus"),
        "ox-connector v3 successful\n",
    )
    .unwrap();
    domain
}

#[test]
fn an_upgrade_over_the_python_apps_registrations_replaces_them_and_keeps_its_objects() {
    let domain = python_app_domain();
    let output = domain.join();
    assert!(output.status.success(), "{}", text(&output));

    let changes = domain.changes();
    let replaced: BTreeSet<String> = changes
        .iter()
        .filter(|c| c["tool"] == "ucs_registerLDAPExtension")
        .inspect(|c| assert_eq!(c["replaced"], PYTHON_APP_VERSION, "{c}"))
        .map(|c| c["object"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = registered_objects();
    // Registered already, so the server knows its attribute types: left as it is (same rule as
    // the Python app).
    expected.remove("schema oxforucs-extra");
    assert_eq!(replaced, expected);
    let registry = domain.read("registry.json");
    assert_eq!(
        registry["schema oxforucs-extra"]["version"],
        PYTHON_APP_VERSION
    );
    assert_eq!(
        registry["udm_module oxmail/oxcontext"]["version"],
        package_version().as_str()
    );

    let container = format!("cn=open-xchange,cn=custom attributes,cn=univention,{BASE}");
    let attributes = domain.objects("settings/extended_attribute");
    assert_eq!(
        attributes.len(),
        extended_attributes().len(),
        "no duplicates, none missing"
    );
    assert_eq!(
        attributes[&format!("cn=isOxUser,{container}")]["default"],
        json!(["Not"]),
        "kept"
    );
    assert_eq!(
        attributes[&format!("cn=oxContextUser,{container}")]["default"],
        json!(["20"]),
        "completed"
    );
    let premium = &domain.objects("oxmail/accessprofile")
        [&format!("cn=premium,cn=accessprofiles,cn=open-xchange,{BASE}")];
    assert_eq!(
        premium["displayName"],
        json!(["Everything (changed by the admin)"])
    );
    assert_eq!(domain.objects("oxmail/accessprofile").len(), 7);
    assert!(
        !changes.iter().any(|c| c["action"] == "remove"),
        "nothing removed: {changes:?}"
    );
    assert!(domain
        .joinstatus()
        .ends_with("ox-connector v10 successful\n"));
}

#[test]
fn a_newer_registration_stops_the_join_with_the_reason_and_no_success_recorded() {
    let domain = Domain::new("domaincontroller_master");
    domain.write(
        "registry.json",
        &json!({"udm_module oxmail/oxcontext": {"package": "univention-ox", "version": "99.0.0-1",
                "sha256": "newer", "file": "/elsewhere", "ucsversionstart": "5.0-0", "ucsversionend": "5.99-0"}}),
    );
    let output = domain.join();
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("newer version 99.0.0-1"), "{stderr}");
    assert!(
        stderr.contains("ox-connector: ucs_registerLDAPExtension"),
        "{stderr}"
    );
    assert_eq!(domain.joinstatus(), "");
}

#[test]
fn where_ucs_defines_the_mail_attributes_the_extra_schema_is_not_registered() {
    let domain = Domain::new("domaincontroller_master");
    let mut ucr = domain.read("ucr.json");
    ucr["ucs_defines_acl"] = json!("yes");
    domain.write("ucr.json", &ucr);
    let output = domain.join();
    assert!(output.status.success(), "{}", text(&output));
    let registry = domain.read("registry.json");
    assert!(registry.get("schema oxforucs-extra").is_none());
    assert!(registry.get("schema oxforucs").is_some());
}

#[test]
fn when_the_schema_cannot_be_read_the_join_stops_before_registering_anything() {
    let domain = Domain::new("domaincontroller_master");
    let mut ucr = domain.read("ucr.json");
    ucr["ldap_down"] = json!("yes");
    domain.write("ucr.json", &ucr);
    let output = domain.join();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("cannot read the LDAP server's schema"),
        "{}",
        text(&output)
    );
    assert_eq!(domain.read("registry.json"), json!({}));
    assert_eq!(domain.joinstatus(), "");
}

#[test]
fn on_a_backup_node_referential_integrity_is_left_to_the_primary_with_a_hint() {
    let domain = Domain::new("domaincontroller_backup");
    // Also: without UCR ox/context/id the default context is DEFAULT_CONTEXT's initial 10.
    let mut ucr = domain.read("ucr.json");
    ucr.as_object_mut().unwrap().remove("ox/context/id");
    domain.write("ucr.json", &ucr);
    let output = domain.join();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("ucr set ldap/refint=true"),
        "{}",
        text(&output)
    );
    assert!(domain.read("ucr.json").get("ldap/refint").is_none());
    let attributes = domain.objects("settings/extended_attribute");
    let container = format!("cn=open-xchange,cn=custom attributes,cn=univention,{BASE}");
    assert_eq!(
        attributes[&format!("cn=oxContextUser,{container}")]["default"],
        json!(["10"])
    );
    assert!(!domain.changes().iter().any(|c| c["tool"] == "systemctl"));
}

#[test]
fn without_the_ucs_files_the_join_fails_and_says_how_to_get_them() {
    let domain = Domain::new("domaincontroller_master");
    let output = domain.join_with(Path::new("/nonexistent/ucs"));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("univention-app configure ox-connector")
    );
    assert_eq!(domain.changes(), Vec::<Value>::new());
}

#[test]
fn configure_hands_the_ucs_files_to_the_join_script_through_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let configure = |action: &str| {
        Command::new("sh")
            .arg(repo().join("appcenter/configure"))
            .args([action, "--error-file", "/dev/null", "--app", "ox-connector"])
            .env("OX_CONNECTOR_DATA_DIR", data.path())
            .env("OX_CONNECTOR_UCS_SOURCE", repo().join("ucs"))
            .output()
            .unwrap()
    };
    for action in ["install", "upgrade"] {
        let output = configure(action);
        assert!(output.status.success(), "{}", text(&output));
    }
    let copied = data.path().join("ucs");
    for file in [
        "ldap/oxforucs.schema",
        "udm/handlers/oxmail/oxcontext.py",
        "udm/i18n/oxmail-oxcontext/de.mo",
    ] {
        assert_eq!(
            std::fs::read(copied.join(file)).unwrap(),
            std::fs::read(repo().join("ucs").join(file)).unwrap(),
            "{file}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "ucs")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let domain = Domain::new("domaincontroller_master");
    let output = domain.join_with(&copied);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn the_unjoin_script_changes_nothing_in_the_domain_and_says_what_it_leaves() {
    let domain = Domain::new("domaincontroller_master");
    assert!(domain.join().status.success());
    domain.changes();
    let ldap_before = domain.read("ldap.json");
    let output = domain
        .command("appcenter/uinst", &repo().join("ucs"))
        .env("UCS_STANDIN_SCRIPT_NAME", "ox-connector-uninstall")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let said = String::from_utf8_lossy(&output.stdout);
    for left in [
        "schema",
        "oxmail/oxcontext",
        "extended attributes",
        "access",
        "template",
    ] {
        assert!(
            said.contains(left),
            "does not say it leaves the {left}: {said}"
        );
    }
    assert_eq!(domain.changes(), Vec::<Value>::new());
    assert_eq!(domain.read("ldap.json"), ldap_before);
    assert!(
        !domain.joinstatus().contains("ox-connector v"),
        "status entry removed"
    );
}

/// SHA-256 over the files the join script registers (relative path, NUL, content, NUL; sorted).
fn registered_files_digest() -> String {
    use sha2::{Digest, Sha256};
    let ucs = repo().join("ucs");
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&ucs)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| {
            let relative = p.strip_prefix(&ucs).unwrap().to_string_lossy().into_owned();
            (relative.starts_with("ldap/") && relative.ends_with(".schema"))
                || (relative.starts_with("udm/") && relative.ends_with(".py"))
                || relative.ends_with(".mo")
        })
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(
            file.strip_prefix(&ucs)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update([0]);
        hasher.update(std::fs::read(&file).unwrap());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_package_version_is_bumped_whenever_a_registered_file_changes() {
    // UCS keeps a registered object unless its package version grows: a changed schema, module,
    // hook, syntax or catalog without a new PACKAGE_VERSION would never reach a domain.
    let inst = std::fs::read_to_string(repo().join("appcenter/inst")).unwrap();
    let recorded = inst
        .lines()
        .find_map(|l| l.strip_prefix("# Registered files of this PACKAGE_VERSION: sha256 "))
        .expect("appcenter/inst records the digest of the registered files");
    let actual = registered_files_digest();
    assert_eq!(
        recorded, actual,
        "a file under ucs/ldap or ucs/udm changed: raise PACKAGE_VERSION in appcenter/inst and \
         record the new digest there: # Registered files of this PACKAGE_VERSION: sha256 {actual}"
    );
}
