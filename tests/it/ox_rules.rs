//! The connector's answer to OX's rules (`docs/operations.md`, "OX refuses a change"): a
//! refusal that comes from OX's configuration blocks with a reason naming the OX property and
//! the UCS-side alternative, and the fix (the property, then retry) applies the change; what
//! the connector can know is refused before anything is sent; characters XML 1.0 forbids never
//! reach OX.

use std::time::Duration;

use serde_json::json;

use crate::support::ox::*;
use crate::support::{assert_contains_all, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until the queue blocks and returns the blocked change's error text.
async fn blocked_error(t: &OxEnv) -> String {
    wait_for("the queue to block", WAIT, || !t.blocked().is_null()).await;
    t.blocked()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// OX at its defaults, context 10 with user anna applied, the daemon running.
async fn anna_applied_at_ox_defaults() -> (OxEnv, OxDaemon) {
    let mut t = OxEnv::start_at_ox_defaults().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    (t, daemon)
}

#[tokio::test]
async fn a_rename_at_oxs_defaults_blocks_naming_the_property_and_the_fix_applies_it() {
    let (mut t, daemon) = anna_applied_at_ox_defaults().await;
    let id = t.ox_user(10, "anna").id;

    let renamed = user("u-anna", "anna2", 10, json!({}));
    t.write(renamed);
    let error = blocked_error(&t).await;
    assert_contains_all(
        &error,
        &[
            "Changing username is disabled!",
            "USERNAME_CHANGEABLE=true",
            "OX_USER_IDENTIFIER=entryUUID",
        ],
    );
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

/// The calls of `operation` the emulator has answered so far.
fn calls(t: &OxEnv, operation: &str) -> u64 {
    t.ox.calls().get(operation).map_or(0, |c| c.calls)
}

/// The admin's fix: anna's corrected object from UCS (`fixed`), the blocked change skipped,
/// everything applied.
async fn fix_anna_in_ucs(t: &mut OxEnv, fixed: serde_json::Value) {
    t.write(user("u-anna", "anna", 10, fixed));
    skip_blocked(t).await;
    t.settle().await;
}

/// Skips the blocked change with the `ox-connector` binary, as the reason tells the admin.
async fn skip_blocked(t: &OxEnv) {
    let skip = crate::support::cli::run(
        t.env.data.path(),
        &["queue", "skip", "blocked", "--reason", "fixed in UCS"],
    )
    .await;
    assert_eq!(skip.code, 0, "{}{}", skip.stdout, skip.stderr);
}

#[tokio::test]
async fn an_address_ox_would_refuse_blocks_naming_user_property_and_value_until_fixed() {
    let (mut t, daemon) = anna_applied_at_ox_defaults().await;
    let before = t.ox_user(10, "anna");
    let changes = calls(&t, "OXUserService.change");

    // A change with a bad alternative address is not sent.
    t.write(user(
        "u-anna",
        "anna",
        10,
        json!({"mailAlternativeAddress": ["anna koch@example.org"]}),
    ));
    let error = blocked_error(&t).await;
    assert_contains_all(
        &error,
        &[
            "not sent",
            "uid=anna,cn=users,dc=example,dc=org",
            "mailAlternativeAddress \"anna koch@example.org\"",
            "Invalid email address",
            "queue skip blocked",
        ],
    );
    assert_eq!(t.ox_user(10, "anna"), before, "OX unchanged");
    assert_eq!(calls(&t, "OXUserService.change"), changes, "nothing sent");

    // The admin fixes the address in UCS (a new change follows) and skips the blocked one.
    fix_anna_in_ucs(
        &mut t,
        json!({"mailAlternativeAddress": ["anna.koch@example.org"]}),
    )
    .await;
    let aliases = t.ox_user(10, "anna").data.aliases;
    assert!(
        aliases.contains(&"anna.koch@example.org".to_string()),
        "{aliases:?}"
    );

    // A new user with a bad address in a mapped field: not created, the property named.
    t.write(user(
        "u-bert",
        "bert",
        10,
        json!({"oxEmail2": "bert@@example.org"}),
    ));
    let error = blocked_error(&t).await;
    assert!(error.contains("uid=bert,"), "{error}");
    assert!(error.contains("oxEmail2 \"bert@@example.org\""), "{error}");
    assert!(t.state().context(10).unwrap().user("bert").is_none());
    assert_eq!(
        calls(&t, "OXUserService.createByModuleAccess"),
        1,
        "only anna"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_removed_primary_address_blocks_instead_of_sending_an_empty_one() {
    let (mut t, daemon) = anna_applied_at_ox_defaults().await;
    let before = t.ox_user(10, "anna");
    let changes = calls(&t, "OXUserService.change");

    let mut removed = user("u-anna", "anna", 10, json!({}));
    removed["object"]
        .as_object_mut()
        .unwrap()
        .remove("mailPrimaryAddress");
    t.write(removed);
    let error = blocked_error(&t).await;
    assert_contains_all(
        &error,
        &[
            "uid=anna,cn=users,dc=example,dc=org",
            "has no mailPrimaryAddress",
            "cannot remove it",
        ],
    );
    assert_eq!(t.ox_user(10, "anna"), before, "OX keeps the address");
    assert_eq!(calls(&t, "OXUserService.change"), changes, "nothing sent");

    // A new primary address in UCS, the blocked change skipped: OX gets the new address.
    fix_anna_in_ucs(
        &mut t,
        json!({"mailPrimaryAddress": "anna.new@example.org"}),
    )
    .await;
    let data = t.ox_user(10, "anna").data;
    assert_eq!(data.primary_email.as_deref(), Some("anna.new@example.org"));
    assert_eq!(data.email1.as_deref(), Some("anna.new@example.org"));
    daemon.stop().await;
}
