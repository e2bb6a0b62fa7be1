//! Tests against the real server on 127.0.0.1:0 with reqwest.

use std::time::Duration;

use reqwest::{Client, Url, redirect};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

const KEY: &str = "demokitekey01";
const SECRET: &str = "demo-kite-api-secret";

async fn sim() -> KiteSim {
    KiteSim::start(KiteSimConfig::default()).await.unwrap()
}

fn sum(api_key: &str, request_token: &str, api_secret: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{api_key}{request_token}{api_secret}").as_bytes(),
    ))
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    // Null when the body is not JSON (injected HTML).
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn exchange_raw(sim: &KiteSim, form: &[(&str, &str)]) -> (u16, Value) {
    let rb = Client::new()
        .post(format!("{}/session/token", sim.base_url()))
        .header("X-Kite-Version", "3")
        .form(form);
    send(rb).await
}

async fn exchange(sim: &KiteSim, request_token: &str) -> (u16, Value) {
    let checksum = sum(KEY, request_token, SECRET);
    let form = [
        ("api_key", KEY),
        ("request_token", request_token),
        ("checksum", &checksum),
    ];
    exchange_raw(sim, &form).await
}

/// A fresh access token of the demo app.
async fn access_token(sim: &KiteSim) -> String {
    let (status, body) = exchange(sim, &sim.mint_request_token(KEY)).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["access_token"].as_str().unwrap().to_string()
}

async fn profile(sim: &KiteSim, api_key: &str, token: &str) -> (u16, Value) {
    let rb = Client::new()
        .get(format!("{}/user/profile", sim.base_url()))
        .header("X-Kite-Version", "3")
        .header("Authorization", format!("token {api_key}:{token}"));
    send(rb).await
}

