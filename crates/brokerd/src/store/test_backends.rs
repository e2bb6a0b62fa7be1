//! The store tests' two backends: [`both_backends!`] runs a test body once
//! on a fresh SQLite file and once on a fresh PostgreSQL database (in the
//! test process's private cluster, `pg_test_cluster`; skipped, saying why,
//! when PostgreSQL's binaries are missing).

use brokerd_core::time::SharedClock;

use super::pg_test_cluster;
use super::{EncryptionKey, Store};

/// One fresh database of either backend; it can be opened many times (a
/// restart), with any key.
pub(crate) enum TestDb {
    /// A file in its own temp folder.
    Sqlite(tempfile::TempDir),
    /// A database of the shared cluster.
    Postgres(String),
}

impl TestDb {
    pub(crate) fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh PostgreSQL database, or why there is none.
    pub(crate) fn postgres() -> Result<Self, String> {
        pg_test_cluster::fresh_database().map(Self::Postgres)
    }

    pub(crate) fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}/b.db", dir.path().display()),
            Self::Postgres(url) => url.clone(),
        }
    }

    pub(crate) async fn open(&self, key: EncryptionKey) -> Store {
        Store::open(&self.url(), key).await.expect("open store")
    }

    pub(crate) async fn open_on(&self, key: EncryptionKey, clock: SharedClock) -> Store {
        Store::open_on(&self.url(), key, clock)
            .await
            .expect("open store")
    }
}

/// Runs `sql` (no parameters) on the store's database, as an attacker or a
/// test moving rows in time would; returns the rows it changed.
pub(crate) async fn exec(store: &Store, sql: &str) -> u64 {
    match store {
        Store::Sqlite(s) => sqlx::query(sql)
            .execute(&s.pool)
            .await
            .expect(sql)
            .rows_affected(),
        Store::Postgres(s) => sqlx::query(sql)
            .execute(&s.pool)
            .await
            .expect(sql)
            .rows_affected(),
    }
}

/// The one integer `sql` selects (a `COUNT(*)`, a `BIGINT` column).
pub(crate) async fn scalar(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(&s.pool).await.expect(sql),
        Store::Postgres(s) => sqlx::query_scalar(sql).fetch_one(&s.pool).await.expect(sql),
    }
}

/// `async fn name(db: TestDb) { … }` becomes a module `name` with two
/// tests, `sqlite` and `postgres`, each running the body on a fresh
/// database of its backend.
macro_rules! both_backends {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: $crate::store::test_backends::TestDb) $body

            #[tokio::test]
            async fn sqlite() {
                body($crate::store::test_backends::TestDb::sqlite()).await;
            }

            #[tokio::test]
            async fn postgres() {
                match $crate::store::test_backends::TestDb::postgres() {
                    Ok(db) => body(db).await,
                    Err(why) => $crate::store::pg_test_cluster::skip(
                        concat!(module_path!(), "::postgres"),
                        &why,
                    ),
                }
            }
        }
    )*};
}
pub(crate) use both_backends;
