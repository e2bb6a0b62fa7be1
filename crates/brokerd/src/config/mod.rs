//! Configuration: the TOML file, read once and validated into plain types.
//!
//! Parsing collects every problem in the file (not just the first), each
//! naming its key path and a concrete fix, so `brokerd check-config` can list
//! them all at once. Secrets given by reference (`env:`, `file:`, `cred:`)
//! are resolved here, so a missing variable or credential is caught before
//! the daemon starts (a `file:` or `cred:` secret others can read is
//! refused). The daemon's storage key, the state directory, the database
//! file and the socket's folder are the start's `preflight`, which
//! `check-config` runs after loading the file. No secret value
//! ever appears in a problem, a warning or `Debug` output.

mod account;
mod angel_one;
mod check;
mod ha;
mod interactive_check;
mod kotak_neo;
mod pacing;
mod raw;
mod summary;
pub mod urls;
mod validate;

// Each broker's settings live in its own folder under `brokers/` (config
// depends on brokers, never the reverse); this module turns TOML into them.
pub use crate::brokers::angel_one::AngelOneConfig;
pub use crate::brokers::breeze::BreezeConfig;
pub use crate::brokers::jainam::{AppKeyPair, JainamConfig};
pub use crate::brokers::kotak_neo::KotakNeoConfig;
pub use crate::brokers::reminder::Reminder;
pub use crate::brokers::zerodha::ZerodhaConfig;
pub use ha::HaConfig;
pub use summary::{NAMES_UP_TO, accounts_line, warning_lines};

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::brokers::BrokerId;
use crate::secret::{Secret, SecretEnv, SecretRef};

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `[daemon]`: socket, storage, logging and limits.
    pub daemon: DaemonConfig,
    /// `[[account]]`, in file order.
    pub accounts: Vec<AccountConfig>,
    /// `[callback]`: the local HTTP listener for browser-login redirects
    /// (Zerodha, Breeze). Off when absent.
    pub callback: Option<CallbackConfig>,
    /// `[http]`: the optional metrics and health endpoint. Off when absent.
    pub http: Option<HttpConfig>,
    /// The file the configuration came from (absolute), if it came from one.
    pub source: Option<PathBuf>,
}

/// A configuration plus the non-fatal things an operator should hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// `"{key}: {message}"` lines, e.g. a secret written literally in the
    /// file. Never contains a secret value.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates the file at `path`, resolving secrets from the
    /// daemon's real environment. Relative paths in the file are taken
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
        Self::load_in(path, &SecretEnv::process())
    }

    /// [`Config::load`] with secrets resolved from `env`.
    pub fn load_in(path: &Path, env: &SecretEnv) -> Result<Loaded, ConfigErrors> {
        Self::load_rewritten(path, env, &|text| Ok(text.to_string()))
    }

    /// [`Config::load_in`], with the file's text passed through `rewrite`
    /// before it is read (brokerd-demo points accounts at its simulators
    /// this way). A rewrite error is reported as a problem of the file.
    pub fn load_rewritten(
        path: &Path,
        env: &SecretEnv,
        rewrite: &dyn Fn(&str) -> Result<String, ConfigProblem>,
    ) -> Result<Loaded, ConfigErrors> {
        // Absolute before taking the parent: a bare "brokerd.toml" has an
        // empty parent, and paths must not depend on a later chdir.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigErrors(vec![ConfigProblem::new(
                FILE_KEY,
                format!("cannot read {}: {e}", path.display()),
                "check the path given with --config and that this user can read the file",
            )])
        })?;
        let text = rewrite(&text).map_err(|p| ConfigErrors(vec![p]))?;
        let base_dir = path.parent().unwrap_or(Path::new("/"));
        let mut loaded = Self::from_toml_str(&text, base_dir, env)?;
        loaded.config.source = Some(path);
        Ok(loaded)
    }

    /// Parses and validates configuration text. Relative paths are resolved
    /// against `base_dir`; secret references are resolved from `env`.
    /// `source` is left `None`.
    pub fn from_toml_str(
        text: &str,
        base_dir: &Path,
        env: &SecretEnv,
    ) -> Result<Loaded, ConfigErrors> {
        validate::config(text, base_dir, env)
    }

    /// The account `name` of `broker`, if configured.
    pub fn account(&self, broker: BrokerId, name: &str) -> Option<&AccountConfig> {
        self.accounts
            .iter()
            .find(|a| a.broker == broker && a.name == name)
    }
}

