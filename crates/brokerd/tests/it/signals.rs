//! A stop asked for while the daemon is still starting: the socket is bound
//! (so systemd, an operator or a client may already act) but the start has
//! not finished. The real binary must treat SIGTERM then as any other stop,
//! exiting 0 after an orderly stop, never dying by the signal.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::child;

use child::{Daemon, idle_jainam_config};

#[test]
fn sigterm_as_soon_as_the_socket_exists_is_an_orderly_stop() {
    let dir = tempfile::tempdir().unwrap();
    // Several rounds: where the signal lands in the start varies.
    for round in 0..5 {
        let home = dir.path().join(format!("home-{round}"));
        std::fs::create_dir(&home).unwrap();
        let config = idle_jainam_config(
            &home,
            "create_key_if_missing = true\nkey = \"file:KEY\""
                .replace("KEY", &home.join("key").display().to_string())
                .as_str(),
            None,
        );
        let log_path = home.join("daemon.log");
        let mut daemon = Daemon(
            Command::new(env!("CARGO_BIN_EXE_brokerd"))
                .arg("--config")
                .arg(&config)
                .env_remove("BROKERD_KEY")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap(),
        );
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let socket = home.join("run/brokerd.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        // Poll tightly: the point is to signal before the start is done.
        while !socket.exists() {
            assert!(
                daemon.0.try_wait().unwrap().is_none() && Instant::now() < deadline,
                "the daemon did not come up:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(daemon.0.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = daemon.0.wait().unwrap();
        assert_eq!(
            status.signal(),
            None,
            "round {round}: killed by a signal instead of stopping:\n{}",
            log()
        );
        assert!(status.success(), "round {round}: {status}:\n{}", log());
        assert!(log().contains("stopped"), "round {round}:\n{}", log());
    }
}
