//! The HA primitives on a real server (the test process's private
//! cluster; skipped, saying why, without PostgreSQL): advisory locks on
//! lock connections and what ending one does to them, notifications and
//! the reconnect notice, request rows under concurrent claimers, who leads,
//! and `created_by`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{Ask, AskKind, Listener, LockConnection, Notice};
use crate::brokers::{Api, BrokerId, SessionKey};
use crate::store::postgres::PgStore;
use crate::store::store_tests::{loaded, sample, slot};
use crate::store::test_backends::TestDb;
use crate::store::{EncryptionKey, Store, StoreError};

/// How long a lock connection's round trip may take in these tests.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// A store on a fresh database, or `None` after printing why the test is
/// skipped.
async fn store(test: &str) -> Option<(TestDb, Store)> {
    match TestDb::postgres() {
        Ok(db) => {
            let store = db.open(EncryptionKey::generate()).await;
            Some((db, store))
        }
        Err(why) => {
            crate::store::pg_test_cluster::skip(test, &why);
            None
        }
    }
}

fn pg(store: &Store) -> &PgStore {
    match store {
        Store::Postgres(s) => s,
        Store::Sqlite(_) => panic!("a PostgreSQL store was expected"),
    }
}

/// Ends server process `pid` from a pool connection, as an operator or a
/// vanished host's keepalive timeout would.
async fn terminate(store: &PgStore, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(done, "pid {pid} was there to terminate");
}

