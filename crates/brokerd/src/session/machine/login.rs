//! Starting a login (the one door: single flight, the interactive wait, the
//! budget) and what its outcome does to the state: publish, back off, lock
//! out (ARCHITECTURE invariants 1, 6, 8 and 14).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::{
    Answer, Current, Effect, Machine, Out, Phase, Role, Session, Succeeded, Trigger, backoff,
};
use crate::brokers::BrokerError;
use crate::session::events::EventKind;
use crate::session::live;
use crate::store::postgres::ha::AskKind;
use crate::store::{AuditEvent, Rejection};

impl<S: Session> Machine<S> {
    /// Starts the one login of this slot unless one is already in flight.
    /// Interactive brokers cannot log in by themselves: they wait for a
    /// person instead (`auth_required`). Automatic logins are subject to
    /// the login budget.
    pub(super) fn begin_login(
        &mut self,
        now: DateTime<Utc>,
        reason: &'static str,
        trigger: Trigger,
        out: &mut Out,
    ) {
        self.start_login(now, reason, trigger, false, out);
    }

    /// [`Machine::begin_login`] for the proactive refresh of a live
    /// session: a broker that can renew it does that instead of logging in.
    /// Same single flight, budget and publication.
    pub(super) fn begin_refresh(
        &mut self,
        now: DateTime<Utc>,
        reason: &'static str,
        out: &mut Out,
    ) {
        self.start_login(now, reason, Trigger::Automatic, true, out);
    }

    fn start_login(
        &mut self,
        now: DateTime<Utc>,
        reason: &'static str,
        trigger: Trigger,
        renew: bool,
        out: &mut Out,
    ) {
        match self.role {
            Role::Leads => {}
            Role::Follows | Role::Detached => {
                let min_valid = self.policy.min_valid;
                // A session this daemon knows is dead is asked about as a
                // report: the leader may not know (the report may have
                // been lost), and a plain login ask would be answered with
                // that same session.
                let dead = self
                    .current
                    .as_ref()
                    .filter(|_| self.dead)
                    .map(|c| c.generation());
                let (kind, generation, once) = match (trigger, dead) {
                    (Trigger::Operator, _) => (AskKind::OperatorLogin, self.generation, false),
                    (Trigger::Automatic, Some(g)) => (AskKind::Report, g, true),
                    (Trigger::Automatic, None) => (AskKind::Login, self.generation, true),
                };
                return self.defer_login(now, kind, generation, min_valid, once, out);
            }
        }
        if self.phase == Phase::LoggingIn {
            return;
        }
        if self.interactive {
            return self.require_auth(reason, out);
        }
        if !self.spend_budget(now, trigger, reason, out) {
            return;
        }
        self.phase = Phase::LoggingIn;
        out.push(Effect::StartLogin {
            reason,
            logouts: self.logouts,
            exchange: false,
            renew,
        });
    }

    /// Enters `auth_required` and, once per wait for a person, queues its
    /// announcement with a fresh login link.
    pub(super) fn require_auth(&mut self, reason: &'static str, out: &mut Out) {
        if self.phase == Phase::AuthRequired {
            return;
        }
        self.phase = Phase::AuthRequired;
        self.next_reminder = None;
        if self.auth_announced {
            return;
        }
        self.auth_announced = true;
        // A fresh link for the alert: one minted earlier (by a status call
        // while the session was alive) could expire before the person acts.
        out.push(Effect::RetireLink);
        out.push(Effect::Announce(EventKind::AuthRequired));
        let k = &self.key;
        info!(broker = %k.broker, account = %k.account, api = %k.api, reason,
              "waiting for a browser login: `brokerctl login-url {} --account {}` prints the link",
              k.broker, k.account);
    }

