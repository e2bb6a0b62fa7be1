//! Tests of the SQLite store through the public `Store` API, with raw SQL
//! where a test plays the attacker or the clock.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::brokers::{Api, BrokerId, Material, NewSession, SessionKey, SessionMeta};
use crate::secret::Secret;
use crate::store::{AuditEntry, AuditEvent, EncryptionKey, Store, StoreError};

fn slot(account: &str, api: Api) -> SessionKey {
    SessionKey::new(BrokerId::Jainam, account, api)
}

/// A session whose every secret contains "SENTINEL", so a byte search of the
/// database files finds any secret that leaked.
fn sample(n: u32) -> NewSession {
    let mut headers = BTreeMap::new();
    headers.insert(
        "Authorization".to_string(),
        Secret::new(format!("HEADER-SENTINEL-{n}-5d2c")),
    );
    let mut fields = serde_json::Map::new();
    fields.insert(
        "session_id".into(),
        json!(format!("FIELD-SENTINEL-{n}-91be")),
    );
    fields.insert("client_codes".into(), json!(["A1", "B2"]));
    fields.insert("is_investor_client".into(), json!(true));
    NewSession {
        material: Material {
            token: Secret::new(format!("TOKEN-SENTINEL-{n}-8f3a")),
            headers,
            fields,
            private: Default::default(),
        },
        meta: SessionMeta {
            // Utc::now() has sub-millisecond precision, so this also checks
            // the times round-trip exactly.
            expires_at: Utc::now() + chrono::Duration::hours(8),
            obtained_at: Utc::now(),
            user_id: Some(format!("USER-{n}-7c1e")),
            app_expiry: Some("2027-03-31".into()),
        },
    }
}

async fn open(path: &Path, key: EncryptionKey) -> Store {
    Store::open(&format!("sqlite://{}", path.display()), key)
        .await
        .expect("open store")
}

fn pool(store: &Store) -> &sqlx::SqlitePool {
    match store {
        Store::Sqlite(s) => &s.pool,
    }
}

fn loaded(stored: Option<crate::store::StoredSession>) -> (u64, NewSession) {
    let stored = stored.expect("row exists");
    let session = stored.session.expect("not forgotten").expect("decrypts");
    (stored.generation, session)
}

#[tokio::test]
async fn round_trip_save_load_and_load_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("b.db"), EncryptionKey::generate()).await;
    let (main, market) = (slot("main", Api::Interactive), slot("main", Api::Market));
    let (s1, s2) = (sample(1), sample(2));
    store.save_session(&main, 3, &s1).await.unwrap();
    store.save_session(&market, 7, &s2).await.unwrap();

    assert_eq!(
        loaded(store.load_session(&main).await.unwrap()),
        (3, s1.clone())
    );
    assert_eq!(
        loaded(store.load_session(&market).await.unwrap()),
        (7, s2.clone())
    );
    assert!(
        store
            .load_session(&slot("other", Api::Interactive))
            .await
            .unwrap()
            .is_none()
    );

    // Saving again replaces the row.
    let s3 = sample(3);
    store.save_session(&main, 4, &s3).await.unwrap();
    let all = store.load_all().await.unwrap();
    let all: Vec<_> = all.into_iter().map(|(k, s)| (k, loaded(Some(s)))).collect();
    assert_eq!(all, vec![(main, (4, s3)), (market, (7, s2))]);
}

#[tokio::test]
async fn database_files_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/brokerd.db");
    let store = open(&path, EncryptionKey::generate()).await;
    for (n, api) in [(1, Api::Interactive), (2, Api::Market)] {
        store
            .save_session(&slot("main", api), 1, &sample(n))
            .await
            .unwrap();
    }
    let read_all = || {
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| std::fs::read(format!("{}{suffix}", path.display())).ok())
            .flatten()
            .collect::<Vec<u8>>()
    };
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);

    let bytes = read_all();
    // The plain metadata is there, so these are the files holding the rows...
    assert!(contains(&bytes, b"USER-1-7c1e"));
    // ...and no secret is.
    assert!(!contains(&bytes, b"SENTINEL"));

    // After close the WAL is checkpointed into the main file: still nothing.
    store.close().await;
    let bytes = read_all();
    assert!(contains(&bytes, b"USER-2-7c1e"));
    assert!(!contains(&bytes, b"SENTINEL"));

    // The files are private to the daemon's user; the folder was created 0700.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[tokio::test]
