//! The three loops of a daemon sharing its store: the lock loop (take free
//! sessions, notice a lost connection), the listener (sessions the leaders
//! saved, requests for the sessions this daemon leads) and the periodic
//! look for anything a lost notification hid.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::Link;
use crate::brokers::SessionKey;
use crate::session::Registry;
use crate::session::Slot;
use crate::session::machine::Role;
use crate::store::StoreError;
use crate::store::postgres::ha::Notice;

/// How long a request row is worth answering: longer than any client
/// waits for the answer.
const ASK_MAX_AGE: Duration = Duration::from_secs(120);

/// Pause before reconnecting a failed listener.
const RELISTEN: Duration = Duration::from_secs(1);

/// Starts the loops; they end when `cancel` fires, giving up every lock
/// (the connection closes), so a follower takes over at once.
pub fn spawn(
    link: Arc<Link>,
    registry: Arc<Registry>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(locks(
        Arc::clone(&link),
        Arc::clone(&registry),
        cancel.clone(),
    ));
    tracker.spawn(listen(
        Arc::clone(&link),
        Arc::clone(&registry),
        cancel.clone(),
    ));
    tracker.spawn(check(link, registry, cancel));
}

/// Every slot starts as a follower (set before anything else runs), and
/// becomes the leader when it gets the lock.
async fn locks(link: Arc<Link>, registry: Arc<Registry>, cancel: CancellationToken) {
    // Five tries per period: a free lock is taken within a fifth of it.
    let poll = link.config.takeover_within / 5;
    loop {
        if let Err(e) = pass(&link, &registry).await {
            *link.locks.lock().await = None;
            if link.lost_everything() {
                warn!(error = %e, "lost the database: leading nothing, logging in for nobody until it is back");
            }
            let slots: Vec<Arc<Slot>> = registry.slots().iter().cloned().collect();
            for slot in slots {
                slot.set_role(Role::Detached, false).await;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(poll) => {}
        }
    }
    // A login still in flight when the daemon stops finishes, and saves,
    // as the leader: the locks go only after it (the stop waits for the
    // logins first, within its grace), so no follower logs in meanwhile.
    let logins = registry.tasks().clone();
    let _ = tokio::time::timeout(Duration::from_secs(60), logins.wait()).await;
    // The connection closes with the lock loop: the server frees every lock.
    *link.locks.lock().await = None;
    let _ = link.lost_everything();
}

/// One round: connect if needed, try the lock of every session not led,
/// give up the ones whose account left the config, read who leads what.
// Boxed with `Send` named: the slot's effects run through a boxed future
// too, and the compiler cannot prove `Send` for every lifetime otherwise.
fn pass<'a>(
    link: &'a Link,
    registry: &'a Registry,
) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
    Box::pin(async move {
        pass_on(link, registry).await.map_err(|e| match e {
            Lost::Store(e) => e.to_string(),
            Lost::Lock(key) => format!("the lock connection no longer holds the lock of {key}"),
        })
    })
}

/// Why a lock round failed: either means every lock is gone.
enum Lost {
    Store(StoreError),
    Lock(String),
}

