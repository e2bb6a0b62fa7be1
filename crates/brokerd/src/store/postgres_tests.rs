//! What only the PostgreSQL store must show, on a real server (the test
//! process's private cluster): no secret in clear in any table, commits
//! synchronous, the URL's password never in a message, highest generation
//! kept under concurrent saves, the same tables and columns as SQLite, and
//! a server restarted under the store:
//! clean errors while it is down, and the same store working again after.

use std::time::{Duration, Instant};

use crate::brokers::Api;
use crate::store::pg_test_cluster::{self, PgCluster};
use crate::store::store_tests::{loaded, sample, slot};
use crate::store::test_backends::{TestDb, exec};
use crate::store::{EncryptionKey, Store, StoreError};

/// A fresh database, or `None` after printing why the test is skipped.
fn database(test: &str) -> Option<TestDb> {
    match TestDb::postgres() {
        Ok(db) => Some(db),
        Err(why) => {
            pg_test_cluster::skip(test, &why);
            None
        }
    }
}

fn pool(store: &Store) -> &sqlx::PgPool {
    match store {
        Store::Postgres(s) => &s.pool,
        Store::Sqlite(_) => panic!("a PostgreSQL store was expected"),
    }
}

#[tokio::test]
async fn no_secret_in_clear_in_any_table_and_commits_are_synchronous() {
    let Some(db) = database("no_secret_in_clear_in_any_table") else {
        return;
    };
    let store = db.open(EncryptionKey::generate()).await;
    let key_b64 = crate::store::store_tests::key_b64(&store);
    for (n, api) in [(1, Api::Interactive), (2, Api::Market)] {
        let key = slot("main", api);
        store.reserve_session(&key).await.unwrap();
        store.save_session(&key, 1, &sample(n)).await.unwrap();
    }
    store
        .forget_session(&slot("main", Api::Market))
        .await
        .unwrap();
    // Every row of every table, as text (bytea as hex and as escaped
    // bytes), scanned for the secrets' sentinels and the key.
    let mut dump = String::new();
    for table in [
        "sessions",
        "audit",
        "reservations",
        "totp_windows",
        "rejections",
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(pool(&store))
            .await
            .unwrap();
        dump.extend(rows.into_iter().map(|(r,)| r + "\n"));
    }
    let raw: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT ciphertext FROM sessions WHERE ciphertext IS NOT NULL")
            .fetch_all(pool(&store))
            .await
            .unwrap();
    assert_eq!(raw.len(), 1);
    let bytes: Vec<u8> = raw.into_iter().flat_map(|(b,)| b).collect();
    assert!(
        dump.contains("USER-1-7c1e"),
        "the plain metadata is there: {dump}"
    );
    assert!(!dump.contains("SENTINEL"), "{dump}");
    assert!(!bytes.windows(8).any(|w| w == b"SENTINEL"));
    assert!(!dump.contains(&key_b64));
    // The forgotten session left nothing but its generation.
    assert!(!dump.contains("USER-2-7c1e"), "{dump}");

    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(pool(&store))
        .await
        .unwrap();
    assert_eq!(sync, "on");
}

