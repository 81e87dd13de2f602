//! What travels between verifier and prover on `/darkswap/auth/1.0.0`
//! (JSON, capped at [`MAX_AUTH_MESSAGE_SIZE`](crate::auth::MAX_AUTH_MESSAGE_SIZE)),
//! and the tokens a manager hands out.

use std::fmt;

use darkswap_proto::identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthMethod, AuthorizationLevel, CHALLENGE_LABEL, NONCE_LEN, TOKEN_LABEL};

/// From the verifier to the prover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthRequest {
    /// Prove who you are by answering this challenge.
    Challenge(Challenge),
}

/// From the prover to the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthResponse {
    /// The answer.
    Proof(ChallengeResponse),
    /// The prover will not answer, and why.
    Refused(String),
}

/// A challenge issued by a verifier to one prover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Random bytes, unique per challenge.
    #[serde(with = "hex")]
    pub nonce: [u8; NONCE_LEN],
    /// The peer that issued it and will verify the answer.
    pub verifier: PeerId,
    /// The peer that must answer it.
    pub prover: PeerId,
    /// The proof asked for.
    pub method: AuthMethod,
    /// Unix time in milliseconds after which no answer is accepted.
    pub expires_at_ms: u64,
}

impl Challenge {
    /// The bytes a prover MACs or signs: label, method, nonce, both peer ids
    /// and the expiry, each unambiguously delimited.
    pub(crate) fn transcript(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(160);
        t.extend_from_slice(CHALLENGE_LABEL);
        t.push(self.method.tag());
        t.extend_from_slice(&self.nonce);
        for id in [self.verifier, self.prover] {
            let bytes = id.to_bytes();
            // Peer ids are multihashes of at most 64 bytes of digest.
            t.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            t.extend_from_slice(&bytes);
        }
        t.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        t
    }
}

/// A prover's proof of one challenge.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Proof {
    /// HMAC-SHA256 of the transcript under the shared key.
    SharedKey {
        /// The tag.
        #[serde(with = "hex")]
        mac: Vec<u8>,
    },
    /// Signature of the transcript by the prover's identity key.
    Signature {
        /// The prover's public key, protobuf-encoded as libp2p does.
        #[serde(with = "hex")]
        public_key: Vec<u8>,
        /// The Ed25519 signature.
        #[serde(with = "hex")]
        signature: Vec<u8>,
    },
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::SharedKey { .. } => f.write_str("Proof::SharedKey"),
            Proof::Signature { .. } => f.write_str("Proof::Signature"),
        }
    }
}

/// The answer to a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The nonce of the challenge answered.
    #[serde(with = "hex")]
    pub nonce: [u8; NONCE_LEN],
    /// The proof.
    pub proof: Proof,
}

/// Proof that a peer authenticated to an [`AuthManager`](crate::auth::AuthManager), presentable to it
/// later instead of a new challenge.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthToken {
    /// The manager's peer that issued it.
    pub issuer: PeerId,
    /// The peer it was issued to.
    pub peer: PeerId,
    /// The level granted.
    pub level: AuthorizationLevel,
    /// Unix time in milliseconds after which it is refused.
    pub expires_at_ms: u64,
    /// HMAC-SHA256 over the fields above under the issuer's token key.
    #[serde(with = "hex")]
    pub mac: [u8; 32],
}

impl AuthToken {
    pub(crate) fn tagged_bytes(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(128);
        t.extend_from_slice(TOKEN_LABEL);
        for id in [self.issuer, self.peer] {
            let bytes = id.to_bytes();
            t.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            t.extend_from_slice(&bytes);
        }
        t.push(self.level.tag());
        t.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        t
    }
}

impl fmt::Debug for AuthToken {
    // The tag stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthToken")
            .field("issuer", &self.issuer)
            .field("peer", &self.peer)
            .field("level", &self.level)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}
