//! The session slot of one (broker, account, api): the current session, its
//! state, single-flight login and generation fencing. See DESIGN.md "the
//! heart"; the login task lives in `login.rs`, the schedule in `driver.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::error::{ErrorCode, RequestError};
use super::events::{EventBus, EventKind};
use super::live::Live;
use crate::brokers::{self, Connector, SessionKey};
use crate::config::SessionPolicy;
use crate::store::Store;

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

/// What the slot's login machinery is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    LoggingIn,
    Backoff {
        until: Instant,
    },
    LockedOut,
    Conflict {
        until: Instant,
    },
    /// Interactive brokers: no usable session, waiting for a person's
    /// browser login to be submitted.
    AuthRequired,
    /// The store refused the write that proves a session could be kept:
    /// no login; the store is probed again at `until` (`probes` failed so
    /// far, for the pace). See `store_gate.rs`.
    StoreUnavailable {
        until: Instant,
        probes: u32,
    },
}

/// The slot's mutable data. Only ever behind `Slot::state`.
#[derive(Debug)]
pub(super) struct SlotState {
    pub current: Option<Arc<Live>>,
    /// The broker rejected `current`: never hand it out again.
    pub dead: bool,
    /// Highest generation ever issued (survives logout and restarts).
    pub generation: u64,
    pub phase: Phase,
    /// Whether the daemon should keep a session ready without being asked.
    pub want_session: bool,
    /// Bumped by every logout, so a login that was already in flight when
    /// the operator logged out does not bring the session back.
    pub logouts: u64,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_error: Option<(&'static str, String)>,
    /// Consecutive transient login failures (drives the backoff).
    pub failures: u32,
    /// Consecutive sessions rejected within the conflict window.
    pub early_deaths: u32,
    /// Events to announce, drained by the driver loop outside the lock
    /// (announcing needs the settings for the login URL).
    pub announce: Vec<EventKind>,
    /// Interactive brokers: when the next daily reminder is due while
    /// waiting for a person.
    pub next_reminder: Option<DateTime<Utc>>,
    /// Interactive brokers: the generation whose `expiring` was announced.
    pub expiring_sent: u64,
    /// Interactive brokers: this wait for a person has been announced
    /// (reset when a session is published or on logout), so failed
    /// submissions do not repeat the alert.
    pub auth_announced: bool,
    /// The login budget (invariant 9): every login start is counted here.
    pub budget: super::budget::LoginBudget,
    /// The conflict threshold was reached while a login ran: `conflict`
    /// starts when that login ends.
    pub conflict_pending: bool,
    /// The newest generation whose death was counted (each counts once).
    pub last_counted_death: u64,
    /// The generation the last login replaced, with its login time: a
    /// death reported just after a refresh still counts.
    pub previous: Option<(u64, DateTime<Utc>)>,
    /// Every set of credentials (as a fingerprint, never the values) the
    /// broker rejected since the last successful login, and when: neither
    /// `login` nor a reload sends any of them again. Compared by
    /// fingerprint, so changed credentials pass; kept (here and in the
    /// store) until a login succeeds.
    pub rejected: Vec<(String, DateTime<Utc>)>,
    /// The credentials fingerprint of the login in flight (what a
    /// rejection of it refers to).
    pub attempt_fingerprint: String,
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
    // parking_lot: tiny critical sections, never held across `.await`.
    pub(super) state: Mutex<SlotState>,
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
}

/// What a request needs from the session.
#[derive(Clone, Copy, Debug)]
pub(super) struct Need {
    pub min_valid: Duration,
    /// Only a generation newer than this will do (forced logins).
    pub newer_than: u64,
}

enum Decision {
    Serve(Arc<Live>),
    Fail(RequestError),
    Wait,
}

impl Slot {
    /// A new, empty slot.
    pub fn new(
        key: SessionKey,
        access: Access,
        connector: Connector,
        policy: SessionPolicy,
        store: Arc<Store>,
        events: EventBus,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        let want_session = policy.login_at_start;
        let budget =
            super::budget::LoginBudget::new(policy.min_login_interval, policy.max_logins_per_hour);
        Arc::new(Self {
            key,
            access: parking_lot::RwLock::new(Arc::new(access)),
            retired: tokio_util::sync::CancellationToken::new(),
            settings: Mutex::new(Settings { connector, policy }),
            store,
            events,
            state: Mutex::new(SlotState {
                current: None,
                dead: false,
                generation: 0,
                phase: Phase::Idle,
                want_session,
                logouts: 0,
                last_login_at: None,
                last_error: None,
                failures: 0,
                early_deaths: 0,
                announce: Vec::new(),
                next_reminder: None,
                expiring_sent: 0,
                auth_announced: false,
                budget,
                conflict_pending: false,
                last_counted_death: 0,
                previous: None,
                rejected: Vec::new(),
                attempt_fingerprint: String::new(),
            }),
            changed: watch::channel(0).0,
            tasks,
            counters: SlotCounters::default(),
            heartbeat: AtomicU64::new(0),
            nonce: Mutex::new(None),
            recheck: tokio::sync::Mutex::new(None),
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
        let limits = (policy.min_login_interval, policy.max_logins_per_hour);
        let (credentials_changed, fingerprint) = {
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
            (credentials, settings.connector.credentials_fingerprint())
        };
        let mut st = self.state.lock();
        st.budget.set_limits(limits.0, limits.1);
        if credentials_changed {
            self.apply_changed_credentials(&mut st, &fingerprint);
        }
        drop(st);
        self.notify();
        true
    }

    /// Whether the broker rejected the credentials and an operator must act.
    pub fn locked_out(&self) -> bool {
        self.state.lock().phase == Phase::LockedOut
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
        if let Some(live) = usable(&self.state.lock(), need, Utc::now()) {
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
                if !self.ip_mismatch_fixable(generation) {
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
        let reason = Some(reason);
        let now = Utc::now();
        let outcome = {
            let (policy, ends_previous) = {
                let settings = self.settings.lock();
                (
                    settings.policy.clone(),
                    settings.connector.new_login_ends_previous(),
                )
            };
            let mut st = self.state.lock();
            if generation > st.generation {
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "generation {generation} was never issued for {}; the newest is {}",
                        self.key, st.generation
                    ),
                ));
            }
            match st.current.clone() {
                Some(live) if live.generation == generation && !st.dead => {
                    st.dead = true;
                    let obtained = live.session.meta.obtained_at;
                    self.count_death(&mut st, Some(generation), obtained, now, &policy);
                    // Only from Idle: a lock-out must not get a second wrong
                    // attempt, a backoff or conflict must not be cut short,
                    // and a running login already brings the next session.
                    if st.phase == Phase::Idle {
                        self.begin_login(&mut st, "token rejected by the broker");
                    }
                    Invalidation::Current(live)
                }
                Some(live) if live.generation > generation => {
                    // The generation a refresh just replaced: its death
                    // still says whether sessions die right after login,
                    // unless our own new login is what ended it.
                    if let Some((previous, obtained)) = st.previous
                        && previous == generation
                        && !ends_previous
                    {
                        self.count_death(&mut st, Some(generation), obtained, now, &policy);
                    }
                    Invalidation::Stale
                }
                _ => Invalidation::AlreadyDead,
            }
        };
        self.notify();
        self.record_invalidation(outcome, generation, reason).await;
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
        let newer_than = {
            let mut st = self.state.lock();
            if let Some(refusal) = self.same_as_rejected(&st, &fingerprint) {
                return Err(refusal);
            }
            if !matches!(st.phase, Phase::LoggingIn) {
                st.phase = Phase::Idle;
            }
            st.failures = 0;
            st.early_deaths = 0;
            st.conflict_pending = false;
            st.want_session = true;
            let generation = st.generation;
            self.begin_login_as(
                &mut st,
                "operator request",
                super::conflict::Trigger::Operator,
            );
            generation
        };
        self.notify();
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
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changed.subscribe();
        let mut asked = false;
        loop {
            // Mark what we have seen before looking, so no change is missed.
            changes.borrow_and_update();
            let was_asked = asked;
            let decision = {
                let mut st = self.state.lock();
                self.decide(&mut st, need, &mut asked)
            };
            match decision {
                Decision::Serve(live) => return Ok(live),
                Decision::Fail(err) => return Err(err),
                Decision::Wait => {}
            }
            if asked && !was_asked {
                // Once, when this request started a login (not every pass:
                // our own notification would wake us straight away).
                self.notify();
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(RequestError::new(
                        ErrorCode::Unavailable,
                        "the daemon is shutting down",
                    ));
                }
                Err(_) if self.state.lock().phase == Phase::AuthRequired => {
                    return Err(self.auth_required_error());
                }
                Err(_) => {
                    return Err(RequestError::new(
                        ErrorCode::Timeout,
                        format!(
                            "no session for {} within {}s; a login is still in progress",
                            self.key,
                            wait.as_secs()
                        ),
                    )
                    .retry_after(Duration::from_secs(1)));
                }
            }
        }
    }

