//! The embedded `nats-server`: started as a child process when no NATS URL is configured.
//!
//! JetStream is on, its store lives under `<data-dir>/nats/`, it listens on loopback only, and
//! [`NatsServer`] is an RAII guard: `stop()` ends it gracefully (SIGTERM, so JetStream flushes),
//! dropping the guard kills it. A server left behind by a daemon that was killed is found through
//! its pid file and stopped before a new one uses the same store.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long a starting server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping server may take to flush and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The Go collector's target for the embedded server (`GOGC`, Go's default 100) unless the
/// daemon's environment sets `GOGC` or `GOMEMLIMIT` itself. nats-server's live heap at a large
/// backlog is mostly the file store's cached message blocks (plain byte buffers the collector
/// does not scan), so collecting at 25 % growth instead of 100 % costs little CPU; at 100k
/// queued files it took the server's peak from about 265 to about 190 MiB without slowing the
/// ingest or the end-to-end rate (docs/performance.md, "nats-server's memory"). Unlike a fixed
/// `GOMEMLIMIT` it never makes the collector run all the time when the live heap is large.
const EMBEDDED_GOGC: &str = "25";

/// The collector setting the embedded server gets, given the daemon's environment (`var`):
/// none when the admin set `GOGC` or `GOMEMLIMIT` (the child inherits theirs).
fn collector_env(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<(&'static str, &'static str)> {
    let admin_set = var("GOGC").is_some() || var("GOMEMLIMIT").is_some();
    (!admin_set).then_some(("GOGC", EMBEDDED_GOGC))
}

/// Where to look for `nats-server` besides `PATH` (Debian installs it to `/usr/sbin`).
const EXTRA_BIN_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/sbin"];

/// How to start the server.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// Path or name of the `nats-server` binary; `None` searches `PATH` and the sbin folders.
    pub binary: Option<PathBuf>,
    /// Folder for the configuration, pid file, log and JetStream store.
    pub dir: PathBuf,
    /// Client port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The users allowed to connect (empty: no authentication); `None` keeps the users of the
    /// last start or reload.
    pub users: Option<Vec<NatsUser>>,
}

/// A user of the embedded server with its permissions. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUser {
    pub user: String,
    pub password: String,
    /// Subjects the user may publish to.
    pub publish: Vec<String>,
    /// Subjects the user may subscribe to.
    pub subscribe: Vec<String>,
}

impl std::fmt::Debug for NatsUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsUser")
            .field("user", &self.user)
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .finish_non_exhaustive()
    }
}

/// The `authorization` block for `users`, written to `auth.conf` (mode 0600: it holds passwords).
fn write_auth(dir: &Path, users: &[NatsUser]) -> std::io::Result<()> {
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| json_string(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut text = String::from("# Written by ox-connector; changes are overwritten.\n");
    if !users.is_empty() {
        text.push_str("authorization {\n  users = [\n");
        for u in users {
            text.push_str(&format!(
                "    {{user: {}, password: {}, permissions: {{publish: {{allow: {}}}, subscribe: {{allow: {}}}}}}}\n",
                json_string(&u.user),
                json_string(&u.password),
                list(&u.publish),
                list(&u.subscribe),
            ));
        }
        text.push_str("  ]\n}\n");
    }
    crate::atomic_file::write_with_mode(&dir.join("auth.conf"), text.as_bytes(), Some(0o600))
}

/// The JetStream settings the daemon decides (included into the `jetstream` block).
const STORE_LIMIT_FILE: &str = "jetstream.conf";

/// Sets how much the embedded server's JetStream store may take (`max_file_store`), from the
/// next start of the server on (see [`super::storage::fit`]).
pub fn write_store_limit(dir: &Path, max_store: i64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = format!("# Written by ox-connector at every start.\nmax_file_store: {max_store}\n");
    crate::atomic_file::write(&dir.join(STORE_LIMIT_FILE), text.as_bytes())
}

fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// Replaces the users of the embedded server whose files are in `dir` and makes it reload its
/// configuration (SIGHUP): connections of removed users are closed, new users may connect.
pub fn reload_users(dir: &Path, users: &[NatsUser]) -> std::io::Result<()> {
    write_auth(dir, users)?;
    let pid: i32 = std::fs::read_to_string(dir.join("nats-server.pid"))?
        .trim()
        .parse()
        .map_err(std::io::Error::other)?;
    kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(std::io::Error::other)
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "the nats-server binary was not found (looked for {wanted:?} in PATH and {extra}); \
         install a current one (2.11 or newer) with scripts/setup, or name it with NATS_SERVER_BIN, or \
         set NATS_URL to use a running server"
    )]
    BinaryMissing { wanted: String, extra: String },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nats-server exited during start-up ({status}); its log {log} ends with:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the nats-server (pid {pid}) on the store {store} belongs to the running ox-connector \
         (pid {owner}); stop that daemon first"
    )]
    InUse {
        pid: i32,
        owner: i32,
        store: PathBuf,
    },
    #[error("nats-server did not start listening within {0:?}")]
    Timeout(Duration),
}

