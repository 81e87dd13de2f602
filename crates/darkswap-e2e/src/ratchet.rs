//! The key schedule: session chain keys from the X25519 secret, and per
//! epoch the AEAD key, nonce prefix and the next chain key.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use libp2p_identity::PeerId;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{
    FRAME_HEADER_LEN, KEY_SHARE_LEN, MAX_EPOCH_JUMP, MAX_RETAINED_EPOCHS,
    config::EncryptionAlgorithm,
    error::EncryptionError,
    frame::{Header, nonce, open},
    key_share::{KeyShare, len_u8},
    replay::ReplayWindow,
};

pub(crate) const SESSION_LABEL: &[u8] = b"darkswap-e2e/v1/session";
pub(crate) const EPOCH_LABEL: &[u8] = b"darkswap-e2e/v1/epoch";

/// What one epoch of one direction encrypts with.
pub(crate) struct EpochKeys {
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) nonce_prefix: [u8; 4],
}

pub(crate) struct SendChain {
    pub(crate) epoch: u32,
    pub(crate) keys: EpochKeys,
    /// Chain key of `epoch + 1`; the current epoch's own chain key is gone.
    pub(crate) next_chain: Zeroizing<[u8; 32]>,
    pub(crate) counter: u64,
    pub(crate) started: Instant,
}

pub(crate) struct RecvChain {
    pub(crate) current: RecvEpoch,
    pub(crate) next_chain: Zeroizing<[u8; 32]>,
    /// Older epochs, oldest first, each with when the peer left it.
    pub(crate) previous: VecDeque<(RecvEpoch, Instant)>,
}

pub(crate) struct RecvEpoch {
    pub(crate) epoch: u32,
    pub(crate) keys: EpochKeys,
    pub(crate) window: ReplayWindow,
}

impl SendChain {
    pub(crate) fn new(chain: Zeroizing<[u8; 32]>, now: Instant) -> Self {
        let (keys, next_chain) = epoch_keys(&chain);
        Self {
            epoch: 0,
            keys,
            next_chain,
            counter: 0,
            started: now,
        }
    }

    pub(crate) fn rotate(&mut self, now: Instant) -> Result<(), EncryptionError> {
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or(EncryptionError::EpochExhausted)?;
        let (keys, next_chain) = epoch_keys(&self.next_chain);
        // The replaced keys and chain key are zeroized as they drop.
        *self = Self {
            epoch,
            keys,
            next_chain,
            counter: 0,
            started: now,
        };
        Ok(())
    }
}

impl RecvChain {
    pub(crate) fn new(chain: Zeroizing<[u8; 32]>) -> Self {
        let (keys, next_chain) = epoch_keys(&chain);
        Self {
            current: RecvEpoch {
                epoch: 0,
                keys,
                window: ReplayWindow::default(),
            },
            next_chain,
            previous: VecDeque::new(),
        }
    }

    /// Authenticates and decrypts `frame`; only a frame that authenticates
    /// changes the chain (replay window, newer epoch).
    pub(crate) fn open(
        &mut self,
        algorithm: EncryptionAlgorithm,
        header: &Header,
        frame: &[u8],
        now: Instant,
        grace: Option<Duration>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let current = self.current.epoch;
        let (aad, sealed) = frame.split_at(FRAME_HEADER_LEN);
        if header.epoch == current {
            return self.current.open(algorithm, header, aad, sealed);
        }
        if header.epoch < current {
            let (epoch, _) = self
                .previous
                .iter_mut()
                .find(|(e, left)| {
                    e.epoch == header.epoch
                        && grace.is_none_or(|g| now.saturating_duration_since(*left) < g)
                })
                .ok_or(EncryptionError::UnknownEpoch {
                    epoch: header.epoch,
                    current,
                })?;
            return epoch.open(algorithm, header, aad, sealed);
        }
        let jump = header.epoch - current;
        if jump > MAX_EPOCH_JUMP {
            return Err(EncryptionError::EpochTooFarAhead {
                epoch: header.epoch,
                current,
            });
        }
        // Derive forward on the side, keeping every skipped epoch (frames of
        // those may still be in flight); commit only if the frame authenticates.
        let mut skipped = Vec::with_capacity(jump as usize);
        let (mut keys, mut next_chain) = epoch_keys(&self.next_chain);
        for epoch in current + 1..header.epoch {
            skipped.push(RecvEpoch {
                epoch,
                keys,
                window: ReplayWindow::default(),
            });
            (keys, next_chain) = epoch_keys(&next_chain);
        }
        let mut newest = RecvEpoch {
            epoch: header.epoch,
            keys,
            window: ReplayWindow::default(),
        };
        let plaintext = newest.open(algorithm, header, aad, sealed)?;
        let old = std::mem::replace(&mut self.current, newest);
        self.next_chain = next_chain;
        self.previous.push_back((old, now));
        self.previous.extend(skipped.into_iter().map(|e| (e, now)));
        while self.previous.len() > MAX_RETAINED_EPOCHS {
            self.previous.pop_front();
        }
        Ok(plaintext)
    }
}

