use std::{fmt, str::FromStr};

use libp2p_identity::{Keypair, PeerId};
use sha2::{Digest, Sha256};

use crate::{
    asset::{Asset, AssetError},
    pb::{
        self, CancelBody, OrderBody, OrderCancel, OrderCreate, OrderUpdate, SignedOrder, UpdateBody,
    },
    signing::{self, Check, SignatureBatch},
};

/// Prices are quote smallest units per `PRICE_SCALE` base smallest units,
/// so a price keeps 8 decimal places without floats.
pub const PRICE_SCALE: u64 = 100_000_000;

/// Largest amount or price accepted: `i64::MAX`. A client that writes a
/// negative number as a signed integer puts a value above this on the wire,
/// so the range check is what refuses negative amounts.
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// How far in the future a timestamp may lie before it is refused (5 min).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

pub(crate) const ORDER_TAG: &[u8] = b"darkswap/order/v1";
pub(crate) const CANCEL_TAG: &[u8] = b"darkswap/order-cancel/v1";
pub(crate) const UPDATE_TAG: &[u8] = b"darkswap/order-update/v1";
const ANNOUNCE_TAG: &[u8] = b"darkswap/order-announce/v1";

/// Why an order, cancel or update is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// The signed body is not a valid encoding.
    #[error("malformed signed body: {0}")]
    MalformedBody(String),
    /// The maker field is not a peer id.
    #[error("maker is not a valid peer id")]
    InvalidMaker,
    /// The public key cannot be decoded.
    #[error("public key cannot be decoded")]
    InvalidPublicKey,
    /// The public key does not belong to the maker.
    #[error("public key does not belong to the maker")]
    MakerMismatch,
    /// The signature does not verify over the body.
    #[error("signature does not verify")]
    BadSignature,
    /// The local key could not sign.
    #[error("signing failed")]
    SigningFailed,
    /// An asset is not valid.
    #[error(transparent)]
    InvalidAsset(#[from] AssetError),
    /// Base and quote are the same asset.
    #[error("base and quote are the same asset")]
    SameAsset,
    /// The side is neither buy nor sell.
    #[error("order side is unspecified")]
    UnspecifiedSide,
    /// Amount is zero.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// Price is zero.
    #[error("price must be greater than zero")]
    ZeroPrice,
    /// Amount or price above [`MAX_AMOUNT`] (a negative number sent as a
    /// signed integer lands here).
    #[error("{field} {value} is out of range (negative, or above {MAX_AMOUNT})")]
    OutOfRange {
        /// `amount` or `price`.
        field: &'static str,
        /// The value received.
        value: u64,
    },
    /// `expires_at` is not after `created_at`.
    #[error("expiry must be after creation")]
    InvalidExpiry,
    /// The order expired.
    #[error("expired at {expires_at}, now {now}")]
    Expired {
        /// Expiry, unix seconds.
        expires_at: u64,
        /// The time checked against.
        now: u64,
    },
    /// A timestamp lies too far in the future.
    #[error("timestamp {timestamp} is in the future (now {now})")]
    FromTheFuture {
        /// The offending timestamp.
        timestamp: u64,
        /// The time checked against.
        now: u64,
    },
    /// An order id is not 32 bytes.
    #[error("order id must be 32 bytes")]
    InvalidOrderId,
}

impl OrderError {
    /// A short, stable label for the kind of failure, for metrics and logs:
    /// `malformed`, `bad_signature`, `invalid_asset`, `invalid_side`,
    /// `invalid_amount`, `invalid_price`, `invalid_expiry`, `expired`,
    /// `future_timestamp`, or `signing_failed` (local only).
    pub fn reason(&self) -> &'static str {
        match self {
            OrderError::MalformedBody(_) | OrderError::InvalidOrderId => "malformed",
            OrderError::InvalidMaker
            | OrderError::InvalidPublicKey
            | OrderError::MakerMismatch
            | OrderError::BadSignature => "bad_signature",
            OrderError::SigningFailed => "signing_failed",
            OrderError::InvalidAsset(_) | OrderError::SameAsset => "invalid_asset",
            OrderError::UnspecifiedSide => "invalid_side",
            OrderError::ZeroAmount => "invalid_amount",
            OrderError::ZeroPrice => "invalid_price",
            OrderError::OutOfRange { field, .. } if *field == "amount" => "invalid_amount",
            OrderError::OutOfRange { .. } => "invalid_price",
            OrderError::InvalidExpiry => "invalid_expiry",
            OrderError::Expired { .. } => "expired",
            OrderError::FromTheFuture { .. } => "future_timestamp",
        }
    }
}

