//! Jainam (XTS) answers classified, and logins against the XTS simulator.

use super::*;
use brokerd_core::time::SystemClock;

fn answer(status: u16, body: &str) -> Answer {
    Answer::new(status, body.as_bytes())
}

#[test]
fn invalid_token_is_dead_at_any_status() {
    let body =
        r#"{"type":"error","code":"e-session-0007","description":"Invalid Token","result":{}}"#;
    for status in [200, 400, 401] {
        assert!(matches!(
            classify(&answer(status, body), false),
            Err(BrokerError::DeadSession(_))
        ));
    }
}

#[test]
fn non_json_is_transient_and_404_is_config() {
    let html = "<html><body>502 Bad Gateway</body></html>";
    assert!(matches!(
        classify(&answer(502, html), true),
        Err(BrokerError::Transient(_))
    ));
    assert!(matches!(
        classify(&answer(404, html), true),
        Err(BrokerError::Config(_))
    ));
}

#[test]
fn login_errors_split_into_rejected_transient_and_config() {
    let wrong = r#"{"type":"error","code":"e-app-0005","description":"Invalid AppKey or SecretKey","result":{}}"#;
    let err = classify(&answer(400, wrong), true).unwrap_err();
    assert!(matches!(err, BrokerError::Rejected(_)));
    assert!(
        err.message()
            .contains("[e-app-0005] Invalid AppKey or SecretKey")
    );
    let busy = r#"{"type":"error","description":"Service Unavailable","result":{}}"#;
    assert!(
        classify(&answer(503, busy), true)
            .unwrap_err()
            .is_retryable()
    );
    let ctcl = r#"{"type":"error","description":"API only enabled for CTCL","result":{}}"#;
    assert!(matches!(
        classify(&answer(400, ctcl), true),
        Err(BrokerError::Config(_))
    ));
}

/// A login URL nothing serves is a `Config` error naming the key(s)
/// that make it; a gateway's 502 page is not.
#[tokio::test]
async fn a_missing_login_endpoint_names_root_or_market_prefix() {
    use brokerd_sim::xts::{FailMode, XtsSim, XtsSimConfig, XtsSimUser};
    let sim = XtsSim::start(XtsSimConfig::default()).await.unwrap();
    let u = XtsSimUser::demo();
    let pair = |k: &str, s: &str| AppKeyPair {
        app_key: Secret::new(k.to_string()),
        secret_key: Secret::new(s.to_string()),
    };
    let cfg = JainamConfig {
        root: sim.base_url(),
        // The simulator serves /apibinarymarketdata.
        market_prefix: "/apimarketdata".into(),
        source: "WEBAPI".into(),
        interactive: Some(pair(&u.interactive_app_key, &u.interactive_secret_key)),
        market: Some(pair(&u.market_app_key, &u.market_secret_key)),
        client_id: None,
        fallback_lifetime: Duration::from_secs(8 * 3600),
        app_expiry_warning: Duration::from_secs(14 * 24 * 3600),
    };
    let timeout = Duration::from_secs(5);
    let e = JainamClient::new(&cfg, Api::Market, timeout, SystemClock::shared())
        .unwrap()
        .login()
        .await
        .unwrap_err();
    let BrokerError::Config(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("account.jainam.root or account.jainam.market_prefix: ")
            && m.contains("POST /apimarketdata/auth/login answered HTTP 404"),
        "{m}"
    );

    let mut interactive =
        JainamClient::new(&cfg, Api::Interactive, timeout, SystemClock::shared()).unwrap();
    sim.fail_next_logins(Api::Interactive, 1, FailMode::ServerError(404));
    let e = interactive.login().await.unwrap_err();
    let BrokerError::Config(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("account.jainam.root: ")
            && m.contains("POST /interactive/user/session answered HTTP 404 with a JSON body"),
        "{m}"
    );
    sim.fail_next_logins(Api::Interactive, 1, FailMode::Html);
    let e = interactive.login().await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    assert_eq!(sim.login_count(Api::Interactive), 2);
    interactive.login().await.unwrap();
}

#[test]
fn success_needs_type_success() {
    let ok = r#"{"type":"success","code":"x","description":"ok","result":{"token":"t"}}"#;
    assert_eq!(classify(&answer(200, ok), true).unwrap()["token"], "t");
}
