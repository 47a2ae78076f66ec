//! Client ↔ emulator round trips for every operation the connector uses, with OX's fault
//! texts, special characters in every string field, and credentials in the wrong place.

use ox_connector::ox::soap::{
    AccountDataOnCreate, Context, Credentials, FaultKind, Group, OxClient, OxError, OxErrorKind,
    Resource, StringMapMap, User, UserModuleAccess,
};

use crate::support::{self, admin, context, env, new_user};
use ox_connector::emulator::EmulatorSettings;

fn fault(err: &OxError) -> (OxErrorKind, &str) {
    (err.kind(), err.fault_text().unwrap_or("<no fault>"))
}

const NASTY: &str = "<&>\"' ]]> &amp; äöü ß 漢字 🙂\ttab";

#[tokio::test]
async fn a_context_is_created_changed_listed_and_deleted_with_its_content() {
    let env = env().await;
    let c = &env.client;
    let created = c
        .create_context(
            &Context {
                id: Some(10),
                name: Some("context10".into()),
                max_quota: Some(1000),
                login_mappings: vec!["context10".into(), "10".into()],
                ..Context::default()
            },
            &support::admin_user(10),
        )
        .await
        .unwrap();
    assert_eq!((created.id, created.enabled), (Some(10), Some(true)));
    assert_eq!(created.filestore_name.as_deref(), Some("10_ctx_store"));
    assert!(c.context_exists(10).await.unwrap());
    assert!(!c.context_exists(11).await.unwrap());

    let snap = env.ox.state();
    let ctx = snap.context(10).unwrap();
    assert_eq!(
        ctx.admin.as_ref().map(|a| (a.id, a.name.as_str())),
        Some((2, "oxadmin-context10"))
    );
    assert_eq!(ctx.group("users").unwrap().members, [2]);
    assert_eq!(
        ctx.user("oxadmin-context10").unwrap().data.contextadmin,
        Some(true)
    );

    let change = Context {
        name: Some("renamed".into()),
        max_quota: Some(-1),
        ..Context::with_id(10)
    };
    c.change_context(&change).await.unwrap();
    let got = c.get_context(10).await.unwrap();
    assert_eq!(
        (got.name.as_deref(), got.max_quota),
        (Some("renamed"), Some(-1))
    );
    assert_eq!(
        got.login_mappings,
        ["context10", "10"],
        "unsent fields are kept"
    );

    context(c, 20).await;
    let names: Vec<_> = c
        .list_contexts("ren*")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(names, [Some(10)]);
    assert_eq!(c.list_contexts("*").await.unwrap().len(), 2);

    let dup = c
        .create_context(&Context::with_id(10), &support::admin_user(10))
        .await
        .unwrap_err();
    assert_eq!(
        fault(&dup),
        (
            OxErrorKind::Fault(FaultKind::ContextExists),
            "Context 10 already exists"
        )
    );
    assert!(dup.is_conflict());

    c.create_user(10, &new_user("jdoe"), &admin(10))
        .await
        .unwrap();
    c.delete_context(&Context::with_id(10)).await.unwrap();
    assert!(env.ox.state().context(10).is_none());
    assert!(!c.context_exists(10).await.unwrap());
    let missing = c.get_context(10).await.unwrap_err();
    assert_eq!(
        fault(&missing),
        (
            OxErrorKind::Fault(FaultKind::NoSuchContext),
            "Context 10 does not exist"
        )
    );
    assert!(missing.is_not_found() && !missing.is_retryable());
    let gone = c.delete_context(&Context::with_id(10)).await.unwrap_err();
    assert!(gone.is_not_found());
    // The deleted context's admin can no longer log in, and nothing is left to find.
    let auth = c
        .user_exists(10, &User::with_name("jdoe"), &admin(10))
        .await
        .unwrap_err();
    assert_eq!(
        fault(&auth),
        (
            OxErrorKind::Fault(FaultKind::InvalidCredentials),
            "Authentication failed"
        )
    );
    assert!(auth.is_auth());
}

