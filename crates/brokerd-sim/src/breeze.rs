//! ICICI Breeze simulator: the auto-approved browser login that hands back
//! an `API_Session`, `customerdetails` (a GET with a JSON body) that turns
//! it into a session, and a signed `funds` call, in the wire shapes of
//! `shared/brokers/breeze.md`.
//!
//! Its knobs reproduce what matters to a daemon: both ways the session key
//! reaches the redirect URL, a login as the wrong user, session keys that
//! expire before they are used, sessions that end after 24 hours or at
//! midnight IST (whichever comes first), a regenerated app secret, killed
//! sessions, the ambiguous `Invalid Checksum` answer, and outages and rate
//! limits. Time is read from a given clock ([`BreezeSim::set_clock`]; the
//! system clock by default).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use brokerd_core::time::{SharedClock, SystemClock};
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use parking_lot::Mutex;
use rand::Rng;

use super::serve::Running;

mod control;
mod server;
#[cfg(test)]
mod tests;

/// How to start a simulator.
#[derive(Clone)]
pub struct BreezeSimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The apps the simulator knows.
    pub apps: Vec<BreezeSimApp>,
}

impl Default for BreezeSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            apps: vec![BreezeSimApp::demo()],
        }
    }
}

/// One Breeze app and the ICICI user who logs in through it. No `Debug`:
/// the keys are credentials, and a derived `Debug` is one `{:?}` from a log.
#[derive(Clone)]
pub struct BreezeSimApp {
    /// The app key (`api_key`, `AppKey`, `X-AppKey`).
    pub app_key: String,
    /// The app's secret key, checked inside `X-Checksum`.
    pub secret_key: String,
    /// `idirect_userid` of the person whose browser logins go through it.
    pub user_id: String,
    /// `idirect_user_name`.
    pub user_name: String,
    /// Where the browser login sends the session key; `None`: not
    /// registered, the login page answers 400.
    pub redirect_url: Option<String>,
}

impl BreezeSimApp {
    /// Fixed demo app: app key `demo+breeze=key^01` (characters that must be
    /// URL-encoded, on purpose), secret key `demo-breeze-secret-key`, user
    /// `BZ1234` ("DEMO BREEZE"), no redirect URL.
    pub fn demo() -> Self {
        Self {
            app_key: "demo+breeze=key^01".into(),
            secret_key: "demo-breeze-secret-key".into(),
            user_id: "BZ1234".into(),
            user_name: "DEMO BREEZE".into(),
            redirect_url: None,
        }
    }
}

/// How the browser step hands the session key to the redirect URL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// `302` to `<redirect_url>?apisession=<key>`.
    #[default]
    Query,
    /// A self-submitting HTML form POSTing the field `API_Session`.
    Form,
}

/// An injected `customerdetails` failure, consumed one per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreezeFail {
    /// That HTTP status (500 if not a valid one) with a JSON envelope.
    ServerError(u16),
    /// 503 with an HTML page, like a proxy in front of a dead server.
    Html,
    /// 404 with a web server's HTML page, as a host that has no Breeze API
    /// answers (a wrong `api_root`).
    NotFound,
    /// `Limit exceed: API call per minute.`
    RateLimit,
    /// `Resource not available.` (as when the daily quota is spent).
    ResourceNotAvailable,
}

/// Handle to a running simulator; cheap to clone. The server stops when
/// [`BreezeSim::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct BreezeSim {
    shared: Arc<Shared>,
    run: Arc<Running>,
}

struct Shared {
    base_url: String,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The sim's clock: the system clock, or a test's manual clock shared
    /// with the daemon.
    clock: SharedClock,
    /// When sessions end on the IST wall clock (`None`: no cut-off; the
    /// 24 h lifetime still applies).
    cutoff: Option<NaiveTime>,
    apps: Vec<BreezeSimApp>,
    delivery: Delivery,
    browser_user: Option<String>,
    key_ttl: Duration,
    tolerance: Option<Duration>,
    faults: VecDeque<BreezeFail>,
    latency: Duration,
    customerdetails: u64,
    funds: u64,
    /// Session key → its state.
    keys: HashMap<String, Key>,
    /// Session token → session key, for the signed calls.
    sessions: HashMap<String, String>,
    issued: Vec<String>,
}

