//! Jainam / Symphony XTS simulator: the interactive and market-data login,
//! check and logout endpoints (see `shared/brokers/jainam.md`), with HS256
//! JWT tokens this simulator alone can validate, and knobs to kill tokens,
//! fail logins, add latency and change the status of "Invalid Token" answers.
//! With a pattern ([`XtsSimPattern`]) it serves any number of accounts
//! without registering each, and it measures the login load: logins per
//! account, their arrival times, the peak in flight, and an optional rate
//! limit answered with HTTP 429.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::serve::Running;
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};

use parking_lot::Mutex;
use rand::Rng;

use brokerd_core::Api;

mod control;
mod load;
#[cfg(test)]
mod load_tests;
mod pattern;
mod server;
#[cfg(test)]
mod tests;

pub use load::{RateLimit, peak_in_window};
pub use pattern::{KeyPattern, MAX_ID_LEN, XtsSimPattern};

/// How to start a simulator.
#[derive(Clone)]
pub struct XtsSimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Market-data path prefix, e.g. `/apibinarymarketdata`.
    pub market_prefix: String,
    /// The accounts the simulator knows.
    pub users: Vec<XtsSimUser>,
    /// Multi-account mode: every key pair of this pattern is an account
    /// too (`None`, the default: only `users`).
    pub pattern: Option<XtsSimPattern>,
}

impl Default for XtsSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            market_prefix: "/apibinarymarketdata".into(),
            users: vec![XtsSimUser::demo()],
            pattern: None,
        }
    }
}

/// One simulated XTS account with its two app-key pairs.
#[derive(Clone)]
pub struct XtsSimUser {
    /// The broker's user id, returned as `userID`.
    pub user_id: String,
    /// Interactive app key.
    pub interactive_app_key: String,
    /// Interactive secret key.
    pub interactive_secret_key: String,
    /// Market-data app key.
    pub market_app_key: String,
    /// Market-data secret key.
    pub market_secret_key: String,
    /// False for dealer ("Pro") logins, which must pass `clientID`.
    pub is_investor_client: bool,
    /// Client codes the login may act for.
    pub client_codes: Vec<String>,
    /// Returned verbatim by the market-data login.
    pub application_expiry_date: String,
}

impl XtsSimUser {
    /// Fixed demo account: user `DEMO01`, keys `demo-interactive-key` /
    /// `demo-interactive-secret` and `demo-market-key` / `demo-market-secret`.
    pub fn demo() -> Self {
        Self {
            user_id: "DEMO01".into(),
            interactive_app_key: "demo-interactive-key".into(),
            interactive_secret_key: "demo-interactive-secret".into(),
            market_app_key: "demo-market-key".into(),
            market_secret_key: "demo-market-secret".into(),
            is_investor_client: true,
            client_codes: vec!["DEMO01".into()],
            application_expiry_date: "2027-03-31".into(),
        }
    }

    fn keys(&self, api: Api) -> (&str, &str) {
        match api {
            Api::Interactive => (&self.interactive_app_key, &self.interactive_secret_key),
            Api::Market => (&self.market_app_key, &self.market_secret_key),
        }
    }
}

/// An injected login failure, consumed by one login attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// That HTTP status with an XTS error envelope (500 if not a valid status).
    ServerError(u16),
    /// The wrong-secret answer even when the secret is right.
    WrongSecret,
    /// 502 with an HTML body, like a proxy in front of a dead server.
    Html,
    /// The login is processed at once but its answer is held back this long,
    /// so the client times out while the server did log in.
    Timeout(Duration),
}

/// Handle to a running simulator; cheap to clone. The server stops when
/// [`XtsSim::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct XtsSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    run: Arc<Running>,
}

struct Shared {
    pattern: Option<XtsSimPattern>,
    key: jsonwebtoken::EncodingKey,
    inner: Mutex<Inner>,
    /// Atomics, not under `inner`: a guard counts a login until its answer
    /// leaves or its connection is dropped.
    in_flight: Arc<load::InFlight>,
}

/// One account: a configured user or one made by the pattern.
struct Account {
    user: Arc<XtsSimUser>,
    /// Login attempts naming this account's app key, by api.
    logins: [u64; 2],
    /// Logins that issued a token, by api.
    successes: [u64; 2],
}