/// The id of an order: SHA-256 of its signed body.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId([u8; 32]);

impl OrderId {
    /// The id of the order whose encoded body is `body`.
    pub fn of_body(body: &[u8]) -> Self {
        OrderId(Sha256::digest(body).into())
    }

    /// Parses an id from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OrderError> {
        bytes
            .try_into()
            .map(OrderId)
            .map_err(|_| OrderError::InvalidOrderId)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderId({self})")
    }
}

impl FromStr for OrderId {
    type Err = OrderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| OrderError::InvalidOrderId)?;
        Self::from_bytes(&bytes)
    }
}

/// Buy or sell the base asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Buy base, pay quote.
    Buy,
    /// Sell base, receive quote.
    Sell,
}

impl Side {
    fn to_wire(self) -> pb::Side {
        match self {
            Side::Buy => pb::Side::Buy,
            Side::Sell => pb::Side::Sell,
        }
    }

    fn from_wire(raw: i32) -> Result<Self, OrderError> {
        match pb::Side::try_from(raw) {
            Ok(pb::Side::Buy) => Ok(Side::Buy),
            Ok(pb::Side::Sell) => Ok(Side::Sell),
            _ => Err(OrderError::UnspecifiedSide),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        })
    }
}

impl FromStr for Side {
    type Err = OrderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            _ => Err(OrderError::UnspecifiedSide),
        }
    }
}

/// An order before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Buy or sell the base asset.
    pub side: Side,
    /// The asset bought or sold.
    pub base: Asset,
    /// The asset it is priced in.
    pub quote: Asset,
    /// Base amount, smallest unit.
    pub amount: u64,
    /// Quote smallest units per [`PRICE_SCALE`] base smallest units.
    pub price: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; must be after `created_at`.
    pub expires_at: u64,
    /// Distinguishes otherwise equal orders of one maker.
    pub nonce: u64,
}

impl NewOrder {
    /// Validates the order and signs it with the maker's identity key.
    pub fn sign(&self, keypair: &Keypair) -> Result<SignedOrder, OrderError> {
        check_terms(self.base, self.quote, self.amount, self.price)?;
        if self.expires_at <= self.created_at {
            return Err(OrderError::InvalidExpiry);
        }
        let body = OrderBody {
            maker: keypair.public().to_peer_id().to_bytes(),
            side: self.side.to_wire() as i32,
            base: self.base.to_string(),
            quote: self.quote.to_string(),
            amount: self.amount,
            price: self.price,
            created_at: self.created_at,
            expires_at: self.expires_at,
            nonce: self.nonce,
        };
        signing::sign_message(&body, keypair)
    }
}

fn check_terms(base: Asset, quote: Asset, amount: u64, price: u64) -> Result<(), OrderError> {
    if base == quote {
        return Err(OrderError::SameAsset);
    }
    check_amount_price(amount, price)
}

fn check_amount_price(amount: u64, price: u64) -> Result<(), OrderError> {
    if amount == 0 {
        return Err(OrderError::ZeroAmount);
    }
    if price == 0 {
        return Err(OrderError::ZeroPrice);
    }
    for (field, value) in [("amount", amount), ("price", price)] {
        if value > MAX_AMOUNT {
            return Err(OrderError::OutOfRange { field, value });
        }
    }
    Ok(())
}

fn check_not_future(timestamp: u64, now: u64) -> Result<(), OrderError> {
    if timestamp > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(OrderError::FromTheFuture { timestamp, now });
    }
    Ok(())
}

/// An order whose signature and terms have been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// SHA-256 of the signed body.
    pub id: OrderId,
    /// The peer that signed the order.
    pub maker: PeerId,
    /// Buy or sell the base asset.
    pub side: Side,
    /// The asset bought or sold.
    pub base: Asset,
    /// The asset it is priced in.
    pub quote: Asset,
    /// Base amount, smallest unit.
    pub amount: u64,
    /// Quote smallest units per [`PRICE_SCALE`] base smallest units.
    pub price: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Maker-chosen nonce.
    pub nonce: u64,
}