/// One session key from a browser login.
struct Key {
    app: usize,
    user_id: String,
    user_name: String,
    /// When the browser login made it, on the sim's clock.
    minted: DateTime<Utc>,
    /// Turned into a session: the TTL no longer applies.
    exchanged: bool,
    /// When the session ends (24 h after its first exchange, or the
    /// cut-off before that), on the sim's clock.
    ends: Option<DateTime<Utc>>,
    killed: bool,
}

/// What `customerdetails` makes of a session key.
enum KeyCheck {
    /// A live session of this user.
    Live { user_id: String, user_name: String },
    /// Unknown, or another app's key: `Invalid session.`
    Unknown,
    /// Expired before use or killed: `Resource not available.`
    Gone,
}

impl Inner {
    fn app(&self, app_key: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.app_key == app_key)
    }

    /// A 7–8 digit number not used as a session key yet.
    fn fresh_key(&self) -> String {
        let mut rng = rand::thread_rng();
        loop {
            let k = rng.gen_range(1_000_000u32..100_000_000).to_string();
            if !self.keys.contains_key(&k) {
                return k;
            }
        }
    }

    /// A fresh session key for a login to `app`.
    fn mint(&mut self, app: usize) -> String {
        let key = self.fresh_key();
        let a = &self.apps[app];
        let (user_id, user_name) = match &self.browser_user {
            Some(u) => (u.clone(), format!("USER {u}")),
            None => (a.user_id.clone(), a.user_name.clone()),
        };
        let state = Key {
            app,
            user_id,
            user_name,
            minted: self.clock.now(),
            exchanged: false,
            ends: None,
            killed: false,
        };
        self.keys.insert(key.clone(), state);
        key
    }

    /// Checks `key` for `app`; a live, not yet exchanged key becomes a
    /// session (and its token is recorded).
    fn exchange(&mut self, app: usize, key: &str) -> KeyCheck {
        let now = self.clock.now();
        let ttl = TimeDelta::from_std(self.key_ttl).unwrap_or(TimeDelta::MAX);
        let cutoff = self.cutoff;
        let Some(k) = self.keys.get_mut(key).filter(|k| k.app == app) else {
            return KeyCheck::Unknown;
        };
        let ended = k.ends.is_some_and(|end| now >= end);
        if k.killed || ended || (!k.exchanged && now - k.minted > ttl) {
            return KeyCheck::Gone;
        }
        if !k.exchanged {
            k.ends = Some(session_end(now, cutoff));
        }
        k.exchanged = true;
        let (user_id, user_name) = (k.user_id.clone(), k.user_name.clone());
        let token = session_token(&user_id, key);
        if self
            .sessions
            .insert(token.clone(), key.to_string())
            .is_none()
        {
            self.issued.push(token);
        }
        KeyCheck::Live { user_id, user_name }
    }

    /// The app index of the live session `token`.
    fn live_session(&self, token: &str) -> Option<usize> {
        let k = self.keys.get(self.sessions.get(token)?)?;
        let ended = k.ends.is_some_and(|end| self.clock.now() >= end);
        (k.exchanged && !k.killed && !ended).then_some(k.app)
    }
}

/// When a session first exchanged at `now` ends: 24 hours later, or at the
/// IST cut-off before that.
fn session_end(now: DateTime<Utc>, cutoff: Option<NaiveTime>) -> DateTime<Utc> {
    let day = now + TimeDelta::hours(24);
    cutoff.map_or(day, |t| day.min(brokerd_core::time::ist::next_at(now, t)))
}

/// `base64("<user_id>:<session_key>")`, as Breeze builds `session_token`.
fn session_token(user_id: &str, key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user_id}:{key}"))
}

