//! Zerodha Kite Connect v3 simulator: the auto-approved browser login that
//! redirects with a request token, the checksum exchange at
//! `POST /session/token`, `GET /user/profile`, the API logout and the
//! KiteTicker websocket at `/` ([`KiteSim::ticker_url`]), in the wire
//! shapes of `shared/brokers/zerodha.md`.
//!
//! Its knobs reproduce what trips up real logins: request tokens that are
//! single-use and short-lived, a browser login as the wrong Kite user, a
//! second login that kills (or returns) the first token, a master logout
//! from Kite web, access tokens that die at the daily cut-off (06:00 IST),
//! and overloaded or broken answers at the exchange. Time is read from a
//! given clock ([`KiteSim::set_clock`]; the system clock by default).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};
use chrono::{DateTime, NaiveTime, Utc};
use parking_lot::Mutex;
use rand::Rng;
use rand::distributions::Alphanumeric;

use super::serve::Running;

mod control;
mod server;
#[cfg(test)]
mod tests;
mod ticker;

pub use ticker::TICK_EVERY;

/// How long a request token lives unless told otherwise (Kite: "a few
/// minutes").
const DEFAULT_REQUEST_TOKEN_TTL: Duration = Duration::from_secs(300);

/// How to start a simulator.
#[derive(Clone)]
pub struct KiteSimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The Kite Connect apps the simulator knows.
    pub apps: Vec<KiteSimApp>,
}

impl Default for KiteSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            apps: vec![KiteSimApp::demo()],
        }
    }
}

/// One Kite Connect app and the Kite user who owns it. No `Debug`: the
/// secret is a credential, and a derived `Debug` is one `{:?}` away from a
/// log.
#[derive(Clone)]
pub struct KiteSimApp {
    /// The app's `api_key`.
    pub api_key: String,
    /// The app's `api_secret`, checked inside the exchange checksum.
    pub api_secret: String,
    /// The Kite user whose browser logins the app sees by default.
    pub user_id: String,
    /// Returned as `user_name` (its first word as `user_shortname`).
    pub user_name: String,
    /// The redirect URL registered in the developer console; `None` until
    /// [`KiteSim::set_redirect_url`] (the browser login refuses until then).
    pub redirect_url: Option<String>,
}

impl KiteSimApp {
    /// Fixed demo app: api_key `demokitekey01`, api_secret
    /// `demo-kite-api-secret`, user `ZD1234` ("DEMO KITE"), no redirect URL.
    pub fn demo() -> Self {
        Self {
            api_key: "demokitekey01".into(),
            api_secret: "demo-kite-api-secret".into(),
            user_id: "ZD1234".into(),
            user_name: "DEMO KITE".into(),
            redirect_url: None,
        }
    }
}

/// What a second successful exchange for the same app and user does to the
/// access token of the first (the sources disagree; both are simulated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecondLogin {
    /// A new access token is issued and the user's previous one dies.
    #[default]
    NewTokenKillsOld,
    /// The live access token is returned again (a new one if none is live).
    SameToken,
}

/// An injected `POST /session/token` failure, consumed one per call in the
/// order queued. The request is not processed: the request token stays
/// unspent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KiteFail {
    /// That HTTP status (500 if not a valid one) with a `GeneralException`
    /// error envelope.
    ServerError(u16),
    /// 502 with an HTML page, like a proxy in front of a dead server.
    Html,
    /// 404 with a web server's HTML page, as a host that has no Kite API
    /// answers (a wrong `api_root`, such as the login site's host).
    NotFound,
    /// 429 `{"status":"error","message":"Too many requests","error_type":"NetworkException"}`.
    RateLimit,
}

/// Handle to a running simulator; cheap to clone. The server stops when
/// [`KiteSim::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct KiteSim {
    shared: Arc<Shared>,
    run: Arc<Running>,
}

struct Shared {
    apps: Vec<KiteSimApp>,
    base_url: String,
    /// Bumped to close every open ticker connection.
    ticker_drop: tokio::sync::watch::Sender<u64>,
    inner: Mutex<Inner>,
}

/// One websocket connection attempt at the ticker, as the simulator saw it.
/// No `Debug`: it holds an access token.
#[derive(Clone, PartialEq, Eq)]
pub struct TickerAttempt {
    /// The `api_key` of the URL.
    pub api_key: String,
    /// The `access_token` of the URL.
    pub access_token: String,
    /// Whether the upgrade was accepted.
    pub accepted: bool,
    /// The HTTP status answered: 101 (upgraded), 403 (dead or unknown
    /// token) or 400 (a live token without a websocket upgrade).
    pub status: u16,
    /// The `X-Kite-Version` header the client sent (KiteTicker sends `3`).
    pub kite_version: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// Every instrument token subscribed on this connection, in order.
    pub subscribed: Vec<u32>,
    /// Whether the connection is open now.
    pub open: bool,
}

