//! Tests against the real server on 127.0.0.1:0 with reqwest.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use super::*;

async fn sim() -> XtsSim {
    XtsSim::start(XtsSimConfig::default()).await.unwrap()
}

fn login_url(sim: &XtsSim, api: Api) -> String {
    match api {
        Api::Interactive => format!("{}/interactive/user/session", sim.base_url()),
        Api::Market => format!("{}/apibinarymarketdata/auth/login", sim.base_url()),
    }
}

fn creds(api: Api, secret: Option<&str>) -> Value {
    let user = XtsSimUser::demo();
    let (k, s) = user.keys(api);
    json!({"appKey": k, "secretKey": secret.unwrap_or(s), "source": "WEBAPI"})
}

async fn login(sim: &XtsSim, api: Api) -> (u16, Value) {
    let r = Client::new()
        .post(login_url(sim, api))
        .json(&creds(api, None))
        .send()
        .await
        .unwrap();
    // Null when the body is not JSON (injected HTML).
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn token(sim: &XtsSim, api: Api) -> String {
    let (status, body) = login(sim, api).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["token"].as_str().unwrap().to_owned()
}

/// Profile (interactive) or clientConfig (market) with `token`.
async fn check(sim: &XtsSim, api: Api, token: &str) -> (u16, Value) {
    let path = match api {
        Api::Interactive => "/interactive/user/profile",
        Api::Market => "/apibinarymarketdata/config/clientConfig",
    };
    let url = format!("{}{path}", sim.base_url());
    let r = Client::new()
        .get(url)
        .header("Authorization", token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn assert_invalid(status_body: (u16, Value), status: u16) {
    assert_eq!(status_body.0, status);
    assert_eq!(status_body.1["code"], "e-session-0007");
    assert_eq!(status_body.1["description"], "Invalid Token");
}

fn claims(token: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(&[]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn logins_succeed_with_json_and_form_bodies() {
    let sim = sim().await;
    let (status, body) = login(&sim, Api::Interactive).await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "success");
    let r = &body["result"];
    assert_eq!(
        (r["userID"].as_str(), r["isInvestorClient"].as_bool()),
        (Some("DEMO01"), Some(true))
    );
    assert_eq!(r["clientCodes"], json!(["DEMO01"]));
    let it = r["token"].as_str().unwrap();
    assert_eq!(check(&sim, Api::Interactive, it).await.0, 200);

    // The Python SDK form-encodes.
    let form = [
        ("appKey", "demo-market-key"),
        ("secretKey", "demo-market-secret"),
        ("source", "WEBAPI"),
    ];
    let r = Client::new()
        .post(login_url(&sim, Api::Market))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["application_expiry_date"], "2027-03-31");
    let mt = body["result"]["token"].as_str().unwrap();
    assert_eq!(check(&sim, Api::Market, mt).await.0, 200);
    assert_ne!(it, mt);
    assert!(sim.is_token_valid(it) && sim.is_token_valid(mt));
    assert_eq!(sim.issued_tokens(), vec![it.to_owned(), mt.to_owned()]);
    let c = claims(it);
    assert_eq!(
        (c["userID"].as_str(), c["api"].as_str()),
        (Some("DEMO01"), Some("interactive"))
    );
    assert!(!c.to_string().contains("secret"), "claims carry no secret");
}

#[tokio::test]
async fn wrong_secret_and_missing_fields() {
    let sim = sim().await;
    let c = Client::new();
    let r = c
        .post(login_url(&sim, Api::Interactive))
        .json(&creds(Api::Interactive, Some("nope")));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "code": "e-app-0005", "description": "Invalid AppKey or SecretKey", "result": {}})
    );

    let r = c
        .post(login_url(&sim, Api::Market))
        .json(&json!({"appKey": "demo-market-key"}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["description"], "Bad Request");
    let fields: Vec<&str> = body["result"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["secretKey", "source"]);
    // A market key is not an interactive key.
    let r = c
        .post(login_url(&sim, Api::Interactive))
        .json(&creds(Api::Market, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        (
            sim.login_count(Api::Interactive),
            sim.login_count(Api::Market)
        ),
        (2, 1)
    );
    assert_eq!(
        sim.successful_logins(Api::Interactive) + sim.successful_logins(Api::Market),
        0
    );
    assert!(sim.issued_tokens().is_empty());
}

#[tokio::test]
async fn second_login_kills_the_first_token_of_that_api_only() {
    let sim = sim().await;
    let market = token(&sim, Api::Market).await;
    let first = token(&sim, Api::Interactive).await;
    let second = token(&sim, Api::Interactive).await;
    assert_invalid(check(&sim, Api::Interactive, &first).await, 400);
    assert_eq!(check(&sim, Api::Interactive, &second).await.0, 200);
    assert_eq!(check(&sim, Api::Market, &market).await.0, 200);
    assert_eq!(
        (
            sim.login_count(Api::Interactive),
            sim.successful_logins(Api::Interactive)
        ),
        (2, 2)
    );
}

#[tokio::test]
async fn invalid_token_answers_and_wrong_api() {
    let sim = sim().await;
    let it = token(&sim, Api::Interactive).await;
    assert_invalid(check(&sim, Api::Market, &it).await, 400);
    assert_invalid(check(&sim, Api::Interactive, "not-a-token").await, 400);
    sim.set_invalid_token_status(200);
    assert_invalid(check(&sim, Api::Market, &it).await, 200);
    let r = Client::new()
        .get(format!("{}/interactive/user/profile", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_invalid((401, r.json().await.unwrap()), 401);
    // A wrong prefix gets an HTML 404, as from Express.
    let r = Client::new()
        .get(format!("{}/apimarketdata/auth/login", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn reject_all_now_kills_every_token() {
    let sim = sim().await;
    let (it, mt) = (
        token(&sim, Api::Interactive).await,
        token(&sim, Api::Market).await,
    );
    sim.reject_all_now();
    assert_invalid(check(&sim, Api::Interactive, &it).await, 400);
    assert_invalid(check(&sim, Api::Market, &mt).await, 400);
    assert!(!sim.is_token_valid(&it) && !sim.is_token_valid(&mt));
    let fresh = token(&sim, Api::Interactive).await;
    assert_eq!(check(&sim, Api::Interactive, &fresh).await.0, 200);
}

#[tokio::test]
async fn kill_after_rejects_tokens_whose_exp_is_far() {
    let sim = sim().await;
    sim.set_kill_after(Api::Market, Some(Duration::from_millis(300)));
    let mt = token(&sim, Api::Market).await;
    let it = token(&sim, Api::Interactive).await;
    assert_eq!(check(&sim, Api::Market, &mt).await.0, 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_invalid(check(&sim, Api::Market, &mt).await, 400);
    assert_eq!(check(&sim, Api::Interactive, &it).await.0, 200);
    let exp = brokerd_core::jwt::expiry(&mt).unwrap();
    assert!(exp > chrono::Utc::now() + chrono::Duration::hours(23));
}

#[tokio::test]
async fn fail_modes_are_consumed_one_per_attempt() {
    let sim = sim().await;
    let c = Client::new();
    let api = Api::Interactive;
    let post = || c.post(login_url(&sim, api)).json(&creds(api, None)).send();
    sim.fail_next_logins(api, 2, FailMode::ServerError(503));
    sim.fail_next_logins(api, 1, FailMode::WrongSecret);
    sim.fail_next_logins(api, 1, FailMode::Html);
    for _ in 0..2 {
        let r = post().await.unwrap();
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            (body["type"].as_str(), body["description"].as_str()),
            (Some("error"), Some("Service Unavailable"))
        );
    }
    let r = post().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "e-app-0005");
    let r = post().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("502 Bad Gateway"));
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!((sim.login_count(api), sim.successful_logins(api)), (5, 1));
    assert_eq!(sim.login_count(Api::Market), 0);

    sim.fail_next_logins(api, 1, FailMode::Timeout(Duration::from_millis(500)));
    let quick = Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = quick
        .post(login_url(&sim, api))
        .json(&creds(api, None))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // The server logged in although the client gave up; a retry works.
    assert_eq!(sim.successful_logins(api), 2);
    let t = token(&sim, api).await;
    assert_eq!(check(&sim, api, &t).await.0, 200);
}

#[tokio::test]
async fn token_lifetime_and_exp_claim() {
    let sim = sim().await;
    sim.set_token_lifetime(Api::Interactive, Duration::from_secs(3600));
    let it = token(&sim, Api::Interactive).await;
    let exp = brokerd_core::jwt::expiry(&it).unwrap();
    let want = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!((exp - want).num_seconds().abs() <= 5, "exp {exp} vs {want}");
    sim.set_include_exp(Api::Market, false);
    let mt = token(&sim, Api::Market).await;
    assert!(brokerd_core::jwt::expiry(&mt).is_none());
    assert_eq!(check(&sim, Api::Market, &mt).await.0, 200);
    // A zero lifetime is dead on arrival, exp or not.
    sim.set_token_lifetime(Api::Market, Duration::ZERO);
    let dead = token(&sim, Api::Market).await;
    assert_invalid(check(&sim, Api::Market, &dead).await, 400);
}

#[tokio::test]
async fn logout_revokes_and_counts() {
    let sim = sim().await;
    let c = Client::new();
    for (api, path) in [
        (Api::Interactive, "/interactive/user/session"),
        (Api::Market, "/apibinarymarketdata/auth/logout"),
    ] {
        let t = token(&sim, api).await;
        let url = format!("{}{path}", sim.base_url());
        let r = c
            .delete(&url)
            .header("Authorization", &t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "s-user-0002");
        assert_invalid(check(&sim, api, &t).await, 400);
        let r = c
            .delete(&url)
            .header("Authorization", &t)
            .send()
            .await
            .unwrap();
        assert_invalid((r.status().as_u16(), r.json().await.unwrap()), 400);
        assert_eq!(sim.logout_count(api), 1);
    }
}

#[tokio::test]
async fn dealers_must_pass_client_id() {
    let dealer = XtsSimUser {
        is_investor_client: false,
        client_codes: vec!["C1".into(), "C2".into()],
        ..XtsSimUser::demo()
    };
    let sim = XtsSim::start(XtsSimConfig {
        users: vec![dealer],
        ..Default::default()
    })
    .await
    .unwrap();
    let (_, body) = login(&sim, Api::Interactive).await;
    assert_eq!(body["result"]["isInvestorClient"], false);
    let t = body["result"]["token"].as_str().unwrap();
    let url = format!("{}/interactive/user/profile", sim.base_url());
    let r = Client::new()
        .get(&url)
        .header("Authorization", t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = Client::new()
        .get(&url)
        .query(&[("clientID", "C2")])
        .header("Authorization", t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["result"]["ClientId"], "C2");
}

#[tokio::test]
async fn latency_control_surface_and_shutdown() {
    let sim = sim().await;
    let c = Client::new();
    let url = |p: &str| format!("{}/_sim/{p}", sim.base_url());
    let r = c
        .post(url("fail_next?api=market&n=1&mode=html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.post(url("fail_next?api=market&mode=bogus"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(login(&sim, Api::Market).await.0, 502);
    let mt = token(&sim, Api::Market).await;
    assert_eq!(
        c.post(url("reject_all")).send().await.unwrap().status(),
        200
    );
    assert!(!sim.is_token_valid(&mt));
    let stats: Value = c
        .get(url("stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["result"]["market"]["logins"], 2);
    assert_eq!(stats["result"]["market"]["successful_logins"], 1);
    assert_eq!(stats["result"]["live_tokens"], 0);

    sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(login(&sim, Api::Interactive).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.set_latency(Duration::ZERO);

    sim.shutdown().await;
    assert!(c.get(url("stats")).send().await.is_err());
}
