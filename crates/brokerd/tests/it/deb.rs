//! The Debian package `cargo deb` builds (Cargo.toml, `package.metadata.deb`;
//! docs/deploy.md): its files, conffiles, control fields and maintainer
//! scripts, read with `dpkg-deb`, and an install and purge into a throwaway
//! root with `dpkg --root`.
//!
//! Needs cargo-deb (`cargo install cargo-deb --locked --version 3.8.0`, which
//! .ci/run does) and dpkg. Without cargo-deb these tests fail with that
//! advice, unless `BROKERD_SKIP_DEB=1` is set: then they pass and say loudly
//! that nothing was checked.
//!
//! The package is made from the debug binaries cargo built for this test
//! run, copied to where cargo-deb expects release binaries in a private
//! target directory, and packed by `cargo deb --no-build --fast`. What is
//! under test is the packaging, not the optimiser: a release build of the
//! whole project would add minutes, and cargo-deb refuses `--profile dev`.

use crate::common::deb as deb_support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use deb_support::{package, run, run_ok};

const SERVICE: &str = include_str!("../../../../systemd/brokerd.service");

/// The maintainer scripts cargo-deb writes: debian/postinst with its
/// fragments, and a prerm and postrm of its own.
const SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

/// Every file the package must hold (directories aside), from the
/// repository: anything missing or extra fails.
fn expected_files() -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        "usr/bin/brokerd",
        "usr/bin/brokerctl",
        "etc/brokerd/brokerd.example.toml",
        "usr/lib/systemd/system/brokerd.service",
        "usr/lib/systemd/system/brokerd.socket",
        "usr/lib/systemd/system/brokerd.service.d/debian.conf",
        "usr/lib/sysusers.d/brokerd.conf",
        "usr/lib/tmpfiles.d/brokerd.conf",
        "usr/share/doc/brokerd/README.md",
        "usr/share/doc/brokerd/deploy.md",
        "usr/share/doc/brokerd/protocol.md",
        "usr/share/doc/brokerd/copyright",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    files.extend(deb_support::dist_targets().into_iter().map(|(_, t)| t));
    files
}

#[test]
fn holds_exactly_the_expected_files() {
    let Some(pkg) = package() else { return };
    let listing = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&pkg.deb));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        // -rwxr-xr-x 0/0  5891528 2026-11-30 00:00 ./usr/bin/brokerd
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[5]);
        assert_eq!(owner, "0/0", "{path} is not owned by root: {line}");
        if mode.starts_with('d') {
            continue;
        }
        let path = path.trim_start_matches("./").to_string();
        let want = if path.starts_with("usr/bin/") {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, want, "mode of {path}");
        files.insert(path);
    }
    let expected = expected_files();
    let missing: Vec<_> = expected.difference(&files).collect();
    let extra: Vec<_> = files.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from the package: {missing:?}; not expected: {extra:?}"
    );
    // The operator writes the config: a packaged one would be a conffile
    // the daemon starts with.
    assert!(!files.contains("etc/brokerd/brokerd.toml"));
}

#[test]
fn control_fields_and_conffiles() {
    let Some(pkg) = package() else { return };
    let field = |name: &str| {
        run_ok(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(&pkg.deb)
                .arg(name),
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "brokerd");
    assert!(
        field("Version").starts_with(env!("CARGO_PKG_VERSION")),
        "Version {}",
        field("Version")
    );
    assert!(!field("Architecture").is_empty());
    assert!(field("Maintainer").contains('@'), "{}", field("Maintainer"));
    let depends = field("Depends");
    assert!(
        depends.split(',').any(|d| d.trim().starts_with("systemd")),
        "Depends: {depends}"
    );
    assert!(field("Description").starts_with(env!("CARGO_PKG_DESCRIPTION")));
    let conffiles = fs::read_to_string(pkg.control.join("conffiles")).unwrap();
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/brokerd/brokerd.example.toml"]
    );
}

#[test]
fn maintainer_scripts_parse_and_never_start_the_daemon() {
    let Some(pkg) = package() else { return };
    let shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    for name in SCRIPTS {
        let path = pkg.control.join(name);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("no {name}: {e}"));
        assert!(text.starts_with("#!/bin/sh\n"), "{name}: {text}");
        assert!(!text.contains("#DEBHELPER#"), "{name} kept the marker");
        run_ok(Command::new("sh").arg("-n").arg(&path));
        if shellcheck {
            run_ok(
                Command::new("shellcheck")
                    .args(["-s", "sh", "-S", "warning"])
                    .arg(&path),
            );
        }
        // Enabling or starting is the operator's, once config and
        // credentials exist: no `start`, `restart`, `try-restart` or
        // `enable --now` in any script. (deb-systemd-helper `enable` only
        // renews what the operator enabled: `was-enabled` guards it.)
        for forbidden in [
            "invoke start",
            "invoke restart",
            "invoke try-restart",
            "systemctl start",
            "systemctl restart",
            "systemctl enable",
            "systemctl try-restart",
            "--now",
        ] {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("echo"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !code.contains(forbidden),
                "{name} runs `{forbidden}`:\n{text}"
            );
        }
    }
    let postinst = fs::read_to_string(pkg.control.join("postinst")).unwrap();
    for step in [
        "systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} brokerd.conf",
        "systemd-tmpfiles --create brokerd.conf",
        "systemctl --system daemon-reload",
        "deb-systemd-helper --quiet was-enabled brokerd.service",
        "deb-systemd-helper --quiet was-enabled brokerd.socket",
    ] {
        assert!(
            postinst.contains(step),
            "postinst lacks `{step}`:\n{postinst}"
        );
    }
    let prerm = fs::read_to_string(pkg.control.join("prerm")).unwrap();
    assert!(
        prerm.contains("[ \"$1\" = remove ]")
            && prerm.contains("deb-systemd-invoke stop brokerd.service brokerd.socket"),
        "prerm must stop both units on removal, and only then:\n{prerm}"
    );
    let postrm = fs::read_to_string(pkg.control.join("postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge"), "{postrm}");
}

