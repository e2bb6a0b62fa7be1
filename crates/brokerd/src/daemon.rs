//! Wiring: instance lock, key and store, slots, socket,
//! background loops, and an orderly stop.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, ConfigErrors, Loaded};
use crate::harden;
use crate::reload::Reloader;
use crate::secret::{Secret, SecretEnv};
use crate::server::{self, ServerMetrics, Shared};
use crate::session::{Access, Registry};
use crate::store::{self, Store};

/// A running daemon. Dropping it without [`Running::stop`] leaves tasks
/// running until the runtime ends.
pub struct Running {
    /// The socket path it listens on.
    pub socket: PathBuf,
    /// The slots (tests and systemd status read them).
    pub registry: Arc<Registry>,
    /// The store.
    pub store: Arc<Store>,
    /// Re-reads and applies the configuration (SIGHUP, `reload`).
    pub reloader: Arc<Reloader>,
    /// Where the browser reaches the callback listener (`None`: off).
    pub callback_url: Option<String>,
    /// Where the metrics and health endpoint listens (`None`: off).
    pub http_addr: Option<std::net::SocketAddr>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
    owns_socket: bool,
    _lock: InstanceLock,
}

/// Starts everything, binding the socket itself; returns once the socket
/// listens and stored sessions are rehydrated (then systemd is told READY=1).
pub async fn start(loaded: Loaded) -> anyhow::Result<Running> {
    start_with(loaded, None).await
}

/// How the daemon is started, beyond its configuration.
pub struct Options {
    /// An already-listening socket (socket activation, or a test that keeps
    /// one listener across restarts); `None`: the daemon binds its own.
    pub listener: Option<std::os::unix::net::UnixListener>,
    /// The value of `BROKERD_KEY`, taken out of the environment by the caller.
    pub env_key: Option<Secret>,
    /// How the config file is read again (reload, operator `login`).
    pub loader: crate::config::Loader,
    /// The one clock every read of session time goes to (refresh, backoff,
    /// budget, cut-offs, reminders, every broker's TOTP windows, expiry and
    /// `obtained_at`, the store's timestamps): the system clock in
    /// production, a test's manual clock to move time instead of sleeping.
    /// Socket and shutdown deadlines stay on tokio's clock (ARCHITECTURE.md,
    /// "Time").
    pub clock: brokerd_core::time::SharedClock,
}