#[tokio::test]
async fn contexts_can_be_created_with_module_access_or_an_access_combination() {
    let env = env().await;
    let access = UserModuleAccess {
        webmail: Some(true),
        calendar: Some(false),
        ..UserModuleAccess::default()
    };
    let ctx = Context {
        name: Some("c30".into()),
        ..Context::with_id(30)
    };
    env.client
        .create_context_with_access(&ctx, &support::admin_user(30), &access)
        .await
        .unwrap();
    let ctx = Context {
        name: Some("c31".into()),
        ..Context::with_id(31)
    };
    env.client
        .create_context_with_access_combination(
            &ctx,
            &support::admin_user(31),
            "groupware_standard",
        )
        .await
        .unwrap();
    let snap = env.ox.state();
    let admin30 = &snap
        .context(30)
        .unwrap()
        .user_by_id(2)
        .unwrap()
        .module_access;
    assert_eq!(
        (admin30.webmail, admin30.calendar, admin30.tasks),
        (Some(true), Some(false), None)
    );
    assert_eq!(
        snap.context(31).unwrap().access_combination.as_deref(),
        Some("groupware_standard")
    );
}

#[tokio::test]
async fn a_user_goes_through_create_lookup_change_access_and_delete() {
    let env = support::env_admin_guide().await;
    let c = &env.client;
    let a = context(c, 10).await;
    let created = c
        .create_user(
            10,
            &User {
                aliases: vec!["john@example.org".into()],
                ..new_user("jdoe")
            },
            &a,
        )
        .await
        .unwrap();
    assert_eq!(created.id, Some(3));
    assert_eq!(
        created.aliases,
        ["jdoe@example.org", "john@example.org"],
        "the primary mail is an alias"
    );
    assert_eq!(
        (created.contextadmin, created.password_mech.as_deref()),
        (Some(false), Some("{SHA-256}"))
    );
    assert!(c
        .user_exists(10, &User::with_name("jdoe"), &a)
        .await
        .unwrap());
    assert!(!c
        .user_exists(10, &User::with_name("nobody"), &a)
        .await
        .unwrap());

    let by_name = c.get_user(10, &User::with_name("jdoe"), &a).await.unwrap();
    assert_eq!((by_name.id, by_name.password.clone()), (Some(3), None));
    assert_eq!(by_name.default_group.as_ref().and_then(|g| g.id), Some(1));
    assert_eq!(
        c.get_user(10, &User::with_id(3), &a).await.unwrap(),
        by_name
    );

    let mut attrs = StringMapMap::default();
    attrs.set("config", "com.openexchange.mail.specialuse.check", "true");
    let change = User {
        name: Some("john.doe".into()),
        display_name: Some("John Q. Doe".into()),
        title: Some(String::new()),
        user_attributes: Some(attrs),
        ..User::with_id(3)
    };
    c.change_user(10, &change, &a).await.unwrap();
    let changed = c.get_user(10, &User::with_id(3), &a).await.unwrap();
    assert_eq!(
        changed.name.as_deref(),
        Some("john.doe"),
        "id + new name renames"
    );
    assert!(!c
        .user_exists(10, &User::with_name("jdoe"), &a)
        .await
        .unwrap());
    assert!(c
        .user_exists(10, &User::with_name("john.doe"), &a)
        .await
        .unwrap());
    assert_eq!(changed.display_name.as_deref(), Some("John Q. Doe"));
    assert_eq!(changed.title.as_deref(), Some(""), "an empty string clears");
    assert_eq!(
        changed.sur_name.as_deref(),
        Some("Sur jdoe"),
        "unsent fields are kept"
    );
    assert_eq!(
        changed.user_attributes.unwrap().0["config"]["com.openexchange.mail.specialuse.check"],
        "true"
    );

    let access = UserModuleAccess {
        webmail: Some(false),
        infostore: Some(true),
        ..UserModuleAccess::default()
    };
    c.change_user_module_access(10, &User::with_id(3), &access, &a)
        .await
        .unwrap();
    let got = c
        .get_user_module_access(10, &User::with_id(3), &a)
        .await
        .unwrap();
    assert_eq!(
        (got.webmail, got.infostore, got.calendar),
        (Some(false), Some(true), Some(true))
    );
    let snap = env.ox.state();
    assert_eq!(
        snap.context(10)
            .unwrap()
            .user("john.doe")
            .unwrap()
            .module_access
            .webmail,
        Some(false)
    );

    c.create_user(10, &new_user("second"), &a).await.unwrap();
    let ids: Vec<_> = c
        .list_all_users(10, &a)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, [Some(2), Some(3), Some(4)]);
    let many = c
        .get_users(10, &[User::with_id(4), User::with_name("john.doe")], &a)
        .await
        .unwrap();
    let names: Vec<_> = many.iter().map(|u| u.name.clone().unwrap()).collect();
    assert_eq!(names, ["second", "john.doe"]);

    let staff = Group {
        name: Some("staff".into()),
        displayname: Some("Staff".into()),
        members: vec![3, 4],
        ..Group::default()
    };
    c.create_group(10, &staff, &a).await.unwrap();
    c.delete_user(10, &User::with_id(3), &a).await.unwrap();
    let snap = env.ox.state();
    let ctx = snap.context(10).unwrap();
    assert!(ctx.user("john.doe").is_none());
    assert_eq!(
        ctx.group("staff").unwrap().members,
        [4],
        "a deleted user leaves its groups"
    );
    assert_eq!(ctx.group("users").unwrap().members, [2, 4]);

    let by_id = c.get_user(10, &User::with_id(99), &a).await.unwrap_err();
    assert_eq!(
        fault(&by_id),
        (
            OxErrorKind::Fault(FaultKind::NoSuchUser),
            "No such user 99 in context 10"
        )
    );
    assert!(by_id.is_not_found());
    let by_name = c
        .get_user(10, &User::with_name("gone"), &a)
        .await
        .unwrap_err();
    assert_eq!(
        by_name.fault_text(),
        Some("com.openexchange.admin.rmi.exceptions.NoSuchObjectException: No such user gone in context 10")
    );
    assert!(by_name.is_not_found());
    let change_missing = c.change_user(10, &User::with_id(3), &a).await.unwrap_err();
    assert!(change_missing.is_not_found());
    let admin_delete = c.delete_user(10, &User::with_id(2), &a).await.unwrap_err();
    assert_eq!(
        fault(&admin_delete),
        (
            OxErrorKind::Fault(FaultKind::InvalidData),
            "Admin delete not supported"
        )
    );
}

