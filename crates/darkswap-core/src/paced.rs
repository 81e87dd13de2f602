//! A queue that lets at most `per_tick` items out every `tick`: where this
//! node's re-announcements wait. A refresh re-announces every open own
//! order (and its update) at once, a thousand or two messages; sent at
//! once, they would fill gossipsub's send queues ahead of whatever the
//! node publishes next, and a cancel, a fill notice or a new order would
//! reach peers only after the whole burst. Paced, the burst trickles out
//! and those go out at once, ahead of it (seed 002's prioritisation:
//! cancels and trade notices high, creates and updates medium, the
//! background low). Sans-IO: time is passed in.

use std::{collections::VecDeque, time::Duration};

use web_time::Instant;

/// See the module docs.
#[derive(Debug)]
pub struct Paced<T> {
    items: VecDeque<T>,
    per_tick: usize,
    tick: Duration,
    /// When the next items may go; `None` while the queue is empty.
    next: Option<Instant>,
    /// When items last went, so a queue that ran dry and fills again
    /// still keeps the rate.
    last: Option<Instant>,
}

impl<T> Paced<T> {
    /// At most `per_tick` (at least 1) items every `tick`.
    pub fn new(per_tick: usize, tick: Duration) -> Self {
        Paced {
            items: VecDeque::new(),
            per_tick: per_tick.max(1),
            tick,
            next: None,
            last: None,
        }
    }

    /// Queues `item` at `now`.
    pub fn push(&mut self, item: T, now: Instant) {
        self.items.push_back(item);
        if self.next.is_none() {
            let earliest = self.last.map_or(now, |last| last + self.tick);
            self.next = Some(earliest.max(now));
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When [`Paced::poll_due`] next lets items out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The items that may go at `now`, oldest first: none before the next
    /// tick, at most `per_tick` at one.
    pub fn poll_due(&mut self, now: Instant) -> Vec<T> {
        match self.next {
            Some(next) if next <= now => {}
            _ => return Vec::new(),
        }
        let n = self.per_tick.min(self.items.len());
        let due: Vec<T> = self.items.drain(..n).collect();
        self.last = Some(now);
        self.next = (!self.items.is_empty()).then(|| now + self.tick);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn at_most_per_tick_items_go_each_tick_in_order() {
        let t0 = Instant::now();
        let mut q = Paced::new(2, TICK);
        for i in 0..5 {
            q.push(i, t0);
        }
        assert_eq!(q.poll_timeout(), Some(t0));
        assert_eq!(q.poll_due(t0), vec![0, 1]);
        assert_eq!(
            q.poll_due(t0 + TICK / 2),
            Vec::<i32>::new(),
            "not before the tick"
        );
        assert_eq!(q.poll_timeout(), Some(t0 + TICK));
        assert_eq!(q.poll_due(t0 + TICK), vec![2, 3]);
        assert_eq!(q.poll_due(t0 + TICK * 2), vec![4]);
        assert!(q.is_empty());
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn a_queue_that_ran_dry_keeps_the_rate_when_it_fills_again() {
        let t0 = Instant::now();
        let mut q = Paced::new(1, TICK);
        q.push('a', t0);
        assert_eq!(q.poll_due(t0), vec!['a']);
        // Pushed right after: it waits for the next tick, not now.
        q.push('b', t0 + TICK / 10);
        assert_eq!(q.poll_timeout(), Some(t0 + TICK));
        assert_eq!(q.poll_due(t0 + TICK / 10), Vec::<char>::new());
        assert_eq!(q.poll_due(t0 + TICK), vec!['b']);
        // Long after: at once.
        q.push('c', t0 + TICK * 10);
        assert_eq!(q.poll_due(t0 + TICK * 10), vec!['c']);
    }
}
