//! The orderbook facet of the handle.

use darkswap_core::{
    orderbook::{Book, OrderbookError},
    own_orders::OrderChanges,
    proto::{
        Asset, NewOrder, Order, OrderCancel, OrderId, OrderUpdate, OrderbookResponse, SignedOrder,
    },
};

use crate::{
    command::OrderbookCommand,
    error::{CommandError, OrderbookCommandError},
    network::NetworkHandle,
};

/// The node's replica of the book and its own orders: what
/// [`NetworkHandle::orderbook`] returns.
#[derive(Debug, Clone, Copy)]
pub struct OrderbookHandle<'a> {
    pub(super) handle: &'a NetworkHandle,
}

impl OrderbookHandle<'_> {
    /// Signs `order` with this node's identity key, puts it in the local
    /// book and publishes it; returns the order and its signed form (what a
    /// store keeps to [`restore`](Self::restore) it). The node re-announces it
    /// every refresh interval until it expires or is cancelled. Publishing
    /// without any peer is not an error: peers get the order by sync or at
    /// the next refresh.
    pub async fn create(
        &self,
        order: NewOrder,
    ) -> Result<(Order, SignedOrder), OrderbookCommandError> {
        let order = Box::new(order);
        Ok(self
            .handle
            .ask(|reply| OrderbookCommand::Create { order, reply })
            .await??)
    }

    /// Cancels one of this node's own orders and publishes the signed
    /// cancel; returns it (what a store keeps so that a restart does not
    /// bring the order back).
    pub async fn cancel(&self, id: OrderId) -> Result<OrderCancel, OrderbookCommandError> {
        Ok(self
            .handle
            .ask(|reply| OrderbookCommand::Cancel { id, reply })
            .await??)
    }

    /// Changes the amount, price and/or expiry of one of this node's own
    /// open orders: signs an update one sequence above the one in force,
    /// applies it to the local book and publishes it; returns the order as
    /// it now stands and the signed update (what a store keeps, to
    /// [`import`](Self::import) it after a restart). Re-announcements carry
    /// the update in force, and peers that join later get it by sync.
    ///
    /// Errors: [`OrderbookCommandError::NotOwnOrder`] for an order that is
    /// not this node's or no longer open (expired, or unknown);
    /// [`OrderbookError::Cancelled`] (as
    /// [`OrderbookCommandError::Refused`]) for a cancelled one;
    /// [`OrderbookError::Invalid`] for invalid terms (zero amount or price,
    /// an expiry not in the future); and
    /// [`OrderbookCommandError::ExpiryBeyondSigned`] for an expiry after the
    /// one the order was signed with, which peers would not honour.
    pub async fn update(
        &self,
        id: OrderId,
        changes: OrderChanges,
    ) -> Result<(Order, OrderUpdate), OrderbookCommandError> {
        Ok(self
            .handle
            .ask(|reply| OrderbookCommand::Update { id, changes, reply })
            .await??)
    }

    /// Takes back this node's own signed orders (e.g. from storage after a
    /// restart): each one still valid and signed by this node returns to
    /// the book and to the re-announcement schedule.
    pub async fn restore(
        &self,
        orders: Vec<SignedOrder>,
    ) -> Result<Vec<Result<Order, OrderbookCommandError>>, CommandError> {
        let results = self
            .handle
            .ask(|reply| OrderbookCommand::Restore { orders, reply })
            .await?;
        Ok(results.into_iter().map(|r| r.map_err(Into::into)).collect())
    }

    /// The bids and asks of a pair in the local replica of the book.
    pub async fn book(&self, base: Asset, quote: Asset) -> Result<Book, CommandError> {
        self.handle
            .ask(|reply| OrderbookCommand::Book { base, quote, reply })
            .await
    }

    /// This node's own open orders, as they stand and as signed, oldest first.
    pub async fn own_orders(&self) -> Result<Vec<(Order, SignedOrder)>, CommandError> {
        self.handle
            .ask(|reply| OrderbookCommand::OwnOrders { reply })
            .await
    }

    /// The whole local replica as signed messages (orders with their newest
    /// announcements, updates, cancels), e.g. to store it. It carries only
    /// what makers signed, so [`import`](Self::import) verifies it like any
    /// peer's snapshot.
    pub async fn export(&self) -> Result<OrderbookResponse, CommandError> {
        self.handle
            .ask(|reply| OrderbookCommand::Export { reply })
            .await
    }

    /// Merges a snapshot (e.g. a stored one after a restart) under the same
    /// rules as a peer's sync response: every entry is verified, expired and
    /// unrefreshed orders are refused, cancels win. Emits
    /// [`NetworkEvent::OrderbookChanged`](crate::NetworkEvent::OrderbookChanged)
    /// for what it adds and returns how many changes it made and why each
    /// refused entry was refused.
    pub async fn import(
        &self,
        book: OrderbookResponse,
    ) -> Result<(usize, Vec<OrderbookError>), CommandError> {
        let book = Box::new(book);
        self.handle
            .ask(|reply| OrderbookCommand::Import { book, reply })
            .await
    }
}
