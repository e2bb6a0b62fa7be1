//! Several daemons on one PostgreSQL store (docs/ha.md), as an operator
//! runs them: real `brokerd` processes, each with its own socket and state
//! folder and `[daemon.ha]` host name, one private PostgreSQL cluster, one
//! Jainam simulator that counts the logins. Killed with SIGKILL, cut off
//! from the database, and the database restarted under them: at most one
//! login per rejection, none at a takeover of a valid session, and every
//! session handed out in answer to a report valid at the simulator.
//! Skipped, saying why, without PostgreSQL's server binaries.

use crate::common;
use crate::common::child;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brokerd::brokers::Api;
use brokerd::client::Client;
use brokerd_sim::xts::{XtsSim, XtsSimConfig, XtsSimUser};
use common::pg_cluster;
use common::{eventually_async, session};
use serde_json::{Value, json};

/// How soon a follower must take a dead leader's sessions (the daemons'
/// `takeover_within`).
const TAKEOVER: Duration = Duration::from_secs(3);

/// One daemon of the desk: its folder and process.
struct Host {
    dir: tempfile::TempDir,
    name: String,
    daemon: Option<child::Daemon>,
    runs: usize,
}

/// The daemons sharing one database, and the simulator they log in at.
struct Desk {
    hosts: Vec<Host>,
    sim: XtsSim,
    key: String,
}

/// `account` lines go into the account's table (policy overrides).
fn config(d: &Path, host: &str, url: &str, sim: &XtsSim, account: &str) -> String {
    let u = XtsSimUser::demo();
    format!(
        r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
database_url = "{url}"
log_format = "json"
[daemon.ha]
host = "{host}"
takeover_within = "{takeover}s"
check_every = "1s"
[daemon.limits]
login_timeout = "5s"

[[account]]
broker = "jainam"
name = "main"
login_at_start = true
min_login_interval = "0s"
max_logins_per_hour = 100
# The tests kill sessions right after their login on purpose: that is
# not the other program `conflict` is about.
conflict_threshold = 100
{account}
[account.jainam]
root = "{root}"
[account.jainam.interactive]
app_key = "{key}"
secret_key = "{secret}"
"#,
        d = d.display(),
        takeover = TAKEOVER.as_secs(),
        root = sim.base_url(),
        key = u.interactive_app_key,
        secret = u.interactive_secret_key,
    )
}

impl Desk {
    /// `n` daemons on the database `url`, started one after the other.
    async fn start(n: usize, url: &str) -> Self {
        Self::start_with(n, url, "", |_| {}).await
    }