struct Inner {
    /// The sim's clock: the system clock, or a test's manual clock shared
    /// with the daemon.
    clock: SharedClock,
    /// When access tokens die, on the IST wall clock (`None`: never).
    cutoff: Option<NaiveTime>,
    /// Registered redirect URL per app, same order as `Shared::apps`.
    redirects: Vec<Option<String>>,
    request_ttl: Duration,
    browser_user: Option<String>,
    second_login: SecondLogin,
    faults: VecDeque<KiteFail>,
    latency: Duration,
    exchanges: u64,
    successes: u64,
    profiles: u64,
    logouts: u64,
    /// Unspent request tokens; a token leaves the map when it is used.
    requests: HashMap<String, Pending>,
    /// Every access token issued, live or not.
    sessions: HashMap<String, Session>,
    issued: Vec<String>,
    /// The `data` of the last successful `POST /session/token` answer.
    last_exchange: Option<serde_json::Value>,
    /// Every ticker connection attempt, oldest first.
    ticker: Vec<TickerAttempt>,
}

/// A request token from a browser login, waiting for its exchange.
struct Pending {
    app: usize,
    user_id: String,
    /// When the browser login made it, on the sim's clock.
    at: DateTime<Utc>,
}

/// An access token and what the exchange answered with it.
struct Session {
    app: usize,
    user_id: String,
    public_token: String,
    login_time: String,
    revoked: bool,
    /// The first cut-off after the exchange, on the sim's clock (`None`:
    /// no cut-off was set).
    expires_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Neither revoked nor past its cut-off at `now`.
    fn alive(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|end| now < end)
    }
}

impl Inner {
    /// The session of `access_token` if it is alive and belongs to `app`.
    fn live(&self, app: usize, access_token: &str) -> Option<&Session> {
        let now = self.clock.now();
        self.sessions
            .get(access_token)
            .filter(|s| s.alive(now) && s.app == app)
    }

    /// Every access token dies (a master logout from Kite web).
    fn kill_all(&mut self) {
        self.sessions.values_mut().for_each(|s| s.revoked = true);
    }

    fn queue_faults(&mut self, n: u32, fail: KiteFail) {
        self.faults.extend(std::iter::repeat_n(fail, n as usize));
    }

    /// A fresh request token for a browser login to `app`, for the browser
    /// user if one is set, else the app's own user.
    fn mint(&mut self, apps: &[KiteSimApp], app: usize) -> String {
        let token = random_alnum(32);
        let user_id = self
            .browser_user
            .clone()
            .unwrap_or_else(|| apps[app].user_id.clone());
        let pending = Pending {
            app,
            user_id,
            at: self.clock.now(),
        };
        self.requests.insert(token.clone(), pending);
        self.issued.push(token.clone());
        token
    }
}

/// `n` random ASCII letters and digits.
fn random_alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

impl Shared {
    fn app_index(&self, api_key: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.api_key == api_key)
    }
}