/// A running `nats-server` child process.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    url: String,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts the server and waits until it accepts clients.
    pub async fn start(settings: EmbeddedSettings) -> Result<Self, EmbeddedError> {
        let binary = find_binary(settings.binary.as_deref())?;
        let dir = settings.dir;
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let pid_file = dir.join("nats-server.pid");
        stop_leftover(&pid_file).await?;
        let files = write_config(&dir, &pid_file, settings.port, settings.users.as_deref())?;
        let log = dir.join("nats-server.log");
        let mut child = spawn(&binary, &files.config, &log)?;
        let port = wait_for_port(&mut child, &files.ports_dir, log).await?;
        tracing::info!(port, dir = %dir.display(), "Started the embedded nats-server.");
        Ok(Self {
            child: Some(child),
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
        })
    }

    /// The client URL, e.g. `nats://127.0.0.1:4222`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding configuration, log and store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server gracefully (SIGTERM), killing it if it does not exit in time.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                tracing::warn!("The embedded nats-server did not stop in time; killing it.");
                let _ = child.kill().await;
            }
            tracing::info!("Stopped the embedded nats-server.");
        }
    }

    /// Waits until the server process exits by itself and returns how it ended.
    pub async fn exited(&mut self) -> String {
        match self.child.as_mut() {
            Some(child) => match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            },
            None => std::future::pending().await,
        }
    }

    /// Kills the server at once, as a crash would (for tests of recovery).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops the server gracefully and starts it again on the same port and store: it opens its
    /// store afresh (see [`super::storage`]).
    pub async fn restart_gracefully(
        &mut self,
        binary: Option<PathBuf>,
    ) -> Result<(), EmbeddedError> {
        let running = Self {
            child: self.child.take(),
            url: self.url.clone(),
            port: self.port,
            dir: self.dir.clone(),
        };
        running.stop().await;
        self.restart(binary).await
    }

    /// Starts the server again on the same port and store (after [`kill`](Self::kill) or a crash).
    pub async fn restart(&mut self, binary: Option<PathBuf>) -> Result<(), EmbeddedError> {
        self.kill().await;
        let fresh = Self::start(EmbeddedSettings {
            binary,
            dir: self.dir.clone(),
            port: self.port,
            users: None,
        })
        .await?;
        *self = fresh;
        Ok(())
    }
}

/// An [`EmbeddedError::Io`] about `path`.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let path = path.to_owned();
    move |source| EmbeddedError::Io { path, source }
}

/// The files [`write_config`] prepared.
struct ConfigFiles {
    /// The server's configuration file.
    config: PathBuf,
    /// The (emptied) folder where the server writes its ports file once it listens.
    ports_dir: PathBuf,
}

/// Writes the server's configuration into `dir`: client `port` on loopback (0: a free one),
/// JetStream with its store in `dir`, the store limit, and `users` (`None` keeps the users of
/// the last start or reload).
fn write_config(
    dir: &Path,
    pid_file: &Path,
    port: u16,
    users: Option<&[NatsUser]>,
) -> Result<ConfigFiles, EmbeddedError> {
    let ports_dir = dir.join("ports");
    let _ = std::fs::remove_dir_all(&ports_dir);
    std::fs::create_dir_all(&ports_dir).map_err(io_error(&ports_dir))?;
    let config = dir.join("nats-server.conf");
    let port = if port == 0 { -1 } else { i32::from(port) };
    let text = format!(
        "# Written by ox-connector at every start; changes are overwritten.\n\
         host: \"127.0.0.1\"\n\
         port: {port}\n\
         max_payload: 8MB\n\
         pid_file: {pid}\n\
         ports_file_dir: {ports}\n\
         include \"auth.conf\"\n\
         jetstream {{\n  store_dir: {store}\n  include \"jetstream.conf\"\n}}\n",
        pid = quote(pid_file),
        ports = quote(&ports_dir),
        store = quote(dir),
    );
    crate::atomic_file::write(&config, text.as_bytes()).map_err(io_error(&config))?;
    let store_limit = dir.join(STORE_LIMIT_FILE);
    if !store_limit.exists() {
        crate::atomic_file::write(&store_limit, b"").map_err(io_error(&store_limit))?;
    }
    let auth = dir.join("auth.conf");
    match users {
        Some(users) => write_auth(dir, users).map_err(io_error(&auth))?,
        None if !auth.exists() => write_auth(dir, &[]).map_err(io_error(&auth))?,
        None => {}
    }
    Ok(ConfigFiles { config, ports_dir })
}

