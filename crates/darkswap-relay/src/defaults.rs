//! Every default of the relay in one place, each with its reason where it
//! is not obvious. The configuration types' `Default` impls, the binary's
//! config file (`deploy/config.toml` lists the same values) and the sans-IO
//! hub's [`HubConfig`](crate::signaling::hub::HubConfig) read them from here.
//!
//! Grouped by what they configure: [`libp2p`] (the libp2p node), [`hop`]
//! (libp2p circuit relay v2), [`admin_http`] (`/metrics`, `/health`),
//! [`signaling`] (`/signaling`), [`ws_circuit`] (WebSocket circuits on
//! `/relay`), [`tokens`] (the token authority), [`limits`] (ceilings on the
//! public port and on libp2p connections), [`peer_auth`]
//! (`/darkswap/auth/1.0.0`) and [`tls`] (certificates of the public port and
//! of libp2p WebSocket over TLS). [`timeouts`] and [`queues`] are fixed bounds of
//! the IO side that no configuration changes.

/// The libp2p node.
pub mod libp2p {
    use std::time::Duration;

    /// Listen addresses: TCP and QUIC on port 9000, WebSocket (browsers'
    /// libp2p) on TCP 9002 and WebRTC-direct (browsers without TLS) on UDP
    /// 9002.
    pub const LISTEN_ADDRESSES: [&str; 4] = [
        "/ip4/0.0.0.0/tcp/9000",
        "/ip4/0.0.0.0/udp/9000/quic-v1",
        "/ip4/0.0.0.0/tcp/9002/ws",
        "/ip4/0.0.0.0/udp/9002/webrtc-direct",
    ];
    /// How long a connection with nothing keeping it alive stays open: 60 s.
    pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
    /// Name of the data directory below the platform's data dir.
    pub const DATA_DIR_NAME: &str = "darkswap-relay";
    /// Data directory when the platform has no data dir.
    pub const FALLBACK_DATA_DIR: &str = "darkswap-relay-data";
}

/// libp2p circuit relay v2 (the hop protocol): reservations and circuits.
pub mod hop {
    use std::time::Duration;

    /// Reservations held at once, all peers together.
    pub const MAX_RESERVATIONS: usize = 1024;
    /// Reservations one peer may hold at once.
    pub const MAX_RESERVATIONS_PER_PEER: usize = 4;
    /// How long a reservation lasts before the client must renew it: 1 h.
    pub const RESERVATION_DURATION: Duration = Duration::from_secs(3600);
    /// Circuits open at once, all peers together.
    pub const MAX_CIRCUITS: usize = 256;
    /// Circuits one peer may have open at once.
    pub const MAX_CIRCUITS_PER_PEER: usize = 16;
    /// How long a circuit may stay open: 1 h (libp2p's 120 s is too short
    /// for a trade negotiation).
    pub const MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(3600);
    /// Bytes a circuit may carry in each direction: 64 MiB (libp2p's
    /// 128 KiB is too small for a PSBT exchange).
    pub const MAX_CIRCUIT_BYTES: u64 = 64 * 1024 * 1024;
    /// Reservation requests per peer: 30 per 120 s.
    pub const RESERVATION_RATE_PER_PEER: (u32, Duration) = (30, Duration::from_secs(120));
    /// Reservation requests per IP address: 60 per 60 s.
    pub const RESERVATION_RATE_PER_IP: (u32, Duration) = (60, Duration::from_secs(60));
    /// Circuit requests per source peer: 30 per 120 s.
    pub const CIRCUIT_RATE_PER_PEER: (u32, Duration) = (30, Duration::from_secs(120));
    /// Circuit requests per source IP address: 60 per 60 s.
    pub const CIRCUIT_RATE_PER_IP: (u32, Duration) = (60, Duration::from_secs(60));
}

/// The admin HTTP server (`/metrics`, `/health`).
pub mod admin_http {
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    /// Served unless disabled.
    pub const ENABLED: bool = true;
    /// `127.0.0.1:9090`: loopback, so exposing it is a deliberate act.
    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
}

/// The signaling endpoint (`/signaling`) and the public port it shares.
pub mod signaling {
    use std::{
        net::{Ipv4Addr, SocketAddr, SocketAddrV4},
        time::Duration,
    };