#[tokio::test]
async fn user_rules_are_enforced_with_oxs_messages() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    let cases: Vec<(User, &str)> = vec![
        (new_user("jdoe"), "User jdoe already exists in this context"),
        (
            User {
                display_name: Some("Display jdoe".into()),
                ..new_user("other")
            },
            "The displayname is already used",
        ),
        (
            User {
                primary_email: Some("jdoe@example.org".into()),
                email1: Some("jdoe@example.org".into()),
                ..new_user("other")
            },
            "Primary mail address \"jdoe@example.org\" already exists in context 10",
        ),
        (
            User {
                email1: Some("x@example.org".into()),
                ..new_user("other")
            },
            "primarymail must have the same value as email1",
        ),
        (
            User {
                given_name: None,
                sur_name: Some(String::new()),
                ..new_user("other")
            },
            "Mandatory fields not set: given_name, sur_name",
        ),
        (new_user("jö doe"), "Illegal chars: \"ö \""),
    ];
    for (user, message) in cases {
        let err = c.create_user(10, &user, &a).await.unwrap_err();
        assert_eq!(
            fault(&err),
            (OxErrorKind::Fault(FaultKind::InvalidData), message)
        );
    }
    c.create_user(10, &new_user("other"), &a).await.unwrap();
    let taken = User {
        display_name: Some("Display jdoe".into()),
        ..User::with_name("other")
    };
    let err = c.change_user(10, &taken, &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("The displayname is already used"));
    assert!(err.is_conflict());
    let same = User {
        display_name: Some("Display other".into()),
        ..User::with_name("other")
    };
    c.change_user(10, &same, &a).await.unwrap();
    let rename = User {
        name: Some("jdoe".into()),
        ..User::with_id(4)
    };
    let err = c.change_user(10, &rename, &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("Changing username is disabled!"));
    env.ox
        .set_properties(&[("USERNAME_CHANGEABLE", "true")])
        .unwrap();
    let err = c.change_user(10, &rename, &a).await.unwrap_err();
    assert_eq!(
        err.fault_text(),
        Some("User jdoe already exists in this context")
    );
    assert_eq!(
        env.ox.state().context(10).unwrap().users.len(),
        3,
        "rejected calls change nothing"
    );
    // OX adds a default sender address outside the aliases to them on create.
    let sender = User {
        default_sender_address: Some("else@example.org".into()),
        ..new_user("third")
    };
    let created = c.create_user(10, &sender, &a).await.unwrap();
    assert!(created.aliases.contains(&"else@example.org".to_string()));
}

