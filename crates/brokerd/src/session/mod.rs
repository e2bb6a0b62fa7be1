//! Session slots: one per (broker, account, api), keeping a valid session
//! and enforcing the invariants of DESIGN.md ("the heart").

pub mod driver;
mod effects;
pub mod error;
pub mod events;
mod follow;
mod interactive;
pub mod live;
mod login;
pub mod machine;
pub mod pacing;
mod queue;
mod registry;
mod rejection;
mod slot;
mod status;
mod store_gate;
mod totp_record;

pub use error::{ErrorCode, RequestError};
pub use events::{Event, EventBus, EventKind};
pub use interactive::plausible_submission;
pub use live::Live;
pub use registry::{Registry, ReloadReport};
pub use slot::{Access, Report, Shared, Slot, SlotCounters, State};
pub use status::SlotStatus;

/// Milliseconds since the first call: a monotonic clock cheap to keep in an
/// atomic. Only the watchdog heartbeat reads it, and deliberately not the
/// daemon's clock: systemd's watchdog counts real time, and a loop is stuck
/// or alive in real time whatever a test's manual clock says.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}
