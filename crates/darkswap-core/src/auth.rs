//! Peer authentication and authorization, and the `/darkswap/auth/1.0.0`
//! protocol that carries it.
//!
//! An [`AuthManager`] is the sans-IO core: it issues challenges, answers
//! them, verifies answers, issues and checks tokens, and knows each peer's
//! [`AuthorizationLevel`]. Time is passed in; nothing here touches a socket.
//! The SDK's swarm task (and the relay server) run it over a libp2p
//! request-response protocol carrying [`AuthRequest`] and [`AuthResponse`].
//!
//! # Methods
//!
//! Every challenge is 32 random bytes, expires after `challenge_ttl`, is
//! accepted once, and is bound to the verifier's and the prover's peer ids
//! and to the protocol label, so an answer cannot be replayed, reflected or
//! relayed to a third party.
//!
//! - [`AuthMethod::SharedKey`]: the prover returns HMAC-SHA256 over the
//!   challenge, keyed with the operator-issued shared key. Proves possession
//!   of the key; the peer gets `default_auth_level` (or its entry in
//!   `authorized_keys`).
//! - [`AuthMethod::ChallengeResponse`]: the prover signs the challenge with
//!   its libp2p Ed25519 identity key. Any identity can prove itself; it gets
//!   `default_auth_level`, or its entry in `authorized_keys`.
//! - [`AuthMethod::PublicKey`]: the same signature, but only peers listed in
//!   `authorized_keys` may authenticate, each with the level listed there.
//!   Others are refused before a challenge is generated.
//!
//! Peers in `trusted_peers` get their level without a challenge (their
//! `authorized_keys` entry, else at least [`AuthorizationLevel::Relay`]).
//! Peers in `banned_peers` are refused before any work: no challenge is
//! generated, no MAC computed, no signature verified.
//!
//! # Tokens
//!
//! A successful authentication yields an [`AuthToken`]: the peer id, its
//! level and an expiry (`token_ttl`), with an HMAC-SHA256 tag under a key
//! each manager draws at random when it is created. Presenting it to
//! [`AuthManager::authenticate`] later restores the level without a new
//! challenge. Tokens cannot be forged or moved to another peer, and die with
//! the manager that issued them.

mod config;
mod error;
mod manager;
mod wire;

pub use config::{AuthManagerConfig, AuthMethod, AuthorizationLevel};
pub use error::AuthError;
pub use manager::AuthManager;
pub use wire::{AuthRequest, AuthResponse, AuthToken, Challenge, ChallengeResponse, Proof};

/// Bytes of randomness in a challenge.
pub const NONCE_LEN: usize = 32;
/// Shortest shared key accepted: 128 bits.
pub const MIN_SHARED_KEY_LEN: usize = 16;
/// Challenges outstanding at once; more are refused until some expire, so a
/// flood of connections cannot grow the table without bound.
pub const MAX_PENDING_CHALLENGES: usize = 1024;
/// Domain separation for what provers sign or MAC.
pub(crate) const CHALLENGE_LABEL: &[u8] = b"/darkswap/auth/1.0.0 challenge";
/// Domain separation for token tags.
pub(crate) const TOKEN_LABEL: &[u8] = b"/darkswap/auth/1.0.0 token";
/// Largest `/darkswap/auth/1.0.0` request or response accepted. A challenge
/// or a signature answer is a few hundred bytes of JSON.
pub const MAX_AUTH_MESSAGE_SIZE: u64 = 4096;

#[cfg(test)]
mod tests;
