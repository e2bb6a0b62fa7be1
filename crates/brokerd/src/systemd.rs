//! systemd integration: readiness, a one-line status, watchdog pings that
//! stop when a slot's loop is stuck, and socket activation. Every call is a
//! no-op when not running under systemd (no `NOTIFY_SOCKET`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::session::Registry;

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` with the current status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `RELOADING=1` … then `READY=1` when done.
pub fn reloading() {
    notify(&[NotifyState::Reloading]);
}

/// How many sessions of one state needing attention `STATUS=` names; the
/// rest are counted, so a desk of a thousand accounts gets a short line.
const NAMED_PER_STATE: usize = 5;

/// The status line: `3 sessions: 2 active, 1 locked_out (jainam/main/market)`.
/// Sessions that need attention are named (the first few of each state).
pub fn summary(registry: &Registry) -> String {
    let slots = registry.slots();
    status_line(slots.iter().map(|slot| {
        let status = slot.status();
        (status.state.as_str(), status.key.to_string())
    }))
}

/// [`summary`] of `(state, session)` pairs.
fn status_line(sessions: impl Iterator<Item = (&'static str, String)>) -> String {
    let mut counts: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut total = 0;
    for (state, key) in sessions {
        total += 1;
        counts.entry(state).or_default().push(key);
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(state, keys)| {
            let attention = !matches!(*state, "active" | "refreshing");
            if !attention {
                return format!("{} {state}", keys.len());
            }
            let named = keys[..keys.len().min(NAMED_PER_STATE)].join(", ");
            let more = keys.len().saturating_sub(NAMED_PER_STATE);
            if more > 0 {
                format!("{} {state} ({named} and {more} more)", keys.len())
            } else {
                format!("{} {state} ({named})", keys.len())
            }
        })
        .collect();
    let noun = if total == 1 { "session" } else { "sessions" };
    if parts.is_empty() {
        format!("0 {noun}")
    } else {
        format!("{total} {noun}: {}", parts.join(", "))
    }
}

/// Keeps `STATUS=` current and, when systemd asked for a watchdog, pings it
/// at half its interval, but only while every slot's loop is alive: a stuck
/// refresh loop stops the pings and systemd restarts the daemon.
pub async fn run(registry: Arc<Registry>, cancel: CancellationToken) {
    let watchdog = sd_notify::watchdog_enabled();
    let tick = watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 2).min(Duration::from_secs(1))
    });
    // A loop wakes at least every heartbeat; allow for a busy machine.
    let stale_after = (crate::session::driver::HEARTBEAT * 3).max(watchdog.unwrap_or_default() / 2);
    let mut last_status = String::new();
    let mut was_stuck = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let status = summary(&registry);
        if status != last_status {
            notify(&[NotifyState::Status(&status)]);
            last_status = status;
        }
        if watchdog.is_none() {
            continue;
        }
        let stuck = stuck_sessions(&registry, stale_after);
        if stuck.is_empty() {
            notify(&[NotifyState::Watchdog]);
            was_stuck = false;
        } else if !was_stuck {
            error!(sessions = %stuck.join(", "), "a session loop is stuck; withholding watchdog pings so systemd restarts brokerd");
            was_stuck = true;
        }
    }
}

/// Sessions whose loop has not gone round within `stale_after` (or never
/// started): while there are any, the watchdog is not fed.
pub fn stuck_sessions(registry: &Registry, stale_after: Duration) -> Vec<String> {
    registry
        .slots()
        .iter()
        .filter(|s| s.since_heartbeat().is_none_or(|d| d > stale_after))
        .map(|s| s.key().to_string())
        .collect()
}

/// The listening socket systemd passed (socket activation), if any.
pub fn activated_listener() -> std::io::Result<Option<std::os::unix::net::UnixListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 1 {
        warn!(
            count = fds.len(),
            "systemd passed several sockets; using the first"
        );
    }
    fds.take_unix_listener(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(pairs: &[(&'static str, &str)]) -> String {
        status_line(pairs.iter().map(|(s, k)| (*s, k.to_string())))
    }

    #[test]
    fn status_names_the_first_sessions_needing_attention_and_counts_the_rest() {
        assert_eq!(line(&[]), "0 sessions");
        assert_eq!(
            line(&[("active", "jainam/a/interactive")]),
            "1 session: 1 active"
        );
        assert_eq!(
            line(&[
                ("active", "jainam/a/interactive"),
                ("locked_out", "jainam/a/market"),
                ("refreshing", "kotak_neo/b/interactive"),
            ]),
            "3 sessions: 1 active, 1 locked_out (jainam/a/market), 1 refreshing"
        );
        let keys: Vec<String> = (1..=2000)
            .map(|i| format!("jainam/s{i:04}/market"))
            .collect();
        let many = status_line(keys.iter().map(|k| ("empty", k.clone())));
        assert_eq!(
            many,
            "2000 sessions: 2000 empty (jainam/s0001/market, jainam/s0002/market, \
             jainam/s0003/market, jainam/s0004/market, jainam/s0005/market and 1995 more)"
        );
    }
}
