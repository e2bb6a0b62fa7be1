//! The daemon on a PostgreSQL store (`database_url = "postgres://…"`),
//! against the private cluster of this test process and the XTS simulator:
//! a session is logged in and stored there, and after a restart it is
//! served from the database without a login (counted at the simulator).
//! Skipped, saying why, without PostgreSQL's server binaries.

use crate::common;

use brokerd::brokers::Api;
use common::{Harness, pg_cluster, session};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_postgres_serves_the_stored_session_without_a_login() {
    let url = match pg_cluster::fresh_database() {
        Ok(url) => url,
        Err(why) => {
            pg_cluster::skip("postgres_store::a_restart_on_postgres", &why);
            return;
        }
    };
    // Trust authentication ignores the password; it is there to be hidden.
    let url = url.replacen("postgres@", "postgres:pg-SENTINEL-3e1@", 1);
    let mut h = Harness::start_with_daemon(
        "login_at_start = false",
        &format!("database_url = \"{url}\""),
    )
    .await;
    let before = session(&h.token("interactive").await).clone();
    let market = session(&h.token("market").await).clone();
    assert_eq!(h.sim.login_count(Api::Interactive), 1);

    h.restart().await;
    let after = h.token("interactive").await;
    assert_eq!(session(&after)["token"], before["token"]);
    assert_eq!(session(&after)["generation"], 1);
    assert_eq!(session(&h.token("market").await)["token"], market["token"]);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no login after the restart"
    );
    assert_eq!(h.status_of("interactive").await["state"], "active");
    // Nothing went to an SQLite file: the state folder holds the lock only.
    assert!(!h.db_path().exists(), "an SQLite database was created");

    // The audit trail is in the database too, read back by `history`.
    let history = h
        .call(json!({"op": "history", "broker": "jainam", "limit": 50}))
        .await;
    let rows = history["events"]
        .as_array()
        .expect("history events")
        .clone();
    let logins = rows.iter().filter(|r| r["event"] == "login_ok").count();
    assert_eq!(logins, 2, "one login per api: {history}");
    assert!(!history.to_string().contains("pg-SENTINEL"));

    // A rejection reported by a client: one fenced re-login, generation 2
    // stored and served after another restart.
    let renewed = h
        .call(
            json!({"op": "invalidate", "broker": "jainam", "api": "interactive",
                     "generation": 1, "reason": "Invalid Token"}),
        )
        .await;
    assert_eq!(session(&renewed)["generation"], 2, "{renewed}");
    h.restart().await;
    assert_eq!(session(&h.token("interactive").await)["generation"], 2);
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
    h.stop().await;
}

/// The database goes away under a running daemon: the session in memory is
/// still served, a report that needs a login gets `store_unavailable` and
/// no login happens; once the server is back the same daemon (no restart)
/// logs in by itself and stores the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_stops_logins_until_it_is_back() {
    // Its own cluster: stopping the shared one would break the other tests.
    let cluster = match pg_cluster::PgCluster::start(true) {
        Ok(c) => c,
        Err(why) => {
            pg_cluster::skip("postgres_store::a_database_that_goes_away", &why);
            return;
        }
    };
    let url = cluster.create_database().unwrap();
    let mut h = Harness::start_with_daemon(
        "login_at_start = false",
        &format!("database_url = \"{url}\""),
    )
    .await;
    let first = session(&h.token("interactive").await).clone();
    assert_eq!(first["generation"], 1);

    cluster.stop().unwrap();
    assert_eq!(
        session(&h.token("interactive").await)["token"],
        first["token"],
        "served from memory while the database is down"
    );
    let refused = h
        .call(
            json!({"op": "invalidate", "broker": "jainam", "api": "interactive",
                     "generation": 1, "reason": "Invalid Token"}),
        )
        .await;
    assert_eq!(
        common::error_code(&refused),
        "store_unavailable",
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("PostgreSQL database"), "{message}");
    assert!(message.contains("PostgreSQL server is up"), "{message}");
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no login without a store"
    );

    cluster.start_again().unwrap();
    assert!(
        common::eventually(std::time::Duration::from_secs(90), || h
            .sim
            .login_count(Api::Interactive)
            == 2)
        .await,
        "the daemon logged in once the database was back"
    );
    let renewed = h.token("interactive").await;
    assert_eq!(session(&renewed)["generation"], 2, "{renewed}");
    h.restart().await;
    assert_eq!(session(&h.token("interactive").await)["generation"], 2);
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
    h.stop().await;
}
