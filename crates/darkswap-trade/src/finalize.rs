//! Turning a fully signed PSBT into the transaction to broadcast.
//!
//! The `bitcoin` crate has no finalizer (that is rust-miniscript's job), and
//! the two input kinds a trade uses have one witness shape each, so this one
//! writes them with the crate's own constructors: P2WPKH is
//! `[signature, pubkey]` (`Witness::p2wpkh`), a P2TR key path is
//! `[signature]` (`Witness::p2tr_key_spend`). Whether the signatures are
//! valid is [`crate::verify_consensus`]'s job, not this one's.

use bitcoin::{Psbt, Transaction, TxOut, Witness, hashes::Hash};

/// A finalized swap: the transaction and the output each input spends, in
/// input order, which is what [`crate::verify_consensus`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// The signed transaction.
    pub tx: Transaction,
    /// The prevout of each input.
    pub prevouts: Vec<TxOut>,
}

/// Why a PSBT cannot be finalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FinalizeError {
    /// An input without `witness_utxo`.
    #[error("input {0} has no witness_utxo")]
    MissingPrevout(usize),
    /// An input nobody has signed yet.
    #[error("input {0} is not signed")]
    Unsigned(usize),
    /// A P2WPKH input whose signatures are not exactly one by the key its
    /// script commits to.
    #[error("input {0}: no signature by the key of its P2WPKH script")]
    WrongKey(usize),
    /// An input that is neither P2WPKH nor P2TR.
    #[error("input {0} is neither P2WPKH nor P2TR")]
    UnsupportedInput(usize),
    /// The PSBT's input maps do not match its transaction.
    #[error("malformed PSBT: input maps do not match inputs")]
    Malformed,
}

/// Writes every input's final witness from its signature and extracts the
/// transaction. An input with no signature but a final witness (finalized
/// by its owner) keeps that witness.
pub fn finalize(mut psbt: Psbt) -> Result<Finalized, FinalizeError> {
    if psbt.inputs.len() != psbt.unsigned_tx.input.len() {
        return Err(FinalizeError::Malformed);
    }
    let mut prevouts = Vec::with_capacity(psbt.inputs.len());
    for (i, input) in psbt.inputs.iter_mut().enumerate() {
        let prevout = input
            .witness_utxo
            .clone()
            .ok_or(FinalizeError::MissingPrevout(i))?;
        // A signature present wins over a final witness someone else wrote:
        // the counterparty cannot pre-fill our input with garbage.
        let signed = !input.partial_sigs.is_empty() || input.tap_key_sig.is_some();
        if signed || input.final_script_witness.is_none() {
            let script = &prevout.script_pubkey;
            let witness = if script.is_p2wpkh() {
                let mut sigs = input.partial_sigs.iter();
                let (Some((public, signature)), None) = (sigs.next(), sigs.next()) else {
                    return Err(if input.partial_sigs.is_empty() {
                        FinalizeError::Unsigned(i)
                    } else {
                        FinalizeError::WrongKey(i)
                    });
                };
                // The witness program of P2WPKH is the key's hash160.
                let matches = public
                    .wpubkey_hash()
                    .is_ok_and(|h| script.as_bytes().get(2..) == Some(h.as_byte_array()));
                if !matches {
                    return Err(FinalizeError::WrongKey(i));
                }
                Witness::p2wpkh(signature, &public.inner)
            } else if script.is_p2tr() {
                let signature = input.tap_key_sig.ok_or(FinalizeError::Unsigned(i))?;
                Witness::p2tr_key_spend(&signature)
            } else {
                return Err(FinalizeError::UnsupportedInput(i));
            };
            input.final_script_witness = Some(witness);
        }
        // BIP-174: a finalizer clears what the final fields replace.
        input.partial_sigs.clear();
        input.sighash_type = None;
        input.tap_key_sig = None;
        input.tap_internal_key = None;
        input.bip32_derivation.clear();
        input.tap_key_origins.clear();
        prevouts.push(prevout);
    }
    // The checkers bounded the fee already; the crate's absurd-fee-rate guard
    // is not the policy here.
    let tx = psbt.extract_tx_unchecked_fee_rate();
    Ok(Finalized { tx, prevouts })
}