    /// [`Desk::start`] with `account` lines in the account's table and the
    /// simulator set up by `prepare` before any daemon starts.
    async fn start_with(n: usize, url: &str, account: &str, prepare: impl FnOnce(&XtsSim)) -> Self {
        let sim = XtsSim::start(XtsSimConfig::default()).await.unwrap();
        prepare(&sim);
        let key = brokerd::store::EncryptionKey::generate()
            .to_base64()
            .expose()
            .to_string();
        let hosts = (0..n)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                let name = format!("vps-{}", (b'a' + i as u8) as char);
                std::fs::write(
                    dir.path().join("brokerd.toml"),
                    config(dir.path(), &name, url, &sim, account),
                )
                .unwrap();
                Host {
                    dir,
                    name,
                    daemon: None,
                    runs: 0,
                }
            })
            .collect();
        let mut desk = Self { hosts, sim, key };
        for i in 0..n {
            desk.boot(i);
        }
        desk
    }

    fn boot(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        let mut child = child::spawn_run(h.dir.path(), &self.key, h.runs, &[("RUST_LOG", "info")]);
        h.runs += 1;
        let dir = h.dir.path().to_path_buf();
        let runs = h.runs;
        child::wait_for(&mut child, &socket(&dir), &|| child::run_logs(&dir, runs));
        h.daemon = Some(child::Daemon(child));
    }

    /// SIGKILL: no shutdown path runs; its connections die with it.
    fn kill_9(&mut self, i: usize) {
        if let Some(mut d) = self.hosts[i].daemon.take() {
            d.0.kill().unwrap();
            d.0.wait().unwrap();
            // Left behind by the kill: the next start replaces it, but
            // `boot` waits for the socket to appear.
            let _ = std::fs::remove_file(socket(self.hosts[i].dir.path()));
        }
    }

    fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| {
                format!(
                    "== {} ==\n{}",
                    h.name,
                    child::run_logs(h.dir.path(), h.runs)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn call(&self, i: usize, request: Value) -> Value {
        let mut c = Client::connect(&socket(self.hosts[i].dir.path()))
            .await
            .unwrap();
        c.call(&request).await.unwrap()
    }

    async fn token(&self, i: usize) -> Value {
        self.call(
            i,
            json!({"op": "token", "broker": "jainam", "wait_secs": 20}),
        )
        .await
    }

    async fn status(&self, i: usize) -> Value {
        self.call(i, json!({"op": "status"})).await["accounts"][0].clone()
    }

    /// The live daemons' (index, role, leader) from their status.
    async fn roles(&self) -> Vec<(usize, String, Value)> {
        let mut out = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if h.daemon.is_some() {
                let s = self.status(i).await;
                out.push((
                    i,
                    s["role"].as_str().unwrap_or("?").to_string(),
                    s["leader"].clone(),
                ));
            }
        }
        out
    }

    /// Waits until exactly one live daemon leads and every other follows
    /// it; returns its index.
    async fn one_leader(&self, limit: Duration) -> usize {
        let found = Arc::new(AtomicU64::new(u64::MAX));
        let desk = self;
        let f = Arc::clone(&found);
        let settled = eventually_async(limit, || {
            let f = Arc::clone(&f);
            async move {
                let roles = desk.roles().await;
                let leaders: Vec<_> = roles.iter().filter(|r| r.1 == "leader").collect();
                let [(i, _, _)] = leaders.as_slice() else {
                    return false;
                };
                let name = json!(desk.hosts[*i].name);
                // Followers, not detached: a detached daemon still names
                // the leader it last saw.
                let agreed = roles
                    .iter()
                    .all(|r| r.2 == name && (r.1 == "leader" || r.1 == "follower"));
                if agreed {
                    f.store(*i as u64, Ordering::Relaxed);
                }
                agreed
            }
        })
        .await;
        assert!(
            settled,
            "no single leader: {:?}\n{}",
            self.roles().await,
            self.logs()
        );
        found.load(Ordering::Relaxed) as usize
    }

    fn logins(&self) -> u64 {
        self.sim.login_count(Api::Interactive)
    }

    /// The broker kills the live session; clients of every live daemon
    /// report it (`per_daemon` each, at once). Every answer must be a newer
    /// session, valid at the simulator when it is handed out.
    async fn rejection_round(&self, generation: u64) -> u64 {
        self.sim.reject_all_now();
        let mut reports = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if h.daemon.is_none() {
                continue;
            }
            for _ in 0..5 {
                let socket = socket(h.dir.path());
                let sim = self.sim.clone();
                reports.push(tokio::spawn(async move {
                    let mut c = Client::connect(&socket).await.unwrap();
                    let r = c
                        .call(&json!({"op": "invalidate", "broker": "jainam", "generation": generation,
                                      "reason": "{\"type\":\"error\",\"code\":\"e-session-0007\",\"description\":\"Invalid Token\"}",
                                      "http_status": 401, "wait_secs": 20}))
                        .await
                        .unwrap();
                    let s = session(&r).clone();
                    let token = s["token"].as_str().unwrap_or_default().to_string();
                    (i, s["generation"].as_u64(), sim.is_token_valid(&token), r)
                }));
            }
        }
        let mut newest = 0;
        for r in reports {
            let (i, g, valid, reply) = r.await.unwrap();
            let g = g.unwrap_or_else(|| panic!("daemon {i} answered {reply}\n{}", self.logs()));
            assert!(
                g > generation,
                "daemon {i} handed out generation {g}: {reply}"
            );
            assert!(
                valid,
                "daemon {i} handed out a session the broker does not accept: {reply}"
            );
            newest = newest.max(g);
        }
        newest
    }
}

fn socket(dir: &Path) -> std::path::PathBuf {
    dir.join("run/brokerd.sock")
}

fn database(test: &str) -> Option<String> {
    match pg_cluster::fresh_database() {
        Ok(url) => Some(url),
        Err(why) => {
            pg_cluster::skip(test, &why);
            None
        }
    }
}

