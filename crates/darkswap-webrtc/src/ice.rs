//! ICE candidates of one connection: host candidates on the configured
//! addresses, server-reflexive ones learnt from STUN servers (a binding
//! request from each host socket, before the socket is handed to the
//! connection), and a relayed one from a TURN allocation (webrtc-rs's TURN
//! client on a socket of its own), all gathered before the offer or answer
//! is made so the SDP carries them.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use darkswap_proto::relay_auth::IceServer;
use str0m::{Candidate, Rtc};
use stun::{
    agent::TransactionId,
    message::{BINDING_REQUEST, Getter, Message},
    xoraddr::XorMappedAddress,
};
use tokio::{net::UdpSocket, sync::mpsc};
use tokio_util::task::AbortOnDropHandle;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

use crate::{config::WebRtcConfig, error::WebRtcError};

/// Bound on each STUN binding request and each TURN allocation.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a binding request is sent again within that bound.
const STUN_RETRANSMIT: Duration = Duration::from_millis(500);
/// Datagrams waiting for the TURN relay at most (ICE retransmits).
const TURN_QUEUE: usize = 256;

/// Datagrams to send through a TURN allocation: (data, destination).
pub(crate) type TurnOutbox = mpsc::Sender<(Vec<u8>, SocketAddr)>;
/// Datagrams received: (data, source, the local address they came to).
pub(crate) type Inbound = mpsc::Sender<(Vec<u8>, SocketAddr, SocketAddr)>;

/// Which of our candidates a connection's datagrams leave from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateType {
    /// A local socket: a host candidate, or a server-reflexive one (ICE
    /// pairs those by their base, the same socket).
    Host,
    /// Our TURN allocation: everything goes through the TURN server.
    Relay,
}

/// One ICE server URL this client can use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Server {
    Stun(String),
    Turn {
        addr: String,
        username: String,
        credential: String,
    },
}

/// `stun:host:port` and `turn:host:port[?transport=udp]`; other schemes
/// (`turns:`, TCP transport) are skipped.
fn servers(ice: &[IceServer]) -> Vec<Server> {
    let mut out = Vec::new();
    for server in ice {
        for url in &server.urls {
            let (scheme, rest) = match url.split_once(':') {
                Some(parts) => parts,
                None => continue,
            };
            let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
            let hostport = hostport.trim_start_matches("//");
            let addr = if hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                hostport.to_owned()
            } else {
                format!("{hostport}:3478")
            };
            match scheme {
                "stun" => out.push(Server::Stun(addr)),
                "turn" if query.is_empty() || query == "transport=udp" => out.push(Server::Turn {
                    addr,
                    username: server.username.clone().unwrap_or_default(),
                    credential: server.credential.clone().unwrap_or_default(),
                }),
                _ => tracing::debug!(%url, "ICE server skipped: only stun: and UDP turn: are used"),
            }
        }
    }
    out
}

/// The sockets of one connection, as gathered.
pub(crate) struct Gathered {
    pub(crate) rtc: Rtc,
    pub(crate) sockets: Vec<Arc<UdpSocket>>,
    pub(crate) relay: Option<TurnRelay>,
}

/// A TURN allocation: the relayed address and the client that holds it.
pub(crate) struct TurnRelay {
    pub(crate) addr: SocketAddr,
    pub(crate) conn: Arc<dyn Conn + Send + Sync>,
    client: Client,
}

impl TurnRelay {
    /// Starts moving datagrams: what arrives on the allocation goes to
    /// `inbound` as (data, source, relayed address); what is sent to the
    /// returned queue goes out through it (from a task of its own: the TURN
    /// client's first send to a peer waits for a permission).
    pub(crate) fn start(&self, inbound: Inbound) -> (TurnOutbox, [AbortOnDropHandle<()>; 2]) {
        let (out_tx, mut out_rx) = mpsc::channel::<(Vec<u8>, SocketAddr)>(TURN_QUEUE);
        let (conn, addr) = (self.conn.clone(), self.addr);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = conn.recv_from(&mut buf).await {
                if inbound.send((buf[..n].to_vec(), from, addr)).await.is_err() {
                    break;
                }
            }
        });
        let conn = self.conn.clone();
        let writer = tokio::spawn(async move {
            while let Some((data, to)) = out_rx.recv().await {
                if let Err(e) = conn.send_to(&data, to).await {
                    tracing::debug!(error = %e, "TURN send failed");
                }
            }
        });
        (
            out_tx,
            [
                AbortOnDropHandle::new(reader),
                AbortOnDropHandle::new(writer),
            ],
        )
    }

    /// Releases the allocation.
    pub(crate) async fn close(&self) {
        let _ = self.conn.close().await;
        let _ = self.client.close().await;
    }
}

