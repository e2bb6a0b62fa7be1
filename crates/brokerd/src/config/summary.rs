//! What a configuration holds, in lines an operator reads: every account by
//! name when there are few, and counts by broker and sessions when there
//! are many (a desk with a thousand accounts gets one line, not a thousand
//! names); warnings likewise, one line per distinct message when many
//! accounts repeat it.

use super::AccountConfig;
use crate::brokers::{Api, BrokerId};

/// Up to this many accounts, `check-config` names each one and prints each
/// warning on its own line; above it, it counts.
pub const NAMES_UP_TO: usize = 20;

/// How many keys a grouped warning names before it counts the rest.
const KEYS_NAMED: usize = 3;

/// One broker's accounts in [`accounts_line`].
struct BrokerCount {
    broker: BrokerId,
    accounts: usize,
    /// Each set of sessions (`interactive+market`) and its accounts.
    sets: Vec<(String, usize)>,
}

/// `1 account (jainam/main)`, `2 accounts (jainam/main, kotak_neo/main)`;
/// above [`NAMES_UP_TO`] accounts, counts instead of names:
/// `1000 accounts, 2000 sessions: jainam 1000 (interactive+market)`, or
/// with several brokers and session sets
/// `30 accounts, 52 sessions: jainam 25 (22 interactive+market, 3 interactive), kotak_neo 5 (interactive)`.
pub fn accounts_line(accounts: &[AccountConfig]) -> String {
    let n = accounts.len();
    let plural = if n == 1 { "" } else { "s" };
    if n <= NAMES_UP_TO {
        let names: Vec<String> = accounts
            .iter()
            .map(|a| format!("{}/{}", a.broker, a.name))
            .collect();
        return format!("{n} account{plural} ({})", names.join(", "));
    }
    // Brokers in the order the file first names them; per broker, each set
    // of sessions with its count, in the order first seen.
    let mut brokers: Vec<BrokerCount> = Vec::new();
    let mut sessions = 0;
    for account in accounts {
        let apis = account.sessions();
        sessions += apis.len();
        let set = apis
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let at = match brokers.iter().position(|b| b.broker == account.broker) {
            Some(at) => at,
            None => {
                brokers.push(BrokerCount {
                    broker: account.broker,
                    accounts: 0,
                    sets: Vec::new(),
                });
                brokers.len() - 1
            }
        };
        let counted = &mut brokers[at];
        counted.accounts += 1;
        match counted.sets.iter_mut().find(|(s, _)| *s == set) {
            Some((_, c)) => *c += 1,
            None => counted.sets.push((set, 1)),
        }
    }
    let parts: Vec<String> = brokers
        .iter()
        .map(|b| {
            let sets = match b.sets.as_slice() {
                [(only, _)] => only.clone(),
                several => several
                    .iter()
                    .map(|(set, c)| format!("{c} {set}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            format!("{} {} ({sets})", b.broker, b.accounts)
        })
        .collect();
    format!(
        "{n} accounts, {sessions} session{}: {}",
        if sessions == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The lines of `warnings` (each `"{key}: {message}"`) for a configuration
/// of `accounts` accounts: as they are up to [`NAMES_UP_TO`] accounts;
/// above it, the warnings that share a message become one line, the
/// message followed by the first keys and how many more, in the order the
/// message first appears.
pub fn warning_lines(warnings: &[String], accounts: usize) -> Vec<String> {
    if accounts <= NAMES_UP_TO {
        return warnings.to_vec();
    }
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for w in warnings {
        let (key, message) = w.split_once(": ").unwrap_or(("", w.as_str()));
        match groups.iter_mut().find(|(m, _)| *m == message) {
            Some((_, keys)) => keys.push(key),
            None => groups.push((message, vec![key])),
        }
    }
    groups
        .into_iter()
        .map(|(message, keys)| match keys.as_slice() {
            [key] => format!("{key}: {message}"),
            keys => {
                let named = keys[..keys.len().min(KEYS_NAMED)].join(", ");
                let more = keys.len().saturating_sub(KEYS_NAMED);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{named}{more} ({} keys): {message}", keys.len())
            }
        })
        .collect()
}

impl AccountConfig {
    /// The sessions the daemon keeps for this account, one per api: a
    /// Jainam account's configured key pairs, one for every other broker.
    pub fn sessions(&self) -> Vec<Api> {
        match self.broker {
            BrokerId::Jainam => self.jainam.as_ref().map_or_else(Vec::new, |j| {
                [
                    (Api::Interactive, j.interactive.is_some()),
                    (Api::Market, j.market.is_some()),
                ]
                .into_iter()
                .filter_map(|(api, present)| present.then_some(api))
                .collect()
            }),
            BrokerId::KotakNeo | BrokerId::Zerodha | BrokerId::Breeze | BrokerId::AngelOne => {
                vec![Api::Interactive]
            }
        }
    }
}
