//! All slots of the daemon, built from the config, found by (broker,
//! account, api) without allocating on the request path.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{ErrorCode, RequestError};
use super::events::EventBus;
use super::slot::{Access, Slot};
use super::totp_record::StoreLedger;
use crate::brokers::angel_one::AngelConnector;
use crate::brokers::breeze::BreezeConnector;
use crate::brokers::jainam::JainamConnector;
use crate::brokers::kotak_neo::KotakConnector;
use crate::brokers::zerodha::ZerodhaConnector;
use crate::brokers::{Api, BrokerId, Connector, SessionKey};
use crate::config::{AccountConfig, Config};
use crate::store::Store;
use brokerd_core::time::SharedClock;

/// The slots. Shared behind an `Arc`; the set of slots changes only on reload.
#[derive(Debug)]
pub struct Registry {
    // RwLock<Arc<Vec>>: every request takes a cheap snapshot; only a reload
    // writes, swapping in a whole new list.
    slots: RwLock<Arc<Vec<Arc<Slot>>>>,
    events: EventBus,
    tasks: TaskTracker,
    store: Arc<Store>,
    // How the config file is read again (the demo's loader points accounts
    // at its simulators; the daemon's reads the file as written).
    loader: crate::config::Loader,
    // Where slot loops run: set once by `spawn_drivers`, reused by reloads.
    drivers: OnceLock<(CancellationToken, TaskTracker)>,
    /// The config file, read again for one account's credentials before an
    /// operator `login` (None: configured from text, nothing to re-read).
    source: Option<std::path::PathBuf>,
    /// The daemon's one clock, handed to every slot and to the TOTP gates
    /// of Kotak and Angel One.
    clock: SharedClock,
    /// The broker hosts' limiters, shared by every slot (`[daemon]` is
    /// fixed until a restart, so a reload keeps them).
    pacer: Arc<super::pacing::Pacer>,
    /// Cancelled with the drivers' token: stops logins still queued.
    stopping: CancellationToken,
    /// `[daemon.ha]`: several daemons share the store.
    ha: Option<Arc<crate::ha::Link>>,
}

/// What a reload did, by session key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Sessions of accounts new in the configuration (started).
    pub added: Vec<String>,
    /// Sessions of accounts no longer configured (stopped; stored sessions
    /// kept unless asked otherwise).
    pub removed: Vec<String>,
    /// Sessions whose settings changed (session and generation kept).
    pub changed: Vec<String>,
    /// Sessions left exactly as they were.
    pub unchanged: usize,
}

/// One slot as the configuration describes it.
struct Planned {
    key: SessionKey,
    access: Access,
    connector: Connector,
    policy: crate::config::SessionPolicy,
}

fn plan(config: &Config, store: &Arc<Store>, clock: &SharedClock) -> Vec<Planned> {
    let mut out = Vec::new();
    for account in &config.accounts {
        let access = Access {
            uids: account.effective_uids(&config.daemon).to_vec(),
            gids: account.effective_gids(&config.daemon).to_vec(),
        };
        for (api, connector) in connectors(account, config, store, clock) {
            out.push(Planned {
                key: SessionKey::new(account.broker, account.name.clone(), api),
                access: access.clone(),
                connector,
                policy: account.policy.clone(),
            });
        }
    }
    out
}

impl Registry {
    /// Builds one slot per configured (account, api). `loader` reads the
    /// config file again before an operator `login`; `clock` is read by
    /// every decision about time.
    pub fn build(
        config: &Config,
        store: Arc<Store>,
        loader: crate::config::Loader,
        clock: SharedClock,
    ) -> Self {
        let store_for_ha = Arc::clone(&store);
        let registry = Self {
            slots: RwLock::new(Arc::new(Vec::new())),
            events: EventBus::new(1024),
            tasks: TaskTracker::new(),
            store,
            loader,
            drivers: OnceLock::new(),
            source: config.source.clone(),
            pacer: Arc::new(super::pacing::Pacer::new(
                config.daemon.pacing.clone(),
                Arc::clone(&clock),
            )),
            stopping: CancellationToken::new(),
            ha: config
                .daemon
                .ha
                .clone()
                .map(|c| crate::ha::Link::new(c, Arc::clone(&store_for_ha))),
            clock,
        };
        let slots = plan(config, &registry.store, &registry.clock)
            .into_iter()
            .map(|p| registry.new_slot(p))
            .collect();
        *registry.slots.write() = Arc::new(slots);
        registry
    }

