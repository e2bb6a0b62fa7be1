//! Several daemons on one PostgreSQL store (docs/ha.md): exactly one of
//! them, the holder of a session's advisory lock, logs in for it; the
//! others serve what it publishes and ask it, through the database, for
//! whatever needs a login.
//!
//! [`Link`] is what a slot needs (is this daemon still the leader? ask
//! the leader); `run.rs` holds the loops that take and keep the locks,
//! listen for notifications and look for missed ones.

mod run;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::brokers::{BrokerId, SessionKey};
use crate::config::HaConfig;
use crate::store::postgres::PgStore;
use crate::store::postgres::ha::{Ask, AskKind, LockConnection};
use crate::store::{Store, StoreError};

pub use run::spawn;

/// The daemon's side of the shared store, handed to every slot.
#[derive(Debug)]
pub struct Link {
    config: HaConfig,
    store: Arc<Store>,
    /// The dedicated connection holding this daemon's locks; `None` while
    /// the database is unreachable (then no lock is held).
    locks: tokio::sync::Mutex<Option<LockConnection>>,
    /// The sessions this daemon leads (holds the lock of).
    led: parking_lot::Mutex<HashSet<SessionKey>>,
    /// Who leads each session, as the database last said.
    leaders: parking_lot::RwLock<HashMap<SessionKey, (String, DateTime<Utc>)>>,
    /// Whether the lock connection is up (so its loss is logged once).
    connected: AtomicBool,
}

impl Link {
    /// A link over `store`, which must be PostgreSQL (the config check
    /// refuses `[daemon.ha]` otherwise).
    pub fn new(config: HaConfig, store: Arc<Store>) -> Arc<Self> {
        if let Store::Postgres(pg) = &*store {
            pg.set_host(&config.host);
        }
        Arc::new(Self {
            config,
            store,
            locks: tokio::sync::Mutex::new(None),
            led: parking_lot::Mutex::new(HashSet::new()),
            leaders: parking_lot::RwLock::new(HashMap::new()),
            connected: AtomicBool::new(false),
        })
    }

    /// This daemon's host name.
    pub fn host(&self) -> &str {
        &self.config.host
    }

    /// Whether `broker`'s sessions are bound to the creating address.
    pub fn address_bound(&self, broker: BrokerId) -> bool {
        self.config.address_bound(broker)
    }

    /// Who leads `key` (host, since), as the database last said.
    pub fn leader_of(&self, key: &SessionKey) -> Option<(String, DateTime<Utc>)> {
        self.leaders.read().get(key).cloned()
    }

    /// Whether this daemon leads `key` by its own bookkeeping.
    pub fn leads(&self, key: &SessionKey) -> bool {
        self.led.lock().contains(key)
    }

    fn pg(&self) -> &PgStore {
        match &*self.store {
            Store::Postgres(pg) => pg,
            Store::Sqlite(_) => {
                unreachable!("[daemon.ha] is refused on SQLite by the config check")
            }
        }
    }

    /// Asked right before a login reaches the broker: whether this daemon
    /// still holds `key`'s lock, by a round trip on the lock connection.
    /// Any doubt is a no: a login the daemon cannot prove it may make is
    /// not made (another daemon may be making it).
    pub async fn still_leads(&self, key: &SessionKey) -> bool {
        if !self.leads(key) {
            return false;
        }
        let mut locks = self.locks.lock().await;
        let Some(conn) = locks.as_mut() else {
            return false;
        };
        match conn.holds(key).await {
            Ok(true) => true,
            Ok(false) => {
                // Not ours any more: the next round of the lock loop tries
                // it again like any session it does not lead.
                warn!(session = %key, "this daemon no longer holds the lock it took");
                self.led.lock().remove(key);
                false
            }
            Err(e) => {
                warn!(error = %e, "the lock connection failed; this daemon leads nothing until it is back");
                *locks = None;
                let _ = self.lost_everything();
                false
            }
        }
    }

    /// This daemon's ask of the leader of `key`, signed with its host:
    /// `kind` about `generation`, a session valid for `min_valid`, and a
    /// browser login's `payload` (stored encrypted).
    pub async fn forward(
        &self,
        key: &SessionKey,
        kind: AskKind,
        generation: u64,
        min_valid: std::time::Duration,
        payload: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let ask = Ask {
            kind,
            generation,
            min_valid_secs: min_valid.as_secs(),
            from_host: self.config.host.clone(),
            payload,
        };
        self.pg().forward(key, &ask).await.map(|_| ())
    }

    /// The lock connection is gone (the caller has dropped it): the server
    /// has dropped every lock. Whether it was up until now (so its loss is
    /// said once).
    fn lost_everything(&self) -> bool {
        self.led.lock().clear();
        self.connected.swap(false, Ordering::Relaxed)
    }
}