/// [`start`] with an already-listening socket (socket activation, or a
/// test that keeps one listener across daemon restarts). A passed socket
/// belongs to whoever passed it: the daemon neither replaces nor removes it.
pub async fn start_with(
    loaded: Loaded,
    listener: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<Running> {
    start_on(loaded, listener, brokerd_core::time::SystemClock::shared()).await
}

/// [`start_with`] on `clock`: a test hands the daemon and the simulators
/// the same manual clock and moves it instead of sleeping.
pub async fn start_on(
    loaded: Loaded,
    listener: Option<std::os::unix::net::UnixListener>,
    clock: brokerd_core::time::SharedClock,
) -> anyhow::Result<Running> {
    // In-process callers (tests) keep their environment; the binary takes
    // the variable out of it before any thread starts and passes it to [`run`].
    let env_key = std::env::var(harden::KEY_VAR).ok().map(Secret::new);
    start_opts(
        loaded,
        Options {
            listener,
            env_key,
            loader: crate::config::file_loader(),
            clock,
        },
    )
    .await
}

/// Starts everything as `opts` says. Refuses with [`ConfigErrors`]
/// (downcast the error to get them) when the start's preflight finds
/// problems.
pub async fn start_opts(loaded: Loaded, opts: Options) -> anyhow::Result<Running> {
    let Options {
        listener,
        env_key,
        loader,
        clock,
    } = opts;
    let Loaded { config, warnings } = loaded;
    // Grouped as check-config prints them: one line per message on a big desk.
    for w in crate::config::warning_lines(&warnings, config.accounts.len()) {
        warn!("config: {w}");
    }
    let d = &config.daemon;
    // Every check `check-config` makes too, before anything is created: a
    // refusal here is worded exactly as the checker words it.
    let problems = crate::preflight::check(
        d,
        &crate::preflight::Inputs {
            env_key: env_key.as_ref(),
            env: &SecretEnv::process(),
            binds_socket: listener.is_none(),
        },
    );
    if !problems.is_empty() {
        return Err(ConfigErrors(problems).into());
    }
    create_private_dir(&d.state_dir)?;
    let lock = InstanceLock::acquire(&d.state_dir)?;
    // Blank counts as unset, as in `load_key`, so the warning matches the key used.
    let env_key = env_key.filter(|k| !k.expose().trim().is_empty());
    if let Some(warning) = harden::env_key_warning(env_key.is_some(), d.key.as_ref()) {
        warn!("{warning}");
    }
    let key = store::load_key(
        env_key.as_ref().map(Secret::expose),
        d.key.as_ref(),
        d.create_key_if_missing,
    )
    .context("loading the encryption key")?;
    let store = Arc::new(
        Store::open_on(&d.database_url, key, Arc::clone(&clock))
            .await
            .with_context(|| format!("opening the store {}", redact_url(&d.database_url)))?,
    );
    // Before any session is read: a rotation a crash interrupted is
    // finished or rolled back, and its pending key made readable.
    let key_home = key_home(env_key.is_some(), d.key.as_ref());
    match store::rotation::finish_interrupted(&store, &key_home).await {
        Ok(store::rotation::Interrupted::None) => {}
        Ok(done) => info!(?done, "an interrupted key rotation was dealt with"),
        // The pending key cannot be read: refusing beats starting without
        // the key some sessions may be under.
        Err(e @ store::rotation::RotationError::Refused { .. }) => {
            return Err(anyhow::Error::new(e).context("finishing an interrupted key rotation"));
        }
        // Both keys stay readable; the next start tries again.
        Err(e) => warn!(error = %e, "an interrupted key rotation could not be finished"),
    }
    match store.prune_audit(d.audit_retention, d.audit_max_rows).await {
        Ok(n) if n > 0 => info!(rows = n, "pruned old audit rows"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "audit pruning failed"),
    }
    let registry = Arc::new(Registry::build(
        &config,
        Arc::clone(&store),
        loader.clone(),
        clock,
    ));
    // No broker call before READY (invariant 19): stored sessions are
    // served at once and checked at the brokers in the background.
    let restored = registry.rehydrate().await;
    // Bound before READY: a taken port must stop the start, not surface
    // when a person's login fails to arrive.
    let mut callback_cfg = config.callback.clone();
    let callback = match &mut callback_cfg {
        Some(cb) => {
            let listener = crate::callback::bind(cb.listen).await?;
            // Port 0 (tests, demo): the default public URL must name the
            // port actually bound.
            if cb.listen.port() == 0
                && cb.public_url == format!("http://{}", cb.listen)
                && let Ok(addr) = listener.local_addr()
            {
                cb.public_url = format!("http://{addr}");
            }
            Some(listener)
        }
        None => None,
    };
    let http = match &config.http {
        Some(h) => Some(crate::http::bind(h.listen).await?),
        None => None,
    };
    let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());

    let owns_socket = listener.is_none();
    // A folder made by someone else is checked, never changed silently.
    // (An unknown group is only a warning here: with a passed socket the
    // daemon never uses the gid; binding itself refuses it below.)
    if let Some(w) = server::socket_dir::warning(d) {
        warn!("{w}");
    }
    let listener = match listener {
        Some(std_listener) => {
            std_listener
                .set_nonblocking(true)
                .context("preparing the passed socket")?;
            info!("using the listening socket passed by systemd (socket activation)");
            tokio::net::UnixListener::from_std(std_listener)
                .context("adopting the passed socket")?
        }
        None => {
            let gid = d
                .socket_group
                .as_deref()
                .map(server::socket_dir::resolve_group)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            server::bind(&d.socket, d.socket_mode, gid).await?
        }
    };
    let reloader = Arc::new(Reloader::new(
        config.source.clone(),
        loader,
        Arc::clone(&registry),
        &config,
    ));
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    let shared = Arc::new(Shared {
        reload: Some(reload_tx),
        registry: Arc::clone(&registry),
        metrics: ServerMetrics::default(),
        limits: d.limits.clone(),
        daemon_uid: own_uid(),
        daemon_access: Access {
            uids: d.allowed_uids.clone(),
            gids: d.allowed_gids.clone(),
        },
        callback: callback_cfg.clone(),
        key_rotation: Arc::new(store::rotation::KeyRotator::new(
            key_home,
            Arc::clone(&store),
        )),
    });
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    if let Some(listener) = http {
        tracker.spawn(crate::http::serve(
            listener,
            Arc::clone(&shared),
            cancel.clone(),
        ));
    }
    tracker.spawn(server::run(
        listener,
        shared,
        cancel.clone(),
        tracker.clone(),
    ));
    // Subscribed before the slots start: the startup alerts must reach it.
    let notify_rx = d.notify.as_ref().map(|_| registry.events().subscribe());
    registry.spawn_drivers(&cancel, &tracker);
    if let Some(link) = registry.ha() {
        crate::ha::spawn(
            Arc::clone(link),
            Arc::clone(&registry),
            cancel.clone(),
            &tracker,
        );
    }
    registry.spawn_checks(restored);
    if let Some(listener) = callback {
        tracker.spawn(crate::callback::serve(
            listener,
            Arc::clone(&registry),
            d.limits.default_wait,
            cancel.clone(),
        ));
    }
    if let (Some(notify), Some(rx)) = (d.notify.clone(), notify_rx) {
        tracker.spawn(crate::notify::run(notify, rx, cancel.clone()));
    }
    spawn_audit_pruning(&config, Arc::clone(&store), cancel.clone(), &tracker);
    tracker.spawn(crate::systemd::run(Arc::clone(&registry), cancel.clone()));
    let serving = Arc::clone(&reloader);
    let stop_reloads = cancel.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = stop_reloads.cancelled() => {}
            _ = serving.serve(reload_rx) => {}
        }
    });
    crate::systemd::ready(&crate::systemd::summary(&registry));
    info!(socket = %d.socket.display(), accounts = config.accounts.len(), sessions = registry.slots().len(),
          key_id = %store.key_id(), "brokerd ready: {}", crate::config::accounts_line(&config.accounts));
    Ok(Running {
        socket: d.socket.clone(),
        registry,
        store,
        reloader,
        callback_url: callback_cfg.map(|c| c.public_url),
        http_addr,
        cancel,
        tracker,
        grace: d.limits.shutdown_grace,
        owns_socket,
        _lock: lock,
    })
}