    fn new_slot(&self, p: Planned) -> Arc<Slot> {
        Slot::new(
            p.key,
            p.access,
            p.connector,
            p.policy,
            super::slot::Shared {
                store: Arc::clone(&self.store),
                events: self.events.clone(),
                tasks: self.tasks.clone(),
                clock: Arc::clone(&self.clock),
                pacer: Arc::clone(&self.pacer),
                stopping: self.stopping.clone(),
                ha: self.ha.clone(),
            },
        )
    }

    /// Every slot, in config order (a snapshot).
    pub fn slots(&self) -> Arc<Vec<Arc<Slot>>> {
        Arc::clone(&self.slots.read())
    }

    /// `[daemon.ha]`: the daemon's link to the others sharing its store.
    pub fn ha(&self) -> Option<&Arc<crate::ha::Link>> {
        self.ha.as_ref()
    }

    /// The broker hosts' limiters.
    pub fn pacer(&self) -> &Arc<super::pacing::Pacer> {
        &self.pacer
    }

    /// The daemon's one clock (audit windows and anything else that must
    /// agree with the slots about what time it is).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The store every slot persists to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The event bus shared by all slots.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The tracker of in-flight logins (waited on at shutdown).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Reads the config file again and applies what it now says about
    /// `slot`'s account alone (its secret references are resolved anew), so
    /// `login` after a lock-out uses the secret the operator fixed, not the
    /// one the broker rejected. Other accounts are left alone. A file with
    /// problems changes nothing and says why.
    pub async fn reread_credentials(&self, slot: &Slot) -> Result<(), RequestError> {
        let Some(path) = self.source.clone() else {
            return Ok(());
        };
        let read = {
            let path = path.clone();
            let loader = self.loader.clone();
            // Files and credentials are read from disk: off the runtime.
            tokio::task::spawn_blocking(move || loader.load(&path))
                .await
                .map_err(|e| {
                    RequestError::new(
                        ErrorCode::Unavailable,
                        format!("reading the config failed: {e}"),
                    )
                })?
        };
        let loaded = read.map_err(|problems| {
            RequestError::new(
                ErrorCode::BadRequest,
                format!(
                    "{} has problems, so {}'s credentials could not be read again; fix them, then run \
                     `brokerctl login` again:\n{problems}",
                    path.display(),
                    slot.key()
                ),
            )
        })?;
        match plan(&loaded.config, &self.store, &self.clock)
            .into_iter()
            .find(|p| p.key == *slot.key())
        {
            Some(p) => {
                // Only what the broker checks: policy and access changes
                // stay for `reload`, which only the daemon's operators may run.
                slot.reconfigure(p.connector, slot.policy(), (*slot.access()).clone());
                Ok(())
            }
            None => Err(RequestError::new(
                ErrorCode::UnknownAccount,
                format!(
                    "{} is no longer in {}; run `brokerctl reload` to apply the file",
                    slot.key(),
                    path.display()
                ),
            )),
        }
    }