async fn ciphertext_copied_to_another_row_fails_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("b.db"), EncryptionKey::generate()).await;
    let (main, alt) = (
        slot("main", Api::Interactive),
        slot("alt", Api::Interactive),
    );
    let s1 = sample(1);
    store.save_session(&main, 1, &s1).await.unwrap();
    store.save_session(&alt, 1, &sample(2)).await.unwrap();

    // Same key, same generation, valid ciphertext: only the row differs.
    sqlx::query(
        "UPDATE sessions SET \
             nonce = (SELECT nonce FROM sessions WHERE account = 'main'), \
             ciphertext = (SELECT ciphertext FROM sessions WHERE account = 'main') \
         WHERE account = 'alt'",
    )
    .execute(pool(&store))
    .await
    .unwrap();

    let got = store.load_session(&alt).await.unwrap().unwrap();
    assert_eq!(got.generation, 1);
    match got.session {
        Some(Err(StoreError::Decrypt { key, reason })) => {
            assert_eq!(key, "jainam/alt/interactive");
            assert!(reason.contains("copied"), "{reason}");
        }
        other => panic!("expected a decrypt error, got {other:?}"),
    }
    assert_eq!(loaded(store.load_session(&main).await.unwrap()), (1, s1));
    // load_all still returns both rows, the bad one as an error.
    let all = store.load_all().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(matches!(
        all[0].1.session,
        Some(Err(StoreError::Decrypt { .. }))
    ));
    assert!(matches!(all[1].1.session, Some(Ok(_))));
}

#[tokio::test]
async fn generation_changed_under_the_ciphertext_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("b.db"), EncryptionKey::generate()).await;
    let main = slot("main", Api::Interactive);
    store.save_session(&main, 5, &sample(1)).await.unwrap();
    sqlx::query("UPDATE sessions SET generation = 9")
        .execute(pool(&store))
        .await
        .unwrap();
    let got = store.load_session(&main).await.unwrap().unwrap();
    assert_eq!(got.generation, 9);
    assert!(matches!(got.session, Some(Err(StoreError::Decrypt { .. }))));
}

#[tokio::test]
async fn wrong_key_names_both_key_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let (old, new) = (EncryptionKey::generate(), EncryptionKey::generate());
    let (old_id, new_id) = (old.id().to_string(), new.id().to_string());
    let main = slot("main", Api::Interactive);

    let store = open(&path, old).await;
    store.save_session(&main, 2, &sample(1)).await.unwrap();
    store.close().await;

    let store = open(&path, new).await;
    assert_eq!(store.key_id(), new_id);
    let got = store.load_session(&main).await.unwrap().unwrap();
    assert_eq!(got.generation, 2);
    let err = got.session.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Decrypt { .. }));
    assert!(text.contains("jainam/main/interactive"), "{text}");
    assert!(text.contains(&old_id) && text.contains(&new_id), "{text}");
    assert!(!text.contains("SENTINEL"));
}

