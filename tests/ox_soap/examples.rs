//! The example envelopes of `shared/ox-soap/examples` against the emulator (documented answer
//! for each request) and the client (each answer and fault parses into the documented values).

use std::path::PathBuf;

use ox_connector::ox::soap::xml;
use ox_connector::ox::soap::{
    AccountDataOnCreate, Credentials, FaultKind, Group, OxClient, OxErrorKind, Resource, User,
};

use crate::support::{self, contains, env, Env};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ox-soap/examples")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(examples_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Users 3.. in context 10: `jdoe` first, then `user4`, `user5`, …
async fn users(env: &Env, count: usize) {
    let admin = support::admin(10);
    for i in 0..count {
        let user = if i == 0 {
            User {
                aliases: vec!["jdoe@example.org".into()],
                display_name: Some("John Doe".into()),
                given_name: Some("John".into()),
                sur_name: Some("Doe".into()),
                ..support::new_user("jdoe")
            }
        } else {
            support::new_user(&format!("user{}", i + 3))
        };
        env.client.create_user(10, &user, &admin).await.unwrap();
    }
}

/// Builds the state a request example presupposes (the ids of the examples follow from it).
async fn setup(env: &Env, request: &str) {
    let c = &env.client;
    let admin = support::admin(10);
    if request == "OXContextService__create.req.xml" {
        return;
    }
    support::context(c, 10).await;
    match request {
        "OXGroupService__create.req.xml" => users(env, 2).await,
        "OXGroupService__list.req.xml" | "OXGroupService__listGroupsForUser.req.xml" => {
            users(env, 2).await;
            // The example's default group lists only users 2 and 3.
            let default_group = Group {
                members: vec![2, 3],
                ..Group::with_id(1)
            };
            c.change_group(10, &default_group, &admin).await.unwrap();
            staff(c, &admin).await;
        }
        "OXGroupService__addMember.req.xml"
        | "OXGroupService__change.req.xml"
        | "OXGroupService__delete.req.xml"
        | "OXGroupService__getData.req.xml" => {
            users(env, 2).await;
            staff(c, &admin).await;
            for name in ["user6", "user7", "user8"] {
                c.create_user(10, &support::new_user(name), &admin)
                    .await
                    .unwrap();
            }
        }
        "OXResourceService__create.req.xml" | "OXResourceService__delete.req.xml" => {
            let room100 = Resource {
                name: Some("room100".into()),
                displayname: Some("Room 1.00".into()),
                email: Some("room100@example.org".into()),
                ..Resource::default()
            };
            c.create_resource(10, &room100, &admin).await.unwrap();
            if request == "OXResourceService__delete.req.xml" {
                let room101 = Resource {
                    name: Some("room101".into()),
                    displayname: Some("Room 1.01".into()),
                    email: Some("room101@example.org".into()),
                    ..Resource::default()
                };
                c.create_resource(10, &room101, &admin).await.unwrap();
            }
        }
        "OXSecondaryAccountService__create.req.xml" => users(env, 3).await,
        "OXSecondaryAccountService__delete.req.xml" | "OXSecondaryAccountService__list.req.xml" => {
            users(env, 2).await;
            let user5 = User {
                imap_server: Some("imap.example.org".into()),
                imap_port: Some(143),
                imap_schema: Some("imap://".into()),
                ..support::new_user("user5")
            };
            c.create_user(10, &user5, &admin).await.unwrap();
            // Two accounts of other users first: the example's account gets id 3.
            for (user, address) in [(3, "a@example.org"), (4, "b@example.org")] {
                let other = AccountDataOnCreate {
                    name: Some(address.into()),
                    primary_address: Some(address.into()),
                    ..AccountDataOnCreate::default()
                };
                c.create_secondary_account(10, &other, &[user], &[], &admin)
                    .await
                    .unwrap();
            }
            let sales = AccountDataOnCreate {
                login: Some("5f0c2a9e-3d1b-103e-8b7a-1d2c3b4a5f60jdoe".into()),
                name: Some("sales".into()),
                primary_address: Some("sales@example.org".into()),
                personal: Some("Sales Team".into()),
                mail_endpoint_source: Some("primary".into()),
                ..AccountDataOnCreate::default()
            };
            c.create_secondary_account(10, &sales, &[5], &[], &admin)
                .await
                .unwrap();
            if request == "OXSecondaryAccountService__list.req.xml" {
                // The example lists only the account of user 5.
                for (user, address) in [(3, "a@example.org"), (4, "b@example.org")] {
                    c.delete_secondary_account(10, address, &[user], &[], &admin)
                        .await
                        .unwrap();
                }
            }
        }
        "OXUserCopyService__copyUser.req.xml" => {
            users(env, 3).await;
            support::context(c, 20).await;
            for name in ["a", "b", "c", "d"] {
                let user = support::new_user(&format!("{name}20"));
                c.create_user(20, &user, &support::admin(20)).await.unwrap();
            }
        }
        "OXUserService__getData.req.xml" => {
            users(env, 1).await;
            let attrs = User {
                user_attributes: Some(ox_connector::ox::soap::StringMapMap(
                    [(
                        "config".to_string(),
                        [(
                            "com.openexchange.mail.specialuse.check".to_string(),
                            "true".to_string(),
                        )]
                        .into(),
                    )]
                    .into(),
                )),
                ..User::with_id(3)
            };
            c.change_user(10, &attrs, &admin).await.unwrap();
        }
        "OXUserService__change.req.xml"
        | "OXUserService__changeByModuleAccess.req.xml"
        | "OXUserService__delete.req.xml"
        | "OXUserService__exists.req.xml"
        | "OXUserService__listAll.req.xml" => users(env, 1).await,
        _ => {}
    }
}