/// Clients asking every live daemon for the session, over and over, each
/// answer checked at the simulator; returns how many were checked.
fn hammer(desk: &Desk, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<(u64, Vec<String>)>> {
    desk.hosts
        .iter()
        .filter(|h| h.daemon.is_some())
        .map(|h| {
            let socket = socket(h.dir.path());
            let sim = desk.sim.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let (mut served, mut bad) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    // A killed daemon's clients lose their socket: that is
                    // the operator's failover, not a bad answer.
                    let Ok(mut c) = Client::connect(&socket).await else {
                        break;
                    };
                    let Ok(r) = c
                        .call(&json!({"op": "token", "broker": "jainam", "wait_secs": 5}))
                        .await
                    else {
                        break;
                    };
                    if let Some(token) = r["session"]["token"].as_str() {
                        served += 1;
                        if !sim.is_token_valid(token) {
                            bad.push(r.to_string());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (served, bad)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_log_in_once_and_a_killed_leader_is_replaced_without_a_login() {
    let Some(url) = database("ha::three_daemons") else {
        return;
    };
    let mut desk = Desk::start(3, &url).await;
    // Every daemon serves the one session the leader logged in.
    let first = session(&desk.token(0).await).clone();
    for i in 1..3 {
        let s = desk.token(i).await;
        assert_eq!(
            session(&s)["token"],
            first["token"],
            "daemon {i}: {s}\n{}",
            desk.logs()
        );
    }
    assert_eq!(
        desk.logins(),
        1,
        "one login for three daemons\n{}",
        desk.logs()
    );
    let leader = desk.one_leader(Duration::from_secs(10)).await;
    let hello = desk.call((leader + 1) % 3, json!({"op": "hello"})).await;
    assert_eq!(hello["store"], "postgres", "{hello}");
    // What an operator sees: the LEADER column, and the role metric.
    let leader_name = desk.hosts[leader].name.clone();
    for i in 0..3 {
        let (ok, table) = common::blackbox::brokerctl(desk.hosts[i].dir.path(), &["status"]);
        assert!(ok && table.contains("LEADER"), "{table}");
        let mine = if i == leader {
            format!("{leader_name} (this)")
        } else {
            leader_name.clone()
        };
        assert!(table.contains(&mine), "daemon {i}: {table}");
        let metrics = desk.call(i, json!({"op": "metrics"})).await;
        let text = metrics["text"].as_str().unwrap_or_default();
        let role = if i == leader { "leader" } else { "follower" };
        assert!(
            text.contains(&format!("role=\"{role}\"}} 1")),
            "daemon {i}: {text}"
        );
    }

    // Rejections reported to every daemon at once: one login each.
    let mut generation = first["generation"].as_u64().unwrap();
    for round in 1..=3 {
        generation = desk.rejection_round(generation).await;
        assert_eq!(desk.logins(), 1 + round, "round {round}\n{}", desk.logs());
    }
    // Followers serve the leader's newest session, and a late report of
    // an older generation on any daemon is answered with it: no login
    // anywhere (fencing across hosts).
    for i in 0..3 {
        assert_eq!(session(&desk.token(i).await)["generation"], generation);
        let late = desk
            .call(
                i,
                json!({"op": "invalidate", "broker": "jainam", "generation": generation - 1,
                            "reason": "Invalid Token", "http_status": 401}),
            )
            .await;
        assert_eq!(session(&late)["generation"], generation, "{late}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        desk.logins(),
        4,
        "a stale report logs in nowhere\n{}",
        desk.logs()
    );

    // The leader dies mid-run, clients still asking every daemon.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(&desk, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    desk.kill_9(leader);
    let new_leader = desk.one_leader(TAKEOVER * 3).await;
    let took = killed_at.elapsed();
    // Printed for the operator docs' figure (seen with --nocapture).
    eprintln!("takeover after SIGKILL of the leader: {took:?}");
    assert_ne!(new_leader, leader);
    assert!(
        took <= TAKEOVER + Duration::from_millis(500),
        "took over after {took:?}, configured {TAKEOVER:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for c in clients {
        let (n, bad) = c.await.unwrap();
        assert!(
            bad.is_empty(),
            "sessions the broker did not accept: {bad:?}"
        );
        served += n;
    }
    assert!(served > 0);
    assert_eq!(
        desk.logins(),
        4,
        "the takeover of a valid session costs no login\n{}",
        desk.logs()
    );

    // The new leader logs in for the next rejection, once.
    generation = desk.rejection_round(generation).await;
    assert_eq!(desk.logins(), 5, "{}", desk.logs());
    // The killed host comes back as a follower of the same session.
    desk.boot(leader);
    assert_eq!(session(&desk.token(leader).await)["generation"], generation);
    assert_eq!(desk.one_leader(Duration::from_secs(10)).await, new_leader);
    assert_eq!(desk.logins(), 5, "a returning daemon logs in for nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_gives_way_and_no_login_is_doubled() {
    let Some(url) = database("ha::a_leader_cut_off") else {
        return;
    };
    let desk = Desk::start(2, &url).await;
    let first = session(&desk.token(0).await).clone();
    let leader = desk.one_leader(Duration::from_secs(10)).await;
    // A partition of the leader from the database: its lock connection
    // is cut at the server, so its locks are gone while it still runs.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let cut: Vec<(bool,)> =
        sqlx::query_as("SELECT pg_terminate_backend(pid) FROM ha_leaders WHERE host = $1")
            .bind(&desk.hosts[leader].name)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(cut, vec![(true,)]);
    let other = 1 - leader;
    let cut_at = Instant::now();
    assert!(
        eventually_async(TAKEOVER * 3, || async {
            desk.status(other).await["role"] == "leader"
        })
        .await,
        "the other daemon did not take over\n{}",
        desk.logs()
    );
    assert!(cut_at.elapsed() <= TAKEOVER + Duration::from_millis(500));
    // The old leader reconnects as a follower; both agree.
    assert_eq!(desk.one_leader(Duration::from_secs(10)).await, other);
    assert_eq!(
        desk.logins(),
        1,
        "no login at the takeover\n{}",
        desk.logs()
    );
    // A rejection reported on both: one login, by the new leader.
    let g = desk
        .rejection_round(first["generation"].as_u64().unwrap())
        .await;
    assert_eq!(desk.logins(), 2, "{}", desk.logs());
    assert_eq!(session(&desk.token(leader).await)["generation"], g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_stops_logins_until_it_is_back() {
    // Its own cluster: stopping the shared one would break the other tests.
    let cluster = match pg_cluster::PgCluster::start(true) {
        Ok(c) => c,
        Err(why) => return pg_cluster::skip("ha::a_database_restart", &why),
    };
    let url = cluster.create_database().unwrap();
    let desk = Desk::start(2, &url).await;
    let first = session(&desk.token(0).await).clone();
    desk.one_leader(Duration::from_secs(10)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(&desk, Arc::clone(&stop));
    cluster.stop().unwrap();
    // Both serve the still-valid session from memory, and say why they
    // log in for nobody.
    let desk_ref = &desk;
    assert!(
        eventually_async(TAKEOVER * 3, || async move {
            desk_ref.status(0).await["role"] == "detached"
                && desk_ref.status(1).await["role"] == "detached"
        })
        .await,
        "{}",
        desk.logs()
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (served, bad) = c.await.unwrap();
        assert!(
            served > 0,
            "a daemon stopped serving when the database went away"
        );
        assert!(
            bad.is_empty(),
            "sessions the broker did not accept: {bad:?}"
        );
    }
    // The broker kills the session while the database is down: a report
    // is answered `unavailable`, and nobody logs in. It reaches one daemon
    // only: whichever leads once the database is back must learn of it
    // (from its own memory, or from the other's report on rejoining).
    desk.sim.reject_all_now();
    for i in 0..2 {
        // The old session from memory, unless this daemon's own check of
        // the session it restored at its start (in the background, at the
        // broker's pace) has just found it dead: then `unavailable`.
        let served = desk.token(i).await;
        if served["ok"] == true {
            assert_eq!(
                served["session"]["token"], first["token"],
                "daemon {i}: {served}"
            );
        } else {
            assert_eq!(
                common::error_code(&served),
                "unavailable",
                "daemon {i}: {served}"
            );
        }
        if i == 1 {
            continue;
        }
        let refused = desk
            .call(
                i,
                json!({"op": "invalidate", "broker": "jainam", "generation": 1,
                            "reason": "Invalid Token", "http_status": 401, "wait_secs": 5}),
            )
            .await;
        assert_eq!(common::error_code(&refused), "unavailable", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("database"),
            "{refused}"
        );
    }
    assert_eq!(
        desk.logins(),
        1,
        "no login without the database\n{}",
        desk.logs()
    );

    // The database is back: the daemon that takes the lead replaces the
    // session reported dead, once, and both serve the new one.
    cluster.start_again().unwrap();
    desk.one_leader(Duration::from_secs(20)).await;
    assert!(
        common::eventually(Duration::from_secs(20), || desk.logins() == 2).await,
        "{}",
        desk.logs()
    );
    // A follower that never heard of the report serves generation 1 until
    // the leader's notification (or its periodic look, every second here)
    // reaches it: a client would meet the dead session, report it, and be
    // answered with generation 2 at once.
    for i in 0..2 {
        let desk = &desk;
        assert!(
            eventually_async(Duration::from_secs(5), || async move {
                desk.token(i).await["session"]["generation"] == 2
            })
            .await,
            "daemon {i} never served generation 2\n{}",
            desk.logs()
        );
        let s = session(&desk.token(i).await).clone();
        assert!(desk.sim.is_token_valid(s["token"].as_str().unwrap()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(desk.logins(), 2, "{}", desk.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_pending_when_the_leader_dies_cost_one_login() {
    let Some(url) = database("ha::reports_pending") else {
        return;
    };
    let mut desk = Desk::start(2, &url).await;
    let first = session(&desk.token(0).await).clone();
    let leader = desk.one_leader(Duration::from_secs(10)).await;
    let follower = 1 - leader;
    // The broker kills the session and the leader dies at the same moment:
    // the follower's clients report it at once, before or just after the
    // follower takes the lead (asks made before wait in the database for
    // whoever leads next). Either way: one login.
    desk.sim.reject_all_now();
    desk.kill_9(leader);
    let generation = first["generation"].as_u64().unwrap();
    let newest = desk.rejection_round(generation).await;
    assert_eq!(newest, generation + 1);
    assert_eq!(
        desk.logins(),
        2,
        "one login for the rejection\n{}",
        desk.logs()
    );
    assert_eq!(desk.status(follower).await["role"], "leader");
    // Any ask left in the database is answered by the new leader as a
    // stale report: no second login.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(desk.logins(), 2, "{}", desk.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_sessions_are_refreshed_once_per_expiry_by_the_leader_alone() {
    let Some(url) = database("ha::short_sessions") else {
        return;
    };
    // Sessions of 6 s, refreshed 3 s before they end: an expiry every 3 s,
    // with clients asking both daemons all along.
    let desk = Desk::start_with(
        2,
        &url,
        "refresh_margin = \"3s\"\nrefresh_jitter = \"0s\"\nmin_valid = \"1s\"",
        |sim| sim.set_token_lifetime(Api::Interactive, Duration::from_secs(6)),
    )
    .await;
    desk.one_leader(Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(&desk, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (served, bad) = c.await.unwrap();
        assert!(served > 0);
        assert!(
            bad.is_empty(),
            "sessions the broker did not accept: {bad:?}"
        );
    }
    // Let it settle: the next refresh brings an hour-long session, after
    // which nothing is due.
    desk.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(5)).await;
    // One login per generation: two daemons both refreshing for one
    // expiry would make more logins than generations.
    let newest = session(&desk.token(0).await)["generation"]
        .as_u64()
        .unwrap();
    assert!(
        newest >= 4,
        "the sessions were refreshed: generation {newest}"
    );
    assert_eq!(desk.logins(), newest, "{}", desk.logs());
    let desk = &desk;
    assert!(
        eventually_async(Duration::from_secs(5), || async move {
            desk.token(1).await["session"]["generation"] == newest
        })
        .await,
        "the follower serves the leader's newest session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logouts_reach_followers_even_when_the_notice_is_lost() {
    let Some(url) = database("ha::logouts_reach_followers") else {
        return;
    };
    let desk = Desk::start(2, &url).await;
    session(&desk.token(0).await);
    let leader = desk.one_leader(Duration::from_secs(10)).await;
    let follower = 1 - leader;
    assert_eq!(session(&desk.token(follower).await)["generation"], 1);
    // A logout on the leader: its notice reaches the follower.
    let out = desk
        .call(leader, json!({"op": "logout", "broker": "jainam"}))
        .await;
    assert_eq!(out["ok"], true, "{out}");
    let desk_ref = &desk;
    assert!(
        eventually_async(Duration::from_secs(5), || async move {
            desk_ref.status(follower).await["state"] == "empty"
        })
        .await,
        "the follower forgot the logged-out session\n{}",
        desk.logs()
    );
    // Logged in again (a client asks), then logged out behind every
    // daemon's back: the row is forgotten with no notice, as when the
    // notice is lost in a reconnect. The periodic look repairs it.
    assert_eq!(session(&desk.token(leader).await)["generation"], 2);
    assert!(
        eventually_async(Duration::from_secs(5), || async move {
            desk_ref.status(follower).await["generation"] == 2
        })
        .await
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE sessions SET key_id = NULL, nonce = NULL, ciphertext = NULL, expires_at = NULL, \
         obtained_at = NULL, user_id = NULL, app_expiry = NULL",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        eventually_async(Duration::from_secs(5), || async move {
            desk_ref.status(follower).await["state"] == "empty"
        })
        .await,
        "the periodic look repaired the lost notice\n{}",
        desk.logs()
    );
    assert_eq!(desk.logins(), 2, "forgetting costs no login");
}