#[tokio::test]
async fn forget_keeps_generation_and_generations_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let store = open(&path, EncryptionKey::generate()).await;
    let main = slot("main", Api::Interactive);
    store.save_session(&main, 4, &sample(1)).await.unwrap();
    store.forget_session(&main).await.unwrap();

    let got = store.load_session(&main).await.unwrap().unwrap();
    assert_eq!(got.generation, 4);
    assert!(got.session.is_none());
    let (ciphertext, user): (Option<Vec<u8>>, Option<String>) =
        sqlx::query_as("SELECT ciphertext, user_id FROM sessions")
            .fetch_one(pool(&store))
            .await
            .unwrap();
    assert_eq!((ciphertext, user), (None, None));

    // Forgetting a slot that was never saved is not an error.
    store
        .forget_session(&slot("none", Api::Interactive))
        .await
        .unwrap();

    // A lower generation is refused, naming both numbers.
    let err = store.save_session(&main, 3, &sample(2)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleGeneration {
                stored: 4,
                attempted: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let s = sample(3);
    store.save_session(&main, 5, &s).await.unwrap();
    store.close().await;

    // And it all survives a restart.
    let store = open(&path, EncryptionKey::from_base64(&key_b64(&store)).unwrap()).await;
    assert_eq!(loaded(store.load_session(&main).await.unwrap()), (5, s));
}

#[tokio::test]
async fn the_last_totp_window_survives_a_restart_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = open(&path, EncryptionKey::generate()).await;
    let kotak = BrokerId::KotakNeo;
    assert_eq!(store.totp_window(kotak, "main").await.unwrap(), None);
    store.record_totp_window(kotak, "main", 100).await.unwrap();
    store.record_totp_window(kotak, "main", 101).await.unwrap();
    store.record_totp_window(kotak, "other", 7).await.unwrap();
    // The last write wins, even a lower one (a clock stepped back).
    store.record_totp_window(kotak, "other", 5).await.unwrap();
    let b64 = key_b64(&store);
    store.close().await;
    let store = open(&path, EncryptionKey::from_base64(&b64).unwrap()).await;
    assert_eq!(store.totp_window(kotak, "main").await.unwrap(), Some(101));
    assert_eq!(store.totp_window(kotak, "other").await.unwrap(), Some(5));
    assert_eq!(
        store.totp_window(BrokerId::Jainam, "main").await.unwrap(),
        None
    );
    let err = store
        .record_totp_window(kotak, "main", u64::MAX)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

/// The base64 of an open store's key, to reopen it (keys are not `Clone`).
fn key_b64(store: &Store) -> String {
    match store {
        Store::Sqlite(s) => s.keys().current().to_base64().expose().to_string(),
    }
}

#[tokio::test]
async fn audit_rows_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("b.db"), EncryptionKey::generate()).await;
    let main = slot("main", Api::Interactive);
    for i in 1..=5u64 {
        let detail = format!("entry {i}");
        store
            .audit(AuditEntry {
                key: &main,
                generation: (i != 5).then_some(i),
                event: if i == 5 {
                    AuditEvent::Logout
                } else {
                    AuditEvent::LoginOk
                },
                detail: &detail,
            })
            .await
            .unwrap();
    }
    let rows = store.audit_rows(10).await.unwrap();
    let details: Vec<_> = rows.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(
        details,
        ["entry 5", "entry 4", "entry 3", "entry 2", "entry 1"]
    );
    assert_eq!(
        (rows[0].event.as_str(), rows[0].generation),
        ("logout", None)
    );
    assert_eq!(
        (rows[1].event.as_str(), rows[1].generation),
        ("login_ok", Some(4))
    );
    assert_eq!(
        (
            rows[1].broker.as_str(),
            rows[1].account.as_str(),
            rows[1].api.as_str()
        ),
        ("jainam", "main", "interactive")
    );
    assert!((Utc::now() - rows[0].at).num_seconds().abs() < 60);
    assert_eq!(store.audit_rows(2).await.unwrap().len(), 2);

    // Age the two oldest entries by two days.
    let two_days_ms = 2 * 24 * 3600 * 1000_i64;
    sqlx::query("UPDATE audit SET at = at - ? WHERE detail IN ('entry 1', 'entry 2')")
        .bind(two_days_ms)
        .execute(pool(&store))
        .await
        .unwrap();
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(store.prune_audit(day, 100).await.unwrap(), 2);
    let details: Vec<_> = store
        .audit_rows(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.detail)
        .collect();
    assert_eq!(details, ["entry 5", "entry 4", "entry 3"]);

    // Then by count: keep the newest one.
    assert_eq!(store.prune_audit(day, 1).await.unwrap(), 2);
    let details: Vec<_> = store
        .audit_rows(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.detail)
        .collect();
    assert_eq!(details, ["entry 5"]);
    assert_eq!(store.prune_audit(day, 1).await.unwrap(), 0);
}

