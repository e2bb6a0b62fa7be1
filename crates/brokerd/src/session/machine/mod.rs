//! The session state machine of one slot, pure in the manner of
//! `quinn-proto`: no lock, no task, no store, no HTTP and no clock of its
//! own. The slot (the IO shell) hands it `now` and an [`Input`]; it answers
//! with the new state and the [`Effect`]s to run (start a login, publish,
//! audit, persist a rejection, announce, look again at a time). The phase
//! is assigned here and nowhere else, so every transition is testable in
//! microseconds (`tests.rs`), moving time instead of sleeping.
//!
//! One concept per file: `phase.rs` (the phases), `io.rs` (inputs, effects,
//! answers), `requests.rs` (token, report, operator login, submission,
//! logout), `login.rs` (starting a login and its outcome), `conflict.rs`
//! (early deaths and the login budget's verdict), `store.rs` (the store
//! gate's outcomes), `schedule.rs` (the timer: refresh, retries, probes,
//! reminders), `restore.rs` (startup and reload), `budget.rs` and
//! `backoff.rs` (pure bookkeeping and maths).

pub mod backoff;
pub mod budget;
mod conflict;
mod io;
mod login;
mod phase;
mod requests;
mod restore;
pub mod role;
#[cfg(test)]
mod role_tests;
mod schedule;
mod store;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use io::{Answer, Effect, Effects, GateBy, Input, Invalidation, Need, Succeeded, Trigger};
pub use phase::Phase;
pub use role::Role;
pub(crate) use store::SPENT;

use crate::brokers::{BrokerId, SessionKey};
use crate::config::SessionPolicy;
use crate::session::slot::State;

/// What the machine needs to know of a session; the slot's is
/// `Arc<Live>`, the tests' a plain value.
pub trait Session: Clone {
    /// Its generation.
    fn generation(&self) -> u64;
    /// When the broker issued it.
    fn obtained_at(&self) -> DateTime<Utc>;
    /// When it ends.
    fn expires_at(&self) -> DateTime<Utc>;
}

/// The current session with what the machine decided about it.
#[derive(Debug)]
pub(crate) struct Current<S> {
    pub session: S,
    /// When the schedule renews it (automatic brokers), or its end
    /// (interactive ones: only a person renews them).
    pub refresh_at: DateTime<Utc>,
    /// Restored from the store at startup rather than created by this
    /// process (it may be bound to another IP).
    pub restored: bool,
}

impl<S: Session> Current<S> {
    fn generation(&self) -> u64 {
        self.session.generation()
    }

    fn expires_at(&self) -> DateTime<Utc> {
        self.session.expires_at()
    }

    fn remaining(&self, now: DateTime<Utc>) -> Duration {
        (self.expires_at() - now).to_std().unwrap_or(Duration::ZERO)
    }

    fn lifetime(&self) -> Duration {
        (self.expires_at() - self.session.obtained_at())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    fn age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.session.obtained_at())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }
}

