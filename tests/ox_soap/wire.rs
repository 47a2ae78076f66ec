//! The emulator on the wire: what it tolerates and rejects (`ox-soap.md` §2.1), the WSDL, the
//! answer shapes, the control endpoints, fault injection and the `ox-emulator` command.

use std::time::{Duration, Instant};

use ox_connector::emulator::{Failure, FaultRule, FaultSettings, StateSnapshot};
use ox_connector::ox::soap::{xml, Credentials, FaultKind, OxClient, OxErrorKind, User};

use crate::support::{self, admin, context, env, fault_of, post};

const NS: &str = r#"xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="http://soap.admin.openexchange.com" xmlns:do="http://dataobjects.soap.admin.openexchange.com/xsd" xmlns:cred="http://dataobjects.rmi.admin.openexchange.com/xsd""#;
const AUTH10: &str = "<tns:auth><cred:login>oxadmin-context10</cred:login><cred:password>ctx-admin-secret</cred:password></tns:auth>";

fn envelope(body: &str) -> String {
    format!("<soapenv:Envelope {NS}><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")
}

async fn with_context() -> support::Env {
    let env = env().await;
    context(&env.client, 10).await;
    env
}

async fn user_call(env: &support::Env, body: &str) -> (u16, String) {
    post(
        &env.ox.base_url(),
        "/webservices/OXUserService",
        &envelope(body),
    )
    .await
}

#[tokio::test]
async fn malformed_xml_is_a_client_fault() {
    let env = with_context().await;
    for bad in [
        "<soapenv:Envelope",
        "<a><b></a>",
        "not xml at all",
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><x:exists/></soapenv:Body></soapenv:Envelope>",
    ] {
        let (status, body) = post(&env.ox.base_url(), "/webservices/OXUserService", bad).await;
        assert_eq!(status, 500, "{bad}");
        let (code, message, detail) = fault_of(&body);
        assert_eq!(code, "soap:Client", "{bad}");
        assert!(message.starts_with("Error reading XMLStreamReader: "), "{message}");
        assert_eq!(detail, None);
    }
}

#[tokio::test]
async fn only_soap_1_1_envelopes_are_accepted() {
    let env = with_context().await;
    let soap12 =
        r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>"#;
    let (status, body) = post(&env.ox.base_url(), "/webservices/OXUserService", soap12).await;
    assert_eq!(status, 500);
    let (code, message, _) = fault_of(&body);
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "soap:VersionMismatch",
            "A SOAP 1.2 message is not valid when sent to a SOAP 1.1 only endpoint."
        )
    );
    let (_, body) = post(
        &env.ox.base_url(),
        "/webservices/OXUserService",
        "<Envelope><Body/></Envelope>",
    )
    .await;
    assert_eq!(fault_of(&body).0, "soap:VersionMismatch");
}

