//! Fixtures: two regtest wallets with deterministic keys, funding outputs
//! fabricated out of thin air (the consensus check only needs each prevout's
//! script and amount), an in-memory asset index, and the swap PSBT built
//! from both wallets' offers.
#![allow(dead_code, unreachable_pub)]

pub mod oracle;

use bitcoin::{
    Amount, Network, OutPoint, Psbt, ScriptBuf, Transaction, TxOut, Txid,
    hashes::{Hash, sha256d},
    secp256k1::SecretKey,
};
use darkswap_trade::{
    Asset, AssetAmount, BuildOptions, CheckPolicy, Holdings, InMemoryIndex, KeyKind, KeyWallet,
    OfferRequest, OfferedInput, Role, Terms, Trade, Wallet, build_psbt,
};

pub const RUNE: Asset = Asset::Rune {
    block: 840_000,
    tx: 7,
};
pub const OTHER_RUNE: Asset = Asset::Rune {
    block: 840_123,
    tx: 1,
};
pub const ALKANE: Asset = Asset::Alkane { block: 2, tx: 16 };

/// Sats on every asset UTXO: its postage.
pub const ASSET_UTXO_SATS: u64 = 10_000;
/// What each party budgets for the fee when choosing inputs.
pub const FEE_RESERVE: Amount = Amount::from_sat(20_000);

pub fn secret(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).expect("1..=255 repeated is a valid key")
}

/// A made-up funding outpoint, unique per label.
pub fn outpoint(label: &str) -> OutPoint {
    OutPoint {
        txid: Txid::from_raw_hash(sha256d::Hash::hash(label.as_bytes())),
        vout: 0,
    }
}

/// A script that belongs to nobody in the trade.
pub fn stranger() -> ScriptBuf {
    KeyWallet::new(Network::Regtest).add_key(secret(99), KeyKind::P2wpkh)
}

#[derive(Debug)]
pub struct Swap {
    pub trade: Trade,
    pub maker: KeyWallet,
    pub taker: KeyWallet,
    pub index: InMemoryIndex,
    pub psbt: Psbt,
    /// Every UTXO that exists in this little world, spent or not.
    pub world: Vec<OfferedInput>,
}

/// A party's wallet: a receive key of `kind` and a change key of the other
/// kind, so every swap spends and pays both script types.
pub fn wallet(seed: u8, kind: KeyKind) -> KeyWallet {
    let other = match kind {
        KeyKind::P2wpkh => KeyKind::P2tr,
        KeyKind::P2tr => KeyKind::P2wpkh,
    };
    KeyWallet::new(Network::Regtest)
        .with_key(secret(seed), kind)
        .with_key(secret(seed + 1), other)
}

fn fund(
    wallet: &mut KeyWallet,
    world: &mut Vec<OfferedInput>,
    index: &mut InMemoryIndex,
    label: String,
    key: usize,
    sats: u64,
    holdings: Holdings,
) {
    let script = wallet.address(key).expect("key exists").script_pubkey();
    let utxo = OfferedInput {
        outpoint: outpoint(&label),
        prevout: TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: script,
        },
        holdings: holdings.clone(),
    };
    index.insert(utxo.outpoint, holdings);
    wallet.add_utxo(utxo.clone()).expect("own script");
    world.push(utxo);
}

/// Builds a swap where the maker gives `maker_gives` and the taker
/// `taker_gives`. The asset seller holds the asset in two UTXOs (runes: with
/// `rune_extra` more than it sells, so it gets rune change; alkanes:
/// exactly). Each party also holds plain bitcoin and an unrelated UTXO that
/// it does not offer.
pub fn swap(
    maker_gives: AssetAmount,
    taker_gives: AssetAmount,
    maker_kind: KeyKind,
    taker_kind: KeyKind,
    rune_extra: u128,
) -> Swap {
    let terms = Terms::new(maker_gives, taker_gives).expect("valid terms");
    let mut maker = wallet(1, maker_kind);
    let mut taker = wallet(3, taker_kind);
    let mut index = InMemoryIndex::new();
    let mut world = Vec::new();
    let (seller, leg) = terms.asset_leg();
    for role in [Role::Maker, Role::Taker] {
        let name = format!("{role:?}");
        let w = match role {
            Role::Maker => &mut maker,
            Role::Taker => &mut taker,
        };
        if role == seller {
            let total = leg.amount
                + if matches!(leg.asset, Asset::Rune { .. }) {
                    rune_extra
                } else {
                    0
                };
            let first = total / 2 + total % 2;
            for (i, part) in [first, total / 2].into_iter().enumerate() {
                if part > 0 {
                    fund(
                        w,
                        &mut world,
                        &mut index,
                        format!("{name} asset {i}"),
                        i,
                        ASSET_UTXO_SATS,
                        Holdings::from([(leg.asset, part)]),
                    );
                }
            }
        }
        let btc = terms.gives(role);
        let need = if btc.asset == Asset::Btc {
            btc.amount as u64
        } else {
            0
        };
        fund(
            w,
            &mut world,
            &mut index,
            format!("{name} coins 0"),
            0,
            need / 2 + 40_000,
            Holdings::new(),
        );
        fund(
            w,
            &mut world,
            &mut index,
            format!("{name} coins 1"),
            1,
            need / 2 + 40_000,
            Holdings::new(),
        );
        // Not offered: an unrelated rune the party keeps.
        fund(
            w,
            &mut world,
            &mut index,
            format!("{name} keeps"),
            0,
            5_000,
            Holdings::from([(OTHER_RUNE, 77)]),
        );
    }
    let options = BuildOptions::default();
    let maker_offer = maker
        .offer(&OfferRequest::for_trade(
            &terms,
            Role::Maker,
            &options,
            FEE_RESERVE,
        ))
        .expect("maker can offer");
    let taker_offer = taker
        .offer(&OfferRequest::for_trade(
            &terms,
            Role::Taker,
            &options,
            FEE_RESERVE,
        ))
        .expect("taker can offer");
    let trade = Trade {
        terms,
        maker: maker_offer,
        taker: taker_offer,
    };
    let psbt = build_psbt(&trade, &options).expect("the swap builds");
    Swap {
        trade,
        maker,
        taker,
        index,
        psbt,
        world,
    }
}

