//! The bad input corpus (`tests/data/bad/`, listed with the expected reason in `cases.tsv`)
//! and the folder entries that cannot be stored as files there (links, pipes, folders, huge
//! and unreadable files): each is quarantined with a reason that names the file and the cause,
//! or left alone if it is not a listener file at all; every valid file around them is applied
//! in order, and the daemon keeps running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{files, wait_for, RecordingApplier, TestEnv};

const T: Duration = Duration::from_secs(60);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad")
}

/// `(corpus file, expected text)` from `cases.tsv`.
fn corpus() -> Vec<(String, String)> {
    std::fs::read_to_string(corpus_dir().join("cases.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (file, expected) = l.split_once('\t').unwrap();
            (file.to_owned(), expected.to_owned())
        })
        .collect()
}

/// Whether a file without read permission can be read anyway (root can).
fn permissions_are_bypassed(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::write(&probe, b"x").unwrap();
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let readable = std::fs::read(&probe).is_ok();
    std::fs::remove_file(&probe).unwrap();
    readable
}

#[test]
fn every_corpus_file_fails_to_parse_with_its_reason() {
    let cases = corpus();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    for (file, expected) in cases {
        let path = corpus_dir().join(&file);
        let error = ox_connector::listener::ListenerFile::read(&path)
            .map(|_| ())
            .expect_err(&file)
            .to_string();
        assert!(
            error.starts_with(&format!("{}: ", path.display())),
            "{file}: the error does not name the file: {error}"
        );
        assert!(
            error.contains(&expected),
            "{file}: {error:?} lacks {expected:?}"
        );
    }
}

#[tokio::test]
async fn bad_files_are_quarantined_with_their_reason_and_nothing_else_is_lost_or_blocked() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0u32;
    let mut next = || {
        n += 1;
        files::name(n)
    };
    let mut valid = Vec::new();
    // (listener file name, expected text in the explanation)
    let mut quarantined: Vec<(String, String)> = Vec::new();
    let write_valid = |name: String, valid: &mut Vec<String>| {
        files::write(&dir, &name, &files::user(&format!("ok-{name}"), "someone"));
        valid.push(name);
    };

    for (file, expected) in corpus() {
        write_valid(next(), &mut valid);
        let name = next();
        std::fs::copy(corpus_dir().join(&file), dir.join(&name)).unwrap();
        quarantined.push((name, expected));
    }

    // Entries that cannot live in the repository.
    write_valid(next(), &mut valid);
    let link = next();
    std::os::unix::fs::symlink(corpus_dir().join("cases.tsv"), dir.join(&link)).unwrap();
    quarantined.push((link, "is a symbolic link".into()));
    let dangling = next();
    std::os::unix::fs::symlink("/nonexistent/target.json", dir.join(&dangling)).unwrap();
    quarantined.push((dangling, "is a symbolic link".into()));
    let to_device = next();
    std::os::unix::fs::symlink("/dev/zero", dir.join(&to_device)).unwrap();
    quarantined.push((to_device, "is a symbolic link".into()));
    let fifo = next();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join(&fifo))
        .status()
        .unwrap();
    assert!(made.success());
    quarantined.push((fifo, "is a named pipe (FIFO)".into()));
    let huge = next();
    let file = std::fs::File::create(dir.join(&huge)).unwrap();
    file.set_len(ox_connector::listener::MAX_FILE_BYTES + 1)
        .unwrap();
    quarantined.push((huge, "more than the limit of 67108864 bytes".into()));
    let unreadable = next();
    files::write(&dir, &unreadable, &files::user("unreadable", "unreadable"));
    std::fs::set_permissions(
        dir.join(&unreadable),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    if permissions_are_bypassed(scratch.path()) {
        // Root reads it anyway: it is a valid file.
        valid.push(unreadable);
    } else {
        quarantined.push((unreadable, "Permission denied".into()));
    }
    // Not listener files: left alone, never quarantined.
    let ignored = [
        "notes.txt",
        "2025-01-01.json",
        ".2025-01-01-00-00-00-000001.json",
        "2025-01-01-00-00-00-000001.json.converting.tmp",
        "2025-01-01-00-00-00-0000001.json",
        "old.db",
    ];
    for name in ignored {
        std::fs::write(dir.join(name), b"{").unwrap();
    }
    let folder = next();
    std::fs::create_dir(dir.join(&folder)).unwrap();
    write_valid(next(), &mut valid);

    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;
    wait_for("every valid file applied", T, || {
        applier.applied().len() == valid.len()
    })
    .await;
    assert_eq!(
        applier.applied(),
        valid,
        "valid files applied in name order"
    );
    let broken = dir.join("broken");
    wait_for("every bad file quarantined", T, || {
        quarantined
            .iter()
            .all(|(name, _)| std::fs::symlink_metadata(broken.join(name)).is_ok())
    })
    .await;
    for (name, expected) in &quarantined {
        let why = std::fs::read_to_string(broken.join(format!("{name}.error.txt"))).unwrap();
        assert!(
            why.contains(name),
            "{name}: the explanation does not name the file: {why}"
        );
        assert!(why.contains(expected), "{name}: {why:?} lacks {expected:?}");
        assert!(
            std::fs::symlink_metadata(dir.join(name)).is_err(),
            "{name} is still queued"
        );
    }
    for name in ignored {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            b"{",
            "{name} was touched"
        );
        assert!(!broken.join(name).exists(), "{name} was quarantined");
    }
    assert!(
        dir.join(&folder).is_dir(),
        "a folder named like a listener file was touched"
    );

    // Still running: a file written now is applied.
    let last = next();
    files::write(&dir, &last, &files::user("last", "last"));
    wait_for("a file written afterwards", T, || {
        applier.applied().last() == Some(&last)
    })
    .await;
    assert!(applier.calls().iter().all(|c| c.file_existed));
    daemon.stop().await;
}

#[tokio::test]
async fn a_file_rewritten_in_place_while_it_is_read_is_applied_once_complete() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;

    // An admin's editor writing the file in place, in pieces, several times over.
    let name = files::name(1);
    let path = dir.join(&name);
    let content = files::converter_json(&files::user("rewritten", "rewritten"));
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..20 {
            let mut file = std::fs::File::create(&path).unwrap();
            let (head, tail) = content.split_at(content.len() / 2);
            file.write_all(head).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            file.write_all(tail).unwrap();
        }
    });
    writer.join().unwrap();
    wait_for("the rewritten file applied", T, || {
        applier.applied() == [name.clone()]
    })
    .await;
    assert!(!dir.join("broken").join(&name).exists());
    daemon.stop().await;
}