/// Polls `check` until it is true, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let began = Instant::now();
    while !check().await {
        assert!(began.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next notice, within 10 s.
async fn next(listener: &mut Listener) -> Notice {
    tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("a notice in time")
        .expect("the listener works")
}

/// How many advisory locks server process `pid` holds (counting each
/// stacked acquisition once: pg_locks shows one row per lock).
async fn advisory_locks_of(store: &PgStore, pid: i32) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1",
    )
    .bind(pid)
    .fetch_one(&store.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn many_keys_are_tried_in_one_round_trip_with_the_same_answers() {
    let Some((_db, store)) = store("many_keys_are_tried").await else {
        return;
    };
    let store = pg(&store);
    let keys = [
        slot("a", Api::Interactive),
        slot("b", Api::Interactive),
        slot("c", Api::Market),
    ];
    let mut a = store.lock_connection(KEEPALIVE).await.unwrap();
    let mut b = store.lock_connection(KEEPALIVE).await.unwrap();
    assert!(b.try_lock(&keys[1]).await.unwrap());
    assert_eq!(
        a.try_lock_all(&keys).await.unwrap(),
        vec![true, false, true]
    );
    // Again: held ones are not taken twice (one unlock frees each).
    assert_eq!(
        a.try_lock_all(&keys).await.unwrap(),
        vec![true, false, true]
    );
    assert_eq!(advisory_locks_of(store, a.pid()).await, 2);
    a.unlock(&keys[0]).await.unwrap();
    assert!(!a.holds(&keys[0]).await.unwrap());
    assert!(b.try_lock(&keys[0]).await.unwrap());
    // The same keys as one at a time: the other connection agrees.
    assert_eq!(
        b.try_lock_all(&keys).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(a.try_lock_all(&[]).await.unwrap(), Vec::<bool>::new());
}

#[tokio::test]
async fn one_lock_connection_gets_a_key_until_its_backend_is_terminated() {
    let Some((_db, store)) = store("one_lock_connection_gets_a_key").await else {
        return;
    };
    let store = pg(&store);
    let key = slot("main", Api::Interactive);
    let other = slot("main", Api::Market);
    let mut a = store.lock_connection(KEEPALIVE).await.unwrap();
    let mut b = store.lock_connection(KEEPALIVE).await.unwrap();
    assert_ne!(a.pid(), b.pid());

    assert!(a.try_lock(&key).await.unwrap());
    assert!(!b.try_lock(&key).await.unwrap(), "held by a");
    assert!(a.holds(&key).await.unwrap());
    assert!(!b.holds(&key).await.unwrap());
    // Per key: b can take another slot, and a does not hold that one.
    assert!(b.try_lock(&other).await.unwrap());
    assert!(!a.holds(&other).await.unwrap());

    // Its own connection, named so. (The keepalive settings cannot be
    // read back here: over the test cluster's Unix socket the server
    // accepts them but shows 0.)
    let name: String = sqlx::query_scalar("SHOW application_name")
        .fetch_one(&mut a.conn)
        .await
        .unwrap();
    assert_eq!(name, "brokerd-locks");

    // a's server process ends (from a third connection): its lock frees.
    terminate(store, a.pid()).await;
    let began = Instant::now();
    while !b.try_lock(&key).await.unwrap() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "b never took the key a held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.holds(&key).await.unwrap());
    match a.holds(&key).await {
        Err(StoreError::Database(_)) | Ok(false) => {}
        other => panic!("a must not believe it holds the key: {other:?}"),
    }
    // And once a call failed, every later one does: a leads nothing.
    assert!(a.try_lock(&other).await.is_err());
    assert!(a.holds(&key).await.is_err());
}

#[tokio::test]
async fn one_unlock_frees_a_key_taken_twice() {
    let Some((_db, store)) = store("one_unlock_frees_a_key_taken_twice").await else {
        return;
    };
    let store = pg(&store);
    let key = slot("main", Api::Interactive);
    let mut a = store.lock_connection(KEEPALIVE).await.unwrap();
    let mut b = store.lock_connection(KEEPALIVE).await.unwrap();

    // Plain take and unlock.
    assert!(a.try_lock(&key).await.unwrap());
    a.unlock(&key).await.unwrap();
    assert!(!a.holds(&key).await.unwrap());
    assert_eq!(advisory_locks_of(store, a.pid()).await, 0);

    // Taken twice, unlocked once: free, for b at once.
    assert!(a.try_lock(&key).await.unwrap());
    assert!(a.try_lock(&key).await.unwrap(), "already held: still true");
    a.unlock(&key).await.unwrap();
    assert!(!a.holds(&key).await.unwrap());
    assert!(b.try_lock(&key).await.unwrap());

    // Unlocking what is not held is nothing (and a's connection works on).
    a.unlock(&key).await.unwrap();
    assert!(b.holds(&key).await.unwrap());
    assert!(!a.try_lock(&key).await.unwrap());
    assert_eq!(advisory_locks_of(store, a.pid()).await, 0);
}

#[tokio::test]
async fn the_listener_hears_saves_logouts_and_requests() {
    let Some((_db, store)) = store("the_listener_hears_saves_logouts_and_requests").await else {
        return;
    };
    let store = pg(&store);
    store.set_host("host-a");
    let mut listener = store.listen().await.unwrap();
    // A '/' in the account (the config does not allow one, the store
    // does): the payload still names the slot exactly.
    let key = SessionKey::new(BrokerId::Zerodha, "desk/1", Api::Interactive);

    store.save_session(&key, 3, &sample(3)).await.unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notice::Session {
            key: key.clone(),
            generation: 3,
            host: "host-a".into()
        }
    );
    // A refused save writes nothing and says nothing: the next notice is
    // the logout's.
    assert!(matches!(
        store.save_session(&key, 2, &sample(2)).await,
        Err(StoreError::StaleGeneration {
            stored: 3,
            attempted: 2,
            ..
        })
    ));
    store.forget_session(&key).await.unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notice::Gone {
            key: key.clone(),
            generation: 3,
            host: "host-a".into()
        }
    );
    // Forgetting a slot without a row writes nothing: no notice.
    store
        .forget_session(&slot("nobody", Api::Interactive))
        .await
        .unwrap();
    let ask = Ask {
        kind: AskKind::Report,
        generation: 3,
        min_valid_secs: 0,
        from_host: "host-b".into(),
        payload: None,
    };
    store.forward(&key, &ask).await.unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notice::Request { key: key.clone() }
    );

    // A notification that is not ours is skipped; the next one comes.
    sqlx::query("SELECT pg_notify('brokerd_sessions', 'not json')")
        .execute(&store.pool)
        .await
        .unwrap();
    store.forward(&key, &ask).await.unwrap();
    assert_eq!(next(&mut listener).await, Notice::Request { key });
}

