//! The App Center files (`appcenter/`), the image files (`docker/`, `build_docker_image`) and
//! every shell script of the repository: they parse as the App Center parses them, agree with the
//! binary, pass shellcheck, and the scripts that can run here do what they promise.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_for, RecordingApplier, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_ox-connector");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const IMAGE_REPOSITORY: &str = "docker.software-univention.de/ox-connector";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `file` parsed by Python's RawConfigParser, as the App Center reads it: section → key (lower
/// case) → value.
fn read_ini(file: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let output = Command::new("python3")
        .arg(repo().join("tests/appcenter/read_ini.py"))
        .arg(repo().join(file))
        .output()
        .expect("python3 must be installed for this test");
    assert!(
        output.status.success(),
        "{file} does not parse: {}",
        text(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A comma-separated ini list, split as the App Center splits it.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn the_app_ini_parses_like_the_app_center_reads_it_and_names_this_version() {
    let ini = read_ini("appcenter/ini");
    assert_eq!(
        ini.keys().collect::<Vec<_>>(),
        ["Application", "de"],
        "sections"
    );
    let app = &ini["Application"];
    let get = |key: &str| {
        app.get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {key}"))
    };
    assert_eq!(get("id"), "ox-connector");
    assert_eq!(
        get("version"),
        VERSION,
        "appcenter/ini Version must follow Cargo.toml"
    );
    assert_eq!(get("dockerimage"), format!("{IMAGE_REPOSITORY}:{VERSION}"));
    assert_eq!(get("listenerudmversion"), "1");
    let modules: BTreeSet<String> = list(get("listenerudmmodules")).into_iter().collect();
    let expected: BTreeSet<String> = [
        "oxmail/oxcontext",
        "oxresources/oxresources",
        "users/user",
        "groups/group",
        "oxmail/accessprofile",
        "oxmail/functional_account",
    ]
    .map(String::from)
    .into();
    assert_eq!(modules, expected);
    // The container's command goes to the image's entrypoint, which knows "run".
    assert_eq!(get("dockerscriptinit"), "run");
    assert_eq!(get("dockerscriptconfigure"), "/tmp/ox-connector.configure");
    for key in [
        "dockerscriptsetup",
        "dockerscriptstoredata",
        "dockerscriptrestoredatabeforesetup",
        "dockerscriptrestoredataaftersetup",
        "dockerscriptupdateavailable",
        "dockerscriptupdatepackages",
        "dockerscriptupdaterelease",
        "dockerscriptupdateappversion",
    ] {
        assert_eq!(
            get(key),
            "",
            "{key} must be empty: the image is not a UCS container"
        );
    }
    for key in ["portsexclusive", "portsredirection", "webinterface"] {
        assert!(
            !app.contains_key(key),
            "the app opens no port, but sets {key}"
        );
    }
    for section in ["Application", "de"] {
        for key in ["description", "longdescription"] {
            assert!(!ini[section][key].trim().is_empty(), "[{section}] {key}");
        }
    }
}

#[test]
fn every_setting_is_complete_and_reaches_the_containers_environment() {
    let settings = read_ini("appcenter/settings");
    // The Python app's settings keep their names, so their values carry over on the upgrade.
    for name in [
        "OX_SOAP_SERVER",
        "OX_IMAP_SERVER",
        "OX_SMTP_SERVER",
        "DEFAULT_CONTEXT",
        "OX_LANGUAGE",
        "LOCAL_TIMEZONE",
        "OX_MASTER_ADMIN",
        "OX_MASTER_PASSWORD",
        "OX_IMAP_LOGIN",
        "OX_FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE",
        "OX_USER_IDENTIFIER",
        "OX_GROUP_IDENTIFIER",
    ] {
        assert!(settings.contains_key(name), "setting {name} is missing");
    }
    let help = |command: &str| -> String {
        let output = Command::new(BIN)
            .args([command, "--help"])
            .env_clear()
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let binary_env = format!("{}{}", help("run"), help("trigger"));

    let types = [
        "String",
        "Int",
        "Bool",
        "List",
        "Password",
        "File",
        "PasswordFile",
        "Status",
    ];
    let shows = ["Install", "Upgrade", "Remove", "Settings"];
    for (name, setting) in &settings {
        let get = |key: &str| setting.get(key).map(String::as_str).unwrap_or("");
        let kind = get("type");
        assert!(types.contains(&kind), "{name}: Type {kind:?}");
        for key in ["description", "description[de]"] {
            assert!(!get(key).trim().is_empty(), "{name}: no {key}");
        }
        let show = list(get("show"));
        assert!(
            show.iter().all(|s| shows.contains(&s.as_str())),
            "{name}: Show {show:?}"
        );
        // The App Center's rule: only settings shown at install or upgrade go into the env file.
        assert!(
            show.iter().any(|s| s == "Install" || s == "Upgrade"),
            "{name} would never reach the container's environment"
        );
        assert!(
            list(get("scope")).iter().all(|s| s == "inside"),
            "{name}: the daemon reads its settings inside the container"
        );
        let required = get("required");
        assert!(
            ["True", "False"].contains(&required),
            "{name}: Required {required:?}"
        );
        let initial = get("initialvalue");
        if required == "True" {
            assert!(
                !initial.is_empty(),
                "{name}: required without an initial value"
            );
        }
        match kind {
            "Int" => {
                initial
                    .parse::<i64>()
                    .unwrap_or_else(|_| panic!("{name}: {initial:?}"));
            }
            "List" => {
                let values = list(get("values"));
                assert_eq!(
                    values.len(),
                    list(get("labels")).len(),
                    "{name}: Values/Labels"
                );
                assert!(
                    values.iter().any(|v| v == initial),
                    "{name}: {initial:?} not in {values:?}"
                );
            }
            _ => {}
        }
        // Every setting reaches the daemon (or the trigger) through its environment variable.
        assert!(
            binary_env.contains(&format!("[env: {name}")),
            "{name} is not an environment variable of ox-connector run or trigger"
        );
        if name.starts_with("OX_CONNECTOR_") {
            // Required: an empty value would not be a valid flag value.
            assert_eq!(required, "True", "{name}");
        }
    }
    // The initial trigger wait is a value the trigger accepts (6: it went on to the data dir).
    let wait = &settings["OX_CONNECTOR_TRIGGER_WAIT"]["initialvalue"];
    let output = Command::new(BIN)
        .args(["trigger", "--data-dir", "/nonexistent"])
        .env_clear()
        .env("OX_CONNECTOR_TRIGGER_WAIT", wait)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    // So are the log format and the other durations, checked by `run`'s own parser.
    for (name, flag) in [
        ("OX_CONNECTOR_RETRY_DELAY", "--retry-delay"),
        ("OX_CONNECTOR_BROKEN_GRACE", "--broken-grace"),
    ] {
        let value = &settings[name]["initialvalue"];
        assert!(
            humantime::parse_duration(value).is_ok(),
            "{name} = {value:?} is not a duration for {flag}"
        );
    }
}

#[test]
fn the_env_file_sets_the_data_directory_the_binary_defaults_to() {
    let env = std::fs::read_to_string(repo().join("appcenter/env")).unwrap();
    let mut vars = BTreeMap::new();
    for line in env
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        assert!(
            key.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{key}"
        );
        assert!(
            !value.contains('"') && !value.contains('\''),
            "docker env files take no quotes: {line}"
        );
        vars.insert(key.to_owned(), value.to_owned());
    }
    let data_dir = ox_connector::config::DEFAULT_DATA_DIR;
    assert_eq!(vars["OX_CONNECTOR_DATA_DIR"], data_dir);
    assert_eq!(
        vars["OX_CREDENTIALS_FILE"],
        format!("{data_dir}/secrets/contexts.json")
    );
}

#[test]
fn the_admin_texts_exist_in_english_and_german_and_say_how_to_remove_a_broken_file() {
    for name in [
        "README",
        "README_INSTALL",
        "README_UPDATE",
        "README_UNINSTALL",
    ] {
        for lang in ["EN", "DE"] {
            let file = repo().join(format!("appcenter/{name}_{lang}"));
            let content = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                content.trim_start().starts_with('<'),
                "{}: HTML expected",
                file.display()
            );
        }
    }
    let remove = "rm /var/lib/univention-appcenter/apps/ox-connector/data/listener/";
    for file in ["appcenter/README_EN", "appcenter/README_DE"] {
        let content = std::fs::read_to_string(repo().join(file)).unwrap();
        assert!(
            content.contains(remove),
            "{file} does not say how to remove a file"
        );
    }
    let readme = std::fs::read_to_string(repo().join("appcenter/README.md")).unwrap();
    for topic in [
        "## Install",
        "## Settings",
        "## Update",
        "## Remove",
        "## Troubleshooting",
        "rm DATA/listener/",
    ] {
        assert!(
            readme.contains(topic),
            "appcenter/README.md lacks {topic:?}"
        );
    }
}

/// Every file of the repository that starts with a shell's `#!` line.
fn shell_scripts() -> Vec<PathBuf> {
    let mut scripts = Vec::new();
    let walk = walkdir::WalkDir::new(repo()).into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        e.depth() == 0
            || !(name == "target" || name == ".git" || (name.starts_with('.') && name != ".ci"))
    });
    for entry in walk.flatten().filter(|e| e.file_type().is_file()) {
        let Ok(content) = std::fs::read(entry.path()) else {
            continue;
        };
        let first_line = content.split(|b| *b == b'\n').next().unwrap_or_default();
        let first_line = String::from_utf8_lossy(first_line);
        let is_shell = first_line.starts_with("#!")
            && ["/sh", "/bash", "/dash", "env sh", "env bash"]
                .iter()
                .any(|shell| first_line.trim_end().ends_with(shell));
        if is_shell {
            scripts.push(entry.into_path());
        }
    }
    scripts.sort();
    scripts
}

