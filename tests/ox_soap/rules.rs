//! OX's business rules and their properties (`docs/ox-emulator.md`, "OX's rules"): at OX's
//! defaults each rule refuses with OX's text; the property switches it.

use ox_connector::emulator::EmulatorSettings;
use ox_connector::ox::soap::{Group, Resource, User};

use crate::support::{
    self, context, env, invalid_data_text, new_user, Env, MASTER, MASTER_PASSWORD,
};

async fn env_with(properties: &[(&str, &str)]) -> Env {
    let config = EmulatorSettings::new(MASTER, MASTER_PASSWORD)
        .with_properties(properties)
        .unwrap();
    support::env_with(config).await
}

fn rename(id: i32, name: &str) -> User {
    User {
        name: Some(name.into()),
        ..User::with_id(id)
    }
}

#[tokio::test]
async fn renames_are_refused_unless_username_changeable() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    let text = invalid_data_text(c.change_user(10, &rename(3, "john"), &a).await);
    assert_eq!(text, "Changing username is disabled!");
    let err = c.change_user(10, &rename(3, "john"), &a).await.unwrap_err();
    assert!(
        err.to_string().contains("USERNAME_CHANGEABLE=true"),
        "{err}"
    );
    // Sending the stored name is no rename.
    c.change_user(10, &rename(3, "jdoe"), &a).await.unwrap();
    env.ox
        .set_properties(&[("USERNAME_CHANGEABLE", "true")])
        .unwrap();
    c.change_user(10, &rename(3, "john"), &a).await.unwrap();
    let state = env.ox.state();
    assert_eq!(
        state.context(10).unwrap().user_by_id(3).unwrap().name,
        "john"
    );
    // Allowed renames are checked like new names.
    let text = invalid_data_text(c.change_user(10, &rename(3, "jö hn"), &a).await);
    assert_eq!(text, "Illegal chars: \"ö \"");
}

#[tokio::test]
async fn primary_mail_changes_follow_primary_mail_unchangeable() {
    let moved = User {
        primary_email: Some("new@example.org".into()),
        email1: Some("new@example.org".into()),
        aliases: vec!["new@example.org".into()],
        default_sender_address: Some("new@example.org".into()),
        ..User::with_id(3)
    };
    // OX's shipped AdminUser.properties allows it.
    let env = env().await;
    let a = context(&env.client, 10).await;
    env.client
        .create_user(10, &new_user("jdoe"), &a)
        .await
        .unwrap();
    env.client.change_user(10, &moved, &a).await.unwrap();

    let env = env_with(&[("PRIMARY_MAIL_UNCHANGEABLE", "true")]).await;
    let c = &env.client;
    let a = context(c, 10).await;
    c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    let text = invalid_data_text(c.change_user(10, &moved, &a).await);
    assert_eq!(text, "primary mail must not be changed");
    // The same address in other case is no change.
    let same = User {
        primary_email: Some("JDOE@example.org".into()),
        email1: Some("JDOE@example.org".into()),
        aliases: vec!["JDOE@example.org".into()],
        default_sender_address: Some("JDOE@example.org".into()),
        ..User::with_id(3)
    };
    c.change_user(10, &same, &a).await.unwrap();
}

