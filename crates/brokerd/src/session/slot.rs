//! The session slot of one (broker, account, api): the current session, its
//! state, single-flight login and generation fencing. See DESIGN.md "the
//! heart"; the login task lives in `login.rs`, the schedule in `driver.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::error::{ErrorCode, RequestError};
use super::events::EventBus;
use super::live::Live;
use super::machine::{Answer, Input, Invalidation, Machine, Need, Phase};
use crate::brokers::{self, Connector, SessionKey};
use crate::config::SessionPolicy;
use crate::store::Store;
use brokerd_core::time::SharedClock;

/// What the slot is doing, as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No usable session and nothing in progress.
    Empty,
    /// A usable session.
    Active,
    /// A login is in flight.
    Refreshing,
    /// Waiting for a person (interactive brokers).
    AuthRequired,
    /// A transient failure; the next attempt time is known.
    Backoff,
    /// Credentials rejected; an operator must act.
    LockedOut,
    /// Sessions keep dying right after login.
    Conflict,
    /// The store cannot take a session: no login until it can (a
    /// still-valid session is served meanwhile).
    StoreUnavailable,
}

impl State {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Active => "active",
            Self::Refreshing => "refreshing",
            Self::AuthRequired => "auth_required",
            Self::Backoff => "backoff",
            Self::LockedOut => "locked_out",
            Self::Conflict => "conflict",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

/// Counters for `metrics`; atomics because requests bump them concurrently.
#[derive(Debug, Default)]
pub struct SlotCounters {
    /// Successful logins.
    pub logins_ok: AtomicU64,
    /// Failed logins.
    pub logins_failed: AtomicU64,
    /// `invalidate` of the current generation.
    pub invalidations_current: AtomicU64,
    /// `invalidate` of an older generation (answered without a login).
    pub invalidations_stale: AtomicU64,
    /// `token` requests.
    pub token_requests: AtomicU64,
}

/// Who may use a slot: uid and gid allow-lists (empty = nobody beyond root
/// and the daemon's own user).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Allowed peer uids.
    pub uids: Vec<u32>,
    /// Allowed peer gids (primary or supplementary).
    pub gids: Vec<u32>,
}

/// What every slot of one daemon shares.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The encrypted store.
    pub store: Arc<Store>,
    /// Where events go to subscribers.
    pub events: EventBus,
    /// Where login tasks run (a shutdown lets them finish).
    pub tasks: TaskTracker,
    /// The daemon's one clock.
    pub clock: SharedClock,
    /// The limiters of the broker hosts (logins and validations queue there).
    pub pacer: Arc<super::pacing::Pacer>,
    /// Cancelled when the daemon stops: a login still waiting for its turn
    /// is given up rather than holding the stop for its grace.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Several daemons share the store (`[daemon.ha]`): who leads.
    pub ha: Option<Arc<crate::ha::Link>>,
}

/// Settings replaced as a whole on reload.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub connector: Connector,
    pub policy: SessionPolicy,
}

