//! A real three-node JetStream cluster on loopback (three nats-server processes with routes,
//! temp dirs, free ports) and the daemon on it with `--replicas 3`: during a backlog the node
//! that leads the OX subscriber's queue is killed (SIGKILL) and later started again.
//!
//! Checked: every stream and bucket the daemon creates has three replicas; nothing is lost
//! (every change applied, every listener file gone at the end), nothing applied out of order
//! (the first apply of each change follows file order; a change may be applied again after the
//! failover, at-least-once), no file deleted before its change was applied; the stall the lost
//! leader caused (the longest time without an apply after the kill) is measured and printed.
//!
//! The short run is part of `cargo nextest run`; the long one is ignored by default:
//! `cargo nextest run --run-ignored only reliability` (docs/performance.md).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ox_connector::app::Daemon;
use ox_connector::config::NatsTarget;
use tokio_util::sync::CancellationToken;

use crate::support::{files, RecordingApplier, TestEnv};

/// One nats-server of the cluster.
struct Node {
    name: String,
    client_port: u16,
    route_port: u16,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    fn config(&self, routes: &[u16]) -> String {
        let routes: Vec<String> = routes
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        format!(
            "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\n\
             jetstream {{ store_dir: \"{store}\" }}\n\
             cluster {{\n  name: ox-test\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
            name = self.name,
            client = self.client_port,
            store = self.dir.join("store").display(),
            route = self.route_port,
            routes = routes.join(", "),
        )
    }

    fn start(&mut self, routes: &[u16]) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let config = self.dir.join("nats-server.conf");
        std::fs::write(&config, self.config(routes)).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats-server.log"))
            .unwrap();
        self.child = Some(
            tokio::process::Command::new("nats-server")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("nats-server must be installed (scripts/setup)"),
        );
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// Three nats-servers routed to each other; killed when dropped.
struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes: Vec<Node> = (1..=3)
            .map(|i| Node {
                name: format!("n{i}"),
                client_port: free_port(),
                route_port: free_port(),
                dir: dir.path().join(format!("n{i}")),
                child: None,
            })
            .collect();
        for i in 0..nodes.len() {
            let routes = Self::routes_of(&nodes, i);
            nodes[i].start(&routes);
        }
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_for_jetstream().await;
        cluster
    }

    fn routes_of(nodes: &[Node], i: usize) -> Vec<u16> {
        nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.route_port)
            .collect()
    }

    /// The client URLs of every node, comma-separated, as `NATS_URL` takes them.
    fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until the cluster has elected its JetStream meta leader and places an R3 stream.
    async fn wait_for_jetstream(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let attempt = async {
                let client =
                    async_nats::connect(format!("nats://127.0.0.1:{}", self.nodes[0].client_port))
                        .await?;
                let js = async_nats::jetstream::new(client);
                js.create_stream(async_nats::jetstream::stream::Config {
                    name: "PROBE".into(),
                    subjects: vec!["probe".into()],
                    num_replicas: 3,
                    ..Default::default()
                })
                .await?;
                js.delete_stream("PROBE").await?;
                Ok::<_, async_nats::Error>(())
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) if Instant::now() > deadline => panic!("no JetStream cluster: {e}"),
                Err(_) if Instant::now() > deadline => panic!("no JetStream cluster: timed out"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    fn index_of(&self, server_name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == server_name)
            .unwrap_or_else(|| panic!("no node {server_name}"))
    }

    fn restart(&mut self, i: usize) {
        let routes = Self::routes_of(&self.nodes, i);
        self.nodes[i].start(&routes);
    }
}

