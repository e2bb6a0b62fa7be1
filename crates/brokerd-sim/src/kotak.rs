//! Kotak Neo Trade API simulator: the two-step TOTP + MPIN login
//! (`tradeApiLogin`, then `tradeApiValidate`) and four post-login calls,
//! in the wire shapes of `shared/brokers/kotak_neo.md`, with HS256 JWTs this
//! simulator alone can validate.
//!
//! Its knobs reproduce what has hurt users: a stale TOTP (every code
//! received is recorded with the 30 s step it belonged to), a login whose
//! answer never comes back (held until released, so a test can kill the
//! client while it waits), trade tokens the
//! server drops seconds after login while their `exp` is hours away (a second
//! program logging in to the same account), every known shape of the
//! dead-session and IP-rule answers, and a broker clock that is off.
//! `tradeApiValidate` answers `token`, `sid`, `rid`, `baseUrl` (this
//! server), `dataCenter`, `kType`, `status` and an empty `hsServerId`, plus
//! `feedUrl`/`rtUrl` when a test sets them ([`KotakSim::set_feed_urls`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::serve::Running;
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use rand::Rng;

mod control;
mod server;
#[cfg(test)]
mod tests;

/// Length of one TOTP step, seconds (standard authenticator TOTP).
const STEP_SECS: i64 = 30;

/// How to start a simulator.
#[derive(Clone)]
pub struct KotakSimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The accounts the simulator knows.
    pub users: Vec<KotakSimUser>,
}

impl Default for KotakSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            users: vec![KotakSimUser::demo()],
        }
    }
}

/// One simulated Kotak Neo account. No `Debug`: every field but the names
/// is a credential, and a derived `Debug` is one `{:?}` away from a log.
#[derive(Clone)]
pub struct KotakSimUser {
    /// The API access token from the Neo dashboard, sent raw in
    /// `Authorization` (the SDK's `consumer_key`).
    pub access_token: String,
    /// Mobile number with ISD code, `+91XXXXXXXXXX`; compared exactly.
    pub mobile: String,
    /// Unique client code.
    pub ucc: String,
    /// Six-digit MPIN checked by `tradeApiValidate`.
    pub mpin: String,
    /// TOTP seed, base32 (RFC 4648; case, spaces and `=` padding ignored),
    /// at least 16 bytes once decoded.
    pub totp_seed: String,
    /// Returned as `greetingName`.
    pub greeting_name: String,
    /// Returned as `dataCenter`.
    pub data_center: String,
}

impl KotakSimUser {
    /// Fixed demo account: access token `demo-kotak-access-token`, mobile
    /// `+919999900001`, UCC `DEMO1`, MPIN `123456`, TOTP seed
    /// `JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP` (20 bytes).
    pub fn demo() -> Self {
        Self {
            access_token: "demo-kotak-access-token".into(),
            mobile: "+919999900001".into(),
            ucc: "DEMO1".into(),
            mpin: "123456".into(),
            totp_seed: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            greeting_name: "DEMO USER".into(),
            data_center: "gdc".into(),
        }
    }
}

/// An injected login failure. All but `WrongMpin` are consumed one per
/// `tradeApiLogin` attempt, in the order queued; `WrongMpin` has its own
/// queue, consumed one per `tradeApiValidate` attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KotakFail {
    /// That HTTP status (500 if not a valid one) with
    /// `{"stCode":code,"errMsg":"Internal server error","status":"failure"}`.
    ServerError(u16),
    /// HTTP 424, Kotak's "temporary backend issue, retry later".
    Status424,
    /// 502 with an HTML page, like a proxy in front of a dead server.
    Html,
    /// 404 with a web server's HTML page, as a host that has no Kotak login
    /// endpoint answers (a wrong `login_host`).
    NotFound,
    /// The login is processed at once (the TOTP is spent, a view token is
    /// issued) but the answer is held back this long, so a client with a
    /// shorter timeout gives up although the server did its part.
    Timeout(Duration),
    /// The wrong-TOTP answer even for the right code (which is not spent).
    WrongTotp,
    /// The wrong-MPIN answer at the next validate, even for the right MPIN.
    WrongMpin,
    /// The unknown-UCC answer even for the right UCC.
    WrongUcc,
    /// The gateway's 900901 fault, as for a wrong access token.
    BadAccessToken,
}

