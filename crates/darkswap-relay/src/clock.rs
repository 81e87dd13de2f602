//! The wall clock, read only on the IO side: the sans-IO parts (the hub,
//! token validation) take the time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 on a clock set before 1970, which makes
/// every token look expired rather than valid.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