    /// Applies a new, already validated configuration: unchanged sessions
    /// keep everything; changed ones keep their session and generation;
    /// new accounts start; removed ones stop (their stored sessions are
    /// forgotten only when `forget_removed`).
    pub async fn reload(&self, config: &Config, forget_removed: bool) -> ReloadReport {
        let old = self.slots();
        let mut report = ReloadReport::default();
        let mut next = Vec::new();
        for p in plan(config, &self.store, &self.clock) {
            if let Some(slot) = old.iter().find(|s| *s.key() == p.key) {
                if slot.reconfigure(p.connector, p.policy, p.access) {
                    report.changed.push(p.key.to_string());
                } else {
                    report.unchanged += 1;
                }
                next.push(Arc::clone(slot));
                continue;
            }
            let slot = self.new_slot(p);
            let restored = self.restore(&slot).await;
            if let Some((cancel, tracker)) = self.drivers.get() {
                tracker.spawn(Arc::clone(&slot).run(cancel.clone()));
            }
            self.spawn_checks(vec![(Arc::clone(&slot), restored)]);
            report.added.push(slot.key().to_string());
            next.push(slot);
        }
        for slot in old
            .iter()
            .filter(|s| !next.iter().any(|n| Arc::ptr_eq(n, s)))
        {
            slot.retire();
            report.removed.push(slot.key().to_string());
            if forget_removed && let Err(e) = self.store.forget_session(slot.key()).await {
                tracing::error!(session = %slot.key(), error = %e, "cannot forget the stored session");
            }
        }
        *self.slots.write() = Arc::new(next);
        report
    }

    /// Finds a slot; `account` may be omitted when the broker has exactly one.
    pub fn find(
        &self,
        broker: &str,
        account: Option<&str>,
        api: Option<&str>,
    ) -> Result<Arc<Slot>, RequestError> {
        let unknown = |m: String| RequestError::new(ErrorCode::UnknownAccount, m);
        let slots = self.slots.read();
        let broker_id = BrokerId::parse(broker).ok_or_else(|| {
            unknown(format!(
                "unknown broker {broker:?}; brokers are kotak_neo, breeze, zerodha, jainam, angel_one"
            ))
        })?;
        let api = match api {
            None => Api::Interactive,
            Some(a) => Api::parse(a).ok_or_else(|| {
                RequestError::new(
                    ErrorCode::BadRequest,
                    format!("unknown api {a:?}; use \"interactive\" or \"market\""),
                )
            })?,
        };
        let account = match account {
            Some(a) => a,
            None => {
                let mut names = slots
                    .iter()
                    .filter(|s| s.key().broker == broker_id)
                    .map(|s| s.key().account.as_str());
                let first = names
                    .next()
                    .ok_or_else(|| unknown(format!("no {broker} account is configured")))?;
                if names.any(|n| n != first) {
                    return Err(RequestError::new(
                        ErrorCode::BadRequest,
                        format!(
                            "several {broker} accounts are configured; name one with \"account\""
                        ),
                    ));
                }
                first
            }
        };
        slots
            .iter()
            .find(|s| {
                s.key().broker == broker_id && s.key().account == account && s.key().api == api
            })
            .cloned()
            .ok_or_else(|| {
                unknown(format!(
                    "no {broker} account {account:?} with api {api} is configured"
                ))
            })
    }

    /// Restores every slot from the store, with no broker call (invariant
    /// 19): sessions still valid by their expiry are served from here on,
    /// rejected credentials stay locked out, and the login budget
    /// remembers the last hour. Three store queries whatever the number of
    /// slots. Returns what [`Registry::spawn_checks`] must check at the
    /// brokers.
    pub async fn rehydrate(&self) -> Vec<(Arc<Slot>, Option<u64>)> {
        let slots = self.slots();
        let started = std::time::Instant::now();
        let since = super::machine::budget::remembered_since(self.clock.now());
        let mut state = match self.store.startup_state(since).await {
            Ok(state) => state,
            Err(e) => {
                // One slot at a time instead: each reports its own trouble.
                tracing::error!(error = %e, "cannot read the store in one pass; reading it slot by slot");
                let mut restored = Vec::with_capacity(slots.len());
                for slot in slots.iter() {
                    restored.push((Arc::clone(slot), self.restore(slot).await));
                }
                return restored;
            }
        };
        let read_ms = started.elapsed().as_millis() as u64;
        let restored: Vec<_> = slots
            .iter()
            .map(|slot| {
                let generation = slot.rehydrate(state.sessions.remove(slot.key()));
                slot.restore_rejection_from(
                    state.rejections.remove(slot.key()).unwrap_or_default(),
                );
                slot.restore_budget_from(state.logins.remove(slot.key()).unwrap_or_default());
                (Arc::clone(slot), generation)
            })
            .collect();
        tracing::info!(
            sessions = slots.len(),
            restored = restored.iter().filter(|(_, g)| g.is_some()).count(),
            read_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "stored sessions restored without a broker call"
        );
        restored
    }

