//! Which gossip messages a node accepts, and what it does with them: the
//! policy behind gossipsub's validation callback.
//!
//! [`verify_gossip`] decodes and checks one payload against its topic's
//! rules; [`GossipValidator`] turns that into a [`Verdict`]: whether
//! gossipsub accepts (and forwards), rejects (and scores the forwarder down)
//! or ignores it, what the node reports, and the penalty the forwarder pays.
//! Orderbook messages are applied to the book in the same step, so a cancel
//! by someone other than the maker is never forwarded. Before any of that,
//! [`GossipRateLimiter`] bounds how many messages each peer may hand us.

use darkswap_proto::{DecodeError, Disconnect, Message, OrderError, decode_with_limit};

use crate::{
    PeerId,
    event::NetworkEvent,
    orderbook::{Orderbook, OrderbookError, VerifiedOrderMessage},
    protocols::{ORDERBOOK_TOPIC, TRADE_TOPIC},
    reputation::{PenaltyReason, orderbook_penalty, validation_penalty},
};

mod rate_limit;
pub use rate_limit::{GossipRateLimit, GossipRateLimiter, PENALTY_INTERVAL, RateDecision};
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

/// A gossip payload that passed [`verify_gossip`]: the message, and for
/// an order message the verified parts the orderbook needs.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedGossip {
    message: Message,
    order: Option<VerifiedOrderMessage>,
}

impl VerifiedGossip {
    /// The decoded message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The verified order message, for creates, cancels and updates.
    pub fn order(&self) -> Option<&VerifiedOrderMessage> {
        self.order.as_ref()
    }

    /// The decoded message.
    pub fn into_message(self) -> Message {
        self.message
    }
}

/// Decodes a gossip payload and checks it against the topic's rules.
///
/// - `darkswap/orderbook/v1` carries only order creates, cancels and updates,
///   each with a valid maker signature, valid terms, and not expired at `now`,
///   and the `Disconnect` of a node that leaves (its author is the one
///   gossipsub's signature authenticates).
/// - `darkswap/trade/v1` carries only makers' fill notices: order updates
///   and cancels, verified and applied like those of the orderbook topic.
///   Trade and PSBT messages never travel on gossip.
/// - Other topics carry any well-formed message; signed parts are still verified.
pub fn verify_gossip(
    topic: &str,
    data: &[u8],
    max_size: usize,
    now: u64,
) -> Result<VerifiedGossip, ValidationError> {
    let message = decode_with_limit(data, max_size)?;
    let allowed = match topic {
        ORDERBOOK_TOPIC => matches!(
            message,
            Message::OrderCreate(_)
                | Message::OrderCancel(_)
                | Message::OrderUpdate(_)
                | Message::Disconnect(_)
        ),
        // Trade steps travel only on `/darkswap/trade/1.0.0`, between the
        // two parties; everyone needs only the maker's fill notices: an
        // update with what remains, or a cancel once nothing does.
        TRADE_TOPIC => matches!(message, Message::OrderUpdate(_) | Message::OrderCancel(_)),
        _ => true,
    };
    if !allowed {
        return Err(ValidationError::WrongTopic {
            kind: message.kind(),
            topic: topic.to_owned(),
        });
    }
    let order = verify_signed_parts(&message, now)?;
    Ok(VerifiedGossip { message, order })
}

/// [`verify_gossip`], for callers that only need the message (a relay that
/// forwards without keeping a book, a node checking what it publishes).
pub fn validate_gossip(
    topic: &str,
    data: &[u8],
    max_size: usize,
    now: u64,
) -> Result<Message, ValidationError> {
    verify_gossip(topic, data, max_size, now).map(VerifiedGossip::into_message)
}

/// Verifies every signed part a message carries and its times at `now`;
/// returns the verified order message for creates, cancels and updates.
pub fn verify_signed_parts(
    message: &Message,
    now: u64,
) -> Result<Option<VerifiedOrderMessage>, ValidationError> {
    let kind = message.kind();
    let verified = match VerifiedOrderMessage::verify(message) {
        Ok(verified) => verified,
        Err(OrderbookError::NotAnOrderMessage) => {
            return match message {
                Message::OrderCreate(_) => Err(ValidationError::MissingOrder),
                _ => Ok(None),
            };
        }
        Err(OrderbookError::Invalid(error)) => return Err(ValidationError::Order { kind, error }),
        Err(other) => {
            return Err(ValidationError::Order {
                kind,
                error: OrderError::MalformedBody(other.to_string()),
            });
        }
    };
    verified
        .check_time(now)
        .map_err(|error| ValidationError::Order { kind, error })?;
    Ok(Some(verified))
}

/// What gossipsub is told about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid: deliver and forward it.
    Accept,
    /// Invalid: drop it and score the forwarder down in gossipsub.
    Reject,
    /// Valid but of no use (late, stale): drop it without scoring.
    Ignore,
}

/// One gossip message as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct GossipMessage<'a> {
    /// The topic it was published on.
    pub topic: &'a str,
    /// The payload.
    pub data: &'a [u8],
    /// Its author, as gossipsub's signature authenticates it.
    pub author: Option<PeerId>,
    /// The peer that forwarded it to us. It answers for what it forwards:
    /// honest nodes validate before forwarding.
    pub forwarder: PeerId,
}

