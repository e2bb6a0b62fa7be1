//! The machine's vocabulary: what the IO shell feeds it ([`Input`]), what it
//! asks the shell to do ([`Effect`]), and what it answers the caller that
//! fed the input ([`Answer`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::phase::Phase;
use crate::brokers::BrokerError;
use crate::config::{Reminder, SessionPolicy};
use crate::session::error::RequestError;
use crate::session::events::EventKind;
use crate::store::postgres::ha::AskKind;
use crate::store::{AuditEvent, Rejection};

/// What a request needs from the session.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    /// The session must stay valid at least this long.
    pub min_valid: Duration,
    /// Only a generation newer than this will do (forced logins).
    pub newer_than: u64,
}

/// Who asked for a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The daemon itself or a client's request: subject to the budget.
    Automatic,
    /// `brokerctl login` or a person's browser submission: counted, never refused.
    Operator,
}

/// Who asks the store gate, which decides what its outcome may do to the
/// phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateBy {
    /// The login task, which owns the `LoggingIn` phase.
    LoginTask,
    /// A submission, before it starts its exchange: the phase belongs to
    /// whatever the slot is doing (left alone if another login runs).
    Submission,
    /// The driver's probe, valid only while the phase is still the one it
    /// set when it started.
    Probe(Phase),
}

/// Everything that can happen to a slot. Each is handed to
/// [`super::Machine::handle`] with the time it happened.
#[derive(Debug)]
pub enum Input<S> {
    /// A `token` request (or a waiter's next look): serve, fail or wait.
    /// `asked`: this waiter already started (or tried to start) a login.
    Token {
        /// What the caller needs.
        need: Need,
        /// Whether this waiter already asked for a login.
        asked: bool,
    },
    /// A client reports that the broker rejected `generation` as a dead
    /// session (already classified by the broker module).
    Report {
        /// The generation the client used.
        generation: u64,
        /// Whether a new login ends the previous session at this broker
        /// (then the death of the replaced generation is our own doing).
        ends_previous: bool,
    },
    /// `brokerctl login`: an operator forces a fresh login.
    OperatorLogin {
        /// Fingerprint of the credentials it would send.
        fingerprint: String,
    },
    /// A person's browser login arrived and its link checked out: start
    /// its exchange (only fed when no login is in flight).
    Submit,
    /// The schedule: whatever is due now. Interactive brokers pass their
    /// reminder settings (read before the state lock).
    Tick {
        /// Interactive brokers' reminder settings.
        reminder: Option<Reminder>,
    },
    /// The login task is about to call the broker with credentials of
    /// `fingerprint`. Answers [`Answer::Generation`] with the next one.
    LoginBegins {
        /// What this login sends, for a lock-out to remember.
        fingerprint: String,
    },
    /// The login task gave up before calling the broker (the store gate
    /// refused): its budget entry is given back.
    LoginNotStarted,
    /// The store holds a newer generation than the slot knew.
    StoredGeneration(u64),
    /// A login produced a session and the store saved it.
    LoginSucceeded(Succeeded<S>),
    /// A login (or its save) failed.
    LoginFailed {
        /// What went wrong.
        error: BrokerError,
        /// The generation the login would have had.
        generation: u64,
        /// When the login started (a dead-session answer is an early death).
        started_at: DateTime<Utc>,
        /// In [0, 1): the backoff's jitter.
        jitter: f64,
    },
    /// The store refused the proof that a session can be kept (or, with
    /// `spent`, the session of a login the broker accepted).
    StoreRefused {
        /// Who asked.
        by: GateBy,
        /// The operator's line: what failed, where, and the fix.
        message: String,
    },
    /// The store proved a session can be kept.
    StoreAccepted {
        /// Who asked.
        by: GateBy,
    },
    /// `logout`: end and forget the session.
    Logout,
    /// A reload replaced the policy; `credentials` is the new fingerprint
    /// when what the broker checks at login changed.
    Reconfigure {
        /// The new policy.
        policy: SessionPolicy,
        /// The new credentials' fingerprint, when they changed.
        credentials: Option<String>,
    },
    /// At startup: the generation of the stored row.
    StoredRow {
        /// Its generation.
        generation: u64,
    },
    /// At startup: the stored row could not be read.
    StoredUnreadable {
        /// Why.
        message: String,
    },
    /// At startup: the stored session is served without a login.
    Restored {
        /// The session.
        session: S,
        /// In [0, 1): the refresh's random advance.
        jitter: f64,
    },
    /// At startup: the rejected credentials the store remembers, and the
    /// fingerprint of the configured ones.
    StoredRejections {
        /// Remembered rejections.
        rejections: Vec<Rejection>,
        /// The configured credentials.
        fingerprint: String,
    },
    /// At startup: when the logins of the last hour started.
    RecentLogins(Vec<DateTime<Utc>>),
    /// Several daemons on one store: the leader published `session` (or
    /// the store holds it when this daemon takes the lead).
    Adopt {
        /// The session.
        session: S,
        /// Saved by another host (it may be bound to that host's address).
        elsewhere: bool,
        /// In [0, 1): the refresh's random advance.
        jitter: f64,
    },
    /// Several daemons on one store: the leader logged out the session of
    /// `generation` (a newer one already served here is kept).
    Gone {
        /// The generation the store's row kept.
        generation: u64,
    },
    /// Several daemons on one store: the login task found, right before
    /// calling the broker, that this daemon no longer leads; no broker
    /// call happened (the budget gets its login back).
    NotLeader,
    /// Several daemons on one store: this daemon's part changed.
    Role {
        /// The new role.
        role: super::Role,
        /// Whether this broker's sessions are bound to the address that
        /// created them (a new leader then logs in again).
        address_bound: bool,
    },
    /// Breeze: a recheck found the app's credentials refused.
    SecretRefused {
        /// The generation the report was about.
        generation: u64,
        /// The broker's verdict (rejected, code rejected or config).
        error: BrokerError,
        /// The configured credentials' fingerprint.
        fingerprint: String,
    },
}

