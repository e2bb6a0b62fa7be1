//! Key rotation on a real store and real key files: the happy path, a disk
//! that fills halfway through the transaction, a process that dies between
//! the commit and the key file's replacement, a rotation that never
//! committed, and every refusal leaving everything as it was.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;

use super::*;
use crate::brokers::{Api, BrokerId, Material, NewSession, SessionKey, SessionMeta};
use crate::secret::Secret;
use crate::store::test_backends::{TestDb, both_backends};
use crate::store::{EncryptionKey, Store, write_key_file};

fn slot(account: &str, api: Api) -> SessionKey {
    SessionKey::new(BrokerId::Jainam, account, api)
}

fn sample(n: usize) -> NewSession {
    let mut headers = BTreeMap::new();
    headers.insert(
        "Authorization".into(),
        Secret::new(format!("TOKEN-SENTINEL-{n}")),
    );
    NewSession {
        material: Material {
            token: Secret::new(format!("TOKEN-SENTINEL-{n}")),
            headers,
            fields: serde_json::Map::new(),
            private: Default::default(),
        },
        meta: SessionMeta {
            expires_at: Utc::now() + chrono::Duration::hours(8),
            obtained_at: Utc::now(),
            user_id: None,
            app_expiry: None,
        },
    }
}

/// A state folder: the key file (`key`, mode 0600) and a store with three
/// sessions of two accounts under it.
struct Fixture {
    dir: tempfile::TempDir,
    db: TestDb,
    store: Arc<Store>,
    slots: Vec<SessionKey>,
}

impl Fixture {
    async fn new(db: TestDb) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_key_file(&dir.path().join("keys/key"), &EncryptionKey::generate()).unwrap();
        let mut f = Self {
            store: Arc::new(open(dir.path(), &db).await),
            db,
            dir,
            slots: vec![
                slot("main", Api::Interactive),
                slot("main", Api::Market),
                slot("second", Api::Interactive),
            ],
        };
        for (n, s) in f.slots.iter().enumerate() {
            f.store.save_session(s, 1, &sample(n)).await.unwrap();
        }
        f.slots.sort_by_key(|s| s.to_string());
        f
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys/key")
    }

    fn rotator(&self) -> KeyRotator {
        KeyRotator::new(KeyHome::File(self.key_file()), Arc::clone(&self.store))
    }

    fn file_key_id(&self) -> String {
        keyfile::read(&self.key_file()).unwrap().id().to_string()
    }

    /// A "restart": the store closed and opened again with what the key
    /// file holds now, then the start's recovery.
    async fn restart(&mut self) -> Interrupted {
        self.store.close().await;
        self.store = Arc::new(open(self.dir.path(), &self.db).await);
        finish_interrupted(&self.store, &KeyHome::File(self.key_file()))
            .await
            .unwrap()
    }

    /// Every session decrypts to its token, under key `id`.
    async fn assert_all_under(&self, id: &str) {
        let by_key = self.store.sessions_by_key().await.unwrap();
        assert_eq!(by_key, vec![(id.to_string(), 3)], "every row under {id}");
        for s in &self.slots {
            let stored = self.store.load_session(s).await.unwrap().unwrap();
            let session = stored.session.unwrap().unwrap();
            assert!(
                session
                    .material
                    .token
                    .expose()
                    .starts_with("TOKEN-SENTINEL-")
            );
        }
    }
}

/// The store of `db` under the key the key file in `dir` holds now.
async fn open(dir: &Path, db: &TestDb) -> Store {
    db.open(keyfile::read(&dir.join("keys/key")).unwrap()).await
}

