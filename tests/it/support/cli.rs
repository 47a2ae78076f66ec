//! Runs the `ox-connector` binary's admin commands against a daemon found through its data
//! directory, and reads the admin API and the Prometheus metrics.

use std::path::Path;

/// What a command printed and its exit code.
pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// `ox-connector <args> --data-dir <data_dir>`.
pub(crate) async fn run(data_dir: &Path, args: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("OX_CONNECTOR_DATA_DIR")
        .env("USER", "test-admin")
        .output()
        .await
        .unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The admin API's base URL and token.
pub(crate) fn endpoint(data_dir: &Path) -> (String, String) {
    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("run/admin.json")).unwrap()).unwrap();
    let token = std::fs::read_to_string(data_dir.join("secrets/admin-token")).unwrap();
    (
        endpoint["url"].as_str().unwrap().to_owned(),
        token.trim().to_owned(),
    )
}

/// Waits until the daemon has published where its admin API listens.
pub(crate) async fn wait_for_api(data_dir: &Path) {
    let file = data_dir.join("run/admin.json");
    super::wait_for("the admin API", std::time::Duration::from_secs(10), || {
        file.is_file()
    })
    .await;
}

/// `GET /metrics` (open on loopback).
pub(crate) async fn metrics(data_dir: &Path) -> String {
    wait_for_api(data_dir).await;
    let (url, _) = endpoint(data_dir);
    let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The sum of every series of `name` whose labels contain all of `labels` (`key="value"`).
pub(crate) fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|l| rest.contains(l)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
