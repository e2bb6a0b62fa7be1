//! Raw → public conversion of the file as a whole and `[daemon]` (accounts are in `account.rs`, the typed readers in
//! `check.rs`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::check::Check;
use super::raw::{RawCallback, RawDaemon, RawFile, RawHttp, RawLimits};
use super::{
    CallbackConfig, Config, ConfigErrors, ConfigProblem, DaemonConfig, FILE_KEY, HttpConfig,
    Limits, Loaded, LogFormat, NotifyConfig, account,
};
use crate::secret::{SecretEnv, SecretRef};

// Named defaults: the one place each default lives. The example config
// repeats them in its comments; a test checks the two agree.
const DEFAULT_SOCKET: &str = "/run/brokerd/brokerd.sock";
const DEFAULT_SOCKET_MODE: u32 = 0o660;
const DEFAULT_STATE_DIR: &str = "/var/lib/brokerd";
const DEFAULT_DATABASE_FILE: &str = "brokerd.db";
const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
const DEFAULT_AUDIT_MAX_ROWS: u64 = 100_000;
const DEFAULT_MAX_LINE_BYTES: u64 = 64 * 1024;
const MIN_MAX_LINE_BYTES: u64 = 1024;
const MAX_MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// The share of `max_connections` one uid may hold unless configured: with
/// a quarter each, no single local user can lock the others out.
const DEFAULT_PER_UID_DIVISOR: u64 = 4;
/// Short, because an idle request connection holds a slot others may need;
/// `subscribe` streams are exempt, so long-lived programs keep theirs.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A reply is a few KiB at most: a client that cannot take it in 5 s is not
/// reading.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
const DEFAULT_DEFAULT_WAIT: Duration = Duration::from_secs(15);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(120);
const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// `sockaddr_un.sun_path` is 108 bytes including the terminating NUL, and
/// std refuses a path that does not leave room for it.
const SUN_PATH_MAX: usize = 108;

/// Parses and validates a whole file.
pub(super) fn config(text: &str, base_dir: &Path, env: &SecretEnv) -> Result<Loaded, ConfigErrors> {
    let table: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Err(ConfigErrors(vec![syntax_problem(text, &e)])),
    };
    if table.is_empty() {
        // Every key has a default, but a daemon with no key and no account
        // is never what was meant: most likely the wrong file, or one a
        // failed copy left empty.
        return Err(ConfigErrors(vec![ConfigProblem::new(
            FILE_KEY,
            "the file is empty (or holds only comments)",
            "check the path given with --config; start from config/brokerd.example.toml: \
             [daemon] with key = ..., and one [[account]] per broker account",
        )]));
    }
    let mut c = Check::new(base_dir, env);
    let file: RawFile = c
        .table(Some(Value::Table(table)), "", "a TOML document")
        .unwrap_or_default();
    let daemon = daemon(&mut c, file.daemon);
    if file.simulator.is_some() {
        // Not an unknown-key error: say where the simulators went.
        c.problem(
            "simulator",
            "the broker simulators are not part of brokerd; [simulator] is read only by brokerd-demo",
            "run the demo with `cargo run --bin brokerd-demo -- --config FILE`, or remove \
             [simulator] and point the accounts at the brokers",
        );
    }
    let accounts = account::accounts(&mut c, file.account);
    let callback = callback(&mut c, file.callback);
    let http = http(&mut c, file.http);
    if callback.is_some() {
        for (i, a) in accounts.iter().enumerate() {
            if a.login_user_unchecked() {
                c.warn(
                    &format!("account[{i}].{}.user_id", a.broker),
                    "not set: with the callback listener on, a browser login as any user of this app \
                     would become this account's session; set user_id to the account's own id",
                );
            }
        }
    }
    let (problems, warnings) = c.finish();
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    Ok(Loaded {
        config: Config {
            daemon,
            callback,
            http,
            accounts,
            source: None,
        },
        warnings,
    })
}

