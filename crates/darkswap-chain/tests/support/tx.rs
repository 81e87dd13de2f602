//! A made-up but well-formed segwit transaction.

use darkswap_p2p::darkswap_trade::bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
    absolute::LockTime,
    hashes::{Hash, sha256d},
    transaction::Version,
};

/// A one-input, two-output transaction; `seed` changes its txid.
#[allow(dead_code)]
pub(crate) fn transaction(seed: u8) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_raw_hash(sha256d::Hash::hash(&[seed])),
                vout: 1,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[vec![seed; 64]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(10_000),
                script_pubkey: ScriptBuf::from_bytes(
                    vec![0x51, 0x20].into_iter().chain([seed; 32]).collect(),
                ),
            },
            TxOut {
                value: Amount::ZERO,
                // OP_RETURN OP_13: a runestone's prefix, no payload.
                script_pubkey: ScriptBuf::from_bytes(vec![0x6a, 0x5d]),
            },
        ],
    }
}

/// The script `OP_TRUE`: anyone may spend an output paying it, with an
/// empty script, and Core's interpreter agrees.
#[allow(dead_code)]
pub(crate) fn op_true() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// A transaction that spends `previous` (an [`op_true`] output) whole
/// into one `OP_TRUE` output of `value`.
#[allow(dead_code)]
pub(crate) fn spending(previous: OutPoint, value: Amount) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: previous,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: op_true(),
        }],
    }
}