#[tokio::test]
async fn unknown_operations_and_wrappers_in_a_foreign_namespace_are_not_recognized() {
    let env = with_context().await;
    let (status, body) =
        user_call(&env, &format!("<tns:frobnicate>{AUTH10}</tns:frobnicate>")).await;
    assert_eq!(status, 500);
    assert_eq!(
        fault_of(&body),
        (
            "soap:Client".into(),
            "Message part {http://soap.admin.openexchange.com}frobnicate was not recognized.  (Does it exist in service WSDL?)".into(),
            None
        )
    );
    // copyUser lives in its own namespace: sent in tns it is unknown.
    let (_, body) = post(
        &env.ox.base_url(),
        "/webservices/OXUserCopyService",
        &envelope("<tns:copyUser/>"),
    )
    .await;
    assert!(fault_of(&body).1.starts_with(
        "Message part {http://soap.admin.openexchange.com}copyUser was not recognized"
    ));
    // An operation of another service.
    let (_, body) = user_call(&env, "<tns:listGroupsForUser/>").await;
    assert!(fault_of(&body)
        .1
        .contains("listGroupsForUser was not recognized"));
    // An operation of the WSDL that the emulator does not implement.
    let (_, body) = user_call(&env, "<tns:moveUserFilestore/>").await;
    let (code, message, detail) = fault_of(&body);
    assert_eq!(
        (code.as_str(), detail.as_deref()),
        ("soap:Server", Some("RemoteException"))
    );
    assert_eq!(
        message,
        "The OX emulator does not implement OXUserService.moveUserFilestore"
    );
    let (status, _) = post(
        &env.ox.base_url(),
        "/webservices/OXNoSuchService",
        &envelope(""),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn elements_in_a_wrong_namespace_or_unknown_to_their_type_are_rejected() {
    let env = with_context().await;
    let cases = [
        // Credentials fields in tns instead of the rmi dataobjects namespace.
        (
            "<tns:exists><tns:ctx><do:id>10</do:id></tns:ctx><tns:user><do:name>x</do:name></tns:user><tns:auth><tns:login>oxadmin-context10</tns:login><tns:password>ctx-admin-secret</tns:password></tns:auth></tns:exists>".to_string(),
            "Unexpected element \"login\" (URI=http://soap.admin.openexchange.com). Please remove that element from SOAP request.",
        ),
        // auth nested inside ctx.
        (
            format!("<tns:exists><tns:ctx><do:id>10</do:id>{AUTH10}</tns:ctx><tns:user><do:name>x</do:name></tns:user></tns:exists>"),
            "Unexpected element \"auth\" (URI=http://soap.admin.openexchange.com). Please remove that element from SOAP request.",
        ),
        // A field the type does not have.
        (
            format!("<tns:exists><tns:ctx><do:id>10</do:id></tns:ctx><tns:user><do:name>x</do:name><do:shoeSize>42</do:shoeSize></tns:user>{AUTH10}</tns:exists>"),
            "Unexpected element \"shoeSize\" (URI=http://dataobjects.soap.admin.openexchange.com/xsd). Please remove that element from SOAP request.",
        ),
        // An unqualified unknown element: no URI part.
        (
            format!("<tns:exists><tns:ctx><do:id>10</do:id></tns:ctx><tns:user><shoeSize>42</shoeSize></tns:user>{AUTH10}</tns:exists>"),
            "Unexpected element \"shoeSize\". Please remove that element from SOAP request.",
        ),
        // A wrapper child the operation does not have.
        (
            format!("<tns:exists><tns:ctx><do:id>10</do:id></tns:ctx><tns:usrdata><do:name>x</do:name></tns:usrdata>{AUTH10}</tns:exists>"),
            "Unexpected element \"usrdata\" (URI=http://soap.admin.openexchange.com). Please remove that element from SOAP request.",
        ),
        // A data-object field in the wrapper namespace.
        (
            format!("<tns:exists><tns:ctx><tns:id>10</tns:id></tns:ctx><tns:user><do:name>x</do:name></tns:user>{AUTH10}</tns:exists>"),
            "Unexpected element \"id\" (URI=http://soap.admin.openexchange.com). Please remove that element from SOAP request.",
        ),
        // A value that is not an xs:int.
        (
            format!("<tns:exists><tns:ctx><do:id>ten</do:id></tns:ctx><tns:user><do:name>x</do:name></tns:user>{AUTH10}</tns:exists>"),
            "Unmarshalling Error: For input string: \"ten\"",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = user_call(&env, &body).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(
            fault_of(&answer),
            ("soap:Client".into(), message.into(), None),
            "{body}"
        );
    }
    assert_eq!(env.ox.state().context(10).unwrap().users.len(), 1);
}

#[tokio::test]
async fn missing_credentials_or_credentials_in_a_header_fail_authentication() {
    let env = with_context().await;
    let exists = "<tns:exists><tns:ctx><do:id>10</do:id></tns:ctx><tns:user><do:name>x</do:name></tns:user></tns:exists>";
    let (status, body) = user_call(&env, exists).await;
    assert_eq!(status, 500);
    assert_eq!(
        fault_of(&body),
        (
            "soap:Server".into(),
            "Authentication failed".into(),
            Some("InvalidCredentialsException".into())
        )
    );
    let with_header = format!(
        "<soapenv:Envelope {NS}><soapenv:Header>{AUTH10}</soapenv:Header><soapenv:Body>{exists}</soapenv:Body></soapenv:Envelope>"
    );
    let (_, body) = post(
        &env.ox.base_url(),
        "/webservices/OXUserService",
        &with_header,
    )
    .await;
    assert_eq!(fault_of(&body).1, "Authentication failed");
    let nil_auth = exists.replace("</tns:exists>", "<tns:auth xsi:nil=\"true\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"/></tns:exists>");
    let (_, body) = user_call(&env, &nil_auth).await;
    assert_eq!(fault_of(&body).1, "Authentication failed");
    let no_ctx =
        format!("<tns:exists><tns:user><do:name>x</do:name></tns:user>{AUTH10}</tns:exists>");
    let (_, body) = user_call(&env, &no_ctx).await;
    assert_eq!(fault_of(&body).1, "Authentication failed");
}

#[tokio::test]
async fn what_ox_tolerates_is_accepted() {
    let env = with_context().await;
    // A generated client: a prefix per element, xsi:type everywhere, SOAPAction, headers.
    let generated = r#"<?xml version='1.0' encoding='utf-8'?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">
  <soap-env:Header><wsse:Security xmlns:wsse="urn:x"/></soap-env:Header>
  <soap-env:Body>
    <ns0:create xmlns:ns0="http://soap.admin.openexchange.com">
      <ns0:ctx xmlns:ns1="http://dataobjects.soap.admin.openexchange.com/xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ns1:Context"><ns1:id>10</ns1:id></ns0:ctx>
      <ns0:usrdata xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns2="http://dataobjects.soap.admin.openexchange.com/xsd" xsi:type="ns2:User">
        <ns2:sur_name xmlns:xs="http://www.w3.org/2001/XMLSchema" xsi:type="xs:string">Doe</ns2:sur_name>
        <ns2:name>jdoe</ns2:name>
        <ns2:anniversary>not-a-date</ns2:anniversary>
        <ns2:birthday>1990-02-03Z</ns2:birthday>
        <ns2:title xsi:nil="true"/>
        <ns2:display_name>John &amp; Doe</ns2:display_name>
        <ns2:given_name><![CDATA[Jo<h>n]]></ns2:given_name>
        <password>pw</password>
        <ns2:primaryEmail>jdoe@example.org</ns2:primaryEmail>
        <email1>jdoe@example.org</email1>
        <ns2:imapPort>143</ns2:imapPort>
        <ns2:mailenabled>1</ns2:mailenabled>
      </ns0:usrdata>
      <auth><login xmlns="">oxadmin-context10</login><password>ctx-admin-secret</password></auth>
    </ns0:create>
  </soap-env:Body>
</soap-env:Envelope>"#;
    let response = reqwest::Client::new()
        .post(format!("{}/webservices/OXUserService", env.ox.base_url()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"whatever\"")
        .body(generated)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let snap = env.ox.state();
    let user = &snap.context(10).unwrap().user("jdoe").unwrap().data;
    assert_eq!(user.display_name.as_deref(), Some("John & Doe"));
    assert_eq!(user.given_name.as_deref(), Some("Jo<h>n"));
    assert_eq!(user.anniversary, None, "an unparseable date is dropped");
    assert_eq!(
        user.birthday.map(|d| d.to_string()).as_deref(),
        Some("1990-02-03")
    );
    assert_eq!((user.title.clone(), user.mailenabled), (None, Some(true)));
    let root = xml::parse(body.as_bytes()).unwrap();
    let wrapper = &root.children[0].children[0];
    assert_eq!(
        (wrapper.name.as_str(), wrapper.uri()),
        ("createResponse", "http://soap.admin.openexchange.com")
    );
}

#[tokio::test]
async fn answers_have_the_shape_of_ox_answers() {
    let env = with_context().await;
    let get = format!("<tns:getData><tns:ctx><do:id>10</do:id></tns:ctx><tns:user><do:id>2</do:id></tns:user>{AUTH10}</tns:getData>");
    let (status, body) = user_call(&env, &get).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"<getDataResponse xmlns="http://soap.admin.openexchange.com" xmlns:ns2="http://dataobjects.soap.admin.openexchange.com/xsd""#), "{body}");
    assert!(
        body.contains(r#"<ns2:anniversary xsi:nil="true"/>"#),
        "null fields are nil elements: {body}"
    );
    assert!(body.contains(r#"<ns2:password xsi:nil="true"/>"#));
    assert!(
        !body.contains("<ns2:smtpPort"),
        "non-nillable fields are left out when unset"
    );
    let change = format!("<tns:change><tns:ctx><do:id>10</do:id></tns:ctx><tns:usrdata><do:id>2</do:id></tns:usrdata>{AUTH10}</tns:change>");
    let (status, body) = user_call(&env, &change).await;
    assert_eq!((status, body.as_str()), (200, ox_connector_void()));

    let mut config =
        ox_connector::emulator::EmulatorSettings::new(support::MASTER, support::MASTER_PASSWORD);
    config.lean = true;
    let lean = support::env_with(config).await;
    context(&lean.client, 10).await;
    let (_, body) = user_call(&lean, &get).await;
    assert!(!body.contains("xsi:nil"), "{body}");
}

fn ox_connector_void() -> &'static str {
    r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>"#
}

#[tokio::test]
async fn every_service_serves_its_wsdl_with_its_own_address() {
    let env = env().await;
    let http = reqwest::Client::new();
    for (service, op) in [
        ("OXContextService", "createModuleAccessByName"),
        ("OXUserService", "changeByModuleAccess"),
        ("OXGroupService", "listGroupsForUser"),
        ("OXResourceService", "getMultipleData"),
        ("OXUserCopyService", "copyUser"),
        ("OXSecondaryAccountService", "create"),
    ] {
        for path in ["webservices", "servlet/axis2/services"] {
            let url = format!("{}/{path}/{service}?wsdl", env.ox.base_url());
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{url}");
            let wsdl = response.text().await.unwrap();
            let root = xml::parse(wsdl.as_bytes()).expect("the WSDL is XML");
            assert_eq!(root.name, "definitions");
            let location = format!("location=\"{}/webservices/{service}\"", env.ox.base_url());
            assert!(wsdl.contains(&location), "{service}: {location}");
            assert!(
                wsdl.contains(&format!("<wsdl:operation name=\"{op}\">")),
                "{service}"
            );
        }
    }
    let response = http
        .get(format!(
            "{}/webservices/OXUserService?WSDL",
            env.ox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("OXUserServiceHttpsEndpoint"));
}

#[tokio::test]
async fn the_state_endpoint_serves_the_snapshot_and_reset_empties_it() {
    let env = with_context().await;
    let http = reqwest::Client::new();
    let base = env.ox.base_url();
    let text = http
        .get(format!("{base}/emulator/state"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let snap: StateSnapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(snap, env.ox.state());
    assert_eq!(snap.context(10).unwrap().name, "context10");
    let raw = http
        .get(format!("{base}/emulator/state"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains("\"primaryEmail\":\"oxadmin-context10@example.org\""),
        "{raw}"
    );
    assert!(
        !raw.contains(support::ADMIN_PASSWORD),
        "no passwords in the dump"
    );
    let text = http
        .get(format!("{base}/emulator/calls"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(calls["OXContextService.create"]["calls"], 1);
    let status = http
        .post(format!("{base}/emulator/reset"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    assert!(env.ox.state().contexts.is_empty());
    assert!(env.ox.calls().is_empty());
}

#[tokio::test]
async fn the_next_n_calls_of_an_operation_fail_and_then_succeed() {
    let env = with_context().await;
    let http = reqwest::Client::new();
    let rules = r#"{"rules":[{"service":"OXUserService","operation":"exists","count":2,
        "fail":{"type":"fault","exception":"DatabaseUpdateException","message":"Database is locked or is now beeing updated, please try again later"}}]}"#;
    let status = http
        .post(format!("{}/emulator/faults", env.ox.base_url()))
        .header("content-type", "application/json")
        .body(rules)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let probe = User::with_name("oxadmin-context10");
    for _ in 0..2 {
        let err = env
            .client
            .user_exists(10, &probe, &admin(10))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), OxErrorKind::Fault(FaultKind::DatabaseUpdate));
        assert!(err.is_retryable());
        assert_eq!(
            err.fault_text(),
            Some("Database is locked or is now beeing updated, please try again later")
        );
    }
    assert!(env
        .client
        .user_exists(10, &probe, &admin(10))
        .await
        .unwrap());
    assert_eq!(env.ox.faults().rules[0].count, Some(0));
    let stats = env.ox.calls()["OXUserService.exists"];
    assert_eq!((stats.calls, stats.faults), (3, 2));
    // Other operations were never affected.
    assert!(env.client.get_user(10, &probe, &admin(10)).await.is_ok());
}

#[tokio::test]
async fn a_fraction_of_calls_fails_with_a_storage_exception() {
    let env = with_context().await;
    env.ox.set_faults(FaultSettings {
        rules: vec![FaultRule {
            fraction: Some(1.0),
            ..FaultRule::default()
        }],
        ..FaultSettings::default()
    });
    let err = env.client.context_exists(10).await.unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::Fault(FaultKind::Storage));
    assert!(err.is_retryable());
    env.ox.set_faults(FaultSettings {
        rules: vec![FaultRule {
            fraction: Some(0.0),
            ..FaultRule::default()
        }],
        ..FaultSettings::default()
    });
    assert!(env.client.context_exists(10).await.unwrap());
}

#[tokio::test]
async fn ox_can_go_down_and_come_back() {
    let env = with_context().await;
    env.ox.set_faults(FaultSettings {
        down: Some(Failure::Http { status: 503 }),
        ..FaultSettings::default()
    });
    let err = env.client.context_exists(10).await.unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::Http(503));
    assert!(err.is_retryable());
    env.ox.set_faults(FaultSettings {
        down: Some(Failure::Reset),
        ..FaultSettings::default()
    });
    let err = env.client.context_exists(10).await.unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::Transport, "{err}");
    assert!(err.is_retryable());
    env.ox.set_faults(FaultSettings::default());
    assert!(env.client.context_exists(10).await.unwrap());
    let stopped = env.ox.base_url();
    env.ox.stop().await;
    let client = OxClient::builder(stopped).build().unwrap();
    let err = client.context_exists(10).await.unwrap_err();
    assert!(
        matches!(err.kind(), OxErrorKind::Connect | OxErrorKind::Transport),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = OxClient::builder(format!("http://{closed}"))
        .build()
        .unwrap();
    let err = client.context_exists(10).await.unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::Connect, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn latency_beyond_the_client_timeout_is_a_timeout() {
    let env = with_context().await;
    env.ox.set_faults(FaultSettings {
        latency_ms: 2_000,
        ..FaultSettings::default()
    });
    let client = OxClient::builder(env.ox.base_url())
        .timeout(Duration::from_millis(100))
        .master(Credentials::new(support::MASTER, support::MASTER_PASSWORD))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.context_exists(10).await.unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::Timeout);
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn a_non_soap_answer_is_its_own_error_kind() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "<html><body>login</body></html>" });
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = OxClient::builder(format!("http://{addr}")).build().unwrap();
    let err = client.context_exists(10).await.unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::NotSoap);
    assert!(!err.is_retryable());
    server.abort();
}

#[tokio::test]
async fn the_emulator_answers_thousands_of_keep_alive_calls_without_nagle_stalls() {
    let env = with_context().await;
    let probe = User::with_name("oxadmin-context10");
    let started = Instant::now();
    for _ in 0..500 {
        assert!(env
            .client
            .user_exists(10, &probe, &admin(10))
            .await
            .unwrap());
    }
    // 40 ms Nagle/delayed-ACK stalls would take 20 s; unoptimised builds do this well under 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = env.client.clone();
            let probe = probe.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    client.user_exists(10, &probe, &admin(10)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(env.ox.calls()["OXUserService.exists"].calls, 900);
}

#[test]
fn ox_emulator_help_explains_every_switch() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .args(["ox-emulator", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--master-admin",
        "--master-password",
        "--latency-ms",
        "--latency-jitter-ms",
        "--fail-fraction",
        "--lean",
        "--ox-property",
        "--allow-duplicate-display-names",
        "--lowercase-names",
        "--master-override",
        "--allow-any-user-name",
        "/emulator/state",
        "/emulator/faults",
        "?wsdl",
    ] {
        assert!(help.contains(flag), "{flag} missing in:\n{help}");
    }
}

#[tokio::test]
async fn the_ox_emulator_command_serves_until_stopped() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .args([
            "ox-emulator",
            "--listen",
            "127.0.0.1:0",
            "--master-admin",
            "oxadminmaster",
            "--master-password",
            "master-secret",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the emulator reports its address")
        .unwrap()
        .unwrap();
    let url = line.rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let client = OxClient::builder(url)
        .master(Credentials::new("oxadminmaster", "master-secret"))
        .build()
        .unwrap();
    context(&client, 10).await;
    assert!(client.context_exists(10).await.unwrap());
    child.kill().await.unwrap();
}
