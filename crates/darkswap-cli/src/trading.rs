//! Trading in the daemon: the key wallet in the data directory, the chain
//! services it trades with (Esplora for coins and broadcasts, or Bitcoin
//! Core for broadcasts; ord for runes), and the wallet's sync with them.
//!
//! The wallet file (`wallet.json`, mode 0600) is made at the first start
//! with trading on: one P2TR key (receives: runes and coins) and one
//! P2WPKH key (change), from the operating system's randomness. A file
//! for another network than `bitcoin_network` is refused, never replaced.
//!
//! Trades are kept in the daemon's database (`store/trades.rs`) before
//! each message they send; after a restart they come back as recovered
//! trades that sign nothing more.
//!
//! The wallet's coins come from the chain, not from the file: every
//! `wallet_sync_interval` (and on `POST /v1/wallet/sync`) each address's
//! unspent outputs are listed by Esplora, ord says which runes each holds,
//! and the wallet takes the result. An output ord has not indexed yet is
//! left out until it has (its runes are unknown). A coin a running trade
//! committed stays until the trade ends, listed or not.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use darkswap_chain::{
    CoreRpcAuth, CoreRpcBroadcaster, CoreRpcConfig, EsploraClient, EsploraConfig, OrdConfig,
    OrdIndex,
};
use darkswap_p2p::{
    Broadcaster, Trading,
    darkswap_trade::{
        KeyWallet, Wallet, WalletFileError, bitcoin::Network, negotiation::NegotiationConfig,
    },
};
use tokio_util::sync::CancellationToken;

use crate::{
    store::{StoreError, TradeDb},
    v1,
};

/// Trades at once when nothing sets `max_trades`.
pub const DEFAULT_MAX_TRADES: usize = 16;

/// How often the wallet syncs when nothing sets `wallet_sync_interval`.
pub const DEFAULT_WALLET_SYNC: Duration = Duration::from_secs(30);

/// The wallet file in the data directory.
pub const WALLET_FILE: &str = "wallet.json";

/// What trading runs with, checked by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingOptions {
    /// The Bitcoin network.
    pub network: Network,
    /// Esplora's root.
    pub esplora_url: String,
    /// ord's root.
    pub ord_url: String,
    /// Bitcoin Core's RPC URL and cookie file, to broadcast there.
    pub bitcoin_rpc: Option<(String, PathBuf)>,
    /// PEM certificates to trust for the services' `https://` besides the
    /// system's (`chain_ca_file`).
    pub extra_roots: Vec<u8>,
    /// Trades at once.
    pub max_trades: usize,
    /// Deadline of each step.
    pub step_timeout: Duration,
    /// Deadline of a whole trade.
    pub trade_timeout: Duration,
    /// How often the wallet syncs.
    pub wallet_sync_interval: Duration,
}

