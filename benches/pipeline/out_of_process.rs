//! The out-of-process benchmark (`cargo bench --bench pipeline -- oop`): measured as an admin
//! runs it — the release binary `ox-connector run` as its own process with its embedded
//! nats-server, the emulator (`ox-connector ox-emulator`) as another process, the listener files
//! already in the folder; the time from the daemon's start until the folder is empty.

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedMutRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{free_port, DAEMON, MASTER, MASTER_PASSWORD};

/// One out-of-process run.
pub(crate) struct Scenario {
    pub name: &'static str,
    pub latency_ms: u64,
    pub workers: Option<usize>,
    pub overload_beyond: Option<usize>,
    pub concurrency: usize,
    pub stream: StreamShape,
}

#[derive(Clone, Copy)]
pub(crate) enum StreamShape {
    /// One context: `creates` user creates, then `mixed` changes of every kind.
    OneContext { creates: usize, mixed: usize },
    /// `contexts` contexts with `users` user creates each.
    Contexts { contexts: usize, users: usize },
}

/// The emulator as a child process.
struct EmulatorProcess {
    child: std::process::Child,
    url: String,
    /// Kept open: the emulator must not write into a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl EmulatorProcess {
    fn spawn(s: &Scenario) -> Self {
        let mut command = std::process::Command::new(DAEMON);
        command
            .args(["ox-emulator", "--listen", "127.0.0.1:0"])
            .args([
                "--master-admin",
                MASTER,
                "--master-password",
                MASTER_PASSWORD,
            ])
            .args(["--latency-ms", &s.latency_ms.to_string()])
            // Renames need it, as docs/operations.md tells admins to set.
            .args(["--ox-property", "USERNAME_CHANGEABLE=true"]);
        if let Some(n) = s.workers {
            command.args(["--workers", &n.to_string()]);
        }
        if let Some(n) = s.overload_beyond {
            command.args(["--overload-beyond", &n.to_string()]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(stdout);
        stdout
            .read_line(&mut line)
            .expect("the emulator says where it listens");
        let url = line.trim().rsplit(' ').next().expect("a URL").to_owned();
        Self {
            child,
            url,
            _stdout: stdout,
        }
    }

    async fn calls(&self) -> (u64, u64) {
        let calls: Value = reqwest::get(format!("{}/emulator/calls", self.url))
            .await
            .expect("calls")
            .json()
            .await
            .expect("calls JSON");
        let sum = |field: &str| -> u64 {
            calls
                .as_object()
                .map(|m| m.values().filter_map(|c| c[field].as_u64()).sum())
                .unwrap_or(0)
        };
        (sum("calls"), sum("faults"))
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file(dn: String, id: &str, module: &str, object: Value) -> Value {
    let options = if object.is_null() {
        Value::Null
    } else {
        json!(["default"])
    };
    json!({"dn": dn, "id": id, "object": object, "options": options, "udm_object_type": module})
}

fn context(id: i32) -> Value {
    file(
        format!("cn=context{id},cn=open-xchange,dc=example,dc=org"),
        &format!("ctx-{id}"),
        "oxmail/oxcontext",
        json!({"contextid": id.to_string(), "name": format!("context{id}")}),
    )
}

#[derive(Clone)]
struct User {
    uuid: String,
    login: String,
    display: String,
    mail: String,
    aliases: Vec<String>,
    version: u64,
    context: i32,
}

fn user(u: &User) -> Value {
    file(
        format!("uid={},cn=users,dc=example,dc=org", u.login),
        &u.uuid,
        "users/user",
        json!({
            "username": u.login, "firstname": "First", "lastname": u.login,
            "displayName": u.display, "mailPrimaryAddress": u.mail,
            "mailAlternativeAddress": u.aliases, "isOxUser": "OK", "oxAccess": "premium",
            "oxContext": u.context.to_string(), "roomNumber": format!("v{}", u.version),
            "groups": [],
        }),
    )
}

fn group(uuid: &str, name: &str, members: &[&User]) -> Value {
    let users: Vec<String> = members
        .iter()
        .map(|m| format!("uid={},cn=users,dc=example,dc=org", m.login))
        .collect();
    file(
        format!("cn={name},cn=groups,dc=example,dc=org"),
        uuid,
        "groups/group",
        json!({"name": name, "isOxGroup": "OK", "users": users}),
    )
}

fn new_user(n: usize, context: i32) -> User {
    User {
        uuid: format!("u-{n}"),
        login: format!("user{n}"),
        display: format!("Person {n}"),
        mail: format!("mail{n}@example.org"),
        aliases: Vec::new(),
        version: 1,
        context,
    }
}

/// The listener files of a stream, in order.
fn stream(shape: StreamShape) -> Vec<Value> {
    match shape {
        StreamShape::Contexts { contexts, users } => {
            let mut files: Vec<Value> = (1..=contexts).map(|c| context(c as i32)).collect();
            for n in 0..contexts * users {
                files.push(user(&new_user(n, (n % contexts) as i32 + 1)));
            }
            files
        }
        StreamShape::OneContext { creates, mixed } => one_context(creates, mixed),
    }
}

/// Creates, then modifies, renames (with UDM's group rewrites), deletes and re-creates under
/// the freed login, display-name swaps through a temporary name, alias hand-overs, group
/// creates and member changes — the kinds of `tests/it/differential.rs`.
fn one_context(creates: usize, mixed: usize) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(15);
    let mut files = vec![context(10)];
    let mut users: Vec<User> = (0..creates).map(|n| new_user(n, 10)).collect();
    files.extend(users.iter().map(user));
    // Group uuid, name, member indexes into `users`.
    let mut groups: Vec<(String, String, Vec<usize>)> = Vec::new();
    let mut next = creates;
    let target = files.len() + mixed;
    while files.len() < target {
        next += 1;
        let i = rng.random_range(0..users.len());
        let j = rng.random_range(0..users.len());
        match rng.random_range(0..100) {
            0..=34 => {
                users[i].version += 1;
                files.push(user(&users[i]));
            }
            35..=44 => {
                users[i].login = format!("renamed{next}");
                files.push(user(&users[i]));
                for (uuid, name, members) in groups.iter().filter(|g| g.2.contains(&i)) {
                    let members: Vec<&User> = members.iter().map(|m| &users[*m]).collect();
                    files.push(group(uuid, name, &members));
                }
            }
            45..=54 if !groups.iter().any(|g| g.2.contains(&i)) => {
                let old = users[i].clone();
                files.push(file(
                    format!("uid={},cn=users,dc=example,dc=org", old.login),
                    &old.uuid,
                    "users/user",
                    Value::Null,
                ));
                users[i] = User {
                    uuid: format!("u-{next}"),
                    mail: format!("mail{next}@example.org"),
                    display: format!("Person {next}"),
                    ..new_user(next, 10)
                };
                users[i].login = old.login;
                files.push(user(&users[i]));
            }
            55..=64 if i != j => {
                let (a, b) = (users[i].display.clone(), users[j].display.clone());
                users[i].display = format!("Temporary {next}");
                files.push(user(&users[i]));
                users[j].display = a;
                files.push(user(&users[j]));
                users[i].display = b;
                files.push(user(&users[i]));
            }
            65..=74 if i != j => {
                let alias = users[i]
                    .aliases
                    .pop()
                    .unwrap_or_else(|| format!("alias{next}@example.org"));
                files.push(user(&users[i]));
                users[j].aliases.push(alias);
                files.push(user(&users[j]));
            }
            75..=84 => {
                let members: Vec<usize> =
                    (0..3).map(|_| rng.random_range(0..users.len())).collect();
                let (uuid, name) = (format!("g-{next}"), format!("group{next}"));
                let refs: Vec<&User> = members.iter().map(|m| &users[*m]).collect();
                files.push(group(&uuid, &name, &refs));
                groups.push((uuid, name, members));
            }
            _ => {
                let Some(g) = groups.choose_mut(&mut rng) else {
                    continue;
                };
                if !g.2.contains(&i) {
                    g.2.push(i);
                }
                let refs: Vec<&User> = g.2.iter().map(|m| &users[*m]).collect();
                files.push(group(&g.0, &g.1, &refs));
            }
        }
    }
    files
}

fn listener_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(usize::MAX)
}

/// Runs one scenario; returns its figures.
pub(crate) async fn run(s: &Scenario) -> Value {
    let data = tempfile::tempdir().expect("temp dir");
    let listener = data.path().join("listener");
    let files = stream(s.stream);
    for (n, content) in files.iter().enumerate() {
        let name = format!("2025-01-01-00-00-00-{:06}.json", n + 1);
        ox_connector::listener::write::write(&listener, &name, content).expect("write");
    }
    let emulator = EmulatorProcess::spawn(s);
    let log = std::fs::File::create(data.path().join("daemon.log")).expect("log file");
    let started = Instant::now();
    let mut daemon = tokio::process::Command::new(DAEMON)
        .args(["run", "--data-dir"])
        .arg(data.path())
        .args(["--nats-port", &free_port().to_string()])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--apply-concurrency", &s.concurrency.to_string()])
        .env_remove("NATS_URL")
        .env_remove("RUST_LOG")
        .env("OX_SOAP_SERVER", &emulator.url)
        .env("OX_MASTER_ADMIN", MASTER)
        .env("OX_MASTER_PASSWORD", MASTER_PASSWORD)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon starts");
    // The adaptive limit over time, once a second.
    let mut limits: Vec<Value> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let deadline = Duration::from_secs(1800);
    let emptied = loop {
        let now = started.elapsed();
        if listener_files(&listener) == 0 {
            break Some(now);
        }
        if now > deadline {
            break None;
        }
        if now >= next_sample {
            next_sample += Duration::from_secs(1);
            let client = ox_connector::admin::client::AdminClient::from_data_dir(
                data.path(),
                Duration::from_secs(2),
            );
            if let Ok(client) = client {
                if let Ok(status) = client.status().await {
                    if let Some(calls) = status.daemon.ox_calls {
                        limits.push(json!([now.as_secs(), calls.limit, calls.in_flight]));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (calls, faults) = emulator.calls().await;
    if let Some(pid) = daemon.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), daemon.wait()).await;
    let changes = files.len();
    let seconds = emptied.map_or(f64::NAN, |t| t.as_secs_f64());
    let result = json!({
        "scenario": s.name,
        "changes": changes,
        "ox_latency_ms": s.latency_ms,
        "workers": s.workers,
        "overload_beyond": s.overload_beyond,
        "apply_concurrency": s.concurrency,
        "seconds_until_empty": seconds,
        "objects_per_s": changes as f64 / seconds,
        "soap_calls_per_change": calls as f64 / changes as f64,
        "faults": faults,
        "faults_per_change": faults as f64 / changes as f64,
        "sequential_limit_per_s": (s.latency_ms > 0).then(|| 1000.0 / s.latency_ms as f64),
        "files_left": listener_files(&listener),
        "limit_over_time": limits,
    });
    eprintln!("oop {}: {result}", s.name);
    result
}

/// The scenarios of issue #15, one run each.
pub(crate) fn scenarios(quick: bool, concurrency: usize) -> Vec<Scenario> {
    let (creates, mixed) = if quick { (400, 200) } else { (2_000, 1_000) };
    let one = StreamShape::OneContext { creates, mixed };
    let base = |name, latency_ms, concurrency| Scenario {
        name,
        latency_ms,
        workers: None,
        overload_beyond: None,
        concurrency,
        stream: one,
    };
    vec![
        base("one context, 5 ms, one by one", 5, 1),
        base("one context, 5 ms", 5, concurrency),
        base("one context, 50 ms", 50, concurrency),
        base("one context, 0 ms", 0, concurrency),
        Scenario {
            workers: Some(8),
            ..base("one context, 8 workers at 20 ms", 20, concurrency)
        },
        Scenario {
            workers: Some(8),
            overload_beyond: Some(10),
            ..base(
                "one context, 8 workers at 20 ms, 503 beyond 10",
                20,
                concurrency,
            )
        },
        Scenario {
            stream: StreamShape::Contexts {
                contexts: 10,
                users: if quick { 100 } else { 500 },
            },
            ..base("10 contexts × 500 creates, 0 ms", 0, concurrency)
        },
    ]
}
