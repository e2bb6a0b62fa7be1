//! brokerd-core: the vocabulary the daemon and the broker simulators share.
//! Names (brokers, APIs, session keys), what a login produces, how a broker
//! call fails, secrets that never print, JWT expiry, and time (an injectable
//! [`Clock`], India Standard Time).
//!
//! No runtime, HTTP or database here (no tokio, reqwest or sqlx): this crate
//! is what both sides of the wire agree on, and it stays small enough to
//! read in one sitting.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod ids;
pub mod jwt;
pub mod secret;
pub mod session;
pub mod time;

pub use error::{BrokerError, Report};
pub use ids::{Api, BrokerId, SessionKey};
pub use session::{Material, NewSession, SessionMeta};
pub use time::{Clock, ManualClock, SharedClock, SystemClock, sleep_until};
