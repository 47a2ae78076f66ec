//! The connector's answer to OX's rules (`docs/operations.md`, "OX refuses a change"): a
//! refusal that comes from OX's configuration blocks with a reason naming the OX property and
//! the UCS-side alternative, and the fix (the property, then retry) applies the change; what
//! the connector can know is refused before anything is sent; characters XML 1.0 forbids never
//! reach OX.

use std::time::Duration;

use serde_json::json;

use crate::support::ox::*;
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until the queue blocks and returns the blocked change's error text.
async fn blocked_error(t: &OxEnv) -> String {
    wait_for("the queue to block", WAIT, || !t.blocked().is_null()).await;
    t.blocked()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_rename_at_oxs_defaults_blocks_naming_the_property_and_the_fix_applies_it() {
    let mut t = OxEnv::start_at_ox_defaults().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    let id = t.ox_user(10, "anna").id;

    let renamed = user("u-anna", "anna2", 10, json!({}));
    t.write(renamed);
    let error = blocked_error(&t).await;
    for expected in [
        "Changing username is disabled!",
        "USERNAME_CHANGEABLE=true",
        "OX_USER_IDENTIFIER=entryUUID",
    ] {
        assert!(error.contains(expected), "{expected:?} missing: {error}");
    }
    assert_eq!(t.ox_user(10, "anna").id, id, "nothing changed in OX");

    // The admin sets the property on the OX server; the retry applies the rename.
    t.ox.set_properties(&[("USERNAME_CHANGEABLE", "true")])
        .unwrap();
    t.settle().await;
    assert_eq!(t.ox_user(10, "anna2").id, id, "renamed in place");
    daemon.stop().await;
}

#[tokio::test]
async fn a_group_name_oxs_default_check_refuses_blocks_naming_the_property() {
    let mut t = OxEnv::start_at_ox_defaults().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    t.write(group("g-1", "Grüne", &["anna"], json!({})));
    let daemon = t.daemon().await;
    let error = blocked_error(&t).await;
    assert!(error.contains("Illegal chars: \"ü\""), "{error}");
    assert!(
        error.contains("CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS=false"),
        "{error}"
    );
    t.ox.set_properties(&[("CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS", "false")])
        .unwrap();
    t.settle().await;
    assert!(t.state().context(10).unwrap().group("Grüne").is_some());
    daemon.stop().await;
}

#[tokio::test]
async fn a_language_ox_would_refuse_is_refused_before_anything_is_sent() {
    let mut t = OxEnv::start().await;
    t.env.settings.ox.language = "de".into();
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let daemon = t.daemon().await;
    let error = blocked_error(&t).await;
    assert!(error.contains("OX_LANGUAGE \"de\""), "{error}");
    let calls = t.ox.calls();
    assert!(
        !calls.keys().any(|k| k.starts_with("OXUserService.create")),
        "{calls:?}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn forbidden_characters_are_dropped_from_text_and_refuse_identity_fields() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-anna",
        "anna",
        10,
        json!({"lastname": "Ann\u{1}a", "oxNote": "a\u{B}b\u{FFFF}"}),
    ));
    t.write(resource(
        "r-1",
        "room1",
        10,
        json!({"description": "Room\u{C}"}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    let anna = &ctx.user("anna").unwrap().data;
    assert_eq!(anna.sur_name.as_deref(), Some("Anna"));
    assert_eq!(anna.note.as_deref(), Some("ab"));
    assert_eq!(
        ctx.resource("room1").unwrap().description.as_deref(),
        Some("Room")
    );

    t.write(user(
        "u-anna",
        "anna",
        10,
        json!({"mailAlternativeAddress": ["anna\u{1}@example.org"]}),
    ));
    let error = blocked_error(&t).await;
    assert!(error.contains("usrdata/aliases"), "{error}");
    assert!(error.contains("XML 1.0 forbids"), "{error}");
    assert!(
        !t.ox_user(10, "anna")
            .data
            .aliases
            .iter()
            .any(|a| a.contains('\u{1}')),
        "nothing half-sent"
    );
    daemon.stop().await;
}
