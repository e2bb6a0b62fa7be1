//! What only the SQLite store does: its file and folder modes, its pragmas,
//! no secret in the database's bytes, the URL forms of a file. The tests of
//! the `Store` API run on both backends (`store_tests.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::brokers::Api;
use crate::store::store_tests::{sample, slot};
use crate::store::{EncryptionKey, Store, StoreError};

async fn open(path: &Path, key: EncryptionKey) -> Store {
    Store::open(&format!("sqlite://{}", path.display()), key)
        .await
        .expect("open store")
}

fn pool(store: &Store) -> &sqlx::SqlitePool {
    match store {
        Store::Sqlite(s) => &s.pool,
        Store::Postgres(_) => panic!("an SQLite store was expected"),
    }
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
        ("postgres://u:hunter2@db", "names no database"),
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