struct ApiState {
    lifetime: Duration,
    include_exp: bool,
    kill_after: Option<Duration>,
    faults: VecDeque<FailMode>,
    logins: u64,
    /// Session checks (profile, clientConfig) received.
    checks: u64,
    /// When each session check arrived.
    check_times: Vec<chrono::DateTime<chrono::Utc>>,
    /// When each login request arrived, for tests of the spacing between
    /// logins (measured here, not by polling the count).
    login_times: Vec<chrono::DateTime<chrono::Utc>>,
    successes: u64,
    logouts: u64,
}

struct Inner {
    /// The sim's clock: the system clock, or a test's manual clock shared
    /// with the daemon (token deadlines, kill-after, claims, latency).
    clock: SharedClock,
    apis: [ApiState; 2],
    /// The configured users first, then pattern accounts as they appear.
    accounts: Vec<Account>,
    /// How many of `accounts` are configured users.
    configured: usize,
    /// Pattern account id → index in `accounts`.
    pattern_ids: HashMap<String, usize>,
    /// Added to every login answer (after the login is processed).
    login_latency: Duration,
    /// Added to every session check (profile, clientConfig).
    check_latency: Duration,
    rate: load::RateWindow,
    /// Seconds added to the real clock for the `iat`/`exp` claims: a
    /// server clock behind the daemon's makes sessions arrive expired.
    clock_offset_secs: i64,
    latency: Duration,
    invalid_status: u16,
    tokens: HashMap<String, Issued>,
    issued: Vec<String>,
}

struct Issued {
    api: Api,
    user: usize,
    at: chrono::DateTime<chrono::Utc>,
    /// `None` when the lifetime overflows: never expires.
    deadline: Option<chrono::DateTime<chrono::Utc>>,
    revoked: bool,
}

fn idx(api: Api) -> usize {
    match api {
        Api::Interactive => 0,
        Api::Market => 1,
    }
}

impl Inner {
    /// The account `app_key` names for `api`: a configured user's, or one
    /// following `pattern` (made at its first mention).
    fn account_of(
        &mut self,
        pattern: Option<&XtsSimPattern>,
        api: Api,
        app_key: &str,
    ) -> Option<usize> {
        let configured = self.accounts[..self.configured]
            .iter()
            .position(|a| a.user.keys(api).0 == app_key);
        if configured.is_some() {
            return configured;
        }
        let pattern = pattern?;
        let id = pattern.id_of(api, app_key)?;
        if let Some(i) = self.pattern_ids.get(id) {
            return Some(*i);
        }
        let user = pattern.user(id)?;
        self.accounts.push(Account::new(user));
        self.pattern_ids
            .insert(id.to_owned(), self.accounts.len() - 1);
        Some(self.accounts.len() - 1)
    }

