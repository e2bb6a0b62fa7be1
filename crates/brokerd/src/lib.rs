//! brokerd: owns the authenticated API sessions of broker accounts, keeps
//! them valid, persists them encrypted, and hands them to local programs over
//! a Unix socket. See ARCHITECTURE.md for the code map and the invariants.

#![forbid(unsafe_code)]
#![deny(clippy::await_holding_lock)]
#![warn(missing_docs)]

pub mod brokers;
pub mod callback;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod ha;
pub mod harden;
pub mod http;
pub mod logging;
pub mod notify;
pub mod preflight;
pub mod protocol;
pub mod reload;
// The secret types live in brokerd-core; re-exported under their old path.
pub use brokerd_core::secret;
pub mod server;
pub mod session;
pub mod store;
pub mod systemd;