async fn staff(c: &OxClient, admin: &Credentials) {
    let staff = Group {
        name: Some("staff".into()),
        displayname: Some("staff".into()),
        members: vec![3, 4],
        ..Group::default()
    };
    c.create_group(10, &staff, admin).await.unwrap();
}

const ENVELOPE: &str =
    r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>"#;

/// The documented answer of a request example.
fn documented_answer(request: &str) -> String {
    let response = request.replace(".req.xml", ".resp.xml");
    if examples_dir().join(&response).exists() {
        return example(&response);
    }
    let ns = r#"xmlns="http://soap.admin.openexchange.com" xmlns:ns2="http://dataobjects.soap.admin.openexchange.com/xsd""#;
    match request {
        // ox-soap.md §11: "answer = Group under getDataResponse".
        "OXGroupService__getData.req.xml" => format!(
            "{ENVELOPE}<getDataResponse {ns}><return><ns2:displayname>staff</ns2:displayname><ns2:id>5</ns2:id><ns2:members>3</ns2:members><ns2:members>4</ns2:members><ns2:name>staff</ns2:name></return></getDataResponse></soap:Body></soap:Envelope>"
        ),
        // "answer = Group returns": user 3 is in `users` and `staff`.
        "OXGroupService__listGroupsForUser.req.xml" => format!(
            "{ENVELOPE}<listGroupsForUserResponse {ns}><return><ns2:displayname>All users</ns2:displayname><ns2:id>1</ns2:id><ns2:members>2</ns2:members><ns2:members>3</ns2:members><ns2:name>users</ns2:name></return><return><ns2:id>5</ns2:id><ns2:name>staff</ns2:name></return></listGroupsForUserResponse></soap:Body></soap:Envelope>"
        ),
        _ => example("VOID.resp.xml"),
    }
}

fn service_of(file: &str) -> &str {
    file.split("__").next().unwrap_or_default()
}

#[tokio::test]
async fn every_request_example_gets_its_documented_answer() {
    let mut requests: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".req.xml"))
        .collect();
    requests.sort();
    assert_eq!(requests.len(), 23, "all request examples are covered");
    for request in requests {
        let env = env().await;
        setup(&env, &request).await;
        let path = format!("/webservices/{}", service_of(&request));
        let (status, body) = support::post(&env.ox.base_url(), &path, &example(&request)).await;
        assert_eq!(status, 200, "{request}: {body}");
        let expected = xml::parse(documented_answer(&request).as_bytes()).unwrap();
        let actual = xml::parse(body.as_bytes()).unwrap();
        if let Err(diff) = contains(&actual, &expected, "") {
            panic!("{request}: {diff}\n{body}");
        }
        let body_element = &actual.children[0];
        let expected_body = &expected.children[0];
        assert_eq!(
            body_element.children.len(),
            expected_body.children.len(),
            "{request}: void answers have an empty Body, others one <op>Response"
        );
    }
}