/// A TOML syntax error, located by line and column (toml's own rendering is
/// several lines with a source excerpt, which would break one-problem-per-line).
fn syntax_problem(text: &str, e: &toml::de::Error) -> ConfigProblem {
    let message = e.message().trim().replace('\n', "; ");
    let location = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}: ")
    });
    ConfigProblem::new(
        FILE_KEY,
        format!(
            "TOML syntax error at {}{message}",
            location.unwrap_or_default()
        ),
        "correct the TOML at that position",
    )
}

fn daemon(c: &mut Check<'_>, value: Option<Value>) -> DaemonConfig {
    let raw: RawDaemon = c
        .table(value, "daemon", "a [daemon] section")
        .unwrap_or_default();

    let socket = c.path(raw.socket, "daemon.socket", DEFAULT_SOCKET);
    if socket.as_os_str().len() >= SUN_PATH_MAX {
        c.problem(
            "daemon.socket",
            format!(
                "{} is {} bytes; a Unix socket path must be shorter than {SUN_PATH_MAX}",
                socket.display(),
                socket.as_os_str().len()
            ),
            "choose a shorter socket path, e.g. /run/brokerd/brokerd.sock",
        );
    }
    let socket_mode = socket_mode(c, raw.socket_mode);
    let socket_group = c.string(raw.socket_group, "daemon.socket_group");
    if let Some(g) = &socket_group
        && (g.trim().is_empty() || g.contains(char::is_whitespace) || g.contains(':'))
    {
        c.problem(
            "daemon.socket_group",
            format!("{g:?} is not a group name or gid"),
            "write a group name such as \"brokerd\" or a numeric gid, or remove the key",
        );
    }
    let allowed_uids = c.ids(raw.allowed_uids, "daemon.allowed_uids");
    let allowed_gids = c.ids(raw.allowed_gids, "daemon.allowed_gids");
    let state_dir = c.path(raw.state_dir, "daemon.state_dir", DEFAULT_STATE_DIR);
    let database_url = database_url(c, raw.database_url, &state_dir);
    let create_key_if_missing = c.boolean(
        raw.create_key_if_missing,
        "daemon.create_key_if_missing",
        false,
    );
    let key = daemon_key(c, raw.key, create_key_if_missing);
    let log_format = match c.string(raw.log_format, "daemon.log_format").as_deref() {
        None | Some("auto") => LogFormat::Auto,
        Some("json") => LogFormat::Json,
        Some("human") => LogFormat::Human,
        Some(other) => {
            c.problem(
                "daemon.log_format",
                format!("unknown log format {other:?}"),
                "use \"auto\", \"json\" or \"human\"",
            );
            LogFormat::Auto
        }
    };
    let audit_retention = c.duration(
        raw.audit_retention,
        "daemon.audit_retention",
        DEFAULT_AUDIT_RETENTION,
    );
    c.nonzero(audit_retention, "daemon.audit_retention", "\"90d\"");
    let audit_max_rows = c.uint(
        raw.audit_max_rows,
        "daemon.audit_max_rows",
        DEFAULT_AUDIT_MAX_ROWS,
        1..=i64::MAX as u64,
    );
    let notify = notify(c, raw.notify_command, raw.notify_timeout);
    let limits = limits(c, raw.limits);
    let pacing = super::pacing::pacing(c, raw.pacing);
    let postgres = matches!(
        crate::store::parse_url(&database_url),
        Ok(crate::store::StoreUrl::Postgres(_))
    );
    let ha = super::ha::ha(c, raw.ha, postgres);
    DaemonConfig {
        socket,
        socket_mode,
        socket_group,
        allowed_uids,
        allowed_gids,
        state_dir,
        database_url,
        key,
        create_key_if_missing,
        log_format,
        audit_retention,
        audit_max_rows,
        notify,
        limits,
        pacing,
        ha,
    }
}

const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

