//! The UDM side shipped in `ucs/` (modules, hooks, syntax, the extended-attribute tool) compiles
//! on the Python versions of UCS 5.0-5.2 and behaves as its unit tests expect against the UDM
//! stand-in (`tests/ucs/udm_standin/README.md`); the German message catalogs are complete and
//! built from their sources. Also the helpers the other `ucs_*` tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A Python command that writes no `__pycache__` into the repository.
pub(crate) fn python(interpreter: &Path) -> Command {
    let mut command = Command::new(interpreter);
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// What the shipped UDM modules and extended attributes define (`tests/ucs/describe.py`):
/// `modules.<name>.objectClasses`, `modules.<name>.properties.<prop>.ldap`, `extended_attributes`.
pub(crate) fn describe() -> Value {
    let output = python(Path::new("python3"))
        .arg("describe.py")
        .current_dir(repo().join("tests/ucs"))
        .output()
        .expect("python3 must be installed for the UCS tests");
    assert!(output.status.success(), "describe.py: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The Python interpreters of UCS 5.0 (3.7), 5.1 (3.9) and 5.2 (3.11) found on this machine:
/// `python3.X` on PATH or a pyenv build under `$PYENV_ROOT/versions` (or `~/.pyenv`), each
/// checked by asking it for its version.
fn ucs_pythons() -> Vec<(String, PathBuf)> {
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let mut found = Vec::new();
    for version in ["3.7", "3.9", "3.11"] {
        let mut candidates = vec![PathBuf::from(format!("python{version}"))];
        if let Some(root) = &pyenv_root {
            if let Ok(entries) = std::fs::read_dir(root.join("versions")) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(&format!("{version}.")) {
                        candidates.push(entry.path().join(format!("bin/python{version}")));
                    }
                }
            }
        }
        for candidate in candidates {
            let Ok(output) = python(&candidate)
                .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
                .output()
            else {
                continue;
            };
            if output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == version
            {
                found.push((version.to_owned(), candidate));
                break;
            }
        }
    }
    found
}

/// Every Python file shipped for UCS.
fn shipped_python_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(repo().join("ucs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "py")
                || std::fs::read_to_string(p)
                    .map(|t| t.starts_with("#!/usr/bin/python3"))
                    .unwrap_or(false)
        })
        .collect();
    files.sort();
    files
}

const COMPILE: &str = "import sys\nfor path in sys.argv[1:]:\n    with open(path, encoding='utf-8') as f:\n        compile(f.read(), path, 'exec')\n";

#[test]
fn the_udm_files_compile_on_the_pythons_of_ucs_5_0_to_5_2_and_pass_their_unit_tests() {
    let files = shipped_python_files();
    assert!(files.len() >= 10, "shipped Python files: {files:?}");
    let pythons = ucs_pythons();
    eprintln!(
        "Pythons of UCS found: {:?}",
        pythons
            .iter()
            .map(|(v, p)| (v, p.display().to_string()))
            .collect::<Vec<_>>()
    );
    assert!(
        !pythons.is_empty(),
        "none of python3.7, python3.9, python3.11 found; scripts/setup installs python3"
    );
    for (version, interpreter) in &pythons {
        let output = python(interpreter)
            .args(["-c", COMPILE])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "Python {version}: {}",
            text(&output)
        );
        let output = python(interpreter)
            .args(["-m", "unittest", "test_udm"])
            .current_dir(repo().join("tests/ucs"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "unit tests on Python {version}: {}",
            text(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("OK"),
            "{}",
            text(&output)
        );
    }
}

#[test]
fn the_udm_files_use_no_syntax_newer_than_python_3_7() {
    // ast's feature_version (Python 3.8+) rejects grammar that UCS 5.0's Python 3.7 lacks
    // (walrus, positional-only parameters, match, ...), also where no 3.7 is installed.
    let check = "import ast, sys\nfor path in sys.argv[1:]:\n    with open(path, encoding='utf-8') as f:\n        ast.parse(f.read(), path, feature_version=(3, 7))\n";
    let output = python(Path::new("python3"))
        .args(["-c", check])
        .args(shipped_python_files())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn every_text_of_the_udm_modules_and_hooks_has_a_german_translation_in_a_current_catalog() {
    let output = python(Path::new("python3"))
        .args(["msgfmt.py", "check"])
        .current_dir(repo().join("tests/ucs"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    // The catalogs are real gettext files: Python's own reader translates with them.
    let read = "import gettext, sys\nt = gettext.GNUTranslations(open(sys.argv[1], 'rb'))\nprint(t.gettext('Context ID'))\n";
    let output = python(Path::new("python3"))
        .args(["-c", read])
        .arg(repo().join("ucs/udm/i18n/oxmail-oxcontext/de.mo"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Kontext-ID",
        "{}",
        text(&output)
    );
}

#[test]
fn the_shipped_modules_define_the_properties_of_the_listener_files() {
    let described = describe();
    let modules = described["modules"].as_object().unwrap();
    assert_eq!(
        modules.keys().collect::<Vec<_>>(),
        [
            "oxmail/accessprofile",
            "oxmail/functional_account",
            "oxmail/oxcontext",
            "oxresources/oxresources"
        ]
    );
    let ldap = |module: &str, property: &str| {
        described["modules"][module]["properties"][property]["ldap"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(ldap("oxmail/oxcontext", "contextid"), "oxContextIDNum");
    assert_eq!(
        ldap("oxresources/oxresources", "resourceMailAddress"),
        "mailPrimaryAddress"
    );
    assert_eq!(ldap("oxmail/functional_account", "personal"), "oxPersonal");
    assert_eq!(
        ldap("oxmail/accessprofile", "webdavxml"),
        "oxRightWebdavxml"
    );
}