/// How the daemon reads its configuration file, at start, on every reload
/// and before an operator `login`: [`file_loader`] for brokerd. brokerd-demo
/// passes one that points the accounts at its simulators first, so this
/// crate never knows about simulators.
#[derive(Clone)]
pub struct Loader(std::sync::Arc<LoadFn>);

type LoadFn = dyn Fn(&Path) -> Result<Loaded, ConfigErrors> + Send + Sync;

impl Loader {
    /// A loader that reads a config file with `load`.
    pub fn new(
        load: impl Fn(&Path) -> Result<Loaded, ConfigErrors> + Send + Sync + 'static,
    ) -> Self {
        Self(std::sync::Arc::new(load))
    }

    /// Reads and validates the config file at `path`.
    pub fn load(&self, path: &Path) -> Result<Loaded, ConfigErrors> {
        (self.0)(path)
    }
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Loader")
    }
}

/// The daemon's [`Loader`]: [`Config::load`], the file as written.
pub fn file_loader() -> Loader {
    Loader::new(Config::load)
}

/// The key under which problems with the file as a whole are reported
/// (unreadable file, TOML syntax).
pub const FILE_KEY: &str = "(file)";

/// Every problem found in a configuration. Non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One thing wrong with the configuration. Never contains a secret value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `account[1].jainam.interactive.secret_key` or
    /// `daemon.socket_mode`; `[n]` counts `[[account]]` tables from 0.
    /// [`FILE_KEY`] for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl ConfigProblem {
    /// Builds a problem.
    pub fn new(key: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.key, self.message, self.fix)
    }
}

/// `[daemon]`.
#[derive(Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Path of the Unix socket clients connect to (absolute after loading,
    /// shorter than 108 bytes).
    pub socket: PathBuf,
    /// Permission bits of the socket file; never grants "other" access.
    pub socket_mode: u32,
    /// Group owning the socket: a name or a numeric gid, resolved by the
    /// daemon. `None` keeps the daemon's primary group.
    pub socket_group: Option<String>,
    /// Peer uids allowed on every account that has no list of its own.
    /// Empty: only root and the daemon's own uid.
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed on every account that has no list of its own.
    pub allowed_gids: Vec<u32>,
    /// Folder for the database and other state (absolute after loading).
    pub state_dir: PathBuf,
    /// sqlx URL of the store: `sqlite://...` (default: `brokerd.db` in
    /// `state_dir`; a relative path has been made absolute) or
    /// `postgres://...` / `postgresql://...`, kept as written (it may hold
    /// a password: print [`crate::store::postgres::describe`] of it). The
    /// store's rule: [`crate::store::parse_url`].
    pub database_url: String,
    /// Where the storage encryption key lives. Not resolved here: the store
    /// reads it and checks the file's mode. Never a literal.
    pub key: Option<SecretRef>,
    /// Generate the key (a `file:` key only) when it does not exist yet.
    pub create_key_if_missing: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// Audit rows older than this are deleted.
    pub audit_retention: Duration,
    /// At most this many audit rows are kept.
    pub audit_max_rows: u64,
    /// `notify_command` and `notify_timeout`: run on events a person must
    /// act on. Off when absent.
    pub notify: Option<NotifyConfig>,
    /// `[daemon.limits]`.
    pub limits: Limits,
    /// `[daemon.pacing.<broker>]`: the paces set for brokers (a broker
    /// left out keeps `Pace::default_for`).
    pub pacing: std::collections::HashMap<crate::brokers::BrokerId, crate::brokers::pace::Pace>,
    /// `[daemon.ha]`: several daemons share the PostgreSQL store (None:
    /// this daemon leads every session itself).
    pub ha: Option<HaConfig>,
}

/// A store URL as `Debug` shows it: a PostgreSQL URL as what it points to
/// (its password may also be a query parameter), others with any password
/// masked.
fn redacted_database_url(url: &str) -> String {
    match crate::store::parse_url(url) {
        Ok(crate::store::StoreUrl::Postgres(url)) => crate::store::postgres::describe(&url),
        Ok(crate::store::StoreUrl::Sqlite(_)) | Err(_) => {
            validate::redact_url_password(url).into_owned()
        }
    }
}