#[tokio::test]
async fn changes_follow_oxs_language_and_mail_rules() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    let mail = |primary: Option<&str>, email1: Option<&str>, aliases: &[&str]| User {
        primary_email: primary.map(Into::into),
        email1: email1.map(Into::into),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ..User::with_id(3)
    };
    let cases = [
        (
            User {
                language: Some("de".into()),
                ..User::with_id(3)
            },
            "Language must contain an underscore, e.g. en_US.",
        ),
        (
            mail(Some("a@example.org"), Some("b@example.org"), &[]),
            "email1 not equal with primarymail!",
        ),
        (
            mail(
                Some("a@example.org"),
                Some("a@example.org"),
                &["b@example.org"],
            ),
            "primaryMail, Email1 and defaultSenderAddress must be present in set of aliases.",
        ),
        (
            mail(Some("jdoe@example.org"), None, &[]),
            "email1 not sent but required!",
        ),
    ];
    for (change, expected) in cases {
        assert_eq!(
            invalid_data_text(c.change_user(10, &change, &a).await),
            expected
        );
    }
    let taken = User {
        primary_email: Some("other@example.org".into()),
        ..new_user("other")
    };
    let taken = User {
        email1: taken.primary_email.clone(),
        ..taken
    };
    c.create_user(10, &taken, &a).await.unwrap();
    let text = invalid_data_text(
        c.change_user(
            10,
            &mail(Some("other@example.org"), Some("other@example.org"), &[]),
            &a,
        )
        .await,
    );
    assert_eq!(
        text,
        "Primary mail address \"other@example.org\" already exists in context 10"
    );
    // The context admin is exempt from the mail rules, not from the language rule.
    let admin_mail = mail(Some("x@example.org"), Some("y@example.org"), &[]);
    c.change_user(
        10,
        &User {
            id: Some(2),
            ..admin_mail
        },
        &a,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn display_names_are_unique_unless_switched_off() {
    let twin = User {
        display_name: Some("Display jdoe".into()),
        ..new_user("twin")
    };
    let env = env().await;
    let a = context(&env.client, 10).await;
    env.client
        .create_user(10, &new_user("jdoe"), &a)
        .await
        .unwrap();
    let err = env.client.create_user(10, &twin, &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("The displayname is already used"));
    assert!(err
        .to_string()
        .contains("com.openexchange.user.enforceUniqueDisplayName=false"));

    let env = env_with(&[("com.openexchange.user.enforceUniqueDisplayName", "false")]).await;
    let a = context(&env.client, 10).await;
    env.client
        .create_user(10, &new_user("jdoe"), &a)
        .await
        .unwrap();
    env.client.create_user(10, &twin, &a).await.unwrap();
}

#[tokio::test]
async fn names_are_checked_for_characters_unless_switched_off() {
    let group = Group {
        name: Some("Grüne".into()),
        displayname: Some("Grüne".into()),
        ..Group::default()
    };
    let resource = Resource {
        name: Some("raum ä".into()),
        displayname: Some("Raum".into()),
        email: Some("raum@example.org".into()),
        ..Resource::default()
    };
    // The name is checked; the mail address must be one OX accepts (ASCII before the `@`).
    let jo = User {
        primary_email: Some("jo@example.org".into()),
        email1: Some("jo@example.org".into()),
        ..new_user("jö")
    };
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    let err = c.create_user(10, &jo, &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("Illegal chars: \"ö\""));
    assert!(err
        .to_string()
        .contains("CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS"));
    let err = c.create_group(10, &group, &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("Illegal chars: \"ü\""));
    assert!(err
        .to_string()
        .contains("CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS"));
    let err = c.create_resource(10, &resource, &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("Illegal chars: \"ä\""));
    assert!(err
        .to_string()
        .contains("CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS"));
    // Spaces are fine in group names.
    let spaced = Group {
        name: Some("Domain Users".into()),
        displayname: Some("Domain Users".into()),
        ..Group::default()
    };
    c.create_group(10, &spaced, &a).await.unwrap();

    env.ox
        .set_properties(&[
            ("CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS", "false"),
            ("CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS", "false"),
            ("CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS", "false"),
        ])
        .unwrap();
    c.create_user(10, &jo, &a).await.unwrap();
    c.create_group(10, &group, &a).await.unwrap();
    c.create_resource(10, &resource, &a).await.unwrap();
}

#[tokio::test]
async fn properties_are_listed_changed_and_reset_over_http() {
    let env = env().await;
    let http = reqwest::Client::new();
    let url = format!("{}/emulator/properties", env.ox.base_url());
    let listed: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["USERNAME_CHANGEABLE"], false);
    assert_eq!(listed["PRIMARY_MAIL_UNCHANGEABLE"], false);
    assert_eq!(
        listed["com.openexchange.user.enforceUniqueDisplayName"],
        true
    );
    let set = http
        .post(&url)
        .json(&serde_json::json!({"USERNAME_CHANGEABLE": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    assert!(env.ox.options().username_changeable);
    let typo = http
        .post(&url)
        .json(&serde_json::json!({"USERNAME_CHANGABLE": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), 422);
    assert!(typo.text().await.unwrap().contains("USERNAME_CHANGEABLE"));
    env.ox.reset();
    assert!(
        !env.ox.options().username_changeable,
        "reset restores start-up values"
    );
}

#[tokio::test]
async fn requests_that_are_not_well_formed_xml_get_cxfs_fault() {
    let env = env().await;
    context(&env.client, 10).await;
    let with = |text: &str| {
        format!(
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:tns=\"http://soap.admin.openexchange.com\"><soapenv:Body><tns:exists>\
             <tns:ctx><id xmlns=\"http://dataobjects.soap.admin.openexchange.com/xsd\">10</id>\
             </tns:ctx><tns:user><name xmlns=\"http://dataobjects.soap.admin.openexchange.com/xsd\">\
             {text}</name></tns:user></tns:exists></soapenv:Body></soapenv:Envelope>"
        )
    };
    let http = reqwest::Client::new();
    let url = format!("{}/webservices/OXUserService", env.ox.base_url());
    for (body, expected) in [
        (
            with("j\u{1}doe"),
            "Error reading XMLStreamReader: Illegal character ((CTRL-CHAR, code 1))",
        ),
        (
            with("j&#1;doe"),
            "Error reading XMLStreamReader: Illegal character entity: expansion character (code 0x1)",
        ),
        (
            with("j\u{FFFE}doe"),
            "Error reading XMLStreamReader: Illegal character (code 0xfffe)",
        ),
    ] {
        let answer = http.post(&url).body(body).send().await.unwrap();
        assert_eq!(answer.status(), 500);
        let text = answer.text().await.unwrap();
        assert!(text.contains("<faultcode>soap:Client</faultcode>"), "{text}");
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}