#[test]
fn every_shell_script_passes_shellcheck() {
    let scripts = shell_scripts();
    let relative: Vec<String> = scripts
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    for expected in [
        "listener_trigger/listener_trigger",
        "appcenter/preinst",
        "appcenter/inst",
        "appcenter/uinst",
        "appcenter/configure",
        "appcenter/configure_host",
        "docker/entrypoint",
        "docker/healthcheck",
        "build_docker_image",
        "scripts/setup",
        ".ci/run",
    ] {
        assert!(
            relative.iter().any(|r| r == expected),
            "{expected} not found among {relative:?}"
        );
    }
    let output = match Command::new("shellcheck").args(&scripts).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "shellcheck cannot be run ({e}); install it with scripts/setup (Debian package shellcheck)"
        ),
    };
    assert!(
        output.status.success(),
        "shellcheck found problems:\n{}",
        text(&output)
    );
}

#[test]
fn the_scripts_the_image_and_the_app_center_start_are_executable() {
    for file in [
        "listener_trigger/listener_trigger",
        "docker/entrypoint",
        "docker/healthcheck",
        "build_docker_image",
        "appcenter/preinst",
        "appcenter/inst",
        "appcenter/uinst",
        "appcenter/configure",
        "appcenter/configure_host",
    ] {
        let mode = std::fs::metadata(repo().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{file} is not executable");
    }
}

#[test]
fn configure_takes_over_the_python_apps_context_secrets_without_touching_existing_entries() {
    let data = tempfile::tempdir().unwrap();
    let secrets = data.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let credentials = secrets.join("contexts.json");
    let existing = serde_json::json!({
        "master": {"adminuser": "oxadminmaster", "adminpass": "m"},
        "20": {"adminuser": "oxadmin-context20", "adminpass": "kept"},
    });
    std::fs::write(&credentials, existing.to_string()).unwrap();
    let secret = r#"p"a\ss w$rd'"#;
    std::fs::write(secrets.join("context10.secret"), format!("{secret}\n")).unwrap();
    std::fs::write(secrets.join("context20.secret"), "not taken: 20 exists").unwrap();
    std::fs::write(secrets.join("context30.secret"), "thirty").unwrap();
    std::fs::write(secrets.join("contextX.secret"), "not a context id").unwrap();
    let configure = |action: &str| {
        Command::new("sh")
            .arg(repo().join("appcenter/configure"))
            .args([action, "--error-file", "/dev/null", "--app", "ox-connector"])
            .args(["--app-version", VERSION])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("OX_CONNECTOR_DATA_DIR", data.path())
            .env("DEFAULT_CONTEXT", "10")
            .output()
            .unwrap()
    };

    // A settings change leaves the file alone.
    let output = configure("settings");
    assert!(output.status.success(), "{}", text(&output));
    let read =
        || -> Value { serde_json::from_slice(&std::fs::read(&credentials).unwrap()).unwrap() };
    assert_eq!(read(), existing);

    let output = configure("upgrade");
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        !text(&output).contains("w$rd"),
        "a password was printed: {}",
        text(&output)
    );
    assert_eq!(
        read(),
        serde_json::json!({
            "master": {"adminuser": "oxadminmaster", "adminpass": "m"},
            "10": {"adminuser": "oxadmin", "adminpass": secret},
            "20": {"adminuser": "oxadmin-context20", "adminpass": "kept"},
            "30": {"adminuser": "oxadmin-context30", "adminpass": "thirty"},
        })
    );
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<String> = std::fs::read_dir(&secrets)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("contexts.json."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn the_health_check_is_healthy_exactly_while_the_daemon_runs() {
    let env = TestEnv::start().await;
    let healthcheck = |data_dir: &Path| {
        Command::new(repo().join("docker/healthcheck"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("OX_CONNECTOR_DATA_DIR", data_dir)
            .output()
            .unwrap()
    };
    let output = healthcheck(env.data.path());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));

    let daemon = env.daemon(RecordingApplier::new(env.listener_dir())).await;
    let endpoint = env.data.path().join("run/admin.json");
    wait_for("the admin API", Duration::from_secs(20), || {
        endpoint.exists()
    })
    .await;
    let data_dir = env.data.path().to_owned();
    let output = tokio::task::spawn_blocking(move || healthcheck(&data_dir))
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));

    daemon.stop().await;
    let output = healthcheck(env.data.path());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
}

