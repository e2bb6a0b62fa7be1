//! What every simulator's `/_sim/fail_next` control endpoint reads the same
//! way: how many faults to queue, and a mode that is an HTTP status.

use std::collections::HashMap;

/// `n` of a control request (default 1); `None` when it is not a count.
pub(super) fn fault_count(q: &HashMap<String, String>) -> Option<u32> {
    q.get("n").map_or(Some(1), |n| n.parse().ok())
}

/// A `mode` that names a valid HTTP status code.
pub(super) fn status_mode(mode: &str) -> Option<u16> {
    mode.parse::<u16>()
        .ok()
        .filter(|c| axum::http::StatusCode::from_u16(*c).is_ok())
}
