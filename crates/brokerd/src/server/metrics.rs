//! Daemon-wide request metrics and the Prometheus text exposition.

use crate::session::machine::Role;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::session::pacing::HostPacer;
use crate::session::{SlotStatus, State};

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000, 30_000_000,
];

/// Request latency histogram and connection gauge; atomics because every
/// connection task records into it.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
    /// Connections currently open.
    pub connections: AtomicU64,
    /// Connections refused because the cap was reached.
    pub connections_refused: AtomicU64,
    /// Connections refused because their uid held `max_connections_per_uid`.
    pub connections_refused_per_uid: AtomicU64,
    /// Connections closed because a reply or event write did not finish
    /// within `write_timeout` (the client stopped reading).
    pub connections_stalled: AtomicU64,
}

impl ServerMetrics {
    /// Records one request's duration.
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The exposition text for these metrics plus the slots'.
    pub fn render(&self, slots: &[SlotStatus], hosts: &[Arc<HostPacer>]) -> String {
        let mut out = String::new();
        let states = [
            State::Empty,
            State::Active,
            State::Refreshing,
            State::AuthRequired,
            State::Backoff,
            State::LockedOut,
            State::Conflict,
            State::StoreUnavailable,
        ];
        per_slot(
            &mut out,
            slots,
            "brokerd_session_expires_in_seconds",
            "gauge",
            "Seconds until the current session expires (0 when none).",
            |s| {
                vec![(
                    String::new(),
                    s.expires_at.map_or(0, |t| (t - s.at).num_seconds().max(0)) as u64,
                )]
            },
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_session_generation",
            "gauge",
            "Generation of the current session.",
            |s| vec![(String::new(), s.generation)],
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_session_role",
            "gauge",
            "Several daemons sharing the store only: 1 for this daemon's role in the session (leader, follower, detached).",
            |s| {
                let Some((role, _)) = &s.ha else {
                    return Vec::new();
                };
                [Role::Leads, Role::Follows, Role::Detached]
                    .iter()
                    .map(|r| (format!(",role=\"{}\"", r.as_str()), u64::from(role == r)))
                    .collect()
            },
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_logins_last_hour",
            "gauge",
            "Logins started in the last hour, as the login budget counts them (max_logins_per_hour).",
            |s| vec![(String::new(), s.logins_last_hour)],
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_session_state",
            "gauge",
            "1 for the state the session is in.",
            |s| {
                states
                    .iter()
                    .map(|st| {
                        (
                            format!(",state=\"{}\"", st.as_str()),
                            u64::from(s.state == *st),
                        )
                    })
                    .collect()
            },
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_logins_total",
            "counter",
            "Broker logins by result.",
            |s| {
                vec![
                    (",result=\"ok\"".into(), s.counters[0]),
                    (",result=\"failed\"".into(), s.counters[1]),
                ]
            },
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_invalidations_total",
            "counter",
            "invalidate requests: of the current generation, or of an older one.",
            |s| {
                vec![
                    (",kind=\"current\"".into(), s.counters[2]),
                    (",kind=\"stale\"".into(), s.counters[3]),
                ]
            },
        );
        per_slot(
            &mut out,
            slots,
            "brokerd_token_requests_total",
            "counter",
            "token requests.",
            |s| vec![(String::new(), s.counters[4])],
        );
        family(
            &mut out,
            "brokerd_store_available",
            "gauge",
            "0 while a session is in store_unavailable (the store refused the write that proves a \
             session can be kept, e.g. a full disk), else 1.",
        );
        let refused = slots.iter().any(|s| s.state == State::StoreUnavailable);
        let _ = writeln!(out, "brokerd_store_available {}", u64::from(!refused));
        family(
            &mut out,
            "brokerd_request_duration_seconds",
            "histogram",
            "Socket request latency, all operations.",
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "brokerd_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "brokerd_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "brokerd_request_duration_seconds_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "brokerd_request_duration_seconds_count {count}");
        family(
            &mut out,
            "brokerd_connections",
            "gauge",
            "Open socket connections.",
        );
        let _ = writeln!(
            out,
            "brokerd_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "brokerd_connections_refused_total",
            "counter",
            "Connections refused at the cap.",
        );
        let _ = writeln!(
            out,
            "brokerd_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "brokerd_connections_refused_per_uid_total",
            "counter",
            "Connections refused because their uid held max_connections_per_uid.",
        );
        let _ = writeln!(
            out,
            "brokerd_connections_refused_per_uid_total {}",
            self.connections_refused_per_uid.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "brokerd_connections_stalled_total",
            "counter",
            "Connections closed because the client did not read a reply or event within write_timeout.",
        );
        let _ = writeln!(
            out,
            "brokerd_connections_stalled_total {}",
            self.connections_stalled.load(Ordering::Relaxed)
        );
        pacing(&mut out, hosts);
        out
    }
}

/// The broker hosts' limiters (invariant 19): queue, calls in flight, the
/// rate now and configured, and the host's 429s.
fn pacing(out: &mut String, hosts: &[Arc<HostPacer>]) {
    type Sample = fn(&HostPacer) -> String;
    let families: [(&str, &str, &str, Sample); 5] = [
        (
            "brokerd_pacing_queued",
            "gauge",
            "Logins and validations waiting for their turn at the broker host.",
            |h| h.waiting().to_string(),
        ),
        (
            "brokerd_pacing_in_flight",
            "gauge",
            "Logins and validations at the broker host now ([daemon.pacing] concurrency).",
            |h| h.in_flight().to_string(),
        ),
        (
            "brokerd_pacing_rate",
            "gauge",
            "Calls per second the host is paced at now (lower than configured after a 429).",
            |h| h.current_rate().to_string(),
        ),
        (
            "brokerd_pacing_configured_rate",
            "gauge",
            "Calls per second configured for the host ([daemon.pacing] per_second).",
            |h| h.pace().per_second.to_string(),
        ),
        (
            "brokerd_pacing_rate_limited_total",
            "counter",
            "HTTP 429 answers from the host.",
            |h| h.rate_limited_total().to_string(),
        ),
    ];
    for (name, kind, help, sample) in families {
        family(out, name, kind, help);
        for h in hosts {
            let host = h.host().replace('"', "");
            let _ = writeln!(out, "{name}{{host=\"{host}\"}} {}", sample(h));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One metric family with a sample (or several, told apart by extra
/// labels) per slot.
fn per_slot(
    out: &mut String,
    slots: &[SlotStatus],
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Fn(&SlotStatus) -> Vec<(String, u64)>,
) {
    family(out, name, kind, help);
    for s in slots {
        let labels = format!(
            "broker=\"{}\",account=\"{}\",api=\"{}\"",
            s.key.broker,
            s.key.account.replace('"', ""),
            s.key.api
        );
        for (extra, value) in samples(s) {
            let _ = writeln!(out, "{name}{{{labels}{extra}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = ServerMetrics::default();
        m.observe(Duration::from_micros(40));
        m.observe(Duration::from_micros(700));
        m.observe(Duration::from_secs(60));
        let text = m.render(&[], &[]);
        assert!(
            text.contains("brokerd_request_duration_seconds_bucket{le=\"0.00005\"} 1"),
            "{text}"
        );
        assert!(text.contains("brokerd_request_duration_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("brokerd_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("brokerd_request_duration_seconds_count 3"));
    }
}
