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

/// The status line: `3 sessions: 2 active, 1 locked_out (jainam/main/market)`.
/// Sessions that need attention are named.
pub fn summary(registry: &Registry) -> String {
    let mut counts: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let slots = registry.slots();
    for slot in slots.iter() {
        let status = slot.status();
        counts
            .entry(status.state.as_str())
            .or_default()
            .push(status.key.to_string());
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(state, keys)| {
            let attention = !matches!(*state, "active" | "refreshing");
            if attention {
                format!("{} {state} ({})", keys.len(), first_names(keys))
            } else {
                format!("{} {state}", keys.len())
            }
        })
        .collect();
    let noun = if slots.len() == 1 {
        "session"
    } else {
        "sessions"
    };
    if parts.is_empty() {
        format!("0 {noun}")
    } else {
        format!("{} {noun}: {}", slots.len(), parts.join(", "))
    }
}

/// At most this many session names per state in `STATUS=`: a desk's 2,000
/// sessions waiting at a cold start would make a line systemd truncates.
const NAMES_SHOWN: usize = 5;

/// The first names, and how many more.
fn first_names(keys: &[String]) -> String {
    if keys.len() <= NAMES_SHOWN {
        return keys.join(", ");
    }
    format!(
        "{}, and {} more",
        keys[..NAMES_SHOWN].join(", "),
        keys.len() - NAMES_SHOWN
    )
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
    use super::first_names;

    #[test]
    fn status_names_at_most_five_sessions_per_state() {
        let few: Vec<String> = (0..3).map(|i| format!("jainam/a{i}/interactive")).collect();
        assert_eq!(
            first_names(&few),
            "jainam/a0/interactive, jainam/a1/interactive, jainam/a2/interactive"
        );
        let desk: Vec<String> = (0..2000).map(|i| format!("jainam/a{i}/market")).collect();
        let line = first_names(&desk);
        assert!(line.ends_with("jainam/a4/market, and 1995 more"), "{line}");
        assert!(line.len() < 200);
    }
}
