//! The ordering keys of each conflict kind (`docs/queue.md`, "Consuming, in order"): for each,
//! two changes that conflict only through that key must have overlapping scopes — each test
//! fails if its key is dropped — and changes that share nothing (users of one context with
//! their own names) must not, or nothing would run at the same time.
//!
//! The scopes are the OX applier's own, computed from a real state store after applying the
//! earlier changes to the emulator.

use ox_connector::apply::{Applier, Scope};
use ox_connector::message::ProvisioningMessage;
use ox_connector::provision::OxApplier;
use serde_json::{json, Value};

use crate::support::files;
use crate::support::ox::{self, OxEnv};

/// An OX applier on a state store, with context 10 (and 20) created.
struct Keys {
    _env: OxEnv,
    applier: OxApplier,
    next_file: u32,
}

impl Keys {
    async fn start() -> Self {
        let env = OxEnv::start().await;
        let js = env.env.jetstream().await;
        let applier = OxApplier::open(env.env.settings.ox.clone(), &env.env.settings.data_dir, &js)
            .await
            .unwrap();
        let mut keys = Self {
            _env: env,
            applier,
            next_file: 0,
        };
        keys.apply(ox::context("ctx-10", 10, None)).await;
        keys.apply(ox::context("ctx-20", 20, None)).await;
        keys
    }

    fn message(&mut self, content: Value) -> ProvisioningMessage {
        self.next_file += 1;
        let name = files::name(self.next_file);
        let raw = serde_json::to_vec(&content).unwrap();
        let file = ox_connector::listener::ListenerFile::parse(
            std::path::Path::new(&name),
            name.clone(),
            raw,
        )
        .unwrap();
        ProvisioningMessage::from_listener_file(&file)
    }

    async fn apply(&mut self, content: Value) {
        let message = self.message(content);
        self.applier.apply(&message).await.unwrap();
    }

    async fn scope(&mut self, content: Value) -> Scope {
        let message = self.message(content);
        self.applier.scope(&message).await
    }
}

/// A user `username` with its own DN, display name and addresses unless `extra` says else.
fn user(id: &str, username: &str, extra: Value) -> Value {
    ox::user(id, username, 10, extra)
}

/// `content` at another DN (so that only the keys under test can overlap).
fn at_dn(mut content: Value, dn: &str) -> Value {
    content["dn"] = json!(dn);
    content
}

#[tokio::test]
async fn users_of_one_context_with_their_own_names_run_together() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    let a = keys
        .scope(user("a", "anna", json!({"lastname": "K"})))
        .await;
    let b = keys.scope(user("b", "bert", json!({}))).await;
    assert!(matches!(a, Scope::Keys(_)) && matches!(b, Scope::Keys(_)));
    assert!(!a.overlaps(&b), "{a:?}\n{b:?}");
}

#[tokio::test]
async fn a_login_given_up_and_taken_over_orders_the_two_changes() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    // a renames its login (same DN, display name and addresses); b takes the freed login.
    let gives_up = keys
        .scope(user("a", "anna", json!({"username": "anna2"})))
        .await;
    let takes = keys
        .scope(at_dn(
            user(
                "b",
                "anna",
                json!({"displayName": "Other", "mailPrimaryAddress": "other@example.org"}),
            ),
            "uid=anna,cn=people,dc=example,dc=org",
        ))
        .await;
    assert!(gives_up.overlaps(&takes), "{gives_up:?}\n{takes:?}");
}

#[tokio::test]
async fn a_display_name_given_up_and_taken_over_orders_the_two_changes() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({"displayName": "Ann"})))
        .await;
    keys.apply(user("b", "bert", json!({"displayName": "Bob"})))
        .await;
    let to_temporary = keys
        .scope(user("a", "anna", json!({"displayName": "tmp"})))
        .await;
    let takes = keys
        .scope(user("b", "bert", json!({"displayName": "Ann"})))
        .await;
    assert!(to_temporary.overlaps(&takes), "{to_temporary:?}\n{takes:?}");
}

#[tokio::test]
async fn an_alias_handed_from_one_user_to_another_orders_the_two_changes() {
    let mut keys = Keys::start().await;
    let alias = json!({"mailAlternativeAddress": ["team@example.org"]});
    keys.apply(user("a", "anna", alias.clone())).await;
    keys.apply(user("b", "bert", json!({}))).await;
    let drops = keys.scope(user("a", "anna", json!({}))).await;
    let takes = keys.scope(user("b", "bert", alias)).await;
    assert!(drops.overlaps(&takes), "{drops:?}\n{takes:?}");
}

#[tokio::test]
async fn a_primary_address_given_up_and_taken_over_orders_the_two_changes() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    let gives_up = keys
        .scope(user(
            "a",
            "anna",
            json!({"mailPrimaryAddress": "anna.k@example.org"}),
        ))
        .await;
    let takes = keys
        .scope(user(
            "b",
            "bert",
            json!({"mailPrimaryAddress": "anna@example.org"}),
        ))
        .await;
    assert!(gives_up.overlaps(&takes), "{gives_up:?}\n{takes:?}");
}