    /// Served unless disabled.
    pub const ENABLED: bool = true;
    /// `0.0.0.0:9001`: browsers must reach it.
    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9001));
    /// Largest text frame, in bytes: 64 KiB holds any SDP offer.
    pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
    /// Peers registered at once.
    pub const MAX_PEERS: usize = 10_000;
    /// How long a socket may stay silent before it is closed (4000): 60 s.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long a new socket has to register (4001): 10 s.
    pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Messages per second one socket may send.
    pub const MESSAGES_PER_SECOND: u32 = 20;
    /// Messages one socket may send in a burst above that rate.
    pub const MESSAGE_BURST: u32 = 50;
    /// Messages dropped for the rate in a row before the socket is closed.
    pub const MAX_RATE_VIOLATIONS: u32 = 50;
    /// How long a client on the public port has to send a complete request
    /// head (request line and headers), counted from the accept for the
    /// first request and from the previous answer for the next one on a
    /// kept-alive HTTP connection: 10 s. A slow head is the cheapest way to
    /// hold a socket, so it gets no more.
    pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long an HTTP request on the public port has, once its head is
    /// in, to deliver its body and get its answer (408 after): 10 s. The
    /// bodies are at most 16 KiB, a fraction of a second on any link.
    pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);
    /// Peers in one page of `registered` or `peers`: 20 ids are about
    /// 1 KiB. A socket's write buffer keeps the capacity of the largest
    /// message it sent (tungstenite does not shrink it), so the page is what
    /// every registered socket holds for its life: 100 ids cost each idle
    /// socket ~5 KiB, a third of its memory (`darkswap-bench
    /// idle-signaling`). A client wanting more pages on.
    pub const PEER_PAGE_SIZE: usize = 20;
    /// Peers one connection may watch at once.
    pub const MAX_WATCHED_PEERS: usize = 256;
    /// Bytes of offers, answers and candidates waiting for one recipient,
    /// all senders together, above which only each sender's reserve is
    /// admitted: 1 MiB.
    pub const SEND_QUEUE_BYTES: usize = 1024 * 1024;
    /// Bytes one sender may have waiting for one recipient: 128 KiB, two
    /// offers of the largest size.
    pub const SEND_QUEUE_BYTES_PER_SENDER: usize = 128 * 1024;
    /// How long a message may wait to be taken by a socket that has things
    /// to read before the socket is too slow (1008): 10 s.
    pub const SLOW_READER_TIMEOUT: Duration = Duration::from_secs(10);
}

/// WebSocket circuits (`/relay`): the fallback when WebRTC cannot connect.
pub mod ws_circuit {
    use std::time::Duration;

    /// Circuits pending or open at once, all peers together.
    pub const MAX_CIRCUITS: usize = 256;
    /// Circuits one peer may have pending or open at once.
    pub const MAX_CIRCUITS_PER_PEER: usize = 8;
    /// Bytes per second one circuit may carry, both directions: 1 MiB/s.
    pub const BANDWIDTH_PER_CIRCUIT: u64 = 1024 * 1024;
    /// Bytes per second one peer may send over all its circuits: 2 MiB/s.
    pub const BANDWIDTH_PER_PEER: u64 = 2 * 1024 * 1024;
    /// Bytes a circuit may carry in all, both directions: 64 MiB.
    pub const MAX_CIRCUIT_BYTES: u64 = 64 * 1024 * 1024;
    /// How long a circuit may stay open: 1 h.
    pub const MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(3600);
    /// How long a circuit may carry no frame: 60 s.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long a request may wait to be accepted and attached: 15 s.
    pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(15);
    /// Largest binary frame, in bytes: 256 KiB.
    pub const MAX_FRAME_SIZE: usize = 256 * 1024;
}

/// STUN and TURN on a UDP port of the relay's own (`[turn]`).
pub mod turn {
    use std::{
        net::{Ipv4Addr, SocketAddr, SocketAddrV4},
        time::Duration,
    };

    use darkswap_proto::relay_auth::Role;

    /// Off unless enabled: TURN relays traffic for others and needs the
    /// relay's public address and a UDP port range open.
    pub const ENABLED: bool = false;
    /// `0.0.0.0:3478`, the IANA STUN/TURN port.
    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 3478));
    /// First UDP port of relayed addresses.
    pub const RELAY_PORT_MIN: u16 = 49152;
    /// Last UDP port of relayed addresses.
    pub const RELAY_PORT_MAX: u16 = 65535;
    /// The TURN realm.
    pub const REALM: &str = "darkswap";
    /// How long minted TURN credentials are valid: 10 min (a client
    /// fetches new ones for each connection attempt).
    pub const CREDENTIAL_TTL: Duration = Duration::from_secs(600);
    /// Lowest role that is given TURN credentials.
    pub const ROLE: Role = Role::User;
    /// Allocations held at once, all peers together.
    pub const MAX_ALLOCATIONS: usize = 256;
    /// Allocations one peer may hold at once.
    pub const MAX_ALLOCATIONS_PER_PEER: usize = 4;
    /// Bytes per second one allocation may relay, both directions together;
    /// datagrams above it are dropped, as a congested link drops them:
    /// 1 MiB/s.
    pub const BANDWIDTH_PER_ALLOCATION: u64 = 1024 * 1024;
}

