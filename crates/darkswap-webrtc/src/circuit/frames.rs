//! The frames of a relayed circuit, sans IO (`docs/signaling.md`, Relayed
//! circuits): each side's signed end-to-end key first, then only sealed
//! frames, whose plaintext is a kind byte and a payload. The same format as
//! `clients/js/src/circuit.js`, so a native peer and a page share circuits.

use darkswap_e2e::{EncryptionConfig, EncryptionManager, FRAME_OVERHEAD, SignedKey};
use libp2p_identity::{Keypair, PeerId};

use crate::{connection::DataMessage, error::WebRtcError};

/// Kinds inside a sealed frame.
const KIND_JSON: u8 = 0;
const KIND_BINARY: u8 = 1;
const KIND_PING: u8 = 2;
const KIND_PONG: u8 = 3;
/// Kinds on the wire.
const KIND_HANDSHAKE: u8 = 4;
const KIND_SEALED: u8 = 5;

/// `ws_relay.max_frame_size` default: the largest binary frame the relay forwards.
pub(crate) const MAX_RELAY_FRAME: usize = 256 * 1024;
/// Largest message a circuit carries: the relay's frame less the wire kind
/// byte, the encryption overhead and the inner kind byte.
pub const MAX_RELAYED_MESSAGE: usize = MAX_RELAY_FRAME - 1 - FRAME_OVERHEAD - 1;

/// What one frame from the peer meant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// The peer's key verified: the circuit carries the connection now.
    Opened,
    /// A message for the application.
    Message(DataMessage),
    /// A ping: send this pong back.
    Reply(Vec<u8>),
    /// A pong, or a kind this version does not know (ignored, as the browser
    /// client ignores them).
    Nothing,
}

/// End-to-end state of one circuit: who the peer is and, once its signed key
/// verified, the session keys.
pub(crate) struct CircuitFrames {
    e2e: EncryptionManager,
    peer: PeerId,
    open: bool,
}

impl CircuitFrames {
    /// A circuit with `peer`, whose messages we sign with `identity`.
    pub(crate) fn new(identity: Keypair, peer: PeerId) -> Result<Self, WebRtcError> {
        Ok(CircuitFrames {
            e2e: EncryptionManager::new(identity, EncryptionConfig::default())
                .map_err(|e| WebRtcError::Encryption(e.to_string()))?,
            peer,
            open: false,
        })
    }

    /// Our handshake frame: a fresh X25519 key signed for the peer.
    pub(crate) fn handshake(&self) -> Result<Vec<u8>, WebRtcError> {
        let signed = self
            .e2e
            .signed_ephemeral_key(&self.peer)
            .map_err(|e| WebRtcError::Encryption(e.to_string()))?;
        Ok(prefixed(KIND_HANDSHAKE, &signed.to_bytes()))
    }

    /// One application message as a sealed frame.
    pub(crate) fn seal(&self, message: &DataMessage) -> Result<Vec<u8>, WebRtcError> {
        let (kind, body) = match message {
            DataMessage::Text(t) => (KIND_JSON, t.as_bytes()),
            DataMessage::Binary(b) => (KIND_BINARY, b.as_slice()),
        };
        if body.len() > MAX_RELAYED_MESSAGE {
            return Err(WebRtcError::TooLarge {
                size: body.len(),
                max: MAX_RELAYED_MESSAGE,
            });
        }
        self.seal_inner(kind, body)
    }

    /// A ping carrying `nonce`, sealed.
    pub(crate) fn ping(&self, nonce: [u8; 8]) -> Result<Vec<u8>, WebRtcError> {
        self.seal_inner(KIND_PING, &nonce)
    }

    fn seal_inner(&self, kind: u8, body: &[u8]) -> Result<Vec<u8>, WebRtcError> {
        if !self.open {
            return Err(WebRtcError::Closed);
        }
        let sealed = self
            .e2e
            .encrypt(&self.peer, &prefixed(kind, body))
            .map_err(|e| WebRtcError::Encryption(e.to_string()))?;
        Ok(prefixed(KIND_SEALED, &sealed))
    }