/// Written by hand so a password inside a `postgres://` URL is masked.
impl fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("socket", &self.socket)
            .field("socket_mode", &format_args!("{:#o}", self.socket_mode))
            .field("socket_group", &self.socket_group)
            .field("allowed_uids", &self.allowed_uids)
            .field("allowed_gids", &self.allowed_gids)
            .field("state_dir", &self.state_dir)
            .field("database_url", &redacted_database_url(&self.database_url))
            .field("key", &self.key)
            .field("create_key_if_missing", &self.create_key_if_missing)
            .field("log_format", &self.log_format)
            .field("audit_retention", &self.audit_retention)
            .field("audit_max_rows", &self.audit_max_rows)
            .field("notify", &self.notify)
            .field("limits", &self.limits)
            .finish()
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (systemd), human otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Human,
}

/// `[daemon.limits]`: resource bounds and timeouts of the socket server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line accepted; a longer one gets `too_large` and the
    /// connection is closed.
    pub max_line_bytes: usize,
    /// Concurrent client connections.
    pub max_connections: usize,
    /// Concurrent client connections of one peer uid (root and the daemon's
    /// own user included), so that one local user cannot take every slot.
    pub max_connections_per_uid: usize,
    /// A connection with no request for this long is closed (`subscribe`
    /// streams excepted).
    pub idle_timeout: Duration,
    /// Deadline for writing one reply or event line, flush included; a
    /// client that does not read its replies within it is closed. Also how
    /// long a peer allowed nowhere has to send the line it is refused.
    pub write_timeout: Duration,
    /// Interval of the `heartbeat` event on `subscribe` streams, which finds
    /// subscribers that stopped reading.
    pub heartbeat: Duration,
    /// How long a `token` request without `wait_secs` waits for a login.
    pub default_wait: Duration,
    /// Cap on a request's `wait_secs`.
    pub max_wait: Duration,
    /// HTTP timeout of one broker call.
    pub login_timeout: Duration,
    /// How long shutdown waits for in-flight work (a login finishes and is
    /// persisted rather than dropped).
    pub shutdown_grace: Duration,
}

/// `[daemon] notify_command`: a program run with one event as JSON on stdin
/// whenever a person must act (`auth_required`, `locked_out`, `conflict`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Program and arguments, run directly (no shell).
    pub argv: Vec<String>,
    /// A run still going after this long is killed.
    pub timeout: Duration,
}

/// `[callback]`: where the browser lands after a Zerodha or Breeze login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackConfig {
    /// Local address of the HTTP listener.
    pub listen: SocketAddr,
    /// The URL the browser reaches the listener at, without trailing slash
    /// (default `http://{listen}`): behind a reverse proxy, the proxy's URL.
    /// Redirect URLs registered with the brokers are
    /// `{public_url}/callback/{broker}/{account}`.
    pub public_url: String,
}

impl CallbackConfig {
    /// The redirect URL to register with the broker for one account.
    pub fn redirect_url(&self, broker: BrokerId, account: &str) -> String {
        format!("{}/callback/{broker}/{account}", self.public_url)
    }
}

/// `[http]`: `GET /metrics` (Prometheus text) and `GET /healthz` for
/// node_exporter-style monitoring. Serves no token, secret or login link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where it listens; loopback is expected (a warning otherwise).
    pub listen: SocketAddr,
}

/// One `[[account]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountConfig {
    /// The broker.
    pub broker: BrokerId,
    /// The account's name, `[a-z0-9_-]{1,32}`, unique per broker.
    pub name: String,
    /// Peer uids allowed on this account; empty: the daemon's lists.
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed on this account; empty: the daemon's lists.
    pub allowed_gids: Vec<u32>,
    /// When and how sessions are renewed.
    pub policy: SessionPolicy,
    /// `[account.jainam]`: present exactly when `broker` is Jainam.
    pub jainam: Option<JainamConfig>,
    /// `[account.kotak_neo]`: present exactly when `broker` is Kotak Neo.
    pub kotak_neo: Option<KotakNeoConfig>,
    /// Zerodha Kite settings (broker = "zerodha").
    pub zerodha: Option<ZerodhaConfig>,
    /// ICICI Breeze settings (broker = "breeze").
    pub breeze: Option<BreezeConfig>,
    /// `[account.angel_one]`: present exactly when `broker` is Angel One.
    pub angel_one: Option<AngelOneConfig>,
}

impl AccountConfig {
    /// Whether a browser login as any user of the app would be taken as
    /// this account's (an interactive broker without `user_id`).
    pub fn login_user_unchecked(&self) -> bool {
        match self.broker {
            BrokerId::Zerodha => self.zerodha.as_ref().is_some_and(|z| z.user_id.is_none()),
            BrokerId::Breeze => self.breeze.as_ref().is_some_and(|b| b.user_id.is_none()),
            BrokerId::Jainam | BrokerId::KotakNeo | BrokerId::AngelOne => false,
        }
    }