    fn decide(self: &Arc<Self>, st: &mut SlotState, need: Need, asked: &mut bool) -> Decision {
        let now = Utc::now();
        if let Some(live) = usable(st, need, now) {
            return Decision::Serve(live);
        }
        let last = |fallback: &str| {
            st.last_error
                .as_ref()
                .map_or_else(|| fallback.to_string(), |e| e.1.clone())
        };
        match st.phase {
            // Until a submission arrives or the wait runs out (which answers
            // `auth_required` with the login URL).
            Phase::LoggingIn | Phase::AuthRequired => Decision::Wait,
            Phase::LockedOut => Decision::Fail(RequestError::new(
                ErrorCode::LockedOut,
                format!(
                    "{}: {}; not retried automatically; fix it, then run `brokerctl login {} --account {}`",
                    self.key,
                    last("credentials rejected"),
                    self.key.broker,
                    self.key.account
                ),
            )),
            Phase::Conflict { until } => Decision::Fail(
                RequestError::new(
                    ErrorCode::Conflict,
                    last("sessions keep dying right after login"),
                )
                .retry_after(until.saturating_duration_since(Instant::now())),
            ),
            Phase::StoreUnavailable { until, .. } => Decision::Fail(
                RequestError::new(
                    ErrorCode::StoreUnavailable,
                    last("the store cannot take a session"),
                )
                .retry_after(until.saturating_duration_since(Instant::now())),
            ),
            Phase::Backoff { until } => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() && !*asked {
                    *asked = true;
                    self.begin_login(st, "retry after backoff");
                    return Decision::Wait;
                }
                // Held back by the login budget: its message says so (and
                // names the account) itself.
                let message = match &st.last_error {
                    Some(("login_budget", m)) => format!("{m}; retrying automatically"),
                    _ => format!(
                        "{}: last login failed ({}); retrying automatically",
                        self.key,
                        last("transient failure")
                    ),
                };
                Decision::Fail(RequestError::new(ErrorCode::Unavailable, message).retry_after(left))
            }
            Phase::Idle => {
                // A live session whose whole lifetime is shorter than the
                // caller wants: another login would get no more (brokers cut
                // sessions at fixed times), so say so instead of logging in
                // again for every such request. Once it expires, a login may.
                if let Some(live) = st
                    .current
                    .as_ref()
                    .filter(|_| !st.dead && need.newer_than == 0)
                    && live.lifetime() < need.min_valid
                    && !live.remaining(now).is_zero()
                {
                    return Decision::Fail(RequestError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "{} issues sessions valid for only {}s, less than the {}s asked for",
                            self.key.broker,
                            live.lifetime().as_secs(),
                            need.min_valid.as_secs()
                        ),
                    ));
                }
                // Interactive brokers: a new browser login would end at the
                // same daily cut-off, so waking a person cannot help.
                if let Some(live) = st
                    .current
                    .as_ref()
                    .filter(|_| !st.dead && need.newer_than == 0)
                    && self.interactive()
                    && !live.remaining(now).is_zero()
                {
                    return Decision::Fail(RequestError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "{}: the session ends at {} ({}s left), less than the {}s asked for; a new browser \
                             login would end at the same daily cut-off, so ask for less",
                            self.key,
                            live.expires_at().to_rfc3339(),
                            live.remaining(now).as_secs(),
                            need.min_valid.as_secs()
                        ),
                    ));
                }
                if *asked {
                    return Decision::Fail(RequestError::new(
                        ErrorCode::LoginFailed,
                        format!(
                            "{}: {}",
                            self.key,
                            last("the login did not produce a usable session")
                        ),
                    ));
                }
                *asked = true;
                st.want_session = true;
                self.begin_login(
                    st,
                    if st.current.is_some() {
                        "session expiring"
                    } else {
                        "no session"
                    },
                );
                Decision::Wait
            }
        }
    }
}

/// The current session if it satisfies `need` at `now`.
fn usable(st: &SlotState, need: Need, now: DateTime<Utc>) -> Option<Arc<Live>> {
    let live = st.current.as_ref()?;
    (!st.dead && live.generation > need.newer_than && live.remaining(now) >= need.min_valid)
        .then(|| live.clone())
}

/// A client's report that the broker rejected a session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report<'a> {
    /// The HTTP status the client saw, when it says.
    pub http_status: Option<u16>,
    /// The broker's answer (JSON body or message), when it says.
    pub reason: Option<&'a str>,
}

/// What an `invalidate` did, for the audit trail and metrics.
pub(super) enum Invalidation {
    Current(Arc<Live>),
    Stale,
    AlreadyDead,
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

    /// Whether a `1037` on `generation` goes on to the fenced path: the
    /// current session restored from the store (one login, however many
    /// report it), or an older generation (answered with the current one).
    /// A session this process created is refused at once.
    fn ip_mismatch_fixable(&self, generation: u64) -> bool {
        let st = self.state.lock();
        st.current.as_ref().is_some_and(|l| {
            (l.generation == generation && l.restored) || l.generation > generation
        })
    }
}
