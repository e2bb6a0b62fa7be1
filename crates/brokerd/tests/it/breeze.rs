//! Breeze end to end: the browser login in both delivery shapes, `sign`,
//! and the `Invalid Checksum` recheck, against the Breeze simulator.

use crate::common;

use std::time::Duration;

use brokerd_sim::breeze::Delivery;
use common::browser::{BREEZE_KEY, BREEZE_SECRET, Browser, browser, next_event, open, subscribe};
use common::{error_code, session};
use serde_json::json;

fn breeze(extra: serde_json::Value) -> serde_json::Value {
    let mut r = json!({"broker": "breeze"});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

/// Follows the simulator's login page by hand when it answers with a form
/// (a browser would run its script): POSTs the hidden field to the callback.
async fn login_with_form(b: &Browser) -> (u16, String) {
    let url = b.login_url("breeze").await;
    let page = browser()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = page
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let value = page
        .split("name=\"API_Session\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = browser()
        .post(&action)
        .form(&[("API_Session", value.as_str())])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn browser_login_by_query_and_by_form() {
    let b = Browser::start("", "", "").await;
    let url = b.login_url("breeze").await;
    assert!(
        url.contains("api_key=demo%2Bbreeze%3Dkey%5E01"),
        "app key URL-encoded: {url}"
    );
    let mut events = subscribe(&b, "breeze").await;
    let waiter = {
        let mut c = b.client().await;
        tokio::spawn(async move {
            c.call(&json!({"op": "token", "broker": "breeze", "wait_secs": 30}))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, page) = open(&url).await;
    assert_eq!(status, 200, "{page}");
    let got = waiter.await.unwrap();
    let s = session(&got);
    assert_eq!(s["generation"], 1);
    let token = s["token"].as_str().unwrap();
    assert!(b.breeze.is_session_valid(token));
    // Exactly the documented fields; the session token only as `token`
    // and `X-SessionToken`, the secret key nowhere.
    common::assert_session_fields(
        &got,
        json!({"api_root": format!("{}/breezeapi/api/v1", b.breeze.base_url()),
               "api_key": BREEZE_KEY, "user_id": "BZ1234"}),
        &[BREEZE_SECRET],
        &[token],
    );
    assert_eq!(s["headers"]["X-AppKey"], BREEZE_KEY);
    assert_eq!(s["headers"]["X-SessionToken"], token);
    assert_eq!(
        next_event(&mut events, "renewed", Duration::from_secs(5)).await["generation"],
        1
    );

    b.breeze.set_delivery(Delivery::Form);
    let (status, page) = login_with_form(&b).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        next_event(&mut events, "renewed", Duration::from_secs(5)).await["generation"],
        2
    );
    assert_eq!(b.status_of("breeze").await["generation"], 2);
}

#[tokio::test]
async fn sign_gives_headers_the_broker_accepts() {
    let b = Browser::start("", "", "").await;
    let r = b.log_in_breeze().await;
    let token = session(&r)["token"].as_str().unwrap().to_string();
    let r = b.call(breeze(json!({"op": "sign", "body": "{}"}))).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["generation"], 1);
    let h = &r["headers"];
    assert!(h["X-Checksum"].as_str().unwrap().starts_with("token "));
    assert!(h["X-Timestamp"].as_str().unwrap().ends_with(".000Z"));
    assert_eq!(h["X-SessionToken"], token.as_str());
    assert_eq!(h["Content-Type"], "application/json");
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        !text.contains(common::browser::BREEZE_SECRET),
        "the secret never leaves the daemon"
    );

    // The broker accepts a call signed this way, and refuses it for another body.
    let funds = format!("{}/breezeapi/api/v1/funds", b.breeze.base_url());
    let send = |body: &'static str| {
        let mut req = browser().get(&funds).body(body);
        for (k, v) in h.as_object().unwrap() {
            req = req.header(k.as_str(), v.as_str().unwrap());
        }
        req.send()
    };
    let ok: serde_json::Value = send("{}").await.unwrap().json().await.unwrap();
    assert_eq!(ok["Status"], 200, "{ok}");
    let bad: serde_json::Value = send("{ }").await.unwrap().json().await.unwrap();
    assert_eq!(bad["Status"], 5, "{bad}");

    // A JSON value is serialised compactly and echoed, so the caller sends those bytes.
    let r = b
        .call(breeze(
            json!({"op": "sign", "body": {"stock_code": "NIFTY", "quantity": "50"}}),
        ))
        .await;
    // (serde_json orders object keys: what counts is that the echoed text
    // is exactly what was signed.)
    assert_eq!(r["body"], r#"{"quantity":"50","stock_code":"NIFTY"}"#);
    // Jainam-style brokers do not sign.
    let r = b
        .call(json!({"op": "sign", "broker": "zerodha", "body": "{}"}))
        .await;
    assert!(r["ok"] == false, "{r}");
}

#[tokio::test]
async fn invalid_checksum_is_rechecked_before_the_session_is_declared_dead() {
    let b = Browser::start("", "", "").await;
    let r = b.log_in_breeze().await;
    assert_eq!(session(&r)["generation"], 1);
    let reason =
        json!({"Success": null, "Status": 5, "Error": "Authentication Fail :: Invalid Checksum."});

    // Session alive, secret fine: the client signed the wrong bytes.
    let r = b
        .call(breeze(
            json!({"op": "invalidate", "generation": 1, "reason": reason}),
        ))
        .await;
    assert_eq!(error_code(&r), "bad_request", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign the exact body"),
        "{r}"
    );
    assert_eq!(b.status_of("breeze").await["state"], "active");

    // Session dead: a person must log in.
    b.breeze.kill_all_sessions();
    let r = b
        .call(breeze(
            json!({"op": "invalidate", "generation": 1, "reason": reason}),
        ))
        .await;
    assert_eq!(error_code(&r), "auth_required", "{r}");
    assert!(
        r["error"]["login_url"]
            .as_str()
            .unwrap()
            .contains("/apiuser/login?api_key=")
    );

    // Secret regenerated at the broker: locked out, naming the secret.
    let r = b.log_in_breeze().await;
    assert_eq!(session(&r)["generation"], 2);
    b.breeze.set_secret(BREEZE_KEY, "regenerated");
    let r = b
        .call(breeze(
            json!({"op": "invalidate", "generation": 2, "reason": reason}),
        ))
        .await;
    assert_eq!(error_code(&r), "locked_out", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("secret"),
        "{r}"
    );
    assert_eq!(b.status_of("breeze").await["state"], "locked_out");
}

#[tokio::test]
async fn sessions_end_at_the_earlier_of_lifetime_and_cutoff() {
    // 20 s of virtual time is a second of real time.
    let b = Browser::start("", "max_lifetime = \"20s\"\nexpiring_notice = \"0s\"", "").await;
    let mut events = subscribe(&b, "breeze").await;
    let r = b.log_in_breeze().await;
    assert_eq!(session(&r)["generation"], 1);
    // (The startup announcement, generation 0, may come first.)
    let mut auth = next_event(&mut events, "auth_required", Duration::from_secs(10)).await;
    if auth["generation"] == 0 {
        auth = next_event(&mut events, "auth_required", Duration::from_secs(10)).await;
    }
    assert_eq!(auth["generation"], 1);
    let r = b.call(breeze(json!({"op": "token"}))).await;
    assert_eq!(error_code(&r), "auth_required");
    let st = b.status_of("breeze").await;
    assert_eq!(st["state"], "auth_required");
    assert!(st["login_url"].is_string(), "{st}");

    // A mistyped key: Breeze's own words, and the account still waits.
    let r = b
        .call(breeze(json!({"op": "submit", "api_session": "0000000"})))
        .await;
    assert_eq!(error_code(&r), "login_failed", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid session"),
        "{r}"
    );
    assert_eq!(b.status_of("breeze").await["state"], "auth_required");
}

#[tokio::test]
async fn concurrent_checksum_reports_share_one_recheck() {
    let b = Browser::start("", "", "").await;
    let r = b.log_in_breeze().await;
    assert_eq!(session(&r)["generation"], 1);
    let reason =
        json!({"Success": null, "Status": 5, "Error": "Authentication Fail :: Invalid Checksum."});
    // Virtual time: 6 s of latency is 300 ms of real time, long enough for
    // all twenty reports to arrive while the first check runs.
    b.breeze.set_latency(Duration::from_secs(6));
    let (details, funds) = (b.breeze.customerdetails_count(), b.breeze.funds_count());
    let mut reports = Vec::new();
    for _ in 0..20 {
        let mut c = b.client().await;
        let req = breeze(json!({"op": "invalidate", "generation": 1, "reason": reason}));
        reports.push(tokio::spawn(async move { c.call(&req).await.unwrap() }));
    }
    for r in reports {
        let r = r.await.unwrap();
        assert_eq!(error_code(&r), "bad_request", "{r}");
    }
    // One check (customerdetails + signed funds) answered them all; allow
    // one more for a report that arrived just as the first check finished.
    assert!(
        b.breeze.customerdetails_count() - details <= 2,
        "customerdetails calls"
    );
    assert!(b.breeze.funds_count() - funds <= 2, "funds calls");
    assert_eq!(b.status_of("breeze").await["state"], "active");
}
