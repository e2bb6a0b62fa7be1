//! The client against the Angel One simulator: login, renewal, validation
//! and logout; every error shape as the slot sees it; the TOTP window
//! recorded before its code leaves and never sent twice.
//!
//! The gate and the simulator share one manual clock, moved 20× faster
//! than real time by a pump: a test that proves a window is not reused
//! waits for the next window in virtual time (at most 1.5 s of real time).
//! HTTP stays real.

use std::sync::Arc;
use std::time::Duration;

use brokerd_sim::virtual_time::Pump;
use chrono::Utc;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::json;

use super::*;
use brokerd_sim::angel::{
    AngelFail, AngelSim, AngelSimConfig, AngelSimUser, DeadCode, DeadShape, Endpoint,
};

/// Records each window with how many codes the simulator had received
/// when the record was made.
#[derive(Debug)]
struct Ledger {
    sim: SimProbe,
    records: Mutex<Vec<(u64, usize)>>,
}

/// `AngelSim` has no `Debug` (its users hold credentials).
struct SimProbe(AngelSim);

impl std::fmt::Debug for SimProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AngelSim")
    }
}

impl WindowLedger for Ledger {
    fn last_used(&self) -> BoxFuture<'_, Result<Option<u64>, String>> {
        Box::pin(async { Ok(None) })
    }

    fn record(&self, step: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let received = self.sim.0.totp_attempts().len();
            self.records.lock().push((step, received));
            Ok(())
        })
    }
}

struct Setup {
    sim: AngelSim,
    cfg: AngelOneConfig,
    ledger: Arc<Ledger>,
    shared: AngelShared,
    time: Pump,
}

impl Setup {
    /// Another gate over the same ledger and clock (a second daemon, or a
    /// gate that lost its memory).
    fn another_gate(&self) -> AngelShared {
        AngelShared::with_clock(self.ledger.clone(), self.time.clock.clone())
    }
}

async fn setup() -> Setup {
    let sim = AngelSim::start(AngelSimConfig::default()).await.unwrap();
    let time = Pump::start();
    sim.set_clock(time.clock.clone());
    let u = AngelSimUser::demo();
    let mut cfg = AngelOneConfig::new(
        Secret::new(u.api_key),
        u.client_code,
        Secret::new(u.pin),
        Secret::new(u.totp_seed),
    );
    cfg.api_root = sim.base_url();
    cfg.public_ip = "203.0.113.7".into();
    cfg.mac_address = "02:11:22:33:44:55".into();
    // Virtual time runs 20× faster: 15 s of the window left is 750 ms of
    // real time for the code to reach the simulator, enough on a busy
    // machine (2 s would be 100 ms).
    cfg.totp_min_remaining = Duration::from_secs(15);
    let ledger = Arc::new(Ledger {
        sim: SimProbe(sim.clone()),
        records: Mutex::new(Vec::new()),
    });
    let shared = AngelShared::with_clock(ledger.clone(), time.clock.clone());
    Setup {
        sim,
        cfg,
        ledger,
        shared,
        time,
    }
}