#[test]
fn packaged_files_are_the_repository_files() {
    let Some(pkg) = package() else { return };
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let x = &pkg.extracted;
    for (repo, installed) in [
        (
            "systemd/brokerd.service",
            "usr/lib/systemd/system/brokerd.service",
        ),
        (
            "systemd/brokerd.socket",
            "usr/lib/systemd/system/brokerd.socket",
        ),
        (
            "systemd/brokerd.sysusers",
            "usr/lib/sysusers.d/brokerd.conf",
        ),
        (
            "systemd/brokerd.tmpfiles",
            "usr/lib/tmpfiles.d/brokerd.conf",
        ),
        (
            "config/brokerd.example.toml",
            "etc/brokerd/brokerd.example.toml",
        ),
    ] {
        assert_eq!(
            fs::read(root.join(repo)).unwrap(),
            fs::read(x.join(installed)).unwrap(),
            "{installed} is not {repo}"
        );
    }
    // The drop-in changes the binary's path and nothing else.
    let exec_start = SERVICE
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("the unit has an ExecStart=");
    let dropin =
        fs::read_to_string(x.join("usr/lib/systemd/system/brokerd.service.d/debian.conf")).unwrap();
    let settings: Vec<&str> = dropin
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        settings,
        [
            "[Service]",
            "ExecStart=",
            &exec_start.replace("/usr/local/bin/brokerd", "/usr/bin/brokerd")
        ]
    );
    // Man pages gzipped, as Debian wants, with the content of dist/.
    for (rel, target) in deb_support::dist_targets() {
        let installed = x.join(&target);
        let content = if target.ends_with(".gz") {
            let out = run(Command::new("gzip").arg("-dc").arg(&installed)).0;
            out.stdout
        } else {
            fs::read(&installed).unwrap()
        };
        assert_eq!(fs::read(root.join(&rel)).unwrap(), content, "{target}");
    }
    for bin in ["brokerd", "brokerctl"] {
        let version = run_ok(Command::new(x.join("usr/bin").join(bin)).arg("--version"));
        assert_eq!(
            version.trim(),
            format!("{bin} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// `dpkg --root` installs into an empty folder, as root, with
/// `--force-script-chrootless`: the maintainer scripts run on this system
/// with `DPKG_ROOT` set (which systemd-sysusers and deb-systemd-helper
/// honour), so the throwaway root needs no shell or tools of its own.
/// `--force-depends`: its dpkg database lists no libc6 or systemd. systemd
/// does not run in a test, so the postinst's tmpfiles and daemon-reload steps
/// are skipped there (`/run/systemd/system` is absent); the tmpfiles file is
/// applied here by `systemd-tmpfiles --root` instead.
#[test]
fn installs_and_purges_in_a_throwaway_root() {
    let Some(pkg) = package() else { return };
    if !rustix::process::geteuid().is_root() {
        deb_support::loud(
            "SKIPPED installs_and_purges_in_a_throwaway_root: dpkg installs only as \
             root (it gives the files to root:root); run the tests as root, as CI does",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let dpkg = |args: &[&str]| {
        run_ok(
            Command::new("dpkg")
                .arg(format!("--root={}", root.display()))
                .arg("--force-script-chrootless")
                .args(args),
        )
    };

    let out = dpkg(&["--force-depends", "--install", pkg.deb.to_str().unwrap()]);
    assert!(out.contains("installed, not enabled"), "{out}");
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("brokerd:"))
        .unwrap_or_else(|| panic!("sysusers made no brokerd user:\n{passwd}"));
    assert!(
        user.ends_with(":/var/lib/brokerd:/usr/sbin/nologin"),
        "{user}"
    );
    assert!(root.join("usr/bin/brokerd").is_file());
    assert!(root.join("etc/brokerd/brokerd.example.toml").is_file());
    // Installed, not enabled: systemctl reads the root's unit folders.
    let (_, enabled) = run(Command::new("systemctl")
        .arg(format!("--root={}", root.display()))
        .args(["is-enabled", "brokerd.service", "brokerd.socket"]));
    assert_eq!(
        enabled.lines().collect::<Vec<_>>(),
        ["disabled", "disabled"],
        "the package enabled a unit"
    );
    let status = dpkg(&["--status", "brokerd"]);
    assert!(status.contains("Status: install ok installed"), "{status}");

    run_ok(
        Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", root.display()))
            .args(["--create", "brokerd.conf"]),
    );
    let run_dir = fs::metadata(root.join("run/brokerd")).unwrap();
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&run_dir), uid);

    // What the operator wrote survives a purge; the package's files do not.
    fs::write(root.join("etc/brokerd/brokerd.toml"), "# the operator's\n").unwrap();
    dpkg(&["--purge", "brokerd"]);
    assert!(!root.join("usr/bin/brokerd").exists());
    assert!(!root.join("etc/brokerd/brokerd.example.toml").exists());
    assert!(!root.join("usr/lib/systemd/system/brokerd.service").exists());
    assert!(root.join("etc/brokerd/brokerd.toml").exists());
}
