//! Provisioning scenarios: listener files as the converter writes them → real nats-server →
//! OX applier → the OX emulator, whose final state is asserted, and the files are gone.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::ox::*;

#[tokio::test]
async fn a_context_with_users_groups_and_a_resource_is_provisioned() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, Some(2048)));
    t.write(user(
        "u-anna",
        "anna",
        10,
        json!({"groups": [group_dn("staff")]}),
    ));
    t.write(user(
        "u-bob",
        "bob",
        10,
        json!({"groups": [group_dn("staff")]}),
    ));
    t.write(group("g-staff", "staff", &["anna", "bob"], json!({})));
    t.write(resource("r-room", "room1", 10, json!({})));
    let daemon = t.daemon().await;
    t.settle().await;

    let state = t.state();
    let ctx = state.context(10).expect("context 10 exists");
    assert_eq!(ctx.data.max_quota, Some(2048));
    assert_eq!(ctx.admin.as_ref().unwrap().name, "oxadmin");
    let anna = ctx.user("anna").expect("anna exists");
    assert_eq!(anna.data.primary_email.as_deref(), Some("anna@example.org"));
    assert_eq!(anna.data.language.as_deref(), Some("de_DE"));
    assert_eq!(anna.module_access.calendar, Some(true), "premium rights");
    let bob = ctx.user("bob").unwrap();
    let staff = ctx.group("staff").expect("group staff exists");
    let mut members = staff.members.clone();
    members.sort();
    let mut expected = vec![anna.id, bob.id];
    expected.sort();
    assert_eq!(members, expected);
    let room = ctx.resource("room1").expect("resource exists");
    assert_eq!(room.email.as_deref(), Some("room1@example.org"));

    let credentials: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.env.data.path().join("secrets/contexts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(credentials["10"]["adminuser"], "oxadmin");
    assert_eq!(credentials["master"]["adminuser"], MASTER);
    daemon.stop().await;
}