#[tokio::test]
async fn the_listener_says_reconnected_after_its_backend_is_terminated() {
    let Some((_db, store)) = store("the_listener_says_reconnected").await else {
        return;
    };
    let store = pg(&store);
    let mut listener = store.listen().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener.inner)
        .await
        .unwrap();
    terminate(store, pid).await;
    assert_eq!(next(&mut listener).await, Notice::Reconnected);

    // Listening again on the new connection, without a host this time.
    let key = slot("main", Api::Interactive);
    store.save_session(&key, 1, &sample(1)).await.unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notice::Session {
            key,
            generation: 1,
            host: String::new()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_get_each_row_once_oldest_first() {
    let Some((_db, store)) = store("concurrent_claimers_get_each_row_once").await else {
        return;
    };
    let store = Arc::new(store);
    let key = slot("main", Api::Interactive);
    let elsewhere = slot("other", Api::Interactive);
    // 60 rows, the generation numbering them; every third a submission.
    for n in 1..=60u64 {
        let ask = Ask {
            kind: if n % 3 == 0 {
                AskKind::Submit
            } else {
                AskKind::Login
            },
            generation: n,
            min_valid_secs: 600,
            from_host: format!("host-{}", n % 2),
            payload: (n % 3 == 0).then(|| format!("SUBMIT-SENTINEL-{n}").into_bytes()),
        };
        pg(&store).forward(&key, &ask).await.unwrap();
    }
    pg(&store)
        .forward(
            &elsewhere,
            &Ask {
                kind: AskKind::OperatorLogin,
                generation: 0,
                min_valid_secs: 0,
                from_host: "host-c".into(),
                payload: None,
            },
        )
        .await
        .unwrap();
    // The first five are two hours old on the store's clock.
    sqlx::query(
        "UPDATE ha_requests SET created_at = created_at - 7200000 \
         WHERE generation <= 5 AND account = 'main'",
    )
    .execute(&pg(&store).pool)
    .await
    .unwrap();

    let claimers: Vec<_> = (0..2)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                // Each claims until the slot is empty, racing the other.
                loop {
                    let asks = pg(&store)
                        .claim(&key, Duration::from_secs(3600))
                        .await
                        .unwrap();
                    if asks.is_empty() {
                        return got;
                    }
                    got.extend(asks);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        let got = claimer.await.unwrap();
        let order: Vec<u64> = got.iter().map(|a| a.generation).collect();
        assert!(order.is_sorted(), "oldest first: {order:?}");
        all.extend(got);
    }
    let numbers: BTreeSet<u64> = all.iter().map(|a| a.generation).collect();
    assert_eq!(all.len(), numbers.len(), "no row twice");
    assert_eq!(
        numbers,
        (6..=60).collect(),
        "each fresh row once, none stale"
    );
    for ask in &all {
        let n = ask.generation;
        assert_eq!(ask.min_valid_secs, 600);
        assert_eq!(ask.from_host, format!("host-{}", n % 2));
        if n % 3 == 0 {
            assert_eq!(ask.kind, AskKind::Submit);
            assert_eq!(
                ask.payload.as_deref(),
                Some(format!("SUBMIT-SENTINEL-{n}").as_bytes())
            );
        } else {
            assert_eq!((ask.kind, ask.payload.as_deref()), (AskKind::Login, None));
        }
    }
    // The stale rows are gone too; the other slot's row is untouched.
    let left: Vec<(String,)> = sqlx::query_as("SELECT account FROM ha_requests")
        .fetch_all(&pg(&store).pool)
        .await
        .unwrap();
    assert_eq!(left, vec![("other".to_string(),)]);
    let theirs = pg(&store)
        .claim(&elsewhere, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].kind, AskKind::OperatorLogin);
}

