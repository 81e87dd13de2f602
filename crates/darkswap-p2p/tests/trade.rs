//! Trades between two real nodes over `/darkswap/trade/1.0.0`: directly on
//! loopback TCP, and with the maker reachable only through a relay circuit.
//! Real PSBTs, real signatures, the consensus library on both sides; the
//! broadcaster records what it got.

use darkswap_p2p::{
    Identity, Keypair, Network, NetworkEvent, OrderbookChange, PeerId, TradeCommandError,
    core::trade::{Role, TradeId, TradeState},
    darkswap_trade::{
        InMemoryIndex,
        negotiation::{FillError, TradeError},
    },
    proto::{Asset, Message, Order, OrderId},
};
use darkswap_testkit::{
    EVENT_TIMEOUT, TestRelay, spawn_node, test_config,
    trade::{RecordingBroadcaster, TEST_RUNE, funded_wallet, rune_sale, trading},
    wait_for, wait_subscribed,
};
use libp2p::multiaddr::Protocol;

/// Waits until `net`'s book shows order `id` offering `amount`.
async fn wait_remaining(net: &mut Network, id: OrderId, amount: u64) -> Order {
    // The book first: the notice may have come while an earlier wait read
    // the events. If the book does not show it yet, its change event is
    // still to come.
    let book = net.orderbook().book(TEST_RUNE, Asset::Btc).await.unwrap();
    if let Some(o) = book.asks.iter().find(|o| o.id == id && o.amount == amount) {
        return o.clone();
    }
    wait_for(net, "the order's fill notice", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::OrderbookChanged(OrderbookChange::Updated(o))
            if o.id == id && o.amount == amount =>
        {
            Some(o.clone())
        }
        _ => None,
    })
    .await
}

async fn wait_in_book(net: &mut Network, id: OrderId) {
    wait_for(net, "the order in the book", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)) if o.id == id => Some(()),
        _ => None,
    })
    .await;
}

/// Base units a completed trade filled and those the order still offers,
/// with the maker's fill notice, as the maker reported them.
type Fill = (u64, u64, Option<Message>);

fn fill_of(event: &NetworkEvent) -> Option<Fill> {
    match event {
        NetworkEvent::OrderFilled {
            amount,
            remaining,
            notice,
            ..
        } => Some((*amount, *remaining, notice.clone())),
        _ => None,
    }
}

/// Waits until `trade` ends on `net`; its last state, and the fill if this
/// node is the maker.
async fn wait_trade_end(net: &mut Network, trade: Option<TradeId>) -> (TradeState, Option<Fill>) {
    let mut filled = None;
    loop {
        let (state, role) = wait_for(net, "a trade step", EVENT_TIMEOUT, |e| match e {
            NetworkEvent::TradeUpdated {
                trade_id,
                state,
                role,
                ..
            } if trade.is_none_or(|t| t == *trade_id) => Some((state.clone(), *role)),
            e => {
                filled = fill_of(e).or(filled.take());
                None
            }
        })
        .await;
        if state.is_final() {
            if role == Role::Maker && state == TradeState::Completed && filled.is_none() {
                // The fill is reported right after the last step.
                filled = Some(wait_for(net, "OrderFilled", EVENT_TIMEOUT, fill_of).await);
            }
            return (state, filled);
        }
    }
}

struct Market {
    index: InMemoryIndex,
    broadcaster: RecordingBroadcaster,
}