#[tokio::test]
async fn a_group_name_given_up_and_taken_over_orders_the_two_changes() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    keys.apply(ox::group("g", "staff", &["anna"], json!({})))
        .await;
    let renames = keys
        .scope(ox::group(
            "g",
            "staff",
            &["anna"],
            json!({"name": "staff-old"}),
        ))
        .await;
    let takes = keys
        .scope(at_dn(
            ox::group("h", "staff", &["anna"], json!({})),
            "cn=staff,cn=teams,dc=example,dc=org",
        ))
        .await;
    // Both read anna, which orders neither: only the name does.
    assert!(renames.overlaps(&takes), "{renames:?}\n{takes:?}");
}

#[tokio::test]
async fn a_resource_name_and_address_given_up_and_taken_over_order_the_two_changes() {
    let mut keys = Keys::start().await;
    keys.apply(ox::resource("r", "room1", 10, json!({}))).await;
    let renames = keys
        .scope(ox::resource(
            "r",
            "room1",
            10,
            json!({"name": "room1-old", "resourceMailAddress": "old@example.org"}),
        ))
        .await;
    let takes_name = keys
        .scope(ox::resource(
            "s",
            "room1b",
            10,
            json!({"name": "room1", "resourceMailAddress": "other@example.org"}),
        ))
        .await;
    let takes_mail = keys
        .scope(ox::resource(
            "t",
            "room2",
            10,
            json!({"resourceMailAddress": "room1@example.org"}),
        ))
        .await;
    assert!(renames.overlaps(&takes_name), "{renames:?}\n{takes_name:?}");
    assert!(renames.overlaps(&takes_mail), "{renames:?}\n{takes_mail:?}");
}

#[tokio::test]
async fn a_group_change_and_a_change_of_its_member_are_ordered_both_ways() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    keys.apply(ox::group("g", "staff", &[], json!({}))).await;
    let adds = keys
        .scope(ox::group("g", "staff", &["anna"], json!({})))
        .await;
    let member_changes = keys
        .scope(user("a", "anna", json!({"lastname": "K"})))
        .await;
    assert!(
        adds.overlaps(&member_changes),
        "{adds:?}\n{member_changes:?}"
    );
    // The user's side: created in the group, it re-applies the group.
    let created_in = keys
        .scope(user(
            "b",
            "bert",
            json!({"groups": [ox::group_dn("staff")]}),
        ))
        .await;
    assert!(adds.overlaps(&created_in), "{adds:?}\n{created_in:?}");
}

#[tokio::test]
async fn two_members_created_in_one_ox_group_and_context_are_ordered() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    keys.apply(ox::group("g", "staff", &["anna"], json!({})))
        .await;
    let in_group = json!({"groups": [ox::group_dn("staff")]});
    let b = keys.scope(user("b", "bert", in_group.clone())).await;
    let c = keys.scope(user("c", "carl", in_group)).await;
    assert!(b.overlaps(&c), "both re-apply the OX group: {b:?}\n{c:?}");
    // A plain change of a member re-applies nothing.
    let a = keys
        .scope(user(
            "a",
            "anna",
            json!({"groups": [ox::group_dn("staff")], "lastname": "K"}),
        ))
        .await;
    assert!(!a.overlaps(&b), "{a:?}\n{b:?}");
}

#[tokio::test]
async fn a_move_touches_both_contexts_and_a_context_change_everything_in_it() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    let moves = keys.scope(ox::user("a", "anna", 20, json!({}))).await;
    let context_10 = keys.scope(ox::context("ctx-10", 10, Some(100))).await;
    let context_20 = keys.scope(ox::context("ctx-20", 20, Some(100))).await;
    assert!(moves.overlaps(&context_10) && moves.overlaps(&context_20));
    let in_10 = keys.scope(user("b", "bert", json!({}))).await;
    assert!(context_10.overlaps(&in_10));
    assert!(!context_20.overlaps(&in_10));
}

#[tokio::test]
async fn an_old_dn_freed_by_a_rename_orders_the_object_that_takes_it() {
    let mut keys = Keys::start().await;
    keys.apply(user("a", "anna", json!({}))).await;
    let renamed = keys
        .scope(at_dn(
            user("a", "anna", json!({})),
            "uid=anna.k,cn=users,dc=example,dc=org",
        ))
        .await;
    let takes_dn = keys
        .scope(at_dn(user("b", "bert", json!({})), &ox::user_dn("anna")))
        .await;
    assert!(renamed.overlaps(&takes_dn), "{renamed:?}\n{takes_dn:?}");
}

#[tokio::test]
async fn an_unknown_topic_touches_everything() {
    let mut keys = Keys::start().await;
    let content = json!({"dn": "cn=pc,dc=example,dc=org", "id": "pc", "object": {"name": "pc"},
        "options": [], "udm_object_type": "computers/linux"});
    assert_eq!(keys.scope(content).await, Scope::Everything);
}
