//! Live reload (SIGHUP or the `reload` op): the config file is read and
//! validated again; an invalid file is refused with its reasons and the
//! running configuration stays. A valid one is applied slot by slot (see
//! `Registry::reload`); `[daemon]` settings apply only after a restart.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::{CallbackConfig, Config, DaemonConfig, HttpConfig};
use crate::session::{Registry, ReloadReport};

/// A reload asked for over the socket: whether to forget the stored
/// sessions of removed accounts, and where to send the outcome.
pub type ReloadRequest = (bool, oneshot::Sender<Result<ReloadOutcome, String>>);

/// What a reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Per-session changes.
    pub report: ReloadReport,
    /// Settings that changed but apply only after a restart.
    pub needs_restart: Vec<String>,
}

/// Re-reads the config file and applies it. One reload at a time.
#[derive(Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    loader: crate::config::Loader,
    registry: Arc<Registry>,
    // tokio Mutex: held across the whole reload, so two reloads never
    // interleave. Holds the settings the process runs with, which only a
    // restart changes.
    daemon: tokio::sync::Mutex<Fixed>,
}

/// The sections a reload cannot change: `[daemon]`, `[callback]`, `[http]`.
#[derive(Debug)]
struct Fixed {
    daemon: DaemonConfig,
    callback: Option<CallbackConfig>,
    http: Option<HttpConfig>,
}

impl Reloader {
    /// A reloader for the config at `path` (None: loaded from text, e.g.
    /// tests), read with `loader`. `running` is the configuration the
    /// process started with.
    pub fn new(
        path: Option<PathBuf>,
        loader: crate::config::Loader,
        registry: Arc<Registry>,
        running: &Config,
    ) -> Self {
        Self {
            path,
            loader,
            registry,
            daemon: tokio::sync::Mutex::new(Fixed {
                daemon: running.daemon.clone(),
                callback: running.callback.clone(),
                http: running.http.clone(),
            }),
        }
    }

    /// Reads the config file again and applies it.
    pub async fn reload(&self, forget_removed: bool) -> Result<ReloadOutcome, String> {
        let Some(path) = &self.path else {
            return Err("this daemon was not started from a config file".into());
        };
        crate::systemd::reloading();
        let result = match self.loader.load(path) {
            Ok(loaded) => {
                let accounts = loaded.config.accounts.len();
                for w in crate::config::warning_lines(&loaded.warnings, accounts) {
                    warn!("config: {w}");
                }
                Ok(self.apply(&loaded.config, forget_removed).await)
            }
            Err(problems) => {
                error!(config = %path.display(), "reload refused; the running configuration stays:\n{problems}");
                Err(format!(
                    "{} has problems; the running configuration stays:\n{problems}",
                    path.display()
                ))
            }
        };
        crate::systemd::ready(&crate::systemd::summary(&self.registry));
        result
    }

    /// Applies an already validated configuration.
    pub async fn apply(&self, config: &Config, forget_removed: bool) -> ReloadOutcome {
        let running = self.daemon.lock().await;
        let mut needs_restart = daemon_changes(&running.daemon, &config.daemon);
        if running.callback != config.callback {
            needs_restart.push("callback".to_string());
        }
        if running.http != config.http {
            needs_restart.push("http".to_string());
        }
        for key in &needs_restart {
            warn!(key = %key, "changed in the config; it applies after a restart (systemctl restart brokerd)");
        }
        let report = self.registry.reload(config, forget_removed).await;
        info!(added = ?report.added, removed = ?report.removed, changed = ?report.changed,
              unchanged = report.unchanged, "configuration reloaded");
        // The running settings stay as they are: they are reported again
        // until a restart applies them.
        drop(running);
        ReloadOutcome {
            report,
            needs_restart,
        }
    }

    /// Serves reload requests from the socket until the channel closes.
    pub async fn serve(self: Arc<Self>, mut requests: mpsc::Receiver<ReloadRequest>) {
        while let Some((forget_removed, reply)) = requests.recv().await {
            let _ = reply.send(self.reload(forget_removed).await);
        }
    }
}

/// The `[daemon]` settings that differ (they need a restart).
fn daemon_changes(old: &DaemonConfig, new: &DaemonConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            out.push(format!("daemon.{name}"));
        }
    };
    check("socket", old.socket == new.socket);
    check("socket_mode", old.socket_mode == new.socket_mode);
    check("socket_group", old.socket_group == new.socket_group);
    check("allowed_uids", old.allowed_uids == new.allowed_uids);
    check("allowed_gids", old.allowed_gids == new.allowed_gids);
    check("state_dir", old.state_dir == new.state_dir);
    check("database_url", old.database_url == new.database_url);
    check("key", old.key == new.key);
    check("log_format", old.log_format == new.log_format);
    check("notify_command", old.notify == new.notify);
    check("limits", old.limits == new.limits);
    check(
        "audit_retention",
        old.audit_retention == new.audit_retention && old.audit_max_rows == new.audit_max_rows,
    );
    out
}
