//! brokerctl: the operator's and scripts' client of the brokerd socket.

use std::process::ExitCode;

use brokerd::cli;
use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("brokerctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("brokerctl: {e}");
            ExitCode::FAILURE
        }
    }
}