    /// `count` of every account where it is not zero, by user id.
    fn per_account(&self, count: impl Fn(&Account) -> u64) -> BTreeMap<String, u64> {
        self.accounts
            .iter()
            .map(|a| (a.user.user_id.clone(), count(a)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The token's record if it is alive (for `api`, when given). Kill-after
    /// is read at check time so it can be switched on for tokens already out.
    fn live(&self, token: &str, api: Option<Api>) -> Option<&Issued> {
        let t = self.tokens.get(token)?;
        let now = self.clock.now();
        let kill = self.apis[idx(t.api)].kill_after;
        let alive = !t.revoked
            && api.is_none_or(|a| a == t.api)
            && t.deadline.is_none_or(|d| now < d)
            && kill.is_none_or(|k| (now - t.at).to_std().unwrap_or_default() < k);
        alive.then_some(t)
    }
}

impl Account {
    fn new(user: XtsSimUser) -> Self {
        Self {
            user: Arc::new(user),
            logins: [0; 2],
            successes: [0; 2],
        }
    }
}

impl XtsSim {
    /// Binds `cfg.listen`, spawns the server task and returns its handle.
    pub async fn start(cfg: XtsSimConfig) -> std::io::Result<XtsSim> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let secret: [u8; 32] = rand::thread_rng().r#gen();
        let api_state = || ApiState {
            lifetime: Duration::from_secs(24 * 3600),
            include_exp: true,
            kill_after: None,
            faults: VecDeque::new(),
            logins: 0,
            checks: 0,
            check_times: Vec::new(),
            login_times: Vec::new(),
            successes: 0,
            logouts: 0,
        };
        let configured = cfg.users.len();
        let shared = Arc::new(Shared {
            pattern: cfg.pattern,
            key: jsonwebtoken::EncodingKey::from_secret(&secret),
            in_flight: Arc::default(),
            inner: Mutex::new(Inner {
                clock: SystemClock::shared(),
                apis: [api_state(), api_state()],
                accounts: cfg.users.into_iter().map(Account::new).collect(),
                configured,
                pattern_ids: HashMap::new(),
                login_latency: Duration::ZERO,
                check_latency: Duration::ZERO,
                rate: load::RateWindow::default(),
                clock_offset_secs: 0,
                latency: Duration::ZERO,
                invalid_status: 400,
                tokens: HashMap::new(),
                issued: Vec::new(),
            }),
        });
        let app = server::router(shared.clone(), &cfg.market_prefix);
        let run = Running::spawn(listener, app, "xts");
        tracing::debug!(%addr, "xts sim listening");
        Ok(XtsSim { shared, addr, run })
    }

    /// The root URL, e.g. `http://127.0.0.1:PORT` (loopback when bound to
    /// an unspecified address).
    pub fn base_url(&self) -> String {
        let mut a = self.addr;
        if a.ip().is_unspecified() {
            a.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{a}")
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lifetime of tokens issued from now on (default 24h): the JWT `exp`
    /// and the server's own deadline. The server enforces it even when
    /// `exp` is left out of the token.
    pub fn set_token_lifetime(&self, api: Api, lifetime: Duration) {
        self.shared.inner.lock().apis[idx(api)].lifetime = lifetime;
    }

    /// Whether tokens issued from now on carry an `exp` claim (default yes).
    pub fn set_include_exp(&self, api: Api, include: bool) {
        self.shared.inner.lock().apis[idx(api)].include_exp = include;
    }

    /// Rejects every token of `api` older than `after`, whatever its `exp`
    /// (simulates another program logging in). Applies to tokens already
    /// issued too; `None` switches it off.
    pub fn set_kill_after(&self, api: Api, after: Option<Duration>) {
        self.shared.inner.lock().apis[idx(api)].kill_after = after;
    }

    /// Sets the server's clock to the real one plus `secs` for the JWT
    /// claims of tokens issued from now on (its own deadlines stay real):
    /// with `-3600`, a 30-minute token arrives with an `exp` half an hour in
    /// the past, as when the daemon's host clock runs ahead.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.inner.lock().clock_offset_secs = secs;
    }

    /// Revokes every token issued so far.
    pub fn reject_all_now(&self) {
        let mut g = self.shared.inner.lock();
        g.tokens.values_mut().for_each(|t| t.revoked = true);
        tracing::debug!("xts sim: all tokens revoked");
    }

    /// Queues `n` failures of `mode` for the next login attempts of `api`.
    pub fn fail_next_logins(&self, api: Api, n: u32, mode: FailMode) {
        let mut g = self.shared.inner.lock();
        let q = &mut g.apis[idx(api)].faults;
        q.extend(std::iter::repeat_n(mode, n as usize));
    }

    /// Runs the sim on `clock` (a test's manual clock, shared with the
    /// daemon): token deadlines, kill-after, the claims and latency follow it.
    pub fn set_clock(&self, clock: SharedClock) {
        self.shared.inner.lock().clock = clock;
    }

    /// Delay added before every answer, control endpoints included.
    pub fn set_latency(&self, d: Duration) {
        self.shared.inner.lock().latency = d;
    }

    /// Delay added to every login answer, by the sim's clock: the login is
    /// processed (its token issued, the account's older one killed) when it
    /// arrives, and the answer leaves this much later. Answers of the rate
    /// limit and of injected server errors are not delayed.
    pub fn set_login_latency(&self, d: Duration) {
        self.shared.inner.lock().login_latency = d;
    }

    /// Delay added to every session check (`profile`, `clientConfig`),
    /// by the sim's clock.
    pub fn set_check_latency(&self, d: Duration) {
        self.shared.inner.lock().check_latency = d;
    }

    /// Answers logins beyond `limit` with HTTP 429 (`None`, the default:
    /// no limit). Starts a new window.
    pub fn set_login_rate_limit(&self, limit: Option<RateLimit>) {
        self.shared.inner.lock().rate.set(limit);
    }

    /// Logins answered 429 by the rate limit.
    pub fn rate_limited_logins(&self) -> u64 {
        self.shared.inner.lock().rate.refused
    }

    /// HTTP status of "Invalid Token" answers (default 400; 400 is used if
    /// `status` is not a valid HTTP status). A missing header is always 401.
    pub fn set_invalid_token_status(&self, status: u16) {
        self.shared.inner.lock().invalid_status = status;
    }

    /// Login attempts received, failed and injected-failure ones included.
    pub fn login_count(&self, api: Api) -> u64 {
        self.shared.inner.lock().apis[idx(api)].logins
    }

    /// When each login attempt arrived, in order (as [`Self::login_count`]
    /// counts them), on the sim's clock (without the clock offset).
    pub fn login_times(&self, api: Api) -> Vec<chrono::DateTime<chrono::Utc>> {
        self.shared.inner.lock().apis[idx(api)].login_times.clone()
    }

    /// Login attempts per account for `api`, by user id: every attempt
    /// that named the account's app key (wrong secrets, injected failures
    /// and rate-limited ones included). Accounts never named are absent.
    pub fn logins_per_account(&self, api: Api) -> BTreeMap<String, u64> {
        self.shared.inner.lock().per_account(|a| a.logins[idx(api)])
    }

    /// Logins that issued a token, per account for `api`, by user id.
    pub fn successful_logins_per_account(&self, api: Api) -> BTreeMap<String, u64> {
        self.shared
            .inner
            .lock()
            .per_account(|a| a.successes[idx(api)])
    }

    /// The most login requests (both apis) that arrived within any
    /// `window`: with one second, the peak logins per second.
    pub fn peak_logins_in(&self, window: Duration) -> usize {
        let g = self.shared.inner.lock();
        let mut times = g.apis[0].login_times.clone();
        times.extend_from_slice(&g.apis[1].login_times);
        drop(g);
        peak_in_window(&times, window)
    }

    /// Login requests (both apis) being answered right now.
    pub fn logins_in_flight(&self) -> usize {
        self.shared.in_flight.current()
    }

    /// The most login requests (both apis) in flight at once since the
    /// last call (or the start); the next peak starts from those in
    /// flight now.
    pub fn take_peak_logins_in_flight(&self) -> usize {
        self.shared.in_flight.take_peak()
    }

    /// Session checks (`profile` for interactive, `clientConfig` for
    /// market) received, valid or not.
    pub fn check_count(&self, api: Api) -> u64 {
        self.shared.inner.lock().apis[idx(api)].checks
    }

    /// When each session check of `api` arrived by the sim's clock, in
    /// order (as [`Self::check_count`] counts them).
    pub fn check_times(&self, api: Api) -> Vec<chrono::DateTime<chrono::Utc>> {
        self.shared.inner.lock().apis[idx(api)].check_times.clone()
    }

    /// Logins that issued a token.
    pub fn successful_logins(&self, api: Api) -> u64 {
        self.shared.inner.lock().apis[idx(api)].successes
    }

    /// Logouts that revoked a live token (rejected logouts do not count).
    pub fn logout_count(&self, api: Api) -> u64 {
        self.shared.inner.lock().apis[idx(api)].logouts
    }

    /// True when the server would accept `token` on its own api now.
    pub fn is_token_valid(&self, token: &str) -> bool {
        self.shared.inner.lock().live(token, None).is_some()
    }

    /// Every token ever issued, oldest first (tests grep logs for them).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.inner.lock().issued.clone()
    }

    /// Stops the server: no new connections; answers still being held back
    /// get one second before the task is aborted.
    pub async fn shutdown(&self) {
        self.run.shutdown().await;
    }
}