fn client(cfg: &AngelOneConfig) -> AngelOneClient {
    AngelOneClient::new(cfg, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn login_renew_validate_logout() {
    let s = setup().await;
    let c = client(&s.cfg);
    let got = c.login(&s.shared).await.unwrap();
    let m = &got.session.material;
    let jwt = m.token.expose().to_string();
    assert!(s.sim.is_token_valid(&jwt));
    assert_eq!(m.headers["Authorization"].expose(), format!("Bearer {jwt}"));
    assert_eq!(m.headers["X-PrivateKey"].expose(), "demo-angel-api-key");
    assert_eq!(m.headers["X-ClientPublicIP"].expose(), "203.0.113.7");
    let issued = s.sim.issued_tokens();
    assert_eq!(
        serde_json::Value::Object(m.fields.clone()),
        json!({"api_root": s.sim.base_url(), "client_code": "D12345",
            "api_key": "demo-angel-api-key", "feed_token": issued[2]})
    );
    let refresh = got.refresh_token.clone().expect("a refresh token");
    assert_eq!(refresh.expose(), issued[1]);
    let fields = serde_json::Value::Object(m.fields.clone()).to_string();
    assert!(
        !fields.contains(refresh.expose()),
        "the refresh token is the daemon's"
    );
    let lifetime = got.session.meta.expires_at - got.session.meta.obtained_at;
    assert!(
        (lifetime.num_seconds() - 24 * 3600).abs() <= 2,
        "exp read: {lifetime}"
    );
    assert_eq!(got.session.meta.user_id.as_deref(), Some("D12345"));
    let seen = s.sim.last_headers();
    assert_eq!(
        (
            seen.user_type.as_str(),
            seen.source_id.as_str(),
            seen.local_ip.as_str()
        ),
        ("USER", "WEB", "127.0.0.1")
    );
    assert_eq!(
        (seen.public_ip.as_str(), seen.mac.as_str()),
        ("203.0.113.7", "02:11:22:33:44:55")
    );

    c.validate(m).await.unwrap();
    let renewed = c.renew(&s.shared, m, &refresh).await.unwrap();
    let n = &renewed.session.material;
    assert_ne!(n.token.expose(), jwt);
    assert_ne!(n.fields["feed_token"], m.fields["feed_token"]);
    let new_refresh = renewed.refresh_token.clone().unwrap();
    assert_ne!(new_refresh.expose(), refresh.expose());
    assert_eq!(s.sim.checksums_seen(), 0, "no checksum unless configured");
    c.validate(n).await.unwrap();
    // The old refresh token is spent: only a login can help.
    let err = c.renew(&s.shared, n, &refresh).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::DeadSession(m) if m.contains("AB8050")),
        "{err:?}"
    );

    c.logout(n).await.unwrap();
    let err = c.validate(n).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::DeadSession(m) if m.contains("AG8001")),
        "{err:?}"
    );
    let st = s.sim.stats();
    assert_eq!(
        (st.logins, st.successful_logins, st.successful_renewals),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn the_window_is_recorded_before_its_code_is_sent() {
    let s = setup().await;
    client(&s.cfg).login(&s.shared).await.unwrap();
    let attempts = s.sim.totp_attempts();
    assert_eq!(attempts.len(), 1);
    let step = attempts[0].matched_step.expect("a valid code") as u64;
    assert_eq!(
        *s.ledger.records.lock(),
        vec![(step, 0)],
        "recorded while the simulator had seen no code"
    );
}

#[tokio::test]
async fn a_second_login_never_reuses_the_window() {
    let s = setup().await;
    client(&s.cfg).login(&s.shared).await.unwrap();
    // A fresh client, the same account: the gate picks the next window.
    client(&s.cfg).login(&s.shared).await.unwrap();
    let got: Vec<(Option<i64>, bool)> = s
        .sim
        .totp_attempts()
        .iter()
        .map(|a| (a.matched_step, a.accepted))
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(_, accepted)| *accepted), "{got:?}");
    assert!(got[1].0 > got[0].0, "a later window: {got:?}");
}

#[tokio::test]
async fn a_refused_totp_is_retried_once_in_the_next_window() {
    let s = setup().await;
    s.sim.fail_next(Endpoint::Login, 1, AngelFail::WrongTotp);
    client(&s.cfg).login(&s.shared).await.unwrap();
    let a = s.sim.totp_attempts();
    assert_eq!(a.len(), 2);
    assert!(!a[0].accepted && a[1].accepted);
    assert!(a[1].matched_step > a[0].matched_step);
}

#[tokio::test]
async fn a_totp_refused_twice_is_code_rejected_after_two_attempts() {
    let s = setup().await;
    s.sim.fail_next(Endpoint::Login, 2, AngelFail::WrongTotp);
    let err = client(&s.cfg).login(&s.shared).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::CodeRejected(m) if m.contains("AB1050") && m.contains("totp_seed")),
        "{err:?}"
    );
    assert_eq!(s.sim.login_count(), 2);
    let windows: Vec<u64> = s.ledger.records.lock().iter().map(|r| r.0).collect();
    assert_eq!(windows.len(), 2);
    assert!(windows[1] > windows[0]);
}

#[tokio::test]
async fn a_window_spent_elsewhere_is_refused_like_the_broker_does() {
    // Two gates (two daemons, or a gate that lost its record) in one window:
    // the simulator refuses the reused code, and the retry takes the next.
    let s = setup().await;
    let other = s.another_gate();
    client(&s.cfg).login(&s.shared).await.unwrap();
    client(&s.cfg).login(&other).await.unwrap();
    let a = s.sim.totp_attempts();
    let accepted: Vec<bool> = a.iter().map(|a| a.accepted).collect();
    // Either the first window still had room (refused, then retried) or the
    // second gate already waited for the next window.
    assert!(
        accepted == [true, false, true] || accepted == [true, true],
        "{accepted:?}"
    );
    assert_eq!(s.sim.stats().successful_logins, 2);
}

/// What a test expects of an error.
type Expect = fn(&BrokerError) -> bool;

