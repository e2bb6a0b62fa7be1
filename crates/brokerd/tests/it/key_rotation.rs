//! `rotate_key` on a running daemon: every stored session re-encrypted
//! under the new key without a login (counted at the simulator) while
//! tokens keep being served; a crash between the database commit and the
//! key file's replacement finished by the next start; refusals that change
//! nothing; and the keys never in a reply, the audit trail or the database.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use brokerd::brokers::Api;
use brokerd::store::{EncryptionKey, Store, write_key_file};
use common::{Harness, contains, db_bytes, error_code, session};
use serde_json::{Value, json};

/// The second account of these tests.
fn second() -> String {
    common::second_account("min_login_interval = \"0s\"")
}

fn key_file(h: &Harness) -> PathBuf {
    h.dir.path().join("keys/brokerd.key")
}

fn key_id_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    EncryptionKey::from_base64(&text).unwrap().id().to_string()
}

/// A new key file as an operator makes one (`brokerctl keygen --out`).
fn new_key(h: &Harness, mode: u32) -> (PathBuf, String, String) {
    use std::os::unix::fs::PermissionsExt;
    let path = h.dir.path().join(format!("new-{mode:o}.key"));
    let key = EncryptionKey::generate();
    write_key_file(&path, &key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (
        path,
        key.id().to_string(),
        key.to_base64().expose().to_string(),
    )
}

fn store(h: &Harness) -> &Arc<Store> {
    &h.running.as_ref().expect("running").store
}

/// The distinct key ids of the stored sessions.
async fn row_key_ids(h: &Harness) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", h.db_path().display()))
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT key_id FROM sessions WHERE key_id IS NOT NULL ORDER BY key_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    ids
}

/// Tokens of main (both apis) and second.
async fn tokens(h: &Harness) -> Vec<Value> {
    vec![
        session(&h.token("interactive").await)["token"].clone(),
        session(&h.token("market").await)["token"].clone(),
        session(
            &h.call(json!({"op": "token", "broker": "jainam", "account": "second"}))
                .await,
        )["token"]
            .clone(),
    ]
}

fn logins(h: &Harness) -> u64 {
    h.sim.login_count(Api::Interactive) + h.sim.login_count(Api::Market)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_re_encrypts_every_session_without_a_login_while_serving() {
    let mut h = Harness::start_with("login_at_start = false", &second()).await;
    let before = tokens(&h).await;
    let logins_before = logins(&h);
    let old_id = key_id_of(&key_file(&h));
    let old_b64 = std::fs::read_to_string(key_file(&h)).unwrap();
    assert_eq!(row_key_ids(&h).await, vec![old_id.clone()]);
    let (file, new_id, new_b64) = new_key(&h, 0o600);

    // Tokens keep coming while the rotation runs.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let socket = h.socket();
    let load = {
        let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
        tokio::spawn(async move {
            let mut client = brokerd::client::Client::connect(&socket).await.unwrap();
            while !stop.load(Ordering::SeqCst) {
                let reply = client
                    .call(&json!({"op": "token", "broker": "jainam", "account": "main"}))
                    .await
                    .unwrap();
                assert_eq!(reply["ok"], true, "served during the rotation: {reply}");
                served.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let reply = h
        .call(json!({"op": "rotate_key", "new_key_file": file.display().to_string()}))
        .await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert!(served.load(Ordering::SeqCst) > 0);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["old_key_id"], old_id.as_str());
    assert_eq!(reply["new_key_id"], new_id.as_str());
    assert_eq!(reply["sessions"], 3);
    assert_eq!(row_key_ids(&h).await, vec![new_id.clone()]);
    assert_eq!(key_id_of(&key_file(&h)), new_id);
    assert_eq!(tokens(&h).await, before, "the same sessions, served");

    // The rotation is in the audit trail, by key id only.
    let history = h.call(json!({"op": "history", "limit": 5})).await;
    let row = &history["events"][0];
    assert_eq!(row["event"], "key_rotated", "{history}");
    assert_eq!(row["broker"], "brokerd");
    assert!(row["detail"].as_str().unwrap().contains(&new_id));

    // A restart reads them all with the new key, without a login.
    h.restart().await;
    assert_eq!(tokens(&h).await, before);
    assert_eq!(logins(&h), logins_before, "no login at the simulator");

    // Neither key anywhere but in its file.
    let bytes = db_bytes(&h.db_path());
    for b64 in [old_b64.trim(), new_b64.as_str()] {
        assert!(!contains(&bytes, b64), "a key in the database");
        assert!(!contains(reply.to_string().as_bytes(), b64));
        assert!(!contains(history.to_string().as_bytes(), b64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_commit_and_the_key_file_is_finished_at_the_next_start() {
    let mut h = Harness::start_with("login_at_start = false", &second()).await;
    let before = tokens(&h).await;
    let logins_before = logins(&h);
    let old_id = key_id_of(&key_file(&h));
    let (file, new_id, _) = new_key(&h, 0o600);
    // The process "dies" right after the commit: the key file still holds
    // the old key, the new one waits beside it.
    store(&h).faults().halt_rotation_after_commit(true);
    let reply = h
        .call(json!({"op": "rotate_key", "new_key_file": file.display().to_string()}))
        .await;
    assert_eq!(error_code(&reply), "unavailable", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("next starts")
    );
    assert_eq!(row_key_ids(&h).await, vec![new_id.clone()]);
    assert_eq!(key_id_of(&key_file(&h)), old_id);
    let pending = PathBuf::from(format!("{}.next", key_file(&h).display()));
    assert_eq!(key_id_of(&pending), new_id);
    std::fs::remove_file(&file).unwrap();

    h.restart().await;
    assert_eq!(tokens(&h).await, before, "every session still decrypts");
    assert_eq!(logins(&h), logins_before, "no login at the simulator");
    assert_eq!(
        key_id_of(&key_file(&h)),
        new_id,
        "the rotation was finished"
    );
    assert!(!pending.exists());
    assert_eq!(row_key_ids(&h).await, vec![new_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rotations_change_nothing() {
    let h = Harness::start_with("login_at_start = false", &second()).await;
    let before = tokens(&h).await;
    let old_id = key_id_of(&key_file(&h));
    let key_text = std::fs::read(key_file(&h)).unwrap();
    let (open_file, _, open_b64) = new_key(&h, 0o644);
    let (good_file, _, _) = new_key(&h, 0o600);

    let loose = h
        .call(json!({"op": "rotate_key", "new_key_file": open_file.display().to_string()}))
        .await;
    assert_eq!(error_code(&loose), "bad_request");
    assert!(
        loose["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chmod 600"),
        "{loose}"
    );
    assert!(!contains(loose.to_string().as_bytes(), &open_b64));
    let relative = h
        .call(json!({"op": "rotate_key", "new_key_file": "new.key"}))
        .await;
    assert_eq!(error_code(&relative), "bad_request");
    // The disk fills halfway through the transaction: rolled back.
    store(&h).faults().set_disk_full_after(1);
    let full = h
        .call(json!({"op": "rotate_key", "new_key_file": good_file.display().to_string()}))
        .await;
    store(&h).faults().set_disk_full(false);
    assert_eq!(error_code(&full), "store_unavailable", "{full}");

    assert_eq!(std::fs::read(key_file(&h)).unwrap(), key_text);
    assert!(!Path::new(&format!("{}.next", key_file(&h).display())).exists());
    assert_eq!(row_key_ids(&h).await, vec![old_id]);
    assert_eq!(tokens(&h).await, before);
}
