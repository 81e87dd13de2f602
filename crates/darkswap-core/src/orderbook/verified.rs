//! Order messages whose signatures verified, one at a time (gossip) or a
//! sync answer's worth at once (with a signature batch).

use darkswap_proto::{
    Announced, Cancel, Message, OrderCancel, OrderCreate, OrderError, OrderUpdate,
    OrderbookResponse, SignatureBatch, Update,
};
use prost::Message as _;

use super::OrderbookError;

/// An order create, cancel or update whose signatures verified. The
/// verified parts travel with the message, so the book, handed one by
/// gossip validation, does not check the signatures a second time. Only
/// [`VerifiedOrderMessage::verify`] and [`VerifiedItems::verify`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOrderMessage(pub(super) Verified);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verified {
    Create(OrderCreate, Announced),
    Cancel(OrderCancel, Cancel),
    Update(OrderUpdate, Update),
}

impl VerifiedOrderMessage {
    /// Verifies every signature `message` carries. Time rules are apart
    /// ([`VerifiedOrderMessage::check_time`]): a snapshot may carry an old
    /// cancel that is still worth a tombstone.
    pub fn verify(message: &Message) -> Result<Self, OrderbookError> {
        Ok(VerifiedOrderMessage(match message {
            Message::OrderCreate(create) if create.order.is_some() => {
                Verified::Create(create.clone(), create.verify()?)
            }
            Message::OrderCancel(cancel) => Verified::Cancel(cancel.clone(), cancel.verify()?),
            Message::OrderUpdate(update) => Verified::Update(update.clone(), update.verify()?),
            _ => return Err(OrderbookError::NotAnOrderMessage),
        }))
    }

    /// Refuses what is expired or dated too far in the future at `now`
    /// (unix seconds).
    pub fn check_time(&self, now: u64) -> Result<(), OrderError> {
        match &self.0 {
            Verified::Create(_, announced) => announced.check_time(now),
            Verified::Cancel(_, cancel) => cancel.check_time(now),
            Verified::Update(_, update) => update.check_time(now),
        }
    }

    /// The message as it travels.
    pub fn message(&self) -> Message {
        match &self.0 {
            Verified::Create(m, _) => Message::OrderCreate(m.clone()),
            Verified::Cancel(m, _) => Message::OrderCancel(m.clone()),
            Verified::Update(m, _) => Message::OrderUpdate(m.clone()),
        }
    }

    /// Verifies the message again, signatures one by one.
    fn reverify(self) -> Result<Self, OrderbookError> {
        Ok(VerifiedOrderMessage(match self.0 {
            Verified::Create(m, _) => {
                let announced = m.verify()?;
                Verified::Create(m, announced)
            }
            Verified::Cancel(m, _) => {
                let cancel = m.verify()?;
                Verified::Cancel(m, cancel)
            }
            Verified::Update(m, _) => {
                let update = m.verify()?;
                Verified::Update(m, update)
            }
        }))
    }
}

/// The entries of a sync answer (or a stored snapshot), each verified or
/// refused with its reason, in the order the book applies them: cancels
/// first (so nothing cancelled is resurrected), then orders, then updates.
///
/// Making one is pure CPU work (signature verification, the bulk of a
/// join's cost) and needs no book, so a shell can run it off its event
/// loop and on several cores at once; [`super::Orderbook::apply_items`]
/// then applies the result.
#[derive(Debug, Clone)]
pub struct VerifiedItems {
    entries: Vec<Result<VerifiedOrderMessage, OrderbookError>>,
    wire_bytes: u64,
}

impl VerifiedItems {
    /// Verifies every entry of `response`. All signatures are checked
    /// together in one batch; if the batch fails (a bad signature among
    /// them), the entries are checked one by one to tell which, with the
    /// same verdicts (ZIP 215 rules make batch and single verification
    /// agree).
    pub fn verify(response: OrderbookResponse) -> Self {
        let wire_bytes = response.encoded_len() as u64;
        let mut batch = SignatureBatch::new();
        let mut entries = Vec::with_capacity(
            response.cancels.len() + response.orders.len() + response.updates.len(),
        );
        for c in response.cancels {
            entries.push(
                c.verify_batched(&mut batch)
                    .map(|cancel| VerifiedOrderMessage(Verified::Cancel(c, cancel)))
                    .map_err(OrderbookError::from),
            );
        }
        for o in response.orders {
            entries.push(if o.order.is_none() {
                Err(OrderbookError::NotAnOrderMessage)
            } else {
                o.verify_batched(&mut batch)
                    .map(|announced| VerifiedOrderMessage(Verified::Create(o, announced)))
                    .map_err(OrderbookError::from)
            });
        }
        for u in response.updates {
            entries.push(
                u.verify_batched(&mut batch)
                    .map(|update| VerifiedOrderMessage(Verified::Update(u, update)))
                    .map_err(OrderbookError::from),
            );
        }
        let entries = match batch.verify() {
            Ok(()) => entries,
            Err(error) => {
                tracing::debug!(%error, "signature batch failed: verifying one by one");
                entries
                    .into_iter()
                    .map(|e| e.and_then(VerifiedOrderMessage::reverify))
                    .collect()
            }
        };
        VerifiedItems {
            entries,
            wire_bytes,
        }
    }

    /// Entries, verified or refused.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the answer carried nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The encoded size of the answer these entries came in, bytes.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    pub(super) fn into_entries(self) -> Vec<Result<VerifiedOrderMessage, OrderbookError>> {
        self.entries
    }
}
