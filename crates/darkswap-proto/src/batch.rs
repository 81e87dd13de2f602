use prost::Message as _;

use crate::{
    codec::DecodeError,
    pb::{BatchedMessage, Envelope, envelope::Payload as Message},
};

/// Most messages one [`BatchedMessage`] may carry.
pub const MAX_BATCH_LEN: usize = 1024;

/// How urgently a message should be sent (seed 002's message prioritization).
///
/// Ordered: `Low < Medium < High`, so a max-queue sends `High` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Liveness and discovery chatter: ping, pong, disconnect notices.
    Low,
    /// Order creation and updates, orderbook sync.
    Medium,
    /// Trade negotiation, PSBT exchange and order cancels: a late cancel
    /// lets someone take an order the maker no longer wants.
    High,
}

impl Message {
    /// The priority class of this message.
    pub fn priority(&self) -> Priority {
        if self.is_trade() || matches!(self, Message::OrderCancel(_)) {
            Priority::High
        } else if self.is_orderbook() {
            Priority::Medium
        } else {
            Priority::Low
        }
    }
}

/// Puts several messages into one frame, keeping their order.
///
/// Order is kept rather than sorted by priority: a create followed by a
/// cancel of the same order must arrive in that order.
pub fn batch_messages(messages: Vec<Message>) -> BatchedMessage {
    BatchedMessage {
        messages: messages.into_iter().map(Envelope::wrap).collect(),
    }
}

/// Takes the messages out of a batch, refusing it whole if any envelope is
/// invalid or the batch is longer than [`MAX_BATCH_LEN`].
pub fn unbatch_messages(batched: BatchedMessage) -> Result<Vec<Message>, DecodeError> {
    if batched.messages.len() > MAX_BATCH_LEN {
        return Err(DecodeError::BatchTooLong {
            len: batched.messages.len(),
            max: MAX_BATCH_LEN,
        });
    }
    batched
        .messages
        .into_iter()
        .map(Envelope::into_message)
        .collect()
}

/// Encodes a batch.
pub fn encode_batch(batched: &BatchedMessage) -> Vec<u8> {
    batched.encode_to_vec()
}

/// Decodes and unbatches a frame, refusing inputs over `max` bytes before parsing.
pub fn decode_batch(bytes: &[u8], max: usize) -> Result<Vec<Message>, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    unbatch_messages(BatchedMessage::decode(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_MESSAGE_SIZE, OrderCancel, OrderCreate, Ping, TradeAccept};

    #[test]
    fn priorities_follow_the_seed() {
        assert_eq!(
            Message::TradeAccept(TradeAccept::default()).priority(),
            Priority::High
        );
        assert_eq!(
            Message::OrderCancel(OrderCancel::default()).priority(),
            Priority::High
        );
        assert_eq!(
            Message::OrderCreate(OrderCreate::default()).priority(),
            Priority::Medium
        );
        assert_eq!(Message::Ping(Ping::default()).priority(), Priority::Low);
        assert!(Priority::High > Priority::Medium && Priority::Medium > Priority::Low);
    }

    #[test]
    fn batch_keeps_order_and_round_trips() {
        let msgs: Vec<Message> = (0..10)
            .map(|n| {
                Message::Ping(Ping {
                    nonce: n,
                    timestamp_ms: n * 2,
                })
            })
            .collect();
        let bytes = encode_batch(&batch_messages(msgs.clone()));
        assert_eq!(decode_batch(&bytes, MAX_MESSAGE_SIZE).unwrap(), msgs);
    }

    #[test]
    fn batch_limits_are_enforced() {
        let msgs = vec![Message::Ping(Ping::default()); MAX_BATCH_LEN + 1];
        let bytes = encode_batch(&batch_messages(msgs));
        assert!(matches!(
            decode_batch(&bytes, MAX_MESSAGE_SIZE),
            Err(DecodeError::BatchTooLong { .. })
        ));
        assert!(matches!(
            decode_batch(&bytes, 10),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn one_bad_envelope_refuses_the_batch() {
        let mut batch = batch_messages(vec![Message::Ping(Ping::default())]);
        batch.messages.push(Envelope {
            version: 9,
            payload: None,
        });
        assert!(matches!(
            unbatch_messages(batch),
            Err(DecodeError::UnsupportedVersion(9))
        ));
    }
}
