//! brokerd-demo: brokerd with the bundled broker simulators, for the demo
//! and for tests that run the daemon as a program (the Python client's).
//!
//! Reads brokerd's config format plus a `[simulator]` section; a broker URL
//! key set to `"simulator"` means the bundled simulator. brokerd itself
//! refuses both: the production binary contains no simulator.

#![forbid(unsafe_code)]

mod rewrite;
mod sims;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brokerd::config::{Config, Loaded, Loader};
use brokerd::secret::{Secret, SecretEnv};
use clap::Parser;

use crate::rewrite::Roots;
use crate::sims::Simulators;

/// Command line of brokerd-demo.
#[derive(Debug, Parser)]
#[command(
    name = "brokerd-demo",
    version,
    about = "Runs brokerd against its bundled broker simulators (no broker account needed)"
)]
struct Args {
    /// Configuration file: brokerd's format, plus `[simulator]`.
    #[arg(long, env = "BROKERD_CONFIG", default_value = "config/demo.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Read once with addresses nothing listens on: the config is checked
    // (and logging set up) before any simulator starts.
    let listen = match std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))
        .and_then(|text| rewrite::listen(&text).map_err(|p| p.to_string()))
    {
        Ok(listen) => listen,
        Err(e) => {
            eprintln!("brokerd-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checked = match loader(Roots::nowhere()).load(&args.config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!(
                "brokerd-demo: {}",
                brokerd::config::problems_report(&args.config, &errors)
            );
            return ExitCode::FAILURE;
        }
    };
    brokerd::logging::init(checked.config.daemon.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("brokerd-demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args.config, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: &Path, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let sims = match listen {
        Some(listen) => Some(Simulators::start(listen).await?),
        None => None,
    };
    let roots = sims.as_ref().map_or_else(Roots::nowhere, Simulators::roots);
    let loader = loader(roots);
    let loaded = loader.load(path).map_err(anyhow::Error::new)?;
    let config = loaded.config.clone();
    let env_key = std::env::var(brokerd::harden::KEY_VAR)
        .ok()
        .map(Secret::new);
    let result = brokerd::daemon::run_with(loaded, env_key, loader, |running| {
        if let (Some(sims), Some(callback), Some(url)) =
            (&sims, &config.callback, &running.callback_url)
        {
            let mut callback = callback.clone();
            // The address actually bound (port 0 in tests).
            callback.public_url = url.clone();
            sims.register_redirects(&config, &callback);
        }
    })
    .await;
    if let Some(sims) = &sims {
        sims.shutdown().await;
    }
    result
}

/// brokerd's loader with the demo's rewrite in front. Warnings about the
/// simulators' own plain-http addresses are dropped: on loopback they are
/// the point, and the demo would otherwise open with a wall of them.
fn loader(roots: Roots) -> Loader {
    Loader::new(
        move |path: &Path| -> Result<Loaded, brokerd::config::ConfigErrors> {
            let mut loaded = Config::load_rewritten(path, &SecretEnv::process(), &|text| {
                rewrite::rewrite(text, &roots)
            })?;
            let own = [
                &roots.jainam,
                &roots.kotak_neo,
                &roots.zerodha,
                &roots.breeze,
            ];
            loaded.warnings.retain(|w| {
                !(w.contains("plain http") && own.iter().any(|r| w.contains(r.as_str())))
            });
            Ok(loaded)
        },
    )
}
