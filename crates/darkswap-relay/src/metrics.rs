//! Relay metrics (`darkswap_relay_*`) next to libp2p's own, in one
//! prometheus-client registry.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::signaling::hub::Event as HubEvent;
use libp2p::{Multiaddr, core::ConnectedPoint, multiaddr::Protocol, relay};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// `$ty::register(registry)`: creates the metrics and registers each field
/// (cloned: the registry shares it) under its name, with its help text, below
/// `darkswap_relay_`; one line a metric.
macro_rules! registered {
    ($ty:ident; $($name:literal, $help:literal => $field:ident,)*) => {
        impl $ty {
            /// Creates the metrics and registers them in `registry`.
            pub fn register(registry: &mut Registry) -> Self {
                let m = $ty::default();
                let r = registry.sub_registry_with_prefix("darkswap_relay");
                $(r.register($name, $help, m.$field.clone());)*
                m
            }
        }
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    plane: &'static str,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViaLabel {
    via: &'static str,
}

/// Tokens, roles and limits (`darkswap_relay_auth_*`,
/// `darkswap_relay_access_denied_total`, `darkswap_relay_rate_limited_total`).
#[derive(Debug, Default)]
pub struct SecurityMetrics {
    tokens_issued: Family<ViaLabel, Counter>,
    auth_rejected: Family<StaticReasonLabel, Counter>,
    revocations: Family<ActionLabel, Counter>,
    access_denied: Family<ActionLabel, Counter>,
    rate_limited: Family<LimitLabel, Counter>,
}

registered!(SecurityMetrics;
    "auth_tokens_issued", "Tokens issued, by how (challenge, refresh)" => tokens_issued,
    "auth_rejected", "Tokens and token requests refused, by reason" => auth_rejected,
    "auth_revocations", "Revocations, by kind (token, peer)" => revocations,
    "access_denied", "Requests refused for the requester's role, by action" => access_denied,
    "rate_limited", "Connections, requests and messages refused by a limit, by plane and limit" => rate_limited,
);

impl SecurityMetrics {
    /// A token was issued.
    pub fn issued(&self, via: &'static str) {
        self.tokens_issued.get_or_create(&ViaLabel { via }).inc();
    }

    /// A token or token request was refused.
    pub fn rejected(&self, reason: &'static str) {
        self.auth_rejected
            .get_or_create(&StaticReasonLabel { reason })
            .inc();
    }

    /// A token (`token`) or all of a peer's tokens (`peer`) were revoked.
    pub fn revoked(&self, kind: &'static str) {
        self.revocations
            .get_or_create(&ActionLabel { action: kind })
            .inc();
    }

    /// A role was too low for `action` (`signaling`, `circuit`, `reservation`, `revoke`).
    pub fn denied(&self, action: &'static str) {
        self.access_denied
            .get_or_create(&ActionLabel { action })
            .inc();
    }

    /// A limit refused something on `plane` (`http`, `ws`, `libp2p`).
    pub fn limited(&self, plane: &'static str, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabel { plane, limit })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicReasonLabel {
    topic: String,
    reason: &'static str,
}

/// The libp2p node's own metrics: circuit relay v2 (hop) reservations and
/// circuits, connections by transport, bytes relayed, gossip refused.
/// Counters are exported with the `_total` suffix.
#[derive(Debug, Default)]
pub struct Libp2pNodeMetrics {
    reservations_active: Gauge,
    reservations: Counter,
    reservations_denied: Family<ReasonLabel, Counter>,
    circuits_active: Gauge,
    circuits: Counter,
    circuits_denied: Family<ReasonLabel, Counter>,
    connections_active: Family<TransportLabel, Gauge>,
    connections: Family<TransportLabel, Counter>,
    connections_now: AtomicI64,
    bytes_relayed: Counter,
    gossip_rejected: Family<TopicReasonLabel, Counter>,
    reservations_max: Gauge,
    circuits_max: Gauge,
}

/// Which transport a connection runs over, as a metric label.
pub fn transport_of(endpoint: &ConnectedPoint) -> &'static str {
    let addr: &Multiaddr = match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { local_addr, .. } => local_addr,
    };
    let mut kind = "other";
    for p in addr.iter() {
        kind = match p {
            Protocol::P2pCircuit => return "relayed",
            Protocol::Ws(_) | Protocol::Wss(_) => "websocket",
            Protocol::QuicV1 => "quic",
            Protocol::Tcp(_) if kind == "other" => "tcp",
            _ => kind,
        };
    }
    kind
}

