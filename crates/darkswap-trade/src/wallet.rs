//! Signing is pluggable: the [`Wallet`] trait offers inputs and addresses for
//! a trade and signs a PSBT's own inputs. [`KeyWallet`] is the built-in one:
//! secp256k1 keys held in memory, P2WPKH and P2TR key-path outputs.

use std::collections::BTreeSet;

use bitcoin::{
    Address, Amount, Network, OutPoint, Psbt, ScriptBuf, TxOut, Txid, ecdsa,
    hashes::Hash,
    key::{CompressedPublicKey, Keypair, TapTweak},
    secp256k1::{All, Message, Secp256k1, SecretKey},
    sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType},
    taproot,
};
use darkswap_proto::Asset;

use crate::{Approved, AssetAmount, BuildOptions, Offer, OfferedInput, Role, Terms};

mod file;

pub use file::WalletFileError;

/// What a party must bring to a trade: the asset it gives and at least
/// `sats` satoshis across the inputs offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferRequest {
    /// The leg the party gives.
    pub gives: AssetAmount,
    /// Sats the offered inputs must hold in total.
    pub sats: Amount,
}

impl OfferRequest {
    /// What `role` must bring for `terms` built with `options`: if it gives
    /// BTC, the leg and the postage of the output receiving its asset;
    /// `fee_reserve` if it pays the fee; and one postage more so its change
    /// is not dust.
    pub fn for_trade(
        terms: &Terms,
        role: Role,
        options: &BuildOptions,
        fee_reserve: Amount,
    ) -> Self {
        let gives = terms.gives(role);
        let leg = if gives.asset == Asset::Btc {
            Amount::from_sat(u64::try_from(gives.amount).unwrap_or(u64::MAX))
                .checked_add(options.postage)
                .unwrap_or(Amount::MAX_MONEY)
        } else {
            Amount::ZERO
        };
        let fee = if role == terms.fee_payer() {
            fee_reserve
        } else {
            Amount::ZERO
        };
        let sats = leg
            .checked_add(fee)
            .and_then(|s| s.checked_add(options.postage))
            .unwrap_or(Amount::MAX_MONEY);
        OfferRequest { gives, sats }
    }
}

/// Why a wallet could not offer or sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The wallet has no key.
    #[error("the wallet has no key")]
    NoKeys,
    /// Not enough of the asset to give.
    #[error("{available} of {asset} available, {needed} needed")]
    NotEnoughAsset {
        /// The asset.
        asset: Asset,
        /// What was asked.
        needed: u128,
        /// What the wallet's UTXOs hold.
        available: u128,
    },
    /// No set of alkane UTXOs adds up to exactly the amount (alkanes move
    /// whole, see [`crate::BuildError::AlkaneChangeUnsupported`]).
    #[error("no UTXOs of {asset} add up to exactly {amount}")]
    NoExactAlkaneSelection {
        /// The alkane.
        asset: Asset,
        /// The amount sold.
        amount: u128,
    },
    /// Not enough plain bitcoin.
    #[error("{available} available, {needed} needed")]
    NotEnoughSats {
        /// What was asked.
        needed: Amount,
        /// What the wallet's UTXOs hold.
        available: Amount,
    },
    /// The UTXO does not pay to one of the wallet's keys.
    #[error("the UTXO does not pay to one of the wallet's keys")]
    NotOwnScript,
    /// The PSBT is not the transaction that was checked.
    #[error("PSBT {got} is not the approved transaction {approved}")]
    NotApproved {
        /// The approved txid.
        approved: Txid,
        /// The PSBT's txid.
        got: Txid,
    },
    /// The PSBT's prevouts changed since they were checked.
    #[error("the PSBT's prevouts changed since the check")]
    PrevoutsChanged,
    /// An input to sign has no `witness_utxo` (a taproot signature needs
    /// every input's).
    #[error("input {0} has no witness_utxo")]
    MissingPrevout(usize),
    /// An input to sign pays to none of the wallet's keys.
    #[error("input {0} is not the wallet's")]
    NotOwnInput(usize),
    /// The sighash could not be computed.
    #[error("sighash of input {input}: {reason}")]
    Sighash {
        /// The input.
        input: usize,
        /// Why.
        reason: String,
    },
    /// An error of another wallet implementation (hardware, remote signer).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// A wallet a trade can use: it proposes what to spend and where to be paid,