/// Binds the host sockets, asks the STUN servers for reflexive addresses
/// and the TURN servers for an allocation, and makes an `Rtc` with every
/// candidate found. Fails only when there is no candidate at all.
pub(crate) async fn gather(config: &WebRtcConfig, mut rtc: Rtc) -> Result<Gathered, WebRtcError> {
    let servers = servers(&config.ice_servers);
    let mut sockets = Vec::new();
    for ip in config.host_candidate_ips() {
        let socket = UdpSocket::bind(SocketAddr::new(*ip, 0))
            .await
            .map_err(|e| WebRtcError::Local(format!("bind {ip}: {e}")))?;
        let base = socket
            .local_addr()
            .map_err(|e| WebRtcError::Local(e.to_string()))?;
        let host = Candidate::host(base, "udp").map_err(|e| WebRtcError::Local(e.to_string()))?;
        rtc.add_local_candidate(host);
        for server in &servers {
            if let Server::Stun(addr) = server
                && let Some(mapped) = reflexive(&socket, addr).await
                && mapped != base
            {
                match Candidate::server_reflexive(mapped, base, "udp") {
                    Ok(c) => {
                        rtc.add_local_candidate(c);
                    }
                    Err(e) => tracing::debug!(%mapped, error = %e, "reflexive candidate skipped"),
                }
            }
        }
        sockets.push(Arc::new(socket));
    }
    let mut relay = None;
    for server in &servers {
        if let Server::Turn {
            addr,
            username,
            credential,
        } = server
        {
            match allocate(addr, username, credential, config).await {
                Ok(allocated) => {
                    let local = allocated
                        .client_local
                        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                    match Candidate::relayed(allocated.relay.addr, local, "udp") {
                        Ok(c) => {
                            rtc.add_local_candidate(c);
                            relay = Some(allocated.relay);
                            break;
                        }
                        Err(e) => tracing::debug!(error = %e, "relayed candidate skipped"),
                    }
                }
                Err(e) => tracing::warn!(server = %addr, error = %e, "TURN allocation failed"),
            }
        }
    }
    if sockets.is_empty() && relay.is_none() {
        return Err(WebRtcError::Local(
            "no ICE candidate: no host address under the ICE policy and no TURN allocation".into(),
        ));
    }
    Ok(Gathered {
        rtc,
        sockets,
        relay,
    })
}

/// Our address as `server` sees datagrams from `socket`, if it answers in time.
async fn reflexive(socket: &UdpSocket, server: &str) -> Option<SocketAddr> {
    let target = tokio::net::lookup_host(server).await.ok()?.find(|a| {
        socket
            .local_addr()
            .is_ok_and(|local| local.is_ipv4() == a.is_ipv4())
    })?;
    let mut request = Message::new();
    request
        .build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])
        .ok()?;
    let exchange = async {
        let mut buf = [0u8; 1500];
        loop {
            socket.send_to(&request.raw, target).await.ok()?;
            let answer = tokio::time::timeout(STUN_RETRANSMIT, socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = answer else { continue };
            let mut response = Message::new();
            if from != target
                || response.unmarshal_binary(&buf[..n]).is_err()
                || response.transaction_id != request.transaction_id
            {
                continue;
            }
            let mut mapped = XorMappedAddress::default();
            mapped.get_from(&response).ok()?;
            return Some(SocketAddr::new(mapped.ip, mapped.port));
        }
    };
    tokio::time::timeout(GATHER_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

struct Allocated {
    relay: TurnRelay,
    client_local: Option<SocketAddr>,
}

/// A TURN allocation on `server` from a socket of its own.
async fn allocate(
    server: &str,
    username: &str,
    credential: &str,
    config: &WebRtcConfig,
) -> Result<Allocated, String> {
    let target = tokio::net::lookup_host(server)
        .await
        .map_err(|e| e.to_string())?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{server}: no IPv4 address"))?;
    // The socket the TURN client talks from: on the first configured
    // address that reaches the server, else any.
    let bind = config
        .candidate_ips
        .iter()
        .find(|ip| ip.is_loopback() == target.ip().is_loopback())
        .copied()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let socket = UdpSocket::bind(SocketAddr::new(bind, 0))
        .await
        .map_err(|e| e.to_string())?;
    let client_local = socket.local_addr().ok();
    let client = Client::new(ClientConfig {
        stun_serv_addr: target.to_string(),
        turn_serv_addr: target.to_string(),
        username: username.to_owned(),
        password: credential.to_owned(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    client.listen().await.map_err(|e| e.to_string())?;
    let conn = match tokio::time::timeout(GATHER_TIMEOUT, client.allocate()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            let _ = client.close().await;
            return Err(e.to_string());
        }
        Err(_) => {
            let _ = client.close().await;
            return Err("no answer in time".into());
        }
    };
    let addr = conn.local_addr().map_err(|e| e.to_string())?;
    Ok(Allocated {
        relay: TurnRelay {
            addr,
            conn: Arc::new(conn),
            client,
        },
        client_local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_server_urls_as_browsers_take_them() {
        let ice = [
            IceServer {
                urls: vec!["stun:relay.example:3478".into(), "stun:10.0.0.1".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec![
                    "turn:10.0.0.1:3478?transport=udp".into(),
                    "turn:10.0.0.1:3478?transport=tcp".into(),
                    "turns:relay.example:5349".into(),
                ],
                username: Some("1:me".into()),
                credential: Some("pw".into()),
            },
        ];
        assert_eq!(
            servers(&ice),
            [
                Server::Stun("relay.example:3478".into()),
                Server::Stun("10.0.0.1:3478".into()),
                Server::Turn {
                    addr: "10.0.0.1:3478".into(),
                    username: "1:me".into(),
                    credential: "pw".into()
                },
            ]
        );
    }
}
