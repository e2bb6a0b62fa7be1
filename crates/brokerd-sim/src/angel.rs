//! Angel One SmartAPI simulator: `loginByPassword` (client code, PIN and a
//! TOTP of the current 30 s window), `generateTokens` (renewal with the
//! refresh token, replacing all three tokens), `getProfile`, `getRMS` (a
//! protected call for tests) and `logout`, in the wire shapes of
//! `shared/brokers/angel_one.md`, with HS512 JWTs carrying `exp` and a
//! nested `token` claim that only this simulator can validate.
//!
//! Every call checks the headers the SDKs send (`X-PrivateKey` = the API
//! key, `X-UserType: USER`, `X-SourceID: WEB`, `X-ClientLocalIP`,
//! `X-ClientPublicIP`, `X-MACAddress`, JSON `Accept`). Every TOTP received is
//! recorded with the window it belongs to, and a code already accepted is
//! rejected (`AB1050`) like the broker would. Every error shape of the facts
//! file can be injected ([`AngelFail`], [`DeadShape`]); the documented
//! envelope with booleans or strings, the gateway's `success`/`errorCode`
//! shape inside HTTP 200, a plain-text 403 rate limit, and an HTML WAF page.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};
use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use rand::Rng;

use super::serve::Running;
pub use faults::{AngelFail, AngelStats, DeadCode, DeadShape, Endpoint, SeenHeaders, TotpAttempt};

mod control;
mod faults;
mod server;
mod shapes;
#[cfg(test)]
mod tests;

/// Length of one TOTP step, seconds (standard authenticator TOTP).
const STEP_SECS: i64 = 30;

/// How to start a simulator.
#[derive(Clone)]
pub struct AngelSimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The accounts the simulator knows.
    pub users: Vec<AngelSimUser>,
}

impl Default for AngelSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            users: vec![AngelSimUser::demo()],
        }
    }
}

/// One simulated SmartAPI account. No `Debug`: the API key, PIN and seed
/// are credentials, and a derived `Debug` is one `{:?}` away from a log.
#[derive(Clone)]
pub struct AngelSimUser {
    /// The SmartAPI app's API key, sent as `X-PrivateKey`.
    pub api_key: String,
    /// The client code (the login id), e.g. `D12345`.
    pub client_code: String,
    /// The 4-digit PIN (MPIN), sent as `password`.
    pub pin: String,
    /// TOTP seed, base32 (case, spaces and `=` padding ignored), at least
    /// 16 bytes once decoded.
    pub totp_seed: String,
    /// Returned as `name` by `getProfile`.
    pub name: String,
}

impl AngelSimUser {
    /// Fixed demo account: API key `demo-angel-api-key`, client code
    /// `D12345`, PIN `7391`, TOTP seed `MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U`
    /// (20 bytes).
    pub fn demo() -> Self {
        Self {
            api_key: "demo-angel-api-key".into(),
            client_code: "D12345".into(),
            pin: "7391".into(),
            totp_seed: "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U".into(),
            name: "DEMO ANGEL".into(),
        }
    }
}

/// Handle to a running simulator; cheap to clone. The server stops when
/// [`AngelSim::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct AngelSim {
    shared: Arc<Shared>,
    run: Arc<Running>,
}

struct Shared {
    users: Vec<AngelSimUser>,
    /// One per user, same order; built at start so a bad seed fails early.
    totps: Vec<totp_rs::TOTP>,
    key: jsonwebtoken::EncodingKey,
    base_url: String,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The clock the sim's clock runs on (plus `clock_offset`): the system
    /// clock, or a test's manual clock shared with the daemon.
    clock: SharedClock,
    clock_offset: i64,
    latency: Duration,
    /// Requests the latency layer holds right now, by path: they reached
    /// the broker but have no answer yet.
    held: Vec<Endpoint>,
    /// Lifetime of the jwtToken (its `exp` and the server's check).
    lifetime: Duration,
    /// Leave `exp` out of the jwtToken (the server still ends it).
    no_exp: bool,
    /// Lifetime of refresh tokens, from their issue.
    refresh_lifetime: Duration,
    kill_after: Option<Duration>,
    dead_shape: DeadShape,
    one_session: bool,
    logout_kills: bool,
    renew_revokes_old: bool,
    require_checksum: bool,
    faults: HashMap<Endpoint, VecDeque<AngelFail>>,
    stats: AngelStats,
    totp_attempts: Vec<TotpAttempt>,
    /// (user, step) whose code was accepted: codes are single-use. Never
    /// pruned, so a clock moved back and forth cannot revive a spent code.
    spent: HashSet<(usize, i64)>,
    /// Sessions by jwtToken.
    sessions: HashMap<String, Session>,
    issued: Vec<String>,
    last_headers: SeenHeaders,
    checksums_seen: u64,
}

