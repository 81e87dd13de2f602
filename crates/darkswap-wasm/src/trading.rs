//! Trading from the page: the wallet (keys in IndexedDB, coins from
//! Esplora and ord), taking orders and following trades. The negotiation
//! is the SDK's, exactly as in the daemon: the page checks every PSBT
//! against the agreed terms before it signs. What it cannot do in a
//! browser is run Bitcoin Core's script interpreter on the result (C++);
//! the Esplora it broadcasts through (and its node) does that.

use std::sync::{Arc, Mutex};

use darkswap_p2p::{
    Trading,
    core::trade::TradeId,
    darkswap_trade::{KeyWallet, Wallet},
    json,
};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{
    config::{ChainServices, TradingSettings, WasmConfig},
    key_store,
    node::{DarkSwapWasm, error, to_js},
};

/// The page's wallet and the services it syncs and broadcasts with.
#[derive(Clone)]
pub(crate) struct TradingParts {
    wallet: Arc<Mutex<KeyWallet>>,
    services: Arc<ChainServices>,
}

impl TradingParts {
    /// The wallet from the node's IndexedDB (made on first use; in memory
    /// when `ephemeral`), and the SDK's [`Trading`] over it.
    pub(crate) async fn set_up(
        config: &WasmConfig,
        settings: &TradingSettings,
    ) -> Result<(TradingParts, Trading), JsValue> {
        let services = settings.services().map_err(error)?;
        let network = config.bitcoin_network().map_err(error)?;
        let keys = if config.ephemeral {
            KeyWallet::generate(network).map_err(error)?
        } else {
            key_store::load_or_create_wallet(&config.identity_store(), network)
                .await
                .map_err(error)?
        };
        let wallet = Arc::new(Mutex::new(keys));
        let mut trading = Trading::new(
            wallet.clone() as Arc<Mutex<dyn Wallet + Send>>,
            Arc::new(services.ord.clone()),
            Arc::new(services.esplora.clone()),
        );
        trading.max_trades = settings.max_trades;
        Ok((
            TradingParts {
                wallet,
                services: Arc::new(services),
            },
            trading,
        ))
    }

    fn view(&self) -> json::Wallet {
        // A poisoned lock still holds a consistent set of coins.
        json::Wallet::from(&*self.wallet.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn parse_trade_id(id: &str) -> Result<TradeId, JsValue> {
    id.parse()
        .map_err(|_| error(format!("trade id: {id:?} is not 64 hex characters")))
}

#[wasm_bindgen]
impl DarkSwapWasm {
    /// The trading wallet as of its last sync: `{network, addresses,
    /// coins}`; the first address receives runes and coins.
    #[wasm_bindgen(unchecked_return_type = "Promise<Wallet>")]
    pub fn wallet(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { to_js(&inner.trading()?.view()) })
    }

    /// Asks Esplora for the wallet's coins and ord for their runes;
    /// resolves to the wallet as it then stands. Coins held by a running
    /// trade stay until it ends.
    #[wasm_bindgen(unchecked_return_type = "Promise<Wallet>")]
    pub fn sync_wallet(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let parts = inner.trading()?;
            darkswap_chain::sync_wallet(
                &parts.wallet,
                &parts.services.esplora,
                &parts.services.ord,
            )
            .await
            .map_err(error)?;
            to_js(&parts.view())
        })
    }

    /// Takes `amount` base units of another maker's order in the book:
    /// proposes the trade with inputs from the wallet. Resolves to the
    /// trade as proposed; its steps follow as `trade_updated` events.
    #[wasm_bindgen(unchecked_return_type = "Promise<Trade>")]
    pub fn take_order(&self, order_id: String, amount: f64) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.trading()?;
            let order = order_id
                .parse()
                .map_err(|_| error(format!("order id: {order_id:?} is not 64 hex characters")))?;
            // A JS number is exact up to 2^53; past that the amount is not
            // the one the user typed.
            if !(amount.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&amount)) {
                return Err(error(format!(
                    "amount: {amount} is not a whole number from 1 to 2^53 - 1"
                )));
            }
            let handle = inner.handle()?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let id = handle
                .trades()
                .take(order, amount as u64)
                .await
                .map_err(error)?;
            let trade = handle
                .trades()
                .list()
                .await
                .map_err(error)?
                .into_iter()
                .find(|t| t.trade_id == id)
                .ok_or_else(|| error(format!("trade {id} vanished")))?;
            to_js(&json::Trade::from(&trade))
        })
    }

    /// Every trade of this node, running or ended.
    #[wasm_bindgen(unchecked_return_type = "Promise<Trade[]>")]
    pub fn trades(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let trades = inner.handle()?.trades().list().await.map_err(error)?;
            to_js(&trades.iter().map(json::Trade::from).collect::<Vec<_>>())
        })
    }

    /// Cancels a trade no party has signed yet.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn cancel_trade(&self, trade_id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let id = parse_trade_id(&trade_id)?;
            inner.handle()?.trades().cancel(id).await.map_err(error)?;
            Ok(JsValue::UNDEFINED)
        })
    }
}