impl Order {
    /// Whether the order has expired at `now` (unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Refuses an order that is expired at `now` or created too far in the future.
    pub fn check_time(&self, now: u64) -> Result<(), OrderError> {
        if self.is_expired(now) {
            return Err(OrderError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        check_not_future(self.created_at, now)
    }
}

impl SignedOrder {
    /// The order id: SHA-256 of the signed body.
    pub fn id(&self) -> OrderId {
        OrderId::of_body(&self.body)
    }

    /// Verifies the signature and the terms (assets, amounts, expiry after
    /// creation). Time-dependent checks are [`Order::check_time`].
    pub fn verify(&self) -> Result<Order, OrderError> {
        self.verify_with(&mut Check::Now)
    }

    /// [`SignedOrder::verify`] with the signature queued in `batch`: the
    /// order is valid only once the batch verifies.
    pub fn verify_batched(&self, batch: &mut SignatureBatch) -> Result<Order, OrderError> {
        self.verify_with(&mut Check::Later(batch))
    }

    fn verify_with(&self, check: &mut Check<'_>) -> Result<Order, OrderError> {
        let (body, maker) = signing::verify_message(self, |b: &OrderBody| &b.maker, check)?;
        let base: Asset = body.base.parse()?;
        let quote: Asset = body.quote.parse()?;
        let side = Side::from_wire(body.side)?;
        check_terms(base, quote, body.amount, body.price)?;
        if body.expires_at <= body.created_at {
            return Err(OrderError::InvalidExpiry);
        }
        Ok(Order {
            id: self.id(),
            maker,
            side,
            base,
            quote,
            amount: body.amount,
            price: body.price,
            created_at: body.created_at,
            expires_at: body.expires_at,
            nonce: body.nonce,
        })
    }
}

/// A verified cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// The order cancelled.
    pub order_id: OrderId,
    /// The peer that signed the cancel; only the order's maker may cancel it.
    pub maker: PeerId,
    /// Unix seconds.
    pub cancelled_at: u64,
}

impl OrderCancel {
    /// Signs a cancel of `order_id` with the maker's key.
    pub fn sign(
        order_id: OrderId,
        cancelled_at: u64,
        keypair: &Keypair,
    ) -> Result<Self, OrderError> {
        let body = CancelBody {
            order_id: order_id.as_bytes().to_vec(),
            maker: keypair.public().to_peer_id().to_bytes(),
            cancelled_at,
        };
        signing::sign_message(&body, keypair)
    }

    /// Verifies the signature and returns the cancel it carries.
    pub fn verify(&self) -> Result<Cancel, OrderError> {
        self.verify_with(&mut Check::Now)
    }

    /// [`OrderCancel::verify`] with the signature queued in `batch`: the
    /// cancel is valid only once the batch verifies.
    pub fn verify_batched(&self, batch: &mut SignatureBatch) -> Result<Cancel, OrderError> {
        self.verify_with(&mut Check::Later(batch))
    }

    fn verify_with(&self, check: &mut Check<'_>) -> Result<Cancel, OrderError> {
        let (body, maker) = signing::verify_message(self, |b: &CancelBody| &b.maker, check)?;
        Ok(Cancel {
            order_id: OrderId::from_bytes(&body.order_id)?,
            maker,
            cancelled_at: body.cancelled_at,
        })
    }
}

/// The new terms an [`OrderUpdate`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateFields {
    /// Strictly increasing per order; receivers keep the highest.
    pub sequence: u64,
    /// New remaining base amount.
    pub amount: u64,
    /// New price.
    pub price: u64,
    /// New expiry, unix seconds.
    pub expires_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// A verified update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The order updated.
    pub order_id: OrderId,
    /// The peer that signed the update; only the order's maker may update it.
    pub maker: PeerId,
    /// The new terms.
    pub fields: UpdateFields,
}

impl OrderUpdate {
    /// Signs an update of `order_id` with the maker's key.
    pub fn sign(
        order_id: OrderId,
        fields: UpdateFields,
        keypair: &Keypair,
    ) -> Result<Self, OrderError> {
        check_update(&fields)?;
        let body = UpdateBody {
            order_id: order_id.as_bytes().to_vec(),
            maker: keypair.public().to_peer_id().to_bytes(),
            sequence: fields.sequence,
            amount: fields.amount,
            price: fields.price,
            expires_at: fields.expires_at,
            updated_at: fields.updated_at,
        };
        signing::sign_message(&body, keypair)
    }

    /// Verifies the signature and the new terms.
    pub fn verify(&self) -> Result<Update, OrderError> {
        self.verify_with(&mut Check::Now)
    }

    /// [`OrderUpdate::verify`] with the signature queued in `batch`: the
    /// update is valid only once the batch verifies.
    pub fn verify_batched(&self, batch: &mut SignatureBatch) -> Result<Update, OrderError> {
        self.verify_with(&mut Check::Later(batch))
    }

