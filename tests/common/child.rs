//! The real `brokerd` binary as a child process: killed when dropped, and
//! waited for until its socket appears.
#![allow(dead_code)] // each test file uses what it needs

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Killed when dropped, so a failed assertion leaves no daemon behind.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the daemon listens (it is ready), failing with its log.
pub fn wait_for(daemon: &mut Child, socket: &Path, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        let exited = daemon.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the daemon did not come up ({exited:?}):\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
