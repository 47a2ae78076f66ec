//! Shared helpers: an emulator with a client, context creation, valid users, raw SOAP posts
//! and a namespace-aware XML comparison.

use ox_connector::emulator::{Emulator, EmulatorHandle, EmulatorSettings};
use ox_connector::ox::soap::xml::{self, Element};
use ox_connector::ox::soap::{Context, Credentials, OxClient, User};

pub(crate) const MASTER: &str = "oxadminmaster";
pub(crate) const MASTER_PASSWORD: &str = "master-secret";
pub(crate) const ADMIN_PASSWORD: &str = "ctx-admin-secret";

pub(crate) struct Env {
    pub ox: EmulatorHandle,
    pub client: OxClient,
}

pub(crate) async fn env() -> Env {
    env_with(EmulatorSettings::new(MASTER, MASTER_PASSWORD)).await
}

/// An emulator with the OX properties docs/operations.md tells admins to set.
pub(crate) async fn env_admin_guide() -> Env {
    let config = EmulatorSettings::new(MASTER, MASTER_PASSWORD)
        .with_properties(&ox_connector::emulator::ADMIN_GUIDE_PROPERTIES)
        .expect("known properties");
    env_with(config).await
}

pub(crate) async fn env_with(config: EmulatorSettings) -> Env {
    let ox = Emulator::start(config).await.expect("emulator starts");
    let client = OxClient::builder(ox.base_url())
        .master(Credentials::new(MASTER, MASTER_PASSWORD))
        .build()
        .expect("client builds");
    Env { ox, client }
}

/// The context admin the connector would create for context `id`.
pub(crate) fn admin(id: i32) -> Credentials {
    Credentials::new(format!("oxadmin-context{id}"), ADMIN_PASSWORD)
}

pub(crate) fn admin_user(id: i32) -> User {
    User {
        name: Some(format!("oxadmin-context{id}")),
        password: Some(ADMIN_PASSWORD.into()),
        display_name: Some("OX Admin".into()),
        given_name: Some("OX".into()),
        sur_name: Some("Admin".into()),
        primary_email: Some(format!("oxadmin-context{id}@example.org")),
        email1: Some(format!("oxadmin-context{id}@example.org")),
        timezone: Some("Europe/Berlin".into()),
        ..User::default()
    }
}

/// Creates context `id` (name `context<id>`) and returns its admin's credentials.
pub(crate) async fn context(client: &OxClient, id: i32) -> Credentials {
    let ctx = Context {
        id: Some(id),
        name: Some(format!("context{id}")),
        max_quota: Some(1000),
        login_mappings: vec![format!("context{id}"), id.to_string()],
        ..Context::default()
    };
    client
        .create_context(&ctx, &admin_user(id))
        .await
        .expect("context created");
    admin(id)
}

/// A user with every field OX requires on create.
pub(crate) fn new_user(name: &str) -> User {
    let mail = format!("{name}@example.org");
    User {
        name: Some(name.into()),
        password: Some("dummy".into()),
        display_name: Some(format!("Display {name}")),
        given_name: Some("Given".into()),
        sur_name: Some(format!("Sur {name}")),
        primary_email: Some(mail.clone()),
        email1: Some(mail),
        ..User::default()
    }
}

/// POSTs a raw SOAP body; returns status and body.
pub(crate) async fn post(base_url: &str, path: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body read"))
}

/// The parsed fault of a SOAP answer: (faultcode, faultstring without exceptionId, detail name).
pub(crate) fn fault_of(body: &str) -> (String, String, Option<String>) {
    let root = xml::parse(body.as_bytes()).expect("answer is XML");
    let fault = &root.children[0].children[0];
    assert_eq!(fault.name, "Fault", "not a fault: {body}");
    let text = |n: &str| {
        fault
            .children
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.text.clone())
            .unwrap_or_default()
    };
    let faultstring = text("faultstring");
    let message = faultstring
        .split("; exceptionId ")
        .next()
        .unwrap_or_default()
        .to_string();
    let detail = fault
        .children
        .iter()
        .find(|c| c.name == "detail")
        .and_then(|d| d.children.first())
        .map(|e| e.name.clone());
    (text("faultcode"), message, detail)
}

/// Whether `actual` contains `expected`: same namespace and name; for leaves the same text
/// (faultstrings compared without `; exceptionId …`); for containers every non-nil child of
/// `expected` matched in order among `actual`'s children of that name (same count). Extra
/// children and nil elements (a real server adds many) are allowed.
pub(crate) fn contains(actual: &Element, expected: &Element, path: &str) -> Result<(), String> {
    let here = format!("{path}/{}", expected.name);
    if actual.ns != expected.ns || actual.name != expected.name || actual.uri() != expected.uri() {
        return Err(format!("{here}: found {{{}}}{}", actual.uri(), actual.name));
    }
    let expected_children: Vec<&Element> = expected.children.iter().filter(|c| !c.nil).collect();
    if expected_children.is_empty() {
        let (a, e) = if expected.name == "faultstring" {
            (strip_id(&actual.text), strip_id(&expected.text))
        } else {
            (
                actual.text.trim().to_string(),
                expected.text.trim().to_string(),
            )
        };
        return if a == e || !expected.children.is_empty() {
            Ok(())
        } else {
            Err(format!("{here}: {a:?} != {e:?}"))
        };
    }
    let mut names: Vec<(&str, _)> = Vec::new();
    for c in &expected_children {
        if !names.iter().any(|(n, ns)| *n == c.name && *ns == c.ns) {
            names.push((c.name.as_str(), c.ns));
        }
    }
    for (name, ns) in names {
        let exp: Vec<&&Element> = expected_children
            .iter()
            .filter(|c| c.name == name && c.ns == ns)
            .collect();
        let act: Vec<&Element> = actual
            .children
            .iter()
            .filter(|c| c.name == name && c.ns == ns && !c.nil)
            .collect();
        if exp.len() != act.len() {
            return Err(format!(
                "{here}/{name}: {} expected, {} found",
                exp.len(),
                act.len()
            ));
        }
        for (a, e) in act.iter().zip(exp) {
            contains(a, e, &here)?;
        }
    }
    Ok(())
}

fn strip_id(s: &str) -> String {
    s.split("; exceptionId ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The fault text of a call that must fail with an InvalidDataException.
pub(crate) fn invalid_data_text(
    result: Result<impl std::fmt::Debug, ox_connector::ox::soap::OxError>,
) -> String {
    let err = result.unwrap_err();
    assert_eq!(
        err.kind(),
        ox_connector::ox::soap::OxErrorKind::Fault(ox_connector::ox::soap::FaultKind::InvalidData),
        "{err}"
    );
    err.fault_text().unwrap().to_string()
}
