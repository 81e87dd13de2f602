//! The hub's deadlines: one heap, checked lazily. An entry whose subject
//! moved on (a socket that registered or closed, a circuit that ended or
//! got a new deadline) is skipped when it comes due, and the heap is
//! compacted once such entries outnumber the live ones, so churn cannot
//! grow it: without that, a circuit that opens and closes at once leaves its
//! duration deadline (1 h by default) in the heap until it comes due.

use std::{cmp::Reverse, time::Instant};

use super::{Conn, Hub, Timer};

/// Stale entries tolerated before a compaction, beyond twice the live ones.
const SLACK: usize = 64;

impl Hub {
    /// Schedules `timer` at `at`.
    pub(super) fn push_timer(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
        // Each subject has at most one live entry.
        if self.timers.len() > 2 * (self.conns.len() + self.circuits.len()) + SLACK {
            let (conns, circuits) = (&self.conns, &self.circuits);
            self.timers.retain(|Reverse((at, timer))| match timer {
                Timer::Register(conn) => matches!(
                    conns.get(conn),
                    Some(Conn::Signaling {
                        peer: None,
                        closing: false,
                        ..
                    })
                ),
                Timer::Circuit(id) => circuits.get(id).is_some_and(|c| c.deadline == *at),
            });
        }
    }

    /// Deadlines scheduled, live or stale (for tests of the bound).
    #[cfg(test)]
    pub(super) fn timer_count(&self) -> usize {
        self.timers.len()
    }
}