/// and signs its own inputs of a PSBT.
pub trait Wallet {
    /// Chooses inputs for `request` (UTXOs with their prevout and holdings)
    /// and a receive and a change script.
    fn offer(&mut self, request: &OfferRequest) -> Result<Offer, WalletError>;

    /// Signs `inputs` of `psbt` with SIGHASH_ALL (taproot: DEFAULT), adding
    /// partial signatures; finalization is [`crate::finalize`]. Call it
    /// through [`sign_approved`], which makes sure the PSBT was checked.
    fn sign_inputs(&self, psbt: &mut Psbt, inputs: &[usize]) -> Result<(), WalletError>;

    /// The trade that `outpoints` were offered to ended without spending
    /// them: they may be offered again. (A wallet does not offer a UTXO to
    /// a second trade while the first one runs.)
    fn release(&mut self, outpoints: &[OutPoint]);

    /// The trade that `outpoints` were offered to completed: they are
    /// spent and never offered again.
    fn spent(&mut self, outpoints: &[OutPoint]);

    /// Commits `outpoints` to a trade brought back after a restart: they
    /// are offered to no other trade until released or spent.
    fn commit(&mut self, outpoints: &[OutPoint]);
}

/// Signs the side's own inputs of `psbt` if, and only if, it is the very
/// transaction [`crate::check_psbt`] approved, with the same prevouts.
pub fn sign_approved<W: Wallet + ?Sized>(
    wallet: &W,
    psbt: &mut Psbt,
    approved: &Approved,
) -> Result<(), WalletError> {
    let got = psbt.unsigned_tx.compute_txid();
    if got != approved.txid() {
        return Err(WalletError::NotApproved {
            approved: approved.txid(),
            got,
        });
    }
    let prevouts: Vec<Option<&TxOut>> = psbt
        .inputs
        .iter()
        .map(|i| i.witness_utxo.as_ref())
        .collect();
    let checked: Vec<Option<&TxOut>> = approved.prevouts().iter().map(Some).collect();
    if prevouts != checked {
        return Err(WalletError::PrevoutsChanged);
    }
    wallet.sign_inputs(psbt, approved.own_inputs())
}

/// The script type of a [`KeyWallet`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Native segwit v0, one ECDSA signature.
    P2wpkh,
    /// Taproot key path (BIP-86 tweak, no script tree), one Schnorr
    /// signature.
    P2tr,
}

#[derive(Clone)]
struct WalletKey {
    secret: SecretKey,
    kind: KeyKind,
    script: ScriptBuf,
}

/// A wallet of secp256k1 keys held in memory. It does not watch the chain:
/// the caller tells it its UTXOs ([`KeyWallet::add_utxo`]), with their
/// holdings from the asset index. Keys persist with [`KeyWallet::save`].
///
/// The first key receives, the last key takes change (the same key when
/// there is one).
#[derive(Clone)]
pub struct KeyWallet {
    network: Network,
    keys: Vec<WalletKey>,
    utxos: Vec<OfferedInput>,
    /// UTXOs offered to a running trade: not offered to another one.
    committed: BTreeSet<OutPoint>,
    secp: Secp256k1<All>,
}

impl std::fmt::Debug for KeyWallet {
    // Never print the secret keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWallet")
            .field("network", &self.network)
            .field("keys", &self.keys.len())
            .field("utxos", &self.utxos.len())
            .finish()
    }
}

impl KeyWallet {
    /// An empty wallet for `network`.
    pub fn new(network: Network) -> Self {
        KeyWallet {
            network,
            keys: Vec::new(),
            utxos: Vec::new(),
            committed: BTreeSet::new(),
            secp: Secp256k1::new(),
        }
    }

