//! Which gossip messages a node accepts: the policy behind gossipsub's
//! validation callback. Pure functions, time passed in.

use darkswap_proto::{DecodeError, Message, OrderCreate, OrderError, decode_with_limit};

use crate::{ORDERBOOK_TOPIC, TRADE_TOPIC};

/// Why a gossip message was rejected. The sender is scored down for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Not a well-formed DarkSwap envelope.
    #[error("undecodable: {0}")]
    Decode(String),
    /// A message type that does not belong on this topic.
    #[error("{kind} is not allowed on topic {topic}")]
    WrongTopic {
        /// The message type.
        kind: &'static str,
        /// The topic it arrived on.
        topic: String,
    },
    /// An order create without its order.
    #[error("order_create carries no order")]
    MissingOrder,
    /// A signed order message that fails verification.
    #[error("invalid {kind}: {error}")]
    Order {
        /// The message type.
        kind: &'static str,
        /// What failed.
        error: OrderError,
    },
}

impl ValidationError {
    /// A short, stable label for metrics: `undecodable`, `wrong_topic`,
    /// `malformed`, or the [`OrderError::reason`] of a failed order check.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::Decode(_) => "undecodable",
            ValidationError::WrongTopic { .. } => "wrong_topic",
            ValidationError::MissingOrder => "malformed",
            ValidationError::Order { error, .. } => error.reason(),
        }
    }
}

impl From<DecodeError> for ValidationError {
    fn from(e: DecodeError) -> Self {
        ValidationError::Decode(e.to_string())
    }
}

/// Decodes a gossip payload and checks it against the topic's rules.
///
/// - `darkswap/orderbook/v1` carries only order creates, cancels and updates,
///   each with a valid maker signature, valid terms, and not expired at `now`.
/// - `darkswap/trade/v1` carries only trade and PSBT messages.
/// - Other topics carry any well-formed message; signed parts are still verified.
pub fn validate_gossip(
    topic: &str,
    data: &[u8],
    max_size: usize,
    now: u64,
) -> Result<Message, ValidationError> {
    let message = decode_with_limit(data, max_size)?;
    let allowed = match topic {
        ORDERBOOK_TOPIC => matches!(
            message,
            Message::OrderCreate(_) | Message::OrderCancel(_) | Message::OrderUpdate(_)
        ),
        TRADE_TOPIC => message.is_trade(),
        _ => true,
    };
    if !allowed {
        return Err(ValidationError::WrongTopic {
            kind: message.kind(),
            topic: topic.to_owned(),
        });
    }
    verify_signed_parts(&message, now)?;
    Ok(message)
}

/// Verifies every signed part a message carries.
pub fn verify_signed_parts(message: &Message, now: u64) -> Result<(), ValidationError> {
    let kind = message.kind();
    let wrap = |error| ValidationError::Order { kind, error };
    match message {
        Message::OrderCreate(OrderCreate { order: None, .. }) => Err(ValidationError::MissingOrder),
        Message::OrderCreate(create) => create
            .verify()
            .and_then(|a| a.check_time(now))
            .map_err(wrap),
        Message::OrderCancel(cancel) => cancel
            .verify()
            .and_then(|c| c.check_time(now))
            .map_err(wrap),
        Message::OrderUpdate(update) => update
            .verify()
            .and_then(|u| u.check_time(now))
            .map_err(wrap),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkswap_proto::{
        Asset, NewOrder, OrderCancel, PRICE_SCALE, Ping, Side, TradeAccept, encode,
        identity::Keypair,
    };

    const NOW: u64 = 1_800_000_000;

    fn order(key: &Keypair) -> Message {
        let signed = NewOrder {
            side: Side::Buy,
            base: Asset::Btc,
            quote: "rune:1:0".parse().unwrap(),
            amount: 10,
            price: PRICE_SCALE,
            created_at: NOW,
            expires_at: NOW + 60,
            nonce: 1,
        }
        .sign(key)
        .unwrap();
        Message::OrderCreate(OrderCreate::from_order(signed))
    }

    #[test]
    fn orderbook_topic_accepts_only_valid_signed_orders() {
        let key = Keypair::generate_ed25519();
        let msg = order(&key);
        assert_eq!(
            validate_gossip(ORDERBOOK_TOPIC, &encode(&msg), 1 << 20, NOW),
            Ok(msg.clone())
        );
        assert!(matches!(
            validate_gossip(ORDERBOOK_TOPIC, &encode(&msg), 1 << 20, NOW + 60),
            Err(ValidationError::Order {
                error: OrderError::Expired { .. },
                ..
            })
        ));
        let ping = Message::Ping(Ping::default());
        assert!(matches!(
            validate_gossip(ORDERBOOK_TOPIC, &encode(&ping), 1 << 20, NOW),
            Err(ValidationError::WrongTopic { kind: "ping", .. })
        ));
        let empty = Message::OrderCreate(OrderCreate::default());
        assert_eq!(
            validate_gossip(ORDERBOOK_TOPIC, &encode(&empty), 1 << 20, NOW),
            Err(ValidationError::MissingOrder)
        );
        let Message::OrderCreate(OrderCreate {
            order: Some(mut forged),
            ..
        }) = msg
        else {
            unreachable!()
        };
        forged.signature[3] ^= 0x40;
        let forged = Message::OrderCreate(OrderCreate::from_order(forged));
        assert!(matches!(
            validate_gossip(ORDERBOOK_TOPIC, &encode(&forged), 1 << 20, NOW),
            Err(ValidationError::Order {
                error: OrderError::BadSignature,
                ..
            })
        ));
    }

    #[test]
    fn cancels_are_verified_on_any_topic() {
        let key = Keypair::generate_ed25519();
        let mut cancel =
            OrderCancel::sign(darkswap_proto::OrderId::of_body(b"x"), NOW, &key).unwrap();
        let good = Message::OrderCancel(cancel.clone());
        assert!(validate_gossip(ORDERBOOK_TOPIC, &encode(&good), 1 << 20, NOW).is_ok());
        cancel.signature[0] ^= 1;
        let bad = Message::OrderCancel(cancel);
        assert!(validate_gossip("some/other/topic", &encode(&bad), 1 << 20, NOW).is_err());
    }

    #[test]
    fn trade_topic_and_garbage() {
        let accept = Message::TradeAccept(TradeAccept {
            trade_id: vec![1; 16],
        });
        assert!(validate_gossip(TRADE_TOPIC, &encode(&accept), 1 << 20, NOW).is_ok());
        let key = Keypair::generate_ed25519();
        assert!(matches!(
            validate_gossip(TRADE_TOPIC, &encode(&order(&key)), 1 << 20, NOW),
            Err(ValidationError::WrongTopic { .. })
        ));
        assert!(matches!(
            validate_gossip(TRADE_TOPIC, b"\xff\xff\xff", 1 << 20, NOW),
            Err(ValidationError::Decode(_))
        ));
        assert!(matches!(
            validate_gossip(TRADE_TOPIC, &encode(&accept), 3, NOW),
            Err(ValidationError::Decode(_))
        ));
    }
}
