//! What the signaling tests share: a signaling server on 127.0.0.1 port 0
//! with its metrics and token authority, and a WebSocket client that speaks
//! raw frames, so tests can send anything.
// Each test crate uses part of this.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use darkswap_proto::{
    relay_auth::{Role, sign_token_request},
    signaling::sign_registration,
};
use darkswap_relay::{
    SignalingServer,
    config::{RelayConfig, SignalingConfig, WsCircuitConfig},
    metrics::SecurityMetrics,
    token_authority::TokenAuthority,
};
use futures::{SinkExt, StreamExt};
use libp2p::identity::Keypair;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use tokio_util::sync::CancellationToken;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Server {
    pub(crate) server: Option<SignalingServer>,
    pub(crate) cancel: CancellationToken,
    pub(crate) registry: Registry,
    pub(crate) authority: Arc<TokenAuthority>,
}

impl Server {
    pub(crate) async fn start(
        tune: impl FnOnce(&mut SignalingConfig, &mut WsCircuitConfig),
    ) -> Self {
        Self::start_with(|c| tune(&mut c.signaling, &mut c.ws_circuit)).await
    }

    pub(crate) async fn start_with(tune: impl FnOnce(&mut RelayConfig)) -> Self {
        let mut config = RelayConfig::default();
        config.signaling.listen = "127.0.0.1:0".parse().unwrap();
        tune(&mut config);
        let cancel = CancellationToken::new();
        let mut registry = Registry::default();
        let authority = Arc::new(
            TokenAuthority::new(
                &Keypair::generate_ed25519(),
                config.tokens.clone(),
                None,
                Arc::new(SecurityMetrics::register(&mut registry)),
            )
            .unwrap(),
        );
        let server =
            SignalingServer::bind(&config, authority.clone(), &mut registry, cancel.clone())
                .await
                .unwrap();
        Server {
            server: Some(server),
            cancel,
            registry,
            authority,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        let addr = self.server.as_ref().unwrap().local_addr();
        format!("ws://{addr}{path}")
    }

    pub(crate) fn metric(&self, sample: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub(crate) async fn stop(mut self) {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.server.take().unwrap().stopped())
            .await
            .expect("server stopped");
    }
}

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client speaking raw frames, so tests can send anything.
pub(crate) struct Client {
    pub(crate) ws: Socket,
    pub(crate) key: Keypair,
}

impl Client {
    pub(crate) async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client {
            ws,
            key: Keypair::generate_ed25519(),
        }
    }

    /// Connects to `/signaling` and registers with a fresh key.
    pub(crate) async fn registered(server: &Server) -> Self {
        let mut c = Client::connect(&server.url("/signaling")).await;
        let challenge = c.recv().await;
        let register = sign_registration(&c.key, challenge["nonce"].as_str().unwrap()).unwrap();
        c.send_text(&register.to_json()).await;
        let reply = c.recv().await;
        assert_eq!(reply["type"], "registered", "{reply}");
        c
    }

    pub(crate) fn id(&self) -> String {
        self.key.public().to_peer_id().to_string()
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub(crate) async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// The next JSON message; panics on close or timeout.
    pub(crate) async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next JSON message whose type is `kind`, skipping peer_joined/left.
    pub(crate) async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
            assert!(
                v["type"] == "peer_joined" || v["type"] == "peer_left",
                "expected {kind}, got {v}"
            );
        }
    }

    pub(crate) async fn recv_binary(&mut self) -> Vec<u8> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Binary(b) => return b.to_vec(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub(crate) async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match frame {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
                Some(Err(e)) => panic!("closed without a close frame: {e}"),
                Some(Ok(_)) => {}
            }
        }
    }

    pub(crate) async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.recv_type("error").await;
        assert_eq!(v["code"], code, "{v}");
        v
    }
}

