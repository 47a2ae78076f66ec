//! The admin API of a running daemon, found from the data directory alone.

use std::time::Duration;

use ox_connector::admin::client::{AdminClient, AdminClientError};

use crate::support::{files, wait_for, RecordingApplier, TestEnv};

#[tokio::test]
async fn the_status_of_a_blocked_queue_is_served_to_token_holders_only() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    applier.fail(&files::name(1), u32::MAX);
    files::write(&dir, &files::name(1), &files::user("u1", "user1"));
    files::write(&dir, &files::name(2), &files::user("u2", "user2"));
    let daemon = env.daemon(applier.clone()).await;
    wait_for("a failed attempt", Duration::from_secs(20), || {
        applier.attempts_at(&files::name(1)) >= 1
    })
    .await;

    let client = AdminClient::from_data_dir(env.data.path(), Duration::from_secs(5)).unwrap();
    let report = client.status().await.unwrap();
    assert_eq!(report.pending_files, 2);
    assert_eq!(
        report.oldest_pending.as_deref(),
        Some(files::name(1).as_str())
    );
    let blocked = report.daemon.blocked.expect("the queue is blocked");
    assert_eq!(blocked.file.as_deref(), Some(files::name(1).as_str()));
    assert_eq!(blocked.error, "OX is not reachable (test)");

    // Without the token: 401.
    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.data.path().join("run/admin.json")).unwrap())
            .unwrap();
    let url = format!("{}/status", endpoint["url"].as_str().unwrap());
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    applier.heal(&files::name(1));
    client.retry().await.unwrap();
    wait_for("both applied", Duration::from_secs(20), || {
        applier.applied().len() == 2
    })
    .await;
    daemon.stop().await;

    // Once stopped, commands say the daemon is not running.
    assert!(matches!(
        AdminClient::from_data_dir(env.data.path(), Duration::from_secs(1)),
        Err(AdminClientError::NotRunning { .. })
    ));
}
