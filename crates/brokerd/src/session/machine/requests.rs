//! What clients and operators ask of the slot: a token (serve, fail or
//! wait, starting at most one login), a report of a dead session
//! (generation fencing), an operator's login, a person's submission, a
//! logout (ARCHITECTURE invariants 1, 3, 5, 6 and 14).

use chrono::{DateTime, Utc};
use tracing::error;

use super::{Answer, Effect, Invalidation, Machine, Need, Out, Phase, Role, Session, Trigger};
use crate::brokers::BrokerError;
use crate::session::error::{ErrorCode, RequestError};
use crate::session::events::EventKind;
use crate::store::AuditEvent;
use crate::store::postgres::ha::AskKind;

impl<S: Session> Machine<S> {
    fn last(&self, fallback: &str) -> String {
        self.last_error
            .as_ref()
            .map_or_else(|| fallback.to_string(), |e| e.1.clone())
    }

    /// A waiter's look: serve, fail, or wait (starting the one login).
    pub(super) fn token(
        &mut self,
        now: DateTime<Utc>,
        need: Need,
        asked: bool,
        out: &mut Out,
    ) -> Answer<S> {
        if let Some(session) = self.usable(now, need) {
            return Answer::Serve(session);
        }
        if self.role == Role::Detached {
            return Answer::Fail(self.detached());
        }
        let key = &self.key;
        match self.phase {
            // Until a submission arrives or the wait runs out (which answers
            // `auth_required` with the login URL).
            Phase::LoggingIn | Phase::AuthRequired => Answer::Wait { asked },
            Phase::LockedOut => Answer::Fail(RequestError::new(
                ErrorCode::LockedOut,
                format!(
                    "{key}: {}; not retried automatically; fix it, then run `brokerctl login {} --account {}`",
                    self.last("credentials rejected"),
                    key.broker,
                    key.account
                ),
            )),
            Phase::Conflict { until } => Answer::Fail(
                RequestError::new(
                    ErrorCode::Conflict,
                    self.last("sessions keep dying right after login"),
                )
                .retry_after(Self::left(now, until)),
            ),
            Phase::StoreUnavailable { until, .. } => Answer::Fail(
                RequestError::new(
                    ErrorCode::StoreUnavailable,
                    self.last("the store cannot take a session"),
                )
                .retry_after(Self::left(now, until)),
            ),
            Phase::Backoff { until } => {
                let left = Self::left(now, until);
                if left.is_zero() && !asked {
                    self.begin_login(now, "retry after backoff", Trigger::Automatic, out);
                    return Answer::Wait { asked: true };
                }
                // Held back by the login budget: its message says so (and
                // names the account) itself.
                let message = match &self.last_error {
                    Some(("login_budget", m)) => format!("{m}; retrying automatically"),
                    _ => format!(
                        "{key}: last login failed ({}); retrying automatically",
                        self.last("transient failure")
                    ),
                };
                Answer::Fail(RequestError::new(ErrorCode::Unavailable, message).retry_after(left))
            }
            Phase::Idle => self.token_idle(now, need, asked, out),
        }
    }

