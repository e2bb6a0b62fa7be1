//! Who is on the other end of a connection (SO_PEERCRED plus SO_PEERGROUPS) and whether they may use the daemon or a given account.

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
    /// The peer of `stream`: uid, primary gid and pid from `cred` (its
    /// `SO_PEERCRED`, read first by the accept loop to check the uid's
    /// quota), supplementary groups from `SO_PEERGROUPS`. Both are what the
    /// kernel captured when the peer connected, so a user added to the
    /// socket group is seen as a member even when it is not the primary
    /// group, and neither can be swapped by pid reuse or hidden by
    /// `ProtectProc=invisible` (the `/proc/PID/status` this used to read
    /// could be both).
    pub fn from_cred(
        stream: &tokio::net::UnixStream,
        cred: tokio::net::unix::UCred,
    ) -> std::io::Result<Self> {
        let mut gids = vec![cred.gid()];
        gids.extend(
            brokerd_peergroups::peer_groups(stream)?
                .into_iter()
                .filter(|g| *g != cred.gid()),
        );
        Ok(Self {
            uid: cred.uid(),
            gids,
            pid: cred.pid(),
        })
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