/// `a` and `b` can still talk: an offer from `a` reaches `b`, stamped.
pub(crate) async fn still_routing(a: &mut Client, b: &mut Client) {
    let sdp = format!("v=0 check {}", rand_suffix());
    a.send(json!({"type":"offer","to":b.id(),"sdp":sdp})).await;
    let got = b.recv_type("offer").await;
    assert_eq!((&got["from"], &got["sdp"]), (&json!(a.id()), &json!(sdp)));
}

pub(crate) fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Opens a circuit from `a` to `b`; returns its id and both `/relay` sockets,
/// after both got `open`.
pub(crate) async fn open_circuit(
    server: &Server,
    a: &mut Client,
    b: &mut Client,
) -> (String, Client, Client) {
    a.send(json!({"type":"circuit_request","to":b.id()})).await;
    let pending = a.recv_type("circuit_pending").await;
    let request = b.recv_type("circuit_request").await;
    let id = request["circuit_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&pending["circuit_id"], &request["from"]),
        (&json!(id), &json!(a.id()))
    );
    b.send(json!({"type":"circuit_accept","circuit_id":id}))
        .await;
    let ready_a = a.recv_type("circuit_ready").await;
    let ready_b = b.recv_type("circuit_ready").await;
    assert_eq!(
        (&ready_a["peer"], &ready_b["peer"]),
        (&json!(b.id()), &json!(a.id()))
    );
    let mut ra = Client::connect(&server.url("/relay")).await;
    let mut rb = Client::connect(&server.url("/relay")).await;
    ra.send(json!({"type":"attach","circuit_id":id,"token":ready_a["token"]}))
        .await;
    assert_eq!(ra.recv().await, json!({"type":"attached","circuit_id":id}));
    // Frames sent before the circuit opens are refused, not queued.
    ra.ws.send(Message::binary(vec![0u8; 4])).await.unwrap();
    ra.expect_error("circuit_not_open").await;
    rb.send(json!({"type":"attach","circuit_id":id,"token":ready_b["token"]}))
        .await;
    assert_eq!(rb.recv().await, json!({"type":"attached","circuit_id":id}));
    assert_eq!(rb.recv().await, json!({"type":"open","circuit_id":id}));
    assert_eq!(ra.recv().await, json!({"type":"open","circuit_id":id}));
    (id, ra, rb)
}

/// Sends 1 MiB in 64 KiB frames over a fresh circuit; checks every frame
/// arrives intact and in order; returns how long it took.
pub(crate) async fn send_a_mebibyte(server: &Server) -> Duration {
    let mut a = Client::registered(server).await;
    let mut b = Client::registered(server).await;
    let (_, ra, mut rb) = open_circuit(server, &mut a, &mut b).await;
    let start = std::time::Instant::now();
    let (mut sink, _) = ra.ws.split();
    let sender = tokio::spawn(async move {
        for n in 0u8..16 {
            sink.send(Message::binary(vec![n; 64 * 1024]))
                .await
                .unwrap();
        }
        sink
    });
    for n in 0u8..16 {
        assert_eq!(rb.recv_binary().await, vec![n; 64 * 1024]);
    }
    let elapsed = start.elapsed();
    drop(sender.await.unwrap());
    elapsed
}

impl Server {
    pub(crate) fn http_url(&self, path: &str) -> String {
        let addr = self.server.as_ref().unwrap().local_addr();
        format!("http://{addr}{path}")
    }