#[tokio::test]
async fn duplicate_display_names_are_allowed_when_the_switch_says_so() {
    let mut config =
        ox_connector::emulator::EmulatorSettings::new(support::MASTER, support::MASTER_PASSWORD);
    config.options.unique_display_names = false;
    let env = support::env_with(config).await;
    let a = context(&env.client, 10).await;
    env.client
        .create_user(10, &new_user("a"), &a)
        .await
        .unwrap();
    let twin = User {
        display_name: Some("Display a".into()),
        ..new_user("b")
    };
    env.client.create_user(10, &twin, &a).await.unwrap();
}

#[tokio::test]
async fn groups_are_created_looked_up_changed_and_deleted() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    for name in ["u3", "u4", "u5"] {
        c.create_user(10, &new_user(name), &a).await.unwrap();
    }
    let staff = Group {
        name: Some("staff".into()),
        displayname: Some("Staff".into()),
        members: vec![3, 4],
        ..Group::default()
    };
    let created = c.create_group(10, &staff, &a).await.unwrap();
    assert_eq!(created.id, Some(6), "groups share the id sequence of users");
    let dup = c.create_group(10, &staff, &a).await.unwrap_err();
    assert_eq!(
        fault(&dup),
        (
            OxErrorKind::Fault(FaultKind::InvalidData),
            "Group already exists!"
        )
    );
    let missing = Group {
        displayname: None,
        ..staff.clone()
    };
    let err = c
        .create_group(
            10,
            &Group {
                name: Some("x".into()),
                ..missing
            },
            &a,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.fault_text(),
        Some("Mandatory fields not set: displayname")
    );
    let unknown_member = Group {
        name: Some("y".into()),
        members: vec![99],
        ..staff.clone()
    };
    let err = c.create_group(10, &unknown_member, &a).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (OxErrorKind::Fault(FaultKind::NoSuchUser), "No such user")
    );

    let got = c
        .get_group(10, &Group::with_name("staff"), &a)
        .await
        .unwrap();
    assert_eq!((got.id, got.members.clone()), (Some(6), vec![3, 4]));
    let listed: Vec<_> = c
        .list_groups(10, "st*", &a)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(listed, [Some(6)]);
    assert_eq!(c.list_groups(10, "*", &a).await.unwrap().len(), 2);

    let change = Group {
        name: Some("crew".into()),
        displayname: Some("Crew".into()),
        members: vec![4, 5],
        ..Group::with_id(6)
    };
    c.change_group(10, &change, &a).await.unwrap();
    let snap = env.ox.state();
    let crew = snap.context(10).unwrap().group("crew").unwrap();
    assert_eq!(crew.members, [4, 5], "change replaces the membership");
    let clash = Group {
        name: Some("users".into()),
        ..Group::with_id(6)
    };
    let err = c.change_group(10, &clash, &a).await.unwrap_err();
    assert_eq!(
        err.fault_text(),
        Some("Group users already exists in this context")
    );

    let crew = Group::with_name("crew");
    c.add_group_members(10, &crew, &[3], &a).await.unwrap();
    let err = c.add_group_members(10, &crew, &[3], &a).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::InvalidData),
            "Member already exists in group"
        )
    );
    let err = c.add_group_members(10, &crew, &[99], &a).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("No such user"));
    c.remove_group_members(10, &crew, &[4], &a).await.unwrap();
    c.remove_group_members(10, &crew, &[4], &a).await.unwrap();
    assert_eq!(
        env.ox
            .state()
            .context(10)
            .unwrap()
            .group("crew")
            .unwrap()
            .members,
        [5, 3]
    );

    let of_user: Vec<_> = c
        .list_groups_for_user(10, &User::with_id(3), &a)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name.unwrap())
        .collect();
    assert_eq!(of_user, ["users", "crew"]);

    let err = c
        .delete_group(10, &Group::with_id(1), &a)
        .await
        .unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::InvalidData),
            "Group with id 1 cannot be deleted"
        )
    );
    c.delete_group(10, &Group::with_id(6), &a).await.unwrap();
    let err = c.get_group(10, &Group::with_id(6), &a).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (OxErrorKind::Fault(FaultKind::NoSuchGroup), "No such group")
    );
    assert!(err.is_not_found());
    let err = c
        .get_group(10, &Group::with_name("crew"), &a)
        .await
        .unwrap_err();
    assert_eq!(
        err.fault_text(),
        Some("com.openexchange.admin.rmi.exceptions.NoSuchObjectException: No such group crew in context 10")
    );
}

