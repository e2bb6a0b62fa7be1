//! brokerd's integration tests, one binary: every file is a module, so the
//! library is linked once for all of them. `common/` is the shared harness.
//! Run one file's tests with `cargo test -p brokerd --test it <file>::`.

mod common;

mod angel_one;
mod breeze;
mod brokerctl_exec;
mod check_config_parity;
mod cli_assets;
mod config_urls;
mod crash_loop;
mod crate_graph;
mod deb;
mod ha;
mod ha_browser;
mod harden;
mod history;
mod hostages;
mod http_endpoint;
mod journald;
mod key_rotation;
mod key_rotation_crash;
mod kotak;
mod kotak_conflict;
mod login_safety;
mod pacing;
mod peer_groups;
mod persistence;
mod postgres_store;
mod protocol;
mod protocol_docs;
mod reload;
mod secrets;
mod secrets_interactive;
mod signals;
mod slot;
mod socket_folder;
mod store_full;
mod systemd;
mod systemd_unit;
mod totp_crash;
mod zerodha;
