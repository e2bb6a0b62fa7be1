//! The five bundled broker simulators, started together for the demo.

use std::net::SocketAddr;

use anyhow::Context;
use brokerd::config::{CallbackConfig, Config};
use brokerd_sim::angel::{AngelSim, AngelSimConfig};
use brokerd_sim::breeze::{BreezeSim, BreezeSimConfig};
use brokerd_sim::kite::{KiteSim, KiteSimConfig};
use brokerd_sim::kotak::{KotakSim, KotakSimConfig};
use brokerd_sim::xts::{XtsSim, XtsSimConfig};
use tracing::info;

use crate::rewrite::Roots;

/// The running simulators.
pub struct Simulators {
    xts: XtsSim,
    kotak: KotakSim,
    kite: KiteSim,
    breeze: BreezeSim,
    angel: AngelSim,
}

impl Simulators {
    /// Starts all five: Jainam on `listen`, the others on the next ports
    /// (each on any free port when `listen` asks for port 0).
    pub async fn start(listen: SocketAddr) -> anyhow::Result<Self> {
        let xts = XtsSim::start(XtsSimConfig {
            listen,
            ..XtsSimConfig::default()
        })
        .await
        .context("starting the bundled Jainam simulator")?;
        let kotak = KotakSim::start(KotakSimConfig {
            listen: next_port(listen, 1),
            ..KotakSimConfig::default()
        })
        .await
        .context("starting the bundled Kotak Neo simulator")?;
        let kite = KiteSim::start(KiteSimConfig {
            listen: next_port(listen, 2),
            ..KiteSimConfig::default()
        })
        .await
        .context("starting the bundled Kite simulator")?;
        let breeze = BreezeSim::start(BreezeSimConfig {
            listen: next_port(listen, 3),
            ..BreezeSimConfig::default()
        })
        .await
        .context("starting the bundled Breeze simulator")?;
        let angel = AngelSim::start(AngelSimConfig {
            listen: next_port(listen, 4),
            ..AngelSimConfig::default()
        })
        .await
        .context("starting the bundled Angel One simulator")?;
        // The Python client's tests read the addresses from this line.
        info!(jainam = %xts.base_url(), kotak_neo = %kotak.base_url(), zerodha = %kite.base_url(),
              breeze = %breeze.base_url(), angel_one = %angel.base_url(),
              "bundled broker simulators listening");
        Ok(Self {
            xts,
            kotak,
            kite,
            breeze,
            angel,
        })
    }

    /// Where each one listens.
    pub fn roots(&self) -> Roots {
        Roots {
            jainam: self.xts.base_url(),
            kotak_neo: self.kotak.base_url(),
            zerodha: self.kite.base_url(),
            breeze: self.breeze.base_url(),
            angel_one: self.angel.base_url(),
        }
    }

    /// Registers the callback listener as the redirect URL of every
    /// interactive account whose login page is a simulator's, as an
    /// operator does once in the broker's developer console.
    pub fn register_redirects(&self, config: &Config, callback: &CallbackConfig) {
        let roots = self.roots();
        for account in &config.accounts {
            let redirect = callback.redirect_url(account.broker, &account.name);
            if let Some(z) = &account.zerodha
                && z.login_root.starts_with(&roots.zerodha)
            {
                self.kite.set_redirect_url(z.api_key.expose(), &redirect);
            }
            if let Some(b) = &account.breeze
                && b.login_root.starts_with(&roots.breeze)
            {
                self.breeze.set_redirect_url(b.app_key.expose(), &redirect);
            }
        }
    }

    /// Stops all five.
    pub async fn shutdown(&self) {
        self.xts.shutdown().await;
        self.kotak.shutdown().await;
        self.kite.shutdown().await;
        self.breeze.shutdown().await;
        self.angel.shutdown().await;
    }
}

/// The simulators listen on consecutive ports after `listen` (any free
/// port when `listen` asks for port 0).
fn next_port(listen: SocketAddr, n: u16) -> SocketAddr {
    let mut addr = listen;
    if listen.port() != 0 {
        addr.set_port(listen.port().wrapping_add(n));
    }
    addr
}
