//! Virtual time for end-to-end tests: the pump lives beside the
//! simulators (`brokerd_sim::virtual_time`), shared with the daemon's unit
//! tests.

pub use brokerd_sim::virtual_time::Pump;