#[tokio::test]
async fn resources_are_created_looked_up_changed_and_deleted() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    let room = Resource {
        name: Some("room101".into()),
        displayname: Some("Room 1.01".into()),
        email: Some("room101@example.org".into()),
        description: Some(String::new()),
        ..Resource::default()
    };
    let created = c.create_resource(10, &room, &a).await.unwrap();
    assert_eq!((created.id, created.available), (Some(1), Some(true)));
    let err = c.create_resource(10, &room, &a).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::InvalidData),
            "Resource room101 already exists in this context"
        )
    );
    let same_mail = Resource {
        name: Some("room102".into()),
        ..room.clone()
    };
    let err = c.create_resource(10, &same_mail, &a).await.unwrap_err();
    assert_eq!(
        err.fault_text(),
        Some("Resource e-mail address room101@example.org already exists in this context")
    );
    let got = c
        .get_resource(10, &Resource::with_name("room101"), &a)
        .await
        .unwrap();
    assert_eq!(got, created);
    let change = Resource {
        displayname: Some("Big room".into()),
        available: Some(false),
        ..Resource::with_id(1)
    };
    c.change_resource(10, &change, &a).await.unwrap();
    let listed = c.list_resources(10, "room*", &a).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].displayname.as_deref(), listed[0].available),
        (Some("Big room"), Some(false))
    );
    assert_eq!(listed[0].email.as_deref(), Some("room101@example.org"));
    c.delete_resource(10, &Resource::with_id(1), &a)
        .await
        .unwrap();
    assert!(env.ox.state().context(10).unwrap().resources.is_empty());
    let err = c
        .get_resource(10, &Resource::with_name("room101"), &a)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), OxErrorKind::Fault(FaultKind::NoSuchResource));
    assert_eq!(
        err.fault_text(),
        Some("com.openexchange.admin.rmi.exceptions.NoSuchObjectException: No such resource room101 in context 10")
    );
    assert!(c
        .delete_resource(10, &Resource::with_id(1), &a)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn copy_user_copies_a_user_into_another_context_with_master_credentials() {
    let env = env().await;
    let c = &env.client;
    let a10 = context(c, 10).await;
    let a20 = context(c, 20).await;
    let access = UserModuleAccess {
        webmail: Some(false),
        ..UserModuleAccess::default()
    };
    c.create_user(10, &new_user("jdoe"), &a10).await.unwrap();
    c.change_user_module_access(10, &User::with_id(3), &access, &a10)
        .await
        .unwrap();
    c.create_user(20, &new_user("other"), &a20).await.unwrap();
    let copy = c.copy_user(&User::with_id(3), 10, 20).await.unwrap();
    assert_eq!(copy.id, Some(4));
    assert_eq!(copy.name, None, "OX answers with the new id only");
    let snap = env.ox.state();
    let copied = snap.context(20).unwrap().user("jdoe").unwrap();
    assert_eq!((copied.id, copied.module_access.webmail), (4, Some(false)));
    assert_eq!(copied.data.display_name.as_deref(), Some("Display jdoe"));
    assert!(
        snap.context(10).unwrap().user("jdoe").is_some(),
        "the source stays"
    );

    let err = c.copy_user(&User::with_id(3), 10, 20).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::UserExists),
            "User jdoe already exists in context 20"
        )
    );
    let err = c.copy_user(&User::with_id(99), 10, 20).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::NoSuchUser),
            "No such user 99 in context 10"
        )
    );
    let err = c.copy_user(&User::with_id(3), 10, 30).await.unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::NoSuchContext),
            "Context 30 does not exist"
        )
    );
}

