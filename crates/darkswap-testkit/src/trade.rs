//! Trading fixtures: regtest wallets funded with made-up UTXOs (the
//! consensus check only needs each prevout's script and amount), one asset
//! index that knows them all, and a broadcaster that records what it gets.

use std::sync::{Arc, Mutex};

use darkswap_p2p::{
    Broadcaster, Trading,
    darkswap_trade::{
        Asset, Holdings, InMemoryIndex, KeyKind, KeyWallet, OfferedInput,
        bitcoin::{
            Amount, Network as BitcoinNetwork, OutPoint, Transaction, TxOut, Txid,
            hashes::{Hash, sha256d},
            secp256k1::SecretKey,
        },
    },
};
use darkswap_proto::{NewOrder, PRICE_SCALE, Side};
use futures::future::BoxFuture;

/// The rune the fixtures trade.
pub const TEST_RUNE: Asset = Asset::Rune {
    block: 840_000,
    tx: 3,
};

/// A maker's order: sell 1,000 of [`TEST_RUNE`] at 50 sat each, valid for
/// an hour from now.
pub fn rune_sale() -> NewOrder {
    let now = crate::now();
    NewOrder {
        side: Side::Sell,
        base: TEST_RUNE,
        quote: Asset::Btc,
        amount: 1_000,
        price: 50 * PRICE_SCALE,
        created_at: now,
        expires_at: now + 3600,
        nonce: 1,
    }
}

/// A regtest wallet with a P2WPKH and a P2TR key made from `seed`, holding
/// `runes` of [`TEST_RUNE`] in one UTXO (10,000 sat on it) and `sats` in
/// two plain UTXOs; each UTXO also goes into `index`.
pub fn funded_wallet(seed: u8, runes: u128, sats: u64, index: &mut InMemoryIndex) -> KeyWallet {
    let key = |n: u8| SecretKey::from_slice(&[n; 32]).expect("1..=254 repeated is a valid key");
    let mut wallet = KeyWallet::new(BitcoinNetwork::Regtest)
        .with_key(key(seed), KeyKind::P2wpkh)
        .with_key(key(seed + 1), KeyKind::P2tr);
    let mut fund = |label: &str, key: usize, sats: u64, holdings: Holdings| {
        let script = wallet.address(key).expect("the key exists").script_pubkey();
        let utxo = OfferedInput {
            outpoint: OutPoint {
                txid: Txid::from_raw_hash(sha256d::Hash::hash(
                    format!("{seed} {label}").as_bytes(),
                )),
                vout: 0,
            },
            prevout: TxOut {
                value: Amount::from_sat(sats),
                script_pubkey: script,
            },
            holdings: holdings.clone(),
        };
        index.insert(utxo.outpoint, holdings);
        wallet.add_utxo(utxo).expect("the wallet's own script");
    };
    if runes > 0 {
        fund("runes", 0, 10_000, Holdings::from([(TEST_RUNE, runes)]));
    }
    fund("coins 0", 0, sats / 2, Holdings::new());
    fund("coins 1", 1, sats - sats / 2, Holdings::new());
    wallet
}

/// A broadcaster that keeps every transaction it is given.
#[derive(Debug, Default, Clone)]
pub struct RecordingBroadcaster {
    /// What it got, in order.
    pub got: Arc<Mutex<Vec<Transaction>>>,
}

impl Broadcaster for RecordingBroadcaster {
    fn broadcast(&self, tx: Transaction) -> BoxFuture<'static, Result<Txid, String>> {
        let txid = tx.compute_txid();
        self.got.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        Box::pin(async move { Ok(txid) })
    }
}

/// Trading with `wallet`, the shared `index` and `broadcaster`.
pub fn trading(
    wallet: KeyWallet,
    index: &InMemoryIndex,
    broadcaster: &RecordingBroadcaster,
) -> Trading {
    Trading::new(
        Arc::new(Mutex::new(wallet)),
        Arc::new(index.clone()),
        Arc::new(broadcaster.clone()),
    )
}
