//! `darkswap daemon`: a DarkSwap node with a local HTTP API. This file only
//! wires the parts together: the store, the node, the state owner, the API
//! server, and the signals that stop them.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use darkswap_p2p::{
    Identity, Multiaddr, Network, NetworkConfig, OrderbookConfig, RelayConfig, ReputationConfig,
    SignalingOptions, SyncConfig,
};
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    metrics::DaemonMetrics,
    state,
    store::Store,
    trading::{self, TradingOptions},
};

/// What `darkswap daemon` was asked to run.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Identity key and database.
    pub data_dir: PathBuf,
    /// API address (loopback by default).
    pub api: SocketAddr,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Relays named by the user (the pool's configured relays).
    pub relays: Vec<Multiaddr>,
    /// How relays are used and chosen.
    pub relay: RelayConfig,
    /// Addresses the node is known to be reachable at.
    pub external_addresses: Vec<Multiaddr>,
    /// Kademlia's k.
    pub kad_bucket_size: usize,
    /// Kademlia's record time to live.
    pub kad_record_ttl: Duration,
    /// Bootstrap peers.
    pub bootstrap: Vec<Multiaddr>,
    /// mDNS on or off.
    pub mdns: bool,
    /// How often own open orders are re-announced.
    pub order_refresh: Duration,
    /// How long an order lives in the book without a re-announcement.
    pub order_ttl: Duration,
    /// Length of a first automatic ban; repeat offenders get longer ones.
    pub ban_duration: Duration,
    /// Longest automatic ban.
    pub max_ban_duration: Duration,
    /// Orders the book holds at most.
    pub max_orders: usize,
    /// Orders one maker may have in the book.
    pub max_orders_per_maker: usize,
    /// How often the book is reconciled with one more peer.
    pub anti_entropy_interval: Duration,
    /// Trading, when on.
    pub trading: Option<TradingOptions>,
    /// WebRTC data channels through relays' signaling servers.
    pub webrtc: bool,
    /// Relays' public signaling ports.
    pub webrtc_signaling: Vec<Multiaddr>,
    /// The signaling port on each relay's host; 0: only `webrtc_signaling`.
    pub webrtc_signaling_port: u16,
    /// Tokens and TLS roots for the signaling relays.
    pub webrtc_options: SignalingOptions,
    /// Serve `/perf/1.0.0`.
    pub perf: bool,
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(opts: DaemonOptions) -> anyhow::Result<()> {
    // The options come checked from `ConfigFile::validate`.
    let store = Store::open(&opts.data_dir)?;
    let stored = store.load()?;
    // Bans from before a restart are in force before the first connection.
    tracing::info!(bans = stored.bans.len(), "bans loaded from the database");
    let trading = opts
        .trading
        .as_ref()
        .map(|t| trading::setup(t, &opts.data_dir))
        .transpose()?;
    let (trading, wallet) = trading.unzip();
    let mut config = NetworkConfig::default();
    if let Some(trading) = trading {
        config = config.with_trading(trading);
    }
    let network = Network::new(
        config
            .with_identity(Identity::File(opts.data_dir.join("identity.key")))
            .with_webrtc_certificate(opts.data_dir.join("webrtc.pem"))
            .with_listen_addresses(opts.listen.clone())
            .with_relay_peers(opts.relays.clone())
            .with_relay(opts.relay.clone())
            .with_external_addresses(opts.external_addresses.clone())
            .with_kad_bucket_size(opts.kad_bucket_size)
            .with_kad_record_ttl(opts.kad_record_ttl)
            .with_bootstrap_peers(opts.bootstrap.clone())
            .with_mdns(opts.mdns)
            .with_perf(opts.perf)
            // Naming relays turns signaling on; `webrtc` decides.
            .with_webrtc_signaling_relays(opts.webrtc_signaling.clone())
            .with_webrtc_signaling(
                opts.webrtc,
                (opts.webrtc_signaling_port != 0).then_some(opts.webrtc_signaling_port),
            )
            .with_webrtc_signaling_options(opts.webrtc_options.clone())
            .with_orderbook(OrderbookConfig {
                refresh_interval: opts.order_refresh,
                ttl: opts.order_ttl,
                max_orders: opts.max_orders,
                max_orders_per_maker: opts.max_orders_per_maker,
            })
            .with_sync(SyncConfig::default().with_anti_entropy_interval(opts.anti_entropy_interval))
            .with_reputation(ReputationConfig {
                base_ban_duration: opts.ban_duration,
                max_ban_duration: opts.max_ban_duration,
                initial_bans: stored.bans.clone(),
                ..ReputationConfig::default()
            }),
    )
    .await?;
    let local_peer_id = network.local_peer_id();
    let network_handle = network.handle();
    let metrics = Arc::new(DaemonMetrics::default());
    let (owner, state) =
        state::Owner::start(network, store, stored, opts.order_ttl, metrics.clone()).await?;
    let stop = CancellationToken::new();
    let api = Arc::new(api::Api {
        network: network_handle,
        state,
        events: owner.events(),
        nat: owner.nat_status(),
        metrics,
        wallet: wallet.clone(),
        stop: stop.clone(),
    });
    if let Some(wallet) = wallet {
        tokio::spawn(wallet.run(stop.clone()));
    }
    let listener = tokio::net::TcpListener::bind(opts.api)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the API on {}: {e}", opts.api))?;
    let api_addr = listener.local_addr()?;
    tracing::info!(peer_id = %local_peer_id, api = %api_addr, "daemon started");

    let server = tokio::spawn({
        let router = api::router(api);
        let stop = stop.clone();
        async move {
            // A lingering close, so a client still sending a body the API
            // refused gets the refusal rather than a reset.
            axum::serve(api::LingeringListener(listener), router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });
    let owner = tokio::spawn(owner.run(stop.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        // The node stopped on its own: nothing left to serve.
        () = stop.cancelled() => {}
    }
    stop.cancel();
    server.await??;
    owner.await??;
    Ok(())
}