fn write_new_key(dir: &Path, mode: u32) -> (PathBuf, String) {
    let path = dir.join("new.key");
    let key = EncryptionKey::generate();
    write_key_file(&path, &key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (path, key.id().to_string())
}

/// What the database holds: the SQLite files' bytes, or every PostgreSQL
/// row as text.
async fn db_bytes(db: &TestDb, store: &Store) -> Vec<u8> {
    match (db, store) {
        (TestDb::Sqlite(dir), _) => ["b.db", "b.db-wal"]
            .iter()
            .filter_map(|f| std::fs::read(dir.path().join(f)).ok())
            .flatten()
            .collect(),
        (TestDb::Postgres(_), Store::Postgres(s)) => {
            let mut all = Vec::new();
            for table in ["sessions", "audit"] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
                        .fetch_all(&s.pool)
                        .await
                        .unwrap();
                all.extend(rows.into_iter().flat_map(|(r,)| r.into_bytes()));
            }
            all
        }
        (TestDb::Postgres(_), Store::Sqlite(_)) => unreachable!("opened from a PostgreSQL URL"),
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

both_backends! {
async fn rotation_re_encrypts_every_session_and_replaces_the_key_file(db: TestDb) {
    let f = Fixture::new(db).await;
    let old_id = f.store.key_id();
    let old_b64 = std::fs::read_to_string(f.key_file()).unwrap();
    let (new_file, new_id) = write_new_key(f.dir.path(), 0o600);
    let new_b64 = std::fs::read_to_string(&new_file).unwrap();

    let done = f.rotator().rotate(NewKey::File(&new_file)).await.unwrap();
    assert_eq!(
        (done.old_key_id.as_str(), done.new_key_id.as_str()),
        (old_id.as_str(), new_id.as_str())
    );
    assert_eq!(done.outcome.sessions, 3);
    assert_eq!(f.store.key_id(), new_id);
    assert_eq!(
        f.store.keys().ids(),
        vec![new_id.clone()],
        "the old key is dropped"
    );
    f.assert_all_under(&new_id).await;
    assert_eq!(f.file_key_id(), new_id);
    assert!(!keyfile::pending_path(&f.key_file()).exists());
    let mode = std::fs::metadata(f.key_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Recorded with key ids, never key material.
    let audit = f.store.audit_rows(5).await.unwrap();
    assert_eq!(audit[0].event, "key_rotated");
    assert_eq!(audit[0].broker, "brokerd");
    assert!(audit[0].detail.contains(&old_id) && audit[0].detail.contains(&new_id));
    let bytes = db_bytes(&f.db, &f.store).await;
    for b64 in [old_b64.trim(), new_b64.trim()] {
        assert!(!contains(&bytes, b64), "a key is in the database");
        assert!(!format!("{done:?}").contains(b64));
    }
    // New saves go under the new key.
    f.store
        .save_session(&f.slots[0], 2, &sample(9))
        .await
        .unwrap();
    f.assert_all_under(&new_id).await;
}

async fn a_generated_key_works_the_same(db: TestDb) {
    let mut f = Fixture::new(db).await;
    let old_id = f.store.key_id();
    let done = f.rotator().rotate(NewKey::Generate).await.unwrap();
    assert_ne!(done.new_key_id, old_id);
    assert_eq!(f.file_key_id(), done.new_key_id);
    assert_eq!(f.restart().await, Interrupted::None);
    f.assert_all_under(&done.new_key_id).await;
}

async fn a_disk_that_fills_halfway_rolls_everything_back(db: TestDb) {
    let mut f = Fixture::new(db).await;
    let old_id = f.store.key_id();
    let key_text = std::fs::read(f.key_file()).unwrap();
    let (new_file, _) = write_new_key(f.dir.path(), 0o600);
    // The first row's update goes through, the second fails.
    f.store.faults().set_disk_full_after(1);
    let err = f
        .rotator()
        .rotate(NewKey::File(&new_file))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RotationError::Store(e) if e.is_disk_full()),
        "{err}"
    );
    f.store.faults().set_disk_full(false);
    f.assert_all_under(&old_id).await;
    assert_eq!(f.store.key_id(), old_id);
    assert_eq!(
        std::fs::read(f.key_file()).unwrap(),
        key_text,
        "key file untouched"
    );
    assert!(!keyfile::pending_path(&f.key_file()).exists());
    // Still writable under the old key, and a restart finds nothing to do.
    f.store
        .save_session(&f.slots[0], 2, &sample(7))
        .await
        .unwrap();
    assert_eq!(f.restart().await, Interrupted::None);
    f.assert_all_under(&old_id).await;
}

async fn a_crash_after_the_commit_is_finished_at_the_next_start(db: TestDb) {
    let mut f = Fixture::new(db).await;
    let old_id = f.store.key_id();
    let (new_file, new_id) = write_new_key(f.dir.path(), 0o600);
    f.store.faults().halt_rotation_after_commit(true);
    let err = f
        .rotator()
        .rotate(NewKey::File(&new_file))
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::Unfinished { .. }), "{err}");
    // What a crash leaves: rows under the new key, the key file still old,
    // the new key beside it.
    assert_eq!(f.file_key_id(), old_id);
    assert!(keyfile::pending_path(&f.key_file()).exists());
    std::fs::remove_file(&new_file).unwrap();

    let done = f.restart().await;
    assert_eq!(
        done,
        Interrupted::Finished {
            new_key_id: new_id.clone()
        }
    );
    f.assert_all_under(&new_id).await;
    assert_eq!(f.file_key_id(), new_id);
    assert!(!keyfile::pending_path(&f.key_file()).exists());
    assert_eq!(f.store.keys().ids(), vec![new_id.clone()]);
    assert_eq!(f.restart().await, Interrupted::None);
    f.assert_all_under(&new_id).await;
}