/// One session slot. Shared as `Arc<Slot>`.
#[derive(Debug)]
pub struct Slot {
    pub(super) key: SessionKey,
    // RwLock<Arc>: read on every request, replaced only by a reload.
    pub(super) access: parking_lot::RwLock<Arc<Access>>,
    /// Stops this slot's loop when a reload removes the account.
    pub(super) retired: tokio_util::sync::CancellationToken,
    // Plain data read at the start of each login; never held across I/O.
    pub(super) settings: Mutex<Settings>,
    pub(super) store: Arc<Store>,
    pub(super) events: EventBus,
    // parking_lot: tiny critical sections, never held across `.await`. The
    // pure state machine: every decision is its, the slot only runs effects.
    pub(super) state: Mutex<Machine<Arc<Live>>>,
    // watch: every state change bumps it; waiters and the driver wake on it,
    // and a burst of changes coalesces into one wake.
    pub(super) changed: watch::Sender<u64>,
    // Login tasks run here so a shutdown can let an in-flight login finish
    // and persist instead of dropping it halfway.
    pub(super) tasks: TaskTracker,
    pub(super) counters: SlotCounters,
    /// When the driver loop last went round (ms on the daemon's monotonic
    /// clock; 0 = not started). Atomic: written by the loop, read by the watchdog.
    pub(super) heartbeat: AtomicU64,
    /// Interactive brokers: the `state` carried through the browser login
    /// (random; retired by the login it completes).
    pub(super) nonce: Mutex<Option<super::interactive::Nonce>>,
    /// Breeze: one recheck of an ambiguous report at a time (held across
    /// the broker calls, hence tokio's mutex), with the last verdict.
    pub(super) recheck: tokio::sync::Mutex<super::interactive::RecheckVerdict>,
    /// The daemon's one clock: every decision's `now`, and the due times
    /// the driver sleeps until (a test's manual clock wakes it when moved).
    pub(super) clock: SharedClock,
    /// The broker hosts' limiters every login and validation waits for.
    pub(super) pacer: Arc<super::pacing::Pacer>,
    /// Where this slot's login waits in its host's queue, while it does.
    pub(super) queued: Mutex<Option<super::pacing::Spot>>,
    /// The daemon is stopping (see [`Shared::stopping`]).
    pub(super) stopping: tokio_util::sync::CancellationToken,
    /// Several daemons share the store: leadership and asks (docs/ha.md).
    pub(super) ha: Option<Arc<crate::ha::Link>>,
}

impl Slot {
    /// A new, empty slot, sharing the daemon's store, event bus, login
    /// tasks and clock (`with`).
    pub fn new(
        key: SessionKey,
        access: Access,
        connector: Connector,
        policy: SessionPolicy,
        with: Shared,
    ) -> Arc<Self> {
        let Shared {
            store,
            events,
            tasks,
            clock,
            pacer,
            stopping,
            ha,
        } = with;
        let mut machine = Machine::new(key.clone(), policy.clone());
        if ha.is_some() {
            // Until the lock loop proves otherwise, another daemon may
            // lead: nothing here logs in before it has the lock.
            let _ = machine.handle(
                clock.now(),
                Input::Role {
                    role: super::machine::Role::Follows,
                    address_bound: false,
                },
            );
        }
        Arc::new(Self {
            key,
            access: parking_lot::RwLock::new(Arc::new(access)),
            retired: tokio_util::sync::CancellationToken::new(),
            settings: Mutex::new(Settings { connector, policy }),
            store,
            events,
            state: Mutex::new(machine),
            changed: watch::channel(0).0,
            tasks,
            counters: SlotCounters::default(),
            heartbeat: AtomicU64::new(0),
            nonce: Mutex::new(None),
            recheck: tokio::sync::Mutex::new(None),
            clock,
            pacer,
            queued: Mutex::new(None),
            stopping,
            ha,
        })
    }

    /// Which session this slot holds.
    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    /// Who may use it.
    pub fn access(&self) -> Arc<Access> {
        Arc::clone(&self.access.read())
    }

    /// Applies a reloaded configuration. The session and its generation are
    /// kept; changed credentials or hosts clear `locked_out` and `conflict`,
    /// since the operator has acted (other changes never do), unless they
    /// are the very credentials the broker rejected (see
    /// [`Slot::apply_changed_credentials`]). Returns whether anything changed.
    pub fn reconfigure(&self, connector: Connector, policy: SessionPolicy, access: Access) -> bool {
        let access_changed = **self.access.read() != access;
        if access_changed {
            *self.access.write() = Arc::new(access);
        }
        let (credentials, policy) = {
            let mut settings = self.settings.lock();
            let connector = connector.keeping_state_of(&settings.connector);
            let changed = !settings.connector.same_settings(&connector);
            let credentials = settings.connector.credentials_changed(&connector);
            let policy_changed = settings.policy != policy;
            settings.connector = connector;
            settings.policy = policy;
            if !(changed || policy_changed || access_changed) {
                return false;
            }
            let fingerprint = settings.connector.credentials_fingerprint();
            (credentials.then_some(fingerprint), settings.policy.clone())
        };
        // A reload answers nothing and asks for nothing to be run.
        let _ = self.feed(Input::Reconfigure {
            policy,
            credentials,
        });
        self.notify();
        true
    }