#[tokio::test]
async fn secondary_accounts_are_created_listed_and_deleted() {
    let env = env().await;
    let c = &env.client;
    let a = context(c, 10).await;
    c.create_user(10, &new_user("u3"), &a).await.unwrap();
    c.create_user(10, &new_user("u4"), &a).await.unwrap();
    let sales = AccountDataOnCreate {
        login: Some("uuid-u3".into()),
        name: Some("sales".into()),
        primary_address: Some("sales@example.org".into()),
        personal: Some("Sales Team".into()),
        mail_endpoint_source: Some("primary".into()),
        password: Some("secret".into()),
        ..AccountDataOnCreate::default()
    };
    c.create_secondary_account(10, &sales, &[3], &[], &a)
        .await
        .unwrap();
    c.create_secondary_account(10, &sales, &[4], &[], &a)
        .await
        .unwrap();
    let all = c.list_secondary_accounts(10, &[], &[], &a).await.unwrap();
    assert_eq!(
        all.iter().map(|x| x.user_id).collect::<Vec<_>>(),
        [Some(3), Some(4)]
    );
    assert_eq!(all[0].password, None, "passwords are not listed");
    assert_eq!(
        c.list_secondary_accounts(10, &[4], &[], &a)
            .await
            .unwrap()
            .len(),
        1
    );
    let snap = env.ox.state();
    assert_eq!(snap.context(10).unwrap().secondary_accounts.len(), 2);

    let err = c
        .create_secondary_account(10, &sales, &[], &[], &a)
        .await
        .unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::InvalidData),
            "Missing users/groups in account data"
        )
    );
    let err = c
        .create_secondary_account(10, &sales, &[99], &[], &a)
        .await
        .unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::NoSuchUser),
            "No such user 99 in context 10"
        )
    );
    let err = c
        .create_secondary_account(10, &sales, &[], &[77], &a)
        .await
        .unwrap_err();
    assert_eq!(err.fault_text(), Some("No such group 77 in context 10"));

    assert!(c
        .delete_secondary_account(10, "sales@example.org", &[], &[0], &a)
        .await
        .unwrap());
    assert!(!c
        .delete_secondary_account(10, "sales@example.org", &[], &[0], &a)
        .await
        .unwrap());
    assert!(env
        .ox
        .state()
        .context(10)
        .unwrap()
        .secondary_accounts
        .is_empty());
}

/// Every `xs:string` field of `User`, read from the shipped WSDL.
fn user_string_fields() -> Vec<String> {
    let wsdl = include_str!("../../src/emulator/wsdl/OXUserService.wsdl");
    let start = wsdl.find("<xsd:complexType name=\"User\">").unwrap();
    let end = start + wsdl[start..].find("</xsd:complexType>").unwrap();
    wsdl[start..end]
        .lines()
        .filter(|l| l.contains("type=\"xsd:string\""))
        .map(|l| {
            let i = l.find("name=\"").unwrap() + 6;
            l[i..i + l[i..].find('"').unwrap()].to_string()
        })
        .collect()
}

