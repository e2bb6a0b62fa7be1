//! Startup (the stored session, rejections and recent logins) and reload
//! (a new policy, changed credentials): how the state is seeded and when a
//! lock-out is lifted (ARCHITECTURE invariants 6 and 8).

use tracing::{info, warn};

use super::{Answer, Current, Machine, Phase, Session};
use crate::config::SessionPolicy;
use crate::session::live;
use crate::store::Rejection;

impl<S: Session> Machine<S> {
    /// A stored session is served without a login.
    pub(super) fn restored(&mut self, session: S, jitter: f64) -> Answer<S> {
        let refresh_at = self.refresh_of_taken(&session, jitter);
        self.last_login_at = Some(session.obtained_at());
        self.current = Some(Current {
            session,
            refresh_at,
            restored: true,
        });
        self.want_session = true;
        Answer::None
    }

    /// When a session this daemon did not log in itself (restored, or
    /// published by the leader) is refreshed: at its end for interactive
    /// brokers (only a person renews them), else by the policy.
    pub(super) fn refresh_of_taken(
        &self,
        session: &S,
        jitter: f64,
    ) -> chrono::DateTime<chrono::Utc> {
        if self.interactive {
            return session.expires_at();
        }
        live::refresh_time(
            session.obtained_at(),
            session.expires_at(),
            &self.policy,
            jitter,
        )
    }

    /// Credentials the broker rejected before the restart and that are
    /// still configured put the slot back in `locked_out` instead of being
    /// sent again by the first login. Every rejected set is remembered
    /// either way, so a later reload back to one is caught.
    pub(super) fn stored_rejections(
        &mut self,
        rejections: Vec<Rejection>,
        fingerprint: &str,
    ) -> Answer<S> {
        if rejections.is_empty() {
            return Answer::None;
        }
        self.rejected = rejections
            .iter()
            .map(|r| (r.fingerprint.clone(), r.at))
            .collect();
        let k = &self.key;
        let Some(rejection) = rejections
            .into_iter()
            .find(|r| r.fingerprint == fingerprint)
        else {
            info!(broker = %k.broker, account = %k.account, api = %k.api,
                  "the credentials rejected before the restart have changed since; trying them");
            return Answer::None;
        };
        warn!(broker = %k.broker, account = %k.account, api = %k.api,
              rejected_at = %rejection.at.to_rfc3339(),
              "these credentials were rejected before the restart; not sending them again (locked_out)");
        self.phase = Phase::LockedOut;
        self.last_error = Some((
            "locked_out",
            format!(
                "{} (rejected at {}, before a restart)",
                rejection.message,
                rejection.at.to_rfc3339()
            ),
        ));
        Answer::None
    }

    /// A reload: new limits, and when what the broker checks at login
    /// changed, new credentials lift `locked_out` and `conflict` (the
    /// operator has acted); a change back to credentials the broker
    /// rejected locks the slot out again instead of letting the next
    /// automatic login send them. A login already running finishes with
    /// what it read.
    pub(super) fn reconfigure(
        &mut self,
        policy: SessionPolicy,
        credentials: Option<&str>,
    ) -> Answer<S> {
        self.budget
            .set_limits(policy.min_login_interval, policy.max_logins_per_hour);
        self.policy = policy;
        let Some(fingerprint) = credentials else {
            return Answer::None;
        };
        if let Some(refusal) = self.same_as_rejected(fingerprint) {
            if self.phase != Phase::LoggingIn {
                let k = &self.key;
                warn!(broker = %k.broker, account = %k.account, api = %k.api,
                      "the reloaded credentials are the ones the broker rejected; not sending them (locked_out)");
                self.phase = Phase::LockedOut;
                self.last_error = Some(("locked_out", refusal.message));
            }
            return Answer::None;
        }
        match self.phase {
            Phase::LockedOut | Phase::Conflict { .. } => {
                self.phase = Phase::Idle;
                self.early_deaths = 0;
                self.conflict_pending = false;
                self.last_error = None;
            }
            Phase::Idle
            | Phase::LoggingIn
            | Phase::Backoff { .. }
            | Phase::AuthRequired
            | Phase::StoreUnavailable { .. } => {}
        }
        Answer::None
    }
}
