//! The asset index: which runes and alkanes an outpoint holds.
//!
//! Nothing in a transaction says which runes or alkanes its inputs carry;
//! only an indexer that has replayed the chain knows (`ord server` for runes,
//! an alkanes indexer for alkanes). The checks ask this trait and trust its
//! answers.
//!
//! The trait is synchronous and answers from memory on purpose. Real indexes
//! are remote and slow (`ord server`'s JSON API, an alkanes RPC), and a
//! checker that awaited them mid-check would drag a runtime into a sans-IO
//! crate. Instead the caller gathers a snapshot first: it asks its client,
//! sync or async, for every outpoint in [`crate::Trade::outpoints`], fills an
//! [`InMemoryIndex`], and passes that to [`crate::check_psbt`]. The check then
//! sees one consistent view, and a test sees a fixed one.

use std::collections::BTreeMap;

use bitcoin::OutPoint;

use crate::Holdings;

/// Answers which non-BTC assets an outpoint holds.
pub trait AssetIndex {
    /// The runes and alkanes `outpoint` holds: an empty map for an outpoint
    /// that holds none, `None` for one the index does not know (unconfirmed,
    /// spent, or never looked up). A checker refuses an input it gets `None`
    /// for: unknown is not the same as empty.
    fn holdings(&self, outpoint: &OutPoint) -> Option<Holdings>;
}

/// An [`AssetIndex`] held in memory: the snapshot a caller gathers from its
/// real index before checking, and the index tests use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemoryIndex {
    outpoints: BTreeMap<OutPoint, Holdings>,
}

impl InMemoryIndex {
    /// An index that knows no outpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what `outpoint` holds (an empty map for a plain bitcoin
    /// output), replacing what was known.
    pub fn insert(&mut self, outpoint: OutPoint, holdings: Holdings) {
        self.outpoints.insert(outpoint, holdings);
    }

    /// Builder form of [`InMemoryIndex::insert`].
    pub fn with(mut self, outpoint: OutPoint, holdings: Holdings) -> Self {
        self.insert(outpoint, holdings);
        self
    }

    /// Copies what a synchronous `index` says about each of `outpoints`;
    /// outpoints it does not know stay unknown here.
    pub fn snapshot<I: AssetIndex + ?Sized>(
        index: &I,
        outpoints: impl IntoIterator<Item = OutPoint>,
    ) -> Self {
        let mut snapshot = Self::new();
        for outpoint in outpoints {
            if let Some(holdings) = index.holdings(&outpoint) {
                snapshot.insert(outpoint, holdings);
            }
        }
        snapshot
    }
}

impl AssetIndex for InMemoryIndex {
    fn holdings(&self, outpoint: &OutPoint) -> Option<Holdings> {
        self.outpoints.get(outpoint).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkswap_proto::Asset;

    #[test]
    fn a_snapshot_keeps_what_the_index_knows_and_leaves_the_rest_unknown() {
        let known = OutPoint::default();
        let unknown = OutPoint {
            vout: 1,
            ..OutPoint::default()
        };
        let rune = Asset::Rune { block: 1, tx: 2 };
        let index = InMemoryIndex::new().with(known, Holdings::from([(rune, 5)]));
        let snapshot = InMemoryIndex::snapshot(&index, [known, unknown]);
        assert_eq!(snapshot.holdings(&known), Some(Holdings::from([(rune, 5)])));
        assert_eq!(snapshot.holdings(&unknown), None);
    }
}
