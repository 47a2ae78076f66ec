//! The OX subscriber's state store (`src/provision/state.rs`) against a real nats-server: its
//! optimistic writes and what its cache saves.

use ox_connector::provision::state::{ObjectState, OxIds, OxRef, StateStore};

use crate::support::TestEnv;

fn user_at(dn: &str, version: i64) -> ObjectState {
    ObjectState {
        object_type: "users/user".into(),
        dn: dn.into(),
        object: serde_json::from_value(serde_json::json!({ "roomNumber": version })).unwrap(),
        ox: OxIds::in_context(10, 3, "anna".into()),
        source_file: None,
        applied_at: chrono::Utc::now(),
        groups_pending: Default::default(),
    }
}

/// The DN index entries (DN key → revision, entry UUID).
async fn dn_index(js: &async_nats::jetstream::Context) -> Vec<(u64, String)> {
    use futures::TryStreamExt;
    let bucket = js.get_key_value("ox-dn-index").await.unwrap();
    let keys: Vec<String> = bucket.keys().await.unwrap().try_collect().await.unwrap();
    let mut entries = Vec::new();
    for key in keys {
        let entry = bucket.entry(&key).await.unwrap().unwrap();
        entries.push((
            entry.revision,
            String::from_utf8_lossy(&entry.value).into_owned(),
        ));
    }
    entries
}

/// A change that keeps the DN writes only the object: the DN index is rewritten when the DN
/// changes, and once after a restart (the index may have been left behind by a crash between
/// the two writes).
#[tokio::test]
async fn the_dn_index_is_written_when_the_dn_changes_and_once_after_a_restart() {
    let env = TestEnv::start().await;
    let js = env.jetstream().await;
    let store = StateStore::open(&js).await.unwrap();
    let (first, renamed) = ("uid=anna,dc=example,dc=org", "uid=anna2,dc=example,dc=org");

    store.put("u", &user_at(first, 1)).await.unwrap();
    let indexed = dn_index(&js).await;
    assert_eq!(indexed.len(), 1);
    assert_eq!(indexed[0].1, "u");

    store.put("u", &user_at(first, 2)).await.unwrap();
    assert_eq!(
        dn_index(&js).await,
        indexed,
        "the unchanged DN is not written again"
    );
    assert_eq!(
        store.get("u").await.unwrap().unwrap().object["roomNumber"],
        2
    );
    assert_eq!(store.get_by_dn(first).await.unwrap().unwrap().0, "u");

    store.put("u", &user_at(renamed, 3)).await.unwrap();
    assert!(store.get_by_dn(first).await.unwrap().is_none());
    assert_eq!(store.get_by_dn(renamed).await.unwrap().unwrap().0, "u");
    let after_rename = dn_index(&js).await;
    assert_eq!(after_rename.len(), 1);

    // A crash left the object without its DN entry; the next process writes it again.
    let bucket = js.get_key_value("ox-dn-index").await.unwrap();
    {
        use futures::TryStreamExt;
        let keys: Vec<String> = bucket.keys().await.unwrap().try_collect().await.unwrap();
        for key in keys {
            bucket.purge(key).await.unwrap();
        }
    }
    let restarted = StateStore::open(&js).await.unwrap();
    restarted.put("u", &user_at(renamed, 4)).await.unwrap();
    assert_eq!(restarted.get_by_dn(renamed).await.unwrap().unwrap().0, "u");
    assert_eq!(
        restarted.get("u").await.unwrap().unwrap().object["roomNumber"],
        4
    );

    restarted.remove("u").await.unwrap();
    assert!(restarted.get("u").await.unwrap().is_none());
    assert!(dn_index(&js).await.is_empty());
}

/// Users of one group in different contexts change their parts of the group's state at the
/// same time: a write based on a state someone else changed meanwhile is refused, so the
/// writer reads again instead of overwriting the other's part.
#[tokio::test]
async fn a_group_state_changed_meanwhile_is_not_overwritten() {
    let env = TestEnv::start().await;
    let store = StateStore::open(&env.jetstream().await).await.unwrap();
    let group = |contexts: &[i32]| ObjectState {
        object_type: "groups/group".into(),
        dn: "cn=staff,cn=groups,dc=example,dc=org".into(),
        object: Default::default(),
        ox: OxIds {
            per_context: contexts
                .iter()
                .map(|c| {
                    let reference = OxRef {
                        id: 7,
                        name: "staff".into(),
                        members: vec![1],
                    };
                    (*c, reference)
                })
                .collect(),
            ..OxIds::default()
        },
        source_file: None,
        applied_at: chrono::Utc::now(),
        groups_pending: Default::default(),
    };
    store.put("g", &group(&[1])).await.unwrap();
    let (read_by_first, revision) = store.get_versioned("g").await.unwrap().unwrap();
    let (_, same_revision) = store.get_versioned("g").await.unwrap().unwrap();
    assert_eq!(revision, same_revision);

    // The second writer adds context 2; the first, still holding the old revision, would drop it.
    assert!(store
        .replace_if_unchanged("g", &group(&[1, 2]), same_revision)
        .await
        .unwrap());
    assert!(!store
        .replace_if_unchanged("g", &read_by_first, revision)
        .await
        .unwrap());
    let (now, newer) = store.get_versioned("g").await.unwrap().unwrap();
    assert_eq!(
        now.ox.per_context.keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(store
        .replace_if_unchanged("g", &group(&[1, 2, 3]), newer)
        .await
        .unwrap());
}

/// Contexts of changes applied side by side are created at the same time: each keeps its
/// admin's login, in the file and in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_stored_at_the_same_time_are_all_kept() {
    use ox_connector::provision::credentials::{AdminLogin, ContextCredentials};

    let env = TestEnv::start().await;
    let js = env.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contexts.json");
    let credentials =
        std::sync::Arc::new(ContextCredentials::open(file.clone(), &js).await.unwrap());
    let writes = (1..=20).map(|id| {
        let credentials = credentials.clone();
        tokio::spawn(async move {
            let login = AdminLogin {
                adminuser: format!("oxadmin-context{id}"),
                adminpass: format!("secret-{id}"),
            };
            credentials.set(&id.to_string(), login).await.unwrap();
        })
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap();
    }

    let in_file: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(in_file.len(), 20, "{:?}", in_file.keys());
    let reopened = ContextCredentials::open(dir.path().join("restored.json"), &js)
        .await
        .unwrap();
    for id in 1..=20 {
        let login = reopened.get(&id.to_string()).unwrap().unwrap();
        assert_eq!(login.adminuser, format!("oxadmin-context{id}"));
    }
}