    /// Restores one slot (one added by a reload, or when the one-pass read
    /// failed); returns the generation restored, if any.
    async fn restore(&self, slot: &Arc<Slot>) -> Option<u64> {
        let generation = match self.store.load_session(slot.key()).await {
            Ok(stored) => slot.rehydrate(stored),
            Err(e) => {
                tracing::error!(session = %slot.key(), error = %e, "cannot read the stored session");
                None
            }
        };
        // Whatever became of the session: a rejected secret stays rejected
        // and the budget remembers the last hour's logins.
        slot.restore_rejection().await;
        slot.restore_budget().await;
        generation
    }

    /// In the background, at each broker host's pace: the startup checks
    /// and the validation of each restored session (`Slot::check_restored`).
    /// Call after [`Registry::spawn_drivers`]; a stop ends the checks still
    /// waiting (a check already at the broker is let finish by the stop's
    /// grace, like any connection).
    pub fn spawn_checks(&self, restored: Vec<(Arc<Slot>, Option<u64>)>) {
        let Some((cancel, tracker)) = self.drivers.get() else {
            return tracing::error!("spawn_checks called before spawn_drivers; no startup checks");
        };
        for (slot, generation) in restored {
            let cancel = cancel.clone();
            tracker.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = slot.check_restored(generation) => {}
                }
            });
        }
    }

    /// Starts every slot's background loop.
    pub fn spawn_drivers(&self, cancel: &CancellationToken, tracker: &TaskTracker) {
        let _ = self.drivers.set((cancel.clone(), tracker.clone()));
        let (stop, stopping) = (cancel.clone(), self.stopping.clone());
        tracker.spawn(async move {
            stop.cancelled().await;
            stopping.cancel();
        });
        for slot in self.slots().iter() {
            tracker.spawn(Arc::clone(slot).run(cancel.clone()));
        }
    }
}

fn connectors(
    account: &AccountConfig,
    config: &Config,
    store: &Arc<Store>,
    clock: &SharedClock,
) -> Vec<(Api, Connector)> {
    let timeout = config.daemon.limits.login_timeout;
    // Used TOTP windows are recorded in the store before each code is sent
    // (a reload keeps this state: `keeping_state_of`).
    let ledger = || StoreLedger::new(Arc::clone(store), account.broker, &account.name);
    // A missing table is refused by the config reader; nothing to plan.
    match account.broker {
        BrokerId::Jainam => planned(
            &account.jainam,
            |c| JainamConnector::plan(c, timeout, Arc::clone(clock)),
            Connector::Jainam,
        ),
        BrokerId::KotakNeo => planned(
            &account.kotak_neo,
            |c| KotakConnector::plan(c, timeout, ledger(), Arc::clone(clock)),
            Connector::KotakNeo,
        ),
        BrokerId::Zerodha => planned(
            &account.zerodha,
            |c| ZerodhaConnector::plan(c, timeout, Arc::clone(clock)),
            Connector::Zerodha,
        ),
        BrokerId::Breeze => planned(
            &account.breeze,
            |c| BreezeConnector::plan(c, timeout, Arc::clone(clock)),
            Connector::Breeze,
        ),
        BrokerId::AngelOne => planned(
            &account.angel_one,
            |c| AngelConnector::plan(c, timeout, ledger(), Arc::clone(clock)),
            Connector::AngelOne,
        ),
    }
}

/// One broker's planned connectors, wrapped as [`Connector`]s.
fn planned<C, B>(
    cfg: &Option<C>,
    plan: impl FnOnce(&C) -> Vec<(Api, B)>,
    wrap: fn(B) -> Connector,
) -> Vec<(Api, Connector)> {
    cfg.as_ref().map_or_else(Vec::new, |c| {
        plan(c).into_iter().map(|(api, b)| (api, wrap(b))).collect()
    })
}
