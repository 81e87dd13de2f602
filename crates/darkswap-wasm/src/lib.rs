//! `DarkSwapWasm`: a full DarkSwap node in a browser page.
//!
//! The page runs the SDK's libp2p node (`darkswap-p2p`) compiled to wasm32:
//! the same gossip topics and validation as native nodes, orderbook sync on
//! join, signed orders, relay reservations and circuits. It reaches relays
//! over WebSocket (`/ws`, `/wss`) and native nodes over WebRTC-direct
//! (`/webrtc-direct`), and is reached through relay circuits. Its identity
//! key lives in IndexedDB, so a reload keeps the peer id.
//!
//! The crate is empty on every target but `wasm32`; `clients/wasm` holds
//! the JavaScript package built from it.
#![cfg(target_arch = "wasm32")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod key_store;
mod node;
mod trading;
mod types;

pub use config::{ConfigError, TradingSettings, WasmConfig};
pub use key_store::{
    KeyStoreError, load_or_create as load_or_create_identity, load_or_create_wallet,
};
pub use node::DarkSwapWasm;

use wasm_bindgen::prelude::wasm_bindgen;

/// Runs once when the module loads: panics show in the console with their
/// message instead of "unreachable executed".
#[wasm_bindgen(start)]
pub fn init() {
    console_error_panic_hook::set_once();
}

/// Sends the node's logs at `level` (`error`, `warn`, `info`, `debug` or
/// `trace`) and above to the browser console. Once per page; later calls
/// change nothing.
#[wasm_bindgen]
pub fn init_logging(level: &str) -> Result<(), wasm_bindgen::JsValue> {
    use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt};
    let level: LevelFilter = level
        .parse()
        .map_err(|_| js_sys::Error::new(&format!("level: {level:?} is not a log level")))?;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(tracing_web::MakeWebConsoleWriter::new());
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(level)
        .try_init();
    Ok(())
}
