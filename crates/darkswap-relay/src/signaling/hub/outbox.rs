//! What waits to be written to one `/signaling` socket, and the policy of
//! what it may hold: the per-sender and per-recipient bounds that keep a
//! crowd of senders from burying one reader, and the order it is written in.
//! Sans-IO like the rest of the hub: the server keeps one per socket, pushes
//! what the hub outputs and pops from the socket's writer.
//!
//! - The server's own messages (replies, errors, presence, circuit control)
//!   go first, in order. They are few and answer what the recipient itself
//!   did, so they are bounded only by a ceiling that a socket reaches when
//!   it stops reading ([`Overflow`]).
//! - Routed messages (offers, answers, candidates) wait in one queue per
//!   sender and are written one per sender in turn, so a sender with little
//!   waiting is not stuck behind a sender with much.
//! - A routed message is admitted when its sender has nothing waiting for
//!   this recipient, or has less than the reserve, or stays under both the
//!   per-sender and the per-recipient bound ([`OutboxConfig`]). Otherwise
//!   it is [`Refused`] and its sender told (`peer_busy`): a crowd of
//!   senders can fill the shared part, but not any sender's reserve.
//!
//! A full queue is never a reason to close the socket: only a socket that
//! does not take what is written to it is too slow (the writer's deadline).

use std::collections::{HashMap, VecDeque};

use super::ConnId;

/// The bounds of one socket's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Bytes of routed messages waiting for one recipient, all senders
    /// together, above which only reserves are admitted. Default: 1 MiB.
    pub bytes: usize,
    /// Bytes one sender may have waiting for one recipient. Default: 128 KiB.
    pub bytes_per_sender: usize,
    /// Bytes one sender may always have waiting for one recipient, however
    /// full the recipient's queue is (one message of any size is always
    /// admitted too). Default: 16 KiB.
    pub reserve_per_sender: usize,
    /// The server's own messages waiting, above which the socket is too
    /// slow. Default: 256.
    pub max_control: usize,
}

/// A routed message was not queued: the recipient has too much waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The server's own messages pile up: the socket does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// What the writer does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Write this text frame.
    Message(String),
    /// Close with this code and reason.
    Close(u16, &'static str),
}

#[derive(Debug, Default)]
struct SenderQueue {
    messages: VecDeque<String>,
    bytes: usize,
}

/// See the module docs.
#[derive(Debug)]
pub struct Outbox {
    config: OutboxConfig,
    control: VecDeque<String>,
    routed: HashMap<ConnId, SenderQueue>,
    /// Senders with something waiting, in the order they are served.
    turn: VecDeque<ConnId>,
    routed_bytes: usize,
    /// Close once the server's own messages queued before it are written.
    close: Option<(u16, &'static str)>,
    /// Close at once.
    abort: Option<(u16, &'static str)>,
    /// The close was popped: nothing more comes out.
    finished: bool,
}

impl Outbox {
    /// An empty outbox; allocates nothing until something is pushed.
    pub fn new(config: OutboxConfig) -> Self {
        Outbox {
            config,
            control: VecDeque::new(),
            routed: HashMap::new(),
            turn: VecDeque::new(),
            routed_bytes: 0,
            close: None,
            abort: None,
            finished: false,
        }
    }

    /// Queues one of the server's own messages.
    pub fn push_control(&mut self, text: String) -> Result<(), Overflow> {
        if self.closing() {
            return Ok(());
        }
        if self.control.len() >= self.config.max_control {
            return Err(Overflow);
        }
        self.control.push_back(text);
        Ok(())
    }

    /// Queues a message `from` sent, if the bounds admit it.
    pub fn push_routed(&mut self, from: ConnId, text: String) -> Result<(), Refused> {
        if self.closing() {
            return Ok(());
        }
        let len = text.len();
        let mine = self.routed.get(&from).map_or(0, |q| q.bytes);
        let c = &self.config;
        let admitted = mine == 0
            || mine + len <= c.reserve_per_sender
            || (mine + len <= c.bytes_per_sender && self.routed_bytes + len <= c.bytes);
        if !admitted {
            return Err(Refused);
        }
        let queue = self.routed.entry(from).or_default();
        if queue.messages.is_empty() {
            self.turn.push_back(from);
        }
        queue.messages.push_back(text);
        queue.bytes += len;
        self.routed_bytes += len;
        Ok(())
    }

    /// Closes after the server's own messages queued so far (an error
    /// before its close); routed messages still waiting are dropped.
    pub fn close(&mut self, code: u16, reason: &'static str) {
        self.close.get_or_insert((code, reason));
    }

    /// Closes at once, dropping whatever waits.
    pub fn abort(&mut self, code: u16, reason: &'static str) {
        self.abort.get_or_insert((code, reason));
        self.control = VecDeque::new();
        self.routed = HashMap::new();
        self.turn = VecDeque::new();
        self.routed_bytes = 0;
    }

    /// Whether a close is pending.
    pub fn closing(&self) -> bool {
        self.close.is_some() || self.abort.is_some() || self.finished
    }

    /// Bytes of routed messages waiting.
    pub fn routed_bytes(&self) -> usize {
        self.routed_bytes
    }

    /// What to write next, if anything.
    pub fn pop(&mut self) -> Option<Next> {
        if self.finished {
            return None;
        }
        if let Some((code, reason)) = self.abort {
            self.finished = true;
            return Some(Next::Close(code, reason));
        }
        if let Some(text) = self.control.pop_front() {
            if self.control.is_empty() {
                // A burst's buffer is not kept by an idle socket.
                self.control = VecDeque::new();
            }
            return Some(Next::Message(text));
        }
        if let Some((code, reason)) = self.close {
            self.finished = true;
            self.routed = HashMap::new();
            self.turn = VecDeque::new();
            self.routed_bytes = 0;
            return Some(Next::Close(code, reason));
        }
        let from = self.turn.pop_front()?;
        let queue = self.routed.get_mut(&from)?;
        let text = queue.messages.pop_front()?;
        queue.bytes -= text.len();
        self.routed_bytes -= text.len();
        if queue.messages.is_empty() {
            self.routed.remove(&from);
            if self.routed.is_empty() {
                self.routed = HashMap::new();
                self.turn = VecDeque::new();
            }
        } else {
            self.turn.push_back(from);
        }
        Some(Next::Message(text))
    }
}

#[cfg(test)]
mod tests;