/// The token authority and the roles it grants.
pub mod tokens {
    use std::time::Duration;

    use darkswap_proto::relay_auth::Role;

    /// Role of a WebSocket client without a token: `user`, an open relay.
    pub const ANONYMOUS_ROLE: Role = Role::User;
    /// Role of a peer that proved its key and is not listed.
    pub const DEFAULT_ROLE: Role = Role::User;
    /// Lowest role that may register on `/signaling`.
    pub const SIGNALING_ROLE: Role = Role::User;
    /// Lowest role that may request or accept a WebSocket circuit.
    pub const CIRCUIT_ROLE: Role = Role::User;
    /// Lowest role that may hold a libp2p relay reservation.
    pub const RESERVATION_ROLE: Role = Role::User;
    /// Lifetime of the tokens `/auth/token` and `/auth/refresh` issue: 1 h.
    pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
    /// Longest lifetime any token may have: 1 day.
    pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(86_400);
    /// How long a challenge may be answered: 60 s.
    pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
    /// Challenges outstanding at once, all peers together.
    pub const MAX_PENDING_CHALLENGES: usize = 10_000;
    /// Clock skew tolerated on `exp` and `nbf`: 30 s.
    pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
    /// The `aud` claim.
    pub const AUDIENCE: &str = "darkswap-relay";
}

/// Ceilings on the public port (signaling, WebSocket circuits, `/auth/*`)
/// and on libp2p connections.
pub mod limits {
    use std::time::Duration;

    /// Connections open at once from one IP address on the public port.
    pub const MAX_CONNECTIONS_PER_IP: usize = 64;
    /// New connections from one IP address: 120 per 60 s.
    pub const CONNECTION_RATE_PER_IP: (u32, Duration) = (120, Duration::from_secs(60));
    /// New connections from all addresses together: 2000 per second.
    pub const CONNECTION_RATE_GLOBAL: (u32, Duration) = (2000, Duration::from_secs(1));
    /// `/auth/*` requests from one IP address: 30 per 60 s.
    pub const HTTP_RATE_PER_IP: (u32, Duration) = (30, Duration::from_secs(60));
    /// `/auth/*` requests from all addresses together: 500 per second.
    pub const HTTP_RATE_GLOBAL: (u32, Duration) = (500, Duration::from_secs(1));
    /// Signaling messages per second from all sockets together.
    pub const MESSAGES_PER_SECOND_GLOBAL: u32 = 20_000;
    /// Bytes per second all WebSocket circuits together: 256 MiB/s.
    pub const BANDWIDTH_GLOBAL: u64 = 256 * 1024 * 1024;
    /// libp2p connections established at once.
    pub const MAX_ESTABLISHED_CONNECTIONS: u32 = 8192;
    /// libp2p connections established at once with one peer.
    pub const MAX_CONNECTIONS_PER_PEER: u32 = 8;
    /// libp2p incoming connections in their handshake at once.
    pub const MAX_PENDING_INCOMING: u32 = 512;
    /// Percentage of the system's memory above which new libp2p
    /// connections are refused.
    pub const MAX_MEMORY_PERCENTAGE: f64 = 90.0;
}

/// The relay's side of `/darkswap/auth/1.0.0`.
pub mod peer_auth {
    use std::time::Duration;

    /// Served unless disabled, so nodes requiring relay authentication can
    /// use the relay.
    pub const ENABLED: bool = true;
    /// Challenge every connecting peer: off.
    pub const REQUIRE_AUTH: bool = false;
    /// How long a challenge may be answered: 30 s.
    pub const CHALLENGE_TTL: Duration = Duration::from_secs(30);
    /// How long an authentication lasts: 1 h.
    pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
}

/// TLS on the public port (`wss://`, `https://`) and libp2p WebSocket over
/// TLS (`/tls/ws`), on once a certificate and its key are configured.
pub mod tls {
    use std::time::Duration;