#[tokio::test]
async fn login_refusals_classify() {
    let s = setup().await;
    let cases: Vec<(AngelFail, Expect)> = vec![
        (
            AngelFail::BadCredentials,
            |e| matches!(e, BrokerError::Rejected(m) if m.contains("AB1007")),
        ),
        (
            AngelFail::Blocked,
            |e| matches!(e, BrokerError::Rejected(m) if m.contains("blocked")),
        ),
        (
            AngelFail::UserNotFound,
            |e| matches!(e, BrokerError::Rejected(m) if m.contains("AB1032")),
        ),
        (
            AngelFail::BadApiKey,
            |e| matches!(e, BrokerError::Rejected(m) if m.contains("API key")),
        ),
        (AngelFail::PasswordLoginNotAllowed, |e| {
            matches!(e, BrokerError::Config(_))
        }),
        (
            AngelFail::NotFound,
            |e| matches!(e, BrokerError::Config(m) if m.starts_with("account.angel_one.api_root: ")),
        ),
        (AngelFail::Ab1004, |e| {
            matches!(e, BrokerError::Transient(_))
        }),
        (AngelFail::Ab2000, |e| {
            matches!(e, BrokerError::Transient(_))
        }),
        (AngelFail::Ab2001, |e| {
            matches!(e, BrokerError::Transient(_))
        }),
        (AngelFail::Status(503), |e| {
            matches!(e, BrokerError::Transient(_))
        }),
        (
            AngelFail::RateLimit,
            |e| matches!(e, BrokerError::Transient(m) if m.contains("exceeding access rate")),
        ),
        (
            AngelFail::Waf,
            |e| matches!(e, BrokerError::Transient(m) if m.contains("Request Rejected")),
        ),
        (AngelFail::BadGateway, |e| {
            matches!(e, BrokerError::Transient(_))
        }),
        (AngelFail::Dead(DeadCode::Ag8001), |e| {
            matches!(e, BrokerError::Transient(_))
        }),
    ];
    let n = cases.len() as u64;
    for (fail, want) in cases {
        s.sim.fail_next(Endpoint::Login, 1, fail.clone());
        // A fresh gate each time: the simulator never spends an injected
        // attempt's code, so the same window serves every case.
        let shared = s.another_gate();
        let err = client(&s.cfg).login(&shared).await.unwrap_err();
        assert!(want(&err), "{fail:?}: {err:?}");
        let text = format!("{err:?} {err}");
        assert!(
            !text.contains("1234\"") && !text.contains("demo-angel-api-key"),
            "{text}"
        );
    }
    assert_eq!(s.sim.login_count(), n, "one attempt each, never a loop");
    assert_eq!(s.sim.stats().successful_logins, 0);
}

#[tokio::test]
async fn a_timeout_is_transient() {
    let s = setup().await;
    s.sim.fail_next(
        Endpoint::Login,
        1,
        AngelFail::Timeout(Duration::from_secs(3)),
    );
    let c = AngelOneClient::new(&s.cfg, Duration::from_millis(300)).unwrap();
    let err = c.login(&s.shared).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::Transient(m) if m.contains("timed out")),
        "{err:?}"
    );
}

