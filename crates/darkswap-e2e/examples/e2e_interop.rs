//! Drives one `EncryptionManager` session over JSON lines, so that another
//! implementation of the scheme (the browser's `darkswap-e2e.js`) can be
//! tested against this one (`clients/js/test/e2e-interop.test.mjs`).
//!
//! Prints `{"type":"ready","peer_id":"12D3KooW..."}`, then answers each line
//! on stdin with one line on stdout, `{"ok":true,...}` or
//! `{"ok":false,"error":"<code>","message":"..."}`. Binary values are base64.
//!
//! ```text
//! {"cmd":"handshake","peer":"<peer id>","key":"<its signed key>"} -> {"ok":true,"key":"<ours>"}
//! {"cmd":"encrypt","data":"<plaintext>"}                         -> {"ok":true,"frame":"<frame>"}
//! {"cmd":"decrypt","frame":"<frame>"}                            -> {"ok":true,"data":"<plaintext>"}
//! {"cmd":"rotate"}                                               -> {"ok":true}
//! ```
//!
//! Exits when stdin closes.

use std::io::{BufRead, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use darkswap_e2e::{EncryptionConfig, EncryptionError, EncryptionManager, SignedKey};
use darkswap_e2e::{Keypair, PeerId};
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let manager = EncryptionManager::new(Keypair::generate_ed25519(), EncryptionConfig::default())?;
    let mut peer: Option<PeerId> = None;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({"type": "ready", "peer_id": manager.local_peer_id().to_string()})
    )?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let reply = match handle(&manager, &mut peer, &line) {
            Ok(reply) => reply,
            Err(Failure::Encryption(error)) => {
                json!({"ok": false, "error": code(&error), "message": error.to_string()})
            }
            Err(Failure::Request(message)) => {
                json!({"ok": false, "error": "bad_request", "message": message})
            }
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

enum Failure {
    Encryption(EncryptionError),
    Request(String),
}

impl From<EncryptionError> for Failure {
    fn from(error: EncryptionError) -> Self {
        Self::Encryption(error)
    }
}

fn handle(
    manager: &EncryptionManager,
    peer: &mut Option<PeerId>,
    line: &str,
) -> Result<Value, Failure> {
    let request: Value = serde_json::from_str(line).map_err(|e| Failure::Request(e.to_string()))?;
    let field = |name: &str| -> Result<Vec<u8>, Failure> {
        let text = request[name]
            .as_str()
            .ok_or_else(|| Failure::Request(format!("missing {name}")))?;
        BASE64
            .decode(text)
            .map_err(|e| Failure::Request(format!("{name}: {e}")))
    };
    let current = || peer.ok_or_else(|| Failure::Request("no handshake yet".into()));
    match request["cmd"].as_str() {
        Some("handshake") => {
            let remote: PeerId = request["peer"]
                .as_str()
                .ok_or_else(|| Failure::Request("missing peer".into()))?
                .parse()
                .map_err(|e| Failure::Request(format!("peer: {e}")))?;
            let theirs = SignedKey::from_bytes(&field("key")?)?;
            let ours = manager.signed_ephemeral_key(&remote)?;
            manager.accept_signed_key(&remote, &theirs)?;
            *peer = Some(remote);
            Ok(json!({"ok": true, "key": BASE64.encode(ours.to_bytes())}))
        }
        Some("encrypt") => {
            let frame = manager.encrypt(&current()?, &field("data")?)?;
            Ok(json!({"ok": true, "frame": BASE64.encode(frame)}))
        }
        Some("decrypt") => {
            let data = manager.decrypt(&current()?, &field("frame")?)?;
            Ok(json!({"ok": true, "data": BASE64.encode(data)}))
        }
        Some("rotate") => {
            manager.rotate_keys()?;
            Ok(json!({"ok": true}))
        }
        other => Err(Failure::Request(format!("unknown cmd {other:?}"))),
    }
}

/// The JS module's error code for the same failure.
fn code(error: &EncryptionError) -> &'static str {
    match error {
        EncryptionError::BadSignature { .. } => "e2e_bad_signature",
        EncryptionError::AuthenticationFailed => "e2e_authentication_failed",
        EncryptionError::Replay { .. } => "e2e_replay",
        EncryptionError::TooOld { .. } => "e2e_too_old",
        EncryptionError::UnknownEpoch { .. } => "e2e_unknown_epoch",
        EncryptionError::EpochTooFarAhead { .. } => "e2e_epoch_too_far_ahead",
        EncryptionError::AlgorithmMismatch { .. } => "e2e_algorithm_mismatch",
        EncryptionError::UnsupportedVersion(_) => "e2e_unsupported_version",
        EncryptionError::MalformedFrame(_) | EncryptionError::MalformedKey(_) => "e2e_malformed",
        EncryptionError::WeakPublicKey => "e2e_weak_key",
        EncryptionError::PeerKeyNotEmbedded { .. } => "e2e_unsupported_peer_id",
        _ => "e2e_error",
    }
}
