//! Trades on the node: the `/darkswap/trade/1.0.0` wire, and what a node
//! trades with (a wallet, an asset index, a broadcaster). The negotiation
//! is `darkswap_trade::negotiation`; the swarm task runs it.
//!
//! Framing: a request is a 4-byte big-endian length and one DarkSwap
//! envelope carrying a `SignedTradeMessage`, the length checked against
//! the size limit before the body is read; the response is empty (the
//! receipt of the step, which is answered by a step of its own).

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use darkswap_proto::{Message, SignedTradeMessage, decode_with_limit, encode};
use darkswap_trade::{
    InMemoryIndex, Wallet,
    bitcoin::{OutPoint, Transaction, Txid},
    negotiation::{AcceptAll, NegotiationConfig, ProposalPolicy, TradeRecord},
};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, future::BoxFuture};
use libp2p::{StreamProtocol, request_response};

/// The trade protocol id.
pub const TRADE_PROTOCOL: StreamProtocol = StreamProtocol::new("/darkswap/trade/1.0.0");

/// Where a node learns which runes and alkanes outpoints hold (an
/// `ord server`, or an in-memory index in tests).
pub trait HoldingsSource: Send + Sync + 'static {
    /// The holdings of each of `outpoints`; an outpoint the source does not
    /// know is left out (and the trade is refused).
    fn holdings(
        &self,
        outpoints: Vec<OutPoint>,
    ) -> BoxFuture<'static, Result<InMemoryIndex, String>>;
}

impl HoldingsSource for InMemoryIndex {
    fn holdings(
        &self,
        outpoints: Vec<OutPoint>,
    ) -> BoxFuture<'static, Result<InMemoryIndex, String>> {
        let snapshot = InMemoryIndex::snapshot(self, outpoints);
        Box::pin(async move { Ok(snapshot) })
    }
}

/// Where a node sends a finished transaction (Bitcoin Core RPC, Esplora).
pub trait Broadcaster: Send + Sync + 'static {
    /// Broadcasts `tx`; its txid once the network took it.
    fn broadcast(&self, tx: Transaction) -> BoxFuture<'static, Result<Txid, String>>;
}

/// Where a node keeps its trades ([`TradeRecord`]s) so that a restart,
/// even a `kill -9`, neither forgets one nor signs anything for it again.
/// The swarm task calls [`TradeStore::save`] before each message a trade
/// sends and waits for it: a store should make the write durable and
/// return within milliseconds (the daemon's SQLite, `synchronous=FULL`).
pub trait TradeStore: Send + Sync + 'static {
    /// Keeps `record`, replacing the trade's earlier one.
    fn save(&self, record: &TradeRecord) -> Result<(), String>;
}

/// What a node trades with. Without it, the node does not speak
/// `/darkswap/trade/1.0.0`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Trading {
    /// Deadlines, fee policy, smallest fill. Default:
    /// [`NegotiationConfig::default`].
    pub negotiation: NegotiationConfig,
    /// Trades at once; a maker refuses more as busy. Default: 16.
    pub max_trades: usize,
    /// The wallet that offers inputs and signs (the swarm task holds the
    /// lock only while it calls it).
    pub wallet: Arc<Mutex<dyn Wallet + Send>>,
    /// The asset index.
    pub holdings: Arc<dyn HoldingsSource>,
    /// The broadcaster.
    pub broadcaster: Arc<dyn Broadcaster>,
    /// Where trades are kept. Default: none (trades live in memory only).
    pub store: Option<Arc<dyn TradeStore>>,
    /// Trades read back from the store, brought back at start (see
    /// [`TradeRecord`]). Default: none.
    pub restored: Vec<TradeRecord>,
    /// The maker's say over proposals its orders allow. Default:
    /// [`AcceptAll`].
    pub policy: Arc<dyn ProposalPolicy>,
}

impl std::fmt::Debug for Trading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trading")
            .field("negotiation", &self.negotiation)
            .field("max_trades", &self.max_trades)
            .finish_non_exhaustive()
    }
}

impl Trading {
    /// Trading with `wallet`, `holdings` and `broadcaster`, and the default
    /// policy.
    pub fn new(
        wallet: Arc<Mutex<dyn Wallet + Send>>,
        holdings: Arc<dyn HoldingsSource>,
        broadcaster: Arc<dyn Broadcaster>,
    ) -> Self {
        Trading {
            negotiation: NegotiationConfig::default(),
            max_trades: 16,
            wallet,
            holdings,
            broadcaster,
            store: None,
            restored: Vec::new(),
            policy: Arc::new(AcceptAll),
        }
    }

    /// Puts every proposal for this node's orders to `policy` first (see
    /// [`ProposalPolicy`]).
    pub fn with_policy(mut self, policy: Arc<dyn ProposalPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Keeps trades in `store`, and brings back `restored` (what it held)
    /// at start.
    pub fn with_store(mut self, store: Arc<dyn TradeStore>, restored: Vec<TradeRecord>) -> Self {
        self.store = Some(store);
        self.restored = restored;
        self
    }

    /// Sets [`Trading::negotiation`].
    pub fn with_negotiation(mut self, negotiation: NegotiationConfig) -> Self {
        self.negotiation = negotiation;
        self
    }
}

/// The codec of `/darkswap/trade/1.0.0` (see the module docs), for tools
/// and tests that speak the protocol with a swarm of their own.
#[derive(Debug, Clone)]
pub struct TradeCodec {
    max_size: usize,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl request_response::Codec for TradeCodec {
    type Protocol = StreamProtocol;
    type Request = SignedTradeMessage;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max_size {
            return Err(invalid(format!(
                "frame of {len} bytes over limit {}",
                self.max_size
            )));
        }
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        match decode_with_limit(&body, self.max_size).map_err(|e| invalid(e.to_string()))? {
            Message::SignedTrade(message) => Ok(message),
            other => Err(invalid(format!(
                "unexpected {} on the trade protocol",
                other.kind()
            ))),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut rest = Vec::new();
        io.take(1).read_to_end(&mut rest).await?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(invalid("a trade receipt carries nothing".into()))
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SignedTradeMessage,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = encode(&Message::SignedTrade(request));
        if body.len() > self.max_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "trade message over the size limit",
            ));
        }
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too large"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&body).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.close().await
    }
}

/// The request-response behaviour of `/darkswap/trade/1.0.0`: requests of
/// at most `max_size` bytes, each answered within `timeout`.
pub fn trade_behaviour(
    max_size: usize,
    timeout: Duration,
) -> request_response::Behaviour<TradeCodec> {
    request_response::Behaviour::with_codec(
        TradeCodec { max_size },
        [(TRADE_PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(timeout),
    )
}
