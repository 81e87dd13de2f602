//! A key wallet's coins from the chain: every address's unspent outputs
//! from Esplora, their runes from ord. The daemon syncs on a timer and on
//! request; a browser node when its page asks.

use std::{collections::BTreeSet, sync::Mutex};

use darkswap_p2p::darkswap_trade::{AssetIndex, KeyWallet, OfferedInput, Wallet, bitcoin::TxOut};

use crate::{EsploraClient, EsploraError, OrdError, OrdIndex};

/// Why a wallet sync failed; the wallet is then left as it was.
#[derive(Debug, thiserror::Error)]
pub enum WalletSyncError {
    /// Esplora failed.
    #[error("wallet sync: {0}")]
    Esplora(#[from] EsploraError),
    /// ord failed.
    #[error("wallet sync: {0}")]
    Ord(#[from] OrdError),
}

/// Asks Esplora for each of the wallet's addresses' coins and ord for
/// their runes, and gives the wallet the result: new coins are added, and
/// coins no longer listed are dropped unless a running trade holds them.
/// An output ord has not indexed yet is left out until it has (its runes
/// are unknown, and offering it could give runes away as plain sats).
///
/// The lock is held only to read the addresses and to apply the result,
/// never across a call.
pub async fn sync_wallet(
    wallet: &Mutex<KeyWallet>,
    esplora: &EsploraClient,
    ord: &OrdIndex,
) -> Result<(), WalletSyncError> {
    let addresses = lock(wallet).addresses();
    let mut listed = Vec::new();
    for address in &addresses {
        let script = address.script_pubkey();
        for utxo in esplora.address_utxos(address).await? {
            listed.push((utxo, script.clone()));
        }
    }
    let index = ord
        .lookup(listed.iter().map(|(u, _)| u.outpoint).collect())
        .await?;
    let mut wallet = lock(wallet);
    let mut seen = BTreeSet::new();
    for (utxo, script) in listed {
        let Some(holdings) = index.holdings(&utxo.outpoint) else {
            continue;
        };
        seen.insert(utxo.outpoint);
        let input = OfferedInput {
            outpoint: utxo.outpoint,
            prevout: TxOut {
                value: utxo.value,
                script_pubkey: script,
            },
            holdings,
        };
        if let Err(e) = wallet.add_utxo(input) {
            tracing::warn!(error = %e, outpoint = %utxo.outpoint, "coin not taken");
        }
    }
    let gone: Vec<_> = wallet
        .utxos()
        .iter()
        .map(|u| u.outpoint)
        .filter(|o| !seen.contains(o) && !wallet.is_committed(o))
        .collect();
    wallet.spent(&gone);
    Ok(())
}

fn lock(wallet: &Mutex<KeyWallet>) -> std::sync::MutexGuard<'_, KeyWallet> {
    // The wallet's state is a set of coins, consistent at every step:
    // usable after a panic elsewhere.
    wallet.lock().unwrap_or_else(|p| p.into_inner())
}
