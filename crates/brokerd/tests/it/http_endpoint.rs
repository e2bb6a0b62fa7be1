//! The optional HTTP endpoint (`[http] listen`), read with a real HTTP
//! client: `/metrics` is the Prometheus text of every session, `/healthz`
//! says 200 while every session is usable or waiting as expected and 503
//! with the reasons once one needs a person; neither shows a token or a
//! secret. A change of `[http]` needs a restart, and reload says so.

use crate::common;

use brokerd::brokers::Api;
use brokerd_sim::xts::FailMode;
use common::{Harness, error_code, session, without_budget};
use serde_json::{Value, json};

const HTTP: &str = "\n[http]\nlisten = \"127.0.0.1:0\"\n";

fn base(h: &Harness) -> String {
    let addr = h
        .running
        .as_ref()
        .and_then(|r| r.http_addr)
        .expect("the endpoint is on");
    format!("http://{addr}")
}

async fn get(url: &str) -> (u16, String, String) {
    let reply = reqwest::get(url).await.unwrap();
    let status = reply.status().as_u16();
    let kind = reply
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, reply.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http_never_show_a_token() {
    let h = Harness::start_with(&without_budget(""), HTTP).await;
    let token = session(&h.token("interactive").await)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = base(&h);

    let (status, kind, text) = get(&format!("{url}/metrics")).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert!(
        text.contains(
            "brokerd_session_generation{broker=\"jainam\",account=\"main\",api=\"interactive\"}"
        ),
        "{text}"
    );
    // The same series as the `metrics` operation.
    let op = h.call(json!({"op": "metrics"})).await;
    let names = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(names(&text), names(op["text"].as_str().unwrap()));
    assert!(!text.contains(&token), "no token in /metrics");

    let (status, kind, text) = get(&format!("{url}/healthz")).await;
    assert_eq!(status, 200, "{text}");
    assert!(kind.starts_with("application/json"), "{kind}");
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["sessions"], 2);
    assert_eq!(health["unhealthy"], json!([]));

    // The broker rejects the secret: locked_out needs a person.
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    let login = h
        .call(json!({"op": "login", "broker": "jainam", "account": "main", "wait_secs": 10}))
        .await;
    assert_eq!(error_code(&login), "locked_out", "{login}");
    let (status, _, text) = get(&format!("{url}/healthz")).await;
    assert_eq!(status, 503, "{text}");
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["status"], "unhealthy");
    let bad = health["unhealthy"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{health}");
    assert_eq!(
        (
            &bad[0]["broker"],
            &bad[0]["account"],
            &bad[0]["api"],
            &bad[0]["state"]
        ),
        (
            &json!("jainam"),
            &json!("main"),
            &json!("interactive"),
            &json!("locked_out")
        )
    );
    assert!(
        bad[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{health}"
    );
    for secret in [
        token.as_str(),
        "demo-interactive-secret",
        "demo-interactive-key",
    ] {
        assert!(!text.contains(secret), "{secret} in /healthz: {text}");
    }

    // Only the two paths, only GET.
    assert_eq!(get(&format!("{url}/")).await.0, 404);
    let post = reqwest::Client::new()
        .post(format!("{url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_a_change_needs_a_restart() {
    let h = Harness::start("login_at_start = false").await;
    assert!(h.running.as_ref().unwrap().http_addr.is_none());
    let text = h.config_text() + HTTP;
    std::fs::write(h.config_path(), text).unwrap();
    let reply = h.call(json!({"op": "reload"})).await;
    assert_eq!(reply["needs_restart"], json!(["http"]), "{reply}");
}
