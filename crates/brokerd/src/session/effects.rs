//! The IO shell's two moves: feed the machine an input under the lock
//! (`feed`), and run the effects it returned after the lock is dropped
//! (`apply`): spawn logins and probes, publish, audit, store rejections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::events::Event;
use super::live::Live;
use super::machine::{Effect, Effects, Input};
use super::slot::Slot;
use crate::secret::Secret;

impl Slot {
    /// Hands the machine one input, now, under the state lock (held only
    /// for the pure transition).
    pub(super) fn feed(&self, input: Input<Arc<Live>>) -> Effects<Arc<Live>> {
        let now = self.now();
        self.state.lock().handle(now, input)
    }

    /// Runs effects in order, outside the state lock. A person's
    /// `submission` goes to the exchange the effects start; the receiver
    /// resolves when that exchange has finished. Boxed with `Send` named:
    /// a login task runs effects that may spawn a login task, and the
    /// compiler cannot infer `Send` through that cycle by itself.
    pub(super) fn apply(
        self: &Arc<Self>,
        effects: Vec<Effect>,
        submission: Option<Secret>,
    ) -> Pin<Box<dyn Future<Output = Option<oneshot::Receiver<()>>> + Send + '_>> {
        Box::pin(self.run_effects(effects, submission))
    }

    /// Writes a follower's ask for the leader. A failure is only logged:
    /// the wait for the leader ends by itself, and the next request asks
    /// again.
    async fn ask_leader(
        &self,
        kind: crate::store::postgres::ha::AskKind,
        generation: u64,
        min_valid: std::time::Duration,
    ) {
        let Some(ha) = &self.ha else {
            return tracing::error!(session = %self.key, "a slot without a shared store asked a leader");
        };
        if let Err(e) = ha
            .forward(&self.key, kind, generation, min_valid, None)
            .await
        {
            tracing::warn!(session = %self.key, error = %e, "could not ask the leading daemon");
        }
    }

    async fn run_effects(
        self: &Arc<Self>,
        effects: Vec<Effect>,
        mut submission: Option<Secret>,
    ) -> Option<oneshot::Receiver<()>> {
        let mut done = None;
        for effect in effects {
            match effect {
                Effect::StartLogin {
                    reason,
                    logouts,
                    exchange,
                    renew,
                } => {
                    let slot = Arc::clone(self);
                    let submission = if exchange { submission.take() } else { None };
                    let (tx, rx) = oneshot::channel();
                    if exchange {
                        done = Some(rx);
                    }
                    // Tracked: a shutdown lets an in-flight login finish and
                    // persist instead of dropping it halfway.
                    self.tasks.spawn(async move {
                        slot.login_task(reason, logouts, submission, renew).await;
                        let _ = tx.send(());
                    });
                }
                Effect::StartProbe { stamp } => {
                    let slot = Arc::clone(self);
                    self.tasks.spawn(async move {
                        // The outcome is in the state; the driver wakes on `notify`.
                        let _ = slot.store_gate(super::machine::GateBy::Probe(stamp)).await;
                        slot.notify();
                    });
                }
                Effect::Publish {
                    kind,
                    generation,
                    expires_at,
                } => self.events.publish(Event {
                    kind,
                    key: self.key.clone(),
                    generation,
                    expires_at,
                    login_url: None,
                }),
                Effect::Announce(kind) => self.announce(kind).await,
                Effect::Audit {
                    generation,
                    event,
                    detail,
                } => self.audit(generation, event, &detail).await,
                Effect::PersistRejection(rejection) => self.persist_rejection(&rejection).await,
                Effect::ForgetRejections => self.forget_rejection().await,
                Effect::RetireLink => self.retire_link(),
                // Only the schedule asks to be woken; its loop reads it.
                Effect::WakeAt(_) => {}
                Effect::AskLeader {
                    kind,
                    generation,
                    min_valid,
                } => self.ask_leader(kind, generation, min_valid).await,
            }
        }
        done
    }
}
