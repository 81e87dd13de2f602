//! A trade a restart interrupted, brought back from its [`TradeRecord`]:
//! it never signs a PSBT, it answers retransmissions with what it sent,
//! sends its last message once more, broadcasts its finished transaction
//! again if it had one, and otherwise ends at its deadline. Sans-IO like
//! the session.
//!
//! A maker that had signed can still see its trade through: the taker's
//! finished transaction (step 5) is taken if its txid is the one of the
//! PSBT the maker signed (a txid commits to every input and output, and
//! the inputs are segwit, so the witnesses are not in it), and the
//! taker's broadcast of that txid (step 6, in whichever order the two
//! arrive) completes the trade with the usual receipt. Nothing else moves
//! a recovered trade on.

use std::collections::VecDeque;

use bitcoin::{Transaction, Txid, hashes::Hash};
use darkswap_proto::{
    TradeMessageBody, TradePayload, TradeSignature, VerifiedTradeMessage, identity::Keypair,
};
use web_time::Instant;

use super::{
    Handled, TradeError, TradeOutput, TradeRecord, TradeState, session::BodyBytes, step, wire,
};
use crate::Role;

#[derive(Debug)]
pub(super) struct Recovered {
    record: TradeRecord,
    key: Keypair,
    deadline: Instant,
    out: VecDeque<TradeOutput>,
}

impl Recovered {
    /// `record` as read back at `now` (`unix_now` on the wall clock), for
    /// the node whose identity is `key`.
    pub(super) fn new(record: TradeRecord, key: Keypair, now: Instant, unix_now: u64) -> Self {
        let left = record.deadline_unix.saturating_sub(unix_now);
        Recovered {
            deadline: now + std::time::Duration::from_secs(left),
            record,
            key,
            out: VecDeque::new(),
        }
    }

    /// What a running trade does once it is back: its last message again
    /// (the crash may have come between the record and the send), and its
    /// finished transaction to the broadcaster.
    pub(super) fn start(&mut self) {
        if self.record.state.is_final() {
            return;
        }
        if let Some(message) = self.record.last_sent() {
            self.out.push_back(TradeOutput::Send {
                peer: self.record.peer,
                message: message.clone(),
            });
        }
        if let Some(tx) = &self.record.final_tx {
            self.out.push_back(TradeOutput::Broadcast(tx.clone()));
        }
    }

    pub(super) fn record(&self) -> &TradeRecord {
        &self.record
    }

    pub(super) fn txid(&self) -> Option<Txid> {
        let finished = self.record.final_tx.as_ref().map(Transaction::compute_txid);
        let completed = self.record.state == TradeState::Completed;
        finished.or_else(|| completed.then(|| self.signed_txid()).flatten())
    }

    /// A message of the counterparty: a retransmission of a step it sent
    /// before the restart gets the same answer; anything new is refused.
    pub(super) fn handle_message(
        &mut self,
        message: &VerifiedTradeMessage,
        unix_now: u64,
    ) -> Result<Handled, TradeError> {
        let body = &message.body;
        if body.trade_id != self.record.id.as_slice()
            || body.order_id != self.record.order_id.as_bytes()
        {
            return Err(TradeError::WrongTrade);
        }
        if message.sender != self.record.peer {
            return Err(TradeError::WrongPeer);
        }
        match self.record.received.get(&body.step) {
            Some(seen) if *seen == message.body_bytes() => {
                let again = self.record.sent.range(body.step + 1..);
                for (_, answer) in again {
                    self.out.push_back(TradeOutput::Send {
                        peer: self.record.peer,
                        message: answer.clone(),
                    });
                }
                Ok(Handled::Duplicate)
            }
            Some(_) => Err(TradeError::Conflicting { step: body.step }),
            None if self.record.state.is_final() => {
                Err(TradeError::Ended(self.record.state.clone()))
            }
            None => self.see_through(message, unix_now),
        }
    }

    /// A maker that signed takes the taker's finished transaction and its
    /// broadcast (see the module docs); anything else is refused.
    fn see_through(
        &mut self,
        message: &VerifiedTradeMessage,
        unix_now: u64,
    ) -> Result<Handled, TradeError> {
        let body = &message.body;
        let signed = self.signed_txid().ok_or(TradeError::Restarted)?;
        match &body.payload {
            Some(TradePayload::PsbtFinalize(fin))
                if body.step == step::PSBT_FINALIZE && self.record.final_tx.is_none() =>
            {
                let psbt = wire::psbt_from_wire(&fin.psbt).map_err(TradeError::InvalidPsbt)?;
                let tx = psbt.extract_tx_unchecked_fee_rate();
                if tx.compute_txid() != signed {
                    return Err(TradeError::PsbtChanged);
                }
                self.record.received.insert(body.step, message.body_bytes());
                self.record.final_tx = Some(tx);
                self.set_state(TradeState::Finalized);
                Ok(Handled::Progress)
            }
            // The txid it broadcast is the one of the PSBT signed; the
            // finished transaction may come after it, or not at all.
            Some(TradePayload::PsbtBroadcast(b)) if body.step == step::BROADCAST => {
                if b.txid != signed.to_byte_array().to_vec() {
                    return Err(TradeError::PsbtChanged);
                }
                self.record.received.insert(body.step, message.body_bytes());
                let receipt = TradeMessageBody {
                    trade_id: self.record.id.to_vec(),
                    order_id: self.record.order_id.as_bytes().to_vec(),
                    step: step::RECEIPT,
                    sender: self.key.public().to_peer_id().to_bytes(),
                    recipient: self.record.peer.to_bytes(),
                    sent_at: unix_now,
                    payload: Some(TradePayload::Receipt(TradeSignature {
                        trade_id: self.record.id.to_vec(),
                        signature: Vec::new(),
                    })),
                }
                .sign(&self.key)
                .map_err(TradeError::Message)?;
                self.record.sent.insert(step::RECEIPT, receipt.clone());
                self.out.push_back(TradeOutput::Send {
                    peer: self.record.peer,
                    message: receipt,
                });
                self.set_state(TradeState::Completed);
                Ok(Handled::Progress)
            }
            _ => Err(TradeError::Restarted),
        }
    }

    /// The txid of the PSBT this side signed, if it is a maker that did.
    fn signed_txid(&self) -> Option<Txid> {
        if self.record.role != Role::Maker {
            return None;
        }
        let signature = self.record.sent.get(&step::PSBT_SIGN)?.verify().ok()?;
        let Some(TradePayload::PsbtSign(sign)) = &signature.body.payload else {
            return None;
        };
        let psbt = wire::psbt_from_wire(&sign.psbt).ok()?;
        Some(psbt.unsigned_tx.compute_txid())
    }

    /// The broadcaster's answer for the transaction [`Recovered::start`]
    /// sent again.
    pub(super) fn handle_broadcast(&mut self, result: Result<Txid, String>) {
        if self.record.state.is_final() {
            return;
        }
        self.set_state(match result {
            Ok(_) => TradeState::Completed,
            Err(reason) => TradeState::Failed { reason },
        });
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        (!self.record.state.is_final()).then_some(self.deadline)
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.record.state.is_final() || now < self.deadline {
            return;
        }
        let waiting_for = Box::new(self.record.state.clone());
        self.set_state(TradeState::TimedOut { waiting_for });
    }

    pub(super) fn poll_output(&mut self) -> Option<TradeOutput> {
        self.out.pop_front()
    }

    fn set_state(&mut self, state: TradeState) {
        self.record.state = state.clone();
        self.out.push_back(TradeOutput::StateChanged(state));
    }
}