    fn verify_with(&self, check: &mut Check<'_>) -> Result<Update, OrderError> {
        let (body, maker) = signing::verify_message(self, |b: &UpdateBody| &b.maker, check)?;
        let fields = UpdateFields {
            sequence: body.sequence,
            amount: body.amount,
            price: body.price,
            expires_at: body.expires_at,
            updated_at: body.updated_at,
        };
        check_update(&fields)?;
        Ok(Update {
            order_id: OrderId::from_bytes(&body.order_id)?,
            maker,
            fields,
        })
    }
}

fn check_update(fields: &UpdateFields) -> Result<(), OrderError> {
    check_amount_price(fields.amount, fields.price)?;
    if fields.expires_at <= fields.updated_at {
        return Err(OrderError::InvalidExpiry);
    }
    Ok(())
}

impl Update {
    /// Refuses an update whose new expiry has passed or that is dated in the future.
    pub fn check_time(&self, now: u64) -> Result<(), OrderError> {
        if now >= self.fields.expires_at {
            return Err(OrderError::Expired {
                expires_at: self.fields.expires_at,
                now,
            });
        }
        check_not_future(self.fields.updated_at, now)
    }
}

impl Cancel {
    /// Refuses a cancel dated too far in the future.
    pub fn check_time(&self, now: u64) -> Result<(), OrderError> {
        check_not_future(self.cancelled_at, now)
    }
}

fn announcement_bytes(id: &OrderId, announced_at: u64) -> Vec<u8> {
    let mut bytes = id.as_bytes().to_vec();
    bytes.extend_from_slice(&announced_at.to_be_bytes());
    bytes
}

/// A verified order create: the order and, if present, the time its maker
/// last announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// The verified order.
    pub order: Order,
    /// When the maker (re)announced it, unix seconds.
    pub announced_at: Option<u64>,
}

impl OrderCreate {
    /// An order create without an announcement.
    pub fn from_order(order: SignedOrder) -> Self {
        OrderCreate {
            order: Some(order),
            announced_at: 0,
            announcement_signature: Vec::new(),
        }
    }

    /// An order create carrying the maker's announcement at `announced_at`.
    /// `keypair` must be the maker's.
    pub fn announce(
        order: SignedOrder,
        announced_at: u64,
        keypair: &Keypair,
    ) -> Result<Self, OrderError> {
        let (_, signature) = signing::sign(
            ANNOUNCE_TAG,
            &announcement_bytes(&order.id(), announced_at),
            keypair,
        )?;
        Ok(OrderCreate {
            order: Some(order),
            announced_at,
            announcement_signature: signature,
        })
    }

    /// Verifies the order and, if present, its announcement (signed by the
    /// same maker). Time-dependent checks are [`Announced::check_time`].
    pub fn verify(&self) -> Result<Announced, OrderError> {
        self.verify_with(&mut Check::Now)
    }

    /// [`OrderCreate::verify`] with both signatures queued in `batch`: the
    /// create is valid only once the batch verifies.
    pub fn verify_batched(&self, batch: &mut SignatureBatch) -> Result<Announced, OrderError> {
        self.verify_with(&mut Check::Later(batch))
    }

    fn verify_with(&self, check: &mut Check<'_>) -> Result<Announced, OrderError> {
        let signed = self.order.as_ref().ok_or(OrderError::MalformedBody(
            "order_create without order".into(),
        ))?;
        let order = signed.verify_with(check)?;
        if self.announced_at == 0 && self.announcement_signature.is_empty() {
            return Ok(Announced {
                order,
                announced_at: None,
            });
        }
        signing::verify(
            ANNOUNCE_TAG,
            &announcement_bytes(&order.id, self.announced_at),
            &signed.public_key,
            &self.announcement_signature,
            &order.maker.to_bytes(),
            check,
        )?;
        Ok(Announced {
            order,
            announced_at: Some(self.announced_at),
        })
    }
}

impl Announced {
    /// Refuses an expired order or one (or an announcement) dated too far
    /// in the future.
    pub fn check_time(&self, now: u64) -> Result<(), OrderError> {
        self.order.check_time(now)?;
        match self.announced_at {
            Some(t) => check_not_future(t, now),
            None => Ok(()),
        }
    }

    /// The latest time the maker vouched for the order: its announcement,
    /// or else its creation.
    pub fn last_vouched(&self) -> u64 {
        self.announced_at
            .unwrap_or(self.order.created_at)
            .max(self.order.created_at)
    }
}
