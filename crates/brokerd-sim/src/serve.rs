//! Running a simulator's HTTP server: spawned with graceful shutdown, and
//! stopped on request or when the last handle to the simulator is dropped.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running simulator server. Shared by every clone of a simulator handle.
pub(crate) struct Running {
    // watch: dropping the sender (last handle gone) also stops the server.
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
    /// Serves `app` on `listener` in a task of its own.
    pub(crate) fn spawn(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        name: &'static str,
    ) -> Arc<Self> {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                // Err means every handle is gone: stop as well.
                let _ = stopped.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, sim = name, "simulator server failed");
            }
        });
        Arc::new(Self {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops accepting, gives answers in progress a second, then aborts.
    pub(crate) async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// Waits `d` on `clock` (the sim's): a test's manual clock moves through a
/// simulated latency instead of waiting for it in real time.
pub(crate) async fn pause(clock: &brokerd_core::time::SharedClock, d: Duration) {
    if d.is_zero() {
        return;
    }
    let until = clock.now() + d;
    brokerd_core::time::sleep_until(&**clock, until, tokio::time::sleep).await;
}
