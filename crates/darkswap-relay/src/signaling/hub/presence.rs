//! Presence, told on demand: a client asks for pages of the registered peers
//! (`list_peers`; `registered` carries the first page) and watches the peers
//! it cares about (`watch`, `unwatch`). Only a peer's watchers hear its
//! `peer_joined` and `peer_left`, so a registration or a close costs one
//! message per watcher of that peer, never one per registered peer
//! (broadcasting every join to everybody made registering N peers cost N²
//! messages).

use std::ops::Bound;

use darkswap_proto::{
    identity::PeerId,
    signaling::{ErrorCode, ServerToClient},
};

use super::{Conn, ConnId, Hub};

impl Hub {
    /// Up to `limit` registered peers other than `me`, after `after` in the
    /// hub's order, and where the next page starts if there is one.
    pub(super) fn page(
        &self,
        me: &PeerId,
        after: Option<PeerId>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut others = self
            .peers
            .range((start, Bound::Unbounded))
            .map(|(p, _)| *p)
            .filter(|p| p != me);
        let page: Vec<PeerId> = others.by_ref().take(limit).collect();
        let next = match (page.last(), others.next()) {
            (Some(last), Some(_)) => Some(last.to_string()),
            _ => None,
        };
        (page.iter().map(PeerId::to_string).collect(), next)
    }

    pub(super) fn list_peers(
        &mut self,
        conn: ConnId,
        me: PeerId,
        after: Option<String>,
        limit: Option<u32>,
    ) {
        let after = match after.map(|a| a.parse::<PeerId>()) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                let reply = self.error(
                    ErrorCode::InvalidMessage,
                    "after: a peer id (the next of the previous page)",
                    Some("list_peers"),
                );
                self.send(conn, reply);
                return;
            }
        };
        let size = self.config.peer_page_size.max(1);
        let limit = limit.map_or(size, |l| (l as usize).clamp(1, size));
        let (peers, next) = self.page(&me, after, limit);
        self.send(conn, ServerToClient::Peers { peers, next });
    }

    pub(super) fn watch(&mut self, conn: ConnId, peers: Vec<String>) {
        let Some(wanted) = self.parse_peers(conn, "watch", &peers) else {
            return;
        };
        let Some(Conn::Signaling { watching, .. }) = self.conns.get(&conn) else {
            return;
        };
        let new: Vec<PeerId> = wanted
            .iter()
            .filter(|p| !watching.contains(p))
            .copied()
            .collect();
        if watching.len() + new.len() > self.config.max_watched_peers {
            let message = format!(
                "a connection watches at most {} peers; unwatch some first",
                self.config.max_watched_peers
            );
            let reply = self.error(ErrorCode::WatchLimit, message, Some("watch"));
            self.send(conn, reply);
            return;
        }
        if let Some(Conn::Signaling { watching, .. }) = self.conns.get_mut(&conn) {
            watching.extend_from_slice(&new);
        }
        for p in new {
            self.watchers.entry(p).or_default().push(conn);
        }
        let (online, offline): (Vec<PeerId>, Vec<PeerId>) =
            wanted.into_iter().partition(|p| self.peers.contains_key(p));
        let text = |v: Vec<PeerId>| v.iter().map(PeerId::to_string).collect();
        self.send(
            conn,
            ServerToClient::Presence {
                online: text(online),
                offline: text(offline),
            },
        );
    }

    pub(super) fn unwatch(&mut self, conn: ConnId, peers: Vec<String>) {
        let Some(gone) = self.parse_peers(conn, "unwatch", &peers) else {
            return;
        };
        if let Some(Conn::Signaling { watching, .. }) = self.conns.get_mut(&conn) {
            watching.retain(|p| !gone.contains(p));
        }
        self.stop_watching(conn, &gone);
    }

    /// Removes `conn` from the watchers of `peers`.
    pub(super) fn stop_watching(&mut self, conn: ConnId, peers: &[PeerId]) {
        for p in peers {
            if let Some(conns) = self.watchers.get_mut(p) {
                conns.retain(|c| *c != conn);
                if conns.is_empty() {
                    self.watchers.remove(p);
                }
            }
        }
    }

    /// Tells `peer`'s watchers that it registered (`joined`) or left.
    pub(super) fn announce(&mut self, peer: PeerId, own_conn: ConnId, joined: bool) {
        let Some(conns) = self.watchers.get(&peer) else {
            return;
        };
        let conns: Vec<ConnId> = conns.iter().copied().filter(|c| *c != own_conn).collect();
        let peer_id = peer.to_string();
        for c in conns {
            let message = if joined {
                ServerToClient::PeerJoined {
                    peer_id: peer_id.clone(),
                }
            } else {
                ServerToClient::PeerLeft {
                    peer_id: peer_id.clone(),
                }
            };
            self.send(c, message);
        }
    }

    /// The peer ids of a `watch` or `unwatch`, deduplicated; `None` (and an
    /// `invalid_message` sent) if one is not a peer id.
    fn parse_peers(
        &mut self,
        conn: ConnId,
        kind: &'static str,
        peers: &[String],
    ) -> Option<Vec<PeerId>> {
        if peers.len() > self.config.max_watched_peers {
            let message = format!(
                "a connection watches at most {} peers",
                self.config.max_watched_peers
            );
            let reply = self.error(ErrorCode::WatchLimit, message, Some(kind));
            self.send(conn, reply);
            return None;
        }
        let mut out: Vec<PeerId> = Vec::with_capacity(peers.len().min(64));
        for text in peers {
            match text.parse::<PeerId>() {
                Ok(p) if !out.contains(&p) => out.push(p),
                Ok(_) => {}
                Err(_) => {
                    let reply = self.error(
                        ErrorCode::InvalidMessage,
                        "peers: a list of peer ids",
                        Some(kind),
                    );
                    self.send(conn, reply);
                    return None;
                }
            }
        }
        Some(out)
    }
}
