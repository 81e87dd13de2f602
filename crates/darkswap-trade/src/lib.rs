//! The Bitcoin layer of a DarkSwap trade: one transaction that swaps BTC for
//! a rune or an alkane between a maker and a taker, built as a BIP-174 PSBT,
//! checked by each side against the agreed terms, signed by each side on its
//! own inputs only, finalized and verified with Bitcoin Core's script
//! interpreter before it is broadcast.
//!
//! The crate is sans-IO: no sockets, no clock, no runtime. The negotiation
//! that decides the [`Trade`] and carries PSBTs between the peers lives
//! elsewhere and calls this API; so do the asset index client and the
//! broadcaster.
//!
//! The flow, for a taker that builds and a maker that answers:
//!
//! 1. Both sides agree on [`Terms`] and exchange [`Offer`]s (a [`Wallet`]
//!    makes one from an [`OfferRequest`]): a [`Trade`].
//! 2. The taker builds the PSBT with [`build_psbt`].
//! 3. Each side gathers what its asset index says about
//!    [`Trade::outpoints`] into an [`InMemoryIndex`], runs [`check_psbt`]
//!    for its [`Role`] and gets an [`Approved`], or a [`PsbtCheckError`]
//!    naming the cheat.
//! 4. Each side signs its own inputs with [`sign_approved`] (SIGHASH_ALL);
//!    the signed copies are merged with `Psbt::combine`, which refuses a
//!    copy whose transaction differs.
//! 5. [`finalize`] writes the witnesses; `verify_consensus` (feature
//!    `consensus`, on by default) runs every input through
//!    libbitcoinconsensus; then it may be broadcast.
//!
//! `docs/trade.md` explains the construction and exactly what is checked
//! and trusted.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod build;
mod check;
#[cfg(feature = "consensus")]
mod consensus;
mod finalize;
mod index;
pub mod negotiation;
mod runes;
mod terms;
mod wallet;

pub use build::{BuildError, BuildOptions, DEFAULT_FEE_RATE, DEFAULT_POSTAGE, build_psbt};
pub use check::{Approved, CheckPolicy, DEFAULT_MAX_FEE, PsbtCheckError, check_psbt};
#[cfg(feature = "consensus")]
pub use consensus::{ConsensusError, ScriptFailure, verify_consensus};
pub use finalize::{FinalizeError, Finalized, finalize};
pub use index::{AssetIndex, InMemoryIndex};
pub use terms::{AssetAmount, Holdings, Offer, OfferedInput, Role, Terms, TermsError, Trade};
pub use wallet::{
    KeyKind, KeyWallet, OfferRequest, Wallet, WalletError, WalletFileError, sign_approved,
};

/// The `bitcoin` crate this API speaks (0.32), re-exported so callers name
/// the same `Psbt`, `Transaction` and `Network` types.
pub use bitcoin;
/// The asset type of the wire protocol.
pub use darkswap_proto::Asset;
