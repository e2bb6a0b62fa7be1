//! Building the Debian package once per test run for `tests/it/deb.rs`, and
//! running the tools that read it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The package, built, with its control files and contents unpacked.
pub struct Package {
    /// The `.deb` file.
    pub deb: PathBuf,
    /// `dpkg-deb --control`: control, conffiles, postinst, prerm, postrm.
    pub control: PathBuf,
    /// `dpkg-deb --extract`: the files as installed, under this folder.
    pub extracted: PathBuf,
}

/// Runs `cmd`; its output, stdout then stderr.
pub fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// Runs `cmd`, which must succeed; its output, stdout then stderr.
pub fn run_ok(cmd: &mut Command) -> String {
    let (out, text) = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// Each file under `dist/` (relative to the crate) and the path the package
/// installs it at: man pages gzipped into their section, completions where
/// bash-completion, zsh and fish look for a vendor's.
pub fn dist_targets() -> Vec<(String, String)> {
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut targets = Vec::new();
    for (folder, target) in [
        (
            "dist/completions/bash",
            "usr/share/bash-completion/completions",
        ),
        ("dist/completions/zsh", "usr/share/zsh/vendor-completions"),
        (
            "dist/completions/fish",
            "usr/share/fish/vendor_completions.d",
        ),
        ("dist/man", "usr/share/man"),
    ] {
        let entries = fs::read_dir(root.join(folder)).unwrap_or_else(|e| panic!("{folder}: {e}"));
        for entry in entries {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let installed = match name.rsplit_once('.') {
                Some((_, section)) if folder == "dist/man" => {
                    format!("{target}/man{section}/{name}.gz")
                }
                _ => format!("{target}/{name}"),
            };
            targets.push((format!("{folder}/{name}"), installed));
        }
    }
    targets
}

/// Prints `message` past the test harness's output capture (which takes
/// only `print!` and `eprint!`), so that a skip shows in every run.
pub fn loud(message: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** {message} ***\n");
}

/// The package, built on first use; `None` when cargo-deb is missing and
/// `BROKERD_SKIP_DEB=1` says to skip (printed loudly).
pub fn package() -> Option<&'static Package> {
    static PACKAGE: OnceLock<Option<Package>> = OnceLock::new();
    PACKAGE.get_or_init(build).as_ref()
}

fn build() -> Option<Package> {
    // The cargo running these tests, so `cargo deb` sees the same toolchain.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let has_cargo_deb = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_deb {
        if std::env::var("BROKERD_SKIP_DEB").as_deref() == Ok("1") {
            loud(
                "SKIPPED tests/it/deb.rs: cargo-deb is not installed and BROKERD_SKIP_DEB=1. \
                 The Debian package was NOT built or checked.",
            );
            return None;
        }
        panic!(
            "cargo-deb is not installed; these tests build the Debian package with it. \
             Install it: cargo install cargo-deb --locked --version 3.8.0 \
             (or set BROKERD_SKIP_DEB=1 to skip them)"
        );
    }
    // A private target directory holding only the two binaries, where
    // cargo-deb looks for release builds (its `target/release/` assets).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb");
    let _ = fs::remove_dir_all(&dir);
    let release = dir.join("target/release");
    fs::create_dir_all(&release).unwrap();
    for (name, built) in [
        ("brokerd", env!("CARGO_BIN_EXE_brokerd")),
        ("brokerctl", env!("CARGO_BIN_EXE_brokerctl")),
    ] {
        fs::copy(built, release.join(name)).unwrap();
    }
    let out = dir.join("out");
    run_ok(
        Command::new(&cargo)
            .args(["deb", "--no-build", "--fast", "--output"])
            .arg(&out)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", dir.join("target")),
    );
    let deb = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb made no .deb");
    let control = dir.join("control");
    let extracted = dir.join("extracted");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(&control),
    );
    run_ok(
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&deb)
            .arg(&extracted),
    );
    Some(Package {
        deb,
        control,
        extracted,
    })
}
