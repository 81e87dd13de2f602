//! The book as a set of items for range-based set reconciliation: one item
//! per order version a node holds (an order without update, with its latest
//! update, or its cancel), ordered by time so that what changed recently
//! sits together at the end of the range.

use std::{collections::HashMap, sync::Arc};

use darkswap_proto::OrderId;
use negentropy::{Bound, Error, Id, Item, NegentropyStorageBase, NegentropyStorageVector};
use sha2::{Digest, Sha256};

use crate::orderbook::{Holding, Orderbook};

/// Domain separation of item ids.
const ORDER_ITEM: &[u8] = b"darkswap/sync/v1/order";
const CANCEL_ITEM: &[u8] = b"darkswap/sync/v1/cancel";

/// The item of one holding: its time and an id that changes with the
/// version, so two books holding different versions of an order differ.
pub(crate) fn item(order: &OrderId, holding: &Holding) -> (u64, Id) {
    let mut h = Sha256::new();
    let timestamp = match *holding {
        Holding::Live { created_at, update } => {
            let (sequence, updated_at) = update.unwrap_or((0, created_at));
            h.update(ORDER_ITEM);
            h.update(order.as_bytes());
            h.update(sequence.to_be_bytes());
            updated_at.max(created_at)
        }
        Holding::Cancelled { cancelled_at } => {
            h.update(CANCEL_ITEM);
            h.update(order.as_bytes());
            cancelled_at
        }
    };
    (timestamp, Id::from_byte_array(h.finalize().into()))
}

/// A sealed, shareable view of a book's items, and the order behind each
/// item id (to answer fetches).
#[derive(Debug, Clone)]
pub(crate) struct BookItems {
    generation: u64,
    storage: SharedStorage,
    orders: Arc<HashMap<Id, OrderId>>,
}

impl BookItems {
    /// The items of `book` as it is now.
    pub(crate) fn of(book: &Orderbook) -> Result<Self, Error> {
        let mut storage = NegentropyStorageVector::with_capacity(book.len());
        let mut orders = HashMap::with_capacity(book.len());
        for (order, holding) in book.holdings() {
            let (timestamp, id) = item(&order, &holding);
            storage.insert(timestamp, id)?;
            orders.insert(id, order);
        }
        storage.seal()?;
        Ok(BookItems {
            generation: book.generation(),
            storage: SharedStorage(Arc::new(storage)),
            orders: Arc::new(orders),
        })
    }

    /// Whether `book` changed since this view was made.
    pub(crate) fn is_stale(&self, book: &Orderbook) -> bool {
        self.generation != book.generation()
    }

    /// The storage reconciliation runs over; cheap to clone.
    pub(crate) fn storage(&self) -> SharedStorage {
        self.storage.clone()
    }

    /// The order an item id stands for, if this view holds it.
    pub(crate) fn order_of(&self, id: &Id) -> Option<OrderId> {
        self.orders.get(id).copied()
    }
}

/// Sealed item storage shared by every session that reads it.
#[derive(Debug, Clone)]
pub(crate) struct SharedStorage(Arc<NegentropyStorageVector>);

impl NegentropyStorageBase for SharedStorage {
    fn size(&self) -> Result<usize, Error> {
        self.0.size()
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, Error> {
        self.0.get_item(i)
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        self.0.iterate(begin, end, cb)
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        self.0.find_lower_bound(first, last, value)
    }
}