#[tokio::test]
async fn unicode_and_xml_special_characters_survive_every_string_field() {
    // OX checks group and resource names against a character list by default; this test is
    // about the wire, so the checks are off.
    let config = EmulatorSettings::new(support::MASTER, support::MASTER_PASSWORD)
        .with_properties(&[
            ("CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS", "false"),
            ("CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS", "false"),
        ])
        .unwrap();
    let env = support::env_with(config).await;
    let c = &env.client;
    let a = context(c, 10).await;
    let fields = user_string_fields();
    assert!(fields.len() > 90, "{fields:?}");
    let fill = |suffix: &str| -> User {
        let mut json = serde_json::Map::new();
        for f in &fields {
            json.insert(f.clone(), format!("{NASTY} {f} {suffix}").into());
        }
        // OX refuses mail fields that are no e-mail addresses: the characters go into a
        // quoted local part (with `"` escaped) and an internationalized domain.
        let address = |what: &str| {
            let local = format!("{NASTY} {what} {suffix}").replace('"', "\\\"");
            format!("\"{local}\"@bücher.example")
        };
        let mail = address("mail");
        json.insert("name".into(), "jdoe".into());
        // OX refuses a language without an underscore on change.
        json.insert("language".into(), format!("{suffix}_{NASTY}").into());
        json.insert("primaryEmail".into(), mail.clone().into());
        json.insert("email1".into(), mail.clone().into());
        json.insert("email2".into(), address("email2").into());
        json.insert("email3".into(), address("email3").into());
        json.insert("defaultSenderAddress".into(), mail.clone().into());
        json.insert("aliases".into(), vec![mail, address("alias")].into());
        serde_json::from_value(json.into()).unwrap()
    };
    let user = fill("1");
    let created = c.create_user(10, &user, &a).await.unwrap();
    assert_eq!(
        created,
        User {
            id: created.id,
            contextadmin: Some(false),
            mailenabled: Some(true),
            default_group: created.default_group.clone(),
            ..user.clone()
        }
    );
    let got = c.get_user(10, &User::with_name("jdoe"), &a).await.unwrap();
    assert_eq!(
        got,
        User {
            password: None,
            ..created.clone()
        }
    );

    let changed = User {
        id: Some(3),
        ..fill("2")
    };
    c.change_user(10, &changed, &a).await.unwrap();
    let got = c.get_user(10, &User::with_id(3), &a).await.unwrap();
    assert_eq!(
        got,
        User {
            password: None,
            ..User {
                id: got.id,
                contextadmin: Some(false),
                mailenabled: Some(true),
                default_group: got.default_group.clone(),
                ..changed
            }
        }
    );

    let group = Group {
        name: Some(format!("{NASTY} group")),
        displayname: Some(format!("{NASTY} display")),
        ..Group::default()
    };
    let created = c.create_group(10, &group, &a).await.unwrap();
    assert_eq!(
        c.get_group(10, &Group::with_name(group.name.clone().unwrap()), &a)
            .await
            .unwrap(),
        created
    );
    assert_eq!(created.displayname, group.displayname);

    let resource = Resource {
        name: Some(format!("{NASTY} room")),
        displayname: Some(format!("{NASTY} display")),
        description: Some(format!("{NASTY} description")),
        email: Some(format!("{NASTY}@rooms")),
        ..Resource::default()
    };
    let created = c.create_resource(10, &resource, &a).await.unwrap();
    let got = c
        .get_resource(10, &Resource::with_name(resource.name.clone().unwrap()), &a)
        .await
        .unwrap();
    assert_eq!(
        (got.description, got.email),
        (resource.description, resource.email)
    );
    assert_eq!(created.name, resource.name);

    let ctx = Context {
        name: Some(format!("{NASTY} ctx")),
        ..Context::with_id(20)
    };
    c.create_context(&ctx, &support::admin_user(20))
        .await
        .unwrap();
    assert_eq!(c.get_context(20).await.unwrap().name, ctx.name);

    let account = AccountDataOnCreate {
        name: Some(format!("{NASTY} account")),
        personal: Some(format!("{NASTY} personal")),
        primary_address: Some(format!("{NASTY}@accounts")),
        login: Some(NASTY.into()),
        ..AccountDataOnCreate::default()
    };
    c.create_secondary_account(10, &account, &[3], &[], &a)
        .await
        .unwrap();
    let listed = c.list_secondary_accounts(10, &[3], &[], &a).await.unwrap();
    assert_eq!(
        (listed[0].name.clone(), listed[0].personal.clone()),
        (account.name, account.personal)
    );
    assert_eq!(listed[0].login.as_deref(), Some(NASTY));

    // Logins and passwords with special characters work too.
    let master = Credentials::new("oxadminmaster", "master-secret");
    let nasty_admin = User {
        name: Some("admin30".into()),
        password: Some(NASTY.into()),
        ..support::admin_user(30)
    };
    let tricky = OxClient::builder(env.ox.base_url())
        .master(master)
        .build()
        .unwrap();
    tricky
        .create_context(&Context::with_id(30), &nasty_admin)
        .await
        .unwrap();
    let creds = Credentials::new("admin30", NASTY);
    assert!(tricky
        .user_exists(30, &User::with_name("admin30"), &creds)
        .await
        .unwrap());
}

#[tokio::test]
async fn user_names_with_special_characters_are_rejected_like_ox_does() {
    let env = env().await;
    let a = context(&env.client, 10).await;
    let err = env
        .client
        .create_user(10, &new_user("a<&>b"), &a)
        .await
        .unwrap_err();
    assert_eq!(err.fault_text(), Some("Illegal chars: \"<&>\""));
}

#[tokio::test]
async fn credentials_in_the_wrong_place_fail_authentication() {
    let env = env().await;
    let c = &env.client;
    let a10 = context(c, 10).await;
    context(c, 20).await;
    let master = Credentials::new(support::MASTER, support::MASTER_PASSWORD);
    let probe = User::with_name("oxadmin-context10");
    let cases = [
        (
            10,
            master.clone(),
            "master admin on a context-admin service",
        ),
        (20, a10.clone(), "admin of another context"),
        (99, a10.clone(), "a context that does not exist"),
        (
            10,
            Credentials::new("oxadmin-context10", "wrong"),
            "wrong password",
        ),
        (
            10,
            Credentials::new("nobody", support::ADMIN_PASSWORD),
            "unknown login",
        ),
        (10, Credentials::default(), "empty credentials"),
    ];
    for (ctx, creds, why) in cases {
        let err = c.user_exists(ctx, &probe, &creds).await.unwrap_err();
        assert_eq!(
            fault(&err),
            (
                OxErrorKind::Fault(FaultKind::InvalidCredentials),
                "Authentication failed"
            ),
            "{why}"
        );
        assert!(err.is_auth() && !err.is_retryable(), "{why}");
    }
    // Context-admin credentials are not master credentials.
    let as_admin = OxClient::builder(env.ox.base_url())
        .master(a10.clone())
        .build()
        .unwrap();
    let err = as_admin.get_context(10).await.unwrap_err();
    assert_eq!(err.fault_text(), Some("Authentication failed"));
    let err = as_admin
        .copy_user(&User::with_id(2), 10, 20)
        .await
        .unwrap_err();
    assert_eq!(err.fault_text(), Some("Authentication failed"));
    assert!(env
        .ox
        .state()
        .context(20)
        .unwrap()
        .user("oxadmin-context10")
        .is_none());
}

