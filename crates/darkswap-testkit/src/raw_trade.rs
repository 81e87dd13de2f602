//! A trading peer without scruples: it runs the honest negotiation of
//! `darkswap_trade` (as a taker, or as the maker of an order of its own) on
//! a libp2p swarm of its own, and lets a test change any step before it
//! goes out (and sign it again), forge one, replay one, or send one for a
//! trade it is not in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use darkswap_p2p::{
    Keypair, TradeCodec,
    core::trade::TradeId,
    darkswap_trade::{
        AssetIndex, InMemoryIndex, KeyWallet, Trade,
        bitcoin::Psbt,
        negotiation::{NegotiationConfig, Trades, TradesOutput},
    },
    proto::{
        MAX_MESSAGE_SIZE, Order, PsbtCreate, PsbtFinalize, PsbtSign, SignedTradeMessage,
        TradeMessageBody, TradePayload,
    },
    trade_behaviour,
};
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, Swarm, request_response, swarm::SwarmEvent};
use prost::Message as _;
use web_time::Instant;

use crate::EVENT_TIMEOUT;

/// See the module docs.
#[allow(missing_debug_implementations)]
pub struct RawTrader {
    /// Its identity (it signs every step with it).
    pub key: Keypair,
    swarm: Swarm<request_response::Behaviour<TradeCodec>>,
    trades: Trades,
    wallet: KeyWallet,
    index: InMemoryIndex,
}

impl RawTrader {
    /// A peer with a fresh key, trading from `wallet`, that looks holdings
    /// up in `index`.
    pub fn new(wallet: KeyWallet, index: InMemoryIndex) -> Self {
        let key = Keypair::generate_ed25519();
        let swarm = crate::raw_swarm(&key, |_| trade_behaviour(MAX_MESSAGE_SIZE, EVENT_TIMEOUT));
        let trades = Trades::new(key.clone(), NegotiationConfig::default(), 16);
        RawTrader {
            key,
            swarm,
            trades,
            wallet,
            index,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Its wallet.
    pub fn wallet(&self) -> &KeyWallet {
        &self.wallet
    }

    /// Trade `id` as its negotiation knows it, once both offers are in.
    pub fn trade(&self, id: TradeId) -> Trade {
        self.trades
            .get(&id)
            .and_then(|s| s.trade())
            .cloned()
            .expect("the trade with both offers")
    }

    /// Dials `addr` and waits until the connection is up.
    pub async fn connect(&mut self, addr: Multiaddr) {
        self.swarm.dial(addr).expect("dial");
        let up = async {
            loop {
                if let SwarmEvent::ConnectionEstablished { .. } =
                    self.swarm.select_next_some().await
                {
                    return;
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, up)
            .await
            .expect("the raw trader connected");
    }

    /// Starts taking `amount` of `order` as a new trade; its proposal is
    /// then [`RawTrader::next_step`].
    pub fn take(&mut self, order: &Order, amount: u64) -> TradeId {
        let id = TradeId::new(rand_bytes());
        self.trades
            .take(
                id,
                order,
                amount,
                &mut self.wallet,
                Instant::now(),
                unix_now(),
            )
            .expect("the raw trader takes the order");
        id
    }

    /// Answers proposals for `order` (its own, signed with its key) as an
    /// honest maker would, until a test changes a step.
    pub fn offer_order(&mut self, order: Order) {
        self.trades.set_order(order);
    }

    /// Hands `message` from `from` to its negotiation, as an honest trader
    /// would.
    pub fn feed(&mut self, from: PeerId, message: &SignedTradeMessage) {
        let _ =
            self.trades
                .handle_message(from, message, &mut self.wallet, Instant::now(), unix_now());
    }

    /// The next message its negotiation sends, not sent: holdings are
    /// looked up in its index and broadcasts succeed on the spot. Panics if
    /// the negotiation has nothing to send.
    pub fn next_step(&mut self) -> SignedTradeMessage {
        while let Some(output) = self.trades.poll_output() {
            match output {
                TradesOutput::Send { message, .. } => return message,
                TradesOutput::LookUpHoldings { trade, outpoints } => {
                    // What its index does not know, it believes as claimed
                    // in the offers (it checks nothing on its own behalf).
                    let mut snapshot = InMemoryIndex::snapshot(&self.index, outpoints.clone());
                    if let Some(t) = self.trades.get(&trade).and_then(|s| s.trade()) {
                        for input in t.maker.inputs.iter().chain(&t.taker.inputs) {
                            if outpoints.contains(&input.outpoint)
                                && snapshot.holdings(&input.outpoint).is_none()
                            {
                                snapshot.insert(input.outpoint, input.holdings.clone());
                            }
                        }
                    }
                    let _ =
                        self.trades
                            .handle_holdings(trade, snapshot, &mut self.wallet, unix_now());
                }
                TradesOutput::Broadcast { trade, tx } => {
                    let _ = self.trades.handle_broadcast(
                        trade,
                        Ok(tx.compute_txid()),
                        &mut self.wallet,
                        unix_now(),
                    );
                }
                _ => {}
            }
        }
        panic!("the raw trader's negotiation has nothing to send");
    }

    /// Sends `message` to `peer` and waits for its receipt.
    pub async fn send(&mut self, peer: PeerId, message: SignedTradeMessage) {
        let id = self.swarm.behaviour_mut().send_request(&peer, message);
        let receipt = async {
            loop {
                match self.swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, .. },
                        ..
                    }) if request_id == id => return,
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    }) if request_id == id => panic!("trade message not delivered: {error}"),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, receipt)
            .await
            .expect("the receipt of a trade message");
    }