impl RecvEpoch {
    pub(crate) fn open(
        &mut self,
        algorithm: EncryptionAlgorithm,
        header: &Header,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        self.window.check(self.epoch, header.counter)?;
        let nonce = nonce(&self.keys.nonce_prefix, header.counter);
        let plaintext = open(algorithm, &self.keys.key, &nonce, aad, sealed)?;
        self.window.accept(header.counter);
        Ok(plaintext)
    }
}

/// HKDF-SHA256 of `ikm` into `out` (the lengths used here are far below
/// HKDF's limit of 255 hash lengths, so expansion cannot fail).
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    if hk.expand_multi_info(info, out).is_err() {
        unreachable!("HKDF output of {} bytes is within its limit", out.len());
    }
}

/// The two directions' epoch-0 chain keys, as (ours, theirs).
pub(crate) fn session_chains(
    algorithm: EncryptionAlgorithm,
    shared: &[u8; 32],
    local: (&PeerId, &KeyShare),
    remote: (&PeerId, &KeyShare),
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let local_bytes = local.0.to_bytes();
    let remote_bytes = remote.0.to_bytes();
    let local_is_low = local_bytes < remote_bytes;
    let (low, high) = if local_is_low {
        ((&local_bytes, local.1), (&remote_bytes, remote.1))
    } else {
        ((&remote_bytes, remote.1), (&local_bytes, local.1))
    };
    let mut salt = [0; 2 * KEY_SHARE_LEN];
    salt[..KEY_SHARE_LEN].copy_from_slice(&low.1.to_bytes());
    salt[KEY_SHARE_LEN..].copy_from_slice(&high.1.to_bytes());
    let mut okm = Zeroizing::new([0; 64]);
    hkdf(
        &salt,
        shared,
        &[
            SESSION_LABEL,
            &[algorithm.wire_id()],
            &[len_u8(low.0)],
            low.0,
            &[len_u8(high.0)],
            high.0,
        ],
        okm.as_mut_slice(),
    );
    let mut low_to_high = Zeroizing::new([0; 32]);
    let mut high_to_low = Zeroizing::new([0; 32]);
    low_to_high.copy_from_slice(&okm[..32]);
    high_to_low.copy_from_slice(&okm[32..]);
    if local_is_low {
        (low_to_high, high_to_low)
    } else {
        (high_to_low, low_to_high)
    }
}

/// An epoch's keys and the next epoch's chain key, from this epoch's chain key.
pub(crate) fn epoch_keys(chain: &[u8; 32]) -> (EpochKeys, Zeroizing<[u8; 32]>) {
    let mut okm = Zeroizing::new([0; 68]);
    hkdf(&[], chain, &[EPOCH_LABEL], okm.as_mut_slice());
    let mut key = Zeroizing::new([0; 32]);
    let mut nonce_prefix = [0; 4];
    let mut next = Zeroizing::new([0; 32]);
    key.copy_from_slice(&okm[..32]);
    nonce_prefix.copy_from_slice(&okm[32..36]);
    next.copy_from_slice(&okm[36..]);
    (EpochKeys { key, nonce_prefix }, next)
}