#[tokio::test]
async fn url_forms() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("a/b/c.db");
    for url in [
        format!("sqlite://{}", abs.display()),
        format!("sqlite:{}", abs.display()),
    ] {
        let store = Store::open(&url, EncryptionKey::generate()).await.unwrap();
        store.close().await;
        assert!(abs.exists(), "{url}");
    }
    for (url, expect) in [
        ("postgres://u:hunter2@db/brokerd", "PostgreSQL"),
        ("sqlite::memory:", "database file"),
        ("sqlite://x.db?mode=ro", "query parameters"),
        ("mysql://x", "unknown store URL scheme"),
    ] {
        match Store::open(url, EncryptionKey::generate()).await {
            Err(StoreError::Unsupported(unsupported)) => {
                let msg = unsupported.to_string();
                assert!(msg.contains(expect), "{url}: {msg}");
                assert!(!msg.contains("hunter2"));
            }
            other => panic!("{url}: expected Unsupported, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn connections_are_durable_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let store = open(&path, EncryptionKey::generate()).await;
    store
        .save_session(&slot("main", Api::Interactive), 1, &sample(1))
        .await
        .unwrap();
    // Ask a pooled connection, since the pragmas are per connection.
    let mut conn = pool(&store).acquire().await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let secure_delete: i64 = sqlx::query_scalar("PRAGMA secure_delete")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    // 2 = FULL.
    assert_eq!(
        (journal.as_str(), synchronous, secure_delete),
        ("wal", 2, 1)
    );
    assert_eq!(busy, 5000);
    // SQLite gives the WAL the database file's mode.
    let wal = std::fs::metadata(format!("{}-wal", path.display())).unwrap();
    assert_eq!(wal.permissions().mode() & 0o777, 0o600);
}

/// A store opened on a manual clock stamps audit rows, and counts their age
/// for pruning, by that clock: a test that moves time sees its rows at the
/// times it made them, and the login budget read back from them agrees.
#[tokio::test]
async fn the_store_stamps_and_prunes_on_its_clock() {
    use brokerd_core::time::{Clock, ManualClock};
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = ManualClock::new(start);
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let store = Store::open_on(&url, EncryptionKey::generate(), clock.clone())
        .await
        .unwrap();
    let key = slot("main", Api::Interactive);
    let entry = |detail| AuditEntry {
        key: &key,
        generation: Some(1),
        event: AuditEvent::LoginStarted,
        detail,
    };
    store.audit(entry("first")).await.unwrap();
    clock.advance(chrono::Duration::hours(30));
    store.audit(entry("second")).await.unwrap();
    store.audit_daemon(AuditEvent::KeyRotated, "k1 -> k2").await;
    let rows = store.audit_rows(10).await.unwrap();
    let at: Vec<_> = rows.iter().map(|r| (r.detail.as_str(), r.at)).collect();
    let later = start + chrono::Duration::hours(30);
    assert_eq!(
        at,
        [("k1 -> k2", later), ("second", later), ("first", start)]
    );
    // The budget's read-back: logins since an hour ago, by the same clock.
    let since = clock.now() - chrono::Duration::hours(1);
    assert_eq!(store.login_times(&key, since).await.unwrap(), [later]);
    // A day old by the store's clock, whatever the system's says.
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(store.prune_audit(day, 100).await.unwrap(), 1);
    assert_eq!(store.audit_rows(10).await.unwrap().len(), 2);
}
