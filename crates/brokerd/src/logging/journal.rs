//! Syslog priority prefixes for lines that go to the journal through stderr.
//!
//! Under systemd, stderr is a stream into journald, which gives every line
//! the unit's default priority (info) unless the line starts with a `<N>`
//! prefix (sd-daemon(3), `SyslogLevelPrefix=`, on by default). Without the
//! prefix, `journalctl -p warning -u brokerd` finds nothing. The prefix is
//! stripped by journald, so `-o cat` still shows the JSON line unchanged and
//! its fields stay where log shippers expect them.
//!
//! Why a prefix rather than the native journal protocol (`tracing-journald`):
//! the native protocol turns the JSON fields into journal fields, which
//! changes what `journalctl -o cat | jq` and every shipper already parse.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Whether stderr is the journal stream systemd announced: `JOURNAL_STREAM`
/// holds `DEVICE:INODE` of the stream it connected to stderr, and the
/// variable is inherited by children whose stderr may be redirected
/// elsewhere (systemd.exec(5) says to compare both numbers).
pub fn stderr_is_journal() -> bool {
    let Some(announced) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = announced.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(stderr) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(stderr).metadata() else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// The syslog priority of a tracing level: error 3, warning 4, info 6,
/// debug and trace 7 (there is no lower syslog priority than debug).
pub fn priority(level: &Level) -> u8 {
    // `Level` is a struct with associated constants, not an enum: no
    // exhaustive match is possible, and anything below DEBUG is TRACE.
    if *level == Level::ERROR {
        3
    } else if *level == Level::WARN {
        4
    } else if *level == Level::INFO {
        6
    } else {
        7
    }
}

/// A [`MakeWriter`] for stderr that starts every line with the `<N>`
/// priority of the event being written.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrioritizedStderr;

impl<'a> MakeWriter<'a> for PrioritizedStderr {
    type Writer = Prefixed<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        // Lines written without an event's metadata: none from the fmt
        // layer, but info is journald's own default for them anyway.
        Prefixed::new(io::stderr(), 6)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Prefixed::new(io::stderr(), priority(meta.level()))
    }
}

/// Writes to `inner`, starting every line with `<priority>`.
#[derive(Debug)]
pub struct Prefixed<W> {
    inner: W,
    prefix: String,
    at_line_start: bool,
}

impl<W: Write> Prefixed<W> {
    /// A writer whose lines all get `<priority>`.
    pub fn new(inner: W, priority: u8) -> Self {
        Self {
            inner,
            prefix: format!("<{priority}>"),
            at_line_start: true,
        }
    }
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One `write_all` per call: the fmt layer hands over a whole event
        // at once, and a line reaching the journal in pieces from several
        // threads would mix priorities. A multi-line event (human format,
        // a message with newlines) gets the prefix on every line.
        let mut out = Vec::with_capacity(buf.len() + self.prefix.len());
        for piece in buf.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                out.extend_from_slice(self.prefix.as_bytes());
            }
            out.extend_from_slice(piece);
            self.at_line_start = piece.ends_with(b"\n");
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(priority: u8, writes: &[&str]) -> String {
        let mut w = Prefixed::new(Vec::new(), priority);
        for part in writes {
            w.write_all(part.as_bytes()).unwrap();
        }
        String::from_utf8(w.inner).unwrap()
    }

    #[test]
    fn every_line_starts_with_the_priority() {
        assert_eq!(written(4, &["{\"a\":1}\n"]), "<4>{\"a\":1}\n");
        assert_eq!(written(3, &["one\ntwo\n"]), "<3>one\n<3>two\n");
        // A line written in two calls is prefixed once.
        assert_eq!(
            written(6, &["par", "tial\n", "next\n"]),
            "<6>partial\n<6>next\n"
        );
        assert_eq!(written(7, &[""]), "");
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