/// Where the store key lives, for rotation: only a `file:` key (and no
/// `BROKERD_KEY`, which wins over it) is one brokerd can rewrite.
fn key_home(
    from_env: bool,
    config_ref: Option<&crate::secret::SecretRef>,
) -> store::rotation::KeyHome {
    use crate::secret::SecretRef;
    use store::rotation::KeyHome;
    if from_env {
        return KeyHome::Fixed("BROKERD_KEY".into());
    }
    match config_ref {
        Some(SecretRef::File(path)) => KeyHome::File(path.clone()),
        Some(SecretRef::Cred(name)) => KeyHome::Fixed(format!("cred:{name}")),
        Some(SecretRef::Env(name)) => KeyHome::Fixed(format!("env:{name}")),
        // Refused by the key's loading before this is asked.
        Some(SecretRef::Literal(_)) | None => KeyHome::Fixed("daemon.key".into()),
    }
}

impl Running {
    /// Stops accepting, lets in-flight requests and logins finish (bounded
    /// by the shutdown grace), never logs sessions out, removes the socket.
    pub async fn stop(self) {
        info!("stopping");
        crate::systemd::stopping();
        self.cancel.cancel();
        let logins = self.registry.tasks();
        logins.close();
        if tokio::time::timeout(self.grace, logins.wait())
            .await
            .is_err()
        {
            warn!("an in-flight login did not finish within the shutdown grace");
        }
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not finish within the shutdown grace");
        }
        if self.owns_socket {
            let _ = std::fs::remove_file(&self.socket);
        }
        self.store.close().await;
        info!("stopped");
    }
}