impl From<StoreError> for Lost {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

async fn pass_on(link: &Link, registry: &Registry) -> Result<(), Lost> {
    let mut guard = link.locks.lock().await;
    if guard.is_none() {
        let conn = link
            .pg()
            .lock_connection(link.config.takeover_within)
            .await?;
        info!(host = %link.host(), "lock connection up; taking free sessions");
        *guard = Some(conn);
        link.connected.store(true, Ordering::Relaxed);
    }
    let conn = guard.as_mut().expect("just connected");
    let slots = registry.slots();
    // Every session not led, tried in one round trip.
    let free: Vec<Arc<Slot>> = slots
        .iter()
        .filter(|s| !link.leads(s.key()))
        .cloned()
        .collect();
    let keys: Vec<_> = free.iter().map(|s| s.key().clone()).collect();
    let held = conn.try_lock_all(&keys).await?;
    let mut taken = Vec::new();
    let mut followed = Vec::new();
    for (slot, held) in free.into_iter().zip(held) {
        if held {
            link.led.lock().insert(slot.key().clone());
            taken.push(slot);
        } else {
            followed.push(slot);
        }
    }
    // Accounts a reload removed: their locks go to whoever still has them.
    // (Sets, not scans: a desk's daemon leads thousands of sessions, and
    // this runs five times per `takeover_within`.)
    let configured: HashSet<&SessionKey> = slots.iter().map(|s| s.key()).collect();
    let gone: Vec<_> = link
        .led
        .lock()
        .iter()
        .filter(|k| !configured.contains(k))
        .cloned()
        .collect();
    for key in gone {
        conn.unlock(&key).await?;
        link.led.lock().remove(&key);
    }
    // Proves the connection (and so every lock) is alive even when
    // nothing was tried this round.
    let any = link.led.lock().iter().next().cloned();
    if let Some(any) = any
        && !conn.holds(&any).await?
    {
        return Err(Lost::Lock(any.to_string()));
    }
    let pid = conn.pid();
    drop(guard);
    for slot in followed {
        if slot.role() != Role::Follows {
            slot.set_role(Role::Follows, false).await;
        }
    }
    // Led by this daemon's bookkeeping but not by the slot's own (a login
    // found the lock unprovable and detached the slot, the connection
    // then proved fine): lead again, without a takeover's reads.
    let just_taken: HashSet<&SessionKey> = taken.iter().map(|s| s.key()).collect();
    for slot in slots.iter() {
        if !just_taken.contains(slot.key()) && link.leads(slot.key()) && slot.role() != Role::Leads
        {
            slot.set_role(Role::Leads, false).await;
        }
    }
    for slot in taken {
        take_over(link, &slot, pid).await;
    }
    let leaders = link.pg().leaders().await?;
    *link.leaders.write() = leaders
        .into_iter()
        .map(|(key, host, since)| (key, (host, since)))
        .collect();
    Ok(())
}

/// This daemon now holds `slot`'s lock: record it, bring the slot up to
/// what the store holds (the old leader may have saved a session this
/// daemon missed) and its budget up to the logins every host started,
/// then lead.
async fn take_over(link: &Link, slot: &Arc<Slot>, pid: i32) {
    let key = slot.key();
    if let Err(e) = link.pg().set_leader(key, pid).await {
        warn!(session = %key, error = %e, "could not record the leadership; leading anyway");
    }
    // Who saved the session this daemon will serve: a session another host
    // (or a daemon that did not say) created is bound to that address.
    let created_by = match link.store.load_session(key).await {
        Ok(Some(stored)) => {
            let by = stored.created_by.clone();
            slot.adopt_stored(stored, link.host()).await;
            by
        }
        Ok(None) => None,
        Err(e) => {
            warn!(session = %key, error = %e, "could not read the stored session at takeover");
            None
        }
    };
    slot.restore_budget().await;
    info!(session = %key, host = %link.host(), "leading this session");
    let elsewhere = created_by.as_deref() != Some(link.host());
    let bound = link.address_bound(key.broker) && elsewhere;
    slot.set_role(Role::Leads, bound).await;
    // Whatever followers asked while nobody led (a session reported dead,
    // a login wanted) is this daemon's to answer now.
    answer(link, slot).await;
}

/// Notifications: sessions other hosts saved or forgot, and requests for
/// the sessions this daemon leads.
async fn listen(link: Arc<Link>, registry: Arc<Registry>, cancel: CancellationToken) {
    loop {
        let mut listener = match link.pg().listen().await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot listen for other daemons' notifications; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(RELISTEN) => continue,
                }
            }
        };
        // Whatever happened before the listener was up.
        look_at_everything(&link, &registry).await;
        loop {
            let notice = tokio::select! {
                _ = cancel.cancelled() => return,
                n = listener.next() => n,
            };
            match notice {
                Ok(Notice::Session {
                    key,
                    generation,
                    host,
                }) => {
                    if host != link.host()
                        && let Some(slot) = slot_of(&registry, &key)
                        && slot.generation() < generation
                    {
                        follow(&link, &slot).await;
                    }
                }
                Ok(Notice::Gone {
                    key,
                    generation,
                    host,
                }) => {
                    if host != link.host()
                        && let Some(slot) = slot_of(&registry, &key)
                    {
                        slot.gone(generation).await;
                    }
                }
                Ok(Notice::Request { key }) => {
                    if link.leads(&key)
                        && let Some(slot) = slot_of(&registry, &key)
                    {
                        answer(&link, &slot).await;
                    }
                }
                Ok(Notice::Reconnected) => look_at_everything(&link, &registry).await,
                Err(e) => {
                    warn!(error = %e, "the notification connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The periodic look, in case a notification was lost.
async fn check(link: Arc<Link>, registry: Arc<Registry>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(link.config.check_every) => {}
        }
        look_at_everything(&link, &registry).await;
    }
}

/// Every request for a session this daemon leads, and every stored
/// generation against this daemon's for the others.
async fn look_at_everything(link: &Link, registry: &Registry) {
    let slots = registry.slots();
    // A map, not a scan per row: this runs every `check_every` over every
    // session of a desk.
    let by_key: HashMap<&SessionKey, &Arc<Slot>> = slots.iter().map(|s| (s.key(), s)).collect();
    // Requests first (one may exist before any session row does), only
    // where some wait.
    match link.pg().asked().await {
        Ok(keys) => {
            for key in keys.iter().filter(|k| link.leads(k)) {
                if let Some(slot) = by_key.get(key) {
                    answer(link, slot).await;
                }
            }
        }
        Err(e) => warn!(error = %e, "could not look for waiting requests"),
    }
    let generations = match link.pg().generations().await {
        Ok(g) => g,
        Err(e) => {
            return warn!(error = %e, "could not compare the stored generations");
        }
    };
    for row in generations {
        let Some(&slot) = by_key.get(&row.key) else {
            continue;
        };
        if link.leads(&row.key) {
            continue;
        }
        if row.forgotten {
            // Logged out by the leader, and this daemon still serves that
            // session (or an older one): the `gone` notice was lost.
            if slot.serves_at_most(row.generation) {
                slot.gone(row.generation).await;
            }
        } else if slot.generation() < row.generation {
            follow(link, slot).await;
        }
    }
}

/// Reads `slot`'s stored session and serves it if it is newer.
async fn follow(link: &Link, slot: &Arc<Slot>) {
    match link.store.load_session(slot.key()).await {
        Ok(Some(stored)) => slot.adopt_stored(stored, link.host()).await,
        Ok(None) => {}
        Err(e) => {
            warn!(session = %slot.key(), error = %e, "could not read the session another daemon saved")
        }
    }
}

/// The leader takes the requests other daemons wrote for `slot`.
async fn answer(link: &Link, slot: &Arc<Slot>) {
    match link.pg().claim(slot.key(), ASK_MAX_AGE).await {
        Ok(asks) => {
            for ask in asks {
                slot.answer_ask(ask).await;
            }
        }
        Err(e) => {
            warn!(session = %slot.key(), error = %e, "could not read the requests for this session")
        }
    }
}

fn slot_of(registry: &Registry, key: &SessionKey) -> Option<Arc<Slot>> {
    registry.slots().iter().find(|s| s.key() == key).cloned()
}
