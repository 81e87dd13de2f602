//! The negotiation of a trade between a taker and a maker, sans-IO: one
//! [`TradeSession`] per trade and side, fed with verified messages, the
//! asset index's answers, the broadcaster's answer and the time; it says
//! what to send and when the trade's state changes. The steps, their
//! messages and the state diagram are in `docs/trade.md`.

mod recovered;
mod refusal;
mod registry;
mod session;
mod terms;
mod wire;

use std::time::Duration;

use bitcoin::{Amount, Transaction};
use darkswap_proto::{SignedTradeMessage, TradeMessageError, identity::PeerId};

use crate::{BuildError, BuildOptions, CheckPolicy, PsbtCheckError, build::DEFAULT_FEE_RATE};
pub use darkswap_core::trade::{RefusalReason, TradeId, TradeState};
pub use refusal::Refusal;
pub use registry::{AcceptAll, Proposal, ProposalPolicy, TradeSummary, Trades, TradesOutput};
pub use session::{Handled, Outpoints, TradeRecord, TradeSession};
pub use terms::{FillError, for_fill};

/// The steps of a trade, in order; each message carries its step number.
pub mod step {
    /// Taker → maker: `TradePropose` (terms and the taker's offer).
    pub const PROPOSE: u32 = 1;
    /// Maker → taker: `TradeAccept` (the maker's offer) or `TradeReject`.
    pub const ACCEPT: u32 = 2;
    /// Taker → maker: `PsbtCreate`, the unsigned swap PSBT.
    pub const PSBT_CREATE: u32 = 3;
    /// Maker → taker: `PsbtSign`, the PSBT with the maker's inputs signed.
    pub const PSBT_SIGN: u32 = 4;
    /// Taker → maker: `PsbtFinalize`, the PSBT signed by both.
    pub const PSBT_FINALIZE: u32 = 5;
    /// Taker → maker: `PsbtBroadcast`, the transaction the network took.
    pub const BROADCAST: u32 = 6;
    /// Maker → taker: `TradeSignature`, the maker's receipt: completed.
    pub const RECEIPT: u32 = 7;
}

/// How long each side waits, and what it builds and accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NegotiationConfig {
    /// How long the counterparty may take to send its next step.
    /// Default: 30 s.
    pub step_timeout: Duration,
    /// How long the whole negotiation may take. Default: 5 min.
    pub trade_timeout: Duration,
    /// Smallest fill a maker accepts, in base units (a smaller rest of an
    /// order may still be taken whole). Default: 1.
    pub min_fill: u64,
    /// What the taker budgets for the fee when choosing its inputs.
    /// Default: 20,000 sat.
    pub fee_reserve: Amount,
    /// How the taker builds the PSBT (fee rate, postage).
    pub build: BuildOptions,
    /// What each side accepts (fee bound).
    pub check: CheckPolicy,
}

impl Default for NegotiationConfig {
    fn default() -> Self {
        NegotiationConfig {
            step_timeout: Duration::from_secs(30),
            trade_timeout: Duration::from_secs(300),
            min_fill: 1,
            fee_reserve: Amount::from_sat(20_000),
            build: BuildOptions {
                fee_rate: DEFAULT_FEE_RATE,
                ..BuildOptions::default()
            },
            check: CheckPolicy::default(),
        }
    }
}

impl NegotiationConfig {
    /// Sets [`NegotiationConfig::step_timeout`].
    pub fn with_step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = timeout;
        self
    }

    /// Sets [`NegotiationConfig::trade_timeout`].
    pub fn with_trade_timeout(mut self, timeout: Duration) -> Self {
        self.trade_timeout = timeout;
        self
    }

    /// Sets [`NegotiationConfig::min_fill`].
    pub fn with_min_fill(mut self, min_fill: u64) -> Self {
        self.min_fill = min_fill;
        self
    }

    /// Sets [`NegotiationConfig::fee_reserve`].
    pub fn with_fee_reserve(mut self, reserve: Amount) -> Self {
        self.fee_reserve = reserve;
        self
    }
}

/// What the shell must do for a session.
#[derive(Debug, Clone)]
pub enum TradeOutput {
    /// Send this message to `peer` on `/darkswap/trade/1.0.0`.
    Send {
        /// The counterparty.
        peer: PeerId,
        /// The signed message.
        message: SignedTradeMessage,
    },
    /// Ask the asset index what these outpoints hold, then call
    /// [`TradeSession::handle_holdings`].
    LookUpHoldings(Outpoints),
    /// Broadcast this transaction, then call
    /// [`TradeSession::handle_broadcast`].
    Broadcast(Transaction),
    /// The trade's state changed.
    StateChanged(TradeState),
}