#[tokio::test]
async fn contexts_are_changed_and_deleted_with_their_credentials() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(context("ctx-20", 20, Some(100)));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    assert_eq!(
        state.context(10).unwrap().data.max_quota,
        Some(-1),
        "empty quota = unlimited"
    );
    assert_eq!(
        state.context(20).unwrap().admin.as_ref().unwrap().name,
        "oxadmin-context20"
    );

    t.write(context("ctx-20", 20, Some(500)));
    t.settle().await;
    assert_eq!(t.state().context(20).unwrap().data.max_quota, Some(500));

    t.write(context_deleted("ctx-20", 20));
    t.settle().await;
    assert!(t.state().context(20).is_none());
    let credentials =
        std::fs::read_to_string(t.env.data.path().join("secrets/contexts.json")).unwrap();
    assert!(!credentials.contains("\"20\""), "{credentials}");
    assert!(credentials.contains("\"10\""), "{credentials}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.env.data.path().join("secrets/contexts.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(t.env.data.path().join("secrets"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_user_is_changed_renamed_and_deleted() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"oxDepartment": "Sales", "mailAlternativeAddress": ["a.k@example.org"]}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let id = t.ox_user(10, "anna").id;
    let anna = t.ox_user(10, "anna").data;
    assert_eq!(anna.department.as_deref(), Some("Sales"));
    assert_eq!(
        anna.default_sender_address.as_deref(),
        Some("anna@example.org")
    );
    assert_eq!(anna.aliases, ["anna@example.org", "a.k@example.org"]);

    // Rename, new primary address, department cleared.
    t.write(user(
        "u-1",
        "anna2",
        10,
        json!({"oxDepartment": "", "mailPrimaryAddress": "anna2@example.org",
               "mailAlternativeAddress": ["a.k@example.org"], "username": "anna2"}),
    ));
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    assert!(ctx.user("anna").is_none());
    let renamed = ctx.user("anna2").expect("renamed in place");
    assert_eq!(renamed.id, id, "same OX id after the rename");
    assert_eq!(renamed.data.department.as_deref().unwrap_or(""), "");
    assert_eq!(
        renamed.data.default_sender_address.as_deref(),
        Some("anna2@example.org"),
        "the default sender follows the primary address it was"
    );
    assert_eq!(renamed.data.language.as_deref(), Some("de_DE"));

    t.write(user_deleted("u-1", "anna2"));
    t.settle().await;
    assert!(t.state().context(10).unwrap().user("anna2").is_none());
    daemon.stop().await;
}

#[tokio::test]
async fn a_users_own_default_sender_address_is_kept_while_it_is_one_of_their_addresses() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"mailAlternativeAddress": ["a.k@example.org"]}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let sender = |t: &OxEnv| t.ox_user(10, "anna").data.default_sender_address;
    assert_eq!(sender(&t).as_deref(), Some("anna@example.org"));

    // Anna picks her alias as the default sender in OX.
    let id = t.ox_user(10, "anna").id;
    let choice = ox_connector::ox::soap::User {
        default_sender_address: Some("a.k@example.org".into()),
        ..ox_connector::ox::soap::User::with_id(id)
    };
    t.ox_client()
        .change_user(10, &choice, &t.context_admin(10))
        .await
        .unwrap();

    // UDM adds an address: every address she could have chosen is still hers, so OX is not
    // asked, and her choice stays.
    let calls_before = t.ox.calls();
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"mailAlternativeAddress": ["a.k@example.org", "anna.k@example.org"]}),
    ));
    t.settle().await;
    assert_eq!(
        calls_since(&calls_before, &t.ox.calls()),
        BTreeMap::from([("OXUserService.change".to_owned(), 1)])
    );
    assert_eq!(sender(&t).as_deref(), Some("a.k@example.org"));

    // UDM drops the address she chose: OX is asked, and the sender becomes the primary address.
    let calls_before = t.ox.calls();
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"mailAlternativeAddress": ["anna.k@example.org"]}),
    ));
    t.settle().await;
    assert_eq!(
        calls_since(&calls_before, &t.ox.calls()),
        BTreeMap::from([
            ("OXUserService.change".to_owned(), 1),
            ("OXUserService.getData".to_owned(), 1),
        ])
    );
    assert_eq!(sender(&t).as_deref(), Some("anna@example.org"));
    daemon.stop().await;
}

#[tokio::test]
async fn switching_is_ox_user_off_deletes_the_user_and_the_groups_it_leaves_empty() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"groups": [group_dn("solo"), group_dn("pair")]}),
    ));
    t.write(user(
        "u-2",
        "bob",
        10,
        json!({"groups": [group_dn("pair")]}),
    ));
    t.write(group("g-solo", "solo", &["anna"], json!({})));
    t.write(group("g-pair", "pair", &["anna", "bob"], json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    assert!(t.state().context(10).unwrap().group("solo").is_some());

    let calls_before = t.ox.calls();
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"isOxUser": "Not", "groups": [group_dn("solo"), group_dn("pair")]}),
    ));
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    assert!(ctx.user("anna").is_none());
    assert!(
        ctx.group("solo").is_none(),
        "the group left empty is deleted"
    );
    let bob = ctx.user("bob").unwrap().id;
    assert_eq!(ctx.group("pair").unwrap().members, [bob]);
    assert_eq!(
        calls_since(&calls_before, &t.ox.calls()),
        BTreeMap::from([
            ("OXGroupService.delete".to_owned(), 1),
            ("OXUserService.delete".to_owned(), 1),
        ]),
        "the state store knows which groups are left empty: OX is not asked"
    );

    // UDM then takes the user out of its group: OX did so already, nothing is sent.
    let calls_before = t.ox.calls();
    t.write(group("g-pair", "pair", &["bob"], json!({})));
    t.settle().await;
    assert_eq!(calls_since(&calls_before, &t.ox.calls()), BTreeMap::new());
    assert_eq!(
        t.state()
            .context(10)
            .unwrap()
            .group("pair")
            .unwrap()
            .members,
        [bob]
    );
    daemon.stop().await;
}

