use prost::Message as _;

use crate::pb::{Envelope, envelope::Payload as Message};

/// Wire format version written into every [`Envelope`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest encoded envelope (or batch) [`decode`] accepts: 1 MiB.
///
/// Large enough for an orderbook snapshot page or a PSBT with many inputs,
/// small enough that a hostile peer cannot make us allocate much.
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Why bytes could not be turned into a [`Message`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the limit; it was not parsed at all.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The bytes are not a valid protobuf encoding of the expected type.
    #[error("malformed message: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The envelope carries a version this implementation does not speak.
    #[error("unsupported wire format version {0} (this node speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u32),
    /// The envelope decoded but carries no payload (or one this version does not know).
    #[error("envelope carries no known payload")]
    MissingPayload,
    /// A batch holds more messages than allowed.
    #[error("batch of {len} messages exceeds the limit of {max}")]
    BatchTooLong {
        /// Messages in the batch.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Encodes `message` in a version-[`PROTOCOL_VERSION`] envelope.
pub fn encode(message: &Message) -> Vec<u8> {
    Envelope::wrap(message.clone()).encode_to_vec()
}

/// Decodes an envelope, refusing inputs over [`MAX_MESSAGE_SIZE`].
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_with_limit(bytes, MAX_MESSAGE_SIZE)
}

/// Decodes an envelope, refusing inputs over `max` bytes before parsing them.
pub fn decode_with_limit(bytes: &[u8], max: usize) -> Result<Message, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    Envelope::decode(bytes)?.into_message()
}

impl Envelope {
    /// Wraps `message` in an envelope of the current version.
    pub fn wrap(message: Message) -> Self {
        Envelope {
            version: PROTOCOL_VERSION,
            payload: Some(message),
        }
    }

    /// Checks the version and returns the payload.
    pub fn into_message(self) -> Result<Message, DecodeError> {
        if self.version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(self.version));
        }
        self.payload.ok_or(DecodeError::MissingPayload)
    }
}

impl Message {
    /// Short stable name of the message type, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::Disconnect(_) => "disconnect",
            Message::OrderCreate(_) => "order_create",
            Message::OrderCancel(_) => "order_cancel",
            Message::OrderUpdate(_) => "order_update",
            Message::OrderbookRequest(_) => "orderbook_request",
            Message::OrderbookResponse(_) => "orderbook_response",
            Message::OrderbookReconcile(_) => "orderbook_reconcile",
            Message::OrderbookFetch(_) => "orderbook_fetch",
            Message::TradePropose(_) => "trade_propose",
            Message::TradeAccept(_) => "trade_accept",
            Message::TradeReject(_) => "trade_reject",
            Message::TradeCancel(_) => "trade_cancel",
            Message::TradeSignature(_) => "trade_signature",
            Message::SignedTrade(_) => "signed_trade",
            Message::PsbtCreate(_) => "psbt_create",
            Message::PsbtUpdate(_) => "psbt_update",
            Message::PsbtSign(_) => "psbt_sign",
            Message::PsbtFinalize(_) => "psbt_finalize",
            Message::PsbtBroadcast(_) => "psbt_broadcast",
        }
    }

    /// Whether this is an orderbook message (create, cancel, update, sync).
    pub fn is_orderbook(&self) -> bool {
        matches!(
            self,
            Message::OrderCreate(_)
                | Message::OrderCancel(_)
                | Message::OrderUpdate(_)
                | Message::OrderbookRequest(_)
                | Message::OrderbookResponse(_)
                | Message::OrderbookReconcile(_)
                | Message::OrderbookFetch(_)
        )
    }

    /// Whether this is a trade negotiation or PSBT exchange message.
    pub fn is_trade(&self) -> bool {
        matches!(
            self,
            Message::TradePropose(_)
                | Message::TradeAccept(_)
                | Message::TradeReject(_)
                | Message::TradeCancel(_)
                | Message::TradeSignature(_)
                | Message::SignedTrade(_)
                | Message::PsbtCreate(_)
                | Message::PsbtUpdate(_)
                | Message::PsbtSign(_)
                | Message::PsbtFinalize(_)
                | Message::PsbtBroadcast(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Disconnect, Ping};

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = encode(&Message::Disconnect(Disconnect {
            reason: "x".repeat(2000),
            sent_at: 0,
        }));
        match decode_with_limit(&big, 1000) {
            Err(DecodeError::TooLarge { size, max }) => {
                assert_eq!(size, big.len());
                assert_eq!(max, 1000);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(decode_with_limit(&big, big.len()).is_ok());
    }

    #[test]
    fn default_limit_applies() {
        let junk = vec![0u8; MAX_MESSAGE_SIZE + 1];
        assert!(matches!(decode(&junk), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn wrong_version_is_refused() {
        let env = Envelope {
            version: 2,
            payload: Some(Message::Ping(Ping::default())),
        };
        assert!(matches!(
            decode(&env.encode_to_vec()),
            Err(DecodeError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn empty_envelope_is_refused() {
        let env = Envelope {
            version: PROTOCOL_VERSION,
            payload: None,
        };
        assert!(matches!(
            decode(&env.encode_to_vec()),
            Err(DecodeError::MissingPayload)
        ));
        // Zero bytes decode to a default envelope: version 0.
        assert!(matches!(
            decode(&[]),
            Err(DecodeError::UnsupportedVersion(0))
        ));
    }

    #[test]
    fn malformed_bytes_are_a_typed_error() {
        for junk in [
            &[0xff_u8, 0xff, 0xff][..],
            &[0x0a, 0x80],
            &[0x52, 0x05, 0x08],
        ] {
            assert!(
                matches!(decode(junk), Err(DecodeError::Malformed(_))),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn golden_ping_encoding_is_stable() {
        // Field 1 (version=1), field 10 (ping { nonce: 1, timestamp_ms: 2 }).
        let bytes = encode(&Message::Ping(Ping {
            nonce: 1,
            timestamp_ms: 2,
        }));
        assert_eq!(hex::encode(&bytes), "0801520408011002");
    }
}