/// A login's session, saved by the store: [`Input::LoginSucceeded`].
#[derive(Debug)]
pub struct Succeeded<S> {
    /// The saved generation.
    pub generation: u64,
    /// The new session.
    pub session: S,
    /// The logout count when the login began.
    pub logouts: u64,
    /// In [0, 1): the refresh's random advance.
    pub jitter: f64,
    /// The `login_ok` audit row's detail (token fingerprint, expiry).
    pub audit: String,
}

/// What the shell must do after a `handle`, in order, outside the lock.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Spawn the login task (`exchange`: with the person's submission).
    StartLogin {
        /// Why, for the log and the audit trail.
        reason: &'static str,
        /// The logout count now: a logout meanwhile discards the session.
        logouts: u64,
        /// Whether this is the exchange of a person's submission.
        exchange: bool,
        /// Whether this is the proactive refresh of a live session, which a
        /// broker that can renew one (Angel One's `generateTokens`) does
        /// instead of a login; the budget counts it the same.
        renew: bool,
    },
    /// Spawn a store probe; its outcome is fed back with this stamp.
    StartProbe {
        /// The phase the probe acts on (if still current).
        stamp: Phase,
    },
    /// Publish an event to subscribers (no login URL).
    Publish {
        /// Which event.
        kind: EventKind,
        /// The generation it concerns.
        generation: u64,
        /// The session's expiry, when there is one.
        expires_at: Option<DateTime<Utc>>,
    },
    /// Announce with the login URL (`auth_required`, `expiring`): an alert
    /// that carries the link.
    Announce(EventKind),
    /// Write an audit row.
    Audit {
        /// The generation it concerns.
        generation: Option<u64>,
        /// The event.
        event: AuditEvent,
        /// Its detail (never a secret).
        detail: String,
    },
    /// Store a rejection, so a restart does not send the credentials again.
    PersistRejection(Rejection),
    /// A login succeeded: forget the stored rejections.
    ForgetRejections,
    /// Retire the interactive login link: the next wait gets a new one.
    RetireLink,
    /// Look again at this time (the schedule's next due time).
    WakeAt(DateTime<Utc>),
    /// A follower: ask the leading daemon, through the database, for what
    /// needs a broker login.
    AskLeader {
        /// What is asked.
        kind: AskKind,
        /// Report: the generation reported dead; others: the newest known.
        generation: u64,
        /// Login: how long the session must stay valid.
        min_valid: Duration,
    },
}

/// What an `invalidate` did, for the audit trail and metrics.
#[derive(Debug)]
pub enum Invalidation<S> {
    /// The current generation is now dead.
    Current(S),
    /// An older generation: answered with the current one.
    Stale,
    /// Already reported.
    AlreadyDead,
}

/// The machine's answer to the caller that fed an input.
#[derive(Debug)]
pub enum Answer<S> {
    /// Nothing to answer.
    None,
    /// [`Input::Token`]: this session satisfies the need.
    Serve(S),
    /// [`Input::Token`], [`Input::Report`], [`Input::OperatorLogin`]: refused.
    Fail(RequestError),
    /// [`Input::Token`]: wait for a change. `asked`: this waiter has now
    /// asked for a login.
    Wait {
        /// Whether the waiter has asked for a login.
        asked: bool,
    },
    /// [`Input::Report`].
    Invalidated(Invalidation<S>),
    /// [`Input::OperatorLogin`], [`Input::Submit`]: the generation a new
    /// session must be newer than. [`Input::LoginBegins`]: the next one.
    Generation(u64),
    /// [`Input::LoginSucceeded`]: published (`false`: a logout came first;
    /// the session must be ended and forgotten instead).
    Published(bool),
    /// [`Input::StoreRefused`]: whether this started the outage (announce
    /// it), and until when no login is tried.
    Outage {
        /// First refusal of this outage.
        first: bool,
        /// The next probe.
        until: DateTime<Utc>,
    },
    /// [`Input::Logout`]: the session taken out, unless the broker had
    /// already rejected it (`dead`).
    LoggedOut {
        /// The session that was current.
        old: Option<S>,
        /// Whether the broker had rejected it.
        dead: bool,
    },
    /// [`Input::SecretRefused`]: whether the report was about the current
    /// generation (else the verdict is stale).
    Current(bool),
}

/// The effects of one input, and its answer.
#[derive(Debug)]
pub struct Effects<S> {
    /// What the shell must do, in order.
    pub list: Vec<Effect>,
    /// The answer to the caller.
    pub answer: Answer<S>,
}
