//! The time services are told.

use std::time::Duration;

use web_time::{Instant, SystemTime, UNIX_EPOCH};

/// One reading of both clocks, taken by the IO shell and passed into every
/// service call that depends on time: nothing in this crate reads a clock,
/// so tests drive it on virtual time.
///
/// `instant` drives timers and backoff (it never jumps); `wall` drives the
/// rules shared with peers and with storage: order times, token and ban
/// expiries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Wall-clock time.
    pub wall: SystemTime,
}

impl Now {
    /// A reading made of these two values.
    pub fn new(instant: Instant, wall: SystemTime) -> Self {
        Now { instant, wall }
    }

    /// The wall clock in unix seconds (0 before 1970), the time base of
    /// every order rule.
    pub fn unix_secs(&self) -> u64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// The reading `d` later on both clocks.
    pub fn after(self, d: Duration) -> Self {
        Now {
            instant: self.instant + d,
            wall: self.wall + d,
        }
    }
}
