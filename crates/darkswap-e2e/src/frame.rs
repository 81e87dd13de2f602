//! The frame format: header, nonce and AEAD seal and open.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;

use crate::{
    FRAME_HEADER_LEN, FRAME_OVERHEAD, FRAME_VERSION, config::EncryptionAlgorithm,
    error::EncryptionError,
};

pub(crate) struct Header {
    pub(crate) algorithm: EncryptionAlgorithm,
    pub(crate) epoch: u32,
    pub(crate) counter: u64,
}

pub(crate) fn frame_header(
    algorithm: EncryptionAlgorithm,
    epoch: u32,
    counter: u64,
) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [0; FRAME_HEADER_LEN];
    header[0] = FRAME_VERSION;
    header[1] = algorithm.wire_id();
    header[2..6].copy_from_slice(&epoch.to_be_bytes());
    header[6..14].copy_from_slice(&counter.to_be_bytes());
    header
}

pub(crate) fn parse_header(frame: &[u8]) -> Result<Header, EncryptionError> {
    let Some(&version) = frame.first() else {
        return Err(EncryptionError::MalformedFrame("empty frame"));
    };
    if version != FRAME_VERSION {
        return Err(EncryptionError::UnsupportedVersion(version));
    }
    if frame.len() < FRAME_OVERHEAD {
        return Err(EncryptionError::MalformedFrame(
            "shorter than header and tag",
        ));
    }
    let algorithm = EncryptionAlgorithm::from_wire_id(frame[1])
        .ok_or(EncryptionError::MalformedFrame("unknown algorithm"))?;
    let mut epoch = [0; 4];
    epoch.copy_from_slice(&frame[2..6]);
    let mut counter = [0; 8];
    counter.copy_from_slice(&frame[6..14]);
    Ok(Header {
        algorithm,
        epoch: u32::from_be_bytes(epoch),
        counter: u64::from_be_bytes(counter),
    })
}

pub(crate) fn nonce(prefix: &[u8; 4], counter: u64) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..4].copy_from_slice(prefix);
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

pub(crate) fn seal(
    algorithm: EncryptionAlgorithm,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    let sealed = match algorithm {
        EncryptionAlgorithm::AesGcm256 => Aes256Gcm::new(key.into()).encrypt(nonce.into(), payload),
        EncryptionAlgorithm::ChaCha20Poly1305 => {
            ChaCha20Poly1305::new(key.into()).encrypt(nonce.into(), payload)
        }
    };
    sealed.map_err(|_| EncryptionError::PlaintextTooLarge)
}

pub(crate) fn open(
    algorithm: EncryptionAlgorithm,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    let payload = Payload { msg: sealed, aad };
    let opened = match algorithm {
        EncryptionAlgorithm::AesGcm256 => Aes256Gcm::new(key.into()).decrypt(nonce.into(), payload),
        EncryptionAlgorithm::ChaCha20Poly1305 => {
            ChaCha20Poly1305::new(key.into()).decrypt(nonce.into(), payload)
        }
    };
    opened.map_err(|_| EncryptionError::AuthenticationFailed)
}
