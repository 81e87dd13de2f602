//! Offers and PSBTs as trade messages carry them: Bitcoin's own consensus
//! encodings for outpoints and outputs, BIP-174 for PSBTs.

use bitcoin::{
    OutPoint, Psbt, ScriptBuf, TxOut,
    consensus::{deserialize, serialize},
};
use darkswap_proto::{AssetHolding, TradeInput, TradeOffer};

use crate::{Offer, OfferedInput};

/// Largest offer a peer may send: inputs in one offer.
pub(crate) const MAX_OFFER_INPUTS: usize = 64;

/// An offer as it travels.
pub(crate) fn offer_to_wire(offer: &Offer) -> TradeOffer {
    TradeOffer {
        inputs: offer
            .inputs
            .iter()
            .map(|i| TradeInput {
                outpoint: serialize(&i.outpoint),
                prevout: serialize(&i.prevout),
                holdings: i
                    .holdings
                    .iter()
                    .map(|(asset, amount)| AssetHolding {
                        asset: asset.to_string(),
                        amount: amount.to_string(),
                    })
                    .collect(),
            })
            .collect(),
        receive_script: offer.receive.to_bytes(),
        change_script: offer.change.to_bytes(),
    }
}

/// An offer from the wire; what is wrong with it, in words, otherwise.
pub(crate) fn offer_from_wire(offer: &TradeOffer) -> Result<Offer, String> {
    if offer.inputs.is_empty() || offer.inputs.len() > MAX_OFFER_INPUTS {
        return Err(format!(
            "{} inputs (1 to {MAX_OFFER_INPUTS})",
            offer.inputs.len()
        ));
    }
    let inputs = offer
        .inputs
        .iter()
        .map(|i| {
            let outpoint: OutPoint =
                deserialize(&i.outpoint).map_err(|e| format!("outpoint: {e}"))?;
            let prevout: TxOut = deserialize(&i.prevout).map_err(|e| format!("prevout: {e}"))?;
            let holdings = i
                .holdings
                .iter()
                .map(|h| {
                    let asset = h.asset.parse().map_err(|e| format!("asset: {e}"))?;
                    let amount = h
                        .amount
                        .parse::<u128>()
                        .map_err(|e| format!("amount: {e}"))?;
                    Ok((asset, amount))
                })
                .collect::<Result<_, String>>()?;
            Ok(OfferedInput {
                outpoint,
                prevout,
                holdings,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Offer {
        inputs,
        receive: ScriptBuf::from_bytes(offer.receive_script.clone()),
        change: ScriptBuf::from_bytes(offer.change_script.clone()),
    })
}

/// A PSBT from the wire.
pub(crate) fn psbt_from_wire(bytes: &[u8]) -> Result<Psbt, String> {
    Psbt::deserialize(bytes).map_err(|e| e.to_string())
}
