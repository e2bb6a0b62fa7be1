//! The Python client's suite (`clients/python/tests`) against the binaries
//! this build made: `cargo test` runs it like every other test, so the
//! client and the daemon cannot drift apart unnoticed.

use std::path::Path;
use std::process::Command;

#[test]
fn python_client_suite_passes_against_this_build() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has_pytest = Command::new("python3")
        .args(["-c", "import pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_pytest,
        "python3 with pytest is needed for the Python client's tests; install it with:\n  \
         python3 -m pip install -r clients/python/requirements-test.txt"
    );
    let out = Command::new("python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "clients/python/tests",
        ])
        .current_dir(repo)
        .env("BROKERD_BIN", env!("CARGO_BIN_EXE_brokerd"))
        .env("BROKERCTL_BIN", env!("CARGO_BIN_EXE_brokerctl"))
        .env("PYTHONPATH", repo.join("clients/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("BROKERD_SOCKET")
        .env_remove("BROKERD_KEY")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python client's tests failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
