//! Log output: JSON lines under systemd or when asked, human text on a
//! terminal, each line with its syslog priority when stderr is the journal.
//! Tokens are never logged, only their fingerprints.

pub mod journal;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global subscriber (level from `RUST_LOG`, default info).
pub fn init(format: LogFormat) {
    let journal = journal::stderr_is_journal();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        // systemd sets JOURNAL_STREAM for services whose stderr goes to the journal.
        LogFormat::Auto => journal,
    };
    if journal {
        install(json, false, journal::PrioritizedStderr);
    } else {
        install(json, std::io::stderr().is_terminal(), std::io::stderr);
    }
}

/// `ansi`: colours in human text, only on a terminal: the journal and log
/// files store the escape codes as they are.
fn install<W>(json: bool, ansi: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}