    /// A session that arrives already expired, or with less left than the
    /// account's `min_valid`, is a failed login (transient), never
    /// published: serving it would hand out a dead token, and logging in
    /// again at once would storm the broker. (A person's browser login may
    /// end minutes after it by the daily cut-off, and nothing logs in
    /// again by itself: only an expired one is refused there.)
    pub fn arrival_problem(
        &self,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Option<BrokerError> {
        let min_valid = if self.interactive {
            Duration::ZERO
        } else {
            self.policy.min_valid
        };
        let left = expires_at - now;
        if left > chrono::Duration::zero()
            && left >= chrono::Duration::from_std(min_valid).unwrap_or(chrono::Duration::MAX)
        {
            return None;
        }
        let how = if left <= chrono::Duration::zero() {
            format!("already expired {}s ago", -left.num_seconds())
        } else {
            format!(
                "only {}s left, less than min_valid ({}s)",
                left.num_seconds(),
                min_valid.as_secs()
            )
        };
        Some(BrokerError::Transient(format!(
            "the broker's session arrived {how} (it expires at {} by its `exp`); it is not used. Either this \
             host's clock is ahead of the broker's (check NTP: `timedatectl`) or the broker issued a session \
             that is already over",
            expires_at.to_rfc3339()
        )))
    }

    /// When to renew a session that replaces one ending at
    /// `previous_expiry`.
    fn plan_refresh(
        &self,
        session: &S,
        previous_expiry: Option<DateTime<Utc>>,
        jitter: f64,
    ) -> DateTime<Utc> {
        if self.interactive {
            // Only a person can renew it: nothing to do before it ends,
            // and at its end no login, only the call for a person.
            return session.expires_at();
        }
        if !live::extends(
            previous_expiry,
            session.expires_at(),
            self.policy.refresh_margin,
        ) {
            // A fixed cut-off (e.g. 00:00 IST): the next login that can help
            // is after it.
            let k = &self.key;
            info!(broker = %k.broker, account = %k.account, api = %k.api, generation = session.generation(),
                  "the new session ends when the old one did; no proactive refresh before it expires");
            return live::refresh_at_expiry(session.obtained_at(), session.expires_at());
        }
        live::refresh_time(
            session.obtained_at(),
            session.expires_at(),
            &self.policy,
            jitter,
        )
    }

    /// A login's session was stored as `generation`: publish it, unless a
    /// logout arrived meanwhile.
    pub(super) fn login_succeeded(
        &mut self,
        now: DateTime<Utc>,
        succeeded: Succeeded<S>,
        out: &mut Out,
    ) -> Answer<S> {
        let Succeeded {
            generation,
            session,
            logouts,
            jitter,
            audit,
        } = succeeded;
        self.generation = generation;
        if self.logouts != logouts {
            // A logout arrived while the session was being stored: it must
            // not be published.
            self.phase = Phase::Idle;
            return Answer::Published(false);
        }
        let previous_expiry = self.current.as_ref().map(Current::expires_at);
        let refresh_at = self.plan_refresh(&session, previous_expiry, jitter);
        self.dead = false;
        self.phase = Phase::Idle;
        self.failures = 0;
        self.last_login_at = Some(now);
        self.last_error = None;
        self.want_session = true;
        self.auth_announced = false;
        if !std::mem::take(&mut self.rejected).is_empty() {
            out.push(Effect::ForgetRejections);
        }
        let expires_at = session.expires_at();
        let retired = self.current.replace(Current {
            session,
            refresh_at,
            restored: false,
        });
        self.previous = retired
            .as_ref()
            .map(|c| (c.generation(), c.session.obtained_at()));
        // "In a row": a session that outlived the conflict window without
        // being reported dead breaks the run.
        if let Some(old) = &retired
            && old.generation() > self.last_counted_death
            && old.age(now) >= self.policy.conflict_window
        {
            self.early_deaths = 0;
        }
        // Deaths counted while this login ran: `conflict` starts now, with
        // the new session still served.
        self.settle_conflict(now, out);
        if self.interactive {
            // Any login retires the current link: the next wait gets a new one.
            out.push(Effect::RetireLink);
        }
        out.push(Effect::Audit {
            generation: Some(generation),
            event: AuditEvent::LoginOk,
            detail: audit,
        });
        out.push(Effect::Publish {
            kind: EventKind::Renewed,
            generation,
            expires_at: Some(expires_at),
        });
        Answer::Published(true)
    }

    /// A login (or its save) failed: back off, wait for a person, or lock out.
    pub(super) fn login_failed(
        &mut self,
        now: DateTime<Utc>,
        err: BrokerError,
        generation: u64,
        started_at: DateTime<Utc>,
        jitter: f64,
        out: &mut Out,
    ) -> Answer<S> {
        let message = err.message().to_string();
        let k = self.key.clone();
        let duration_ms = Self::left(started_at, now).as_millis() as u64;
        let rejected = matches!(
            err,
            BrokerError::Rejected(_) | BrokerError::CodeRejected(_) | BrokerError::Config(_)
        );
        if self.interactive && !rejected {
            // Nothing to retry by itself: the person logs in again. A session
            // that still works keeps being served.
            let usable = self.valid(now).is_some();
            self.last_error = Some(("login_failed", message.clone()));
            // A logout during the exchange wants nothing any more.
            self.phase = Phase::Idle;
            if !usable && self.want_session {
                self.require_auth("browser login could not be completed", out);
            }
            warn!(broker = %k.broker, account = %k.account, api = %k.api, generation,
                  duration_ms, outcome = "failed", error = %message, "browser login could not be completed");
            out.push(Effect::Audit {
                generation: None,
                event: AuditEvent::LoginFailed,
                detail: message,
            });
        } else if err.is_retryable() || matches!(err, BrokerError::DeadSession(_)) {
            self.failures += 1;
            let delay = backoff::delay(
                self.failures,
                self.policy.backoff_initial,
                self.policy.backoff_max,
                jitter,
            );
            self.phase = Phase::Backoff {
                until: Self::after(now, delay),
            };
            self.last_error = Some(("login_failed", message.clone()));
            if matches!(err, BrokerError::DeadSession(_)) {
                // The broker killed this login's session before it was even
                // finished: the surest sign of another login.
                self.count_death(now, None, started_at, out);
            }
            self.settle_conflict(now, out);
            warn!(broker = %k.broker, account = %k.account, api = %k.api, generation,
                  duration_ms, outcome = "transient", error = %message, failures = self.failures,
                  retry_in_ms = delay.as_millis() as u64, "login failed; backing off");
            out.push(Effect::Audit {
                generation: None,
                event: AuditEvent::LoginFailed,
                detail: message,
            });
        } else {
            self.phase = Phase::LockedOut;
            self.conflict_pending = false;
            self.last_error = Some(("locked_out", message.clone()));
            // Only a rejected secret must never be sent again: a rejected
            // one-time code is not resent by a new login, and a
            // configuration error may be fixed outside brokerd.
            if matches!(err, BrokerError::Rejected(_)) {
                let fingerprint = self.attempt_fingerprint.clone();
                let rejection = self.reject(now, fingerprint, &message);
                out.push(Effect::PersistRejection(rejection));
            }
            error!(broker = %k.broker, account = %k.account, api = %k.api, generation,
                   duration_ms, outcome = "rejected", error = %message,
                   "login rejected; not retried automatically (brokers lock accounts after repeated wrong attempts): \
                    fix the configuration, then run `brokerctl login {} --account {}`", k.broker, k.account);
            out.push(Effect::Audit {
                generation: None,
                event: AuditEvent::LoginFailed,
                detail: message.clone(),
            });
            out.push(Effect::Audit {
                generation: None,
                event: AuditEvent::LockedOut,
                detail: message,
            });
            out.push(Effect::Publish {
                kind: EventKind::LockedOut,
                generation: generation - 1,
                expires_at: None,
            });
        }
        Answer::None
    }

    /// Remembers that the broker rejected the credentials with
    /// `fingerprint`; the returned rejection is for the store.
    pub(super) fn reject(
        &mut self,
        now: DateTime<Utc>,
        fingerprint: String,
        message: &str,
    ) -> Rejection {
        let rejection = Rejection {
            fingerprint,
            at: now,
            message: message.to_string(),
        };
        self.rejected.retain(|(f, _)| *f != rejection.fingerprint);
        self.rejected
            .push((rejection.fingerprint.clone(), rejection.at));
        rejection
    }
}