impl Swap {
    /// What the fixture's index says `outpoint` holds.
    pub fn index_holdings(&self, outpoint: OutPoint) -> Holdings {
        use darkswap_trade::AssetIndex;
        self.index.holdings(&outpoint).expect("indexed")
    }
}

/// Maker sells `runes` of [`RUNE`] for `sats`.
pub fn maker_sells_runes(runes: u128, sats: u64) -> Swap {
    swap(
        AssetAmount::new(RUNE, runes),
        AssetAmount::btc(sats),
        KeyKind::P2wpkh,
        KeyKind::P2tr,
        500,
    )
}

/// Taker sells `runes` of [`RUNE`] for `sats`.
pub fn taker_sells_runes(runes: u128, sats: u64) -> Swap {
    swap(
        AssetAmount::btc(sats),
        AssetAmount::new(RUNE, runes),
        KeyKind::P2tr,
        KeyKind::P2wpkh,
        500,
    )
}

pub fn policy() -> CheckPolicy {
    CheckPolicy::default()
}

/// A copy of `psbt` whose transaction `f` changed, with the PSBT's maps
/// kept in step: new inputs get their prevout from `world`.
pub fn mutate(psbt: &Psbt, world: &[OfferedInput], f: impl FnOnce(&mut Transaction)) -> Psbt {
    let mut p = psbt.clone();
    f(&mut p.unsigned_tx);
    let prevouts: Vec<Option<TxOut>> = p
        .unsigned_tx
        .input
        .iter()
        .map(|i| {
            world
                .iter()
                .find(|u| u.outpoint == i.previous_output)
                .map(|u| u.prevout.clone())
        })
        .collect();
    p.inputs = prevouts
        .into_iter()
        .map(|prevout| bitcoin::psbt::Input {
            witness_utxo: prevout,
            ..Default::default()
        })
        .collect();
    p.outputs = vec![Default::default(); p.unsigned_tx.output.len()];
    p
}

/// Index of the first output paying `script`.
pub fn vout_of(psbt: &Psbt, script: &ScriptBuf) -> usize {
    psbt.unsigned_tx
        .output
        .iter()
        .position(|o| &o.script_pubkey == script)
        .expect("an output pays this script")
}

/// Index of the runestone output.
pub fn runestone_vout(psbt: &Psbt) -> usize {
    psbt.unsigned_tx
        .output
        .iter()
        .position(|o| o.script_pubkey.is_op_return())
        .expect("a runestone")
}

/// Both sides check and sign their own copy; returns the combined PSBT,
/// signed on every input.
pub fn sign_both(swap: &Swap) -> Psbt {
    use darkswap_trade::{check_psbt, sign_approved};
    let mut copies = Vec::new();
    for (role, wallet) in [(Role::Maker, &swap.maker), (Role::Taker, &swap.taker)] {
        let approved = check_psbt(&swap.psbt, &swap.trade, role, &swap.index, &policy())
            .expect("the honest PSBT is accepted");
        let mut copy = swap.psbt.clone();
        sign_approved(wallet, &mut copy, &approved).expect("signs its own inputs");
        copies.push(copy);
    }
    let mut combined = copies.remove(0);
    combined
        .combine(copies.remove(0))
        .expect("same transaction");
    combined
}

/// `wallet` with nothing committed to a trade (the fixture's offers above
/// committed some of its UTXOs).
pub fn uncommitted(mut wallet: KeyWallet) -> KeyWallet {
    let all: Vec<OutPoint> = wallet.utxos().iter().map(|u| u.outpoint).collect();
    wallet.release(&all);
    wallet
}
