//! The workspace's dependency rules, read from the manifests: which crate
//! may depend on which (ARCHITECTURE.md, "Crates"). A new edge that points
//! the wrong way, or a runtime crate creeping into brokerd-core, fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every workspace crate and the workspace crates its normal (non-dev)
/// dependencies may name.
const ALLOWED: &[(&str, &[&str])] = &[
    ("brokerd-core", &[]),
    ("brokerd-peergroups", &[]),
    ("brokerd-sim", &["brokerd-core"]),
    ("brokerd", &["brokerd-core", "brokerd-peergroups"]),
    ("brokerd-demo", &["brokerd", "brokerd-core", "brokerd-sim"]),
];

/// What brokerd-core must never pull in: it is the shared vocabulary, with
/// no runtime, HTTP or database.
const CORE_FORBIDDEN: &[&str] = &["tokio", "reqwest", "sqlx", "axum", "hyper"];

struct Manifest {
    name: String,
    /// (dependency name, is it a workspace path dependency)
    normal: Vec<(String, bool)>,
    dev: Vec<(String, bool)>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deps(table: Option<&toml::Value>) -> Vec<(String, bool)> {
    let Some(table) = table.and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    table
        .iter()
        .map(|(name, spec)| {
            let local = spec.get("path").is_some();
            let name = spec
                .get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(name)
                .to_string();
            (name, local)
        })
        .collect()
}

fn manifests() -> Vec<Manifest> {
    let workspace: toml::Value = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    members
        .iter()
        .map(|m| {
            let path = root().join(m.as_str().unwrap()).join("Cargo.toml");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let doc: toml::Value = text.parse().unwrap();
            Manifest {
                name: doc["package"]["name"].as_str().unwrap().to_string(),
                normal: deps(doc.get("dependencies")),
                dev: deps(doc.get("dev-dependencies")),
            }
        })
        .collect()
}

#[test]
fn every_workspace_edge_points_the_allowed_way() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(name, to)| (*name, to.iter().copied().collect()))
        .collect();
    let found = manifests();
    let names: BTreeSet<&str> = found.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        allowed.keys().copied().collect(),
        "a crate was added or removed: give it a row in ALLOWED and in ARCHITECTURE.md"
    );
    for m in &found {
        for (dep, local) in &m.normal {
            if *local {
                assert!(
                    allowed[m.name.as_str()].contains(dep.as_str()),
                    "{} depends on {dep}, which ARCHITECTURE.md does not allow",
                    m.name
                );
            }
        }
    }
}

#[test]
fn the_simulators_reach_the_daemon_only_in_its_tests() {
    let found = manifests();
    let daemon = found.iter().find(|m| m.name == "brokerd").unwrap();
    assert!(
        daemon.normal.iter().all(|(d, _)| d != "brokerd-sim"),
        "the production daemon must not link the simulators"
    );
    assert!(
        daemon.dev.iter().any(|(d, _)| d == "brokerd-sim"),
        "brokerd's tests log in against brokerd-sim"
    );
    // And no source file of the daemon names them outside its tests.
    let mut offenders = Vec::new();
    scan(
        &root().join("crates/brokerd/src"),
        "brokerd_sim",
        &mut offenders,
    );
    assert!(
        offenders.is_empty(),
        "brokerd_sim named in production code: {offenders:?}"
    );
}

/// Files under `dir` that contain `needle`, except test modules (files
/// named `tests.rs`, `*_tests.rs` or under a `tests/` folder).
fn scan(dir: &Path, needle: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                scan(&path, needle, out);
            }
        } else if name.ends_with(".rs")
            && name != "tests.rs"
            && !name.ends_with("_tests.rs")
            && std::fs::read_to_string(&path).unwrap().contains(needle)
        {
            out.push(path);
        }
    }
}

#[test]
fn core_has_no_runtime_http_or_database() {
    let found = manifests();
    let core = found.iter().find(|m| m.name == "brokerd-core").unwrap();
    for (dep, _) in &core.normal {
        assert!(
            !CORE_FORBIDDEN.contains(&dep.as_str()),
            "brokerd-core depends on {dep}; it must stay free of {CORE_FORBIDDEN:?}"
        );
    }
}

#[test]
fn brokers_never_import_the_config_reader() {
    // config/ turns TOML into each broker's own settings struct, which
    // lives in the broker's folder: the dependency points config -> brokers.
    let mut offenders = Vec::new();
    scan(
        &root().join("crates/brokerd/src/brokers"),
        "crate::config",
        &mut offenders,
    );
    assert!(
        offenders.is_empty(),
        "broker modules that import config: {offenders:?}"
    );
}
