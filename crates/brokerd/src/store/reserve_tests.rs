//! Tests of the reservation that proves a session save can land, and of the
//! switch that fails writes as a full disk does.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;

use super::RESERVATION_BYTES;
use crate::brokers::{Api, BrokerId, Material, NewSession, SessionKey, SessionMeta};
use crate::secret::Secret;
use crate::store::{AuditEntry, AuditEvent, EncryptionKey, Store};

fn slot() -> SessionKey {
    SessionKey::new(BrokerId::Jainam, "main", Api::Interactive)
}

/// A session larger than any broker issues: a 4 KiB token plus headers.
fn big_session() -> NewSession {
    let token = "t".repeat(4096);
    let mut headers = BTreeMap::new();
    headers.insert("Authorization".to_string(), Secret::new(token.clone()));
    NewSession {
        material: Material {
            token: Secret::new(token),
            headers,
            fields: serde_json::Map::new(),
            private: Default::default(),
        },
        meta: SessionMeta {
            expires_at: Utc::now() + chrono::Duration::hours(8),
            obtained_at: Utc::now(),
            user_id: Some("USER01".into()),
            app_expiry: None,
        },
    }
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_save_after_a_reservation_overwrites_space_already_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let store = Store::open(
        &format!("sqlite://{}", db.display()),
        EncryptionKey::generate(),
    )
    .await
    .unwrap();
    let key = slot();
    store.save_session(&key, 1, &big_session()).await.unwrap();
    store.reserve_session(&key).await.unwrap();
    let reserved = wal_len(&db);
    assert!(reserved > 0, "the reservation went through the WAL");
    // An audit row between reservation and save (a submission writes one).
    store
        .audit(AuditEntry {
            key: &key,
            generation: None,
            event: AuditEvent::Submitted,
            detail: "browser login submitted",
        })
        .await
        .unwrap();
    store.save_session(&key, 2, &big_session()).await.unwrap();
    // Without the rewind the save would have appended to the WAL, growing
    // the file: space a full disk may no longer have.
    assert_eq!(
        wal_len(&db),
        reserved,
        "the save grew the WAL instead of reusing the reserved space"
    );
    let stored = store.load_session(&key).await.unwrap().unwrap();
    assert_eq!(stored.generation, 2);
}

#[tokio::test]
async fn a_reservation_is_much_larger_than_a_session_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let store = Store::open(
        &format!("sqlite://{}", db.display()),
        EncryptionKey::generate(),
    )
    .await
    .unwrap();
    store
        .save_session(&slot(), 1, &big_session())
        .await
        .unwrap();
    let Store::Sqlite(s) = &store else {
        panic!("an SQLite store was expected")
    };
    let row: i64 = sqlx::query_scalar(
        "SELECT length(ciphertext) + length(nonce) + length(key_id) + length(expires_at) \
             + length(obtained_at) + length(user_id) + 64 FROM sessions",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert!(
        row * 4 < RESERVATION_BYTES,
        "a {row}-byte session row needs a bigger reservation"
    );
}

#[tokio::test]
async fn the_fault_switch_fails_writes_like_a_full_disk_and_leaves_reads_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let store = Store::open(
        &format!("sqlite://{}", db.display()),
        EncryptionKey::generate(),
    )
    .await
    .unwrap();
    let key = slot();
    store.save_session(&key, 1, &big_session()).await.unwrap();
    store.faults().set_disk_full(true);
    let errors = [
        store.reserve_session(&key).await.unwrap_err(),
        store
            .save_session(&key, 2, &big_session())
            .await
            .unwrap_err(),
        store.forget_session(&key).await.unwrap_err(),
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
        // What SQLite itself says on a full disk, through sqlx.
        assert_eq!(
            e.to_string(),
            "store database error: error returned from database: (code: 13) database or disk is full"
        );
    }
    assert_eq!(
        store.load_session(&key).await.unwrap().unwrap().generation,
        1
    );
    store.faults().set_disk_full(false);
    store.reserve_session(&key).await.unwrap();
    store.save_session(&key, 2, &big_session()).await.unwrap();
}
