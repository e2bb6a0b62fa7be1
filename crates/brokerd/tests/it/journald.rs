//! journald priorities: when stderr is the stream systemd announced in
//! `JOURNAL_STREAM`, the real `brokerd` starts every line with its syslog
//! priority (`<4>` for a warning, `<6>` for info), so `journalctl -p warning`
//! finds warnings; the JSON after the prefix is unchanged. When stderr is
//! anything else, lines carry no prefix.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::child;

use child::{Daemon, idle_jainam_config, wait_for};

/// Starts the daemon with stderr into `log` and `JOURNAL_STREAM` set to
/// `journal_stream(log's metadata)`, waits until it is ready, stops it with
/// SIGTERM, and returns what it wrote.
fn run_daemon(dir: &Path, journal_stream: &dyn Fn(&std::fs::Metadata) -> String) -> String {
    let home = dir.join(format!("home-{}", rand_suffix()));
    std::fs::create_dir(&home).unwrap();
    let config = idle_jainam_config(&home, "", None);
    let log_path = home.join("daemon.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let stream = journal_stream(&log_file.metadata().unwrap());
    let key = brokerd::store::EncryptionKey::generate();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_brokerd"))
            .arg("--config")
            .arg(&config)
            // Logged as a warning: the key should come from a file.
            .env("BROKERD_KEY", key.to_base64().expose())
            .env("JOURNAL_STREAM", stream)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(&mut daemon.0, &home.join("run/brokerd.sock"), &log);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon.0.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(daemon.0.wait().unwrap().success(), "{}", log());
    log()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The line containing `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line contains {needle:?}:\n{text}"))
}

#[test]
fn lines_into_the_journal_carry_their_priority_and_unchanged_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = run_daemon(dir.path(), &|m| format!("{}:{}", m.dev(), m.ino()));
    let warning = line_with(&text, "BROKERD_KEY");
    let ready = line_with(&text, "brokerd ready");
    let stopped = line_with(&text, "\"stopped\"");
    for (line, prefix, level) in [
        (warning, "<4>", "WARN"),
        (ready, "<6>", "INFO"),
        (stopped, "<6>", "INFO"),
    ] {
        let json = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line:?} does not start with {prefix}"));
        // What journald keeps after stripping the prefix is the JSON line.
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(parsed["level"], level, "{line}");
    }
    assert!(
        text.lines().all(|l| l.starts_with('<')),
        "every line has a priority:\n{text}"
    );
}

#[test]
fn a_journal_stream_that_is_not_stderr_gets_no_prefix() {
    // JOURNAL_STREAM is inherited by children whose stderr went elsewhere:
    // the numbers name another file, so the lines are plain.
    let dir = tempfile::tempdir().unwrap();
    let text = run_daemon(dir.path(), &|m| format!("{}:{}", m.dev(), m.ino() + 1));
    let warning = line_with(&text, "BROKERD_KEY");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        !text.lines().any(|l| l.starts_with('<')),
        "no prefix when stderr is not the journal:\n{text}"
    );
    // Not the journal: human text, not JSON, and no colour codes in a file.
    assert!(!warning.trim_start().starts_with('{'), "{warning}");
    assert!(
        !text.contains('\x1b'),
        "escape codes in a log file:\n{text}"
    );
}