impl Market {
    fn new() -> Self {
        Market {
            index: InMemoryIndex::new(),
            broadcaster: RecordingBroadcaster::default(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_takes_half_of_a_makers_rune_order_directly() {
    let mut market = Market::new();
    let maker_wallet = funded_wallet(1, 1_000, 20_000, &mut market.index);
    let taker_wallet = funded_wallet(3, 0, 200_000, &mut market.index);
    let (mut maker, maker_addr) = spawn_node(test_config().with_trading(trading(
        maker_wallet,
        &market.index,
        &market.broadcaster,
    )))
    .await;
    let (mut taker, _) = spawn_node(test_config().with_trading(trading(
        taker_wallet,
        &market.index,
        &market.broadcaster,
    )))
    .await;
    // A third node that only watches the book.
    let (mut watcher, _) = spawn_node(test_config()).await;
    taker.dial(maker_addr.clone()).await.unwrap();
    watcher.dial(maker_addr).await.unwrap();
    wait_subscribed(&mut taker, maker.local_peer_id()).await;
    wait_subscribed(&mut watcher, maker.local_peer_id()).await;
    let (order, _) = maker.orderbook().create(rune_sale()).await.unwrap();
    wait_in_book(&mut taker, order.id).await;
    wait_in_book(&mut watcher, order.id).await;

    let trade = taker.trades().take(order.id, 500).await.unwrap();
    let (taker_end, _) = wait_trade_end(&mut taker, Some(trade)).await;
    let (maker_end, filled) = wait_trade_end(&mut maker, Some(trade)).await;
    assert_eq!(taker_end, TradeState::Completed);
    assert_eq!(maker_end, TradeState::Completed);
    let (amount, remaining, notice) = filled.expect("the maker reports the fill");
    assert_eq!((amount, remaining), (500, 500));
    // The maker's signed update with the remaining amount reaches every
    // book through the trade topic.
    let Some(Message::OrderUpdate(update)) = notice else {
        panic!("a fill notice that is an update: {notice:?}");
    };
    let update = update.verify().expect("signed by the maker");
    assert_eq!(
        (update.order_id, update.maker, update.fields.amount),
        (order.id, order.maker, 500)
    );
    assert_eq!(
        wait_remaining(&mut watcher, order.id, 500).await.maker,
        order.maker
    );
    wait_remaining(&mut taker, order.id, 500).await;
    let own = maker.orderbook().own_orders().await.unwrap();
    assert_eq!(own[0].0.amount, 500);
    let got = market.broadcaster.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "broadcast once");
    // Both list it, with the transaction's id.
    let listed = taker.trades().list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].txid.as_deref(),
        Some(got[0].compute_txid().to_string().as_str())
    );
    assert_eq!(maker.trades().list().await.unwrap()[0].role, Role::Maker);

    // The rest is still there for the next taker; more is refused by the
    // taker's own node, which knows what remains from the notice.
    let err = taker.trades().take(order.id, 600).await.unwrap_err();
    assert!(
        matches!(
            err,
            TradeCommandError::Trade(TradeError::Fill(FillError::Amount {
                amount: 600,
                max: 500
            }))
        ),
        "{err:?}"
    );
    maker.shutdown().await.unwrap();
    taker.shutdown().await.unwrap();
    watcher.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_reaches_a_relay_only_maker_through_the_circuit_and_trades() {
    let relay = TestRelay::spawn().await;
    let mut market = Market::new();
    let maker_wallet = funded_wallet(5, 1_000, 20_000, &mut market.index);
    let taker_wallet = funded_wallet(7, 0, 200_000, &mut market.index);
    let maker_key = Keypair::generate_ed25519();
    let mut maker = Network::new(
        test_config()
            .with_identity(Identity::Keypair(maker_key))
            .with_relay_peers(vec![relay.addr.clone()])
            .with_trading(trading(maker_wallet, &market.index, &market.broadcaster)),
    )
    .await
    .unwrap();
    let maker_id: PeerId = maker.local_peer_id();
    wait_for(&mut maker, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { .. }).then_some(())
    })
    .await;
    let mut taker = Network::new(test_config().with_trading(trading(
        taker_wallet,
        &market.index,
        &market.broadcaster,
    )))
    .await
    .unwrap();
    let circuit = relay
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(maker_id));
    assert_eq!(taker.dial(circuit).await.unwrap(), maker_id);
    wait_subscribed(&mut taker, maker_id).await;
    let peers = taker.peers().await.unwrap();
    assert!(peers.iter().any(|p| p.peer_id == maker_id && p.relayed));

    let (order, _) = maker.orderbook().create(rune_sale()).await.unwrap();
    wait_in_book(&mut taker, order.id).await;
    // The whole order: the maker's fill notice is its cancel.
    let trade = taker.trades().take(order.id, 1_000).await.unwrap();
    let (taker_end, _) = wait_trade_end(&mut taker, Some(trade)).await;
    assert_eq!(taker_end, TradeState::Completed);
    let (maker_end, filled) = wait_trade_end(&mut maker, Some(trade)).await;
    assert_eq!(maker_end, TradeState::Completed);
    let (amount, remaining, notice) = filled.expect("the maker reports the fill");
    assert_eq!((amount, remaining), (1_000, 0));
    let Some(Message::OrderCancel(cancel)) = notice else {
        panic!("a fill notice that is a cancel: {notice:?}");
    };
    assert_eq!(
        cancel.verify().expect("signed by the maker").order_id,
        order.id
    );
    // The cancel may have come while the trade's wait read the events.
    let book = taker.orderbook().book(TEST_RUNE, Asset::Btc).await.unwrap();
    if !book.asks.is_empty() {
        wait_for(&mut taker, "the filled order leaves the book", EVENT_TIMEOUT, |e| {
            matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled { order_id, .. }) if *order_id == order.id)
                .then_some(())
        })
        .await;
    }
    let book = taker.orderbook().book(TEST_RUNE, Asset::Btc).await.unwrap();
    assert!(book.asks.is_empty() && book.bids.is_empty(), "{book:?}");
    assert_eq!(market.broadcaster.got.lock().unwrap().len(), 1);
    maker.shutdown().await.unwrap();
    taker.shutdown().await.unwrap();
}