#[tokio::test]
async fn renewal_and_validation_failures() {
    let s = setup().await;
    let c = client(&s.cfg);
    let got = c.login(&s.shared).await.unwrap();
    let m = &got.session.material;
    let refresh = got.refresh_token.clone().unwrap();
    let dead =
        |e: &BrokerError, code: &str| matches!(e, BrokerError::DeadSession(m) if m.contains(code));
    s.sim
        .fail_next(Endpoint::Renew, 1, AngelFail::RefreshExpired);
    assert!(dead(
        &c.renew(&s.shared, m, &refresh).await.unwrap_err(),
        "AB8051"
    ));
    s.sim
        .fail_next(Endpoint::Renew, 1, AngelFail::RefreshInvalid);
    assert!(dead(
        &c.renew(&s.shared, m, &refresh).await.unwrap_err(),
        "AB8050"
    ));
    s.sim.fail_next(Endpoint::Renew, 1, AngelFail::RateLimit);
    assert!(matches!(
        c.renew(&s.shared, m, &refresh).await.unwrap_err(),
        BrokerError::Transient(_)
    ));
    s.sim
        .fail_next(Endpoint::Renew, 1, AngelFail::Dead(DeadCode::Ag8002));
    assert!(dead(
        &c.renew(&s.shared, m, &refresh).await.unwrap_err(),
        "AG8002"
    ));

    for code in [
        DeadCode::Ag8001,
        DeadCode::Ag8002,
        DeadCode::Ag8003,
        DeadCode::Ab1010,
        DeadCode::Ab1011,
    ] {
        s.sim.fail_next(Endpoint::Call, 1, AngelFail::Dead(code));
        let (want, _) = code.code_and_message();
        assert!(dead(&c.validate(m).await.unwrap_err(), want), "{code:?}");
    }
    for fail in [
        AngelFail::Ab1004,
        AngelFail::RateLimit,
        AngelFail::Waf,
        AngelFail::Status(502),
    ] {
        s.sim.fail_next(Endpoint::Call, 1, fail.clone());
        let err = c.validate(m).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::Transient(_)),
            "{fail:?}: {err:?}"
        );
    }
    c.validate(m).await.unwrap();
    // Every dead shape the simulator gives for a token it does not know.
    let mut forged = m.clone();
    forged.token = Secret::new("forged");
    for shape in [
        DeadShape::Gateway200,
        DeadShape::Gateway401,
        DeadShape::Ab1010,
        DeadShape::Ab1011,
    ] {
        s.sim.set_dead_shape(shape);
        let err = c.validate(&forged).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::DeadSession(_)),
            "{shape:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn refresh_renews_and_logs_in_only_when_renewal_is_refused() {
    let s = setup().await;
    let c = client(&s.cfg);
    let first = c.refresh(&s.shared, None).await.unwrap();
    assert_eq!(s.sim.login_count(), 1, "nothing to renew: a login");
    let current = |x: &AngelSession| {
        (
            x.session.material.clone(),
            x.refresh_token.clone().expect("a refresh token"),
        )
    };
    let (m, r) = current(&first);
    let second = c.refresh(&s.shared, Some((&m, &r))).await.unwrap();
    assert_eq!(
        (s.sim.login_count(), s.sim.stats().successful_renewals),
        (1, 1),
        "renewed"
    );
    // An outage: returned, no login spent.
    let (m, r) = current(&second);
    s.sim.fail_next(Endpoint::Renew, 1, AngelFail::Ab1004);
    let err = c.refresh(&s.shared, Some((&m, &r))).await.unwrap_err();
    assert!(matches!(err, BrokerError::Transient(_)), "{err:?}");
    assert_eq!(s.sim.login_count(), 1);
    // The refresh token is refused: one login instead. (A fresh gate: if
    // the first login's window is still current, the simulator refuses it
    // as reused and the retry takes the next one, as it would at Angel.)
    s.sim
        .fail_next(Endpoint::Renew, 1, AngelFail::RefreshExpired);
    let fresh = s.another_gate();
    let third = c.refresh(&fresh, Some((&m, &r))).await.unwrap();
    assert!(s.sim.is_token_valid(third.session.material.token.expose()));
    assert_eq!(s.sim.stats().renewals, 3);
}

#[tokio::test]
async fn the_java_sdk_checksum_when_configured() {
    let mut s = setup().await;
    s.cfg.renew_checksum = true;
    s.sim.set_require_checksum(true);
    let c = client(&s.cfg);
    let got = c.login(&s.shared).await.unwrap();
    let renewed = c
        .renew(
            &s.shared,
            &got.session.material,
            got.refresh_token.as_ref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(s.sim.checksums_seen(), 1);
    assert!(
        s.sim
            .is_token_valid(renewed.session.material.token.expose())
    );
}

#[tokio::test]
async fn without_exp_the_lifetime_fallback_applies() {
    let mut s = setup().await;
    s.sim.set_jwt_without_exp(true);
    s.cfg.lifetime_fallback = Duration::from_secs(6 * 3600);
    // The legacy host spelling is just another root; a trailing slash is fine.
    s.cfg.api_root = format!("{}/", s.sim.base_url());
    let got = client(&s.cfg).login(&s.shared).await.unwrap();
    let lifetime = got.session.meta.expires_at - got.session.meta.obtained_at;
    assert_eq!(lifetime.num_seconds(), 6 * 3600);
    assert_eq!(got.session.material.fields["api_root"], s.sim.base_url());
}

#[test]
fn a_bearer_prefix_in_the_answer_is_dropped() {
    let cfg = AngelOneConfig::new(
        Secret::new("k"),
        "D1",
        Secret::new("1"),
        Secret::new("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"),
    );
    let data = json!({"jwtToken": "Bearer abc", "refreshToken": "", "feedToken": "f"});
    let got = session::map(&cfg, "https://x", &data, Utc::now()).unwrap();
    assert_eq!(got.session.material.token.expose(), "abc");
    assert!(
        got.refresh_token.is_none(),
        "an empty refresh token is none"
    );
    let empty = json!({"jwtToken": " "});
    assert!(matches!(
        session::map(&cfg, "https://x", &empty, Utc::now()),
        Err(BrokerError::Transient(_))
    ));
}
