//! A trade a restart interrupted, brought back from its [`TradeRecord`]:
//! it never signs, it answers retransmissions with what it sent, sends its
//! last message once more, broadcasts its finished transaction again if it
//! had one, and otherwise ends at its deadline. Sans-IO like the session.

use std::collections::VecDeque;

use bitcoin::{Transaction, Txid};
use darkswap_proto::VerifiedTradeMessage;
use web_time::Instant;

use super::{Handled, TradeError, TradeOutput, TradeRecord, TradeState, session::BodyBytes};

#[derive(Debug)]
pub(super) struct Recovered {
    record: TradeRecord,
    deadline: Instant,
    out: VecDeque<TradeOutput>,
}

impl Recovered {
    /// `record` as read back at `now` (`unix_now` on the wall clock).
    pub(super) fn new(record: TradeRecord, now: Instant, unix_now: u64) -> Self {
        let left = record.deadline_unix.saturating_sub(unix_now);
        Recovered {
            deadline: now + std::time::Duration::from_secs(left),
            record,
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
        self.record.final_tx.as_ref().map(Transaction::compute_txid)
    }

    /// A message of the counterparty: a retransmission of a step it sent
    /// before the restart gets the same answer; anything new is refused.
    pub(super) fn handle_message(
        &mut self,
        message: &VerifiedTradeMessage,
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
                if let Some(answer) = self.record.sent.get(&(body.step + 1)) {
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
            None => Err(TradeError::Restarted),
        }
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