/// Runs until SIGTERM or SIGINT, then stops. `env_key` is the value of
/// `BROKERD_KEY`, which the binary reads and removes from its environment
/// before the runtime starts threads (the variable itself is not read here).
pub async fn run(loaded: Loaded, env_key: Option<Secret>) -> anyhow::Result<()> {
    run_with(loaded, env_key, crate::config::file_loader(), |_| {}).await
}

/// [`run`] with the config read by `loader`; `started` sees the running
/// daemon once it is ready (brokerd-demo registers its simulators' login
/// redirects there).
pub async fn run_with(
    loaded: Loaded,
    env_key: Option<Secret>,
    loader: crate::config::Loader,
    started: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives while the start runs (the
    // socket is already bound, so clients and systemd may act) is kept for
    // the loop below and ends in an orderly stop, not in death by signal.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let activated = crate::systemd::activated_listener().context("reading LISTEN_FDS")?;
    let running = start_opts(
        loaded,
        Options {
            listener: activated,
            env_key,
            loader,
            clock: brokerd_core::time::SystemClock::shared(),
        },
    )
    .await?;
    started(&running);
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM"); break }
            _ = int.recv() => { info!("SIGINT"); break }
            _ = hup.recv() => {
                info!("SIGHUP: reloading the configuration");
                // The outcome is logged by the reloader, success or not.
                let _ = running.reloader.reload(false).await;
            }
        }
    }
    running.stop().await;
    Ok(())
}

fn spawn_audit_pruning(
    config: &Config,
    store: Arc<Store>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    let (age, rows) = (config.daemon.audit_retention, config.daemon.audit_max_rows);
    tracker.spawn(async move {
        loop {
            // How often is housekeeping, on tokio's clock; which rows are
            // old is decided by the store on the daemon's clock.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(6 * 3600)) => {}
            }
            if let Err(e) = store.prune_audit(age, rows).await {
                warn!(error = %e, "audit pruning failed");
            }
        }
    });
}

/// The state directory holds the key file and the database: owner only.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
    }
    Ok(())
}

/// An exclusive lock on `state_dir/brokerd.lock`, holding our pid: one
/// daemon per state directory (invariant 9 on one host).
struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        let path = state_dir.join("brokerd.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        if file.try_lock().is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let pid = if pid.is_empty() { "unknown" } else { pid };
            bail!(
                "another brokerd (pid {pid}) is running on the state directory {}; stop it first \
                 (systemctl stop brokerd) or give this one another state_dir",
                state_dir.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

/// The daemon's effective uid, read without unsafe code.
pub fn own_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// A database URL without its password, for messages: a PostgreSQL URL
/// as its database, user and host ([`store::postgres::describe`]), which
/// also leaves out a password given as a query parameter.
fn redact_url(url: &str) -> String {
    if let Ok(store::StoreUrl::Postgres(url)) = store::parse_url(url) {
        return store::postgres::describe(&url);
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = InstanceLock::acquire(dir.path()).unwrap();
        let err = InstanceLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db?password=pw2"),
            "PostgreSQL database db as u on h:5432"
        );
        assert_eq!(redact_url("mysql://u:pw@h/db"), "mysql://***@h/db");
        assert_eq!(redact_url("sqlite:///a/b.db"), "sqlite:///a/b.db");
    }
}
