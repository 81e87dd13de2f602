//! What a node tells about its trades: their ids, roles and states. The
//! negotiation itself is `darkswap_trade::negotiation`.

/// A side of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The party whose order was on the book.
    Maker,
    /// The party that takes it.
    Taker,
}

impl Role {
    /// The other side.
    pub fn other(self) -> Role {
        match self {
            Role::Maker => Role::Taker,
            Role::Taker => Role::Maker,
        }
    }
}

/// A trade's id: 32 random bytes the taker picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TradeId([u8; 32]);

impl TradeId {
    /// The id `bytes`.
    pub fn new(bytes: [u8; 32]) -> Self {
        TradeId(bytes)
    }

    /// The id in `bytes`, if they are 32 long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TradeId)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    pub fn to_vec(self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl std::fmt::Display for TradeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A trade id that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a trade id is 64 hex digits")]
pub struct InvalidTradeId;

impl std::str::FromStr for TradeId {
    type Err = InvalidTradeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| InvalidTradeId)?;
        TradeId::from_slice(&bytes).ok_or(InvalidTradeId)
    }
}

/// Why a maker refused a proposal (`TradeReject.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The order is not in the maker's book any more (filled, cancelled,
    /// expired).
    OrderGone,
    /// The amount is above what remains of the order, other trades'
    /// reservations deducted.
    AmountAboveRemaining,
    /// The amount is below the maker's smallest fill.
    BelowMinimum,
    /// The maker cannot take this trade now (too many at once, or its
    /// wallet cannot fund the fill while other trades hold its UTXOs).
    MakerBusy,
    /// The proposal's price is not the order's.
    TermsChanged,
    /// The proposal is malformed (its offer, ids or step).
    InvalidOffer,
    /// The maker's policy declined this proposal (its acceptance hook).
    Declined,
}

impl RefusalReason {
    /// The stable code on the wire and in metrics.
    pub fn code(self) -> &'static str {
        match self {
            RefusalReason::OrderGone => "order_gone",
            RefusalReason::AmountAboveRemaining => "amount_above_remaining",
            RefusalReason::BelowMinimum => "below_minimum",
            RefusalReason::MakerBusy => "maker_busy",
            RefusalReason::TermsChanged => "terms_changed",
            RefusalReason::InvalidOffer => "invalid_offer",
            RefusalReason::Declined => "declined",
        }
    }

    /// The reason of `code`; an unknown code reads as an invalid offer.
    pub fn from_code(code: &str) -> Self {
        [
            RefusalReason::OrderGone,
            RefusalReason::AmountAboveRemaining,
            RefusalReason::BelowMinimum,
            RefusalReason::MakerBusy,
            RefusalReason::TermsChanged,
            RefusalReason::Declined,
        ]
        .into_iter()
        .find(|r| r.code() == code)
        .unwrap_or(RefusalReason::InvalidOffer)
    }
}

/// Where a trade stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeState {
    /// Taker: proposal sent. Maker: never (it answers at once).
    Proposed,
    /// Both offers known: the taker builds the PSBT, the maker waits for it.
    Accepted,
    /// Taker: the unsigned PSBT is with the maker.
    PsbtCreated,
    /// Maker: it checked and signed its inputs; no cancel any more.
    MakerSigned,
    /// Both signed; the transaction passed the consensus check. Taker:
    /// broadcasting. Maker: waiting for the broadcast.
    Finalized,
    /// Taker: the network took the transaction; waiting for the receipt.
    Broadcast,
    /// Done: the transaction is out and both sides know it.
    Completed,
    /// The maker refused the proposal.
    Rejected(RefusalReason),
    /// A side gave up before anyone signed.
    Cancelled {
        /// Whether this side did.
        by_me: bool,
        /// The reason given.
        reason: String,
    },
    /// A deadline passed while waiting in this state.
    TimedOut {
        /// The state the trade was in.
        waiting_for: Box<TradeState>,
    },
    /// The trade broke down: the counterparty broke the terms or the
    /// protocol, or a local step failed.
    Failed {
        /// What happened.
        reason: String,
    },
}

impl TradeState {
    /// The state's stable name: `proposed`, `accepted`, `psbt_created`,
    /// `maker_signed`, `finalized`, `broadcast`, `completed`, `rejected`,
    /// `cancelled`, `timed_out` or `failed`.
    pub fn code(&self) -> &'static str {
        match self {
            TradeState::Proposed => "proposed",
            TradeState::Accepted => "accepted",
            TradeState::PsbtCreated => "psbt_created",
            TradeState::MakerSigned => "maker_signed",
            TradeState::Finalized => "finalized",
            TradeState::Broadcast => "broadcast",
            TradeState::Completed => "completed",
            TradeState::Rejected(_) => "rejected",
            TradeState::Cancelled { .. } => "cancelled",
            TradeState::TimedOut { .. } => "timed_out",
            TradeState::Failed { .. } => "failed",
        }
    }

    /// What ended the trade, for an ended one: the refusal's code, who
    /// cancelled and why, the step that timed out, or the failure.
    pub fn detail(&self) -> Option<String> {
        match self {
            TradeState::Rejected(reason) => Some(reason.code().to_owned()),
            TradeState::Cancelled { by_me, reason } => Some(format!(
                "{} by {}",
                reason,
                if *by_me {
                    "this node"
                } else {
                    "the counterparty"
                }
            )),
            TradeState::TimedOut { waiting_for } => {
                Some(format!("waiting for {}", waiting_for.code()))
            }
            TradeState::Failed { reason } => Some(reason.clone()),
            _ => None,
        }
    }

    /// Whether the trade is over.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TradeState::Completed
                | TradeState::Rejected(_)
                | TradeState::Cancelled { .. }
                | TradeState::TimedOut { .. }
                | TradeState::Failed { .. }
        )
    }
}