    /// The next trade message a peer sends it, with the sender (receipted,
    /// not fed to the negotiation).
    pub async fn receive(&mut self) -> (PeerId, SignedTradeMessage) {
        self.receive_within(EVENT_TIMEOUT)
            .await
            .expect("a trade message")
    }

    /// [`RawTrader::receive`], or `None` if nothing comes within `limit`.
    pub async fn receive_within(
        &mut self,
        limit: Duration,
    ) -> Option<(PeerId, SignedTradeMessage)> {
        let next = async {
            loop {
                if let SwarmEvent::Behaviour(request_response::Event::Message {
                    peer,
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                }) = self.swarm.select_next_some().await
                {
                    let _ = self.swarm.behaviour_mut().send_response(channel, ());
                    return (peer, request);
                }
            }
        };
        tokio::time::timeout(limit, next).await.ok()
    }
}

/// The body of a signed trade message (which the test trusts: it made it or
/// got it from a node under test).
pub fn body_of(message: &SignedTradeMessage) -> TradeMessageBody {
    TradeMessageBody::decode(message.body.as_slice()).expect("a trade message body")
}

/// `message` with its body changed by `edit`, signed again with `key`.
pub fn resign(
    key: &Keypair,
    message: &SignedTradeMessage,
    edit: impl FnOnce(&mut TradeMessageBody),
) -> SignedTradeMessage {
    let mut body = body_of(message);
    edit(&mut body);
    body.sign(key).expect("the key is the body's sender")
}

/// A step that carries a PSBT (`PsbtCreate`, `PsbtSign`, `PsbtFinalize`)
/// with the PSBT changed by `edit`, signed again with `key`: a PSBT its
/// sender changed to cheat.
pub fn with_psbt(
    key: &Keypair,
    message: &SignedTradeMessage,
    edit: impl FnOnce(&mut Psbt),
) -> SignedTradeMessage {
    resign(key, message, |body| {
        let psbt_of = |bytes: &[u8]| {
            let mut psbt = Psbt::deserialize(bytes).expect("the honest PSBT");
            edit(&mut psbt);
            psbt.serialize()
        };
        match &mut body.payload {
            Some(TradePayload::PsbtCreate(PsbtCreate { psbt, .. }))
            | Some(TradePayload::PsbtSign(PsbtSign { psbt, .. }))
            | Some(TradePayload::PsbtFinalize(PsbtFinalize { psbt, .. })) => {
                *psbt = psbt_of(psbt);
            }
            other => panic!("not a step with a PSBT: {other:?}"),
        }
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}
