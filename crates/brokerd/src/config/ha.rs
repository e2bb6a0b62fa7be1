//! `[daemon.ha]`: several daemons on one PostgreSQL store (docs/ha.md).
//! Present only on a PostgreSQL `database_url`; absent, the daemon leads
//! every session itself, as it always has.

use std::time::Duration;

use serde::Deserialize;
use toml::Value;

use super::check::Check;
use crate::brokers::BrokerId;

/// The parsed `[daemon.ha]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    /// This daemon's name among those sharing the store: unique per host
    /// (default: the machine's hostname). Shown as the leader, recorded
    /// with every session it saves.
    pub host: String,
    /// A follower takes over a dead leader's sessions within about this
    /// long: it tries the locks five times per period, and the server drops
    /// a vanished leader's connection (and locks) within it.
    pub takeover_within: Duration,
    /// How often a daemon compares every stored generation with its own,
    /// in case a notification was missed.
    pub check_every: Duration,
    /// Brokers whose sessions are bound to the address that created them.
    pub address_bound: Vec<BrokerId>,
}

impl HaConfig {
    /// Whether `broker`'s sessions are bound to the creating address.
    pub fn address_bound(&self, broker: BrokerId) -> bool {
        self.address_bound.contains(&broker)
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHa {
    host: Option<Value>,
    takeover_within: Option<Value>,
    check_every: Option<Value>,
    address_bound: Option<Value>,
}

const DEFAULT_TAKEOVER: Duration = Duration::from_secs(5);
const DEFAULT_CHECK: Duration = Duration::from_secs(5);

/// Reads `[daemon.ha]`; `postgres`: whether `database_url` is PostgreSQL.
pub(super) fn ha(c: &mut Check<'_>, value: Option<Value>, postgres: bool) -> Option<HaConfig> {
    const KEY: &str = "daemon.ha";
    let raw = c.table::<RawHa>(Some(value?), KEY, "a [daemon.ha] section")?;
    if !postgres {
        c.problem(
            KEY,
            "several daemons can only share a PostgreSQL store",
            "set daemon.database_url = \"postgres://…\" on every daemon, or remove [daemon.ha]",
        );
        return None;
    }
    let host = match c.string(raw.host, "daemon.ha.host") {
        Some(h) => h,
        None => hostname(),
    };
    if host.is_empty() || host.len() > 64 || host.chars().any(|ch| ch.is_control() || ch == '/') {
        c.problem(
            "daemon.ha.host",
            format!("{host:?} is not a usable host name"),
            "use 1 to 64 printable characters without '/', unique among the daemons sharing the store",
        );
    }
    let takeover_within = c.duration(
        raw.takeover_within,
        "daemon.ha.takeover_within",
        DEFAULT_TAKEOVER,
    );
    if takeover_within < Duration::from_secs(1) || takeover_within > Duration::from_secs(300) {
        c.problem(
            "daemon.ha.takeover_within",
            format!("{}s is out of range", takeover_within.as_secs_f64()),
            "use a time from 1s to 5m, e.g. takeover_within = \"5s\"",
        );
    }
    let check_every = c.duration(raw.check_every, "daemon.ha.check_every", DEFAULT_CHECK);
    c.nonzero(check_every, "daemon.ha.check_every", "\"5s\"");
    let address_bound = match raw.address_bound {
        None => BrokerId::ALL
            .iter()
            .copied()
            .filter(|b| crate::brokers::binding::address_bound_by_default(*b))
            .collect(),
        Some(v) => brokers(c, v),
    };
    Some(HaConfig {
        host,
        takeover_within,
        check_every,
        address_bound,
    })
}

fn brokers(c: &mut Check<'_>, value: Value) -> Vec<BrokerId> {
    const KEY: &str = "daemon.ha.address_bound";
    const FIX: &str = "list broker names, e.g. address_bound = [\"kotak_neo\"], or [] for none";
    let Value::Array(items) = value else {
        c.wrong_type(KEY, "a list of broker names", &value, FIX);
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match item.as_str().and_then(BrokerId::parse) {
            Some(b) => out.push(b),
            None => c.problem(KEY, format!("{item} is not a broker brokerd knows"), FIX),
        }
    }
    out
}

/// The machine's hostname, as the kernel has it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