    /// Whether the broker rejected the credentials and an operator must act.
    pub fn locked_out(&self) -> bool {
        self.state.lock().phase() == Phase::LockedOut
    }

    /// Stops the slot's loop (its account left the configuration).
    pub fn retire(&self) {
        self.retired.cancel();
    }

    /// The request counters.
    pub fn counters(&self) -> &SlotCounters {
        &self.counters
    }

    /// The session policy in force.
    pub fn policy(&self) -> SessionPolicy {
        self.settings.lock().policy.clone()
    }

    /// The policy's default `min_valid`.
    pub fn default_min_valid(&self) -> Duration {
        self.settings.lock().policy.min_valid
    }

    /// The time now, as every decision of this slot sees it.
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Wakes everything waiting on this slot.
    pub(super) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A session valid for at least `min_valid`, logging in first if needed
    /// and waiting up to `wait` for that login.
    pub async fn token(
        self: &Arc<Self>,
        min_valid: Duration,
        wait: Duration,
    ) -> Result<Arc<Live>, RequestError> {
        self.counters.token_requests.fetch_add(1, Ordering::Relaxed);
        let need = Need {
            min_valid,
            newer_than: 0,
        };
        // Fast path: a usable session needs one short lock and no waiting.
        if let Some(live) = self.state.lock().usable(self.now(), need) {
            return Ok(live);
        }
        self.wait_for(need, wait).await
    }

    /// "The broker rejected `generation`." Stale reports are answered with
    /// the current session at once; a report of the current generation marks
    /// it dead and starts exactly one login however many clients report it.
    pub async fn invalidate(
        self: &Arc<Self>,
        generation: u64,
        report: Report<'_>,
        min_valid: Duration,
        wait: Duration,
    ) -> Result<Arc<Live>, RequestError> {
        // What the broker said decides first: IP rules and outages are not
        // dead sessions, and a new login would not help.
        let reason = report.reason.unwrap_or("client reported a rejection");
        let class = self
            .settings
            .lock()
            .connector
            .classify_report(report.http_status, reason);
        match class {
            brokers::Report::DeadSession(_) => {}
            brokers::Report::Recheck(message) => {
                if let Some(answer) = self.recheck(generation, &message, min_valid, wait).await {
                    return answer;
                }
            }
            brokers::Report::IpNotAllowed(message) => {
                return Err(self.ip_refused(generation, &message));
            }
            brokers::Report::SessionIpMismatch(message) => {
                // A session restored from the store may have been created
                // from another address (before a restart, on another host):
                // one fresh login from here can fix that. A session this
                // process created cannot be fixed by logging in again.
                if !self.state.lock().ip_mismatch_fixable(generation) {
                    return Err(self.ip_refused(generation, &message));
                }
                tracing::warn!(broker = %self.key.broker, account = %self.key.account, generation, error = %message,
                               "the restored session is bound to another IP; one fresh login from this host");
            }
            brokers::Report::Transient(message) => {
                tracing::info!(broker = %self.key.broker, account = %self.key.account, generation, error = %message,
                               "reported answer is a temporary broker failure, not a dead session");
                return self.token(min_valid, wait).await;
            }
        }
        let ends_previous = self.settings.lock().connector.new_login_ends_previous();
        let effects = self.feed(Input::Report {
            generation,
            ends_previous,
        });
        let outcome = match effects.answer {
            Answer::Invalidated(outcome) => outcome,
            Answer::Fail(err) => return Err(err),
            other => unreachable!("a report is answered with its outcome, not {other:?}"),
        };
        self.notify();
        self.apply(effects.list, None).await;
        self.record_invalidation(outcome, generation, Some(reason))
            .await;
        self.wait_for(
            Need {
                min_valid,
                newer_than: 0,
            },
            wait,
        )
        .await
    }