async fn logout(sim: &KiteSim, token: &str) -> (u16, Value) {
    let mut url = Url::parse(&format!("{}/session/token", sim.base_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("api_key", KEY)
        .append_pair("access_token", token);
    send(Client::new().delete(url).header("X-Kite-Version", "3")).await
}

fn kite_error(message: &str, error_type: &str) -> Value {
    json!({"status": "error", "message": message, "error_type": error_type})
}

fn token_invalid() -> Value {
    kite_error("Token is invalid or has expired.", "TokenException")
}

fn dead() -> Value {
    kite_error("Incorrect `api_key` or `access_token`.", "TokenException")
}

/// The browser login at `query`, not followed: status and `Location`.
async fn browser(sim: &KiteSim, query: &str) -> (u16, Option<String>, String) {
    let c = Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/connect/login?{query}", sim.base_url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status, location, r.text().await.unwrap())
}

fn is_alnum32(t: &str) -> bool {
    t.len() == 32 && t.chars().all(|c| c.is_ascii_alphanumeric())
}

#[tokio::test]
async fn browser_login_redirects_with_a_request_token_and_the_state() {
    let sim = sim().await;
    sim.set_redirect_url(KEY, "http://127.0.0.1:9/kite/callback");
    // redirect_params is "state=abc&x=a+b" URL-encoded once more.
    let (status, location, _) = browser(
        &sim,
        "v=3&api_key=demokitekey01&redirect_params=state%3Dabc%26x%3Da%2Bb",
    )
    .await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    let (head, query) = location.split_once('?').unwrap();
    assert_eq!(head, "http://127.0.0.1:9/kite/callback");
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let token = pairs[0].1;
    assert_eq!(pairs[0].0, "request_token");
    assert!(is_alnum32(token), "{token}");
    assert_eq!(
        pairs[1..],
        [
            ("action", "login"),
            ("type", "login"),
            ("status", "success"),
            ("state", "abc"),
            ("x", "a+b"),
        ]
    );
    assert_eq!(sim.issued_tokens(), vec![token.to_string()]);
    // The token is good for one exchange.
    assert_eq!(exchange(&sim, token).await.0, 200);

    // A `?` already in the redirect URL is kept; no redirect_params: none added.
    sim.set_redirect_url(KEY, "https://app.example/cb?acct=main");
    let (status, location, _) = browser(&sim, "api_key=demokitekey01&v=3").await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    let rest = location
        .strip_prefix("https://app.example/cb?acct=main&request_token=")
        .unwrap();
    let (token, tail) = rest.split_once('&').unwrap();
    assert!(is_alnum32(token));
    assert_eq!(tail, "action=login&type=login&status=success");
}

#[tokio::test]
async fn browser_login_refusals_are_html_pages() {
    let sim = sim().await;
    // No redirect URL registered yet.
    let (status, location, body) = browser(&sim, "v=3&api_key=demokitekey01").await;
    assert_eq!((status, location), (400, None));
    assert!(
        body.contains("<html>") && body.contains("redirect URL"),
        "{body}"
    );
    sim.set_redirect_url(KEY, "http://127.0.0.1:9/cb");
    let (status, _, body) = browser(&sim, "v=3&api_key=nosuchkey").await;
    assert_eq!(status, 400);
    assert!(body.contains("Invalid api_key"), "{body}");
    let (status, _, body) = browser(&sim, "api_key=demokitekey01").await;
    assert_eq!(status, 400);
    assert!(body.contains("v=3"), "{body}");
    assert!(sim.issued_tokens().is_empty());
}

#[tokio::test]
async fn exchange_answers_a_session_and_request_tokens_are_single_use() {
    let sim = sim().await;
    let rt = sim.mint_request_token(KEY);
    let (status, body) = exchange(&sim, &rt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    let d = &body["data"];
    for (k, v) in [
        ("user_id", "ZD1234"),
        ("user_name", "DEMO KITE"),
        ("user_shortname", "DEMO"),
        ("user_type", "individual"),
        ("email", "zd1234@example.com"),
        ("broker", "ZERODHA"),
        ("api_key", KEY),
        ("refresh_token", ""),
        ("enctoken", ""),
    ] {
        assert_eq!(d[k], v, "{k}");
    }
    let access = d["access_token"].as_str().unwrap();
    assert!(is_alnum32(access));
    assert!(d["public_token"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(d["avatar_url"].is_null());
    assert_eq!(d["meta"], json!({"demat_consent": "physical"}));
    assert!(d["exchanges"].as_array().unwrap().contains(&json!("NSE")));
    assert!(d["products"].as_array().unwrap().contains(&json!("CNC")));
    assert!(
        d["order_types"]
            .as_array()
            .unwrap()
            .contains(&json!("MARKET"))
    );
    let login_time = d["login_time"].as_str().unwrap();
    let parsed = chrono::NaiveDateTime::parse_from_str(login_time, "%Y-%m-%d %H:%M:%S").unwrap();
    let ist_now = (chrono::Utc::now() + chrono::TimeDelta::minutes(330)).naive_utc();
    assert!((ist_now - parsed).num_seconds().abs() < 60, "{login_time}");
    assert!(sim.is_token_valid(access));
    assert_eq!(sim.issued_tokens(), vec![rt.clone(), access.to_string()]);

    // The same request token again: spent.
    assert_eq!(exchange(&sim, &rt).await, (403, token_invalid()));
    // One never issued.
    assert_eq!(
        exchange(&sim, "x".repeat(32).as_str()).await,
        (403, token_invalid())
    );
    assert_eq!((sim.exchange_count(), sim.successful_exchanges()), (3, 1));
}

#[tokio::test]
async fn request_tokens_expire_after_the_ttl() {
    let sim = sim().await;
    sim.set_request_token_ttl(Duration::from_millis(40));
    let rt = sim.mint_request_token(KEY);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(exchange(&sim, &rt).await, (403, token_invalid()));
    // The TTL is read at exchange time: a longer one revives no spent token
    // but does cover tokens already out.
    let waiting = sim.mint_request_token(KEY);
    tokio::time::sleep(Duration::from_millis(80)).await;
    sim.set_request_token_ttl(Duration::from_secs(300));
    assert_eq!(exchange(&sim, &rt).await, (403, token_invalid()));
    assert_eq!(exchange(&sim, &waiting).await.0, 200);
}

#[tokio::test]
async fn exchange_checks_checksum_api_key_and_version() {
    let sim = sim().await;
    let rt = sim.mint_request_token(KEY);
    let wrong = sum(KEY, &rt, "some-other-secret");
    let form = [
        ("api_key", KEY),
        ("request_token", rt.as_str()),
        ("checksum", wrong.as_str()),
    ];
    let invalid_checksum = kite_error("Invalid `checksum`.", "TokenException");
    assert_eq!(exchange_raw(&sim, &form).await, (403, invalid_checksum));
    let form = [
        ("api_key", "nosuchkey"),
        ("request_token", rt.as_str()),
        ("checksum", wrong.as_str()),
    ];
    let invalid_key = kite_error("Invalid `api_key`.", "InputException");
    assert_eq!(exchange_raw(&sim, &form).await, (400, invalid_key));
    let good = sum(KEY, &rt, SECRET);
    let form = [
        ("api_key", KEY),
        ("request_token", rt.as_str()),
        ("checksum", good.as_str()),
    ];
    let no_version = Client::new()
        .post(format!("{}/session/token", sim.base_url()))
        .form(&form);
    let (status, body) = send(no_version).await;
    assert_eq!(
        (status, &body["error_type"]),
        (400, &json!("InputException"))
    );
    let (status, body) = exchange_raw(&sim, &form[..2]).await;
    assert_eq!(
        (status, &body["error_type"]),
        (400, &json!("InputException"))
    );
    // None of those spent the request token.
    assert_eq!(exchange_raw(&sim, &form).await.0, 200);
    assert_eq!((sim.exchange_count(), sim.successful_exchanges()), (5, 1));
}

#[tokio::test]
async fn profile_needs_a_live_token_and_logout_kills_it() {
    let sim = sim().await;
    let token = access_token(&sim).await;
    let (status, body) = profile(&sim, KEY, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["user_id"], "ZD1234");
    assert_eq!(body["data"]["user_name"], "DEMO KITE");
    for k in [
        "access_token",
        "public_token",
        "refresh_token",
        "enctoken",
        "api_key",
    ] {
        assert!(body["data"].get(k).is_none(), "{k}");
    }
    assert!(!body.to_string().contains(&token));
    // Another app's key, a made-up token, or no header at all: dead.
    assert_eq!(profile(&sim, "otherkey", &token).await, (403, dead()));
    assert_eq!(profile(&sim, KEY, "nope").await, (403, dead()));
    let bare = Client::new().get(format!("{}/user/profile", sim.base_url()));
    assert_eq!(send(bare).await, (403, dead()));

    assert_eq!(
        logout(&sim, &token).await,
        (200, json!({"status": "success", "data": true}))
    );
    assert!(!sim.is_token_valid(&token));
    assert_eq!(profile(&sim, KEY, &token).await, (403, dead()));
    // Logging out a dead token is the dead-token answer.
    assert_eq!(logout(&sim, &token).await, (403, dead()));
    assert_eq!((sim.profile_count(), sim.logout_count()), (5, 2));
}

#[tokio::test]
async fn a_master_logout_kills_every_session() {
    let sim = sim().await;
    sim.set_second_login(SecondLogin::SameToken);
    let a = access_token(&sim).await;
    sim.set_browser_user(Some("ZX9999".into()));
    let b = access_token(&sim).await;
    assert_ne!(a, b);
    assert!(sim.is_token_valid(&a) && sim.is_token_valid(&b));
    sim.kill_all_sessions();
    assert!(!sim.is_token_valid(&a) && !sim.is_token_valid(&b));
    assert_eq!(profile(&sim, KEY, &a).await, (403, dead()));
    // Under SameToken a login after the kill gets a new token.
    let c = access_token(&sim).await;
    assert!(c != b && sim.is_token_valid(&c));
}

#[tokio::test]
async fn second_login_kills_the_old_token_or_returns_it() {
    let sim = sim().await;
    let first = access_token(&sim).await;
    let second = access_token(&sim).await;
    assert_ne!(first, second);
    assert!(!sim.is_token_valid(&first) && sim.is_token_valid(&second));
    assert_eq!(profile(&sim, KEY, &first).await, (403, dead()));
    assert_eq!(profile(&sim, KEY, &second).await.0, 200);

    sim.set_second_login(SecondLogin::SameToken);
    let third = access_token(&sim).await;
    assert_eq!(third, second);
    assert!(sim.is_token_valid(&second));
    // Listed once, though answered twice.
    let issued = sim.issued_tokens();
    assert_eq!(issued.iter().filter(|t| **t == second).count(), 1);
    assert_eq!(issued.len(), 5, "three request tokens, two access tokens");
}

#[tokio::test]
async fn the_browser_user_decides_whose_session_it_is() {
    let sim = sim().await;
    sim.set_browser_user(Some("ZX9999".into()));
    let (status, body) = exchange(&sim, &sim.mint_request_token(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user_id"], "ZX9999");
    assert_eq!(body["data"]["api_key"], KEY);
    let token = body["data"]["access_token"].as_str().unwrap();
    assert_eq!(
        profile(&sim, KEY, token).await.1["data"]["user_id"],
        "ZX9999"
    );
    // A different user: the app user's own session is not touched.
    sim.set_browser_user(None);
    let own = access_token(&sim).await;
    assert!(sim.is_token_valid(token) && sim.is_token_valid(&own));
}

#[tokio::test]
async fn injected_failures_are_consumed_one_per_exchange() {
    let sim = sim().await;
    let rt = sim.mint_request_token(KEY);
    sim.fail_next_exchanges(1, KiteFail::ServerError(503));
    sim.fail_next_exchanges(1, KiteFail::Html);
    sim.fail_next_exchanges(2, KiteFail::RateLimit);
    let (status, body) = exchange(&sim, &rt).await;
    assert_eq!(
        (status, &body["error_type"]),
        (503, &json!("GeneralException"))
    );
    assert_eq!(body["status"], "error");
    let r = Client::new()
        .post(format!("{}/session/token", sim.base_url()))
        .header("X-Kite-Version", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert!(r.text().await.unwrap().contains("<html>"));
    let rate_limited = kite_error("Too many requests", "NetworkException");
    assert_eq!(exchange(&sim, &rt).await, (429, rate_limited.clone()));
    assert_eq!(exchange(&sim, &rt).await, (429, rate_limited));
    // The faults are used up and the request token was never spent.
    assert_eq!(exchange(&sim, &rt).await.0, 200);
    assert_eq!((sim.exchange_count(), sim.successful_exchanges()), (5, 1));
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let sim = sim().await;
    sim.set_latency(Duration::from_millis(150));
    let start = std::time::Instant::now();
    assert_eq!(profile(&sim, KEY, "nope").await.0, 403);
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn control_endpoints_steer_the_sim() {
    let sim = sim().await;
    let c = Client::new();
    let post = |path: &str| c.post(format!("{}/_sim/{path}", sim.base_url()));
    let token = access_token(&sim).await;
    assert_eq!(send(post("fail_next?n=2&mode=500")).await.0, 200);
    assert_eq!(send(post("fail_next?mode=bogus")).await.0, 400);
    let rt = sim.mint_request_token(KEY);
    assert_eq!(exchange(&sim, &rt).await.0, 500);
    assert_eq!(exchange(&sim, &rt).await.0, 500);
    assert_eq!(send(post("fail_next?mode=not_found")).await.0, 200);
    let (status, page) = exchange(&sim, &rt).await;
    assert_eq!(status, 404, "{page}");
    assert_eq!(send(post("second_login?mode=same_token")).await.0, 200);
    let (_, body) = exchange(&sim, &rt).await;
    assert_eq!(body["data"]["access_token"], token.as_str());
    assert_eq!(send(post("kill_all")).await.0, 200);
    assert!(!sim.is_token_valid(&token));
    let url = "redirect_url?api_key=demokitekey01&url=http%3A%2F%2F127.0.0.1%3A9%2Fcb";
    assert_eq!(send(post(url)).await.0, 200);
    assert_eq!(browser(&sim, "v=3&api_key=demokitekey01").await.0, 302);
    assert_eq!(send(post("browser_user?user_id=ZX1")).await.0, 200);
    let (_, body) = exchange(&sim, &sim.mint_request_token(KEY)).await;
    assert_eq!(body["data"]["user_id"], "ZX1");
    assert_eq!(send(post("request_token_ttl?ms=0")).await.0, 200);
    let (status, _) = exchange(&sim, &sim.mint_request_token(KEY)).await;
    assert_eq!(status, 403);
    let (status, body) = send(c.get(format!("{}/_sim/stats", sim.base_url()))).await;
    assert_eq!(status, 200);
    let d = &body["data"];
    assert_eq!(
        (&d["exchanges"], &d["successful_exchanges"]),
        (&json!(7), &json!(3))
    );
    assert_eq!(
        (&d["live_sessions"], &d["request_token_ttl_ms"]),
        (&json!(1), &json!(0))
    );
}

// -- the ticker's websocket -----------------------------------------------------

mod ticker {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// A ticker connection as KiteTicker opens it, or the HTTP status of
    /// the refused upgrade.
    async fn open(sim: &KiteSim, api_key: &str, token: &str) -> Result<Ws, u16> {
        // KiteTicker writes `{root}?api_key=..`; its websocket layer sends the
        // path `/` then, which this client needs spelt out.
        let url = format!(
            "{}/?api_key={api_key}&access_token={token}",
            sim.ticker_url()
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("X-Kite-Version", "3".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, resp)) => {
                assert_eq!(resp.status().as_u16(), 101);
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("ticker connect failed: {e}"),
        }
    }

    /// The next binary message, within a few ticks.
    async fn binary(ws: &mut Ws) -> Vec<u8> {
        loop {
            let msg = tokio::time::timeout(TICK_EVERY * 4, ws.next())
                .await
                .expect("a message every tick")
                .unwrap()
                .unwrap();
            if let Message::Binary(b) = msg {
                return b.to_vec();
            }
        }
    }

    /// (instrument token, packet length) of each packet of a tick message.
    fn packets(b: &[u8]) -> Vec<(u32, usize)> {
        let be16 = |i: usize| usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
        let mut out = Vec::new();
        let mut at = 2;
        for _ in 0..be16(0) {
            let len = be16(at);
            let p = &b[at + 2..at + 2 + len];
            out.push((u32::from_be_bytes([p[0], p[1], p[2], p[3]]), len));
            at += 2 + len;
        }
        assert_eq!(at, b.len(), "trailing bytes");
        out
    }

    #[tokio::test]
    async fn ticker_takes_only_live_tokens_and_streams_the_subscribed_modes() {
        let sim = sim().await;
        assert!(sim.ticker_url().starts_with("ws://127.0.0.1:"));
        assert_eq!(open(&sim, KEY, "not-a-token").await.err(), Some(403));
        let token = access_token(&sim).await;
        assert_eq!(open(&sim, "otherkey", &token).await.err(), Some(403));
        // Kite's error envelope, as for any dead token.
        let refused = format!("{}/?api_key={KEY}&access_token=not-a-token", sim.base_url());
        let (status, body) = send(Client::new().get(refused)).await;
        assert_eq!(
            (status, &body["error_type"]),
            (403, &json!("TokenException"))
        );
        // A live token without an upgrade is not a websocket.
        let (status, _) = send(Client::new().get(format!(
            "{}/?api_key={KEY}&access_token={token}",
            sim.base_url()
        )))
        .await;
        assert_eq!(status, 400);

        let mut ws = open(&sim, KEY, &token).await.unwrap();
        assert_eq!(
            binary(&mut ws).await,
            vec![0],
            "a heartbeat while nothing is subscribed"
        );
        let sub = r#"{"a":"subscribe","v":[408065,884737]}"#;
        ws.send(Message::text(sub)).await.unwrap();
        ws.send(Message::text(r#"{"a":"mode","v":["full",[408065]]}"#))
            .await
            .unwrap();
        ws.send(Message::text(r#"{"a":"mode","v":["ltp",[884737]]}"#))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen = packets(&binary(&mut ws).await);
            if seen == [(408065, 184), (884737, 8)] {
                break;
            }
        }
        assert_eq!(seen, [(408065, 184), (884737, 8)]);
        ws.send(Message::text(r#"{"a":"unsubscribe","v":[408065]}"#))
            .await
            .unwrap();
        ws.send(Message::text(r#"{"a":"mode","v":["fast",[884737]]}"#))
            .await
            .unwrap();
        let error = loop {
            let msg = ws.next().await.unwrap().unwrap();
            if let Message::Text(t) = msg {
                break serde_json::from_str::<Value>(t.as_str()).unwrap();
            }
        };
        assert_eq!(error, json!({"type": "error", "data": "Invalid mode"}));
        let mut after = Vec::new();
        for _ in 0..4 {
            after = packets(&binary(&mut ws).await);
            if after == [(884737, 8)] {
                break;
            }
        }
        assert_eq!(after, [(884737, 8)]);

        // The token dies: the open connection stays until it is dropped;
        // a new one is refused.
        sim.kill_all_sessions();
        assert_eq!(open(&sim, KEY, &token).await.err(), Some(403));
        sim.drop_ticker_connections();
        let closed = loop {
            match tokio::time::timeout(TICK_EVERY * 4, ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break true,
                Some(Ok(_)) => {}
            }
        };
        assert!(closed);

        let attempts = sim.ticker_attempts();
        let seen: Vec<(&str, bool, u16)> = attempts
            .iter()
            .map(|a| (a.access_token.as_str(), a.accepted, a.status))
            .collect();
        assert_eq!(
            seen,
            [
                ("not-a-token", false, 403),
                (token.as_str(), false, 403),
                ("not-a-token", false, 403),
                (token.as_str(), false, 400),
                (token.as_str(), true, 101),
                (token.as_str(), false, 403),
            ]
        );
        assert_eq!(attempts[4].subscribed, [408065, 884737]);
        assert_eq!(attempts[4].kite_version.as_deref(), Some("3"));
        for _ in 0..50 {
            if !sim.ticker_attempts()[4].open {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!sim.ticker_attempts()[4].open);
        let (status, body) =
            send(Client::new().get(format!("{}/_sim/ticker", sim.base_url()))).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][4]["subscribed"], json!([408065, 884737]));
        assert_eq!(body["data"][0]["status"], 403);
    }
}

/// On a manual clock the sim reads no real time: a request token's life and
/// the access token's 06:00 IST cut-off follow the clock's moves.
#[tokio::test]
async fn a_manual_clock_drives_request_token_life_and_the_cutoff() {
    use brokerd_core::time::ManualClock;
    let sim = sim().await;
    // 05:50 IST, ten minutes before the cut-off.
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-24T05:50:00+05:30")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let clock = ManualClock::new(start);
    sim.set_clock(clock.clone());
    sim.set_request_token_ttl(Duration::from_secs(60));
    let late = sim.mint_request_token(KEY);
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(exchange(&sim, &late).await, (403, token_invalid()));
    let token = access_token(&sim).await;
    let (status, body) = profile(&sim, KEY, &token).await;
    assert_eq!(status, 200, "{body}");
    // login_time is the sim clock's, on the IST wall clock.
    assert_eq!(
        sim.last_exchange_answer().unwrap()["login_time"],
        "2026-11-24 05:51:01"
    );
    clock.set(start + chrono::Duration::seconds(599));
    assert!(sim.is_token_valid(&token));
    clock.set(start + chrono::Duration::seconds(600));
    assert!(!sim.is_token_valid(&token));
    assert_eq!(profile(&sim, KEY, &token).await, (403, dead()));
    // Without a cut-off a token lives on.
    sim.set_cutoff(None);
    let token = access_token(&sim).await;
    clock.advance(chrono::Duration::days(3));
    assert!(sim.is_token_valid(&token));
}