registered!(Libp2pNodeMetrics;
    "reservations_active", "Reservations currently held" => reservations_active,
    "reservations", "Reservations accepted (renewals excluded)" => reservations,
    "reservations_denied", "Reservation requests denied, by reason" => reservations_denied,
    "circuits_active", "Circuits currently open" => circuits_active,
    "circuits", "Circuits accepted" => circuits,
    "circuits_denied", "Circuit requests denied, by reason" => circuits_denied,
    "connections_active", "Open connections, by transport" => connections_active,
    "connections", "Connections established, by transport" => connections,
    "bytes_relayed", "Bytes carried by circuits, both directions together" => bytes_relayed,
    "gossip_rejected", "Gossip messages refused (not forwarded), by topic and reason" => gossip_rejected,
    "reservations_max", "Reservations the relay holds at most (relay.max_reservations)" => reservations_max,
    "circuits_max", "Circuits the relay carries at once at most (relay.max_circuits)" => circuits_max,
);

impl Libp2pNodeMetrics {
    /// Updates the hop counters and the circuits gauge from a circuit relay
    /// v2 event. The reservations gauge is set apart
    /// ([`set_reservations_held`](Self::set_reservations_held)): libp2p's
    /// events do not say which connection held a reservation.
    pub fn record_hop(&self, event: &relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { renewed: false, .. } => {
                self.reservations.inc();
            }
            relay::Event::ReservationReqDenied { status, .. } => {
                self.reservations_denied
                    .get_or_create(&ReasonLabel {
                        reason: format!("{status:?}"),
                    })
                    .inc();
            }
            relay::Event::CircuitReqAccepted { .. } => {
                self.circuits.inc();
                self.circuits_active.inc();
            }
            relay::Event::CircuitReqDenied { status, .. } => {
                self.circuits_denied
                    .get_or_create(&ReasonLabel {
                        reason: format!("{status:?}"),
                    })
                    .inc();
            }
            relay::Event::CircuitClosed { .. } => {
                self.circuits_active.dec();
            }
            _ => {}
        }
    }

    /// Sets the configured ceilings, and starts the refusal series of the
    /// reasons an operator watches at 0, so dashboards and alerts see a
    /// series from the first scrape rather than none until the first refusal.
    pub fn set_limits(&self, max_reservations: usize, max_circuits: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.reservations_max.set(gauge(max_reservations));
        self.circuits_max.set(gauge(max_circuits));
        for reason in ["ResourceLimitExceeded", "PermissionDenied"] {
            let label = ReasonLabel {
                reason: reason.to_owned(),
            };
            self.reservations_denied.get_or_create(&label).inc_by(0);
            self.circuits_denied.get_or_create(&label).inc_by(0);
        }
        self.circuits_denied
            .get_or_create(&ReasonLabel {
                reason: "NoReservation".to_owned(),
            })
            .inc_by(0);
    }

    /// Sets the reservations held now.
    pub fn set_reservations_held(&self, held: usize) {
        self.reservations_active
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// A gossip message on `topic` was refused for `reason`
    /// ([`ValidationError::reason`](darkswap_p2p::ValidationError::reason)).
    /// `topic` is one the relay subscribed to: gossipsub delivers no other.
    pub fn gossip_rejected(&self, topic: &str, reason: &'static str) {
        self.gossip_rejected
            .get_or_create(&TopicReasonLabel {
                topic: topic.to_owned(),
                reason,
            })
            .inc();
    }

    /// A connection was established.
    pub fn connection_opened(&self, endpoint: &ConnectedPoint) {
        let label = TransportLabel {
            transport: transport_of(endpoint),
        };
        self.connections.get_or_create(&label).inc();
        self.connections_active.get_or_create(&label).inc();
        self.connections_now.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn connection_closed(&self, endpoint: &ConnectedPoint) {
        let label = TransportLabel {
            transport: transport_of(endpoint),
        };
        self.connections_active.get_or_create(&label).dec();
        self.connections_now.fetch_sub(1, Ordering::Relaxed);
    }

    /// The counter the transport adds relayed bytes to.
    pub(crate) fn bytes_relayed_counter(&self) -> Counter {
        self.bytes_relayed.clone()
    }

    /// Reservations held now.
    pub fn reservations_now(&self) -> i64 {
        self.reservations_active.get()
    }

    /// Circuits open now.
    pub fn circuits_now(&self) -> i64 {
        self.circuits_active.get()
    }

    /// Connections open now.
    pub fn connections_now(&self) -> i64 {
        self.connections_now.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::{PeerId, core::Endpoint, core::transport::PortUse};
    use prometheus_client::encoding::text::encode;

    fn dialer(addr: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: addr.parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    #[test]
    fn transports_are_labelled() {
        assert_eq!(transport_of(&dialer("/ip4/1.2.3.4/tcp/1")), "tcp");
        assert_eq!(transport_of(&dialer("/ip4/1.2.3.4/tcp/1/ws")), "websocket");
        assert_eq!(transport_of(&dialer("/ip4/1.2.3.4/udp/1/quic-v1")), "quic");
        let relayed = format!("/ip4/1.2.3.4/tcp/1/p2p/{}/p2p-circuit", PeerId::random());
        assert_eq!(transport_of(&dialer(&relayed)), "relayed");
    }

    #[test]
    fn hop_events_move_the_metrics() {
        let mut registry = Registry::default();
        let m = Libp2pNodeMetrics::register(&mut registry);
        let (a, b) = (PeerId::random(), PeerId::random());
        m.record_hop(&relay::Event::ReservationReqAccepted {
            src_peer_id: a,
            renewed: false,
        });
        m.record_hop(&relay::Event::ReservationReqAccepted {
            src_peer_id: a,
            renewed: true,
        });
        m.record_hop(&relay::Event::CircuitReqAccepted {
            src_peer_id: a,
            dst_peer_id: b,
        });
        m.record_hop(&relay::Event::CircuitReqDenied {
            src_peer_id: a,
            dst_peer_id: b,
            status: relay::StatusCode::ResourceLimitExceeded,
        });
        assert_eq!(m.circuits_now(), 1);
        m.record_hop(&relay::Event::CircuitClosed {
            src_peer_id: a,
            dst_peer_id: b,
            error: None,
        });
        // libp2p reports a close for every connection: the gauge is not
        // moved by events but set from the count of reservations held.
        m.record_hop(&relay::Event::ReservationClosed { src_peer_id: b });
        assert_eq!((m.reservations_now(), m.circuits_now()), (0, 0));
        m.set_reservations_held(2);
        m.gossip_rejected("darkswap/orderbook/v1", "undecodable");
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("darkswap_relay_reservations_total 1"),
            "{text}"
        );
        assert!(text.contains("darkswap_relay_circuits_total 1"), "{text}");
        assert!(
            text.contains(
                "darkswap_relay_circuits_denied_total{reason=\"ResourceLimitExceeded\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("darkswap_relay_reservations_active 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "darkswap_relay_gossip_rejected_total{topic=\"darkswap/orderbook/v1\",reason=\"undecodable\"} 1"
            ),
            "{text}"
        );
    }
}

/// The STUN/TURN port (`[turn]`).
#[derive(Debug, Default)]
pub struct TurnMetrics {
    allocations_active: Gauge,
    allocations: Counter,
    refusals: Family<StaticReasonLabel, Counter>,
    credentials: Counter,
    bytes_relayed: Counter,
    bytes_dropped: Counter,
}

registered!(TurnMetrics;
    "turn_allocations_active", "TURN allocations held now" => allocations_active,
    "turn_allocations", "TURN allocations granted" => allocations,
    "turn_refusals", "TURN Allocate requests refused, by reason (unauthorized: bad, expired or missing credentials; peer_limit; allocation_limit)" => refusals,
    "turn_credentials_issued", "TURN credentials minted by POST /auth/ice-servers" => credentials,
    "turn_bytes_relayed", "Bytes relayed through TURN allocations, both directions" => bytes_relayed,
    "turn_bytes_dropped", "Bytes of datagrams dropped over an allocation's bandwidth" => bytes_dropped,
);

impl TurnMetrics {
    pub(crate) fn allocated(&self, active: usize) {
        self.allocations.inc();
        self.set_active(active);
    }

    pub(crate) fn set_active(&self, active: usize) {
        self.allocations_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        self.refusals
            .get_or_create(&StaticReasonLabel { reason })
            .inc();
    }

    pub(crate) fn credentials_issued(&self) {
        self.credentials.inc();
    }

    pub(crate) fn relayed(&self, bytes: usize) {
        self.bytes_relayed.inc_by(bytes as u64);
    }

    pub(crate) fn dropped(&self, bytes: usize) {
        self.bytes_dropped.inc_by(bytes as u64);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StaticReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseCodeLabel {
    code: u16,
}

/// Metrics of the WebSocket signaling server and its relayed circuits
/// (`darkswap_relay_signaling_*`, `darkswap_relay_ws_*`).
#[derive(Debug, Default)]
pub struct SignalingMetrics {
    /// Peers registered now.
    pub(crate) peers: Gauge,
    /// `/signaling` sockets accepted.
    pub(crate) connections: Counter,
    messages: Family<TypeLabel, Counter>,
    errors: Family<CodeLabel, Counter>,
    /// Circuits open now.
    pub(crate) circuits_active: Gauge,
    /// Circuits opened (both ends attached).
    pub(crate) circuits_total: Counter,
    circuits_denied: Family<StaticReasonLabel, Counter>,
    circuits_closed: Family<StaticReasonLabel, Counter>,
    /// Bytes forwarded through circuits, both directions.
    pub(crate) bytes_forwarded: Counter,
    ws_closes: Family<CloseCodeLabel, Counter>,
    /// TCP connections open on the public port, in any phase.
    pub(crate) public_connections: Gauge,
}

registered!(SignalingMetrics;
    "signaling_peers", "Peers registered on the signaling server" => peers,
    "signaling_connections", "Signaling WebSocket connections accepted" => connections,
    "signaling_messages", "Messages routed by the signaling server, by type" => messages,
    "signaling_errors", "Errors sent to signaling clients, by code" => errors,
    "ws_circuits_active", "Relayed WebSocket circuits open now" => circuits_active,
    "ws_circuits", "Relayed WebSocket circuits opened" => circuits_total,
    "ws_circuits_denied", "Relayed circuit requests refused, by reason" => circuits_denied,
    "ws_circuits_closed", "Relayed circuits ended, by reason" => circuits_closed,
    "ws_bytes_forwarded", "Bytes forwarded through relayed WebSocket circuits" => bytes_forwarded,
    "ws_closes", "WebSocket closes the relay sent on /signaling and /relay, by close code" => ws_closes,
    "public_connections", "TCP connections open on the public port (/signaling, /relay, /auth/*), in any phase" => public_connections,
);

impl SignalingMetrics {
    pub(crate) fn message(&self, kind: &'static str) {
        self.messages
            .get_or_create(&TypeLabel { r#type: kind })
            .inc();
    }

    pub(crate) fn error(&self, code: darkswap_proto::signaling::ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    /// The relay sent a WebSocket close with `code`.
    pub(crate) fn ws_closed(&self, code: u16) {
        self.ws_closes.get_or_create(&CloseCodeLabel { code }).inc();
    }

    pub(crate) fn circuit_denied(&self, reason: &'static str) {
        self.circuits_denied
            .get_or_create(&StaticReasonLabel { reason })
            .inc();
    }

    pub(crate) fn circuit_closed(&self, reason: &'static str) {
        self.circuits_closed
            .get_or_create(&StaticReasonLabel { reason })
            .inc();
    }

    /// Counts what the signaling hub reported, in these metrics and (for
    /// role refusals) in `security`.
    pub(crate) fn record_hub_event(&self, event: HubEvent, security: &SecurityMetrics) {
        match event {
            HubEvent::SignalingOpened => {
                self.connections.inc();
            }
            HubEvent::PeersChanged(n) => {
                self.peers.set(n as i64);
            }
            HubEvent::Routed(kind) => self.message(kind),
            HubEvent::ErrorSent(code) => self.error(code),
            HubEvent::AccessDenied(action) => security.denied(action),
            HubEvent::CircuitDenied(reason) => self.circuit_denied(reason),
            HubEvent::CircuitOpened => {
                self.circuits_total.inc();
                self.circuits_active.inc();
            }
            HubEvent::CircuitEnded { reason, was_open } => {
                if was_open {
                    self.circuits_active.dec();
                }
                self.circuit_closed(reason);
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    result: &'static str,
}

/// TLS of the public port and of libp2p's `/tls/ws` listeners
/// (`darkswap_relay_tls_*`), registered when TLS is on.
#[derive(Debug, Default)]
pub struct TlsMetrics {
    expiry: Gauge,
    reloads: Family<OutcomeLabel, Counter>,
    handshake_failures: Family<StaticReasonLabel, Counter>,
}

registered!(TlsMetrics;
    "tls_certificate_expiry_timestamp_seconds", "When the certificate in use expires (its notAfter), in Unix seconds" => expiry,
    "tls_reloads", "Certificate reloads after the files changed or on request, by result (ok; error: the certificate in use was kept)" => reloads,
    "tls_handshake_failures", "TLS handshakes on the public port that did not complete, by reason (timeout, plaintext: an HTTP request to the TLS port, error)" => handshake_failures,
);

impl TlsMetrics {
    /// The certificate in use expires at `not_after` (Unix seconds).
    pub(crate) fn set_expiry(&self, not_after: i64) {
        self.expiry.set(not_after);
    }

    /// A reload ended with `result` (`ok`, `error`).
    pub(crate) fn reloaded(&self, result: &'static str) {
        self.reloads.get_or_create(&OutcomeLabel { result }).inc();
    }

    /// A handshake on the public port failed for `reason`.
    pub(crate) fn handshake_failed(&self, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&StaticReasonLabel { reason })
            .inc();
    }
}