    /// Operator-forced fresh login; clears `locked_out`, `conflict` and
    /// `backoff` first. It bypasses the login budget but is counted in it.
    /// Credentials the broker rejected are never sent again: when they are
    /// unchanged (by fingerprint) the login is refused without a broker call.
    pub async fn force_login(self: &Arc<Self>, wait: Duration) -> Result<Arc<Live>, RequestError> {
        let fingerprint = self.settings.lock().connector.credentials_fingerprint();
        let effects = self.feed(Input::OperatorLogin { fingerprint });
        let newer_than = match effects.answer {
            Answer::Generation(generation) => generation,
            Answer::Fail(err) => return Err(err),
            other => {
                unreachable!("an operator's login is answered with a generation, not {other:?}")
            }
        };
        self.notify();
        self.apply(effects.list, None).await;
        self.wait_for(
            Need {
                min_valid: Duration::ZERO,
                newer_than,
            },
            wait,
        )
        .await
    }

    /// Waits until `need` can be served, fails, or `wait` runs out.
    pub(super) async fn wait_for(
        self: &Arc<Self>,
        need: Need,
        wait: Duration,
    ) -> Result<Arc<Live>, RequestError> {
        // The caller's `wait` is its patience on the socket, an I/O deadline
        // in real time (tokio's); what the session needs is decided on the
        // daemon's clock inside the machine.
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changed.subscribe();
        let mut asked = false;
        loop {
            // Mark what we have seen before looking, so no change is missed.
            changes.borrow_and_update();
            let was_asked = asked;
            let effects = self.feed(Input::Token { need, asked });
            match effects.answer {
                Answer::Serve(live) => return Ok(live),
                Answer::Fail(err) => {
                    self.apply(effects.list, None).await;
                    return Err(err);
                }
                Answer::Wait { asked: now_asked } => asked = now_asked,
                other => unreachable!(
                    "a token request is answered to serve, fail or wait, not {other:?}"
                ),
            }
            if asked && !was_asked {
                // Once, when this request started a login (not every pass:
                // our own notification would wake us straight away).
                self.notify();
            }
            self.apply(effects.list, None).await;
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(RequestError::new(
                        ErrorCode::Unavailable,
                        "the daemon is shutting down",
                    ));
                }
                Err(_) if self.state.lock().phase() == Phase::AuthRequired => {
                    return Err(self.auth_required_error());
                }
                Err(_) => return Err(self.still_logging_in(wait)),
            }
        }
    }
}

/// A client's report that the broker rejected a session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report<'a> {
    /// The HTTP status the client saw, when it says.
    pub http_status: Option<u16>,
    /// The broker's answer (JSON body or message), when it says.
    pub reason: Option<&'a str>,
}

impl Slot {
    /// The answer to a report of an IP rule: no login can fix it.
    fn ip_refused(&self, generation: u64, message: &str) -> RequestError {
        tracing::warn!(broker = %self.key.broker, account = %self.key.account, generation, error = %message,
                       "broker refused the client's IP; not logging in again");
        RequestError::new(
            ErrorCode::IpNotAllowed,
            format!(
                "{message}: the broker refuses this IP (orders only from the account's whitelisted static IPs, \
                 and a session only from the IP it was created on); a new login cannot fix this"
            ),
        )
    }
}

/// What an `invalidate` did, for the audit trail and metrics.
pub(super) type Outcome = Invalidation<Arc<Live>>;
