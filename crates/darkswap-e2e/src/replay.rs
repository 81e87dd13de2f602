//! The sliding window that refuses replayed counters within an epoch.

use crate::{REPLAY_WINDOW, error::EncryptionError};

/// Which counters of one epoch were accepted: the highest, and a bitmap of the
/// [`REPLAY_WINDOW`] counters up to it (bit `c % REPLAY_WINDOW` for counter `c`,
/// as in RFC 6479).
#[derive(Default)]
pub(crate) struct ReplayWindow {
    pub(crate) highest: Option<u64>,
    pub(crate) bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    pub(crate) fn check(&self, epoch: u32, counter: u64) -> Result<(), EncryptionError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if counter > highest {
            return Ok(());
        }
        if highest - counter >= REPLAY_WINDOW {
            return Err(EncryptionError::TooOld {
                epoch,
                counter,
                newest: highest,
            });
        }
        if self.bit(counter) {
            return Err(EncryptionError::Replay { epoch, counter });
        }
        Ok(())
    }

    /// Records `counter`, which [`Self::check`] allowed.
    pub(crate) fn accept(&mut self, counter: u64) {
        match self.highest {
            Some(highest) if counter <= highest => {}
            Some(highest) => {
                // Slots of the counters we move past now belong to new ones.
                let advance = (counter - highest).min(REPLAY_WINDOW);
                for c in counter - advance + 1..=counter {
                    self.set_bit(c, false);
                }
                self.highest = Some(counter);
            }
            None => self.highest = Some(counter),
        }
        self.set_bit(counter, true);
    }

    pub(crate) fn bit(&self, counter: u64) -> bool {
        let slot = counter % REPLAY_WINDOW;
        self.bits[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    pub(crate) fn set_bit(&mut self, counter: u64, value: bool) {
        let slot = counter % REPLAY_WINDOW;
        let word = &mut self.bits[(slot / 64) as usize];
        if value {
            *word |= 1 << (slot % 64);
        } else {
            *word &= !(1 << (slot % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_window_survives_jumps_larger_than_itself() {
        let mut window = ReplayWindow::default();
        for counter in [0, 3, 2 * REPLAY_WINDOW + 7, 2 * REPLAY_WINDOW + 6] {
            window.check(0, counter).unwrap();
            window.accept(counter);
        }
        // Slot of counter 7 held "7" once; it must not look like a replay of 2*W+7 - W.
        window.check(0, REPLAY_WINDOW + 8).unwrap();
        assert!(matches!(
            window.check(0, 2 * REPLAY_WINDOW + 6),
            Err(EncryptionError::Replay { .. })
        ));
        assert!(matches!(
            window.check(0, 3),
            Err(EncryptionError::TooOld { .. })
        ));
    }
}
