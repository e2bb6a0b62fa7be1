//! brokerd's command line. It lives in the library, beside brokerctl's, so
//! that the man pages and shell completions of both binaries come from the
//! definitions the binaries parse (`tests/it/cli_assets.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Command line of brokerd.
#[derive(Debug, Parser)]
#[command(
    name = "brokerd",
    version,
    about = "Keeps broker API sessions valid and serves them over a Unix socket"
)]
pub struct DaemonArgs {
    /// Configuration file.
    #[arg(long, global = true, env = "BROKERD_CONFIG", default_value = crate::client::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Without a subcommand, run the daemon.
    #[command(subcommand)]
    pub command: Option<DaemonCommand>,
}

/// brokerd subcommands.
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Validate the configuration and list every problem with its fix.
    CheckConfig,
}
