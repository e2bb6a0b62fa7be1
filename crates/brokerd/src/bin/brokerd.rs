//! brokerd: the daemon. `brokerd --config F` runs it; `brokerd check-config
//! --config F` validates a config and reports every problem.

use std::process::ExitCode;

use brokerd::cli::{DaemonArgs, DaemonCommand};
use brokerd::harden::KEY_VAR;
use brokerd::secret::{Secret, SecretRef};
use clap::Parser;

fn main() -> ExitCode {
    // First, before any secret is read: no core dumps, not dumpable. The
    // problems, if any, are logged once logging is set up.
    let hardening = brokerd::harden::process();
    let args = DaemonArgs::parse();
    if let Some(DaemonCommand::CheckConfig) = args.command {
        let (ok, report) = brokerd::config::check_config_report(&args.config);
        println!("{report}");
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let loaded = match brokerd::config::Config::load(&args.config) {
        Ok(l) => l,
        Err(errors) => {
            eprint!(
                "brokerd: {}",
                brokerd::config::problems_report(&args.config, &errors)
            );
            return ExitCode::FAILURE;
        }
    };
    brokerd::logging::init(loaded.config.daemon.log_format);
    for problem in hardening {
        tracing::warn!("{problem}");
    }
    let env_key = take_env_key(&loaded);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("brokerd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(brokerd::daemon::run(loaded, env_key)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<brokerd::config::ConfigErrors>() {
                // The start's preflight: printed as `check-config` prints it.
                Some(errors) => eprint!(
                    "brokerd: {}",
                    brokerd::config::problems_report(&args.config, errors)
                ),
                None => tracing::error!("{e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Reads `BROKERD_KEY` and removes it from the process environment, so no
/// later reader in this process (a library, a child process) sees it. The
/// kernel's copy in `/proc/<pid>/environ` stays (see `harden::env_key_warning`).
///
/// Kept when the config names it as `key = "env:BROKERD_KEY"`: every reload
/// checks that reference again and would fail without it.
fn take_env_key(loaded: &brokerd::config::Loaded) -> Option<Secret> {
    let value = std::env::var(KEY_VAR).ok()?;
    let named = matches!(&loaded.config.daemon.key, Some(SecretRef::Env(name)) if name == KEY_VAR);
    if !named {
        if single_threaded() {
            // SAFETY: `remove_var` is unsound only while another thread may
            // read or write the environment. This runs before the runtime is
            // built, and nothing earlier (argument parsing, config loading,
            // the log subscriber) starts a thread; `single_threaded` checks
            // that rather than trusting it.
            unsafe { std::env::remove_var(KEY_VAR) };
        } else {
            tracing::warn!(
                "{KEY_VAR} stays in the environment: another thread was already running"
            );
        }
    }
    Some(Secret::new(value))
}

/// Whether this process has exactly one thread (Linux: `/proc/self/task`).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}