/// Why a message or an action was refused, or why a trade failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TradeError {
    /// The message is for another trade or another order.
    #[error("the message belongs to another trade")]
    WrongTrade,
    /// The message comes from a peer that is not this trade's
    /// counterparty.
    #[error("the message is from a third peer")]
    WrongPeer,
    /// The message is addressed to another peer.
    #[error("the message is addressed to another peer")]
    NotForMe,
    /// A step other than the next one.
    #[error("step {got} out of order, expected {expected}")]
    OutOfOrder {
        /// The step due.
        expected: u32,
        /// The step received.
        got: u32,
    },
    /// A step already past, sent again with other content, or an old
    /// message replayed.
    #[error("step {step} replayed")]
    Replayed {
        /// The step.
        step: u32,
    },
    /// A step already received, now with different content.
    #[error("step {step} received twice with different content")]
    Conflicting {
        /// The step.
        step: u32,
    },
    /// The message's payload is not what its step carries.
    #[error("unexpected message at step {step}")]
    UnexpectedPayload {
        /// The step.
        step: u32,
    },
    /// The trade has ended.
    #[error("the trade has ended ({0:?})")]
    Ended(TradeState),
    /// A party has signed: no cancel.
    #[error("a party has signed: the trade can no longer be cancelled")]
    AlreadySigned,
    /// The order cannot be filled with that amount.
    #[error(transparent)]
    Fill(#[from] FillError),
    /// The counterparty's offer is malformed.
    #[error("invalid offer: {0}")]
    InvalidOffer(String),
    /// A PSBT that does not decode.
    #[error("invalid PSBT: {0}")]
    InvalidPsbt(String),
    /// A PSBT other than the one approved.
    #[error("the PSBT is not the one approved")]
    PsbtChanged,
    /// The PSBT breaks this side's terms.
    #[error("PSBT refused: {0}")]
    Check(PsbtCheckError),
    /// The PSBT cannot be built from the offers.
    #[error("cannot build the PSBT: {0}")]
    Build(BuildError),
    /// The wallet could not sign.
    #[error("wallet: {0}")]
    Wallet(String),
    /// The PSBT signed by both does not finalize.
    #[error("cannot finalize: {0}")]
    Finalize(String),
    /// Bitcoin Core's script check refused the transaction.
    #[error("consensus check failed: {0}")]
    Consensus(String),
    /// The broadcaster refused the transaction.
    #[error("broadcast failed: {0}")]
    Broadcast(String),
    /// A message could not be signed.
    #[error("message: {0}")]
    Message(TradeMessageError),
    /// This node restarted during the trade and does not take it further
    /// (it signs nothing more for it); the trade ends at its deadline.
    #[error("this node restarted during the trade and does not continue it")]
    Restarted,
}

impl TradeError {
    /// A short stable code (a cancel's reason, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            TradeError::WrongTrade => "wrong_trade",
            TradeError::WrongPeer => "wrong_peer",
            TradeError::NotForMe => "not_for_me",
            TradeError::OutOfOrder { .. } => "out_of_order",
            TradeError::Replayed { .. } => "replayed",
            TradeError::Conflicting { .. } => "conflicting",
            TradeError::UnexpectedPayload { .. } => "unexpected_payload",
            TradeError::Ended(_) => "ended",
            TradeError::AlreadySigned => "already_signed",
            TradeError::Fill(_) => "invalid_fill",
            TradeError::InvalidOffer(_) => "invalid_offer",
            TradeError::InvalidPsbt(_) => "invalid_psbt",
            TradeError::PsbtChanged => "psbt_changed",
            TradeError::Check(_) => "psbt_refused",
            TradeError::Build(_) => "build_failed",
            TradeError::Wallet(_) => "wallet",
            TradeError::Finalize(_) => "finalize_failed",
            TradeError::Consensus(_) => "consensus_failed",
            TradeError::Broadcast(_) => "broadcast_failed",
            TradeError::Message(_) => "message",
            TradeError::Restarted => "restarted",
        }
    }

    /// Whether the counterparty misbehaved (a cheat or a forgery, not a
    /// late or repeated message): the shell lowers its reputation.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            TradeError::Conflicting { .. }
                | TradeError::InvalidOffer(_)
                | TradeError::InvalidPsbt(_)
                | TradeError::PsbtChanged
                | TradeError::Check(_)
                | TradeError::Finalize(_)
                | TradeError::Consensus(_)
        )
    }

    /// Whether the error ends the trade (the step broke the terms or could
    /// not be done), rather than refusing one message.
    fn ends_trade(&self) -> bool {
        !matches!(
            self,
            TradeError::WrongTrade
                | TradeError::WrongPeer
                | TradeError::NotForMe
                | TradeError::OutOfOrder { .. }
                | TradeError::Replayed { .. }
                | TradeError::Conflicting { .. }
                | TradeError::UnexpectedPayload { .. }
                | TradeError::Ended(_)
                | TradeError::AlreadySigned
                | TradeError::Restarted
        )
    }
}