/// The decision state of one slot. Only ever behind the slot's lock.
#[derive(Debug)]
pub struct Machine<S> {
    key: SessionKey,
    /// Zerodha and Breeze: a person logs in, never the machine.
    interactive: bool,
    policy: SessionPolicy,
    current: Option<Current<S>>,
    /// The broker rejected `current`: never hand it out again.
    dead: bool,
    /// Highest generation ever issued (survives logout and restarts).
    generation: u64,
    phase: Phase,
    /// Whether the daemon should keep a session ready without being asked.
    want_session: bool,
    /// Bumped by every logout, so a login that was already in flight when
    /// the operator logged out does not bring the session back.
    logouts: u64,
    last_login_at: Option<DateTime<Utc>>,
    last_error: Option<(&'static str, String)>,
    /// Consecutive transient login failures (drives the backoff).
    failures: u32,
    /// Consecutive sessions rejected within the conflict window.
    early_deaths: u32,
    /// Interactive brokers: when the next daily reminder is due while
    /// waiting for a person.
    next_reminder: Option<DateTime<Utc>>,
    /// Interactive brokers: the generation whose `expiring` was announced.
    expiring_sent: u64,
    /// Interactive brokers: this wait for a person has been announced
    /// (reset when a session is published or on logout), so failed
    /// submissions do not repeat the alert.
    auth_announced: bool,
    /// The login budget (invariant 8): every login start is counted here.
    budget: budget::LoginBudget,
    /// The conflict threshold was reached while a login ran: `conflict`
    /// starts when that login ends.
    conflict_pending: bool,
    /// The newest generation whose death was counted (each counts once).
    last_counted_death: u64,
    /// The generation the last login replaced, with its login time: a
    /// death reported just after a refresh still counts.
    previous: Option<(u64, DateTime<Utc>)>,
    /// Every set of credentials (as a fingerprint, never the values) the
    /// broker rejected since the last successful login, and when: neither
    /// `login` nor a reload sends any of them again. Kept (here and in the
    /// store) until a login succeeds.
    rejected: Vec<(String, DateTime<Utc>)>,
    /// The credentials fingerprint of the login in flight (what a
    /// rejection of it refers to).
    attempt_fingerprint: String,
    /// Who logs in (several daemons on one store); `Leads` when alone.
    role: Role,
    /// A follower asked the leader and waits for its session until then.
    asked_leader: Option<DateTime<Utc>>,
}

/// Collects the effects of one input.
#[derive(Debug, Default)]
struct Out(Vec<Effect>);

impl Out {
    fn push(&mut self, effect: Effect) {
        self.0.push(effect);
    }
}

impl<S: Session> Machine<S> {
    /// A new, empty machine for `key`.
    pub fn new(key: SessionKey, policy: SessionPolicy) -> Self {
        let interactive = matches!(key.broker, BrokerId::Zerodha | BrokerId::Breeze);
        let budget =
            budget::LoginBudget::new(policy.min_login_interval, policy.max_logins_per_hour);
        Self {
            key,
            interactive,
            want_session: policy.login_at_start,
            policy,
            current: None,
            dead: false,
            generation: 0,
            phase: Phase::Idle,
            logouts: 0,
            last_login_at: None,
            last_error: None,
            failures: 0,
            early_deaths: 0,
            next_reminder: None,
            expiring_sent: 0,
            auth_announced: false,
            budget,
            conflict_pending: false,
            last_counted_death: 0,
            previous: None,
            rejected: Vec::new(),
            attempt_fingerprint: String::new(),
            role: Role::Leads,
            asked_leader: None,
        }
    }