/// What to do with one gossip message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What gossipsub is told.
    pub acceptance: Acceptance,
    /// What the node reports, in order: the message
    /// ([`NetworkEvent::MessageReceived`]) or why it was refused
    /// ([`NetworkEvent::InvalidMessage`], [`NetworkEvent::OrderbookRejected`]),
    /// then the change it made to the book, if any.
    pub events: Vec<NetworkEvent>,
    /// What the forwarder pays, if anything.
    pub penalty: Option<PenaltyReason>,
    /// A node that said it leaves the network: close the connection to it
    /// (that tells it it was heard; see [`DISCONNECT_MAX_AGE_SECS`]).
    pub departed: Option<PeerId>,
}

/// A `Disconnect` older than this (by its `sent_at`) is ignored: gossipsub
/// forgets message ids after a few minutes, and a replayed departure must
/// not hide a maker that came back.
pub const DISCONNECT_MAX_AGE_SECS: u64 = 60;

/// Judges gossip messages: validation against the topic, then the
/// orderbook's rules for order messages. Stateless apart from its limit;
/// the book it applies to is passed in.
#[derive(Debug, Clone)]
pub struct GossipValidator {
    max_message_size: usize,
}

impl GossipValidator {
    /// A validator refusing payloads over `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        GossipValidator { max_message_size }
    }

    /// The verdict on `message` received at `now` (unix seconds); an
    /// orderbook message that passes is applied to `book`.
    pub fn handle_message(
        &self,
        book: &mut Orderbook,
        message: GossipMessage<'_>,
        now: u64,
    ) -> Verdict {
        let GossipMessage {
            topic,
            data,
            author,
            forwarder,
        } = message;
        let verified = match verify_gossip(topic, data, self.max_message_size, now) {
            Ok(verified) => verified,
            Err(error) => {
                return Verdict {
                    acceptance: Acceptance::Reject,
                    departed: None,
                    penalty: validation_penalty(&error),
                    events: vec![NetworkEvent::InvalidMessage {
                        peer_id: forwarder,
                        topic: topic.to_owned(),
                        error,
                    }],
                };
            }
        };
        if let (ORDERBOOK_TOPIC, Message::Disconnect(d), Some(author)) =
            (topic, verified.message(), author)
        {
            return departure(book, author, d, now, verified.message().clone());
        }
        let applied = match (topic, &verified.order) {
            (ORDERBOOK_TOPIC | TRADE_TOPIC, Some(order)) => book.apply_verified(order, now),
            _ => Ok(None),
        };
        match applied {
            Ok(change) => {
                let mut events = vec![NetworkEvent::MessageReceived {
                    // Strict validation guarantees a signed source.
                    peer_id: author.unwrap_or(forwarder),
                    topic: topic.to_owned(),
                    message: verified.into_message(),
                }];
                events.extend(change.map(NetworkEvent::OrderbookChanged));
                Verdict {
                    acceptance: Acceptance::Accept,
                    events,
                    penalty: None,
                    departed: None,
                }
            }
            Err(error) => Verdict {
                // A cancel by a non-maker is an attack; a stale update or a
                // late create can happen honestly.
                acceptance: match error {
                    OrderbookError::NotMaker | OrderbookError::Invalid(_) => Acceptance::Reject,
                    _ => Acceptance::Ignore,
                },
                penalty: orderbook_penalty(&error),
                departed: None,
                events: vec![NetworkEvent::OrderbookRejected {
                    peer_id: forwarder,
                    error,
                }],
            },
        }
    }
}

/// Whether a `Disconnect` received at `now` (unix seconds) is to be acted
/// on: at most [`DISCONNECT_MAX_AGE_SECS`] old, and not from further ahead
/// than clocks drift.
pub fn is_fresh_departure(disconnect: &Disconnect, now: u64) -> bool {
    disconnect.sent_at.saturating_add(DISCONNECT_MAX_AGE_SECS) >= now
        && disconnect.sent_at <= now.saturating_add(darkswap_proto::MAX_CLOCK_SKEW_SECS)
}

/// The verdict on `author`'s `Disconnect`: its orders leave the book. One
/// too old (a replay) or from too far ahead is ignored without a penalty:
/// clocks drift.
fn departure(
    book: &mut Orderbook,
    author: PeerId,
    disconnect: &Disconnect,
    now: u64,
    message: Message,
) -> Verdict {
    if !is_fresh_departure(disconnect, now) {
        return Verdict {
            acceptance: Acceptance::Ignore,
            events: Vec::new(),
            penalty: None,
            departed: None,
        };
    }
    let mut events = vec![NetworkEvent::MessageReceived {
        peer_id: author,
        topic: ORDERBOOK_TOPIC.to_owned(),
        message,
    }];
    events.extend(
        book.maker_left(author, disconnect.sent_at, now)
            .map(NetworkEvent::OrderbookChanged),
    );
    Verdict {
        acceptance: Acceptance::Accept,
        events,
        penalty: None,
        departed: Some(author),
    }
}

#[cfg(test)]
mod tests;