async fn a_crash_before_the_commit_is_rolled_back_at_the_next_start(db: TestDb) {
    let mut f = Fixture::new(db).await;
    let old_id = f.store.key_id();
    // What a crash during the transaction leaves: the pending key written,
    // nothing committed.
    let new = EncryptionKey::generate();
    keyfile::write_pending(&f.key_file(), &new).unwrap();
    let done = f.restart().await;
    assert_eq!(
        done,
        Interrupted::RolledBack {
            new_key_id: new.id().to_string()
        }
    );
    f.assert_all_under(&old_id).await;
    assert_eq!(f.file_key_id(), old_id);
    assert!(!keyfile::pending_path(&f.key_file()).exists());
    assert_eq!(f.store.keys().ids(), vec![old_id]);
    assert_eq!(
        f.store.audit_rows(1).await.unwrap()[0].event,
        "key_rotation_rolled_back"
    );
}

async fn refusals_change_nothing(db: TestDb) {
    let f = Fixture::new(db).await;
    let old_id = f.store.key_id();
    let key_text = std::fs::read(f.key_file()).unwrap();
    let (open_file, _) = write_new_key(f.dir.path(), 0o644);
    let open_b64 = std::fs::read_to_string(&open_file).unwrap();
    let garbage = f.dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key at all").unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    let missing = f.dir.path().join("missing.key");
    let cases: Vec<(RotationError, &str)> = vec![
        (
            f.rotator()
                .rotate(NewKey::File(&open_file))
                .await
                .unwrap_err(),
            "chmod 600",
        ),
        (
            f.rotator()
                .rotate(NewKey::File(&garbage))
                .await
                .unwrap_err(),
            "not valid base64",
        ),
        (
            f.rotator()
                .rotate(NewKey::File(&missing))
                .await
                .unwrap_err(),
            "keygen --out",
        ),
        (
            f.rotator()
                .rotate(NewKey::File(&f.key_file()))
                .await
                .unwrap_err(),
            "already the current key",
        ),
        (
            KeyRotator::new(
                KeyHome::Fixed("cred:brokerd-key".into()),
                Arc::clone(&f.store),
            )
            .rotate(NewKey::Generate)
            .await
            .unwrap_err(),
            "file:",
        ),
    ];
    for (err, says) in cases {
        let text = err.to_string();
        assert!(matches!(err, RotationError::Refused { .. }), "{text}");
        assert!(text.contains(says), "{says:?} not in {text}");
        assert!(!text.contains(open_b64.trim()), "a key in an error");
    }
    f.assert_all_under(&old_id).await;
    assert_eq!(std::fs::read(f.key_file()).unwrap(), key_text);
    assert!(!keyfile::pending_path(&f.key_file()).exists());
}
}
