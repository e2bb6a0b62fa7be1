//! brokerd: the daemon. `brokerd --config F` runs it; `brokerd check-config
//! --config F` validates a config and reports every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Keeps broker API sessions valid and serves them over a Unix socket"
)]
struct Args {
    /// Configuration file.
    #[arg(long, global = true, env = "BROKERD_CONFIG", default_value = brokerd::client::DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and list every problem with its fix.
    CheckConfig,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::CheckConfig) = args.command {
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
            eprintln!("brokerd: {} has problems:\n{errors}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    brokerd::logging::init(loaded.config.daemon.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("brokerd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(brokerd::daemon::run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
