//! The demo configuration: `config/demo.toml` against the five simulators,
//! for the idle memory of a small desk.

use std::collections::BTreeMap;
use std::time::Duration;

use brokerd::brokers::BrokerId;
use brokerd_sim::xts::{XtsSim, XtsSimConfig};

use crate::Settings;
use crate::common::memory_kib;
use crate::daemon::{Daemon, Home, wait_states};

/// The daemon on `config/demo.toml` against the five simulators (in this
/// process), `"simulator"` rewritten to their addresses as brokerd-demo
/// does; its memory once Jainam, Kotak Neo and Angel One are active and
/// Zerodha and Breeze wait for a person.
pub async fn demo_memory(settings: &Settings) -> Result<(u64, u64, Duration), String> {
    use brokerd_sim::angel::{AngelSim, AngelSimConfig};
    use brokerd_sim::breeze::{BreezeSim, BreezeSimConfig};
    use brokerd_sim::kite::{KiteSim, KiteSimConfig};
    use brokerd_sim::kotak::{KotakSim, KotakSimConfig};
    fn started<T>(r: std::io::Result<T>) -> Result<T, String> {
        r.map_err(|e| format!("a simulator did not start: {e}"))
    }
    let xts = started(XtsSim::start(XtsSimConfig::default()).await)?;
    let kotak = started(KotakSim::start(KotakSimConfig::default()).await)?;
    let kite = started(KiteSim::start(KiteSimConfig::default()).await)?;
    let breeze = started(BreezeSim::start(BreezeSimConfig::default()).await)?;
    let angel = started(AngelSim::start(AngelSimConfig::default()).await)?;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/demo.toml");
    let text = std::fs::read_to_string(demo).map_err(|e| format!("reading {demo}: {e}"))?;
    let mut table: toml::Table = text.parse().map_err(|e| format!("{demo}: {e}"))?;
    let home = Home::new();
    table.remove("simulator");
    let daemon_section: toml::Table = home
        .daemon_section()
        .parse()
        .expect("the daemon section parses");
    table.insert("daemon".into(), daemon_section["daemon"].clone());
    if let Some(cb) = table
        .get_mut("callback")
        .and_then(toml::Value::as_table_mut)
    {
        cb.insert("listen".into(), "127.0.0.1:0".into());
    }
    let accounts = table
        .get_mut("account")
        .and_then(toml::Value::as_array_mut)
        .ok_or("demo.toml has no [[account]]")?;
    for account in accounts {
        let broker = account
            .get("broker")
            .and_then(toml::Value::as_str)
            .and_then(BrokerId::parse)
            .ok_or("a demo account names no broker")?;
        let urls: Vec<(&str, String)> = match broker {
            BrokerId::Jainam => vec![("root", xts.base_url())],
            BrokerId::KotakNeo => vec![("login_host", kotak.base_url())],
            BrokerId::AngelOne => vec![("api_root", angel.base_url())],
            BrokerId::Zerodha => vec![
                ("api_root", kite.base_url()),
                ("login_root", kite.base_url()),
                // Its ticker websocket is at its root, as brokerd-demo says.
                ("ticker_root", kite.base_url().replacen("http", "ws", 1)),
            ],
            BrokerId::Breeze => vec![
                (
                    "api_root",
                    format!("{}/breezeapi/api/v1", breeze.base_url()),
                ),
                ("login_root", format!("{}/apiuser", breeze.base_url())),
            ],
        };
        let section = account
            .get_mut(broker.as_str())
            .and_then(toml::Value::as_table_mut)
            .ok_or("a demo account has no broker table")?;
        for (key, url) in urls {
            section.insert(key.into(), url.into());
        }
        // A "simulator" this mapping does not know would fail the start.
        if let Some((key, _)) = section
            .iter()
            .find(|(_, v)| v.as_str() == Some("simulator"))
        {
            return Err(format!(
                "demo.toml: {broker}.{key} = \"simulator\" has no simulator here"
            ));
        }
    }
    std::fs::write(home.config(), toml::to_string(&table).expect("toml")).expect("write config");
    let mut daemon = Daemon::spawn(&home, 0, settings.daemon_nofile);
    let settled = |s: &BTreeMap<String, usize>| {
        s.get("active").copied().unwrap_or(0) == 4
            && s.get("auth_required").copied().unwrap_or(0) == 2
    };
    let mut fds = 0;
    let spawned = daemon.spawned;
    // Kotak's TOTP may wait for its next window: up to half a minute.
    let limit = settings.timeout.min(Duration::from_secs(90));
    let waited = wait_states(
        &mut daemon,
        &home.socket(),
        spawned,
        limit,
        &mut fds,
        settled,
    )
    .await;
    let result = match waited {
        Ok(t) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (rss, hwm) = memory_kib(daemon.pid());
            Ok((rss, hwm, t))
        }
        Err(e) => Err(format!(
            "{e}\n{}",
            std::fs::read_to_string(home.log(0)).unwrap_or_default()
        )),
    };
    let _ = daemon.stop(settings.timeout).await;
    drop(daemon);
    xts.shutdown().await;
    kotak.shutdown().await;
    kite.shutdown().await;
    breeze.shutdown().await;
    angel.shutdown().await;
    result
}
