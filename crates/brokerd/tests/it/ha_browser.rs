//! A person's browser login that lands on a follower (Zerodha): the
//! follower's callback listener hands the request token to the leader
//! unused, the leader checks the link's single-use state and exchanges it
//! once, and both daemons serve the one session. Two daemons in this
//! process on one private PostgreSQL database, one Kite simulator.
//! Skipped, saying why, without PostgreSQL's server binaries.

use crate::common;

use std::time::Duration;

use brokerd::config::Config;
use brokerd::daemon;
use common::browser::{Browser, KITE_KEY, open};
use common::{eventually_async, pg_cluster, session};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_login_on_a_follower_is_exchanged_once_by_the_leader() {
    let url = match pg_cluster::fresh_database() {
        Ok(url) => url,
        Err(why) => return pg_cluster::skip("ha_browser::a_browser_login_on_a_follower", &why),
    };
    let ha = |host: &str| {
        format!(
            "database_url = \"{url}\"\n[daemon.ha]\nhost = \"{host}\"\ntakeover_within = \"2s\"\n\
             check_every = \"1s\"\n"
        )
    };
    // vps-a starts first and takes the lead; its key is the one both use.
    let a = Browser::start("", "", &ha("vps-a")).await;
    let b_dir = tempfile::tempdir().unwrap();
    let a_dir = a.dir.path().display().to_string();
    let b_text = a
        .config_text()
        .replace(&a_dir, &b_dir.path().display().to_string())
        .replace("host = \"vps-a\"", "host = \"vps-b\"");
    std::fs::create_dir_all(b_dir.path().join("keys")).unwrap();
    let key = b_dir.path().join("keys/brokerd.key");
    std::fs::copy(a.dir.path().join("keys/brokerd.key"), &key).unwrap();
    std::fs::write(b_dir.path().join("brokerd.toml"), &b_text).unwrap();
    let loaded = Config::load(&b_dir.path().join("brokerd.toml")).unwrap();
    let b = daemon::start_on(loaded, None, a.time.clock.clone())
        .await
        .unwrap();
    let b_socket = b_dir.path().join("run/brokerd.sock");
    let b_call = |request: serde_json::Value| {
        let socket = b_socket.clone();
        async move {
            let mut c = brokerd::client::Client::connect(&socket).await.unwrap();
            c.call(&request).await.unwrap()
        }
    };
    let zerodha = |s: serde_json::Value| {
        s["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["broker"] == "zerodha")
            .cloned()
            .unwrap()
    };
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let on_b = zerodha(b_call(json!({"op": "status"})).await);
            a.status_of("zerodha").await["role"] == "leader"
                && on_b["role"] == "follower"
                && on_b["leader"] == "vps-a"
        })
        .await,
        "vps-a leads, vps-b follows"
    );
    // Only the leader shows the link (it is the one that can check it).
    let on_b = zerodha(b_call(json!({"op": "status"})).await);
    assert_eq!(on_b["login_url"], serde_json::Value::Null, "{on_b}");
    let link = a.login_url("zerodha").await;

    // The broker's redirect lands on vps-b (say, the app's redirect URL
    // names the host the person happened to reach).
    let b_callback = b.callback_url.clone().expect("vps-b's callback listener");
    a.kite
        .set_redirect_url(KITE_KEY, &format!("{b_callback}/callback/zerodha/main"));
    let (status, page) = open(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("zerodha/main is logged in as ZD1234"),
        "{page}"
    );
    assert_eq!(a.kite.exchange_count(), 1, "exchanged once, by the leader");

    let on_a = session(&a.call(json!({"op": "token", "broker": "zerodha"})).await).clone();
    let on_b = b_call(json!({"op": "token", "broker": "zerodha"})).await;
    assert_eq!(session(&on_b)["token"], on_a["token"], "{on_b}");
    assert_eq!(on_a["generation"], 1);
    assert!(a.kite.is_token_valid(on_a["token"].as_str().unwrap()));
    // The handed-over request row is gone once claimed (that its payload
    // is stored encrypted is store/postgres/ha_tests.rs's to show).
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ha_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    b.stop().await;
    let mut a = a;
    a.stop().await;
}