    /// Feeds one input that happened at `now`: the state moves, and the
    /// effects to run and the answer come back.
    pub fn handle(&mut self, now: DateTime<Utc>, input: Input<S>) -> Effects<S> {
        let mut out = Out::default();
        let answer = match input {
            Input::Token { need, asked } => self.token(now, need, asked, &mut out),
            Input::Report {
                generation,
                ends_previous,
            } => self.report(now, generation, ends_previous, &mut out),
            Input::OperatorLogin { fingerprint } => {
                self.operator_login(now, &fingerprint, &mut out)
            }
            Input::Submit => self.submit(now, &mut out),
            Input::Tick { reminder } => self.tick(now, reminder.as_ref(), &mut out),
            Input::LoginBegins { fingerprint } => {
                // What this login sends, for a lock-out to remember: a
                // reload during the login must not make the fixed
                // credentials the rejected ones.
                self.attempt_fingerprint = fingerprint;
                Answer::Generation(self.generation + 1)
            }
            Input::LoginNotStarted => {
                // No broker call happened: the budget gets its login back.
                self.budget.refund();
                Answer::None
            }
            Input::StoredGeneration(stored) => {
                self.generation = self.generation.max(stored);
                Answer::None
            }
            Input::LoginSucceeded(succeeded) => self.login_succeeded(now, succeeded, &mut out),
            Input::LoginFailed {
                error,
                generation,
                started_at,
                jitter,
            } => self.login_failed(now, error, generation, started_at, jitter, &mut out),
            Input::StoreRefused { by, message } => self.store_refused(now, by, message, &mut out),
            Input::StoreAccepted { by } => self.store_accepted(now, by, &mut out),
            Input::Logout => self.logout(),
            Input::Reconfigure {
                policy,
                credentials,
            } => self.reconfigure(policy, credentials.as_deref()),
            Input::StoredRow { generation } => {
                self.generation = generation;
                Answer::None
            }
            Input::StoredUnreadable { message } => {
                self.last_error = Some(("store", message));
                Answer::None
            }
            Input::Restored { session, jitter } => self.restored(session, jitter),
            Input::StoredRejections {
                rejections,
                fingerprint,
            } => self.stored_rejections(rejections, &fingerprint),
            Input::RecentLogins(times) => {
                // Merged, not appended: a takeover reads the shared audit
                // trail again, including starts this daemon already knows.
                self.budget.merge(times);
                Answer::None
            }
            Input::Adopt {
                session,
                elsewhere,
                jitter,
            } => self.adopt(session, elsewhere, jitter, &mut out),
            Input::Gone { generation } => self.gone(generation, &mut out),
            Input::NotLeader => self.not_leader(),
            Input::Role {
                role,
                address_bound,
            } => self.set_role(now, role, address_bound, &mut out),
            Input::SecretRefused {
                generation,
                error,
                fingerprint,
            } => self.secret_refused(now, generation, error, fingerprint, &mut out),
        };
        Effects {
            list: out.0,
            answer,
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The highest generation issued.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The policy in force.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The current session unless the broker rejected it.
    pub fn live(&self) -> Option<&S> {
        self.current
            .as_ref()
            .filter(|_| !self.dead)
            .map(|c| &c.session)
    }

    /// The current session, rejected or not.
    pub fn current(&self) -> Option<&S> {
        self.current.as_ref().map(|c| &c.session)
    }

    /// The current session's refresh time.
    pub fn refresh_at(&self) -> Option<DateTime<Utc>> {
        self.current.as_ref().map(|c| c.refresh_at)
    }

    /// The last error: a short code and one line.
    pub fn last_error(&self) -> Option<&(&'static str, String)> {
        self.last_error.as_ref()
    }

    /// When the last successful login finished.
    pub fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.last_login_at
    }

    /// Logins counted within the hour before `now`.
    pub fn logins_last_hour(&mut self, now: DateTime<Utc>) -> usize {
        self.budget.used(now)
    }

    /// Whether the machine keeps a session ready without being asked.
    pub fn wants_session(&self) -> bool {
        self.want_session
    }

    /// Whether the broker is interactive (a person logs in).
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// The session served to `need` at `now`, if the current one does.
    pub fn usable(&self, now: DateTime<Utc>, need: Need) -> Option<S> {
        let current = self.current.as_ref()?;
        (!self.dead
            && current.generation() > need.newer_than
            && current.remaining(now) >= need.min_valid)
            .then(|| current.session.clone())
    }

    /// The session still valid at `now` (not rejected, not expired).
    pub fn valid(&self, now: DateTime<Utc>) -> Option<&S> {
        self.current
            .as_ref()
            .filter(|c| !self.dead && !c.remaining(now).is_zero())
            .map(|c| &c.session)
    }

    /// What `status` shows: the wire state and the seconds until the next
    /// automatic attempt.
    pub fn state(&self, now: DateTime<Utc>) -> (State, Option<u64>) {
        let until = |t: DateTime<Utc>| (t - now).to_std().unwrap_or_default().as_secs().max(1);
        match self.phase {
            Phase::LoggingIn => (State::Refreshing, None),
            Phase::LockedOut => (State::LockedOut, None),
            Phase::Conflict { until: t } => (State::Conflict, Some(until(t))),
            Phase::Backoff { until: t } => (State::Backoff, Some(until(t))),
            Phase::AuthRequired => (State::AuthRequired, None),
            Phase::StoreUnavailable { until: t, .. } => (State::StoreUnavailable, Some(until(t))),
            Phase::Idle if self.valid(now).is_some() => (State::Active, None),
            Phase::Idle => (State::Empty, None),
        }
    }

    /// Whether a `1037` on `generation` goes on to the fenced path: the
    /// current session restored from the store (one login, however many
    /// report it), or an older generation (answered with the current one).
    /// A session this process created is refused at once, and so is, on
    /// a follower, one another host created (a login by the leader would
    /// be bound to the leader's address, not this host's).
    pub fn ip_mismatch_fixable(&self, generation: u64) -> bool {
        self.current.as_ref().is_some_and(|c| {
            (c.generation() == generation && c.restored && self.role == Role::Leads)
                || c.generation() > generation
        })
    }

    /// The generation and expiry an announcement concerns.
    pub fn announced(&self) -> (u64, Option<DateTime<Utc>>) {
        let live = self.current.as_ref().filter(|_| !self.dead);
        (
            live.map_or(self.generation, Current::generation),
            live.map(Current::expires_at),
        )
    }

    /// `now + d`, saturating.
    fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `until - now`, zero when past.
    fn left(now: DateTime<Utc>, until: DateTime<Utc>) -> Duration {
        (until - now).to_std().unwrap_or(Duration::ZERO)
    }
}
