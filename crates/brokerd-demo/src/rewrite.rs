//! The demo's config: brokerd's own format plus a `[simulator]` section,
//! and the value `"simulator"` for a broker URL key, meaning "the bundled
//! simulator". Both are rewritten away before brokerd reads the text, so
//! the daemon's config reader knows nothing about simulators.

use std::net::SocketAddr;

use brokerd::config::{ConfigProblem, FILE_KEY};
use brokerd_core::BrokerId;
use toml::{Table, Value};

/// The value of a broker URL key that means "the bundled simulator".
pub const SIMULATOR: &str = "simulator";

/// Where `[simulator]` listens when it gives no `listen` (any free port).
const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Where each bundled simulator listens.
#[derive(Clone, Debug)]
pub struct Roots {
    /// The Jainam (XTS) simulator.
    pub jainam: String,
    /// The Kotak Neo simulator (login host and base URL).
    pub kotak_neo: String,
    /// The Kite simulator (API root and login root).
    pub zerodha: String,
    /// The Breeze simulator (API under `/breezeapi/api/v1`, login page
    /// under `/apiuser`).
    pub breeze: String,
    /// The Angel One SmartAPI simulator (REST root).
    pub angel_one: String,
}

impl Roots {
    /// An address nothing listens on: a config checked before the
    /// simulators start still reads as valid.
    pub fn nowhere() -> Self {
        let nowhere = "http://127.0.0.1:9".to_string();
        Self {
            jainam: nowhere.clone(),
            kotak_neo: nowhere.clone(),
            zerodha: nowhere.clone(),
            breeze: nowhere.clone(),
            angel_one: nowhere,
        }
    }

    /// The URL keys of `broker`'s account table and what `"simulator"`
    /// stands for in each. Exhaustive: a new broker needs its simulator here.
    fn keys(&self, broker: BrokerId) -> Vec<(&'static str, String)> {
        match broker {
            BrokerId::Jainam => vec![("root", self.jainam.clone())],
            BrokerId::KotakNeo => vec![("login_host", self.kotak_neo.clone())],
            BrokerId::Zerodha => vec![
                ("api_root", self.zerodha.clone()),
                ("login_root", self.zerodha.clone()),
                // The Kite simulator's ticker websocket is at its root.
                ("ticker_root", self.zerodha.replacen("http", "ws", 1)),
            ],
            BrokerId::Breeze => vec![
                ("api_root", format!("{}/breezeapi/api/v1", self.breeze)),
                ("login_root", format!("{}/apiuser", self.breeze)),
            ],
            BrokerId::AngelOne => vec![("api_root", self.angel_one.clone())],
        }
    }
}

/// Where `[simulator]` asks the simulators to listen; `None` without the
/// section (the demo then runs the daemon alone).
pub fn listen(text: &str) -> Result<Option<SocketAddr>, ConfigProblem> {
    let table = parse(text)?;
    let Some(section) = table.get("simulator") else {
        return Ok(None);
    };
    let Some(section) = section.as_table() else {
        return Err(problem("simulator", "is not a table", "write [simulator]"));
    };
    if let Some(other) = section.keys().find(|k| *k != "listen") {
        return Err(problem(
            &format!("simulator.{other}"),
            "is not a [simulator] key",
            "the only key is listen = \"127.0.0.1:0\"",
        ));
    }
    let text = match section.get("listen") {
        None => DEFAULT_LISTEN,
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(problem(
                "simulator.listen",
                "is not a string",
                "write listen = \"127.0.0.1:0\"",
            ));
        }
    };
    text.parse().map(Some).map_err(|_| {
        problem(
            "simulator.listen",
            &format!("{text:?} is not an IP address and port"),
            "write an IP:port such as \"127.0.0.1:0\" (port 0 picks a free port)",
        )
    })
}

/// The text brokerd reads: `[simulator]` removed, every `"simulator"` URL
/// replaced by the simulator's address from `roots`.
pub fn rewrite(text: &str, roots: &Roots) -> Result<String, ConfigProblem> {
    let mut table = parse(text)?;
    table.remove("simulator");
    if let Some(Value::Array(accounts)) = table.get_mut("account") {
        for account in accounts.iter_mut().filter_map(Value::as_table_mut) {
            point_at_simulator(account, roots);
        }
    }
    toml::to_string(&table).map_err(|e| {
        problem(
            FILE_KEY,
            &format!("cannot write the rewritten config: {e}"),
            "report this as a bug",
        )
    })
}

fn point_at_simulator(account: &mut Table, roots: &Roots) {
    // An unknown broker is left for brokerd to refuse, with its own words.
    let Some(broker) = account
        .get("broker")
        .and_then(Value::as_str)
        .and_then(BrokerId::parse)
    else {
        return;
    };
    let Some(Value::Table(settings)) = account.get_mut(broker.as_str()) else {
        return;
    };
    for (key, url) in roots.keys(broker) {
        if settings.get(key).and_then(Value::as_str) == Some(SIMULATOR) {
            settings.insert(key.to_string(), Value::String(url));
        }
    }
}

fn parse(text: &str) -> Result<Table, ConfigProblem> {
    // A syntax error is left for brokerd to report, with line and column.
    Ok(text.parse::<Table>().unwrap_or_default())
}

fn problem(key: &str, message: &str, fix: &str) -> ConfigProblem {
    ConfigProblem::new(key, message, fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[simulator]
listen = "127.0.0.1:0"

[[account]]
broker = "breeze"
name = "demo"

[account.breeze]
api_root = "simulator"
login_root = "https://api.icicidirect.com/apiuser"

[[account]]
broker = "jainam"
name = "demo"

[account.jainam]
root = "simulator"

[[account]]
broker = "zerodha"
name = "demo"

[account.zerodha]
api_root = "simulator"
ticker_root = "simulator"
"#;

    fn roots() -> Roots {
        Roots {
            jainam: "http://127.0.0.1:1001".into(),
            kotak_neo: "http://127.0.0.1:1002".into(),
            zerodha: "http://127.0.0.1:1003".into(),
            breeze: "http://127.0.0.1:1004".into(),
            angel_one: "http://127.0.0.1:1005".into(),
        }
    }

    #[test]
    fn simulator_values_become_the_simulators_addresses() {
        let out: Table = rewrite(TEXT, &roots()).unwrap().parse().unwrap();
        assert!(out.get("simulator").is_none(), "{out}");
        let accounts = out["account"].as_array().unwrap();
        assert_eq!(
            accounts[0]["breeze"]["api_root"].as_str(),
            Some("http://127.0.0.1:1004/breezeapi/api/v1")
        );
        // A real URL is left alone.
        assert_eq!(
            accounts[0]["breeze"]["login_root"].as_str(),
            Some("https://api.icicidirect.com/apiuser")
        );
        assert_eq!(
            accounts[1]["jainam"]["root"].as_str(),
            Some("http://127.0.0.1:1001")
        );
        // The Kite simulator's ticker is a websocket at its root.
        assert_eq!(
            accounts[2]["zerodha"]["ticker_root"].as_str(),
            Some("ws://127.0.0.1:1003")
        );
    }

    #[test]
    fn listen_is_read_and_checked() {
        assert_eq!(listen(TEXT).unwrap(), Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(listen("[daemon]\n").unwrap(), None);
        let bad = listen("[simulator]\nlisten = \"localhost:80\"\n").unwrap_err();
        assert_eq!(bad.key, "simulator.listen");
        let unknown = listen("[simulator]\nport = 1\n").unwrap_err();
        assert_eq!(unknown.key, "simulator.port");
    }
}