    /// How often the certificate and key files are checked for a change:
    /// 60 s. An ACME client renews weeks before expiry, so a minute late is
    /// nothing, and a check is two `stat` calls.
    pub const RELOAD_INTERVAL: Duration = Duration::from_secs(60);
    /// libp2p WebSocket over TLS for browsers' libp2p (`wss://` through
    /// `/tls/ws`): TCP 9443, beside the plain `/ws` on 9002.
    pub const LIBP2P_LISTEN_ADDRESSES: [&str; 1] = ["/ip4/0.0.0.0/tcp/9443/tls/ws"];
}

/// Fixed deadlines of the IO side.
pub mod timeouts {
    use std::time::Duration;

    /// Every `/signaling` socket's pings fall on multiples of this from the
    /// server's start (each at its own random one), so one timer wake-up
    /// sends the pings of many sockets: 250 ms.
    pub const PING_SLOT: Duration = Duration::from_millis(250);
    /// Bound on writing an answer the public port writes itself (101, 400,
    /// 426, 429, ...) to a client that may not read: 2 s. A few hundred
    /// bytes on a fresh connection fit the socket buffer at once; a client
    /// whose window stays shut is let go.
    pub const ANSWER: Duration = Duration::from_secs(2);
    /// How long a connection refused by a connection limit is served, all
    /// told, to hear its answer: its request head, the 429 or the upgrade
    /// and close 1013, the close handshake: 1 s. A client that is refused
    /// gets its answer in a round trip; one that is silent holds its
    /// refusal place no longer than this (and never a socket slot).
    pub const REFUSAL: Duration = Duration::from_secs(1);
    /// How long a closing socket waits for the client's half of the close
    /// handshake: dropping the TCP connection before the client read our
    /// close frame can turn it into a reset that loses the frame.
    pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);
    /// Bound on sending one message to a client that may have stopped
    /// reading: such a client is gone, not a reason to stall.
    pub const SEND: Duration = Duration::from_secs(5);
    /// Bound on sending a close frame, or flushing the reply to the
    /// client's.
    pub const CLOSE_SEND: Duration = Duration::from_secs(1);
    /// How long start-up waits for each libp2p listener to come up.
    pub const LISTEN: Duration = Duration::from_secs(5);
    /// How long shutdown waits for libp2p connections to close.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
    /// Bound on one `/darkswap/auth/1.0.0` exchange.
    pub const PEER_AUTH: Duration = Duration::from_secs(10);
    /// How long the public port stops accepting after an accept failed
    /// for want of a resource (file descriptors, memory): 100 ms. Each
    /// accept would fail at once until a connection closes.
    pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
    /// How often per-address rate limiters forget addresses whose bucket
    /// is full again.
    pub const FORGET_IDLE_ADDRESSES: Duration = Duration::from_secs(60);
}

/// Fixed queue bounds of the IO side.
pub mod queues {
    /// The server's own messages (replies, errors, presence, circuit
    /// control) queued for one socket; a client that lets more pile up does
    /// not read and is disconnected. On `/relay`, control messages queued.
    pub const SOCKET: usize = 256;
    /// Bytes of routed messages one sender may always have waiting for one
    /// recipient, however full its queue: 16 KiB, an offer and its
    /// candidates, so a crowd cannot shut an honest sender out.
    pub const SENDER_RESERVE: usize = 16 * 1024;
    /// Read buffer of a WebSocket on the public port: 2 KiB, what a
    /// registration or an answer needs. It grows for a larger frame and
    /// reads in steps of this size; tungstenite's default, 128 KiB
    /// allocated and zeroed per socket, was most of an idle socket's memory.
    pub const WS_READ_BUFFER: usize = 2 * 1024;
    /// Frames queued from one circuit end to the other; a full queue slows
    /// the sender down rather than growing.
    pub const CIRCUIT_FRAMES: usize = 64;
    /// Sockets beyond what the limits can use, on top of `max_peers + 2 ×
    /// max_circuits`, for HTTP and connections in their handshake; past
    /// them a connection is refused (429 or 1013).
    pub const SPARE_SOCKETS: usize = 64;
    /// Largest `/auth/*` request body, in bytes.
    pub const HTTP_BODY: usize = 16 * 1024;
    /// Largest request head on the public port (request line and headers),
    /// in bytes: 16 KiB, several times what a browser's upgrade with a
    /// token needs. Larger is 431.
    pub const REQUEST_HEAD: usize = 16 * 1024;
    /// Refused connections being answered at once, all addresses together;
    /// past it (or past [`REFUSALS_PER_ADDRESS`]) a refused connection is
    /// reset without an answer.
    pub const REFUSALS: usize = 256;
    /// Refused connections of one address being answered at once: a flood
    /// from one address cannot take the answers others are owed.
    pub const REFUSALS_PER_ADDRESS: usize = 2;
}
