//! [`EncryptionManager`]: one session per peer, key exchange, encryption
//! and decryption, rotation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use libp2p_identity::{Keypair, PeerId};
use rand::RngCore;
use rand::rngs::OsRng;
use x25519_dalek::{EphemeralSecret, StaticSecret};

use crate::{
    FRAME_HEADER_LEN, PENDING_EXCHANGE_TTL, PREVIOUS_EPOCH_GRACE,
    config::EncryptionConfig,
    error::EncryptionError,
    frame::{frame_header, nonce, parse_header, seal},
    key_share::{KeyShare, SignedKey, embedded_public_key, signed_message},
    ratchet::{RecvChain, SendChain, session_chains},
};

/// Encrypts and decrypts messages exchanged with other peers, one session per
/// peer. Cheap to share between tasks (`Arc<EncryptionManager>`): every
/// method takes `&self`.
///
/// Unlike seed 001's `EncryptionManager::new(config)`, the constructor takes
/// the node's identity key: session keys are bound to both peer ids, and
/// [`Self::signed_ephemeral_key`] signs with it.
pub struct EncryptionManager {
    identity: Keypair,
    local_peer_id: PeerId,
    config: EncryptionConfig,
    state: Mutex<State>,
}

impl fmt::Debug for EncryptionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("EncryptionManager")
            .field("local_peer_id", &self.local_peer_id)
            .field("config", &self.config)
            .field("sessions", &state.sessions.len())
            .field("pending", &state.pending.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct State {
    /// The manager's X25519 secret when `use_ephemeral_keys` is off.
    pub(crate) static_secret: Option<StaticSecret>,
    pub(crate) pending: HashMap<PeerId, Pending>,
    pub(crate) sessions: HashMap<PeerId, Session>,
}

pub(crate) struct Pending {
    /// `None`: the manager's static secret.
    pub(crate) secret: Option<EphemeralSecret>,
    pub(crate) share: KeyShare,
    pub(crate) created: Instant,
}

pub(crate) struct Session {
    pub(crate) send: SendChain,
    pub(crate) recv: RecvChain,
}

impl EncryptionManager {
    /// A manager for the node whose identity key is `identity`.
    ///
    /// Fails with [`EncryptionError::InvalidConfig`] for a zero
    /// `key_rotation_interval`, or forward secrecy without ephemeral keys (a
    /// static X25519 key recomputes every past session's secret).
    pub fn new(identity: Keypair, config: EncryptionConfig) -> Result<Self, EncryptionError> {
        if config.key_rotation_interval.is_zero() {
            return Err(EncryptionError::InvalidConfig(
                "key_rotation_interval must not be zero",
            ));
        }
        if config.use_forward_secrecy && !config.use_ephemeral_keys {
            return Err(EncryptionError::InvalidConfig(
                "use_forward_secrecy requires use_ephemeral_keys",
            ));
        }
        let static_secret =
            (!config.use_ephemeral_keys).then(|| StaticSecret::random_from_rng(OsRng));
        Ok(Self {
            local_peer_id: identity.public().to_peer_id(),
            identity,
            config,
            state: Mutex::new(State {
                static_secret,
                pending: HashMap::new(),
                sessions: HashMap::new(),
            }),
        })
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The configuration.
    pub fn config(&self) -> &EncryptionConfig {
        &self.config
    }

    /// Whether a key exchange with `peer` has completed (and not been removed).
    pub fn has_session(&self, peer: &PeerId) -> bool {
        self.lock().sessions.contains_key(peer)
    }

    /// Makes a key pair for a key exchange with `peer` and returns the share
    /// to send it. A previous pending exchange with `peer` is replaced; an
    /// existing session stays in use until [`Self::perform_key_exchange`]
    /// replaces it.
    pub fn generate_ephemeral_key_pair(&self, peer: &PeerId) -> Result<KeyShare, EncryptionError> {
        self.generate_at(peer, Instant::now())
    }

    /// Completes the key exchange with `peer` using its share: from now on
    /// [`Self::encrypt`] and [`Self::decrypt`] work for `peer`, and any
    /// previous session with it is gone. The share is not authenticated: use
    /// [`Self::accept_signed_key`] when it came through anyone but `peer`.
    pub fn perform_key_exchange(
        &self,
        peer: &PeerId,
        their_share: &KeyShare,
    ) -> Result<(), EncryptionError> {
        self.exchange_at(peer, their_share, Instant::now())
    }

    /// [`Self::generate_ephemeral_key_pair`], signed by our identity key for
    /// `peer` (see [`SignedKey`]).
    pub fn signed_ephemeral_key(&self, peer: &PeerId) -> Result<SignedKey, EncryptionError> {
        let share = self.generate_ephemeral_key_pair(peer)?;
        let algorithm = self.config.encryption_algorithm;
        let message = signed_message(algorithm, &share, &self.local_peer_id, peer);
        let signature = self
            .identity
            .sign(&message)
            .map_err(|e| EncryptionError::Signing(e.to_string()))?;
        Ok(SignedKey {
            algorithm,
            share,
            signature,
        })
    }

    /// Checks that `signed` was signed by `peer`'s identity key (the one its
    /// peer id embeds) for us and uses our algorithm, then completes the key
    /// exchange with it like [`Self::perform_key_exchange`].
    pub fn accept_signed_key(
        &self,
        peer: &PeerId,
        signed: &SignedKey,
    ) -> Result<(), EncryptionError> {
        let public = embedded_public_key(peer)?;
        let message = signed_message(signed.algorithm, &signed.share, peer, &self.local_peer_id);
        if !public.verify(&message, &signed.signature) {
            return Err(EncryptionError::BadSignature { peer: *peer });
        }
        if signed.algorithm != self.config.encryption_algorithm {
            return Err(EncryptionError::AlgorithmMismatch {
                expected: self.config.encryption_algorithm,
                received: signed.algorithm,
            });
        }
        self.perform_key_exchange(peer, &signed.share)
    }

    /// Encrypts `plaintext` for `peer` into one frame. Rotates the sending
    /// key first if it is older than `key_rotation_interval`.
    pub fn encrypt(&self, peer: &PeerId, plaintext: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        self.encrypt_at(peer, plaintext, Instant::now())
    }

    /// Decrypts a frame `peer` made with [`Self::encrypt`]. A frame is
    /// accepted at most once; frames may arrive out of order within
    /// [`REPLAY_WINDOW`](crate::REPLAY_WINDOW), and from the previous epochs while their keys are
    /// kept. On error the session is unchanged.
    pub fn decrypt(&self, peer: &PeerId, frame: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        self.decrypt_at(peer, frame, Instant::now())
    }

    /// Moves the sending side of every session that has sent something in its
    /// current epoch to the next epoch: later frames use a new key derived one
    /// way from the previous chain key, which is erased. Peers follow on their
    /// own when they receive them.
    pub fn rotate_keys(&self) -> Result<(), EncryptionError> {
        let now = Instant::now();
        let mut state = self.lock();
        for session in state.sessions.values_mut() {
            // An epoch that has encrypted nothing has nothing to protect;
            // skipping it keeps an idle session's epochs from running ahead
            // of what the peer may derive forward (MAX_EPOCH_JUMP).
            if session.send.counter > 0 {
                session.send.rotate(now)?;
            }
        }
        Ok(())
    }

    /// Drops what is no longer needed: past receiving epochs whose grace
    /// period is over (with forward secrecy), and key pairs of exchanges that
    /// did not complete within [`PENDING_EXCHANGE_TTL`]. Expired keys are
    /// refused even before they are pruned; this frees them.
    pub fn prune_expired_keys(&self) {
        self.prune_at(Instant::now());
    }

    /// Forgets everything about `peer` (pending exchange and session), e.g.
    /// when the connection with it closes.
    pub fn remove_peer(&self, peer: &PeerId) {
        let mut state = self.lock();
        state.pending.remove(peer);
        state.sessions.remove(peer);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation reserves a nonce before it can fail, so the state a
        // panicking thread leaves behind never leads to a nonce being reused.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generate_at(&self, peer: &PeerId, now: Instant) -> Result<KeyShare, EncryptionError> {
        if *peer == self.local_peer_id {
            return Err(EncryptionError::SelfSession);
        }
        let mut nonce = [0; 32];
        OsRng.fill_bytes(&mut nonce);
        let mut state = self.lock();
        let (secret, public) = match &state.static_secret {
            Some(secret) => (None, x25519_dalek::PublicKey::from(secret)),
            None => {
                let secret = EphemeralSecret::random_from_rng(OsRng);
                let public = x25519_dalek::PublicKey::from(&secret);
                (Some(secret), public)
            }
        };
        let share = KeyShare {
            public: public.to_bytes(),
            nonce,
        };
        state.pending.insert(
            *peer,
            Pending {
                secret,
                share,
                created: now,
            },
        );
        Ok(share)
    }

    fn exchange_at(
        &self,
        peer: &PeerId,
        their_share: &KeyShare,
        now: Instant,
    ) -> Result<(), EncryptionError> {
        if *peer == self.local_peer_id {
            return Err(EncryptionError::SelfSession);
        }
        let mut state = self.lock();
        let pending = state
            .pending
            .remove(peer)
            .filter(|p| now.saturating_duration_since(p.created) < PENDING_EXCHANGE_TTL)
            .ok_or(EncryptionError::NoPendingKeyExchange { peer: *peer })?;
        let their_public = x25519_dalek::PublicKey::from(their_share.public);
        let shared = match (pending.secret, &state.static_secret) {
            // Consumed, hence erased, right here: forward secrecy.
            (Some(secret), _) => secret.diffie_hellman(&their_public),
            (None, Some(secret)) => secret.diffie_hellman(&their_public),
            (None, None) => return Err(EncryptionError::NoPendingKeyExchange { peer: *peer }),
        };
        if !shared.was_contributory() {
            return Err(EncryptionError::WeakPublicKey);
        }
        let (send_chain, recv_chain) = session_chains(
            self.config.encryption_algorithm,
            shared.as_bytes(),
            (&self.local_peer_id, &pending.share),
            (peer, their_share),
        );
        let session = Session {
            send: SendChain::new(send_chain, now),
            recv: RecvChain::new(recv_chain),
        };
        state.sessions.insert(*peer, session);
        Ok(())
    }

    fn encrypt_at(
        &self,
        peer: &PeerId,
        plaintext: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, EncryptionError> {
        let algorithm = self.config.encryption_algorithm;
        let mut state = self.lock();
        let send = &mut state
            .sessions
            .get_mut(peer)
            .ok_or(EncryptionError::NoSession { peer: *peer })?
            .send;
        if now.saturating_duration_since(send.started) >= self.config.key_rotation_interval {
            send.rotate(now)?;
        }
        if send.counter == u64::MAX {
            return Err(EncryptionError::CounterExhausted);
        }
        let counter = send.counter;
        // Reserved before encrypting: whatever happens next, never reused.
        send.counter += 1;
        let header = frame_header(algorithm, send.epoch, counter);
        let nonce = nonce(&send.keys.nonce_prefix, counter);
        let sealed = seal(algorithm, &send.keys.key, &nonce, &header, plaintext)?;
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + sealed.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&sealed);
        Ok(frame)
    }

    fn decrypt_at(
        &self,
        peer: &PeerId,
        frame: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, EncryptionError> {
        let header = parse_header(frame)?;
        let expected = self.config.encryption_algorithm;
        if header.algorithm != expected {
            return Err(EncryptionError::AlgorithmMismatch {
                expected,
                received: header.algorithm,
            });
        }
        let mut state = self.lock();
        let recv = &mut state
            .sessions
            .get_mut(peer)
            .ok_or(EncryptionError::NoSession { peer: *peer })?
            .recv;
        let grace = self
            .config
            .use_forward_secrecy
            .then_some(PREVIOUS_EPOCH_GRACE);
        recv.open(expected, &header, frame, now, grace)
    }

    fn prune_at(&self, now: Instant) {
        let mut state = self.lock();
        state
            .pending
            .retain(|_, p| now.saturating_duration_since(p.created) < PENDING_EXCHANGE_TTL);
        if self.config.use_forward_secrecy {
            for session in state.sessions.values_mut() {
                session.recv.previous.retain(|(_, left)| {
                    now.saturating_duration_since(*left) < PREVIOUS_EPOCH_GRACE
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