fn notify(
    c: &mut Check<'_>,
    command: Option<Value>,
    timeout: Option<Value>,
) -> Option<NotifyConfig> {
    const KEY: &str = "daemon.notify_command";
    let timeout = c.duration(timeout, "daemon.notify_timeout", DEFAULT_NOTIFY_TIMEOUT);
    c.nonzero(timeout, "daemon.notify_timeout", "\"10s\"");
    let fix = "write the program and its arguments as a list of strings, e.g. \
               notify_command = [\"/usr/local/bin/brokerd-alert\", \"--telegram\"]";
    let items = match command? {
        Value::Array(items) => items,
        other => {
            c.wrong_type(KEY, "a list of strings", &other, fix);
            return None;
        }
    };
    let mut argv = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => argv.push(s),
            other => {
                c.wrong_type(KEY, "a list of strings", &other, fix);
                return None;
            }
        }
    }
    match argv.first() {
        None => {
            c.problem(KEY, "is an empty list", fix);
            None
        }
        Some(program) if program.is_empty() => {
            c.problem(KEY, "names an empty program", fix);
            None
        }
        Some(_) => Some(NotifyConfig { argv, timeout }),
    }
}

fn callback(c: &mut Check<'_>, value: Option<Value>) -> Option<CallbackConfig> {
    let raw: RawCallback = c.table(Some(value?), "callback", "a [callback] section")?;
    let text = c.required_string(raw.listen, "callback.listen", "listen = \"127.0.0.1:8765\"")?;
    let Ok(listen) = text.parse::<SocketAddr>() else {
        c.problem(
            "callback.listen",
            format!("{text:?} is not an IP address and port"),
            "write an IP:port such as \"127.0.0.1:8765\"; keep it on loopback and put a reverse proxy \
             or an SSH tunnel in front (see the README)",
        );
        return None;
    };
    if !listen.ip().is_loopback() {
        c.warn(
            "callback.listen",
            format_args!(
                "{listen} is not a loopback address: anyone who can reach it can submit logins; \
                 prefer 127.0.0.1 behind a TLS reverse proxy"
            ),
        );
    }
    let public_url = match c.string(raw.public_url, "callback.public_url") {
        None => format!("http://{listen}"),
        Some(url) => match super::urls::check_root(&url) {
            Ok((clean, _)) => clean,
            Err(why) => {
                c.problem(
                    "callback.public_url",
                    format!("{url:?} {why}"),
                    "write the URL the browser reaches the listener at, e.g. \
                     \"https://vps.example.com/brokerd\"",
                );
                return None;
            }
        },
    };
    Some(CallbackConfig { listen, public_url })
}

fn http(c: &mut Check<'_>, value: Option<Value>) -> Option<HttpConfig> {
    let raw: RawHttp = c.table(Some(value?), "http", "an [http] section")?;
    let text = c.required_string(raw.listen, "http.listen", "listen = \"127.0.0.1:9187\"")?;
    let Ok(listen) = text.parse::<SocketAddr>() else {
        c.problem(
            "http.listen",
            format!("{text:?} is not an IP address and port"),
            "write an IP:port such as \"127.0.0.1:9187\" (Prometheus scrapes it locally, or through \
             an SSH tunnel or a reverse proxy)",
        );
        return None;
    };
    if !listen.ip().is_loopback() {
        c.warn(
            "http.listen",
            format_args!(
                "{listen} is not a loopback address: the endpoint has no authentication, so anyone who \
                 can reach it reads account names and session states (never tokens); prefer 127.0.0.1"
            ),
        );
    }
    Some(HttpConfig { listen })
}

