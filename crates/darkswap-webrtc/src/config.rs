//! Settings of a [`WebRtcConnectionManager`](crate::WebRtcConnectionManager).

use darkswap_proto::relay_auth::IceServer;
use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

/// Label of the data channel DarkSwap peers open.
pub const DATA_CHANNEL_LABEL: &str = "darkswap";

/// WebRTC settings of a [`WebRtcConnectionManager`](crate::WebRtcConnectionManager).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebRtcConfig {
    /// Local addresses offered as ICE host candidates, one UDP socket each.
    /// Default: 127.0.0.1 and, when the machine has one, the address of its
    /// default route.
    pub candidate_ips: Vec<IpAddr>,
    /// Bound on a connection attempt, offer to open data channel. Default: 15 s.
    pub connect_timeout: Duration,
    /// Largest message sent or accepted. Default: 256 KiB (what Chromium
    /// announces as its SCTP max-message-size).
    pub max_message_size: usize,
    /// How long a connection whose ICE went `Disconnected` may take to
    /// recover before it is closed. Default: 5 s.
    pub disconnect_grace: Duration,
    /// How long a WebRTC attempt this side offers may take before it falls
    /// back to a relayed circuit (the browser client's `iceTimeoutMs`).
    /// Default: 5 s.
    pub ice_timeout: Duration,
    /// Which ICE candidates to use (seed 002's `iceTransportPolicy`).
    /// Default: [`IceTransportPolicy::All`].
    pub ice_transport_policy: IceTransportPolicy,
    /// Whether [`create_connection`](crate::WebRtcConnectionManager::create_connection)
    /// falls back to a relayed circuit (through the signaling server's
    /// `/relay`, end-to-end encrypted) when WebRTC does not connect within
    /// [`ice_timeout`](Self::ice_timeout). Default: true.
    pub relay_fallback: bool,
    /// Whether to accept relayed circuits other peers request. Default: true.
    pub accept_relayed: bool,
    /// STUN and TURN servers (seed 002's `iceServers`): `stun:host:port`
    /// gives server-reflexive candidates, `turn:host:port?transport=udp`
    /// with a username and credential a relayed one. Default: none. A
    /// relay's own come from [`fetch_ice_servers`](crate::WebRtcSignalingClient::fetch_ice_servers).
    pub ice_servers: Vec<IceServer>,
    /// Fetch the signaling relay's own STUN and TURN servers (short-lived
    /// TURN credentials; fetched again when 3/4 of their life is over) and
    /// use them beside [`ice_servers`](Self::ice_servers). Default: false.
    pub relay_ice_servers: bool,
}

/// Which ICE candidates a connection gathers (WebRTC's `RTCIceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IceTransportPolicy {
    /// Host candidates (and, with ICE servers, reflexive and relay ones).
    #[default]
    All,
    /// Only relay candidates (from a TURN server): no host candidate reveals
    /// a local address. With no TURN server there is no candidate at all,
    /// WebRTC cannot connect, and connections take the relayed circuit.
    Relay,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        let mut candidate_ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if let Some(ip) = default_route_ip() {
            candidate_ips.push(ip);
        }
        WebRtcConfig {
            candidate_ips,
            connect_timeout: Duration::from_secs(15),
            max_message_size: 256 * 1024,
            disconnect_grace: Duration::from_secs(5),
            ice_timeout: Duration::from_secs(5),
            ice_transport_policy: IceTransportPolicy::All,
            relay_fallback: true,
            accept_relayed: true,
            ice_servers: Vec::new(),
            relay_ice_servers: false,
        }
    }
}

impl WebRtcConfig {
    /// Only loopback candidates: for tests and same-host peers.
    pub fn loopback() -> Self {
        WebRtcConfig {
            candidate_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ..WebRtcConfig::default()
        }
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ice_timeout`](Self::ice_timeout).
    pub fn with_ice_timeout(mut self, timeout: Duration) -> Self {
        self.ice_timeout = timeout;
        self
    }

    /// Sets [`ice_transport_policy`](Self::ice_transport_policy).
    pub fn with_ice_transport_policy(mut self, policy: IceTransportPolicy) -> Self {
        self.ice_transport_policy = policy;
        self
    }

    /// Sets [`relay_fallback`](Self::relay_fallback).
    pub fn with_relay_fallback(mut self, fallback: bool) -> Self {
        self.relay_fallback = fallback;
        self
    }

    /// Sets [`ice_servers`](Self::ice_servers).
    pub fn with_ice_servers(mut self, servers: Vec<IceServer>) -> Self {
        self.ice_servers = servers;
        self
    }

    /// Sets [`relay_ice_servers`](Self::relay_ice_servers).
    pub fn with_relay_ice_servers(mut self, fetch: bool) -> Self {
        self.relay_ice_servers = fetch;
        self
    }

    /// Whether a WebRTC attempt can have any candidate: host addresses, or
    /// a TURN server.
    pub(crate) fn has_candidates(&self) -> bool {
        !self.host_candidate_ips().is_empty()
            || self.relay_ice_servers
            || self
                .ice_servers
                .iter()
                .any(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
    }

    /// Sets [`accept_relayed`](Self::accept_relayed).
    pub fn with_accept_relayed(mut self, accept: bool) -> Self {
        self.accept_relayed = accept;
        self
    }

    /// The addresses host candidates are gathered on under the policy.
    pub(crate) fn host_candidate_ips(&self) -> &[IpAddr] {
        match self.ice_transport_policy {
            IceTransportPolicy::All => &self.candidate_ips,
            IceTransportPolicy::Relay => &[],
        }
    }

    /// Sets [`candidate_ips`](Self::candidate_ips).
    pub fn with_candidate_ips(mut self, ips: Vec<IpAddr>) -> Self {
        self.candidate_ips = ips;
        self
    }
}

/// The address the OS would send from to reach the internet. Connecting a
/// UDP socket sends nothing; it only picks a route.
pub(crate) fn default_route_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}