/// The servers that lead `stream` and its consumer `consumer`, asked through any node that
/// answers.
async fn leaders_of(
    js: &async_nats::jetstream::Context,
    stream: &str,
    consumer: &str,
) -> Option<(String, String)> {
    use async_nats::jetstream::consumer::pull::Config;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders = async {
            let mut s = js.get_stream(stream).await.ok()?;
            let stream_leader = s.info().await.ok()?.cluster.as_ref()?.leader.clone()?;
            let mut c = s.get_consumer::<Config>(consumer).await.ok()?;
            let consumer_leader = c.info().await.ok()?.cluster.as_ref()?.leader.clone()?;
            Some((stream_leader, consumer_leader))
        };
        if let Ok(Some(leaders)) = tokio::time::timeout(Duration::from_secs(5), leaders).await {
            return Some(leaders);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the messages are, for a failure message: the daemon's status and every stream and
/// consumer of the queue (messages, pending, ack floor).
async fn queue_state(js: &async_nats::jetstream::Context, daemon: &Daemon) -> String {
    use futures::StreamExt;
    let mut out = format!(
        "daemon status: {}",
        serde_json::to_string(&daemon.status().get()).unwrap_or_default()
    );
    let mut names = js.stream_names();
    while let Some(Ok(name)) = names.next().await {
        let Ok(mut stream) = js.get_stream(&name).await else {
            continue;
        };
        let Ok(info) = stream.info().await else {
            continue;
        };
        out += &format!(
            "\n{name}: {} messages, sequences {}..{}",
            info.state.messages, info.state.first_sequence, info.state.last_sequence
        );
        let mut consumers = stream.consumers();
        while let Some(Ok(consumer)) = consumers.next().await {
            out += &format!(
                "\n  {}: pending {}, ack pending {}, delivered {}, ack floor {}, waiting {}",
                consumer.name,
                consumer.num_pending,
                consumer.num_ack_pending,
                consumer.delivered.stream_sequence,
                consumer.ack_floor.stream_sequence,
                consumer.num_waiting
            );
        }
    }
    out
}

struct Failover {
    changes: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_survives_losing_the_node_that_leads_it() {
    failover(Failover { changes: 600 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: a few minutes; run with --run-ignored only"]
async fn reliability_cluster_failover_with_thousands_of_changes() {
    failover(Failover { changes: 4000 }).await;
}

async fn failover(run: Failover) {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
    let mut cluster = Cluster::start().await;
    let mut env = TestEnv::start().await;
    env.settings.nats = NatsTarget::External {
        url: cluster.url(),
        replicas: 3,
    };
    // One at a time: the order checked below is the whole queue's.
    env.settings.apply_concurrency = 1;
    let applier = RecordingApplier::new(env.listener_dir());
    let token = CancellationToken::new();
    let daemon = Daemon::start(env.settings.clone(), applier.clone(), token.clone())
        .await
        .expect("the daemon starts on the cluster");
    let client = async_nats::ConnectOptions::new()
        .connect(ox_connector::config::nats_servers(&cluster.url()).unwrap())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    assert_three_replicas(&js).await;
    // Keeps every incoming message (interest retention) to tell, if the order breaks, whether
    // it broke on the way into the queue.
    let incoming = js.get_stream(ox_connector::queue::STREAM).await.unwrap();
    incoming
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("audit".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();

    let dir = env.listener_dir();
    let writer = tokio::spawn({
        let dir = dir.clone();
        async move {
            for start in (1..=run.changes).step_by(50) {
                files::write_users(&dir, start..(start + 50).min(run.changes + 1));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    // The backlog builds up; then the OX queue's leader goes.
    let stream = ox_connector::queue::subscriber_stream(ox_connector::queue::OX_SUBSCRIBER);
    wait_applied(&applier, run.changes as usize / 5, Duration::from_secs(120)).await;
    let subscriber = ox_connector::queue::OX_SUBSCRIBER;
    let (stream_leader, leader) = leaders_of(&js, &stream, subscriber)
        .await
        .expect("the OX queue and its consumer have leaders");
    let victim = cluster.index_of(&leader);
    let killed_at = Instant::now();
    let applied_at_kill = applier.applied().len();
    cluster.nodes[victim].kill().await;
    eprintln!(
        "cluster: killed {leader}, the leader of the OX consumer (the stream's leader was \
         {stream_leader}), after {applied_at_kill} applies"
    );

    // The stall: the longest time without an apply from the kill until 100 more are applied.
    let (mut last_count, mut last_change, mut stall) = (applied_at_kill, killed_at, Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(120);
    while applier.applied().len() < (applied_at_kill + 100).min(run.changes as usize) {
        let count = applier.applied().len();
        if count != last_count {
            stall = stall.max(last_change.elapsed());
            (last_count, last_change) = (count, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "no progress after the leader was killed ({count} applied)"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stall = stall.max(last_change.elapsed());
    let new_leader = leaders_of(&js, &stream, subscriber)
        .await
        .map_or("(not known yet)".to_owned(), |(_, consumer)| consumer);
    eprintln!("cluster: {new_leader} leads the OX consumer now; the longest stall was {stall:?}");

    cluster.restart(victim);
    writer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !files::listener_files(&dir).is_empty() {
        if Instant::now() > deadline {
            panic!(
                "{} listener files left; {}",
                files::listener_files(&dir).len(),
                queue_state(&js, &daemon).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    daemon.wait().await.expect("the daemon stops");

    let calls = applier.calls();
    let mut first: Vec<String> = Vec::new();
    let mut again = 0;
    for call in calls.iter().filter(|c| c.succeeded) {
        if first.contains(&call.file) {
            again += 1;
            continue;
        }
        assert!(
            call.file_existed,
            "{} was deleted before its change was applied",
            call.file
        );
        first.push(call.file.clone());
    }
    let expected: Vec<String> = (1..=run.changes).map(files::name).collect();
    if let Some(i) = (0..expected.len()).find(|&i| first.get(i) != expected.get(i)) {
        let around = |v: &[String]| v[i.saturating_sub(3)..(i + 4).min(v.len())].to_vec();
        let mut incoming_order = Vec::new();
        for sequence in 1.. {
            let Ok(raw) = incoming.get_raw_message(sequence).await else {
                break;
            };
            let file = raw
                .headers
                .get(ox_connector::message::HEADER_SOURCE_FILE)
                .map(|v| v.to_string())
                .unwrap_or_default();
            incoming_order.push(file);
        }
        let incoming_break = (1..incoming_order.len())
            .find(|&j| incoming_order[j] < incoming_order[j - 1])
            .map(|j| around_at(&incoming_order, j));
        eprintln!(
            "cluster: incoming stream order ({} messages), first break: {incoming_break:?}",
            incoming_order.len()
        );
        panic!(
            "{} of {} changes applied; the first out of file order at position {i}: applied \
             {:?}, expected {:?}",
            first.len(),
            expected.len(),
            around(&first),
            around(&expected)
        );
    }
    eprintln!(
        "cluster: {} changes, {again} applied again after the failover; {leader} killed after \
         {applied_at_kill} applies, stall {stall:?}, {new_leader} took over",
        run.changes
    );
}

fn around_at(v: &[String], i: usize) -> Vec<String> {
    v[i.saturating_sub(3)..(i + 4).min(v.len())].to_vec()
}

/// Every stream and bucket the daemon created is kept on three servers.
async fn assert_three_replicas(js: &async_nats::jetstream::Context) {
    use futures::StreamExt;
    let names: Vec<String> = js
        .stream_names()
        .map(|n| n.unwrap())
        .collect::<Vec<_>>()
        .await;
    for expected in ["PROVISIONING", "SUB_ox-connector"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("KV_")), "{names:?}");
    for name in &names {
        let mut stream = js.get_stream(name).await.unwrap();
        let replicas = stream.info().await.unwrap().config.num_replicas;
        assert_eq!(replicas, 3, "{name} has {replicas} replicas");
    }
}

async fn wait_applied(applier: &RecordingApplier, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while applier.applied().len() < count {
        assert!(Instant::now() < deadline, "fewer than {count} applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
