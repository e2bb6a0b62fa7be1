//! `[daemon.pacing.<broker>]`: how fast the daemon may call one broker
//! host's login and validation endpoints (`concurrency`, `per_second`). A
//! broker left out keeps its default (`brokers::pace`).

use std::collections::HashMap;

use serde::Deserialize;
use toml::Value;

use super::check::Check;
use crate::brokers::BrokerId;
use crate::brokers::pace::Pace;

/// One `[daemon.pacing.<broker>]` table.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPace {
    concurrency: Option<Value>,
    per_second: Option<Value>,
}

/// Reads `[daemon.pacing]`: only the brokers it names.
pub(super) fn pacing(c: &mut Check<'_>, value: Option<Value>) -> HashMap<BrokerId, Pace> {
    let mut out = HashMap::new();
    let table = match value {
        None => return out,
        Some(Value::Table(t)) => t,
        Some(other) => {
            c.wrong_type(
                "daemon.pacing",
                "a table",
                &other,
                "write one [daemon.pacing.<broker>] section per broker, e.g. [daemon.pacing.jainam]",
            );
            return out;
        }
    };
    for (name, value) in table {
        let key = format!("daemon.pacing.{name}");
        let Some(broker) = BrokerId::parse(&name) else {
            c.problem(
                &key,
                format!("{name:?} is not a broker brokerd knows"),
                "use jainam, kotak_neo, zerodha, breeze or angel_one",
            );
            continue;
        };
        let Some(raw) = c.table::<RawPace>(Some(value), &key, &format!("a [{key}] section")) else {
            continue;
        };
        let default = Pace::default_for(broker);
        let concurrency = c.uint(
            raw.concurrency,
            &format!("{key}.concurrency"),
            default.concurrency as u64,
            1..=1024,
        ) as usize;
        let per_second = rate(c, raw.per_second, &format!("{key}.per_second"), default);
        out.insert(broker, Pace::new(concurrency, per_second));
    }
    out
}

/// Calls per second: a number (whole or not) from 0.01 to 1000.
fn rate(c: &mut Check<'_>, value: Option<Value>, key: &str, default: Pace) -> f64 {
    const FIX: &str = "use a number of calls per second from 0.01 to 1000, e.g. per_second = 2.5";
    let n = match value {
        None => return default.per_second,
        Some(Value::Integer(n)) => n as f64,
        Some(Value::Float(f)) => f,
        Some(other) => {
            c.wrong_type(key, "a number", &other, FIX);
            return default.per_second;
        }
    };
    let pace = Pace::new(1, n);
    if pace.problem().is_some() {
        c.problem(key, format!("{n} is out of range"), FIX);
        return default.per_second;
    }
    n
}