/// How post-login calls answer a dead, unknown or mismatched session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeadShape {
    /// HTTP 401 `{"message":"Invalid session, please re-login"}`.
    #[default]
    Http401,
    /// HTTP 200 `{"stCode":100022,"errMsg":"invalid session token","stat":"Not_Ok"}`.
    Code100022,
    /// HTTP 401 with the API gateway's `{"fault":{"code":900901,…}}`.
    Fault900901,
    /// HTTP 200 with the gateway fault flattened, `code` a string (seen in
    /// seed 000): `{"code":"900901","message":"Invalid Credentials",…}`.
    Flattened900901,
}

/// An IP rule that post-login calls break while the session is alive.
/// Neither means the session is dead: a client must not log in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpRule {
    /// `{"stCode":100008,"errMsg":"unauthorized"}`: IP not whitelisted.
    NotWhitelisted,
    /// `{"stCode":1037,…}`: the session was created from another IP.
    SessionIpMismatch,
}

/// One TOTP the simulator received on `tradeApiLogin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpAttempt {
    /// When it arrived, by the sim clock, Unix milliseconds.
    pub at_unix_ms: i64,
    /// The 30 s step of the sim clock when it arrived.
    pub step: i64,
    /// Which of the steps `step - 1`, `step`, `step + 1` the code belongs
    /// to for the UCC in the request; `None` if none (or unknown UCC).
    pub matched_step: Option<i64>,
    /// Whether the login was accepted with it.
    pub accepted: bool,
}

/// Handle to a running simulator; cheap to clone. The server stops when
/// [`KotakSim::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct KotakSim {
    shared: Arc<Shared>,
    run: Arc<Running>,
}

struct Shared {
    users: Vec<KotakSimUser>,
    /// One per user, same order; built at start so a bad seed fails early.
    totps: Vec<totp_rs::TOTP>,
    key: jsonwebtoken::EncodingKey,
    /// Returned as `baseUrl`: post-login calls come back to this server.
    base_url: String,
    /// While true, `tradeApiLogin` answers are held back (the login itself
    /// is processed). A watch, so held answers go out when it turns false.
    hold: tokio::sync::watch::Sender<bool>,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The clock the sim's clock runs on (plus `clock_offset`): the system
    /// clock, or a test's manual clock shared with the daemon.
    clock: SharedClock,
    clock_offset: i64,
    latency: Duration,
    lifetime: Option<Duration>,
    kill_after: Option<Duration>,
    dead_shape: DeadShape,
    ip_rule: Option<IpRule>,
    one_session: bool,
    login_faults: VecDeque<KotakFail>,
    mpin_faults: u32,
    logins: u64,
    /// `tradeApiLogin` answers being held back right now.
    held: u64,
    validates: u64,
    successes: u64,
    totp_attempts: Vec<TotpAttempt>,
    /// (user, step) whose code was already accepted: codes are single-use.
    /// Never pruned (one entry per login), so a clock moved back and forth
    /// cannot make a spent code good again.
    spent: HashSet<(usize, i64)>,
    views: HashMap<String, View>,
    sessions: HashMap<String, Session>,
    issued: Vec<String>,
    /// `feedUrl` and `rtUrl` of the validate answer; absent unless a test
    /// sets them (the SDK reads them when Kotak sends them).
    feed_urls: Option<(String, String)>,
    /// The `data` of the last successful `tradeApiValidate` answer.
    last_trade: Option<serde_json::Value>,
}

/// A view token from `tradeApiLogin`, good only for `tradeApiValidate`.
struct View {
    user: usize,
    sid: String,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

/// A trade session from `tradeApiValidate`.
struct Session {
    user: usize,
    sid: String,
    /// For kill-after, on the base clock: clock-offset changes must not
    /// move it.
    at: DateTime<Utc>,
    /// By the sim clock, like the `exp` claim.
    expires_at: DateTime<Utc>,
    revoked: bool,
}

impl Inner {
    /// The sim clock: the base clock plus the offset (the base clock if
    /// that overflows).
    fn now(&self) -> DateTime<Utc> {
        let real = self.clock.now();
        TimeDelta::try_seconds(self.clock_offset)
            .and_then(|d| real.checked_add_signed(d))
            .unwrap_or(real)
    }

    /// The trade session of `token` if it is alive. Kill-after is read at
    /// check time so it also applies to tokens already out.
    fn live_session(&self, token: &str) -> Option<&Session> {
        let s = self.sessions.get(token)?;
        let alive = !s.revoked
            && self.now() < s.expires_at
            && self
                .kill_after
                .is_none_or(|k| (self.clock.now() - s.at).to_std().unwrap_or_default() < k);
        alive.then_some(s)
    }