#[tokio::test]
async fn urls_and_messages_never_show_the_password() {
    let Some(db) = database("urls_and_messages_never_show_the_password") else {
        return;
    };
    let TestDb::Postgres(url) = &db else {
        unreachable!()
    };
    // Trust authentication ignores the password: it is only there to be hidden.
    let with_password = url.replacen("postgres@", "postgres:pw-SENTINEL-77@", 1);
    let store = Store::open(&with_password, EncryptionKey::generate())
        .await
        .unwrap();
    let location = store.location();
    assert!(location.starts_with("PostgreSQL database t"), "{location}");
    assert!(!location.contains("pw-SENTINEL"), "{location}");
    assert!(!format!("{store:?}").contains("pw-SENTINEL"));

    // A database that does not exist: an error naming it, not the password.
    let missing = with_password.replace(":5432/t", ":5432/nosuchdb_t");
    let err = Store::open(&missing, EncryptionKey::generate())
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("nosuchdb"), "{text}");
    assert!(!text.contains("pw-SENTINEL"), "{text}");

    // Shapes refused before connecting.
    for (bad, says) in [
        (
            "postgres://u:pw-SENTINEL-77@h:notaport/db",
            "does not parse",
        ),
        ("postgresql://u:pw-SENTINEL-77@h", "names no database"),
    ] {
        match Store::open(bad, EncryptionKey::generate()).await {
            Err(StoreError::Unsupported(u)) => {
                assert!(u.to_string().contains(says), "{bad}: {u}");
                assert!(!u.to_string().contains("pw-SENTINEL"), "{u}");
            }
            other => panic!("{bad}: expected Unsupported, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_saves_of_one_slot_keep_the_highest_generation() {
    let Some(db) = database("concurrent_saves_of_one_slot_keep_the_highest_generation") else {
        return;
    };
    let store = std::sync::Arc::new(db.open(EncryptionKey::generate()).await);
    let key = slot("main", Api::Interactive);
    let mut tasks = Vec::new();
    // 40 saves of generations 1..=40 in a shuffled order, all at once.
    let mut generations: Vec<u64> = (1..=40).collect();
    generations.sort_by_key(|g| (g * 17) % 41);
    for g in generations {
        let (store, key) = (std::sync::Arc::clone(&store), key.clone());
        tasks.push(tokio::spawn(async move {
            store.save_session(&key, g, &sample(g as u32)).await
        }));
    }
    let mut stale = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => {}
            Err(StoreError::StaleGeneration {
                stored, attempted, ..
            }) => {
                assert!(stored > attempted);
                stale += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (generation, session) = loaded(store.load_session(&key).await.unwrap());
    assert_eq!(generation, 40, "the highest generation stands");
    assert_eq!(session.material.token.expose(), "TOKEN-SENTINEL-40-8f3a");
    assert!(stale < 40);
    // And a stale save after the fact is refused, naming both numbers.
    match store.save_session(&key, 39, &sample(1)).await {
        Err(StoreError::StaleGeneration {
            stored: 40,
            attempted: 39,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_restarted_under_the_store_errors_cleanly_then_works_again() {
    // Its own cluster: stopping the shared one would break the other tests.
    let cluster = match PgCluster::start(true) {
        Ok(c) => c,
        Err(why) => {
            pg_test_cluster::skip("a_server_restarted_under_the_store", &why);
            return;
        }
    };
    let url = cluster.create_database().unwrap();
    let store = Store::open(&url, EncryptionKey::generate()).await.unwrap();
    let key = slot("main", Api::Interactive);
    store.save_session(&key, 1, &sample(1)).await.unwrap();

    // pg_ctl restart: every pooled connection is dropped by the server.
    cluster.restart().unwrap();
    store.save_session(&key, 2, &sample(2)).await.unwrap();
    assert_eq!(loaded(store.load_session(&key).await.unwrap()).0, 2);

    // Down: every call fails, as a StoreError, within the acquire timeout.
    cluster.stop().unwrap();
    let began = Instant::now();
    let errors = [
        store.save_session(&key, 3, &sample(3)).await.unwrap_err(),
        store.reserve_session(&key).await.unwrap_err(),
        store.load_session(&key).await.unwrap_err(),
    ];
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    for e in &errors {
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
        assert!(!e.is_disk_full(), "{e}");
    }

    // Back: the same store works again, nothing reopened.
    cluster.start_again().unwrap();
    store.reserve_session(&key).await.unwrap();
    store.save_session(&key, 3, &sample(3)).await.unwrap();
    assert_eq!(loaded(store.load_session(&key).await.unwrap()).0, 3);
    exec(&store, "SELECT 1").await;
    store.close().await;
}

/// Not a check: the figures for the report (`cargo test -p brokerd --lib
/// store::postgres_tests::measure -- --ignored --nocapture`). Each backend:
/// 200 saves one after another, then 200 saves of 200 slots at once, all
/// durably committed (SQLite: WAL + synchronous FULL; PostgreSQL:
/// synchronous_commit on, over the Unix socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_save_latency_on_both_backends() {
    let mut dbs = vec![("sqlite", TestDb::sqlite())];
    match TestDb::postgres() {
        Ok(db) => dbs.push(("postgres", db)),
        Err(why) => pg_test_cluster::skip("measure_save_latency", &why),
    }
    for (name, db) in dbs {
        let store = std::sync::Arc::new(db.open(EncryptionKey::generate()).await);
        let key = slot("main", Api::Interactive);
        let mut each = Vec::new();
        for g in 1..=200u64 {
            let t = Instant::now();
            store.save_session(&key, g, &sample(1)).await.unwrap();
            each.push(t.elapsed());
        }
        each.sort();
        let t = Instant::now();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    let key = slot(&format!("a{i}"), Api::Interactive);
                    store.save_session(&key, 1, &sample(1)).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let burst = t.elapsed();
        eprintln!(
            "{name}: sequential save p50 {:?} p90 {:?} max {:?}; 200 concurrent saves in {:?} \
             ({:.0}/s)",
            each[100],
            each[180],
            each[199],
            burst,
            200.0 / burst.as_secs_f64()
        );
        store.close().await;
    }
}

/// The two schemas hold the same tables and columns (but the reservation's
/// padding, which only SQLite can use, and what several daemons sharing
/// PostgreSQL need, migration 0002), so a migration added to one backend
/// and forgotten in the other fails here.
#[tokio::test]
async fn both_schemas_have_the_same_tables_and_columns() {
    let Some(db) = database("both_schemas_have_the_same_tables_and_columns") else {
        return;
    };
    let pg = db.open(EncryptionKey::generate()).await;
    let lite_db = TestDb::sqlite();
    let lite = lite_db.open(EncryptionKey::generate()).await;
    let Store::Sqlite(lite) = &lite else {
        unreachable!("opened from an sqlite: URL")
    };
    let mut sqlite: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&lite.pool)
    .await
    .unwrap();
    sqlite.retain(|(t, c)| !(t == "reservations" && c == "padding"));
    sqlite.sort();
    let mut postgres: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(pool(&pg))
    .await
    .unwrap();
    postgres.retain(|(t, c)| {
        !(t == "ha_requests" || t == "ha_leaders" || (t == "sessions" && c == "created_by"))
    });
    postgres.sort();
    assert_eq!(postgres, sqlite);
    assert!(sqlite.len() > 30, "{sqlite:?}");
}