    /// POSTs JSON; returns status, `Retry-After`/`WWW-Authenticate` and body.
    pub(crate) async fn post(&self, path: &str, bearer: Option<&str>, body: &str) -> Reply {
        let mut request = reqwest::Client::new()
            .post(self.http_url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (retry_after, www_authenticate) = (header("retry-after"), header("www-authenticate"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        Reply {
            status,
            retry_after,
            www_authenticate,
            body: serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text:?}")),
        }
    }

    /// Runs the challenge → token exchange for `key`.
    pub(crate) async fn token_for(&self, key: &Keypair) -> String {
        let peer = key.public().to_peer_id().to_string();
        let challenge = self
            .post(
                "/auth/challenge",
                None,
                &json!({"peer_id": peer}).to_string(),
            )
            .await;
        assert_eq!(challenge.status, 200, "{:?}", challenge.body);
        let relay: libp2p::PeerId = challenge.body["relay_peer_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let request =
            sign_token_request(key, &relay, challenge.body["challenge"].as_str().unwrap()).unwrap();
        let reply = self
            .post(
                "/auth/token",
                None,
                &serde_json::to_string(&request).unwrap(),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["token"].as_str().unwrap().to_owned()
    }
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Client {
    /// Connects offering a token the way browsers can: as a subprotocol
    /// beside `darkswap.v1`.
    pub(crate) async fn with_token(url: &str, key: Keypair, token: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("darkswap.v1, darkswap-token.{token}")
                .parse()
                .unwrap(),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "darkswap.v1",
            "the server selects darkswap.v1 and never echoes the token"
        );
        Client { ws, key }
    }

    /// Answers the challenge with this client's key; returns the reply.
    pub(crate) async fn register(&mut self) -> Value {
        let challenge = self.recv().await;
        let register = sign_registration(&self.key, challenge["nonce"].as_str().unwrap()).unwrap();
        self.send_text(&register.to_json()).await;
        self.recv().await
    }
}

pub(crate) fn closed_relay(tune: impl FnOnce(&mut RelayConfig)) -> impl FnOnce(&mut RelayConfig) {
    move |c: &mut RelayConfig| {
        c.tokens.anonymous_role = Role::Guest;
        tune(c);
    }
}

/// A TCP connection from `source` (another loopback address than the
/// flooder's 127.0.0.1, so per-address limits tell them apart).
pub(crate) async fn connect_from(
    source: &str,
    server: &Server,
    path: &str,
) -> Result<Client, String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let addr = server.server.as_ref().unwrap().local_addr();
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let stream = MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Client {
        ws,
        key: Keypair::generate_ed25519(),
    })
}

impl Server {
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    /// Waits (bounded by [`WAIT`]) until `sample` reads `value`.
    pub(crate) async fn wait_metric(&self, sample: &str, value: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.metric(sample);
            if now == value {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sample} is {now}, not {value}"
            );
            // Metrics have no change notification; poll them, bounded.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A raw TCP connection to `server` from `source` (a loopback address, so
/// per-address limits can tell clients apart).
pub(crate) async fn tcp_from(source: &str, server: &Server) -> tokio::net::TcpStream {
    tcp_attempt_from(source, server).await.unwrap()
}

/// [`tcp_from`] for a connection the server may reset as soon as it
/// accepts it (a refused one), before `connect` even returns.
pub(crate) async fn tcp_attempt_from(
    source: &str,
    server: &Server,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(server.addr()).await
}

/// Reads until the server closes the connection (end of stream or reset);
/// returns what it sent. Panics if that takes longer than `limit`.
pub(crate) async fn closed_within(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    limit: Duration,
    what: &str,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: still open after {limit:?}");
    got
}

/// Writes `bytes` one at a time, `every` apart, until done or the server
/// closes: a client that is slow on purpose.
pub(crate) fn trickle(
    mut writer: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
    bytes: Vec<u8>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    use tokio::io::AsyncWriteExt;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        for b in bytes {
            tick.tick().await;
            if writer.write_all(&[b]).await.is_err() {
                return;
            }
        }
    })
}

/// A WebSocket upgrade request for `path` with `extra` header lines, and
/// without the ones `extra` replaces (named before the colon).
pub(crate) fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut lines = vec![
        format!("GET {path} HTTP/1.1"),
        "Host: relay.test".to_owned(),
        "Upgrade: websocket".to_owned(),
        "Connection: Upgrade".to_owned(),
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
        "Sec-WebSocket-Version: 13".to_owned(),
    ];
    for e in extra {
        let name = e.split(':').next().unwrap().to_ascii_lowercase();
        lines.retain(|l| !l.to_ascii_lowercase().starts_with(&format!("{name}:")));
        if !e.ends_with(':') {
            lines.push((*e).to_owned());
        }
    }
    lines.join("\r\n") + "\r\n\r\n"
}