    fn live_view(&self, token: &str) -> Option<&View> {
        let v = self.views.get(token)?;
        (!v.revoked && self.now() < v.expires_at).then_some(v)
    }

    fn revoke_all(&mut self) {
        self.views.values_mut().for_each(|v| v.revoked = true);
        self.sessions.values_mut().for_each(|s| s.revoked = true);
    }

    fn queue_faults(&mut self, n: u32, fail: KotakFail) {
        if fail == KotakFail::WrongMpin {
            self.mpin_faults = self.mpin_faults.saturating_add(n);
        } else {
            self.login_faults
                .extend(std::iter::repeat_n(fail, n as usize));
        }
    }
}

/// The 30 s TOTP step containing `t`.
fn step_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(STEP_SECS)
}

/// The code of `step`, `None` for steps before 1970.
fn code_for(totp: &totp_rs::TOTP, step: i64) -> Option<String> {
    let secs = u64::try_from(step.checked_mul(STEP_SECS)?).ok()?;
    Some(totp.generate(secs))
}

/// 00:00 IST after `t`: the `exp` real Kotak tokens carry whatever the
/// login time.
fn next_ist_midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    brokerd_core::time::ist::next_at(t, chrono::NaiveTime::MIN)
}

/// Builds the TOTP checker of one seed.
fn totp_of(seed: &str) -> Option<totp_rs::TOTP> {
    // Authenticator apps show seeds grouped, lower-case or padded; the
    // decoder takes none of that.
    let clean: String = seed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = totp_rs::Secret::Encoded(clean).to_bytes().ok()?;
    // `with_defaults` is SHA-1, 6 digits, 30 s, and unlike `TOTP::new` keeps
    // its signature when another crate turns on totp-rs's `otpauth` feature.
    let rfc = totp_rs::Rfc6238::with_defaults(bytes).ok()?;
    totp_rs::TOTP::from_rfc6238(rfc).ok()
}

