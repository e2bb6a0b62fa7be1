//! Paced broker traffic (ARCHITECTURE invariant 19): every login and every
//! validation of a stored session waits for its broker host's limiter, so
//! a cold start of many accounts, or a restart, reaches each broker no
//! faster than it tolerates. One queue per host, whatever the accounts.

mod host;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

pub use host::{Admission, HostPacer, Place, Spot, Ticket};

use crate::brokers::pace::Pace;
use crate::brokers::{BrokerId, Connector};
use brokerd_core::time::SharedClock;

/// The limiters of every broker host the daemon calls.
#[derive(Debug)]
pub struct Pacer {
    clock: SharedClock,
    /// The pace of each broker (`[daemon.pacing.<broker>]`, else the
    /// broker's default).
    paces: HashMap<BrokerId, Pace>,
    hosts: Mutex<HashMap<(BrokerId, String), Arc<HostPacer>>>,
}

impl Pacer {
    /// Limiters at the configured paces; a broker not named gets its
    /// default.
    pub fn new(paces: HashMap<BrokerId, Pace>, clock: SharedClock) -> Self {
        Self {
            clock,
            paces,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The pace of `broker`.
    pub fn pace(&self, broker: BrokerId) -> Pace {
        self.paces
            .get(&broker)
            .copied()
            .unwrap_or_else(|| Pace::default_for(broker))
    }

    /// The limiter of the host `connector` logs in at (made on first use).
    pub fn host_of(&self, connector: &Connector) -> Arc<HostPacer> {
        let broker = connector.broker();
        let host = host_of(connector.paced_root());
        let mut hosts = self.hosts.lock();
        let pacer = hosts
            .entry((broker, host.clone()))
            .or_insert_with(|| HostPacer::new(host, self.pace(broker), Arc::clone(&self.clock)));
        Arc::clone(pacer)
    }

    /// Every host's limiter, for metrics.
    pub fn hosts(&self) -> Vec<Arc<HostPacer>> {
        let mut all: Vec<_> = self.hosts.lock().values().cloned().collect();
        all.sort_by(|a, b| a.host().cmp(b.host()));
        all
    }
}

/// `host[:port]` of a URL root; the root itself when it does not parse (the
/// config reader has already refused such a root, so this is only a key).
fn host_of(root: &str) -> String {
    match reqwest::Url::parse(root) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => root.to_string(),
        },
        Err(_) => root.to_string(),
    }
}
