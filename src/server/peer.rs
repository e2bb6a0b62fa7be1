//! Who is on the other end of a connection (SO_PEERCRED plus supplementary
//! groups) and whether they may use the daemon or a given account.

use crate::session::Access;

/// A connected peer's identity, read once per connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Peer uid.
    pub uid: u32,
    /// Primary and supplementary gids.
    pub gids: Vec<u32>,
    /// Peer pid, when the kernel tells.
    pub pid: Option<i32>,
}

impl Peer {
    /// Reads the credentials of `stream`'s peer. Supplementary groups come
    /// from `/proc/PID/status`, so a user added to the socket group is seen
    /// as a member even when it is not the primary group.
    ///
    /// Why not `SO_PEERGROUPS` (the groups the kernel captured at connect,
    /// free of the pid-reuse race and of `/proc`): no dependency has a safe
    /// wrapper for it (rustix 1.1, nix 0.32 and socket2 0.6 stop at
    /// `SO_PEERCRED`), and this crate forbids `unsafe`. The same reason keeps
    /// the unit at `ProtectProc=default`.
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Self> {
        Ok(Self::from_cred(stream.peer_cred()?))
    }

    /// Like [`Peer::of`], from credentials already read (the accept loop
    /// checks the uid's quota before it reads `/proc`).
    pub fn from_cred(cred: tokio::net::unix::UCred) -> Self {
        let mut gids = vec![cred.gid()];
        if let Some(pid) = cred.pid()
            && let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = text.lines().find(|l| l.starts_with("Groups:"))
        {
            gids.extend(
                line["Groups:".len()..]
                    .split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
        Self {
            uid: cred.uid(),
            gids,
            pid: cred.pid(),
        }
    }

    /// Root and the daemon's own user are always allowed; otherwise the
    /// peer's uid or one of its gids must be on the list.
    pub fn allowed(&self, access: &Access, daemon_uid: u32) -> bool {
        self.uid == 0
            || self.uid == daemon_uid
            || access.uids.contains(&self.uid)
            || self.gids.iter().any(|g| access.gids.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists() {
        let peer = Peer {
            uid: 1000,
            gids: vec![1000, 2000],
            pid: None,
        };
        let none = Access::default();
        assert!(!peer.allowed(&none, 999));
        assert!(peer.allowed(&none, 1000), "the daemon's own user");
        assert!(peer.allowed(
            &Access {
                uids: vec![1000],
                gids: vec![]
            },
            999
        ));
        assert!(
            peer.allowed(
                &Access {
                    uids: vec![],
                    gids: vec![2000]
                },
                999
            ),
            "supplementary group"
        );
        assert!(!peer.allowed(
            &Access {
                uids: vec![1],
                gids: vec![3]
            },
            999
        ));
        let root = Peer {
            uid: 0,
            gids: vec![0],
            pid: None,
        };
        assert!(root.allowed(&none, 999));
    }
}
