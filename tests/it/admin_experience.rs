//! Issue #17 and #16's admin-facing fixes through the real daemon and the `ox-connector`
//! binary: un-skipping, credentials that reload, `queue show` of hostile quarantined files.

use std::time::Duration;

use ox_connector::emulator::{FaultConfig, FaultRule};
use serde_json::json;

use crate::support::cli;
use crate::support::ox::*;
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);

/// Makes every user creation fail until the faults are cleared.
fn refuse_user_creation(t: &OxEnv) {
    t.ox.set_faults(FaultConfig {
        rules: vec![FaultRule {
            service: Some("OXUserService".into()),
            operation: Some("createByModuleAccess".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
}

async fn block_and_skip(t: &mut OxEnv, id: &str, name: &str) -> String {
    let dir = t.env.data.path().to_owned();
    let file = t.write(user(id, name, 10, json!({})));
    wait_for("the queue to block", WAIT, || {
        t.blocked()["file"] == file.as_str()
    })
    .await;
    let skip = cli::run(&dir, &["queue", "skip", "blocked", "--reason", "later"]).await;
    assert_eq!(skip.code, 0, "{}{}", skip.stdout, skip.stderr);
    t.settle().await;
    file
}

fn in_ox(t: &OxEnv, name: &str) -> bool {
    t.state()
        .context(10)
        .is_some_and(|c| c.user(name).is_some())
}

/// Issue #17 item 1: a skipped file moved back (by `mv` as the note says, or with
/// `queue requeue`) is published again and applied, although name and content are unchanged.
#[tokio::test]
async fn a_skipped_file_put_back_is_applied() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let listener = t.env.listener_dir();
    let skipped = listener.join("skipped");

    refuse_user_creation(&t);
    let carl = block_and_skip(&mut t, "u-carl", "carl").await;
    let dora = block_and_skip(&mut t, "u-dora", "dora").await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(skipped.join(&carl))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "skipped files are for root only");
    t.ox.set_faults(FaultConfig::default());

    // By hand, as the skip note says.
    std::fs::rename(skipped.join(&carl), listener.join(&carl)).unwrap();
    wait_for("carl in OX after mv", WAIT, || in_ox(&t, "carl")).await;
    t.settle().await;
    assert!(skipped.join(format!("{carl}.requeued.txt")).is_file());
    assert!(!skipped.join(format!("{carl}.skipped.txt")).exists());

    // With the command.
    let requeue = cli::run(&dir, &["queue", "requeue", &dora]).await;
    assert_eq!(requeue.code, 0, "{}{}", requeue.stdout, requeue.stderr);
    wait_for("dora in OX after requeue", WAIT, || in_ox(&t, "dora")).await;
    t.settle().await;

    daemon.stop().await;
}