#[test]
fn the_entrypoint_runs_any_other_command_as_it_is() {
    let output = Command::new(repo().join("docker/entrypoint"))
        .arg("--version")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("OX_CONNECTOR_BIN", BIN)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("ox-connector {VERSION}\n")
    );
}

fn build_docker_image(args: &[&str]) -> Output {
    Command::new(repo().join("build_docker_image"))
        .args(args)
        .env_clear()
        // Without Docker in PATH: a dry run must not need it.
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn build_docker_image_dry_run_prints_the_build_and_push_commands() {
    let help = build_docker_image(&["--help"]);
    assert!(help.status.success(), "{}", text(&help));
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--release", "--push", "--dry-run", "--image", "--help"] {
        assert!(help.contains(flag), "--help does not explain {flag}");
    }

    let dev = build_docker_image(&["--dry-run"]);
    assert!(dev.status.success(), "{}", text(&dev));
    let lines: Vec<String> = String::from_utf8_lossy(&dev.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], format!("cd {}", repo().display()));
    let build: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(build[..4], ["env", "DOCKER_BUILDKIT=1", "docker", "build"]);
    let arg = |flag: &str| -> &str {
        let at = build
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("no {flag}: {build:?}"));
        build[at + 1]
    };
    assert_eq!(arg("--file"), "docker/Dockerfile");
    assert_eq!(arg("--tag"), format!("{IMAGE_REPOSITORY}:{VERSION}-dev"));
    assert_eq!(arg("--build-arg"), format!("VERSION={VERSION}"));
    assert_eq!(
        build.last(),
        Some(&"."),
        "the context is the repository root"
    );
    assert!(repo().join("docker/Dockerfile").exists());
    assert!(repo().join("docker/Dockerfile.dockerignore").exists());

    // The release tag is what the ini installs, and it is pushed after the build.
    let release = build_docker_image(&["--release", "--push", "--dry-run"]);
    assert!(release.status.success(), "{}", text(&release));
    let lines: Vec<String> = String::from_utf8_lossy(&release.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let ini = read_ini("appcenter/ini");
    let image = &ini["Application"]["dockerimage"];
    assert!(lines[1].contains(&format!("--tag {image} ")), "{lines:?}");
    assert_eq!(
        lines.get(2),
        Some(&format!("docker push {image}")),
        "{lines:?}"
    );

    let other = build_docker_image(&["--dry-run", "--image", "registry.example.org/ox"]);
    assert!(String::from_utf8_lossy(&other.stdout)
        .contains(&format!("--tag registry.example.org/ox:{VERSION}-dev ")));
    let bad = build_docker_image(&["--bogus"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn the_image_builds_and_runs_help_where_a_docker_engine_runs() {
    let engine = Command::new("docker").arg("info").output();
    if !matches!(&engine, Ok(output) if output.status.success()) {
        eprintln!("skipped: no Docker engine here (`docker info` failed); the image is not built");
        return;
    }
    let build = Command::new(repo().join("build_docker_image"))
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    let tag = format!("{IMAGE_REPOSITORY}:{VERSION}-dev");
    for args in [&["--help"][..], &["trigger", "--help"][..]] {
        let output = Command::new("docker")
            .args(["run", "--rm", &tag])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage: ox-connector"),
            "{}",
            text(&output)
        );
    }
}