/// A mode is a quoted octal string, as for chmod: a bare TOML number would
/// be read as decimal (660 is 0o1224), which is never what was meant.
fn socket_mode(c: &mut Check<'_>, value: Option<Value>) -> u32 {
    const KEY: &str = "daemon.socket_mode";
    const FIX: &str = "write an octal mode in quotes, e.g. socket_mode = \"0660\"";
    let text = match value {
        None => return DEFAULT_SOCKET_MODE,
        Some(Value::String(s)) => s,
        Some(Value::Integer(n)) => {
            c.problem(
                KEY,
                format!("{n} is a number, not a quoted octal mode"),
                FIX,
            );
            return DEFAULT_SOCKET_MODE;
        }
        Some(other) => {
            c.wrong_type(KEY, "a quoted octal string", &other, FIX);
            return DEFAULT_SOCKET_MODE;
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(&text);
    let mode = match u32::from_str_radix(digits, 8) {
        Ok(m)
            if !digits.is_empty()
                && digits.len() <= 4
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            m
        }
        _ => {
            c.problem(KEY, format!("{text:?} is not an octal mode"), FIX);
            return DEFAULT_SOCKET_MODE;
        }
    };
    if mode > 0o777 {
        c.problem(
            KEY,
            format!("{text:?} sets setuid/setgid/sticky bits, which mean nothing on a socket"),
            "use \"0660\" (owner and group) or \"0600\" (owner only)",
        );
    } else if mode & 0o007 != 0 {
        c.problem(
            KEY,
            format!("{text:?} lets every user on the host connect (\"other\" bits are set)"),
            "use \"0660\" and put the client users in socket_group, or \"0600\" for the daemon's user only",
        );
    }
    mode
}

/// The default sits in the state directory; a relative sqlite path is made
/// absolute against the config's folder like every other path. Which URLs
/// are supported is the store's rule ([`crate::store::parse_url`]).
fn database_url(c: &mut Check<'_>, value: Option<Value>, state_dir: &Path) -> String {
    const KEY: &str = "daemon.database_url";
    let Some(url) = c.string(value, KEY) else {
        return format!(
            "sqlite://{}",
            state_dir.join(DEFAULT_DATABASE_FILE).display()
        );
    };
    match crate::store::parse_url(&url) {
        // Made absolute; the URL has no query (the store refuses one).
        Ok(crate::store::StoreUrl::Sqlite(file)) => {
            format!("sqlite://{}", c.resolve(&file).display())
        }
        // Checked for shape only: whether the server answers is the
        // start's business (it connects with a short timeout).
        Ok(crate::store::StoreUrl::Postgres(url)) => url,
        Err(unsupported) => {
            c.problem(KEY, unsupported.problem, unsupported.fix);
            url
        }
    }
}

/// `scheme://user:password@host/...` with the password replaced by `***`.
pub(super) fn redact_url_password(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(url);
    };
    let Some(colon) = authority[..at].find(':') else {
        return Cow::Borrowed(url);
    };
    Cow::Owned(format!(
        "{scheme}://{}:***{}",
        &authority[..colon],
        &rest[at..]
    ))
}

/// The storage key's reference is checked for shape only: whether the key
/// exists, decodes and has a safe mode is the store's rule, which the
/// daemon's start and `check-config` both apply through `preflight` (where
/// `BROKERD_KEY`, which overrides this key, is known too). It may never be
/// written into the config itself.
fn daemon_key(c: &mut Check<'_>, value: Option<Value>, create: bool) -> Option<SecretRef> {
    const KEY: &str = "daemon.key";
    let absent = value.is_none();
    let Some(reference) = c.secret_ref(value, KEY) else {
        if absent && create {
            c.problem(
                "daemon.create_key_if_missing",
                "there is no daemon.key to create",
                "add key = \"file:/var/lib/brokerd/key\", or remove create_key_if_missing",
            );
        }
        return None;
    };
    if reference.is_literal() {
        c.problem(
            KEY,
            "the storage key is written into the config file; keys never live in the config",
            "put the key in a file or systemd credential and write key = \"cred:brokerd-key\", \
             \"file:/etc/brokerd/key\" or \"env:BROKERD_KEY\"",
        );
        return None;
    }
    if create && !matches!(reference, SecretRef::File(_)) {
        c.problem(
            "daemon.create_key_if_missing",
            format!("the daemon can only create a file: key, and the key is {reference:?}"),
            "set create_key_if_missing = false, or use key = \"file:/var/lib/brokerd/key\"",
        );
    }
    Some(reference)
}