#[tokio::test]
async fn request_payloads_are_encrypted_and_bound_to_their_row() {
    let Some((_db, store)) = store("request_payloads_are_encrypted").await else {
        return;
    };
    let store = pg(&store);
    let submit = |n: u32| Ask {
        kind: AskKind::Submit,
        generation: 1,
        min_valid_secs: 0,
        from_host: "host-b".into(),
        payload: Some(format!("request_token=SUBMIT-SENTINEL-{n}&state=s").into_bytes()),
    };
    let a = slot("a", Api::Interactive);
    let b = slot("b", Api::Interactive);
    store.forward(&a, &submit(1)).await.unwrap();
    store.forward(&b, &submit(2)).await.unwrap();

    // No plaintext in any column, as text or as raw bytes.
    let rows: Vec<(String,)> = sqlx::query_as("SELECT t::text FROM ha_requests t")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let dump: String = rows.into_iter().map(|(r,)| r + "\n").collect();
    assert!(dump.contains("host-b"), "{dump}");
    assert!(!dump.contains("SENTINEL"), "{dump}");
    let raw: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as("SELECT nonce, ciphertext FROM ha_requests")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(raw.len(), 2);
    for (nonce, ciphertext) in &raw {
        assert_eq!(nonce.len(), 12);
        assert!(!ciphertext.windows(8).any(|w| w == b"SENTINEL"));
        assert!(!ciphertext.windows(13).any(|w| w == b"request_token"));
    }

    // a's ciphertext copied into b's row: it does not open there, and the
    // row is dropped rather than handed over or left to block the queue.
    sqlx::query(
        "UPDATE ha_requests SET nonce = x.nonce, ciphertext = x.ciphertext \
         FROM (SELECT nonce, ciphertext FROM ha_requests WHERE account = 'a') x \
         WHERE account = 'b'",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    assert_eq!(store.claim(&b, Duration::from_secs(60)).await.unwrap(), []);
    let got = store.claim(&a, Duration::from_secs(60)).await.unwrap();
    assert_eq!(got, vec![submit(1)]);
}

#[tokio::test]
async fn created_by_round_trips_through_every_read() {
    let Some((db, store)) = store("created_by_round_trips").await else {
        return;
    };
    pg(&store).set_host("host-a");
    let key = slot("main", Api::Interactive);
    store.save_session(&key, 1, &sample(1)).await.unwrap();
    let read = store.load_session(&key).await.unwrap().unwrap();
    assert_eq!(read.created_by.as_deref(), Some("host-a"));
    let all = store.load_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.created_by.as_deref(), Some("host-a"));
    let state = store.startup_state(Utc::now()).await.unwrap();
    assert_eq!(state.sessions[&key].created_by.as_deref(), Some("host-a"));
    assert_eq!(loaded(store.load_session(&key).await.unwrap()).0, 1);

    // Another daemon on the same database, without a host, saves next:
    // the row says nobody.
    let hostless = db.open(EncryptionKey::generate()).await;
    let second = slot("second", Api::Interactive);
    hostless.save_session(&second, 1, &sample(2)).await.unwrap();
    let read = store.load_session(&second).await.unwrap().unwrap();
    assert_eq!(read.created_by, None);
    // A later save by host-b replaces host-a.
    pg(&store).set_host("host-b");
    store.save_session(&key, 2, &sample(2)).await.unwrap();
    let state = store.startup_state(Utc::now()).await.unwrap();
    assert_eq!(state.sessions[&key].created_by.as_deref(), Some("host-b"));
    assert_eq!(state.sessions[&second].created_by, None);

    // SQLite has no hosts.
    let lite_db = TestDb::sqlite();
    let lite = lite_db.open(EncryptionKey::generate()).await;
    lite.save_session(&key, 1, &sample(1)).await.unwrap();
    assert_eq!(
        lite.load_session(&key).await.unwrap().unwrap().created_by,
        None
    );
    assert_eq!(lite.load_all().await.unwrap()[0].1.created_by, None);
}

#[tokio::test]
async fn leaders_shows_live_holders_only() {
    let Some((_db, store)) = store("leaders_shows_live_holders_only").await else {
        return;
    };
    let store = pg(&store);
    let one = slot("one", Api::Interactive);
    let two = slot("two", Api::Interactive);
    let mut a: LockConnection = store.lock_connection(KEEPALIVE).await.unwrap();
    let mut b = store.lock_connection(KEEPALIVE).await.unwrap();
    assert!(a.try_lock(&one).await.unwrap());
    assert!(b.try_lock(&two).await.unwrap());

    // Without a host there is nothing to record.
    assert!(matches!(
        store.set_leader(&one, a.pid()).await,
        Err(StoreError::Invalid(_))
    ));
    store.set_host("host-a");
    let before = Utc::now() - chrono::Duration::seconds(1);
    store.set_leader(&one, a.pid()).await.unwrap();
    store.set_host("host-b");
    store.set_leader(&two, b.pid()).await.unwrap();
    let leaders = store.leaders().await.unwrap();
    let names: Vec<(SessionKey, &str)> = leaders
        .iter()
        .map(|(k, h, _)| (k.clone(), h.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![(one.clone(), "host-a"), (two.clone(), "host-b")]
    );
    for (_, _, since) in &leaders {
        assert!(*since >= before && *since <= Utc::now(), "{since}");
    }

    // b's connection ends: its row stays, but is no longer shown.
    terminate(store, b.pid()).await;
    eventually("b's lock is gone", || async {
        store.leaders().await.unwrap().len() == 1
    })
    .await;
    assert_eq!(store.leaders().await.unwrap()[0].0, one);
    // a gives its slot up: nobody leads.
    a.unlock(&one).await.unwrap();
    assert_eq!(store.leaders().await.unwrap(), []);
    // a holds another lock, but not this slot's: still not shown.
    assert!(a.try_lock(&two).await.unwrap());
    assert_eq!(store.leaders().await.unwrap(), []);
}

#[tokio::test]
async fn generations_lists_every_slot() {
    let Some((_db, store)) = store("generations_lists_every_slot").await else {
        return;
    };
    let one = slot("one", Api::Interactive);
    let two = slot("two", Api::Market);
    store.save_session(&one, 4, &sample(1)).await.unwrap();
    store.save_session(&two, 9, &sample(2)).await.unwrap();
    store.forget_session(&two).await.unwrap();
    // A row of a broker this build does not know is skipped.
    sqlx::query(
        "INSERT INTO sessions (broker, account, api, generation, updated_at) \
         VALUES ('newbroker', 'x', 'interactive', 1, 0)",
    )
    .execute(&pg(&store).pool)
    .await
    .unwrap();
    let rows: Vec<_> = pg(&store)
        .generations()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.generation, r.forgotten))
        .collect();
    // The logged-out row says so: its generation is kept.
    assert_eq!(rows, vec![(one, 4, false), (two, 9, true)]);
}