    fn token_idle(
        &mut self,
        now: DateTime<Utc>,
        need: Need,
        asked: bool,
        out: &mut Out,
    ) -> Answer<S> {
        let key = &self.key;
        let alive = self
            .current
            .as_ref()
            .filter(|c| !self.dead && need.newer_than == 0 && !c.remaining(now).is_zero());
        if let Some(current) = alive {
            // A live session whose whole lifetime is shorter than the caller
            // wants: another login would get no more (brokers cut sessions
            // at fixed times), so say so instead of logging in again for
            // every such request. Once it expires, a login may.
            if current.lifetime() < need.min_valid {
                return Answer::Fail(RequestError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "{} issues sessions valid for only {}s, less than the {}s asked for",
                        key.broker,
                        current.lifetime().as_secs(),
                        need.min_valid.as_secs()
                    ),
                ));
            }
            // Interactive brokers: a new browser login would end at the
            // same daily cut-off, so waking a person cannot help.
            if self.interactive {
                return Answer::Fail(RequestError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "{key}: the session ends at {} ({}s left), less than the {}s asked for; a new browser \
                         login would end at the same daily cut-off, so ask for less",
                        current.expires_at().to_rfc3339(),
                        current.remaining(now).as_secs(),
                        need.min_valid.as_secs()
                    ),
                ));
            }
        }
        if asked && self.role == Role::Follows {
            return Answer::Fail(RequestError::new(
                ErrorCode::Unavailable,
                format!(
                    "{key}: {}",
                    self.last("the leading daemon published no usable session")
                ),
            ));
        }
        if asked {
            return Answer::Fail(RequestError::new(
                ErrorCode::LoginFailed,
                format!(
                    "{key}: {}",
                    self.last("the login did not produce a usable session")
                ),
            ));
        }
        self.want_session = true;
        let reason = if self.current.is_some() {
            "session expiring"
        } else {
            "no session"
        };
        self.begin_login(now, reason, Trigger::Automatic, out);
        Answer::Wait { asked: true }
    }

    /// "The broker rejected `generation`" (a dead session): fenced by
    /// generation, counted as a death once, one login however many report.
    pub(super) fn report(
        &mut self,
        now: DateTime<Utc>,
        generation: u64,
        ends_previous: bool,
        out: &mut Out,
    ) -> Answer<S> {
        if generation > self.generation {
            return Answer::Fail(RequestError::new(
                ErrorCode::BadRequest,
                format!(
                    "generation {generation} was never issued for {}; the newest is {}",
                    self.key, self.generation
                ),
            ));
        }
        let Some(current) = self.current.as_ref() else {
            return Answer::Invalidated(Invalidation::AlreadyDead);
        };
        let (current_generation, obtained) = (current.generation(), current.session.obtained_at());
        if current_generation == generation && !self.dead {
            let session = current.session.clone();
            self.dead = true;
            match self.role {
                Role::Leads => {
                    self.count_death(now, Some(generation), obtained, out);
                    // Only from Idle: a lock-out must not get a second wrong
                    // attempt, a backoff or conflict must not be cut short,
                    // and a running login already brings the next session.
                    if self.phase == Phase::Idle {
                        self.begin_login(
                            now,
                            "token rejected by the broker",
                            Trigger::Automatic,
                            out,
                        );
                    }
                }
                // The leader counts the death and decides the login: it
                // fences the report by generation as this daemon would.
                Role::Follows | Role::Detached => {
                    let min_valid = self.policy.min_valid;
                    self.defer_login(now, AskKind::Report, generation, min_valid, false, out);
                }
            }
            return Answer::Invalidated(Invalidation::Current(session));
        }
        if current_generation > generation {
            // The generation a refresh just replaced: its death still says
            // whether sessions die right after login, unless our own new
            // login is what ended it.
            if let Some((previous, obtained)) = self.previous
                && previous == generation
                && !ends_previous
                && self.role == Role::Leads
            {
                self.count_death(now, Some(generation), obtained, out);
            }
            return Answer::Invalidated(Invalidation::Stale);
        }
        Answer::Invalidated(Invalidation::AlreadyDead)
    }

    /// Operator-forced fresh login; clears `locked_out`, `conflict` and
    /// `backoff` first. It bypasses the login budget but is counted in it.
    /// Credentials the broker rejected are never sent again.
    pub(super) fn operator_login(
        &mut self,
        now: DateTime<Utc>,
        fingerprint: &str,
        out: &mut Out,
    ) -> Answer<S> {
        if let Some(refusal) = self.same_as_rejected(fingerprint) {
            return Answer::Fail(refusal);
        }
        if self.phase != Phase::LoggingIn {
            self.phase = Phase::Idle;
        }
        self.failures = 0;
        self.early_deaths = 0;
        self.conflict_pending = false;
        self.want_session = true;
        let generation = self.generation;
        self.begin_login(now, "operator request", Trigger::Operator, out);
        Answer::Generation(generation)
    }

    /// Whether a login (or a submission's exchange) is in flight.
    pub fn logging_in(&self) -> bool {
        self.phase == Phase::LoggingIn
    }

    /// A person's browser login: like `login`, this lifts a lock-out. Fed
    /// only when no login is in flight (the shell waits for that first).
    pub(super) fn submit(&mut self, now: DateTime<Utc>, out: &mut Out) -> Answer<S> {
        self.failures = 0;
        self.early_deaths = 0;
        self.want_session = true;
        let before = self.generation;
        // A person's submission is never refused by the budget, but counts.
        self.spend_budget(now, Trigger::Operator, "browser login submitted", out);
        self.phase = Phase::LoggingIn;
        out.push(Effect::StartLogin {
            reason: "browser login submitted",
            logouts: self.logouts,
            exchange: true,
            renew: false,
        });
        Answer::Generation(before)
    }

    /// The answer to a submission whose exchange produced no session.
    pub fn submission_error(&self, now: DateTime<Utc>) -> RequestError {
        let message = self
            .last_error
            .as_ref()
            .map_or("the login did not produce a session", |(_, m)| m.as_str());
        match self.phase {
            Phase::StoreUnavailable { .. } if self.login_spent() => {
                // Exchanged, then refused by the store: the submission is
                // used up, and only a new browser login can replace it.
                RequestError::new(
                    ErrorCode::LoginFailed,
                    format!("{message}; log in again in the browser once it can"),
                )
            }
            // Refused by the login's own store check: the submission was
            // not used and works again once the store does.
            Phase::StoreUnavailable { until, .. } => {
                RequestError::new(ErrorCode::StoreUnavailable, message.to_string())
                    .retry_after(Self::left(now, until))
            }
            Phase::LockedOut => RequestError::new(
                ErrorCode::LockedOut,
                format!(
                    "{}: {message}; fix the configuration, reload, then log in again",
                    self.key
                ),
            ),
            Phase::Idle
            | Phase::LoggingIn
            | Phase::Backoff { .. }
            | Phase::Conflict { .. }
            | Phase::AuthRequired => {
                RequestError::new(ErrorCode::LoginFailed, format!("{}: {message}", self.key))
            }
        }
    }

    /// `logout`: forget the session; a logout also ends pending retries
    /// (a lock-out stays).
    pub(super) fn logout(&mut self) -> Answer<S> {
        self.want_session = false;
        self.logouts += 1;
        self.conflict_pending = false;
        match self.phase {
            Phase::Backoff { .. } | Phase::Conflict { .. } | Phase::AuthRequired => {
                self.phase = Phase::Idle;
                self.failures = 0;
                self.early_deaths = 0;
            }
            Phase::Idle | Phase::LoggingIn | Phase::LockedOut | Phase::StoreUnavailable { .. } => {}
        }
        let dead = std::mem::take(&mut self.dead);
        self.auth_announced = false;
        Answer::LoggedOut {
            old: self.current.take().map(|c| c.session),
            dead,
        }
    }

    /// Breeze: a recheck found the app's credentials refused. Locks out if
    /// the report was about the current generation.
    pub(super) fn secret_refused(
        &mut self,
        now: DateTime<Utc>,
        generation: u64,
        err: BrokerError,
        fingerprint: String,
        out: &mut Out,
    ) -> Answer<S> {
        let message = err.message().to_string();
        let current = self
            .current
            .as_ref()
            .is_some_and(|c| c.generation() == generation);
        if !current {
            // A newer session arrived meanwhile: this verdict is stale.
            return Answer::Current(false);
        }
        if self.phase != Phase::LoggingIn {
            self.phase = Phase::LockedOut;
        }
        self.last_error = Some(("locked_out", message.clone()));
        if matches!(err, BrokerError::Rejected(_)) {
            let rejection = self.reject(now, fingerprint, &message);
            out.push(Effect::PersistRejection(rejection));
        }
        let k = &self.key;
        error!(broker = %k.broker, account = %k.account, generation, error = %message,
               "the broker refuses the app's credentials");
        out.push(Effect::Audit {
            generation: Some(generation),
            event: AuditEvent::LockedOut,
            detail: message,
        });
        out.push(Effect::Publish {
            kind: EventKind::LockedOut,
            generation,
            expires_at: None,
        });
        Answer::Current(true)
    }

    /// The refusal of a `login` with credentials the broker rejected, if
    /// `fingerprint` is one of them.
    pub(super) fn same_as_rejected(&self, fingerprint: &str) -> Option<RequestError> {
        let (_, at) = self.rejected.iter().find(|(r, _)| r == fingerprint)?;
        let key = &self.key;
        Some(RequestError::new(
            ErrorCode::LockedOut,
            format!(
                "{key}: the same credentials were rejected at {}; brokerd does not send them again (brokers \
                 lock accounts after a few wrong attempts). Fix the secret the error named (the file, \
                 credential or variable the config refers to), then run `brokerctl login {} --account {}` \
                 again",
                at.to_rfc3339(),
                key.broker,
                key.account
            ),
        ))
    }
}