impl BreezeSim {
    /// Binds `cfg.listen`, spawns the server task and returns its handle.
    pub async fn start(cfg: BreezeSimConfig) -> std::io::Result<BreezeSim> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            inner: Mutex::new(Inner {
                clock: SystemClock::shared(),
                cutoff: Some(NaiveTime::MIN),
                apps: cfg.apps,
                delivery: Delivery::default(),
                browser_user: None,
                key_ttl: Duration::from_secs(3600),
                tolerance: None,
                faults: VecDeque::new(),
                latency: Duration::ZERO,
                customerdetails: 0,
                funds: 0,
                keys: HashMap::new(),
                sessions: HashMap::new(),
                issued: Vec::new(),
            }),
        });
        let app = server::router(shared.clone());
        let run = Running::spawn(listener, app, "breeze");
        tracing::debug!(%addr, "breeze sim listening");
        Ok(BreezeSim { shared, run })
    }

    /// `http://127.0.0.1:PORT`. The API root is this plus
    /// `/breezeapi/api/v1`, the login root this plus `/apiuser`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Registers where `app_key`'s browser logins are sent (ignored for an
    /// unknown app key).
    pub fn set_redirect_url(&self, app_key: &str, url: &str) {
        let mut g = self.shared.inner.lock();
        if let Some(i) = g.app(app_key) {
            g.apps[i].redirect_url = Some(url.to_string());
        }
    }

    /// How the browser step hands back the session key (default `Query`).
    pub fn set_delivery(&self, d: Delivery) {
        self.shared.inner.lock().delivery = d;
    }

    /// The next browser logins belong to this user instead of the app's
    /// (`None`: the app's own user again).
    pub fn set_browser_user(&self, user_id: Option<String>) {
        self.shared.inner.lock().browser_user = user_id;
    }

    /// Runs the sim on `clock` (a test's manual clock, shared with the
    /// daemon): session-key lifetimes, the sessions' 24 h and cut-off, the
    /// `X-Timestamp` check and latency follow it, so a test moves time
    /// instead of waiting for it.
    pub fn set_clock(&self, clock: SharedClock) {
        self.shared.inner.lock().clock = clock;
    }

    /// When sessions end on the IST wall clock (default midnight, Breeze's
    /// documented end of day; `None`: only the 24 h lifetime). Applies to
    /// sessions exchanged from now on.
    pub fn set_cutoff(&self, cutoff: Option<NaiveTime>) {
        self.shared.inner.lock().cutoff = cutoff;
    }

    /// How long an `API_Session` can be turned into a session (default 1 h).
    /// Once turned, the TTL no longer applies to it.
    pub fn set_session_key_ttl(&self, ttl: Duration) {
        self.shared.inner.lock().key_ttl = ttl;
    }

    /// The app's secret was regenerated: signed calls need `secret` now
    /// (ignored for an unknown app key).
    pub fn set_secret(&self, app_key: &str, secret: &str) {
        let mut g = self.shared.inner.lock();
        if let Some(i) = g.app(app_key) {
            g.apps[i].secret_key = secret.to_string();
        }
    }

    /// Largest accepted age (either way) of `X-Timestamp`; `None` (the
    /// default): only its format is checked.
    pub fn set_timestamp_tolerance(&self, tol: Option<Duration>) {
        self.shared.inner.lock().tolerance = tol;
    }

    /// Queues `n` failures, consumed one per `customerdetails` call.
    pub fn fail_next(&self, n: u32, fail: BreezeFail) {
        let mut g = self.shared.inner.lock();
        g.faults.extend(std::iter::repeat_n(fail, n as usize));
    }

    /// Delay added before every answer, control endpoints included.
    pub fn set_latency(&self, d: Duration) {
        self.shared.inner.lock().latency = d;
    }

    /// Ends every session and session key issued so far.
    pub fn kill_all_sessions(&self) {
        self.shared
            .inner
            .lock()
            .keys
            .values_mut()
            .for_each(|k| k.killed = true);
        tracing::debug!("breeze sim: all sessions killed");
    }

    /// A fresh session key for `app_key`, as if a person had logged in
    /// (subject to [`BreezeSim::set_browser_user`]). For an app key the sim
    /// does not know, a key no app owns (`customerdetails`: `Invalid session.`).
    pub fn mint_session_key(&self, app_key: &str) -> String {
        let mut g = self.shared.inner.lock();
        match g.app(app_key) {
            Some(i) => g.mint(i),
            None => g.fresh_key(),
        }
    }

    /// `customerdetails` calls received, failed and injected ones included.
    pub fn customerdetails_count(&self) -> u64 {
        self.shared.inner.lock().customerdetails
    }

    /// `funds` calls received, refused ones included.
    pub fn funds_count(&self) -> u64 {
        self.shared.inner.lock().funds
    }

    /// True when signed calls with `session_token` would get past the
    /// session check now.
    pub fn is_session_valid(&self, session_token: &str) -> bool {
        self.shared
            .inner
            .lock()
            .live_session(session_token)
            .is_some()
    }

    /// Every session token issued, oldest first (tests grep logs for them).
    pub fn issued_session_tokens(&self) -> Vec<String> {
        self.shared.inner.lock().issued.clone()
    }

    /// Stops the server: no new connections; answers in progress get one
    /// second before the task is aborted.
    pub async fn shutdown(&self) {
        self.run.shutdown().await;
    }
}