#[tokio::test]
async fn the_listener_errors_while_the_server_is_down_then_says_reconnected() {
    // Its own cluster: stopping the shared one would break the other tests.
    let cluster = match crate::store::pg_test_cluster::PgCluster::start(true) {
        Ok(c) => c,
        Err(why) => {
            crate::store::pg_test_cluster::skip(
                "the_listener_errors_while_the_server_is_down",
                &why,
            );
            return;
        }
    };
    let url = cluster.create_database().unwrap();
    let store = Store::open(&url, EncryptionKey::generate()).await.unwrap();
    let mut listener = pg(&store).listen().await.unwrap();

    cluster.stop().unwrap();
    // The connection ends and cannot be made again: an error, at once or
    // within the pool's acquire timeout, and again while it is down.
    for _ in 0..2 {
        let down = tokio::time::timeout(Duration::from_secs(20), listener.next())
            .await
            .expect("an answer in time");
        assert!(matches!(down, Err(StoreError::Database(_))), "{down:?}");
    }

    // Back: the first notice says notifications may have been missed, and
    // the listener listens again.
    cluster.start_again().unwrap();
    assert_eq!(next(&mut listener).await, Notice::Reconnected);
    let key = slot("main", Api::Interactive);
    store.save_session(&key, 1, &sample(1)).await.unwrap();
    assert_eq!(
        next(&mut listener).await,
        Notice::Session {
            key,
            generation: 1,
            host: String::new()
        }
    );
    drop(listener);
    store.close().await;
}

#[tokio::test]
async fn with_a_host_each_generation_is_saved_once() {
    let Some((_db, store)) = store("each_generation_is_saved_once").await else {
        return;
    };
    let key = slot("main", Api::Interactive);
    // Alone (no host): the same generation may be saved again.
    store.save_session(&key, 1, &sample(1)).await.unwrap();
    store.save_session(&key, 1, &sample(1)).await.unwrap();
    // Shared: a second save of a generation is a former leader's late
    // login, and refused; a newer one lands.
    pg(&store).set_host("host-b");
    store.save_session(&key, 2, &sample(2)).await.unwrap();
    assert!(matches!(
        store.save_session(&key, 2, &sample(2)).await,
        Err(StoreError::StaleGeneration {
            stored: 2,
            attempted: 2,
            ..
        })
    ));
    store.save_session(&key, 3, &sample(3)).await.unwrap();
    assert_eq!(loaded(store.load_session(&key).await.unwrap()).0, 3);
}

#[tokio::test]
async fn asked_names_the_slots_with_waiting_requests_once_each() {
    let Some((_db, store)) = store("asked_names_the_slots").await else {
        return;
    };
    let store = pg(&store);
    let (a, b) = (slot("a", Api::Interactive), slot("b", Api::Market));
    assert!(store.asked().await.unwrap().is_empty());
    let ask = |generation| Ask {
        kind: AskKind::Report,
        generation,
        min_valid_secs: 0,
        from_host: "host-b".into(),
        payload: None,
    };
    store.forward(&a, &ask(1)).await.unwrap();
    store.forward(&a, &ask(2)).await.unwrap();
    store.forward(&b, &ask(1)).await.unwrap();
    let asked: BTreeSet<String> = store
        .asked()
        .await
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(asked, BTreeSet::from([a.to_string(), b.to_string()]));
    assert_eq!(store.claim(&a, KEEPALIVE).await.unwrap().len(), 2);
    assert_eq!(store.asked().await.unwrap(), vec![b]);
}