/// One set of tokens: a login's, or a renewal's.
struct Session {
    user: usize,
    refresh_token: String,
    /// When the refresh token stops working, by the sim clock.
    refresh_expires_at: DateTime<Utc>,
    refresh_used: bool,
    /// For kill-after, on the base clock: clock-offset changes must not
    /// move it.
    at: DateTime<Utc>,
    /// By the sim clock, like the `exp` claim.
    expires_at: DateTime<Utc>,
    revoked: bool,
}

/// Why a jwtToken is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Missing,
    Expired,
    Invalid,
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

    /// The live session of `jwt`, or why it is refused. Kill-after is read
    /// at check time so it also applies to tokens already out.
    fn live(&self, jwt: Option<&str>) -> Result<&Session, Refusal> {
        let s = self
            .sessions
            .get(jwt.ok_or(Refusal::Missing)?)
            .ok_or(Refusal::Invalid)?;
        let killed = self
            .kill_after
            .is_some_and(|k| (self.clock.now() - s.at).to_std().unwrap_or_default() >= k);
        if s.revoked || killed {
            return Err(Refusal::Invalid);
        }
        if self.now() >= s.expires_at {
            return Err(Refusal::Expired);
        }
        Ok(s)
    }

    fn next_fault(&mut self, at: Endpoint) -> Option<AngelFail> {
        self.faults.get_mut(&at).and_then(VecDeque::pop_front)
    }

    fn queue(&mut self, at: Endpoint, n: u32, fail: AngelFail) {
        self.faults
            .entry(at)
            .or_default()
            .extend(std::iter::repeat_n(fail, n as usize));
    }

    fn queued(&self, at: Endpoint) -> usize {
        self.faults.get(&at).map_or(0, VecDeque::len)
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

/// Builds the TOTP checker of one seed.
fn totp_of(seed: &str) -> Option<totp_rs::TOTP> {
    // Authenticator apps show seeds grouped, lower-case or padded.
    let clean: String = seed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = totp_rs::Secret::Encoded(clean).to_bytes().ok()?;
    let rfc = totp_rs::Rfc6238::with_defaults(bytes).ok()?;
    totp_rs::TOTP::from_rfc6238(rfc).ok()
}

/// `t + d`, saturating at the end of time.
fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl AngelSim {
    /// Binds `cfg.listen`, spawns the server task and returns its handle.
    /// Fails with `InvalidInput` if a user's TOTP seed is not base32 of at
    /// least 16 bytes.
    pub async fn start(cfg: AngelSimConfig) -> std::io::Result<AngelSim> {
        let mut totps = Vec::with_capacity(cfg.users.len());
        for (i, u) in cfg.users.iter().enumerate() {
            // The seed itself stays out of the error: it is a credential.
            let totp = totp_of(&u.totp_seed).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "angel sim user {i} ({}): totp_seed is not base32 of >= 16 bytes",
                        u.client_code
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
        let secret: [u8; 64] = {
            let mut b = [0u8; 64];
            rand::thread_rng().fill(&mut b[..]);
            b
        };
        let shared = Arc::new(Shared {
            users: cfg.users,
            totps,
            key: jsonwebtoken::EncodingKey::from_secret(&secret),
            base_url: format!("http://{addr}"),
            inner: Mutex::new(Inner {
                clock: SystemClock::shared(),
                clock_offset: 0,
                latency: Duration::ZERO,
                held: Vec::new(),
                lifetime: Duration::from_secs(24 * 3600),
                no_exp: false,
                refresh_lifetime: Duration::from_secs(24 * 3600),
                kill_after: None,
                dead_shape: DeadShape::default(),
                one_session: false,
                logout_kills: true,
                renew_revokes_old: false,
                require_checksum: false,
                faults: HashMap::new(),
                stats: AngelStats::default(),
                totp_attempts: Vec::new(),
                spent: HashSet::new(),
                sessions: HashMap::new(),
                issued: Vec::new(),
                last_headers: SeenHeaders::default(),
                checksums_seen: 0,
            }),
        });
        let app = server::router(shared.clone());
        let run = Running::spawn(listener, app, "angel");
        tracing::debug!(%addr, "angel sim listening");
        Ok(AngelSim { shared, run })
    }

    /// `http://127.0.0.1:PORT`: the REST root (`api_root`).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Lifetime of jwtTokens issued from now on (default 24 h), for both
    /// `exp` and the server's own check.
    pub fn set_jwt_lifetime(&self, lifetime: Duration) {
        self.shared.inner.lock().lifetime = lifetime;
    }

    /// Issues jwtTokens without an `exp` claim from now on (the server still
    /// ends them after the lifetime), so a client must fall back.
    pub fn set_jwt_without_exp(&self, on: bool) {
        self.shared.inner.lock().no_exp = on;
    }

    /// Lifetime of refresh tokens issued from now on (default 24 h); an
    /// older one gets `AB8051`.
    pub fn set_refresh_lifetime(&self, lifetime: Duration) {
        self.shared.inner.lock().refresh_lifetime = lifetime;
    }

    /// Rejects jwtTokens once this long has passed since their issue,
    /// whatever their `exp` (another program logged in). Applies to tokens
    /// already out too; `None` switches it off.
    pub fn set_kill_after(&self, after: Option<Duration>) {
        self.shared.inner.lock().kill_after = after;
    }

    /// Revokes every token issued so far.
    pub fn reject_all_now(&self) {
        let mut g = self.shared.inner.lock();
        g.sessions.values_mut().for_each(|s| s.revoked = true);
    }

    /// Queues `n` injected answers for the calls of `at`.
    pub fn fail_next(&self, at: Endpoint, n: u32, fail: AngelFail) {
        self.shared.inner.lock().queue(at, n, fail);
    }

    /// Delay added before every answer, control endpoints included.
    pub fn set_latency(&self, d: Duration) {
        self.shared.inner.lock().latency = d;
    }

    /// How many requests to `endpoint` the latency holds right now: they
    /// reached the broker and have no answer yet. A test waits for a call
    /// to be at the broker, not merely started by the daemon.
    pub fn held(&self, endpoint: Endpoint) -> usize {
        let g = self.shared.inner.lock();
        g.held.iter().filter(|e| **e == endpoint).count()
    }

    /// Runs the sim on `clock` (a test's manual clock, shared with the
    /// daemon): TOTP windows, token and refresh-token expiry, kill-after
    /// and latency follow it, so a test moves time instead of waiting for
    /// it. Injected `Timeout`s stay in real time: they outlast a client's
    /// real HTTP timeout.
    pub fn set_clock(&self, clock: SharedClock) {
        self.shared.inner.lock().clock = clock;
    }

    /// Sets the sim clock to its base clock plus `secs`: it drives the TOTP
    /// check, `iat`/`exp`, the server's expiry checks and `Date`.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.inner.lock().clock_offset = secs;
    }

    /// How session calls answer a dead token (default [`DeadShape::Gateway200`]).
    pub fn set_dead_shape(&self, shape: DeadShape) {
        self.shared.inner.lock().dead_shape = shape;
    }

    /// When on, a successful login revokes the account's older tokens
    /// (whether a second login kills the first is undocumented). Off by
    /// default.
    pub fn set_one_session_per_account(&self, on: bool) {
        self.shared.inner.lock().one_session = on;
    }

    /// Whether `logout` revokes the jwtToken (default on; users report
    /// tokens still working after it).
    pub fn set_logout_kills(&self, on: bool) {
        self.shared.inner.lock().logout_kills = on;
    }

    /// Whether a renewal also revokes the jwtToken it replaces (default
    /// off: the facts say "replace all three", not that the old one dies).
    /// The old refresh token is single-use either way.
    pub fn set_renew_revokes_old(&self, on: bool) {
        self.shared.inner.lock().renew_revokes_old = on;
    }

    /// When on, `generateTokens` without the Java SDK's `checksum` is
    /// refused with `AB8050`. A checksum that is sent is always checked.
    pub fn set_require_checksum(&self, on: bool) {
        self.shared.inner.lock().require_checksum = on;
    }

    /// Counters of the calls received.
    pub fn stats(&self) -> AngelStats {
        self.shared.inner.lock().stats
    }

    /// `loginByPassword` calls received, failed and injected ones included.
    pub fn login_count(&self) -> u64 {
        self.stats().logins
    }

    /// Every TOTP received, oldest first, whatever the answer.
    pub fn totp_attempts(&self) -> Vec<TotpAttempt> {
        self.shared.inner.lock().totp_attempts.clone()
    }

    /// Renewals that carried a correct `checksum`.
    pub fn checksums_seen(&self) -> u64 {
        self.shared.inner.lock().checksums_seen
    }

    /// The `X-*` headers of the last call received (API key left out).
    pub fn last_headers(&self) -> SeenHeaders {
        self.shared.inner.lock().last_headers.clone()
    }

    /// True when the server would accept `jwt` now.
    pub fn is_token_valid(&self, jwt: &str) -> bool {
        self.shared.inner.lock().live(Some(jwt)).is_ok()
    }

    /// Every jwtToken, refreshToken and feedToken issued, oldest first
    /// (tests grep logs and files for them).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.inner.lock().issued.clone()
    }

    /// Stops the server; answers in progress get one second.
    pub async fn shutdown(&self) {
        self.run.shutdown().await;
    }
}
