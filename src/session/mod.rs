//! Session slots: one per (broker, account, api), keeping a valid session
//! and enforcing the invariants of DESIGN.md ("the heart").

mod backoff;
mod driver;
pub mod error;
pub mod events;
pub mod live;
mod login;
mod registry;
mod slot;
mod status;

pub use error::{ErrorCode, RequestError};
pub use events::{Event, EventBus, EventKind};
pub use live::Live;
pub use registry::{Registry, SimulatorRoots};
pub use slot::{Access, Report, Slot, SlotCounters, State};
pub use status::SlotStatus;
