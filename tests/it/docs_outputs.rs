//! docs/operations.md and README.md show the output of today's binary: each failure the docs
//! walk through is reproduced against a real daemon, nats-server and the OX emulator, the
//! `ox-connector` commands are run, their output is normalised (see [`normalise`]) and compared
//! with the block under the marker `<!-- output: ID -->` in the doc.
//!
//! To rewrite the blocks from today's output: `UPDATE_DOCS=1 cargo nextest run -E
//! 'test(/^docs_outputs::/)'`. Each test checks (or rewrites) its own blocks; a file lock keeps
//! the tests that run at once from writing over each other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ox_connector::emulator::{Emulator, EmulatorSettings, FaultRule, FaultSettings};
use ox_connector::ox::soap::{Group, Resource, User};
use serde_json::json;

use crate::support::cli;
use crate::support::files::old_file;
use crate::support::ox::*;
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);
/// What the data directory is shown as.
const DATA_DIR: &str = "/var/lib/univention-appcenter/apps/ox-connector/data";
/// What the OX emulator's URL is shown as.
const OX_URL: &str = "http://ox.example.org";
/// Every block the docs have, by file; each is made by one test below.
const BLOCKS: &[(&str, &[&str])] = &[
    (
        "docs/operations.md",
        &[
            "ox-down",
            "ox-back",
            "wrong-credentials",
            "broken-file",
            "broken-requeue",
            "rejected",
            "rejected-show",
            "rejected-skip",
            "rename-refused",
            "queue-full",
            "not-ready",
            "not-running",
            "pause",
            "reconcile",
            "state-import",
            "json-log",
        ],
    ),
    ("README.md", &["backlog"]),
];

/// Makes the volatile parts of an output stable: the data directory and the OX URL become the
/// App Center's path and `http://ox.example.org`, other loopback ports `<port>`, a temporary
/// folder as the test names it; pids, times, durations, attempt counts and the adaptive OX
/// call limit become placeholders. The `Progress:` line (pace and time left) is kept: the test
/// makes its counts.
fn normalise(text: &str, data_dir: &Path, ox_urls: &[String]) -> String {
    let mut text = text.replace(&data_dir.display().to_string(), DATA_DIR);
    for url in ox_urls {
        text = text.replace(url.as_str(), OX_URL);
    }
    let rules: &[(&str, &str)] = &[
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r"pid \d+", "pid <pid>"),
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)",
            "<time>",
        ),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>"),
        (r"\b\d+ (d \d+ h|h \d+ min|min|s)\b", "<duration>"),
        (r"after \d+ attempt\(s\)", "after <n> attempt(s)"),
        (r"\b\d+ attempts?\b", "<n> attempts"),
        (r"limit \d+ of", "limit <n> of"),
        (r"\d+ in flight", "<n> in flight"),
        (r"latency floor [\d.]+ ms", "latency floor <ms> ms"),
    ];
    for (pattern, with) in rules {
        let pattern = regex::Regex::new(pattern).unwrap();
        text = text
            .split_inclusive('\n')
            // The pace and the time left follow from the counts of the test: kept.
            .map(|line| match line.starts_with("Progress:") {
                true => line.to_owned(),
                false => pattern.replace_all(line, *with).into_owned(),
            })
            .collect();
    }
    text
}

/// A daemon's data directory and the OX URLs to hide.
struct Shell {
    dir: PathBuf,
    ox_urls: Vec<String>,
    /// Other temporary folders and what they are shown as.
    folders: Vec<(PathBuf, &'static str)>,
}

impl Shell {
    fn of(t: &OxEnv) -> Self {
        Shell {
            dir: t.env.data.path().to_owned(),
            ox_urls: vec![t.env.settings.ox.soap_server.clone(), t.ox.base_url()],
            folders: Vec::new(),
        }
    }

