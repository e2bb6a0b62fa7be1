//! Broker simulators: real HTTP servers on loopback that speak a broker's
//! documented wire format and inject faults on demand. Tests and the demo
//! run against these; nothing here ever reaches a real broker.
//! `virtual_time` is the tests' pump of the clock the simulators and the
//! daemon share.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod angel;
pub mod breeze;
mod control;
pub mod kite;
pub mod kotak;
mod serve;
pub mod virtual_time;
pub mod xts;
