//! The Python client's suite (`clients/python/tests`) against the binaries
//! this build made (brokerd-demo, which runs the daemon with its bundled
//! simulators, and brokerctl): `cargo test` runs it like every other test,
//! so the client and the daemon cannot drift apart unnoticed.

use std::path::Path;
use std::process::Command;

#[test]
fn python_client_suite_passes_against_this_build() {
    let repo = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // brokerctl is another package's binary: cargo builds it for brokerd's
    // own tests, in the same folder, whenever the workspace is tested.
    let brokerctl = Path::new(env!("CARGO_BIN_EXE_brokerd-demo")).with_file_name("brokerctl");
    assert!(
        brokerctl.exists(),
        "no brokerctl beside brokerd-demo at {}: run `cargo build --bin brokerctl` \
         (a workspace `cargo test` builds it)",
        brokerctl.display()
    );
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
        .env("BROKERD_BIN", env!("CARGO_BIN_EXE_brokerd-demo"))
        .env("BROKERCTL_BIN", &brokerctl)
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
