//! Per-uid connection counting, so that one local user cannot take every
//! connection slot from the others.
//!
//! Root and the daemon's own uid are not exempt: they get a quota like any
//! other uid. An exemption would hand the whole socket to any runaway
//! program running as root (a cron job in a reconnect loop, a misbehaving
//! monitoring agent), which is exactly the starvation this prevents; and an
//! operator's `brokerctl` needs one connection, far below any quota.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Open connections per peer uid, capped at `limit` each.
#[derive(Debug)]
pub struct UidQuota {
    limit: usize,
    /// A plain mutex: the critical sections are one map lookup, taken once
    /// per accept and once per close, never across an `.await`.
    open: Mutex<HashMap<u32, usize>>,
}

/// One counted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct QuotaGuard {
    quota: Arc<UidQuota>,
    uid: u32,
}

impl UidQuota {
    /// A quota of `limit` connections per uid.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more connection of `uid`, or `None` when it already holds
    /// `limit` of them.
    pub fn try_acquire(self: &Arc<Self>, uid: u32) -> Option<QuotaGuard> {
        let mut open = self.open.lock();
        let count = open.entry(uid).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(QuotaGuard {
            quota: Arc::clone(self),
            uid,
        })
    }

    /// Connections `uid` holds now.
    pub fn held(&self, uid: u32) -> usize {
        self.open.lock().get(&uid).copied().unwrap_or(0)
    }
}

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let mut open = self.quota.open.lock();
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            // Drop the entry, so uids that come and go do not grow the map.
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_uid_has_its_own_quota_and_a_closed_connection_frees_its_place() {
        let q = UidQuota::new(2);
        let a1 = q.try_acquire(1000).unwrap();
        let _a2 = q.try_acquire(1000).unwrap();
        assert!(q.try_acquire(1000).is_none(), "uid 1000 is at its quota");
        let _root = q.try_acquire(0).expect("another uid is not affected");
        assert_eq!((q.held(1000), q.held(0)), (2, 1));
        drop(a1);
        assert_eq!(q.held(1000), 1);
        let _a3 = q.try_acquire(1000).expect("a freed place is reusable");
        assert!(q.try_acquire(1000).is_none());
    }

    #[test]
    fn a_uid_without_connections_leaves_no_entry() {
        let q = UidQuota::new(1);
        drop(q.try_acquire(7).unwrap());
        assert!(q.open.lock().is_empty());
    }
}