#[tokio::test]
async fn the_emulator_produces_every_fault_example() {
    let cases: [(&str, &str, String); 7] = [
        (
            "OXContextService__FAULT_NoSuchContextException.xml",
            "OXContextService",
            example("OXContextService__delete.req.xml"),
        ),
        (
            "OXUserService__FAULT_InvalidCredentialsException.xml",
            "OXUserService",
            example("OXUserService__exists.req.xml").replace("ctx-admin-secret", "wrong"),
        ),
        (
            "OXUserService__FAULT_InvalidDataException.xml",
            "OXUserService",
            example("OXUserService__create.req.xml"),
        ),
        (
            "OXUserService__FAULT_NoSuchUserException.xml",
            "OXUserService",
            example("OXUserService__delete.req.xml")
                .replace("<do:id>3</do:id>", "<do:id>99</do:id>"),
        ),
        (
            "OXSecondaryAccountService__FAULT_InvalidDataException.xml",
            "OXSecondaryAccountService",
            example("OXSecondaryAccountService__delete.req.xml")
                .replace("<tns:groups>", "<!--")
                .replace("</tns:groups>", "-->"),
        ),
        (
            "OXSecondaryAccountService__FAULT_NoSuchUserException.xml",
            "OXSecondaryAccountService",
            example("OXSecondaryAccountService__create.req.xml")
                .replace("<do:id>5</do:id>", "<do:id>99</do:id>"),
        ),
        (
            "OXUserCopyService__FAULT_UserExistsException.xml",
            "OXUserCopyService",
            example("OXUserCopyService__copyUser.req.xml")
                .replace("<do:id>5</do:id>", "<do:id>3</do:id>"),
        ),
    ];
    for (fault_file, service, request) in cases {
        let env = env().await;
        if !fault_file.starts_with("OXContextService") {
            support::context(&env.client, 10).await;
            users(&env, 1).await;
        }
        if fault_file.starts_with("OXUserCopyService") {
            support::context(&env.client, 20).await;
            env.client
                .create_user(20, &support::new_user("jdoe"), &support::admin(20))
                .await
                .unwrap();
        }
        let (status, body) = support::post(
            &env.ox.base_url(),
            &format!("/webservices/{service}"),
            &request,
        )
        .await;
        assert_eq!(status, 500, "{fault_file}: {body}");
        let expected = xml::parse(example(fault_file).as_bytes()).unwrap();
        let actual = xml::parse(body.as_bytes()).unwrap();
        if let Err(diff) = contains(&actual, &expected, "") {
            panic!("{fault_file}: {diff}\n{body}");
        }
        let (_, _, detail) = support::fault_of(&body);
        assert!(
            detail.is_some(),
            "{fault_file}: OX faults carry a detail element"
        );
        assert!(body.contains("; exceptionId "), "{fault_file}: {body}");
    }
}

/// A server that answers every request with one fixed body.
async fn replay(status: u16, body: String) -> (OxClient, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "text/xml;charset=UTF-8")],
                body,
            )
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let client = OxClient::builder(format!("http://{addr}"))
        .master(Credentials::new(support::MASTER, support::MASTER_PASSWORD))
        .build()
        .unwrap();
    (client, task)
}

