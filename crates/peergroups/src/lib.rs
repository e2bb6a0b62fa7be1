//! The supplementary groups of a Unix socket's peer, as the kernel captured
//! them when the peer connected (`SO_PEERGROUPS`, Linux 4.13).
//!
//! brokerd decides which local programs may fetch which sessions by uid and
//! gid. Reading a peer's groups from `/proc/PID/status` instead races with
//! pid reuse (the peer exits, another process takes its pid) and needs the
//! daemon to see other users' processes (`ProtectProc=default`). The socket
//! option has neither problem, but no maintained crate wraps it (rustix 1.1,
//! nix 0.32 and socket2 0.6 stop at `SO_PEERCRED`), and the daemon crate
//! forbids `unsafe`. So the one `getsockopt` call lives here, alone, where
//! it can be read in a minute.

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

/// Room for this many groups on the first try; most users have a handful.
const FIRST_TRY: usize = 32;

/// The peer's supplementary group ids, in the kernel's order (its primary
/// group is not among them unless it is also a supplementary one: read it
/// from `SO_PEERCRED`). Only meaningful on a connected Unix stream socket.
pub fn peer_groups(socket: impl AsFd) -> io::Result<Vec<u32>> {
    let fd = socket.as_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; FIRST_TRY];
    loop {
        let capacity = groups.len() * size_of::<libc::gid_t>();
        let mut len = libc::socklen_t::try_from(capacity)
            .map_err(|_| io::Error::other("too many supplementary groups"))?;
        // SAFETY: `fd` is a live descriptor borrowed for this call; the
        // buffer is `len` writable bytes of `gid_t`, which any bit pattern
        // makes valid, and the kernel writes at most `len` bytes and stores
        // the length it wrote (or, on ERANGE, the length it needs) in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        // ERANGE: the buffer was too small and `len` now says how big it
        // must be. Growing only when it is really larger rules out a loop.
        if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// This process's supplementary groups, from the kernel's own report.
    fn own_groups() -> Vec<u32> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
        line["Groups:".len()..]
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect()
    }

    #[test]
    fn a_socket_pair_sees_this_process_groups() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut expected = own_groups();
        expected.sort_unstable();
        for end in [&a, &b] {
            let mut got = peer_groups(end).unwrap();
            got.sort_unstable();
            assert_eq!(got, expected);
        }
    }

    /// Set in the copy of this test binary that runs with many groups.
    const CHILD: &str = "BROKERD_PEERGROUPS_TEST_CHILD";

    /// More groups than [`FIRST_TRY`], so the ERANGE path runs too. The
    /// test process usually has none, so a copy of it runs with 40 groups
    /// set by `setpriv` (root only: setting groups needs CAP_SETGID).
    #[test]
    fn more_groups_than_the_first_buffer_holds() {
        let wanted: Vec<u32> = (1000..1040).collect();
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(own_groups(), wanted, "setpriv set the groups");
            let (a, _b) = UnixStream::pair().unwrap();
            assert_eq!(peer_groups(&a).unwrap(), wanted);
            println!("PEERGROUPS-OK");
            return;
        }
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        if !root {
            eprintln!("skipped: setting 40 groups needs root (CI runs as root)");
            return;
        }
        let list: Vec<String> = wanted.iter().map(u32::to_string).collect();
        let out = std::process::Command::new("setpriv")
            .arg(format!("--groups={}", list.join(",")))
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::more_groups_than_the_first_buffer_holds",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("setpriv (util-linux) runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("PEERGROUPS-OK"), "the child ran: {text}");
    }

    #[test]
    fn a_socket_that_is_not_unix_is_an_error_not_garbage() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(peer_groups(&client).is_err());
    }
}