    /// The uids allowed on this account, after inheriting the daemon's list
    /// when the account has none.
    pub fn effective_uids<'a>(&'a self, daemon: &'a DaemonConfig) -> &'a [u32] {
        if self.allowed_uids.is_empty() {
            &daemon.allowed_uids
        } else {
            &self.allowed_uids
        }
    }

    /// The gids allowed on this account, after inheriting the daemon's list
    /// when the account has none.
    pub fn effective_gids<'a>(&'a self, daemon: &'a DaemonConfig) -> &'a [u32] {
        if self.allowed_gids.is_empty() {
            &daemon.allowed_gids
        } else {
            &self.allowed_gids
        }
    }
}

/// How the daemon keeps one account's sessions alive (flat keys on the
/// `[[account]]` table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Refresh this long before the token expires.
    pub refresh_margin: Duration,
    /// Random extra advance, uniformly 0..jitter, so accounts do not all
    /// refresh at the same instant.
    pub refresh_jitter: Duration,
    /// Default `min_valid_secs` of token requests.
    pub min_valid: Duration,
    /// First delay after a transient login failure.
    pub backoff_initial: Duration,
    /// Longest delay between retries (at least `backoff_initial`).
    pub backoff_max: Duration,
    /// A session rejected sooner than this after its login counts as an
    /// early death (someone else is probably logging in).
    pub conflict_window: Duration,
    /// This many early deaths in a row put the account in `conflict`.
    pub conflict_threshold: u32,
    /// In `conflict`, at most one automatic login per this period.
    pub conflict_cooldown: Duration,
    /// Log in at startup when nothing valid is stored.
    pub login_at_start: bool,
    /// The login budget: automatic logins of one session never come closer
    /// together than this, whatever the broker answers or clients report.
    pub min_login_interval: Duration,
    /// The login budget: at most this many logins of one session in any
    /// hour (operator logins count too, but are never refused).
    pub max_logins_per_hour: u32,
}

/// What `check-config` prints, and whether the configuration passed.
///
/// Reads secrets from the real environment, like the daemon would, and
/// takes `BROKERD_KEY` from it too (it overrides `daemon.key`).
pub fn check_config_report(path: &Path) -> (bool, String) {
    check_config_report_in(path, &SecretEnv::process())
}

/// [`check_config_report`] with secrets (and `BROKERD_KEY`) resolved from
/// `env`. After the file itself, runs the start's own preflight
/// ([`crate::preflight::check`]): the problems it lists are the ones the
/// daemon's start would refuse with, in the same words.
pub fn check_config_report_in(path: &Path, env: &SecretEnv) -> (bool, String) {
    let loaded = match Config::load_in(path, env) {
        Ok(loaded) => loaded,
        Err(errors) => return (false, problems_report(path, &errors)),
    };
    let env_key = env.var(crate::harden::KEY_VAR).map(Secret::new);
    let inputs = crate::preflight::Inputs {
        env_key: env_key.as_ref(),
        env,
        // The checker cannot know whether systemd will pass a socket; the
        // usual start binds it.
        binds_socket: true,
    };
    let problems = crate::preflight::check(&loaded.config.daemon, &inputs);
    if !problems.is_empty() {
        return (false, problems_report(path, &ConfigErrors(problems)));
    }
    let accounts = &loaded.config.accounts;
    // Names up to NAMES_UP_TO accounts, counts above (a desk's thousand).
    let mut out = format!("ok: {} in {}\n", accounts_line(accounts), path.display());
    // The socket folder's check is the one the daemon logs at start.
    let folder = crate::server::socket_dir::warning(&loaded.config.daemon);
    let warnings: Vec<String> = loaded.warnings.iter().cloned().chain(folder).collect();
    for w in warning_lines(&warnings, accounts.len()) {
        out.push_str(&format!("warning: {w}\n"));
    }
    (true, out)
}

/// The listing of `errors` in `path`, one problem a line: what
/// `check-config` prints, and what the daemon prints when it refuses to
/// start (for the file itself or for the start's preflight).
pub fn problems_report(path: &Path, errors: &ConfigErrors) -> String {
    let n = errors.0.len();
    let mut out = format!(
        "{}: {n} problem{} ([n] counts [[account]] tables from 0)\n",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    for p in &errors.0 {
        out.push_str(&format!("  {p}\n"));
    }
    out
}