    /// `$ ox-connector ARGS` and what it printed (stdout, then stderr without progress lines),
    /// normalised.
    async fn run(&self, args: &[&str]) -> String {
        let output = cli::run(&self.dir, args).await;
        let mut text = format!("$ ox-connector {}\n{}", shown(args), output.stdout);
        for line in output.stderr.lines() {
            if !line.starts_with("reconcile: ") && !line.starts_with("state import: ") {
                text.push_str(line);
                text.push('\n');
            }
        }
        for (folder, shown) in &self.folders {
            text = text.replace(&folder.display().to_string(), shown);
        }
        normalise(&text, &self.dir, &self.ox_urls)
    }

    /// [`Shell::run`] again until two runs in a row print the same and `done` holds.
    async fn settled(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = self.run(args).await;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.run(args).await;
            if now == last && done(&now) {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the output of {args:?} did not settle:\n{now}"
            );
            last = now;
        }
    }
}

/// The arguments as an admin types them (quoted when they have a space).
fn shown(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the blocks of `file` (relative to the repository) against `made`, or rewrites them
/// with `UPDATE_DOCS=1`.
fn check(file: &str, made: &[(&str, String)]) {
    for (id, _) in made {
        assert!(
            BLOCKS.iter().any(|(f, ids)| *f == file && ids.contains(id)),
            "{file}: {id} is not in BLOCKS"
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let lock = std::fs::File::open(&path).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let update = std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1");
    let mut rewritten = text.clone();
    let mut wrong = Vec::new();
    for (id, output) in made {
        let (start, end) = block_range(&rewritten, id)
            .unwrap_or_else(|| panic!("{file} has no block <!-- output: {id} -->"));
        if rewritten[start..end] != **output {
            wrong.push(format!(
                "--- {file} <!-- output: {id} --> says:\n{}--- today's binary prints:\n{output}",
                &rewritten[start..end]
            ));
            rewritten.replace_range(start..end, output);
        }
    }
    if update {
        if rewritten != text {
            std::fs::write(&path, rewritten).unwrap();
        }
    } else {
        assert!(
            wrong.is_empty(),
            "{}\nRewrite with: UPDATE_DOCS=1 cargo nextest run -E 'test(/^docs_outputs::/)'",
            wrong.join("\n")
        );
    }
}

/// The byte range of the content of the fenced block (```` ``` ```` or ```` ```json ````)
/// right after `<!-- output: ID -->`.
fn block_range(text: &str, id: &str) -> Option<(usize, usize)> {
    let marker = format!("<!-- output: {id} -->\n```");
    let fence = text.find(&marker)? + marker.len();
    let start = fence + text[fence..].find('\n')? + 1;
    let end = start + text[start..].find("\n```")? + 1;
    Some((start, end))
}

/// Every marker in the docs is made by a test here, and every block here has its marker.
#[test]
fn every_output_block_of_the_docs_is_made_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let marker = regex::Regex::new(r"<!-- output: ([a-z-]+) -->").unwrap();
    for (file, ids) in BLOCKS {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let found: Vec<&str> = marker
            .captures_iter(&text)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        let mut wanted = ids.to_vec();
        let mut sorted = found.clone();
        wanted.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(sorted, wanted, "{file}");
        for id in ids.iter() {
            assert!(
                block_range(&text, id).is_some(),
                "{file}: {id} has no block"
            );
        }
    }
}

#[test]
fn normalising_hides_what_changes_from_run_to_run() {
    let dir = Path::new("/tmp/.tmpAbC123");
    let text = "ox-connector is running (pid 4711, up 2 h 5 min).\n\
                path: /tmp/.tmpAbC123/listener/x.json (3 min old)\n\
                Progress: 4 applied in the last minute (4/min); 3 wait, about 45 s left.\n\
                BLOCKED since 2026-12-06 04:48:56 UTC (0 s), 1 attempt so far:\n\
                blocked on x since 2026-12-06T04:48:56Z after 37 attempt(s): at http://127.0.0.1:4242/x\n";
    assert_eq!(
        normalise(text, dir, &["http://127.0.0.1:4242".into()]),
        "ox-connector is running (pid <pid>, up <duration>).\n\
         path: /var/lib/univention-appcenter/apps/ox-connector/data/listener/x.json (<duration> old)\n\
         Progress: 4 applied in the last minute (4/min); 3 wait, about 45 s left.\n\
         BLOCKED since <time> (<duration>), <n> attempts so far:\n\
         blocked on x since <time> after <n> attempt(s): at http://ox.example.org/x\n"
    );
}

fn refuse(t: &OxEnv, service: &str, operation: &str) {
    t.ox.set_faults(FaultSettings {
        rules: vec![FaultRule {
            service: Some(service.into()),
            operation: Some(operation.into()),
            ..Default::default()
        }],
        ..Default::default()
    });
}

/// Section 1: OX goes down while changes wait; after it is back, `queue retry`.
#[tokio::test]
async fn docs_outputs_ox_down() {
    let mut t = OxEnv::start().await;
    let port = free_port();
    let config = || {
        let mut config = EmulatorSettings::new(MASTER, MASTER_PASSWORD);
        config.listen = ([127, 0, 0, 1], port).into();
        config
    };
    let ox = Emulator::start(config()).await.unwrap();
    t.env.settings.ox.soap_server = ox.base_url();
    let daemon = t.daemon().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    shell
        .settled(&["queue", "status"], |s| s.contains("Ready: yes"))
        .await;
    ox.stop().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    t.write(user("u-bob", "bob", 10, json!({})));
    let down = shell
        .settled(&["queue", "status"], |s| {
            s.contains("NOT READY: ox") && s.contains("BLOCKED") && s.contains("3 on the JetStream")
        })
        .await;
    let _ox = Emulator::start(config()).await.unwrap();
    let retry = shell.run(&["queue", "retry"]).await;
    let back = shell
        .settled(&["queue", "status"], |s| {
            s.contains("Ready: yes") && s.contains("Queue: empty")
        })
        .await;
    daemon.stop().await;
    check(
        "docs/operations.md",
        &[("ox-down", down), ("ox-back", format!("{retry}{back}"))],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Section 2: a wrong master password blocks the first context change.
#[tokio::test]
async fn docs_outputs_wrong_credentials() {
    let mut t = OxEnv::start().await;
    t.env.settings.ox.master_password = Some(ox_connector::provision::settings::Secret::new(
        "wrong-master-password",
    ));
    let daemon = t.daemon().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    t.write(context("ctx-10", 10, None));
    let status = shell
        .settled(&["queue", "status"], |s| s.contains("BLOCKED"))
        .await;
    daemon.stop().await;
    check("docs/operations.md", &[("wrong-credentials", status)]);
}

/// Section 3: a broken file is quarantined; requeueing it is refused until it is fixed.
#[tokio::test]
async fn docs_outputs_broken_file() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    let listener = t.env.listener_dir();
    let name = "2025-03-07-14-02-09-381275.json";
    std::fs::write(listener.join(name), "{\"dn\": \"uid=carl").unwrap();
    let broken = listener.join("broken").join(name);
    wait_for("the file quarantined", WAIT, || broken.is_file()).await;
    let status = shell
        .settled(&["queue", "status"], |s| s.contains("Quarantined in"))
        .await;
    let show = shell.run(&["queue", "show", name]).await;
    let refused = shell.run(&["queue", "requeue", name]).await;
    let fixed = user("u-carl", "carl", 10, json!({}));
    std::fs::write(&broken, serde_json::to_vec_pretty(&fixed).unwrap()).unwrap();
    let edit = format!("$ vi {DATA_DIR}/listener/broken/{name}\n");
    let requeued = shell.run(&["queue", "requeue", name]).await;
    wait_for("carl in OX", WAIT, || {
        t.state()
            .context(10)
            .is_some_and(|c| c.user("carl").is_some())
    })
    .await;
    daemon.stop().await;
    check(
        "docs/operations.md",
        &[
            ("broken-file", format!("{status}{show}")),
            ("broken-requeue", format!("{refused}{edit}{requeued}")),
        ],
    );
}

/// Section 4: OX rejects a change (a display name used twice, at OX's default configuration);
/// look at it, skip it.
#[tokio::test]
async fn docs_outputs_rejected_change() {
    let mut t = OxEnv::start_at_ox_defaults().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-anna",
        "anna",
        10,
        json!({"displayName": "Anna Alster"}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    t.write(user(
        "u-carl",
        "carl",
        10,
        json!({"displayName": "Anna Alster"}),
    ));
    // The fix in UCS follows as a second change of carl; it waits for the first.
    t.write(user(
        "u-carl",
        "carl",
        10,
        json!({"displayName": "Carl Conrad"}),
    ));
    let status = shell
        .settled(&["queue", "status"], |s| {
            s.contains("BLOCKED") && s.contains("queued")
        })
        .await;
    let show = shell.run(&["queue", "show", "blocked"]).await;
    let skip = shell
        .run(&[
            "queue",
            "skip",
            "blocked",
            "--reason",
            "duplicate display name, fixed in UCS",
        ])
        .await;
    t.settle().await;
    daemon.stop().await;
    check(
        "docs/operations.md",
        &[
            ("rejected", status),
            ("rejected-show", show),
            ("rejected-skip", skip),
        ],
    );
}

/// The `NOT READY` line of `queue status` of a daemon started with `t`'s settings.
async fn not_ready_line(t: &OxEnv, check: &str) -> String {
    let daemon = t.daemon().await;
    let shell = Shell::of(t);
    cli::wait_for_api(&shell.dir).await;
    let prefix = format!("NOT READY: {check}:");
    let status = shell
        .settled(&["queue", "status"], |s| s.contains(&prefix))
        .await;
    daemon.stop().await;
    let line = status.lines().find(|l| l.starts_with(&prefix)).unwrap();
    format!("{line}\n")
}

/// Section 6: why a daemon that starts is not ready.
#[tokio::test]
async fn docs_outputs_not_ready() {
    let mut lines = String::new();
    let mut t = OxEnv::start().await;
    t.env.settings.ox.master_password = Some(ox_connector::provision::settings::Secret::new(
        "wrong-master-password",
    ));
    lines += &not_ready_line(&t, "ox").await;
    let mut t = OxEnv::start().await;
    t.env.settings.ox.master_password = None;
    lines += &not_ready_line(&t, "ox").await;
    let mut t = OxEnv::start().await;
    t.env.settings.ox.soap_server = "http://ox.invalid".into();
    lines += &not_ready_line(&t, "ox").await;
    check("docs/operations.md", &[("not-ready", lines)]);
}

/// Section 7: the daemon is not running (stopped after writing its status).
#[tokio::test]
async fn docs_outputs_not_running() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    daemon.stop().await;
    for n in 0..3 {
        t.write(user(&format!("u-{n}"), &format!("user{n}"), 10, json!({})));
    }
    let status = shell.run(&["queue", "status"]).await;
    check("docs/operations.md", &[("not-running", status)]);
}

/// Section 8: pausing OX provisioning.
#[tokio::test]
async fn docs_outputs_pause() {
    let t = OxEnv::start().await;
    let daemon = t.daemon().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    let pause = shell.run(&["queue", "pause", "--for", "2h"]).await;
    let resume = shell.run(&["queue", "resume"]).await;
    daemon.stop().await;
    check(
        "docs/operations.md",
        &[("pause", format!("{pause}{resume}"))],
    );
}

/// Reconcile: drift made in OX behind the connector's back, reported and repaired.
#[tokio::test]
async fn docs_outputs_reconcile() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    for name in ["anna", "bob", "carl"] {
        t.write(user(&format!("u-{name}"), name, 10, json!({})));
    }
    t.write(group("g-staff", "staff", &["anna", "bob"], json!({})));
    t.write(resource(
        "r-room1",
        "room1",
        10,
        json!({"description": "Big room"}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    make_drift(&t).await;
    let dry = shell.run(&["reconcile"]).await;
    let apply = shell.run(&["reconcile", "--apply"]).await;
    t.settle().await;
    daemon.stop().await;
    check(
        "docs/operations.md",
        &[("reconcile", format!("{dry}{apply}"))],
    );
}

/// In OX directly: carl deleted, mallory created, bob's display name and room1's description
/// changed, staff deleted and created again (another id).
async fn make_drift(t: &OxEnv) {
    let ox = t.ox_client();
    let auth = t.context_admin(10);
    let ctx = t.state().context(10).unwrap().clone();
    let carl = ctx.user("carl").unwrap().id;
    ox.delete_user(10, &User::with_id(carl), &auth)
        .await
        .unwrap();
    let mallory = User {
        name: Some("mallory".into()),
        password: Some("Secret-pw-1".into()),
        display_name: Some("Mallory".into()),
        given_name: Some("Mallory".into()),
        sur_name: Some("Made-in-OX".into()),
        primary_email: Some("mallory@example.org".into()),
        email1: Some("mallory@example.org".into()),
        ..User::default()
    };
    ox.create_user(10, &mallory, &auth).await.unwrap();
    let mut bob = User::with_id(ctx.user("bob").unwrap().id);
    bob.display_name = Some("Bobby Tables".into());
    ox.change_user(10, &bob, &auth).await.unwrap();
    let room = Resource {
        id: ctx.resource("room1").unwrap().id,
        description: Some("changed in OX".into()),
        ..Resource::default()
    };
    ox.change_resource(10, &room, &auth).await.unwrap();
    let staff = ctx.group("staff").unwrap().id.unwrap();
    ox.delete_group(10, &Group::with_id(staff), &auth)
        .await
        .unwrap();
    let again = Group {
        name: Some("staff".into()),
        displayname: Some("staff".into()),
        members: vec![ctx.user("anna").unwrap().id],
        ..Group::default()
    };
    ox.create_group(10, &again, &auth).await.unwrap();
}

/// State import: the Python connector's cache, a dry run, then `--apply`.
#[tokio::test]
async fn docs_outputs_state_import() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let mut shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    // OX has the users the Python connector made; this connector does not know them yet.
    let ox = t.ox_client();
    let auth = t.context_admin(10);
    let mut anna = 0;
    for name in ["anna", "bob"] {
        let made = User {
            name: Some(name.into()),
            password: Some("Secret-pw-1".into()),
            display_name: Some(format!("First {name}")),
            given_name: Some("First".into()),
            sur_name: Some(name.into()),
            primary_email: Some(format!("{name}@example.org")),
            email1: Some(format!("{name}@example.org")),
            ..User::default()
        };
        let made = ox.create_user(10, &made, &auth).await.unwrap();
        if name == "anna" {
            anna = made.id.unwrap();
        }
    }
    let python = tempfile::tempdir().unwrap();
    shell
        .folders
        .push((python.path().to_owned(), "/root/python-connector"));
    let old = python.path().join("listener/old");
    old_file(&old, context("ctx-10", 10, None), json!({}));
    old_file(
        &old,
        user("u-anna", "anna", 10, json!({})),
        json!({"oxDbId": anna.to_string(), "oxDbUsername": "anna"}),
    );
    old_file(&old, user("u-bob", "bob", 10, json!({})), json!({}));
    std::fs::write(old.join("broken.json"), "{not json").unwrap();
    let from = python.path().to_str().unwrap();
    let dry = shell.run(&["state", "import", "--from", from]).await;
    let apply = shell
        .run(&["state", "import", "--from", from, "--apply"])
        .await;
    daemon.stop().await;
    check(
        "docs/operations.md",
        &[("state-import", format!("{dry}{apply}"))],
    );
}

/// README: the head of `queue status` during a backlog (the head of the queue fails meanwhile),
/// up to its `BLOCKED since` line, then `…`.
#[tokio::test]
async fn docs_outputs_backlog() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    for n in 0..3 {
        t.write(user(&format!("u-{n}"), &format!("user{n}"), 10, json!({})));
    }
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    refuse(&t, "OXUserService", "createByModuleAccess");
    for lastname in ["Xavier", "Xaver", "Xylander"] {
        t.write(user("u-x", "userx", 10, json!({"lastname": lastname})));
    }
    let status = shell
        .settled(&["queue", "status"], |s| {
            s.contains("BLOCKED") && s.contains("3 on the JetStream")
        })
        .await;
    t.ox.set_faults(FaultSettings::default());
    t.settle().await;
    daemon.stop().await;
    let end = status.find("\nBLOCKED since").unwrap() + 1;
    let end = end + status[end..].find('\n').unwrap() + 1;
    check(
        "README.md",
        &[("backlog", format!("{}…\n", &status[..end]))],
    );
}

/// Section 4, OX's configuration: a user renamed in UCS at OX's default
/// `USERNAME_CHANGEABLE=false`; the `error:` line of `queue status`.
#[tokio::test]
async fn docs_outputs_rename_refused() {
    let mut t = OxEnv::start_at_ox_defaults().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    t.write(user("u-anna", "anna.alster", 10, json!({})));
    let status = shell
        .settled(&["queue", "status"], |s| s.contains("BLOCKED"))
        .await;
    daemon.stop().await;
    let line = status.lines().find(|l| l.starts_with("  error:")).unwrap();
    check(
        "docs/operations.md",
        &[("rename-refused", format!("{line}\n"))],
    );
}

/// Section 5: the queue is full (small limits: the head blocks, the subscriber queue and then
/// the incoming stream fill up).
#[tokio::test]
async fn docs_outputs_queue_full() {
    let mut t = OxEnv::start().await;
    t.env.settings.queue_limits.max_messages = 3;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let shell = Shell::of(&t);
    cli::wait_for_api(&shell.dir).await;
    refuse(&t, "OXUserService", "createByModuleAccess");
    for lastname in ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"] {
        t.write(user("u-a", "a", 10, json!({"lastname": lastname})));
    }
    let status = shell
        .settled(&["queue", "status"], |s| s.contains("QUEUE FULL"))
        .await;
    t.ox.set_faults(FaultSettings::default());
    t.settle().await;
    daemon.stop().await;
    check("docs/operations.md", &[("queue-full", status)]);
}

/// Logs: the JSON line of a change OX rejects, from the real binary (`--log-format json`).
#[tokio::test]
async fn docs_outputs_json_log() {
    let mut t = OxEnv::start_at_ox_defaults().await;
    t.write(context("ctx-10", 10, None));
    t.write(user(
        "u-anna",
        "anna",
        10,
        json!({"displayName": "Anna Alster"}),
    ));
    let dir = t.env.data.path().to_owned();
    let (mut child, log) = spawn_daemon_binary_logging(&dir, &t.ox.base_url(), &[], "info");
    t.settle().await;
    t.write(user(
        "u-carl",
        "carl",
        10,
        json!({"displayName": "Anna Alster"}),
    ));
    wait_for("carl to block the queue", WAIT, || {
        crate::support::status_file(&dir)["blocked"]["entry_uuid"] == "u-carl"
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let log = log.await.unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("Cannot apply change") && l.contains("u-carl"))
        .unwrap_or_else(|| panic!("no such line in:\n{log}"));
    let line = normalise(&format!("{line}\n"), &dir, &[t.ox.base_url()]);
    check("docs/operations.md", &[("json-log", line)]);
}