impl KotakSim {
    /// Binds `cfg.listen`, spawns the server task and returns its handle.
    /// Fails with `InvalidInput` if a user's TOTP seed is not base32 of at
    /// least 16 bytes.
    pub async fn start(cfg: KotakSimConfig) -> std::io::Result<KotakSim> {
        let mut totps = Vec::with_capacity(cfg.users.len());
        for (i, u) in cfg.users.iter().enumerate() {
            // The seed itself stays out of the error: it is a credential.
            let totp = totp_of(&u.totp_seed).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "kotak sim user {i} ({}): totp_seed is not base32 of >= 16 bytes",
                        u.ucc
                    ),
                )
            })?;
            totps.push(totp);
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let secret: [u8; 32] = rand::thread_rng().r#gen();
        let shared = Arc::new(Shared {
            users: cfg.users,
            totps,
            key: jsonwebtoken::EncodingKey::from_secret(&secret),
            base_url: format!("http://{addr}"),
            hold: tokio::sync::watch::Sender::new(false),
            inner: Mutex::new(Inner {
                clock: SystemClock::shared(),
                clock_offset: 0,
                latency: Duration::ZERO,
                lifetime: None,
                kill_after: None,
                dead_shape: DeadShape::default(),
                ip_rule: None,
                one_session: false,
                login_faults: VecDeque::new(),
                mpin_faults: 0,
                logins: 0,
                held: 0,
                validates: 0,
                successes: 0,
                totp_attempts: Vec::new(),
                spent: HashSet::new(),
                views: HashMap::new(),
                sessions: HashMap::new(),
                issued: Vec::new(),
                feed_urls: None,
                last_trade: None,
            }),
        });
        let app = server::router(shared.clone());
        let run = Running::spawn(listener, app, "kotak");
        tracing::debug!(%addr, "kotak sim listening");
        Ok(KotakSim { shared, run })
    }

    /// `http://127.0.0.1:PORT`: the login host, and the `baseUrl` that
    /// `tradeApiValidate` returns for the post-login calls.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Lifetime of trade tokens issued from now on, for both `exp` and the
    /// server's own check. `None` (the default) is 00:00 IST after the login
    /// day by the sim clock, like the real tokens.
    pub fn set_trade_token_lifetime(&self, lifetime: Option<Duration>) {
        self.shared.inner.lock().lifetime = lifetime;
    }

    /// Rejects trade tokens once this long has passed since their issue,
    /// whatever their `exp` (seed 001: another program logged in to the
    /// account and the token died 13 s after login). Applies to tokens
    /// already out too; `None` switches it off.
    pub fn set_kill_after(&self, after: Option<Duration>) {
        self.shared.inner.lock().kill_after = after;
    }

    /// Revokes every view and trade token issued so far (an access-token
    /// reset in the dashboard).
    pub fn reject_all_now(&self) {
        self.shared.inner.lock().revoke_all();
        tracing::debug!("kotak sim: all tokens revoked");
    }

    /// Queues `n` failures: see [`KotakFail`] for which attempt consumes them.
    pub fn fail_next_logins(&self, n: u32, fail: KotakFail) {
        self.shared.inner.lock().queue_faults(n, fail);
    }

    /// Runs the sim on `clock` (a test's manual clock, shared with the
    /// daemon): TOTP windows, token expiry, kill-after and latency follow
    /// it, so a test moves time instead of waiting for it.
    pub fn set_clock(&self, clock: SharedClock) {
        self.shared.inner.lock().clock = clock;
    }

    /// Delay added before every answer, control endpoints included.
    pub fn set_latency(&self, d: Duration) {
        self.shared.inner.lock().latency = d;
    }

    /// Sets the sim clock to real time plus `secs`. It drives the TOTP check,
    /// the `Date` header, `iat`/`exp` and the server's expiry check.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.inner.lock().clock_offset = secs;
    }

    /// How post-login calls answer a dead session (default `Http401`).
    pub fn set_dead_shape(&self, shape: DeadShape) {
        self.shared.inner.lock().dead_shape = shape;
    }

    /// When set, post-login calls with a live session answer this IP error
    /// instead of their data (a dead session still gets the dead answer).
    pub fn set_ip_rule(&self, rule: Option<IpRule>) {
        self.shared.inner.lock().ip_rule = rule;
    }

    /// When on, a successful `tradeApiValidate` revokes the account's older
    /// trade tokens. Off by default: Kotak allows several sessions.
    pub fn set_one_session_per_account(&self, on: bool) {
        self.shared.inner.lock().one_session = on;
    }

    /// While on, every `tradeApiLogin` is processed as usual (its TOTP
    /// recorded in [`KotakSim::totp_attempts`] and, if good, spent) but its
    /// answer is held back until holding is switched off: a client waiting
    /// for it can be killed at the worst moment, after its code has arrived.
    pub fn hold_logins(&self, on: bool) {
        self.shared.hold.send_replace(on);
    }

    /// `tradeApiLogin` answers held back right now (see
    /// [`KotakSim::hold_logins`]); one whose client went away stops counting.
    pub fn held_logins(&self) -> u64 {
        self.shared.inner.lock().held
    }

    /// `tradeApiLogin` attempts received, failed and injected ones included.
    pub fn login_count(&self) -> u64 {
        self.shared.inner.lock().logins
    }

    /// `tradeApiValidate` attempts received, failed ones included.
    pub fn validate_count(&self) -> u64 {
        self.shared.inner.lock().validates
    }

    /// Completed logins: validates that issued a trade token.
    pub fn successful_logins(&self) -> u64 {
        self.shared.inner.lock().successes
    }

    /// Every TOTP received on `tradeApiLogin`, oldest first, whatever the
    /// answer (injected faults included).
    pub fn totp_attempts(&self) -> Vec<TotpAttempt> {
        self.shared.inner.lock().totp_attempts.clone()
    }

    /// True when the server would accept `trade_token` now (with its sid).
    pub fn is_token_valid(&self, trade_token: &str) -> bool {
        self.shared.inner.lock().live_session(trade_token).is_some()
    }

    /// Every view token, view sid, trade token and session sid issued,
    /// oldest first (tests grep logs for them).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.inner.lock().issued.clone()
    }

    /// Makes `tradeApiValidate` answer also `feedUrl` (the market-data
    /// websocket) and `rtUrl` (the order feed), as the Neo SDK expects when
    /// Kotak sends them; `None` (the default) leaves both out.
    pub fn set_feed_urls(&self, urls: Option<(String, String)>) {
        self.shared.inner.lock().feed_urls = urls;
    }

    /// The `data` object of the last successful `tradeApiValidate` answer,
    /// as sent (token included: for tests comparing a session with it).
    pub fn last_trade_answer(&self) -> Option<serde_json::Value> {
        self.shared.inner.lock().last_trade.clone()
    }

    /// Stops the server: no new connections; answers still being held back
    /// get one second before the task is aborted.
    pub async fn shutdown(&self) {
        self.run.shutdown().await;
    }
}
