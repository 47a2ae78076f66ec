//! OX's check of a user's e-mail addresses (`docs/ox-emulator.md`, "OX's rules"): a create, and
//! a change of a user other than the context admin that sends a mail field, is refused with
//! `Invalid email address` when `primaryEmail`, `email1`, `email2`, `email3`,
//! `defaultSenderAddress` or an alias is not an address OX's parser accepts. No property
//! switches it.

use ox_connector::ox::soap::{Credentials, OxClient, User};

use crate::support::{context, env, invalid_data_text, new_user};

/// Context 10 with user anna: its admin's credentials and anna's id.
async fn anna_in_context_10(c: &OxClient) -> (Credentials, i32) {
    let a = context(c, 10).await;
    let created = c.create_user(10, &new_user("anna"), &a).await.unwrap();
    (a, created.id.unwrap())
}

/// Each mail field set to `bad` on top of `user` (primary and email1 together: OX compares them
/// before anything else would notice).
fn with_each_field_bad(user: &User, bad: &str) -> Vec<(&'static str, User)> {
    let set = |f: fn(&mut User, String)| {
        let mut user = user.clone();
        f(&mut user, bad.to_string());
        user
    };
    vec![
        (
            "primaryEmail",
            set(|u, v| {
                u.primary_email = Some(v.clone());
                u.email1 = Some(v.clone());
                u.aliases = vec![v];
            }),
        ),
        ("email2", set(|u, v| u.email2 = Some(v))),
        ("email3", set(|u, v| u.email3 = Some(v))),
        (
            "defaultSenderAddress",
            set(|u, v| u.default_sender_address = Some(v)),
        ),
        ("aliases", set(|u, v| u.aliases.push(v))),
    ]
}

#[tokio::test]
async fn a_create_with_an_invalid_address_in_any_mail_field_is_refused() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    for bad in [
        "anna koch@example.org",
        "anna@@example.org",
        "jörg@example.org",
    ] {
        for (field, user) in with_each_field_bad(&new_user("anna"), bad) {
            let text = invalid_data_text(c.create_user(10, &user, &a).await);
            assert_eq!(text, "Invalid email address", "{field} = {bad:?}");
        }
    }
    assert!(
        env.ox.state().context(10).unwrap().user("anna").is_none(),
        "nothing was created"
    );
    // What OX's parser accepts: an internationalized domain, blank optional fields.
    let user = User {
        email2: Some("anna@müller.de".into()),
        email3: Some(" ".into()),
        aliases: vec!["Anna <anna.k@example.org>".into()],
        ..new_user("anna")
    };
    c.create_user(10, &user, &a).await.unwrap();
}

#[tokio::test]
async fn a_change_that_sends_a_mail_field_is_refused_for_an_invalid_address_in_any() {
    let env = env().await;
    let c = &env.client;
    let (a, id) = anna_in_context_10(c).await;
    // A complete mail change, valid as it stands: primary, email1 and the aliases.
    let change = User {
        primary_email: Some("anna@example.org".into()),
        email1: Some("anna@example.org".into()),
        aliases: vec!["anna@example.org".into()],
        ..User::with_id(id)
    };
    let before = env.ox.state().context(10).unwrap().user("anna").cloned();
    for bad in ["@example.org", "anna@example.org.", "\"anna@example.org"] {
        for (field, user) in with_each_field_bad(&change, bad) {
            let text = invalid_data_text(c.change_user(10, &user, &a).await);
            assert_eq!(text, "Invalid email address", "{field} = {bad:?}");
        }
    }
    assert_eq!(
        env.ox.state().context(10).unwrap().user("anna").cloned(),
        before,
        "nothing changed"
    );
    c.change_user(10, &change, &a).await.unwrap();
}

#[tokio::test]
async fn changes_without_a_mail_field_and_changes_of_the_context_admin_are_not_checked() {
    let env = env().await;
    let c = &env.client;
    let (a, id) = anna_in_context_10(c).await;
    // OX checks the addresses only when primaryEmail, email1, defaultSenderAddress or the
    // aliases are sent: email2 alone is stored as it is.
    let only_email2 = User {
        email2: Some("not an address".into()),
        ..User::with_id(id)
    };
    c.change_user(10, &only_email2, &a).await.unwrap();
    let state = env.ox.state();
    let anna = state.context(10).unwrap().user("anna").unwrap();
    assert_eq!(anna.data.email2.as_deref(), Some("not an address"));

    // The context admin's changes skip the mail checks.
    let admin_id = state.context(10).unwrap().admin.as_ref().unwrap().id;
    let admin_change = User {
        email3: Some("not an address".into()),
        aliases: vec!["admin@example.org".into(), "x@@example.org".into()],
        ..User::with_id(admin_id)
    };
    c.change_user(10, &admin_change, &a).await.unwrap();
}