    /// Adds a key; returns the script it is paid to.
    pub fn add_key(&mut self, secret: SecretKey, kind: KeyKind) -> ScriptBuf {
        let public = secret.public_key(&self.secp);
        let script = match kind {
            KeyKind::P2wpkh => ScriptBuf::new_p2wpkh(&CompressedPublicKey(public).wpubkey_hash()),
            KeyKind::P2tr => ScriptBuf::new_p2tr(&self.secp, public.x_only_public_key().0, None),
        };
        self.keys.push(WalletKey {
            secret,
            kind,
            script: script.clone(),
        });
        script
    }

    /// Builder form of [`KeyWallet::add_key`].
    pub fn with_key(mut self, secret: SecretKey, kind: KeyKind) -> Self {
        self.add_key(secret, kind);
        self
    }

    /// The network its addresses are for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The address of key `n`, in the order keys were added.
    pub fn address(&self, n: usize) -> Option<Address> {
        let key = self.keys.get(n)?;
        Address::from_script(&key.script, self.network).ok()
    }

    /// The address of every key, in the order keys were added.
    pub fn addresses(&self) -> Vec<Address> {
        (0..self.keys.len())
            .filter_map(|n| self.address(n))
            .collect()
    }

    /// Whether `outpoint` is committed to a running trade.
    pub fn is_committed(&self, outpoint: &OutPoint) -> bool {
        self.committed.contains(outpoint)
    }

    /// Whether `script` pays to one of the wallet's keys.
    pub fn owns(&self, script: &bitcoin::Script) -> bool {
        self.keys.iter().any(|k| k.script.as_script() == script)
    }

    /// Tells the wallet about a UTXO it can spend, with its holdings.
    pub fn add_utxo(&mut self, utxo: OfferedInput) -> Result<(), WalletError> {
        if !self.owns(&utxo.prevout.script_pubkey) {
            return Err(WalletError::NotOwnScript);
        }
        self.utxos.retain(|u| u.outpoint != utxo.outpoint);
        self.utxos.push(utxo);
        Ok(())
    }

    /// The UTXOs the wallet knows.
    pub fn utxos(&self) -> &[OfferedInput] {
        &self.utxos
    }

    /// Selects UTXOs holding only `gives`'s asset, largest first, until they
    /// cover it (alkanes: exactly).
    fn select_asset(&self, gives: AssetAmount) -> Result<Vec<OfferedInput>, WalletError> {
        let mut candidates: Vec<(&OfferedInput, u128)> = self
            .utxos
            .iter()
            .filter(|u| !self.committed.contains(&u.outpoint))
            .filter(|u| u.holdings.len() == 1)
            .filter_map(|u| u.holdings.get(&gives.asset).map(|&n| (u, n)))
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.1));
        let available: u128 = candidates.iter().map(|c| c.1).fold(0, u128::saturating_add);
        let exact = matches!(gives.asset, Asset::Alkane { .. });
        let (mut chosen, mut got) = (Vec::new(), 0u128);
        for (utxo, held) in candidates {
            if got >= gives.amount {
                break;
            }
            if exact && got.saturating_add(held) > gives.amount {
                continue;
            }
            chosen.push(utxo.clone());
            got = got.saturating_add(held);
        }
        if got < gives.amount {
            return Err(WalletError::NotEnoughAsset {
                asset: gives.asset,
                needed: gives.amount,
                available,
            });
        }
        if exact && got != gives.amount {
            return Err(WalletError::NoExactAlkaneSelection {
                asset: gives.asset,
                amount: gives.amount,
            });
        }
        Ok(chosen)
    }
}

