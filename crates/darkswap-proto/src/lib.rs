//! DarkSwap wire types and codec.
//!
//! This crate is sans-IO: it turns bytes into typed, validated messages and
//! back, and never touches a socket, a clock or a runtime. Time is passed in
//! (unix seconds) wherever a rule depends on it.
//!
//! - [`encode`] / [`decode`]: every message travels in one versioned
//!   [`Envelope`]; the size limit is checked before any decoding.
//! - [`Message`]: the payload enum, one variant per message type of the
//!   protocol (control, orderbook, trade, PSBT).
//! - [`NewOrder::sign`] / [`SignedOrder::verify`]: orders, cancels and updates
//!   are signed by the maker's libp2p identity key; verification rejects any
//!   tampered field.
//! - [`batch_messages`] / [`unbatch_messages`] and [`Priority`].
//! - [`signaling`]: the JSON messages of the WebSocket signaling plane.
//!
//! ```
//! use darkswap_proto::{decode, encode, Message, Ping};
//!
//! let msg = Message::Ping(Ping { nonce: 7, timestamp_ms: 1_700_000_000_000 });
//! let bytes = encode(&msg);
//! assert_eq!(decode(&bytes).unwrap(), msg);
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod asset;
mod batch;
mod codec;
mod order;
pub mod relay_auth;
pub mod signaling;
mod signing;
mod trade;

/// Types generated from `proto/darkswap/v1/messages.proto`. Their docs are
/// the schema's comments, which are not rustdoc (`"rune:<block>:<tx>"` reads
/// as HTML there).
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::doc_markdown,
    rustdoc::invalid_html_tags
)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/darkswap.v1.rs"));
}

pub use asset::{Asset, AssetError};
pub use batch::{
    MAX_BATCH_LEN, Priority, batch_messages, decode_batch, encode_batch, unbatch_messages,
};
pub use codec::{
    DecodeError, MAX_MESSAGE_SIZE, PROTOCOL_VERSION, decode, decode_with_limit, encode,
};
pub use order::{
    Announced, Cancel, MAX_AMOUNT, MAX_CLOCK_SKEW_SECS, NewOrder, Order, OrderError, OrderId,
    PRICE_SCALE, Side, Update, UpdateFields,
};
pub use pb::envelope::Payload as Message;
pub use pb::trade_message_body::Payload as TradePayload;
pub use pb::{
    AssetHolding, BatchedMessage, CancelBody, Disconnect, Envelope, OrderBody, OrderCancel,
    OrderCreate, OrderUpdate, OrderbookFetch, OrderbookReconcile, OrderbookRequest,
    OrderbookResponse, Ping, Pong, PsbtBroadcast, PsbtCreate, PsbtFinalize, PsbtSign, PsbtUpdate,
    SignedOrder, SignedTradeMessage, TradeAccept, TradeCancel, TradeInput, TradeMessageBody,
    TradeOffer, TradePropose, TradeReject, TradeSignature, UpdateBody,
};
pub use signing::{BatchError, SignatureBatch};
pub use trade::{TradeMessageError, VerifiedTradeMessage};

/// The libp2p identity types orders are signed with, re-exported so users of
/// this crate need no direct dependency on `libp2p-identity`.
pub mod identity {
    pub use libp2p_identity::{Keypair, PeerId, PublicKey};
}