/// The SOAP calls made between two snapshots of the emulator's call counters, by operation.
fn calls_since(
    before: &BTreeMap<String, ox_connector::emulator::CallStats>,
    after: &BTreeMap<String, ox_connector::emulator::CallStats>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(operation, stats)| {
            let earlier = before.get(operation).map_or(0, |s| s.calls);
            (operation.clone(), stats.calls - earlier)
        })
        .filter(|(_, calls)| *calls > 0)
        .collect()
}

/// The move's user state is written before its groups are applied in the new context; when
/// that fails (here an OX fault, as well a crash), the retry finds the user moved already and
/// must still finish the groups: else the OX group in the new context is missing, or — made in
/// OX but not remembered — left behind when the group is deleted.
#[tokio::test]
async fn a_move_whose_groups_failed_finishes_them_on_retry() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(context("ctx-20", 20, None));
    for name in ["anna", "bob"] {
        t.write(user(
            &format!("u-{name}"),
            name,
            10,
            json!({"groups": [group_dn("team")]}),
        ));
    }
    t.write(group("g-team", "team", &["anna", "bob"], json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    assert!(t.state().context(20).unwrap().group("team").is_none());

    t.ox.set_faults(ox_connector::emulator::FaultSettings {
        rules: vec![ox_connector::emulator::FaultRule {
            service: Some("OXGroupService".into()),
            operation: Some("create".into()),
            count: Some(1),
            ..Default::default()
        }],
        ..Default::default()
    });
    t.write(user(
        "u-anna",
        "anna",
        20,
        json!({"groups": [group_dn("team")]}),
    ));
    t.settle().await;
    let anna = t.ox_user(20, "anna").id;
    let state = t.state();
    let team = state.context(20).unwrap().group("team");
    assert_eq!(team.map(|g| g.members.clone()), Some(vec![anna]));

    t.write(group_deleted("g-team", "team"));
    t.settle().await;
    let state = t.state();
    for context in [10, 20] {
        assert!(
            state.context(context).unwrap().group("team").is_none(),
            "team left behind in context {context}"
        );
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_user_moves_to_another_context_with_its_data_and_groups() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(context("ctx-20", 20, None));
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"oxDepartment": "Sales", "groups": [group_dn("team")]}),
    ));
    t.write(user(
        "u-2",
        "bob",
        20,
        json!({"groups": [group_dn("team")]}),
    ));
    t.write(group("g-team", "team", &["anna", "bob"], json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    assert!(state.context(10).unwrap().group("team").is_some());
    assert!(state.context(20).unwrap().group("team").is_some());

    let calls_before = t.ox.calls();
    t.write(user(
        "u-1",
        "anna",
        20,
        json!({"oxDepartment": "Sales", "groups": [group_dn("team")]}),
    ));
    t.settle().await;
    let calls = t.ox.calls();
    let copies = |c: &std::collections::BTreeMap<String, ox_connector::emulator::CallStats>| {
        c.get("OXUserCopyService.copyUser")
            .map(|s| s.calls)
            .unwrap_or(0)
    };
    assert_eq!(
        copies(&calls) - copies(&calls_before),
        1,
        "moved with copyUser"
    );
    assert_eq!(
        calls_since(&calls_before, &calls),
        BTreeMap::from([
            ("OXUserCopyService.copyUser".to_owned(), 1),
            ("OXUserService.change".to_owned(), 1),
            ("OXUserService.delete".to_owned(), 1),
            // Left empty in context 10 (known from the state store), joined in context 20.
            ("OXGroupService.delete".to_owned(), 1),
            ("OXGroupService.change".to_owned(), 1),
        ]),
        "no look-ups the state store answers"
    );

    let state = t.state();
    assert!(
        state.context(10).unwrap().user("anna").is_none(),
        "old user deleted"
    );
    assert!(
        state.context(10).unwrap().group("team").is_none(),
        "old context's group left empty is deleted"
    );
    let ctx20 = state.context(20).unwrap();
    let anna = ctx20.user("anna").expect("anna in context 20");
    assert_eq!(anna.data.department.as_deref(), Some("Sales"));
    let bob = ctx20.user("bob").unwrap();
    let mut members = ctx20.group("team").unwrap().members.clone();
    members.sort();
    let mut expected = vec![anna.id, bob.id];
    expected.sort();
    assert_eq!(
        members, expected,
        "the group in the new context has the moved user"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_group_that_arrives_before_its_member_converges_once_the_member_exists() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"groups": [group_dn("team")]}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    // The group (with a member not provisioned yet) is applied first…
    t.write(group("g-team", "team", &["anna", "bob"], json!({})));
    t.settle().await;
    let anna = t.ox_user(10, "anna").id;
    assert_eq!(
        t.state()
            .context(10)
            .unwrap()
            .group("team")
            .unwrap()
            .members,
        [anna]
    );
    // …and the member later: the group is applied again.
    t.write(user(
        "u-2",
        "bob",
        10,
        json!({"groups": [group_dn("team")]}),
    ));
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    let mut members = ctx.group("team").unwrap().members.clone();
    members.sort();
    let mut expected = vec![anna, ctx.user("bob").unwrap().id];
    expected.sort();
    assert_eq!(members, expected);
    daemon.stop().await;
}

#[tokio::test]
async fn one_batch_with_a_group_before_its_members_and_a_user_before_its_context() {
    let mut t = OxEnv::start().await;
    // In name order: the group, then its users, then (created and then modified, so named
    // after its last change) the context the users live in.
    t.write(group("g-team", "team", &["anna", "bob"], json!({})));
    t.write(user(
        "u-1",
        "anna",
        30,
        json!({"groups": [group_dn("team")]}),
    ));
    t.write(user(
        "u-2",
        "bob",
        30,
        json!({"groups": [group_dn("team")]}),
    ));
    t.write(context("ctx-30", 30, Some(10)));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    let ctx = state.context(30).expect("context created");
    assert_eq!(
        ctx.users
            .iter()
            .filter(|u| u.name != "oxadmin-context30")
            .count(),
        2
    );
    assert_eq!(ctx.group("team").unwrap().members.len(), 2);
    assert!(t.blocked().is_null());
    daemon.stop().await;
}

#[tokio::test]
async fn groups_are_renamed_switched_off_and_deleted() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-1", "anna", 10, json!({})));
    t.write(group("g-1", "team", &["anna"], json!({})));
    t.write(group("g-2", "users", &["anna"], json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    let id = t.state().context(10).unwrap().group("team").unwrap().id;
    assert!(
        t.state()
            .context(10)
            .unwrap()
            .groups
            .iter()
            .all(|g| g.name.as_deref() != Some("Users")),
        "OX's own users group is never touched"
    );

    t.write(group("g-1", "team2", &["anna"], json!({})));
    t.settle().await;
    assert_eq!(
        t.state().context(10).unwrap().group("team2").unwrap().id,
        id
    );
    assert!(t.state().context(10).unwrap().group("team").is_none());

    t.write(group(
        "g-1",
        "team2",
        &["anna"],
        json!({"isOxGroup": "Not"}),
    ));
    t.settle().await;
    assert!(t.state().context(10).unwrap().group("team2").is_none());

    t.write(group("g-1", "team2", &["anna"], json!({})));
    t.settle().await;
    assert!(t.state().context(10).unwrap().group("team2").is_some());
    t.write(group_deleted("g-1", "team2"));
    t.settle().await;
    assert!(t.state().context(10).unwrap().group("team2").is_none());
    daemon.stop().await;
}

#[tokio::test]
async fn resources_are_created_changed_moved_and_deleted() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(context("ctx-20", 20, None));
    t.write(resource("r-1", "beamer", 10, json!({"description": "HD"})));
    let daemon = t.daemon().await;
    t.settle().await;
    assert_eq!(
        t.state()
            .context(10)
            .unwrap()
            .resource("beamer")
            .unwrap()
            .description
            .as_deref(),
        Some("HD")
    );
    t.write(resource(
        "r-1",
        "beamer",
        10,
        json!({"displayname": "Beamer 4K"}),
    ));
    t.settle().await;
    assert_eq!(
        t.state()
            .context(10)
            .unwrap()
            .resource("beamer")
            .unwrap()
            .displayname
            .as_deref(),
        Some("Beamer 4K")
    );
    t.write(resource(
        "r-1",
        "beamer",
        20,
        json!({"displayname": "Beamer 4K"}),
    ));
    t.settle().await;
    assert!(t.state().context(10).unwrap().resource("beamer").is_none());
    assert!(t.state().context(20).unwrap().resource("beamer").is_some());
    t.write(resource_deleted("r-1", "beamer"));
    t.settle().await;
    assert!(t.state().context(20).unwrap().resource("beamer").is_none());
    daemon.stop().await;
}

#[tokio::test]
async fn access_profiles_give_rights_and_a_changed_profile_reaches_its_users() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(access_profile("p-1", "mailonly", &["webmail", "contacts"]));
    t.write(user("u-1", "anna", 10, json!({"oxAccess": "mailonly"})));
    let daemon = t.daemon().await;
    t.settle().await;
    let access = t
        .state()
        .context(10)
        .unwrap()
        .user("anna")
        .unwrap()
        .module_access
        .clone();
    assert_eq!(access.webmail, Some(true));
    assert_eq!(access.calendar, Some(false));
    let properties =
        std::fs::read_to_string(t.env.data.path().join("ModuleAccessDefinitions.properties"))
            .unwrap();
    assert!(
        properties.contains("mailonly=contacts,webmail"),
        "{properties}"
    );

    t.write(access_profile(
        "p-1",
        "mailonly",
        &["webmail", "contacts", "calendar"],
    ));
    t.settle().await;
    let access = t
        .state()
        .context(10)
        .unwrap()
        .user("anna")
        .unwrap()
        .module_access
        .clone();
    assert_eq!(
        access.calendar,
        Some(true),
        "the users of a changed profile get its rights"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn functional_accounts_are_created_per_user_and_removed() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-1", "anna", 10, json!({})));
    t.write(user("u-2", "bob", 10, json!({})));
    t.write(functional_account(
        "fa-1",
        "support",
        "support@example.org",
        &["anna", "bob"],
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    let accounts = &state.context(10).unwrap().secondary_accounts;
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    let anna = state.context(10).unwrap().user("anna").unwrap().id;
    let of_anna = accounts.iter().find(|a| a.user_id == Some(anna)).unwrap();
    assert_eq!(of_anna.login.as_deref(), Some("fa-1anna"));
    assert_eq!(
        of_anna.primary_address.as_deref(),
        Some("support@example.org")
    );

    t.write(functional_account(
        "fa-1",
        "support",
        "support@example.org",
        &["bob"],
    ));
    t.settle().await;
    assert_eq!(t.state().context(10).unwrap().secondary_accounts.len(), 1);
    t.write(serde_json::json!({
        "dn": format!("cn=support,cn=functional_accounts,cn=open-xchange,{DOMAIN}"),
        "id": "fa-1", "object": null, "options": null, "udm_object_type": "oxmail/functional_account"
    }));
    t.settle().await;
    assert!(t.state().context(10).unwrap().secondary_accounts.is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn xml_special_and_non_ascii_characters_survive_every_field() {
    let mut t = OxEnv::start().await;
    // OX's default CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS refuses "grüppe<&>" (see
    // ox_rules.rs); the documented fix is on here, this test is about the characters.
    t.ox.set_properties(&[("CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS", "false")])
        .unwrap();
    let nasty = "Ä<&>\"' ]]> Ş 漢字 🎉";
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-1",
        "anna",
        10,
        json!({"firstname": nasty, "lastname": format!("{nasty}-2"), "oxDisplayName": format!("{nasty}-3"),
               "oxDepartment": nasty, "street": nasty, "oxNote": nasty, "oxUserfield01": nasty,
               "title": nasty, "organisation": nasty}),
    ));
    t.write(group("g-1", "grüppe<&>", &["anna"], json!({})));
    t.write(resource(
        "r-1",
        "raum",
        10,
        json!({"description": nasty, "displayname": nasty}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    let anna = &ctx.user("anna").unwrap().data;
    assert_eq!(anna.given_name.as_deref(), Some(nasty));
    assert_eq!(
        anna.sur_name.as_deref(),
        Some(format!("{nasty}-2").as_str())
    );
    assert_eq!(
        anna.display_name.as_deref(),
        Some(format!("{nasty}-3").as_str())
    );
    assert_eq!(anna.department.as_deref(), Some(nasty));
    assert_eq!(anna.street_business.as_deref(), Some(nasty));
    assert_eq!(anna.note.as_deref(), Some(nasty));
    assert_eq!(anna.userfield01.as_deref(), Some(nasty));
    assert_eq!(anna.company.as_deref(), Some(nasty));
    assert!(ctx.group("grüppe<&>").is_some());
    assert_eq!(
        ctx.resource("raum").unwrap().description.as_deref(),
        Some(nasty)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn ox_faulting_once_keeps_the_file_and_applies_it_on_retry() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    t.ox.set_faults(ox_connector::emulator::FaultSettings {
        rules: vec![ox_connector::emulator::FaultRule {
            service: Some("OXUserService".into()),
            operation: Some("createByModuleAccess".into()),
            count: Some(1),
            ..Default::default()
        }],
        ..Default::default()
    });
    let file = t.write(user("u-1", "anna", 10, json!({})));
    crate::support::wait_for(
        "the failure to show",
        std::time::Duration::from_secs(20),
        || !t.blocked().is_null(),
    )
    .await;
    assert!(
        t.env.listener_dir().join(&file).exists(),
        "the file stays while OX fails"
    );
    assert!(t.blocked()["error"]
        .as_str()
        .unwrap()
        .contains("Emulated storage failure"));
    t.settle().await;
    assert!(t.state().context(10).unwrap().user("anna").is_some());
    daemon.stop().await;
}

/// Found by the kill -9 suite: a daemon killed after it had copied a moving user into the new
/// context and deleted the old one, but before it wrote the state, left the state store saying
/// "in the old context". The retry's copy then failed (no such user), its create found the name
/// taken in the new context, and the queue was blocked for good.
#[tokio::test]
async fn a_move_interrupted_after_the_old_user_was_deleted_is_finished_on_retry() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(context("ctx-20", 20, None));
    t.write(user("u-1", "anna", 10, json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    daemon.stop().await;

    // What the killed attempt did in OX: copyUser into context 20, then delete in context 10.
    let auth = t.context_admin(10);
    let client = t.ox_client();
    let old_id = t.ox_user(10, "anna").id;
    let old = ox_connector::ox::soap::User::with_id(old_id);
    let copy = client.copy_user(&old, 10, 20).await.unwrap();
    client.delete_user(10, &old, &auth).await.unwrap();

    // The move's file is still there and comes again.
    t.write(user("u-1", "anna", 20, json!({"oxDepartment": "Moved"})));
    let daemon = t.daemon().await;
    t.settle().await;
    assert!(t.blocked().is_null(), "{}", t.blocked());
    let state = t.state();
    assert!(state.context(10).unwrap().user("anna").is_none());
    let anna = state
        .context(20)
        .unwrap()
        .user("anna")
        .expect("anna in context 20");
    assert_eq!(Some(anna.id), copy.id, "the copy is adopted, not replaced");
    assert_eq!(anna.data.department.as_deref(), Some("Moved"));
    daemon.stop().await;
}

#[tokio::test]
async fn applying_is_idempotent_adopts_what_exists_and_replaces_re_created_objects() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;

    // A user that exists in OX already (made there directly) is adopted, not duplicated.
    let auth = t.context_admin(10);
    let client = t.ox_client();
    let pre = ox_connector::ox::soap::User {
        name: Some("anna".into()),
        password: Some("x-Secret1".into()),
        display_name: Some("Pre Existing".into()),
        given_name: Some("Pre".into()),
        sur_name: Some("Existing".into()),
        primary_email: Some("anna@example.org".into()),
        email1: Some("anna@example.org".into()),
        ..Default::default()
    };
    let pre_id = client
        .create_user(10, &pre, &auth)
        .await
        .unwrap()
        .id
        .unwrap();
    t.write(user("u-1", "anna", 10, json!({})));
    t.settle().await;
    let ctx = t.state().context(10).unwrap().clone();
    assert_eq!(ctx.user("anna").unwrap().id, pre_id);
    assert_eq!(
        ctx.user("anna").unwrap().data.display_name.as_deref(),
        Some("First anna")
    );

    // The same change again changes nothing.
    let before = t.state();
    t.write(user("u-1", "anna", 10, json!({})));
    t.settle().await;
    assert_eq!(t.state(), before);

    // Re-created in UDM (same DN, new entry UUID) without a delete: replaced, not merged.
    t.write(user("u-1-new", "anna", 10, json!({"oxDepartment": "New"})));
    t.settle().await;
    let ctx = t.state().context(10).unwrap().clone();
    let anna = ctx.user("anna").unwrap();
    assert_ne!(anna.id, pre_id, "a new OX user");
    assert_eq!(anna.data.department.as_deref(), Some("New"));

    // A delete of something already gone in OX succeeds.
    client
        .delete_user(10, &ox_connector::ox::soap::User::with_id(anna.id), &auth)
        .await
        .unwrap();
    t.write(user_deleted("u-1-new", "anna"));
    t.settle().await;
    assert!(t.blocked().is_null());
    daemon.stop().await;
}

#[tokio::test]
async fn objects_not_for_ox_are_skipped_with_a_reason() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-1", "plain", 10, json!({"isOxUser": "Not"})));
    t.write(user("u-2", "nocontext", 10, json!({"oxContext": ""})));
    t.write(user("u-3", "oxadmin", 10, json!({})));
    t.write(serde_json::json!({
        "dn": format!("cn=pc1,cn=computers,{DOMAIN}"), "id": "c-1", "object": {"name": "pc1"},
        "options": [], "udm_object_type": "computers/linux"
    }));
    t.write(user_deleted("u-never", "ghost"));
    let daemon = t.daemon().await;
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    assert!(ctx.user("plain").is_none());
    assert!(ctx.user("nocontext").is_none());
    assert_eq!(
        ctx.users.len(),
        1,
        "only the context admin: {:?}",
        ctx.users
    );
    assert_eq!(
        ctx.users[0].data.display_name.as_deref(),
        Some("OX Admin"),
        "the admin is untouched"
    );
    assert!(t.blocked().is_null());
    daemon.stop().await;
}

#[tokio::test]
async fn a_user_whose_context_is_queued_behind_it_neither_blocks_forever_nor_is_dropped() {
    let mut t = OxEnv::start().await;
    let daemon = t.daemon().await;
    // The user arrives in one batch…
    t.write(user("u-1", "anna", 40, json!({})));
    crate::support::wait_for(
        "the user to wait for its context",
        std::time::Duration::from_secs(20),
        || !t.blocked().is_null(),
    )
    .await;
    assert!(t.blocked()["error"]
        .as_str()
        .unwrap()
        .contains("context 40"));
    // …its context (created, then modified: named after its last change) in the next one.
    t.write(context("ctx-40", 40, Some(7)));
    t.settle().await;
    let state = t.state();
    let ctx = state.context(40).expect("the context was created");
    assert_eq!(ctx.data.max_quota, Some(7));
    assert!(ctx.user("anna").is_some(), "the user was not dropped");
    crate::support::wait_for(
        "the queue to unblock",
        std::time::Duration::from_secs(10),
        || t.blocked().is_null(),
    )
    .await;
    daemon.stop().await;
}
