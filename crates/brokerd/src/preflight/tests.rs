//! The preflight's rules one by one, on temp folders. Nothing may be
//! created by a check.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::config::Config;

fn daemon(dir: &Path, extra: &str) -> DaemonConfig {
    let d = dir.display();
    let text = format!(
        "[daemon]\nsocket = \"{d}/run/brokerd.sock\"\nstate_dir = \"{d}/state\"\n{extra}\n\
         [[account]]\nbroker = \"jainam\"\nname = \"main\"\n[account.jainam]\nroot = \"https://h\"\n\
         [account.jainam.interactive]\napp_key = \"env:A\"\nsecret_key = \"env:A\"\n"
    );
    let env = SecretEnv::fake([("A".to_string(), "a".to_string())], None);
    Config::from_toml_str(&text, dir, &env)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
        .daemon
}

fn run(d: &DaemonConfig) -> Vec<ConfigProblem> {
    let env = SecretEnv::fake([], None);
    check(
        d,
        &Inputs {
            env_key: None,
            env: &env,
            binds_socket: true,
        },
    )
}

fn only(problems: &[ConfigProblem], key: &str) -> ConfigProblem {
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, key, "{problems:?}");
    problems[0].clone()
}

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_fresh_setup_passes_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(
        dir.path(),
        "key = \"file:keys/k\"\ncreate_key_if_missing = true",
    );
    assert_eq!(run(&d), []);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the check created {left:?}");
}

#[test]
fn key_files_are_read_as_the_store_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    crate::store::write_key_file(&key, &crate::store::EncryptionKey::generate()).unwrap();
    let d = daemon(dir.path(), "key = \"file:k\"");
    assert_eq!(run(&d), []);
    mode(&key, 0o644);
    let p = only(&run(&d), "daemon.key");
    assert!(p.message.contains("mode 0644"), "{p}");
    assert!(
        p.fix.contains(&format!("chmod 600 {}", key.display())),
        "{p}"
    );

    std::fs::write(&key, "not a key").unwrap();
    mode(&key, 0o600);
    let p = only(&run(&d), "daemon.key");
    assert!(p.message.contains("not valid base64"), "{p}");

    let d = daemon(dir.path(), "key = \"file:/dev/zero\"");
    let p = only(&run(&d), "daemon.key");
    assert!(p.message.contains("not a regular file"), "{p}");

    let d = daemon(dir.path(), "key = \"file:missing\"");
    let p = only(&run(&d), "daemon.key");
    assert!(p.message.contains("does not exist"), "{p}");
    assert!(p.fix.contains("brokerctl keygen --out"), "{p}");
}

#[test]
fn brokerd_key_overrides_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), "key = \"file:missing\"");
    let env = SecretEnv::fake([], None);
    let good = crate::store::EncryptionKey::generate().to_base64();
    let bad = Secret::new("c2hvcnQ=");
    let with = |k: &Secret| {
        check(
            &d,
            &Inputs {
                env_key: Some(k),
                env: &env,
                binds_socket: true,
            },
        )
    };
    assert_eq!(with(&good), []);
    let p = only(&with(&bad), "BROKERD_KEY");
    assert!(p.message.contains("bytes long"), "{p}");
    assert!(!p.to_string().contains("c2hvcnQ"), "{p}");
}

#[test]
fn state_dirs_others_can_write_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let d = daemon(dir.path(), "key = \"env:K\"");
    let env = SecretEnv::fake(
        [(
            "K".to_string(),
            crate::store::EncryptionKey::generate()
                .to_base64()
                .expose()
                .to_string(),
        )],
        None,
    );
    let inputs = Inputs {
        env_key: None,
        env: &env,
        binds_socket: true,
    };
    mode(&state, 0o700);
    assert_eq!(check(&d, &inputs), []);
    for bad in [0o777, 0o770, 0o702] {
        mode(&state, bad);
        let p = only(&check(&d, &inputs), "daemon.state_dir");
        assert!(
            p.fix.contains(&format!("chmod go-w {}", state.display())),
            "{p}"
        );
    }
}

#[test]
fn paths_under_a_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "").unwrap();
    let k = "key = \"file:keys/k\"\ncreate_key_if_missing = true";
    let mut d = daemon(dir.path(), k);
    d.state_dir = dir.path().join("f/state");
    d.database_url = format!("sqlite://{}/brokerd.db", d.state_dir.display());
    let p = only(&run(&d), "daemon.state_dir");
    assert!(p.message.contains("is a file, not a folder"), "{p}");

    let mut d = daemon(dir.path(), k);
    d.socket = dir.path().join("f/brokerd.sock");
    let p = only(&run(&d), "daemon.socket");
    assert!(p.message.contains("is not a folder"), "{p}");

    let mut d = daemon(dir.path(), k);
    d.database_url = format!("sqlite://{}/f/db/brokerd.db", dir.path().display());
    let p = only(&run(&d), "daemon.database_url");
    assert!(p.message.contains("is a file, not a folder"), "{p}");

    let d = daemon(
        dir.path(),
        "key = \"file:f/k\"\ncreate_key_if_missing = true",
    );
    let p = only(&run(&d), "daemon.key");
    assert!(p.message.contains("is to be created"), "{p}");
}

#[test]
fn a_passed_socket_needs_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "").unwrap();
    let mut d = daemon(
        dir.path(),
        "key = \"file:keys/k\"\ncreate_key_if_missing = true",
    );
    d.socket = dir.path().join("f/brokerd.sock");
    let env = SecretEnv::fake([], None);
    let inputs = Inputs {
        env_key: None,
        env: &env,
        binds_socket: false,
    };
    assert_eq!(check(&d, &inputs), []);
}
