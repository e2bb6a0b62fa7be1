//! The Unix socket server: binding (with stale-socket detection), the
//! accept loop with a connection cap, and per-connection service.

mod conn;
pub mod history;
pub mod metrics;
mod ops;
pub mod peer;
pub mod protocol;
mod rotate;
pub mod socket_dir;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::config::Limits;
use crate::session::{Access, ErrorCode, Registry, RequestError};
pub use metrics::ServerMetrics;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    /// The slots.
    pub registry: Arc<Registry>,
    /// Request metrics.
    pub metrics: ServerMetrics,
    /// Socket limits.
    pub limits: Limits,
    /// The daemon's own uid (always allowed).
    pub daemon_uid: u32,
    /// Daemon-wide allow-list (for `hello`, `status`, `metrics`, `reload`).
    pub daemon_access: Access,
    /// Where `reload` requests go (to the daemon's reloader).
    pub reload: Option<tokio::sync::mpsc::Sender<crate::reload::ReloadRequest>>,
    /// The callback listener's settings, to tell operators which redirect
    /// URL to register.
    pub callback: Option<crate::config::CallbackConfig>,
    /// Rotates the storage key (`rotate_key`).
    pub key_rotation: Arc<crate::store::rotation::KeyRotator>,
}

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live daemon answers on the path.
    #[error(
        "another brokerd (pid {pid}) is serving {path}; stop it first (systemctl stop brokerd) or use another socket path"
    )]
    InUse {
        /// The path.
        path: String,
        /// Its pid, or "unknown".
        pid: String,
    },
    /// The socket's folder could not be created for the socket's group.
    #[error(
        "cannot create the socket folder {dir} (mode 0750, group of daemon.socket_group): {source}; \
         the daemon's user must be a member of that group, or create the folder beforehand \
         (systemd: RuntimeDirectory=brokerd with Group= set to the socket group; by hand: \
         mkdir DIR && chgrp GROUP DIR && chmod 0750 DIR)"
    )]
    Folder {
        /// The folder.
        dir: String,
        /// The error.
        source: std::io::Error,
    },
    /// Filesystem trouble.
    #[error("cannot create the socket {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Binds the socket at `path`: creates its folder when missing (0750, in
/// the socket's group `gid`, see [`socket_dir::create`]), replaces a stale
/// socket file, refuses when a live daemon answers, sets the socket's mode
/// and group.
pub async fn bind(path: &Path, mode: u32, gid: Option<u32>) -> Result<UnixListener, BindError> {
    let shown = path.display().to_string();
    let io = |source| BindError::Io {
        path: shown.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        socket_dir::create(dir, gid).map_err(|source| BindError::Folder {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    if path.exists() {
        match UnixStream::connect(path).await {
            Ok(stream) => {
                let pid = stream
                    .peer_cred()
                    .ok()
                    .and_then(|c| c.pid())
                    .map_or("unknown".into(), |p| p.to_string());
                return Err(BindError::InUse { path: shown, pid });
            }
            // Nobody listens: a socket left behind by a killed daemon.
            Err(_) => std::fs::remove_file(path).map_err(io)?,
        }
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
    }
    Ok(listener)
}

/// Accepts connections until `cancel`; each runs on `tracker`.
pub async fn run(
    listener: UnixListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    // Semaphore: a connection holds a permit for its whole life; at the cap
    // new ones get a clear error instead of queueing unseen.
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE: wait a little instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let cancel = cancel.clone();
                tracker.spawn(async move {
                    shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
                    conn::serve(stream, &shared, cancel).await;
                    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Err(_) => {
                shared
                    .metrics
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracker.spawn(async move {
                    let err = RequestError::new(
                        ErrorCode::Unavailable,
                        "too many connections; retry shortly",
                    )
                    .retry_after(std::time::Duration::from_secs(1));
                    let mut stream = stream;
                    let line = protocol::error_reply(None, &err) + "\n";
                    let _ = stream.write_all(line.as_bytes()).await;
                });
            }
        }
    }
}