/// Why trading could not start or sync.
#[derive(Debug, thiserror::Error)]
pub enum TradingError {
    /// A service's URL or settings are unusable.
    #[error("trading: {0}")]
    Service(#[from] darkswap_chain::ConfigError),
    /// The wallet file could not be read or written.
    #[error("trading: {0}")]
    WalletFile(#[from] WalletFileError),
    /// The wallet file is for another network.
    #[error(
        "trading: {path} holds a {file} wallet but bitcoin_network is {configured}: \
         move the file away or fix the setting"
    )]
    WrongNetwork {
        /// The file.
        path: PathBuf,
        /// Its network.
        file: Network,
        /// The configured one.
        configured: Network,
    },
    /// Esplora or ord failed.
    #[error(transparent)]
    Sync(#[from] darkswap_chain::WalletSyncError),
    /// The trades' database could not be opened or read.
    #[error("trading: {0}")]
    Store(#[from] StoreError),
}

impl TradingOptions {
    /// Checks that every service can be set up with these settings.
    pub fn check(&self) -> Result<(), TradingError> {
        self.esplora()?;
        self.ord()?;
        self.broadcaster()?;
        Ok(())
    }

    fn esplora(&self) -> Result<EsploraClient, TradingError> {
        Ok(EsploraClient::new(
            EsploraConfig::new(&self.esplora_url).with_extra_roots(self.extra_roots.clone()),
        )?)
    }

    fn ord(&self) -> Result<OrdIndex, TradingError> {
        Ok(OrdIndex::new(
            OrdConfig::new(&self.ord_url).with_extra_roots(self.extra_roots.clone()),
        )?)
    }

    fn broadcaster(&self) -> Result<Arc<dyn Broadcaster>, TradingError> {
        Ok(match &self.bitcoin_rpc {
            Some((url, cookie)) => Arc::new(CoreRpcBroadcaster::new(
                CoreRpcConfig::new(url.clone(), CoreRpcAuth::CookieFile(cookie.clone()))
                    .with_extra_roots(self.extra_roots.clone()),
            )?),
            None => Arc::new(self.esplora()?),
        })
    }
}

/// The daemon's wallet and the services it syncs with.
#[derive(Debug, Clone)]
pub struct WalletService {
    wallet: Arc<Mutex<KeyWallet>>,
    esplora: EsploraClient,
    ord: OrdIndex,
    interval: Duration,
}

/// Sets trading up: the wallet from `data_dir` (made if missing), the
/// services, the negotiation's deadlines.
pub fn setup(
    options: &TradingOptions,
    data_dir: &Path,
) -> Result<(Trading, WalletService), TradingError> {
    let wallet = Arc::new(Mutex::new(load_or_create(
        &data_dir.join(WALLET_FILE),
        options.network,
    )?));
    let ord = options.ord()?;
    let mut negotiation = NegotiationConfig::default();
    negotiation.step_timeout = options.step_timeout;
    negotiation.trade_timeout = options.trade_timeout;
    let mut trading = Trading::new(
        wallet.clone() as Arc<Mutex<dyn Wallet + Send>>,
        Arc::new(ord.clone()),
        options.broadcaster()?,
    )
    .with_negotiation(negotiation);
    trading.max_trades = options.max_trades;
    // Trades from before a restart come back as recovered trades.
    let db = TradeDb::open(data_dir)?;
    let (records, unreadable) = db.load(crate::v1::unix_secs(std::time::SystemTime::now()))?;
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "stored trade rows that no longer read were skipped"
        );
    }
    tracing::info!(trades = records.len(), "trades loaded from the database");
    let trading = trading.with_store(Arc::new(db), records);
    let service = WalletService {
        wallet,
        esplora: options.esplora()?,
        ord,
        interval: options.wallet_sync_interval,
    };
    Ok((trading, service))
}

fn load_or_create(path: &Path, network: Network) -> Result<KeyWallet, TradingError> {
    if path.exists() {
        let wallet = KeyWallet::load(path)?;
        if wallet.network() != network {
            return Err(TradingError::WrongNetwork {
                path: path.to_owned(),
                file: wallet.network(),
                configured: network,
            });
        }
        return Ok(wallet);
    }
    let wallet = KeyWallet::generate(network)?;
    wallet.save(path)?;
    tracing::info!(path = %path.display(), %network, "new trading wallet");
    Ok(wallet)
}

impl WalletService {
    /// Asks Esplora for each address's coins and ord for their runes, and
    /// gives the wallet the result ([`darkswap_chain::sync_wallet`]).
    /// Returns the wallet as it then stands.
    pub async fn sync(&self) -> Result<v1::Wallet, TradingError> {
        darkswap_chain::sync_wallet(&self.wallet, &self.esplora, &self.ord).await?;
        Ok(self.view())
    }

    /// The wallet as it stands, without asking the chain.
    pub fn view(&self) -> v1::Wallet {
        v1::Wallet::from(&*self.lock())
    }

    /// Syncs every interval until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "wallet sync failed; trying again next interval");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyWallet> {
        // The wallet's state is a set of coins, consistent at every step:
        // usable after a panic elsewhere.
        self.wallet.lock().unwrap_or_else(|p| p.into_inner())
    }
}
