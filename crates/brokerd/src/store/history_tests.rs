//! `history` on a real store of each backend: visibility (configured sessions, removed
//! accounts, daemon rows), filters, limit and order.

use chrono::Utc;

use super::*;
use crate::brokers::{Api, BrokerId, SessionKey};
use crate::store::test_backends::{TestDb, both_backends};
use crate::store::{AuditEntry, AuditEvent, EncryptionKey, Store};

fn key(account: &str, api: Api) -> SessionKey {
    SessionKey::new(BrokerId::Jainam, account, api)
}

async fn store_with_rows(db: &TestDb) -> Store {
    let store = db.open(EncryptionKey::generate()).await;
    for (k, event, detail) in [
        (key("main", Api::Interactive), AuditEvent::LoginOk, "m1"),
        (key("main", Api::Market), AuditEvent::LoginOk, "mm1"),
        (
            key("second", Api::Interactive),
            AuditEvent::LoginFailed,
            "s1",
        ),
        (key("gone", Api::Interactive), AuditEvent::Logout, "g1"),
        (
            key("main", Api::Interactive),
            AuditEvent::InvalidatedCurrent,
            "m2",
        ),
    ] {
        store
            .audit(AuditEntry {
                key: &k,
                generation: Some(1),
                event,
                detail,
            })
            .await
            .unwrap();
    }
    store.audit_daemon(AuditEvent::KeyRotated, "d1").await;
    store
}

fn details(rows: &[AuditRow]) -> Vec<&str> {
    rows.iter().map(|r| r.detail.as_str()).collect()
}

both_backends! {
async fn visibility_filters_limit_and_order(db: TestDb) {
    let store = store_with_rows(&db).await;
    let configured = vec![
        key("main", Api::Interactive),
        key("main", Api::Market),
        key("second", Api::Interactive),
    ];
    let query = |visible: Visibility| HistoryQuery {
        limit: 100,
        visible,
        ..HistoryQuery::default()
    };
    let operator = Visibility {
        sessions: configured.clone(),
        unconfigured: Some(configured.clone()),
    };
    // An operator sees everything, newest first.
    let all = store.history(&query(operator.clone())).await.unwrap();
    assert_eq!(details(&all), ["d1", "m2", "g1", "s1", "mm1", "m1"]);
    // A peer allowed on "second" only sees second's rows: not the removed
    // account's, not the daemon's.
    let second = Visibility {
        sessions: vec![key("second", Api::Interactive)],
        unconfigured: None,
    };
    assert_eq!(
        details(&store.history(&query(second)).await.unwrap()),
        ["s1"]
    );
    // An operator whose account lists exclude it still sees removed
    // accounts and daemon rows, but not the excluded configured account.
    let outside = Visibility {
        sessions: vec![],
        unconfigured: Some(configured.clone()),
    };
    assert_eq!(
        details(&store.history(&query(outside)).await.unwrap()),
        ["d1", "g1"]
    );
    // Nothing visible: nothing read.
    assert!(
        store
            .history(&query(Visibility::default()))
            .await
            .unwrap()
            .is_empty()
    );

    // Filters and limit.
    let mut q = query(operator);
    q.account = Some("main".into());
    assert_eq!(
        details(&store.history(&q).await.unwrap()),
        ["m2", "mm1", "m1"]
    );
    q.api = Some("interactive".into());
    assert_eq!(details(&store.history(&q).await.unwrap()), ["m2", "m1"]);
    q.limit = 1;
    assert_eq!(details(&store.history(&q).await.unwrap()), ["m2"]);
    q.limit = 100;
    q.since = Some(Utc::now() + chrono::Duration::seconds(60));
    assert!(store.history(&q).await.unwrap().is_empty());
    q.since = Some(Utc::now() - chrono::Duration::seconds(60));
    q.broker = Some("jainam".into());
    assert_eq!(store.history(&q).await.unwrap().len(), 2);
}
}
