//! The store's tests through the public `Store` API, each run on both
//! backends (`both_backends!`: a fresh SQLite file and a fresh PostgreSQL
//! database), with raw SQL where a test plays the attacker or the clock.
//! SQLite-only behaviour (file modes, WAL, byte scans of the file) is in
//! `sqlite_tests.rs`; PostgreSQL-only edges in `postgres_tests.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::brokers::{Api, BrokerId, Material, NewSession, SessionKey, SessionMeta};
use crate::secret::Secret;
use crate::store::test_backends::{both_backends, exec, scalar};
use crate::store::{AuditEntry, AuditEvent, EncryptionKey, Store, StoreError};

pub(crate) fn slot(account: &str, api: Api) -> SessionKey {
    SessionKey::new(BrokerId::Jainam, account, api)
}

/// A session whose every secret contains "SENTINEL", so a byte search of
/// the stored rows finds any secret that leaked.
pub(crate) fn sample(n: u32) -> NewSession {
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

pub(crate) fn loaded(stored: Option<crate::store::StoredSession>) -> (u64, NewSession) {
    let stored = stored.expect("row exists");
    let session = stored.session.expect("not forgotten").expect("decrypts");
    (stored.generation, session)
}

/// The base64 of an open store's key, to reopen it (keys are not `Clone`).
pub(crate) fn key_b64(store: &Store) -> String {
    store.keys().current().to_base64().expose().to_string()
}

both_backends! {
async fn round_trip_save_load_and_load_all(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
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

async fn ciphertext_copied_to_another_row_fails_only_there(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
    let (main, alt) = (
        slot("main", Api::Interactive),
        slot("alt", Api::Interactive),
    );
    let s1 = sample(1);
    store.save_session(&main, 1, &s1).await.unwrap();
    store.save_session(&alt, 1, &sample(2)).await.unwrap();

    // Same key, same generation, valid ciphertext: only the row differs.
    exec(
        &store,
        "UPDATE sessions SET \
             nonce = (SELECT nonce FROM sessions WHERE account = 'main'), \
             ciphertext = (SELECT ciphertext FROM sessions WHERE account = 'main') \
         WHERE account = 'alt'",
    )
    .await;

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

async fn generation_changed_under_the_ciphertext_fails(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
    let main = slot("main", Api::Interactive);
    store.save_session(&main, 5, &sample(1)).await.unwrap();
    exec(&store, "UPDATE sessions SET generation = 9").await;
    let got = store.load_session(&main).await.unwrap().unwrap();
    assert_eq!(got.generation, 9);
    assert!(matches!(got.session, Some(Err(StoreError::Decrypt { .. }))));
}

async fn wrong_key_names_both_key_ids(db: TestDb) {
    let (old, new) = (EncryptionKey::generate(), EncryptionKey::generate());
    let (old_id, new_id) = (old.id().to_string(), new.id().to_string());
    let main = slot("main", Api::Interactive);

    let store = db.open(old).await;
    store.save_session(&main, 2, &sample(1)).await.unwrap();
    store.close().await;

    let store = db.open(new).await;
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

async fn forget_keeps_generation_and_generations_never_go_back(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
    let main = slot("main", Api::Interactive);
    store.save_session(&main, 4, &sample(1)).await.unwrap();
    store.forget_session(&main).await.unwrap();

    let got = store.load_session(&main).await.unwrap().unwrap();
    assert_eq!(got.generation, 4);
    assert!(got.session.is_none());
    let left = "SELECT COUNT(*) FROM sessions WHERE ciphertext IS NOT NULL OR nonce IS NOT NULL \
                OR user_id IS NOT NULL OR expires_at IS NOT NULL";
    assert_eq!(scalar(&store, left).await, 0, "nothing of the session is left");

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
    let store = db.open(EncryptionKey::from_base64(&key_b64(&store)).unwrap()).await;
    assert_eq!(loaded(store.load_session(&main).await.unwrap()), (5, s));
}

async fn the_last_totp_window_survives_a_restart_per_account(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
    let kotak = BrokerId::KotakNeo;
    assert_eq!(store.totp_window(kotak, "main").await.unwrap(), None);
    store.record_totp_window(kotak, "main", 100).await.unwrap();
    store.record_totp_window(kotak, "main", 101).await.unwrap();
    store.record_totp_window(kotak, "other", 7).await.unwrap();
    // The last write wins, even a lower one (a clock stepped back).
    store.record_totp_window(kotak, "other", 5).await.unwrap();
    let b64 = key_b64(&store);
    store.close().await;
    let store = db.open(EncryptionKey::from_base64(&b64).unwrap()).await;
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

async fn audit_rows_and_pruning(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
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
    exec(
        &store,
        &format!("UPDATE audit SET at = at - {two_days_ms} WHERE detail IN ('entry 1', 'entry 2')"),
    )
    .await;
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

async fn the_store_stamps_and_prunes_on_its_clock(db: TestDb) {
    // A store opened on a manual clock stamps audit rows, and counts their
    // age for pruning, by that clock: a test that moves time sees its rows
    // at the times it made them, and the login budget read back agrees.
    use brokerd_core::time::{Clock, ManualClock};
    let start = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = ManualClock::new(start);
    let store = db.open_on(EncryptionKey::generate(), clock.clone()).await;
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
    let since = clock.now() - chrono::Duration::hours(1);
    assert_eq!(store.login_times(&key, since).await.unwrap(), [later]);
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(store.prune_audit(day, 100).await.unwrap(), 1);
    assert_eq!(store.audit_rows(10).await.unwrap().len(), 2);
}

async fn rejections_and_the_startup_read(db: TestDb) {
    use crate::store::Rejection;
    let store = db.open(EncryptionKey::generate()).await;
    let (main, market) = (slot("main", Api::Interactive), slot("main", Api::Market));
    let at = chrono::DateTime::from_timestamp_millis(1_900_000_000_123).unwrap();
    let rejection = |fp: &str, secs| Rejection {
        fingerprint: fp.to_string(),
        at: at + chrono::Duration::seconds(secs),
        message: format!("rejected {fp}"),
    };
    store.record_rejection(&main, &rejection("aa", 0)).await.unwrap();
    store.record_rejection(&main, &rejection("bb", 1)).await.unwrap();
    store.record_rejection(&market, &rejection("cc", 2)).await.unwrap();
    assert_eq!(
        store.rejections(&main).await.unwrap(),
        vec![rejection("aa", 0), rejection("bb", 1)]
    );
    store.save_session(&main, 2, &sample(1)).await.unwrap();
    store
        .audit(AuditEntry {
            key: &market,
            generation: None,
            event: AuditEvent::LoginStarted,
            detail: "x",
        })
        .await
        .unwrap();
    let state = store
        .startup_state(Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(state.sessions[&main].generation, 2);
    assert_eq!(state.rejections[&main].len(), 2);
    assert_eq!(state.rejections[&market], vec![rejection("cc", 2)]);
    assert_eq!(state.logins[&market].len(), 1);
    store.clear_rejection(&main).await.unwrap();
    assert!(store.rejections(&main).await.unwrap().is_empty());
    assert_eq!(store.rejections(&market).await.unwrap().len(), 1);
}

async fn reservations_and_the_fault_switch(db: TestDb) {
    let store = db.open(EncryptionKey::generate()).await;
    let key = slot("main", Api::Interactive);
    store.save_session(&key, 1, &sample(1)).await.unwrap();
    store.reserve_session(&key).await.unwrap();
    store.reserve_session(&key).await.unwrap();
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM reservations").await, 1);
    store.faults().set_disk_full(true);
    let errors = [
        store.reserve_session(&key).await.unwrap_err(),
        store.save_session(&key, 2, &sample(2)).await.unwrap_err(),
        store.forget_session(&key).await.unwrap_err(),
        store
            .record_totp_window(BrokerId::KotakNeo, "main", 5)
            .await
            .unwrap_err(),
        store
            .audit(AuditEntry {
                key: &key,
                generation: None,
                event: AuditEvent::LoginOk,
                detail: "x",
            })
            .await
            .unwrap_err(),
        store
            .prune_audit(std::time::Duration::ZERO, 0)
            .await
            .unwrap_err(),
    ];
    for e in &errors {
        assert!(e.is_disk_full(), "{e}");
    }
    // Reads go on.
    assert_eq!(
        store.load_session(&key).await.unwrap().unwrap().generation,
        1
    );
    store.faults().set_disk_full(false);
    store.reserve_session(&key).await.unwrap();
    store.save_session(&key, 2, &sample(2)).await.unwrap();
}
}
