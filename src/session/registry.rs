//! All slots of the daemon, built from the config, found by (broker,
//! account, api) without allocating on the request path.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{ErrorCode, RequestError};
use super::events::EventBus;
use super::slot::{Access, Slot};
use crate::brokers::{Api, BrokerId, Connector, SessionKey};
use crate::config::{AccountConfig, Config};
use crate::store::Store;

/// The slots. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Registry {
    slots: Vec<Arc<Slot>>,
    events: EventBus,
    tasks: TaskTracker,
}

impl Registry {
    /// Builds one slot per configured (account, api). `simulators` replace
    /// the host `"simulator"` (the bundled simulators' addresses).
    pub fn build(config: &Config, store: Arc<Store>, simulators: &SimulatorRoots) -> Self {
        let events = EventBus::new(1024);
        let tasks = TaskTracker::new();
        let mut slots = Vec::new();
        for account in &config.accounts {
            let access = Access {
                uids: if account.allowed_uids.is_empty() {
                    config.daemon.allowed_uids.clone()
                } else {
                    account.allowed_uids.clone()
                },
                gids: if account.allowed_gids.is_empty() {
                    config.daemon.allowed_gids.clone()
                } else {
                    account.allowed_gids.clone()
                },
            };
            for (api, connector) in connectors(account, config, simulators) {
                let key = SessionKey::new(account.broker, account.name.clone(), api);
                let slot = Slot::new(
                    key,
                    access.clone(),
                    connector,
                    account.policy.clone(),
                    store.clone(),
                    events.clone(),
                    tasks.clone(),
                );
                slots.push(slot);
            }
        }
        Self {
            slots,
            events,
            tasks,
        }
    }

    /// Every slot, in config order.
    pub fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    /// The event bus shared by all slots.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The tracker of in-flight logins (waited on at shutdown).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Finds a slot; `account` may be omitted when the broker has exactly one.
    pub fn find(
        &self,
        broker: &str,
        account: Option<&str>,
        api: Option<&str>,
    ) -> Result<&Arc<Slot>, RequestError> {
        let unknown = |m: String| RequestError::new(ErrorCode::UnknownAccount, m);
        let broker_id = BrokerId::parse(broker).ok_or_else(|| {
            unknown(format!(
                "unknown broker {broker:?}; brokers are kotak_neo, breeze, zerodha, jainam"
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
                let mut names = self
                    .slots
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
        self.slots
            .iter()
            .find(|s| {
                s.key().broker == broker_id && s.key().account == account && s.key().api == api
            })
            .ok_or_else(|| {
                unknown(format!(
                    "no {broker} account {account:?} with api {api} is configured"
                ))
            })
    }

    /// Restores stored sessions for every slot, concurrently.
    pub async fn rehydrate(&self, store: &Store, validate: bool) {
        let loads = self.slots.iter().map(|slot| async move {
            match store.load_session(slot.key()).await {
                Ok(stored) => {
                    slot.startup_check().await;
                    slot.rehydrate(stored, validate).await
                }
                Err(e) => tracing::error!(broker = %slot.key().broker, account = %slot.key().account, error = %e,
                                          "cannot read the stored session"),
            }
        });
        futures::future::join_all(loads).await;
    }

    /// Starts every slot's background loop.
    pub fn spawn_drivers(&self, cancel: &CancellationToken, tracker: &TaskTracker) {
        for slot in &self.slots {
            tracker.spawn(Arc::clone(slot).run(cancel.clone()));
        }
    }
}

/// Where the bundled simulators listen, when the config runs them.
#[derive(Clone, Debug, Default)]
pub struct SimulatorRoots {
    /// The Jainam (XTS) simulator's root URL.
    pub jainam: Option<String>,
    /// The Kotak Neo simulator's URL (login host and base URL).
    pub kotak_neo: Option<String>,
}

/// An address nothing listens on: an account pointing at a simulator that
/// is not running fails its logins clearly instead of reaching a real host.
const NO_SIMULATOR: &str = "http://127.0.0.1:9";

fn simulated(host: &mut String, root: Option<&String>) {
    if host == crate::config::SIMULATOR_ROOT {
        *host = root.map_or(NO_SIMULATOR, String::as_str).to_string();
    }
}

fn connectors(
    account: &AccountConfig,
    config: &Config,
    simulators: &SimulatorRoots,
) -> Vec<(Api, Connector)> {
    let timeout = config.daemon.limits.login_timeout;
    match account.broker {
        BrokerId::Jainam => {
            let Some(jainam) = account.jainam.as_ref() else {
                return Vec::new();
            };
            let mut cfg = jainam.clone();
            simulated(&mut cfg.root, simulators.jainam.as_ref());
            let mut out = Vec::new();
            if cfg.interactive.is_some() {
                out.push((
                    Api::Interactive,
                    Connector::Jainam {
                        cfg: cfg.clone(),
                        api: Api::Interactive,
                        timeout,
                    },
                ));
            }
            if cfg.market.is_some() {
                out.push((
                    Api::Market,
                    Connector::Jainam {
                        cfg,
                        api: Api::Market,
                        timeout,
                    },
                ));
            }
            out
        }
        BrokerId::KotakNeo => {
            let Some(kotak) = account.kotak_neo.as_ref() else {
                return Vec::new();
            };
            let mut cfg = kotak.clone();
            simulated(&mut cfg.login_host, simulators.kotak_neo.as_ref());
            let shared = Arc::new(crate::brokers::kotak_neo::KotakShared::default());
            vec![(
                Api::Interactive,
                Connector::KotakNeo {
                    cfg,
                    shared,
                    timeout,
                },
            )]
        }
        // Other brokers are rejected by config validation in this build.
        _ => Vec::new(),
    }
}