impl Wallet for KeyWallet {
    fn offer(&mut self, request: &OfferRequest) -> Result<Offer, WalletError> {
        let (Some(first), Some(last)) = (self.keys.first(), self.keys.last()) else {
            return Err(WalletError::NoKeys);
        };
        let (receive, change) = (first.script.clone(), last.script.clone());
        let mut inputs = if request.gives.asset == Asset::Btc {
            Vec::new()
        } else {
            self.select_asset(request.gives)?
        };
        let mut total = inputs
            .iter()
            .map(|i| i.prevout.value)
            .fold(Amount::ZERO, |a, v| a.checked_add(v).unwrap_or(Amount::MAX));
        let mut plain: Vec<&OfferedInput> = self
            .utxos
            .iter()
            .filter(|u| !self.committed.contains(&u.outpoint))
            .filter(|u| u.holdings.is_empty())
            .collect();
        plain.sort_by_key(|u| std::cmp::Reverse(u.prevout.value));
        let available = plain
            .iter()
            .map(|u| u.prevout.value)
            .fold(total, |a, v| a.checked_add(v).unwrap_or(Amount::MAX));
        for utxo in plain {
            if total >= request.sats {
                break;
            }
            total = total.checked_add(utxo.prevout.value).unwrap_or(Amount::MAX);
            inputs.push(utxo.clone());
        }
        if total < request.sats {
            return Err(WalletError::NotEnoughSats {
                needed: request.sats,
                available,
            });
        }
        self.committed.extend(inputs.iter().map(|i| i.outpoint));
        Ok(Offer {
            inputs,
            receive,
            change,
        })
    }

    fn release(&mut self, outpoints: &[OutPoint]) {
        for outpoint in outpoints {
            self.committed.remove(outpoint);
        }
    }

    fn spent(&mut self, outpoints: &[OutPoint]) {
        self.release(outpoints);
        self.utxos.retain(|u| !outpoints.contains(&u.outpoint));
    }

    fn commit(&mut self, outpoints: &[OutPoint]) {
        self.committed.extend(outpoints.iter().copied());
    }

    fn sign_inputs(&self, psbt: &mut Psbt, inputs: &[usize]) -> Result<(), WalletError> {
        // The cache borrows the transaction while the input maps change.
        let tx = psbt.unsigned_tx.clone();
        let mut cache = SighashCache::new(&tx);
        let all_prevouts: Option<Vec<TxOut>> =
            psbt.inputs.iter().map(|i| i.witness_utxo.clone()).collect();
        for &i in inputs {
            let prevout = psbt
                .inputs
                .get(i)
                .and_then(|input| input.witness_utxo.clone())
                .ok_or(WalletError::MissingPrevout(i))?;
            let key = self
                .keys
                .iter()
                .find(|k| k.script == prevout.script_pubkey)
                .ok_or(WalletError::NotOwnInput(i))?;
            let sighash_error = |e: &dyn std::fmt::Display| WalletError::Sighash {
                input: i,
                reason: e.to_string(),
            };
            match key.kind {
                KeyKind::P2wpkh => {
                    let sighash = cache
                        .p2wpkh_signature_hash(
                            i,
                            &prevout.script_pubkey,
                            prevout.value,
                            EcdsaSighashType::All,
                        )
                        .map_err(|e| sighash_error(&e))?;
                    let msg = Message::from_digest(sighash.to_byte_array());
                    let signature = self.secp.sign_ecdsa(&msg, &key.secret);
                    let public = bitcoin::PublicKey::new(key.secret.public_key(&self.secp));
                    psbt.inputs[i].partial_sigs.insert(
                        public,
                        ecdsa::Signature {
                            signature,
                            sighash_type: EcdsaSighashType::All,
                        },
                    );
                }
                KeyKind::P2tr => {
                    // BIP-341 signatures commit to every input's prevout.
                    let all = all_prevouts
                        .as_ref()
                        .ok_or(WalletError::MissingPrevout(i))?;
                    let sighash = cache
                        .taproot_key_spend_signature_hash(
                            i,
                            &Prevouts::All(all),
                            TapSighashType::Default,
                        )
                        .map_err(|e| sighash_error(&e))?;
                    let keypair = Keypair::from_secret_key(&self.secp, &key.secret);
                    let tweaked = keypair.tap_tweak(&self.secp, None).to_keypair();
                    let msg = Message::from_digest(sighash.to_byte_array());
                    let signature = self.secp.sign_schnorr_no_aux_rand(&msg, &tweaked);
                    psbt.inputs[i].tap_key_sig = Some(taproot::Signature {
                        signature,
                        sighash_type: TapSighashType::Default,
                    });
                    psbt.inputs[i].tap_internal_key = Some(keypair.x_only_public_key().0);
                }
            }
        }
        Ok(())
    }
}