#[tokio::test]
async fn the_master_override_switch_lets_the_master_admin_act_in_contexts() {
    let mut config =
        ox_connector::emulator::EmulatorSettings::new(support::MASTER, support::MASTER_PASSWORD);
    config.options.master_override = true;
    let env = support::env_with(config).await;
    context(&env.client, 10).await;
    let master = env.client.master().clone();
    assert!(env
        .client
        .user_exists(10, &User::with_id(2), &master)
        .await
        .unwrap());
    let err = env
        .client
        .user_exists(11, &User::with_id(2), &master)
        .await
        .unwrap_err();
    assert_eq!(
        fault(&err),
        (
            OxErrorKind::Fault(FaultKind::NoSuchContext),
            "The context 11 does not exist!"
        )
    );
    assert!(err.is_not_found());
}

#[tokio::test]
async fn freed_names_and_addresses_can_be_taken_again() {
    let env = support::env_admin_guide().await;
    let c = &env.client;
    let a = context(c, 10).await;
    c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    let moved = User {
        name: Some("john".into()),
        display_name: Some("John".into()),
        primary_email: Some("john@example.org".into()),
        email1: Some("john@example.org".into()),
        aliases: vec!["john@example.org".into()],
        default_sender_address: Some("john@example.org".into()),
        ..User::with_id(3)
    };
    c.change_user(10, &moved, &a).await.unwrap();
    // Name, display name and primary mail of the old jdoe are free again.
    let again = c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    assert_eq!(again.id, Some(4));
    c.delete_user(10, &User::with_id(4), &a).await.unwrap();
    c.create_user(10, &new_user("jdoe"), &a).await.unwrap();
    let g = Group {
        name: Some("g".into()),
        displayname: Some("G".into()),
        ..Group::default()
    };
    let first = c.create_group(10, &g, &a).await.unwrap();
    c.change_group(
        10,
        &Group {
            name: Some("h".into()),
            ..Group::with_id(first.id.unwrap())
        },
        &a,
    )
    .await
    .unwrap();
    c.create_group(10, &g, &a).await.unwrap();
    let r = Resource {
        name: Some("r".into()),
        displayname: Some("R".into()),
        email: Some("r@example.org".into()),
        ..Resource::default()
    };
    c.create_resource(10, &r, &a).await.unwrap();
    let renamed = Resource {
        name: Some("s".into()),
        email: Some("s@example.org".into()),
        ..Resource::with_id(1)
    };
    c.change_resource(10, &renamed, &a).await.unwrap();
    c.create_resource(10, &r, &a).await.unwrap();
    let snap = env.ox.state();
    let ctx = snap.context(10).unwrap();
    assert_eq!(ctx.users.len(), 3);
    assert_eq!(ctx.groups.len(), 3);
    assert_eq!(ctx.resources.len(), 2);
}

#[tokio::test]
async fn lower_case_mode_folds_names_and_logins() {
    let mut config =
        ox_connector::emulator::EmulatorSettings::new(support::MASTER, support::MASTER_PASSWORD);
    config.options.lowercase_names = true;
    let env = support::env_with(config).await;
    let c = &env.client;
    context(c, 10).await;
    let shouting = Credentials::new("OXADMIN-context10", support::ADMIN_PASSWORD);
    let created = c
        .create_user(10, &new_user("JDoe"), &shouting)
        .await
        .unwrap();
    assert_eq!(created.name.as_deref(), Some("jdoe"));
    assert!(c
        .user_exists(10, &User::with_name("JDOE"), &shouting)
        .await
        .unwrap());
    let twin = User {
        display_name: Some("x".into()),
        primary_email: Some("x@example.org".into()),
        email1: Some("x@example.org".into()),
        ..new_user("jdoe")
    };
    let err = c.create_user(10, &twin, &shouting).await.unwrap_err();
    assert_eq!(
        err.fault_text(),
        Some("User jdoe already exists in this context")
    );
}