fn limits(c: &mut Check<'_>, value: Option<Value>) -> Limits {
    let raw: RawLimits = c
        .table(value, "daemon.limits", "a [daemon.limits] section")
        .unwrap_or_default();
    let max_line_bytes = c.uint(
        raw.max_line_bytes,
        "daemon.limits.max_line_bytes",
        DEFAULT_MAX_LINE_BYTES,
        MIN_MAX_LINE_BYTES..=MAX_MAX_LINE_BYTES,
    );
    let max_connections = c.uint(
        raw.max_connections,
        "daemon.limits.max_connections",
        DEFAULT_MAX_CONNECTIONS,
        1..=1_000_000,
    );
    let default_per_uid = (max_connections / DEFAULT_PER_UID_DIVISOR).max(1);
    let max_connections_per_uid = c.uint(
        raw.max_connections_per_uid,
        "daemon.limits.max_connections_per_uid",
        default_per_uid,
        1..=1_000_000,
    );
    if max_connections_per_uid > max_connections {
        c.problem(
            "daemon.limits.max_connections_per_uid",
            format!("{max_connections_per_uid} is more than max_connections ({max_connections})"),
            format!(
                "make it at most {max_connections}, or leave it out for a quarter of max_connections"
            ),
        );
    }
    let idle_timeout = c.duration(
        raw.idle_timeout,
        "daemon.limits.idle_timeout",
        DEFAULT_IDLE_TIMEOUT,
    );
    c.nonzero(idle_timeout, "daemon.limits.idle_timeout", "\"60s\"");
    let write_timeout = c.duration(
        raw.write_timeout,
        "daemon.limits.write_timeout",
        DEFAULT_WRITE_TIMEOUT,
    );
    c.nonzero(write_timeout, "daemon.limits.write_timeout", "\"5s\"");
    let heartbeat = c.duration(raw.heartbeat, "daemon.limits.heartbeat", DEFAULT_HEARTBEAT);
    c.nonzero(heartbeat, "daemon.limits.heartbeat", "\"30s\"");
    let default_wait = c.duration(
        raw.default_wait,
        "daemon.limits.default_wait",
        DEFAULT_DEFAULT_WAIT,
    );
    let max_wait = c.duration(raw.max_wait, "daemon.limits.max_wait", DEFAULT_MAX_WAIT);
    if default_wait > max_wait {
        c.problem(
            "daemon.limits.default_wait",
            format!(
                "{} is longer than max_wait ({})",
                humantime::format_duration(default_wait),
                humantime::format_duration(max_wait)
            ),
            "make default_wait at most max_wait",
        );
    }
    let login_timeout = c.duration(
        raw.login_timeout,
        "daemon.limits.login_timeout",
        DEFAULT_LOGIN_TIMEOUT,
    );
    c.nonzero(login_timeout, "daemon.limits.login_timeout", "\"30s\"");
    let shutdown_grace = c.duration(
        raw.shutdown_grace,
        "daemon.limits.shutdown_grace",
        DEFAULT_SHUTDOWN_GRACE,
    );
    c.nonzero(shutdown_grace, "daemon.limits.shutdown_grace", "\"20s\"");
    Limits {
        // The ranges were checked to fit in 32 bits, so these casts are exact.
        max_line_bytes: max_line_bytes as usize,
        max_connections: max_connections as usize,
        max_connections_per_uid: max_connections_per_uid as usize,
        idle_timeout,
        write_timeout,
        heartbeat,
        default_wait,
        max_wait,
        login_timeout,
        shutdown_grace,
    }
}