/// Starts `binary` on `config`, its output appended to `log`, with the embedded server's
/// collector setting ([`collector_env`]).
fn spawn(binary: &Path, config: &Path, log: &Path) -> Result<Child, EmbeddedError> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_error(log))?;
    let log_err = log_file.try_clone().map_err(io_error(log))?;
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .envs(collector_env(|name| std::env::var_os(name)))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| EmbeddedError::Spawn {
            binary: binary.to_owned(),
            source,
        })
}

/// Waits until the started server writes its ports file, and returns its client port; an
/// error with the end of its `log` if it exits first, or after [`START_TIMEOUT`].
async fn wait_for_port(
    child: &mut Child,
    ports_dir: &Path,
    log: PathBuf,
) -> Result<u16, EmbeddedError> {
    let started = Instant::now();
    loop {
        if let Some(port) = read_port(ports_dir) {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(EmbeddedError::Exited {
                status: status.to_string(),
                tail: tail(&log),
                log,
            });
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.start_kill();
            return Err(EmbeddedError::Timeout(START_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quote(path: &Path) -> String {
    serde_json::Value::String(path.display().to_string()).to_string()
}

fn find_binary(wanted: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    let wanted = wanted.unwrap_or(Path::new("nats-server"));
    if wanted.components().count() > 1 {
        return if wanted.is_file() {
            Ok(wanted.to_owned())
        } else {
            Err(missing(wanted))
        };
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(wanted))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| missing(wanted))
}

fn missing(wanted: &Path) -> EmbeddedError {
    EmbeddedError::BinaryMissing {
        wanted: wanted.display().to_string(),
        extra: EXTRA_BIN_DIRS.join(", "),
    }
}

/// The client port from the ports file nats-server writes once it listens.
fn read_port(ports_dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(ports_dir).ok()?.flatten().next()?;
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
    let url = json.get("nats")?.get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The parent of process `pid` and its command line, if it is alive.
fn parent_of(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "<pid> (<comm>) <state> <ppid> …"; the command may contain spaces and parentheses.
    let ppid: i32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    Some((ppid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
}

/// Stops a server that an earlier, killed daemon left running on this store — only if no live
/// ox-connector owns it (its parent; a server whose daemon died belongs to init or a
/// subreaper). The data directory's lock keeps a second daemon from getting here; this guards
/// the store against anything else that starts a server on it.
async fn stop_leftover(pid_file: &Path) -> Result<(), EmbeddedError> {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return Ok(());
    };
    let is_nats = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| String::from_utf8_lossy(&cmd).contains("nats-server"))
        .unwrap_or(false);
    if !is_nats {
        return Ok(());
    }
    if let Some((owner, command)) = parent_of(pid) {
        let own = i32::try_from(std::process::id()).unwrap_or_default();
        if owner != own && command.contains("ox-connector") {
            return Err(EmbeddedError::InUse {
                pid,
                owner,
                store: pid_file.parent().unwrap_or(pid_file).to_owned(),
            });
        }
    }
    tracing::warn!(pid, "Stopping a nats-server left behind by an earlier run.");
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while kill(pid, None).is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = kill(pid, Signal::SIGKILL);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_binary_says_how_to_install_it() {
        let err = NatsServer::start(EmbeddedSettings {
            binary: Some(PathBuf::from("/nonexistent/nats-server")),
            dir: tempfile::tempdir().unwrap().path().to_owned(),
            port: 0,
            users: None,
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("scripts/setup"), "{err}");
    }

    #[tokio::test]
    async fn the_server_starts_on_a_free_port_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start(EmbeddedSettings {
            binary: None,
            dir: dir.path().to_owned(),
            port: 0,
            users: None,
        })
        .await
        .unwrap();
        let client = async_nats::connect(server.url()).await.unwrap();
        assert!(client.server_info().jetstream);
        if collector_env(|name| std::env::var_os(name)).is_some() {
            let pid = std::fs::read_to_string(dir.path().join("nats-server.pid")).unwrap();
            let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            assert!(
                vars.contains(&format!("GOGC={EMBEDDED_GOGC}").as_bytes()),
                "the embedded server runs with the daemon's collector target"
            );
        }
        server.stop().await;
    }

    #[test]
    fn the_admins_own_collector_settings_win() {
        let none = |_: &str| None;
        assert_eq!(collector_env(none), Some(("GOGC", EMBEDDED_GOGC)));
        for admin_sets in ["GOGC", "GOMEMLIMIT"] {
            let env = |name: &str| (name == admin_sets).then(|| "50".into());
            assert_eq!(collector_env(env), None, "{admin_sets} set by the admin");
        }
    }
}
