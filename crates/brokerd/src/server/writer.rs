//! The write side of a connection: every line is written and flushed
//! within a deadline, or the connection is given up.
//!
//! Without one, a client that sends requests but never reads the replies
//! parks its connection task in a write forever once the socket buffers are
//! full: the idle timer only runs while waiting for a request, so the
//! connection would hold its slot until the daemon stops, and then hold up
//! the stop for the whole `shutdown_grace`.
//!
//! The deadline is tokio time, not the daemon's injected clock: a write
//! stalls in real time (see `conn.rs`).

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::drain::Drain;

/// Why a line could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The client went away (or the socket failed).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client did not take the line in within the deadline.
    #[error("the client did not read within the write deadline")]
    Stalled,
}

/// A buffered write half whose every line has a deadline.
pub struct LineWriter<W> {
    out: BufWriter<W>,
    timeout: Duration,
    /// A write failed: part of a line may be stuck in the buffer, and
    /// flushing it on close would wait on the same client again.
    failed: bool,
}

impl<W: AsyncWrite + Unpin> LineWriter<W> {
    /// Each line gets `timeout` (`daemon.limits.write_timeout`).
    pub fn new(write: W, timeout: Duration) -> Self {
        Self {
            out: BufWriter::new(write),
            timeout,
            failed: false,
        }
    }

    /// Writes `line` and a newline, and flushes, within the write timeout,
    /// and never past the end of `drain`. If shutdown begins during the
    /// write, the drain begins and the deadline shrinks to its end.
    ///
    /// After an error the connection must be closed: part of the line may
    /// have been sent.
    pub async fn line(
        &mut self,
        line: &str,
        drain: &mut Drain,
        cancel: &CancellationToken,
    ) -> Result<(), WriteError> {
        let mut deadline = Instant::now() + self.timeout;
        if let Some(until) = drain.until() {
            deadline = deadline.min(until);
        }
        let out = &mut self.out;
        let write = async move {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
            out.flush().await
        };
        tokio::pin!(write);
        // Made here but polled (and so registered with the timer driver)
        // only when the write does not finish at once: with `biased`, a
        // client that reads costs no timer at all.
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        let result = loop {
            tokio::select! {
                biased;
                done = &mut write => break done.map_err(WriteError::Io),
                () = &mut timer => break Err(WriteError::Stalled),
                () = cancel.cancelled(), if !drain.active() => {
                    drain.begin(Instant::now());
                    if let Some(until) = drain.until().filter(|u| *u < timer.deadline()) {
                        timer.as_mut().reset(until);
                    }
                }
            }
        };
        self.failed |= result.is_err();
        result
    }

    /// Shuts the write side down (every line was flushed already, so this
    /// does not wait on the client); after a failed write, just drops it.
    pub async fn close(mut self) {
        if !self.failed {
            let _ = tokio::time::timeout(self.timeout, self.out.shutdown()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, small numbers: tokio's paused clock needs its test-util
    // feature, which the crate does not build with.
    #[tokio::test]
    async fn a_reader_gets_its_line_and_a_stalled_one_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut w = LineWriter::new(server, Duration::from_millis(100));
        let (mut drain, cancel) = (Drain::default(), CancellationToken::new());
        w.line("hello", &mut drain, &cancel).await.unwrap();
        // 64 bytes of buffer and nobody reading: the next long line stalls.
        let started = Instant::now();
        let long = "x".repeat(1000);
        let err = w.line(&long, &mut drain, &cancel).await.unwrap_err();
        assert!(matches!(err, WriteError::Stalled), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(client);
    }

    #[tokio::test]
    async fn shutdown_shortens_a_stalled_write_to_the_drain() {
        let (_client, server) = tokio::io::duplex(64);
        let mut w = LineWriter::new(server, Duration::from_secs(5));
        let (mut drain, cancel) = (Drain::default(), CancellationToken::new());
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let started = Instant::now();
        let err = w
            .line(&"x".repeat(1000), &mut drain, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, WriteError::Stalled), "{err}");
        assert!(drain.active());
        let waited = started.elapsed();
        let expected = Duration::from_millis(100) + super::super::drain::DRAIN_GRACE;
        assert!(
            waited >= expected && waited < Duration::from_secs(3),
            "{waited:?}, not the 5 s write timeout"
        );
    }
}
