//! The last check before broadcast: every input of the finished transaction
//! runs through Bitcoin Core's own script interpreter (libbitcoinconsensus,
//! via the `bitcoinconsensus` crate) against the output it spends.
//!
//! Every prevout is passed to the library, not only the input's own: a
//! taproot signature commits to all of them, and it refuses to verify one
//! without them. Flags: P2SH, DERSIG, NULLDUMMY, CHECKLOCKTIMEVERIFY,
//! CHECKSEQUENCEVERIFY, WITNESS and TAPROOT, the rules of today's chain.

use bitcoin::{Transaction, TxOut};

/// What Bitcoin Core's script check said about one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptFailure {
    /// The script evaluated to false: a missing, wrong or tampered
    /// signature, or a witness that does not fit the script.
    #[error("script evaluation failed")]
    Script,
    /// The input index is out of range.
    #[error("input index out of range")]
    TxIndex,
    /// The serialized length did not match.
    #[error("transaction size mismatch")]
    TxSizeMismatch,
    /// The transaction did not deserialize.
    #[error("transaction did not deserialize")]
    TxDeserialize,
    /// A witness spend without its amount.
    #[error("amount required")]
    AmountRequired,
    /// Flags the library does not know.
    #[error("invalid flags")]
    InvalidFlags,
    /// A taproot spend checked without every spent output.
    #[error("spent outputs required")]
    SpentOutputsRequired,
    /// The spent outputs do not match the inputs.
    #[error("spent outputs mismatch")]
    SpentOutputsMismatch,
}

impl From<bitcoinconsensus::Error> for ScriptFailure {
    fn from(e: bitcoinconsensus::Error) -> Self {
        use bitcoinconsensus::Error as E;
        match e {
            // The library leaves its error at ERR_OK (named ERR_SCRIPT in the
            // crate) when the script itself fails.
            E::ERR_SCRIPT => ScriptFailure::Script,
            E::ERR_TX_INDEX => ScriptFailure::TxIndex,
            E::ERR_TX_SIZE_MISMATCH => ScriptFailure::TxSizeMismatch,
            E::ERR_TX_DESERIALIZE => ScriptFailure::TxDeserialize,
            E::ERR_AMOUNT_REQUIRED => ScriptFailure::AmountRequired,
            E::ERR_INVALID_FLAGS => ScriptFailure::InvalidFlags,
            E::ERR_SPENT_OUTPUTS_REQUIRED => ScriptFailure::SpentOutputsRequired,
            E::ERR_SPENT_OUTPUTS_MISMATCH => ScriptFailure::SpentOutputsMismatch,
        }
    }
}

/// Why a transaction fails the consensus check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// Not one prevout per input.
    #[error("{prevouts} prevouts for {inputs} inputs")]
    PrevoutCount {
        /// Inputs of the transaction.
        inputs: usize,
        /// Prevouts given.
        prevouts: usize,
    },
    /// A prevout value above what the library takes (`i64::MAX` sat).
    #[error("prevout {0} has a value out of range")]
    ValueOutOfRange(usize),
    /// An input fails Bitcoin Core's script verification.
    #[error("input {input} fails script verification: {failure}")]
    InputInvalid {
        /// The input.
        input: usize,
        /// Why.
        failure: ScriptFailure,
    },
}

/// Checks every input of `tx` against `prevouts` (one per input, in order)
/// with Bitcoin Core's script interpreter.
pub fn verify_consensus(tx: &Transaction, prevouts: &[TxOut]) -> Result<(), ConsensusError> {
    if prevouts.len() != tx.input.len() {
        return Err(ConsensusError::PrevoutCount {
            inputs: tx.input.len(),
            prevouts: prevouts.len(),
        });
    }
    let bytes = bitcoin::consensus::encode::serialize(tx);
    // The library reads the spent outputs through raw pointers into
    // `prevouts`, which outlives every call below.
    let utxos = prevouts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let script = p.script_pubkey.as_bytes();
            Ok(bitcoinconsensus::Utxo {
                script_pubkey: script.as_ptr(),
                script_pubkey_len: u32::try_from(script.len())
                    .map_err(|_| ConsensusError::ValueOutOfRange(i))?,
                value: i64::try_from(p.value.to_sat())
                    .map_err(|_| ConsensusError::ValueOutOfRange(i))?,
            })
        })
        .collect::<Result<Vec<_>, ConsensusError>>()?;
    let flags = bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT;
    for (input, prevout) in prevouts.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            prevout.script_pubkey.as_bytes(),
            prevout.value.to_sat(),
            &bytes,
            Some(&utxos),
            input,
            flags,
        )
        .map_err(|e| ConsensusError::InputInvalid {
            input,
            failure: e.into(),
        })?;
    }
    Ok(())
}