    /// One binary frame from the circuit. An error means the peer, or the
    /// relay between us, broke the protocol: the connection must close.
    pub(crate) fn on_frame(&mut self, frame: &[u8]) -> Result<Inbound, WebRtcError> {
        let Some((&kind, body)) = frame.split_first() else {
            return Ok(Inbound::Nothing);
        };
        let broken = |what: String| Err(WebRtcError::Encryption(what));
        if !self.open {
            if kind != KIND_HANDSHAKE {
                return broken(format!("frame kind {kind} before the handshake"));
            }
            let signed =
                SignedKey::from_bytes(body).map_err(|e| WebRtcError::Encryption(e.to_string()))?;
            self.e2e
                .accept_signed_key(&self.peer, &signed)
                .map_err(|e| WebRtcError::Encryption(e.to_string()))?;
            self.open = true;
            return Ok(Inbound::Opened);
        }
        if kind != KIND_SEALED {
            return broken(format!("unencrypted frame of kind {kind}"));
        }
        let plain = self
            .e2e
            .decrypt(&self.peer, body)
            .map_err(|e| WebRtcError::Encryption(e.to_string()))?;
        let Some((&inner, payload)) = plain.split_first() else {
            return Ok(Inbound::Nothing);
        };
        Ok(match inner {
            KIND_JSON => match String::from_utf8(payload.to_vec()) {
                Ok(text) => Inbound::Message(DataMessage::Text(text)),
                Err(_) => return broken("a text frame that is not UTF-8".to_owned()),
            },
            KIND_BINARY => Inbound::Message(DataMessage::Binary(payload.to_vec())),
            KIND_PING => {
                let nonce = &payload[..payload.len().min(8)];
                Inbound::Reply(self.seal_inner(KIND_PONG, nonce)?)
            }
            _ => Inbound::Nothing,
        })
    }
}

fn prefixed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (CircuitFrames, CircuitFrames) {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (a_id, b_id) = (a.public().to_peer_id(), b.public().to_peer_id());
        (
            CircuitFrames::new(a, b_id).unwrap(),
            CircuitFrames::new(b, a_id).unwrap(),
        )
    }

    fn open(a: &mut CircuitFrames, b: &mut CircuitFrames) {
        let (ha, hb) = (a.handshake().unwrap(), b.handshake().unwrap());
        assert_eq!(ha.len(), 131, "kind byte + the 130-byte signed key");
        assert_eq!(b.on_frame(&ha).unwrap(), Inbound::Opened);
        assert_eq!(a.on_frame(&hb).unwrap(), Inbound::Opened);
    }

    #[test]
    fn messages_cross_sealed_and_pings_are_answered() {
        let (mut a, mut b) = pair();
        assert_eq!(
            a.seal(&DataMessage::Text("x".into())),
            Err(WebRtcError::Closed)
        );
        open(&mut a, &mut b);
        let text = DataMessage::Text(r#"{"type":"chat","text":"secret"}"#.into());
        let frame = a.seal(&text).unwrap();
        assert_eq!(frame[0], KIND_SEALED);
        assert_eq!(frame.len(), 1 + FRAME_OVERHEAD + 1 + 31);
        assert!(!frame.windows(6).any(|w| w == b"secret"));
        assert_eq!(b.on_frame(&frame).unwrap(), Inbound::Message(text));
        let bytes = DataMessage::Binary(vec![7; 300]);
        assert_eq!(
            a.on_frame(&b.seal(&bytes).unwrap()).unwrap(),
            Inbound::Message(bytes)
        );
        let Inbound::Reply(pong) = b.on_frame(&a.ping([9; 8]).unwrap()).unwrap() else {
            panic!("a ping is answered");
        };
        assert_eq!(a.on_frame(&pong).unwrap(), Inbound::Nothing);
    }

    #[test]
    fn a_broken_circuit_is_an_error_never_a_message() {
        let (mut a, mut b) = pair();
        // Anything but a handshake first.
        assert!(b.on_frame(&[KIND_SEALED, 1, 2, 3]).is_err());
        // A key signed by someone else for b.
        let forged = CircuitFrames::new(Keypair::generate_ed25519(), b.peer)
            .unwrap()
            .handshake()
            .unwrap();
        assert!(b.on_frame(&forged).is_err());
        open(&mut a, &mut b);
        let frame = a.seal(&DataMessage::Binary(vec![1; 32])).unwrap();
        // Unencrypted, altered, replayed.
        assert!(b.on_frame(&[KIND_BINARY, 1, 2]).is_err());
        let mut altered = frame.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(b.on_frame(&altered).is_err());
        assert!(b.on_frame(&frame).is_ok());
        assert!(b.on_frame(&frame).is_err());
        // Over the size the relay forwards: refused before sending.
        assert!(matches!(
            a.seal(&DataMessage::Binary(vec![0; MAX_RELAYED_MESSAGE + 1])),
            Err(WebRtcError::TooLarge { .. })
        ));
        assert!(
            a.seal(&DataMessage::Binary(vec![0; MAX_RELAYED_MESSAGE]))
                .unwrap()
                .len()
                <= MAX_RELAY_FRAME
        );
    }
}