impl KiteSim {
    /// Binds `cfg.listen`, spawns the server task and returns its handle.
    pub async fn start(cfg: KiteSimConfig) -> std::io::Result<KiteSim> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let redirects = cfg.apps.iter().map(|a| a.redirect_url.clone()).collect();
        let shared = Arc::new(Shared {
            apps: cfg.apps,
            base_url: format!("http://{addr}"),
            ticker_drop: tokio::sync::watch::Sender::new(0),
            inner: Mutex::new(Inner {
                clock: SystemClock::shared(),
                cutoff: NaiveTime::from_hms_opt(6, 0, 0),
                redirects,
                request_ttl: DEFAULT_REQUEST_TOKEN_TTL,
                browser_user: None,
                second_login: SecondLogin::default(),
                faults: VecDeque::new(),
                latency: Duration::ZERO,
                exchanges: 0,
                successes: 0,
                profiles: 0,
                logouts: 0,
                requests: HashMap::new(),
                sessions: HashMap::new(),
                issued: Vec::new(),
                last_exchange: None,
                ticker: Vec::new(),
            }),
        });
        let app = server::router(shared.clone());
        let run = Running::spawn(listener, app, "kite");
        tracing::debug!(%addr, "kite sim listening");
        Ok(KiteSim { shared, run })
    }

    /// `http://127.0.0.1:PORT`: both the API root and the login root.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `ws://127.0.0.1:PORT`: the KiteTicker root (Kite's is
    /// `wss://ws.kite.trade`), for `KiteTicker(root=...)`.
    pub fn ticker_url(&self) -> String {
        self.shared.base_url.replacen("http://", "ws://", 1)
    }

    /// Every ticker connection attempt so far, oldest first.
    pub fn ticker_attempts(&self) -> Vec<TickerAttempt> {
        self.shared.inner.lock().ticker.clone()
    }

    /// Closes every open ticker connection (a close frame, then the
    /// socket), as a network blip would; clients reconnect on their own.
    pub fn drop_ticker_connections(&self) {
        self.shared.ticker_drop.send_modify(|n| *n += 1);
    }

    /// Registers `url` as the redirect URL of the app `api_key` (what the
    /// developer console does). Unknown api keys are ignored.
    pub fn set_redirect_url(&self, api_key: &str, url: &str) {
        if let Some(i) = self.shared.app_index(api_key) {
            self.shared.inner.lock().redirects[i] = Some(url.to_string());
        }
    }

    /// Runs the sim on `clock` (a test's manual clock, shared with the
    /// daemon): request-token lifetimes, the access tokens' cut-off,
    /// `login_time` and latency follow it, so a test moves time instead of
    /// waiting for it.
    pub fn set_clock(&self, clock: SharedClock) {
        self.shared.inner.lock().clock = clock;
    }

    /// When access tokens die, on the IST wall clock (default 06:00, Kite's
    /// documented roll-over; `None`: never). Applies to tokens issued from
    /// now on.
    pub fn set_cutoff(&self, cutoff: Option<NaiveTime>) {
        self.shared.inner.lock().cutoff = cutoff;
    }

    /// How long a request token may wait for its exchange (default 300 s).
    /// Read at exchange time, so it applies to tokens already out too.
    pub fn set_request_token_ttl(&self, ttl: Duration) {
        self.shared.inner.lock().request_ttl = ttl;
    }

    /// Browser logins from now on (and [`KiteSim::mint_request_token`])
    /// produce sessions of this Kite user instead of the app's own user;
    /// `None` goes back to the app's user.
    pub fn set_browser_user(&self, user_id: Option<String>) {
        self.shared.inner.lock().browser_user = user_id;
    }

    /// What a second exchange for the same app and user does (see
    /// [`SecondLogin`]).
    pub fn set_second_login(&self, mode: SecondLogin) {
        self.shared.inner.lock().second_login = mode;
    }

    /// Queues `n` failures of the next `POST /session/token` calls.
    pub fn fail_next_exchanges(&self, n: u32, fail: KiteFail) {
        self.shared.inner.lock().queue_faults(n, fail);
    }

    /// Delay added before every answer, control endpoints included.
    pub fn set_latency(&self, d: Duration) {
        self.shared.inner.lock().latency = d;
    }

    /// Kills every access token issued so far (a master logout from Kite
    /// web). Unspent request tokens stay good.
    pub fn kill_all_sessions(&self) {
        self.shared.inner.lock().kill_all();
        tracing::debug!("kite sim: all sessions killed");
    }

    /// A request token as if a person had just logged in through the
    /// browser for the app `api_key` (honours [`KiteSim::set_browser_user`]).
    /// For an unknown api key the token is recorded nowhere, so every
    /// exchange of it fails.
    pub fn mint_request_token(&self, api_key: &str) -> String {
        match self.shared.app_index(api_key) {
            Some(i) => self.shared.inner.lock().mint(&self.shared.apps, i),
            None => random_alnum(32),
        }
    }

    /// `POST /session/token` calls received, failed and injected ones
    /// included.
    pub fn exchange_count(&self) -> u64 {
        self.shared.inner.lock().exchanges
    }

    /// Exchanges that answered with an access token.
    pub fn successful_exchanges(&self) -> u64 {
        self.shared.inner.lock().successes
    }

    /// `GET /user/profile` calls received, whatever the answer.
    pub fn profile_count(&self) -> u64 {
        self.shared.inner.lock().profiles
    }

    /// `DELETE /session/token` calls received, whatever the answer.
    pub fn logout_count(&self) -> u64 {
        self.shared.inner.lock().logouts
    }

    /// True when `access_token` would be accepted now (by the sim's clock).
    pub fn is_token_valid(&self, access_token: &str) -> bool {
        let g = self.shared.inner.lock();
        let now = g.clock.now();
        g.sessions.get(access_token).is_some_and(|s| s.alive(now))
    }

    /// Every request token and access token issued, oldest first (tests
    /// grep logs for them). An access token returned again under
    /// [`SecondLogin::SameToken`] is listed once.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.inner.lock().issued.clone()
    }

    /// The `data` object of the last successful `POST /session/token`
    /// answer, as sent (access token included: for tests comparing a
    /// session with it).
    pub fn last_exchange_answer(&self) -> Option<serde_json::Value> {
        self.shared.inner.lock().last_exchange.clone()
    }

    /// Stops the server: no new connections; answers still being held back
    /// get one second before the task is aborted.
    pub async fn shutdown(&self) {
        self.drop_ticker_connections();
        self.run.shutdown().await;
    }
}