#[tokio::test]
async fn every_answer_example_parses_in_the_client() {
    let admin = support::admin(10);
    let ok = |name: &str| (200, example(name));

    let (c, t) = replay(200, example("OXContextService__create.resp.xml")).await;
    let ctx = c
        .create_context(&Default::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        (ctx.id, ctx.enabled, ctx.filestore_id),
        (Some(10), Some(true), Some(3))
    );
    assert_eq!(ctx.login_mappings, ["context10", "10"]);
    assert_eq!((ctx.max_quota, ctx.used_quota), (Some(1000), None));
    t.abort();

    let (c, t) = replay(
        ok("OXContextService__exists.resp.xml").0,
        ok("OXContextService__exists.resp.xml").1,
    )
    .await;
    assert!(c.context_exists(10).await.unwrap());
    t.abort();

    let (c, t) = replay(200, example("OXGroupService__create.resp.xml")).await;
    let group = c.create_group(10, &Group::default(), &admin).await.unwrap();
    assert_eq!((group.id, group.members.clone()), (Some(5), vec![3, 4]));
    t.abort();

    let (c, t) = replay(200, example("OXGroupService__list.resp.xml")).await;
    let groups = c.list_groups(10, "*", &admin).await.unwrap();
    let names: Vec<_> = groups.iter().map(|g| g.name.clone().unwrap()).collect();
    assert_eq!(names, ["users", "staff"]);
    assert_eq!(groups[0].members, [2, 3]);
    t.abort();

    let (c, t) = replay(200, example("OXResourceService__create.resp.xml")).await;
    let res = c
        .create_resource(10, &Resource::default(), &admin)
        .await
        .unwrap();
    assert_eq!(
        (res.id, res.description.as_deref()),
        (Some(2), Some("Beamer, 12 seats"))
    );
    t.abort();

    let (c, t) = replay(200, example("OXSecondaryAccountService__delete.resp.xml")).await;
    assert!(c
        .delete_secondary_account(10, "sales@example.org", &[], &[0], &admin)
        .await
        .unwrap());
    t.abort();

    let (c, t) = replay(200, example("OXSecondaryAccountService__list.resp.xml")).await;
    let accounts = c
        .list_secondary_accounts(10, &[], &[], &admin)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1);
    let a = &accounts[0];
    assert_eq!(
        (a.context_id, a.user_id, a.id),
        (Some(10), Some(5), Some(3))
    );
    assert_eq!(
        (a.mail_port, a.mail_secure, a.password.clone()),
        (Some(143), Some(false), None)
    );
    t.abort();

    let (c, t) = replay(200, example("OXUserCopyService__copyUser.resp.xml")).await;
    assert_eq!(
        c.copy_user(&User::with_id(5), 10, 20).await.unwrap().id,
        Some(7)
    );
    t.abort();

    let (c, t) = replay(200, example("OXUserService__create.resp.xml")).await;
    let user = c.create_user(10, &User::default(), &admin).await.unwrap();
    assert_eq!(user.id, Some(3));
    assert_eq!(user.aliases, ["jdoe@example.org", "john.doe@example.org"]);
    assert_eq!(
        (user.contextadmin, user.imap_port, user.smtp_port),
        (Some(false), Some(143), Some(587))
    );
    assert_eq!((user.anniversary, user.default_group.clone()), (None, None));
    t.abort();

    let (c, t) = replay(200, example("OXUserService__exists.resp.xml")).await;
    assert!(c
        .user_exists(10, &User::with_name("jdoe"), &admin)
        .await
        .unwrap());
    t.abort();

    let (c, t) = replay(200, example("OXUserService__getData.resp.xml")).await;
    let user = c
        .get_user(10, &User::with_name("jdoe"), &admin)
        .await
        .unwrap();
    assert_eq!(user.password, None);
    assert_eq!(
        user.default_group
            .as_ref()
            .and_then(|g| g.name.clone())
            .as_deref(),
        Some("users")
    );
    let attrs = user.user_attributes.unwrap();
    assert_eq!(
        attrs.0["config"]["com.openexchange.mail.specialuse.check"],
        "true"
    );
    t.abort();

    let (c, t) = replay(200, example("OXUserService__listAll.resp.xml")).await;
    let ids: Vec<_> = c
        .list_all_users(10, &admin)
        .await
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, [Some(2), Some(3)]);
    t.abort();

    let (c, t) = replay(200, example("VOID.resp.xml")).await;
    c.change_user(10, &User::with_id(3), &admin).await.unwrap();
    t.abort();

    let faults = [
        (
            "OXContextService__FAULT_NoSuchContextException.xml",
            FaultKind::NoSuchContext,
            "Context 10 does not exist",
            true,
        ),
        (
            "OXUserService__FAULT_InvalidCredentialsException.xml",
            FaultKind::InvalidCredentials,
            "Authentication failed",
            false,
        ),
        (
            "OXUserService__FAULT_InvalidDataException.xml",
            FaultKind::InvalidData,
            "User jdoe already exists in this context",
            false,
        ),
        (
            "OXUserService__FAULT_NoSuchUserException.xml",
            FaultKind::NoSuchUser,
            "No such user 99 in context 10",
            true,
        ),
        (
            "OXSecondaryAccountService__FAULT_InvalidDataException.xml",
            FaultKind::InvalidData,
            "Missing users/groups in account data",
            false,
        ),
        (
            "OXSecondaryAccountService__FAULT_NoSuchUserException.xml",
            FaultKind::NoSuchUser,
            "No such user 99 in context 10",
            true,
        ),
        (
            "OXUserCopyService__FAULT_UserExistsException.xml",
            FaultKind::UserExists,
            "User jdoe already exists in context 20",
            false,
        ),
    ];
    for (file, kind, text, not_found) in faults {
        let (c, t) = replay(500, example(file)).await;
        let err = c
            .get_user(10, &User::with_id(99), &admin)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), OxErrorKind::Fault(kind), "{file}");
        assert_eq!(err.fault_text(), Some(text), "{file}");
        assert_eq!(err.is_not_found(), not_found, "{file}");
        assert!(!err.is_retryable(), "{file}");
        assert!(err.fault().unwrap().exception_id.is_some(), "{file}");
        t.abort();
    }
}

#[test]
fn the_copied_examples_equal_the_shared_ones() {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/ox-soap/examples");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return; // shared/ is not next to this checkout: nothing to compare
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            std::fs::read(entry.path()).unwrap(),
            std::fs::read(examples_dir().join(&name)).unwrap_or_default(),
            "tests/fixtures/ox-soap/examples/{name} differs from shared/"
        );
    }
}
