//! The first request on a public-port connection, sans IO: where its head
//! ends, which endpoint it asks for, whether it is a valid WebSocket
//! upgrade (RFC 6455 §4.2.1) and which answer it gets if not, and the bytes
//! of the short answers the port writes itself (101, 4xx). The IO around it
//! is `upgrade.rs`.

use base64::Engine as _;
use darkswap_proto::relay_auth::{WS_PROTOCOL, token_from_ws_protocols};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Headers a request head may have; more is 431.
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Signaling,
    Relay,
    /// Anything else is plain HTTP (`/auth/*`, or a 404).
    Http,
}

/// A request head, parsed and owned.
#[derive(Debug)]
pub(super) struct RequestHead {
    method: String,
    /// The target without its query.
    path: String,
    /// The minor version of HTTP/1.x.
    version: u8,
    /// Names in lower case, in the order sent.
    headers: Vec<(String, Vec<u8>)>,
}

/// Why a request head was not read.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeadError {
    /// The head was not complete by the deadline.
    #[error("no complete request head in time")]
    TimedOut,
    /// The head grew past [`queues::REQUEST_HEAD`](crate::defaults::queues::REQUEST_HEAD)
    /// or [`MAX_HEADERS`].
    #[error("request head too large")]
    TooLarge,
    /// Not an HTTP/1.x request head.
    #[error("malformed request head")]
    Malformed,
    /// The client closed before the head was complete.
    #[error("closed before the request head was complete")]
    Closed,
    /// Reading failed.
    #[error("reading the request head: {0}")]
    Io(#[from] std::io::Error),
}

impl HeadError {
    /// The answer the client gets, if it gets one.
    pub(super) fn answer(&self) -> Option<Answer> {
        match self {
            HeadError::TimedOut => Some(Answer::new(408, "Request Timeout", "request timeout")),
            HeadError::TooLarge => Some(Answer::new(
                431,
                "Request Header Fields Too Large",
                "request head too large",
            )),
            HeadError::Malformed => Some(Answer::new(400, "Bad Request", "malformed request")),
            HeadError::Closed | HeadError::Io(_) => None,
        }
    }
}

/// Where the head in `buf` ends (the index after its blank line), looking
/// only at what arrived from `from` on and the three bytes before it: a
/// head trickled byte by byte is scanned once, not once per byte.
pub(super) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let window = &buf[start..];
    // A bare LF ends lines too (httparse accepts it, as HTTP/1.1 allows).
    window.iter().enumerate().find_map(|(i, b)| {
        if *b != b'\n' {
            return None;
        }
        let before = &window[..i];
        let blank = before.ends_with(b"\n") || before.ends_with(b"\n\r");
        blank.then_some(start + i + 1)
    })
}

impl RequestHead {
    /// Parses a complete head (up to and including its blank line).
    pub(super) fn parse(head: &[u8]) -> Result<Self, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) | Err(_) => return Err(HeadError::Malformed),
        }
        let (Some(method), Some(target), Some(version)) =
            (request.method, request.path, request.version)
        else {
            return Err(HeadError::Malformed);
        };
        Ok(RequestHead {
            method: method.to_owned(),
            path: target.split('?').next().unwrap_or_default().to_owned(),
            version,
            headers: request
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect(),
        })
    }

    /// The endpoint the request is for.
    pub(super) fn endpoint(&self) -> Endpoint {
        match self.path.as_str() {
            "/signaling" => Endpoint::Signaling,
            "/relay" => Endpoint::Relay,
            _ => Endpoint::Http,
        }
    }

    /// Every value of header `name` (lower case) that is text.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether header `name` lists `token` (comma separated, any case).
    fn lists(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Why a request to `/signaling` or `/relay` is no WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum UpgradeRefused {
    /// No `Upgrade: websocket`: a plain HTTP request to a WebSocket endpoint.
    #[error("this endpoint speaks WebSocket only")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13.
    #[error("Sec-WebSocket-Version must be 13")]
    Version,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes in base64.
    #[error("Sec-WebSocket-Key is missing or malformed")]
    Key,
    /// Not GET, not HTTP/1.1, or no `Host` or `Connection: Upgrade`.
    #[error("a WebSocket upgrade is a GET over HTTP/1.1 with Host and Connection: Upgrade")]
    Malformed,
}

impl UpgradeRefused {
    /// 426 (with the protocol or version this server speaks) where the
    /// client could succeed by upgrading, 400 otherwise (RFC 6455 §4.2.2).
    pub(super) fn answer(self) -> Answer {
        let message = self.to_string();
        match self {
            UpgradeRefused::NotUpgrade => Answer::new(426, "Upgrade Required", message)
                .with("upgrade", "websocket")
                .with("sec-websocket-version", "13"),
            UpgradeRefused::Version => {
                Answer::new(426, "Upgrade Required", message).with("sec-websocket-version", "13")
            }
            UpgradeRefused::Key | UpgradeRefused::Malformed => {
                Answer::new(400, "Bad Request", message)
            }
        }
    }
}

/// A valid WebSocket upgrade request.
#[derive(Debug)]
pub(super) struct Upgrade {
    /// `Sec-WebSocket-Accept` of the answer.
    accept: String,
    /// `darkswap.v1` if the client offered it.
    protocol: Option<&'static str>,
    /// The token the client showed, as a `darkswap-token.<jwt>` subprotocol
    /// or as `Authorization: Bearer`.
    pub(super) token: Option<String>,
}

/// Checks a request to a WebSocket endpoint. A client that offers
/// subprotocols gets `darkswap.v1` selected; the token it may offer beside
/// it is taken, never echoed.
pub(super) fn check_upgrade(head: &RequestHead) -> Result<Upgrade, UpgradeRefused> {
    if !head.lists("upgrade", "websocket") {
        return Err(UpgradeRefused::NotUpgrade);
    }
    if head
        .values("sec-websocket-version")
        .map(str::trim)
        .ne(["13"])
    {
        return Err(UpgradeRefused::Version);
    }
    let mut keys = head.values("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.trim(),
        _ => return Err(UpgradeRefused::Key),
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !matches!(decoded, Ok(bytes) if bytes.len() == 16) {
        return Err(UpgradeRefused::Key);
    }
    let host = head.values("host").next().is_some();
    if head.method != "GET" || head.version < 1 || !host || !head.lists("connection", "upgrade") {
        return Err(UpgradeRefused::Malformed);
    }
    let offered = head
        .values("sec-websocket-protocol")
        .collect::<Vec<_>>()
        .join(",");
    let protocol = offered
        .split(',')
        .any(|p| p.trim() == WS_PROTOCOL)
        .then_some(WS_PROTOCOL);
    let token = token_from_ws_protocols(&offered)
        .map(str::to_owned)
        .or_else(|| {
            let value = head.values("authorization").next()?;
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    Ok(Upgrade {
        accept: derive_accept_key(key.as_bytes()),
        protocol,
        token,
    })
}

impl Upgrade {
    /// The 101 answer that completes the handshake.
    pub(super) fn switching_protocols(&self) -> Vec<u8> {
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {}\r\n",
            self.accept
        );
        if let Some(protocol) = self.protocol {
            answer.push_str(&format!("sec-websocket-protocol: {protocol}\r\n"));
        }
        answer.push_str("\r\n");
        answer.into_bytes()
    }
}

/// A short answer the port writes itself, then closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    /// The token service's error shape: `{"error":{"code","message"}}`.
    code: &'static str,
    message: String,
}

impl Answer {
    fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        let code = match status {
            408 => "request_timeout",
            429 => "rate_limited",
            _ => "invalid_request",
        };
        Answer {
            status,
            reason,
            headers: Vec::new(),
            code,
            message: message.into(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 for plain HTTP on the port when it speaks TLS (nginx's 497).
    pub(super) fn tls_required() -> Self {
        Answer::new(
            400,
            "Bad Request",
            "this port speaks TLS: use https:// or wss://",
        )
    }

    /// 429 for a connection refused by a limit; retry after `secs` (at
    /// least 1).
    pub(super) fn too_many(secs: u64) -> Self {
        Answer::new(
            429,
            "Too Many Requests",
            "too many connections; retry later",
        )
        .with("retry-after", secs.max(1).to_string())
    }

    #[cfg(test)]
    pub(super) fn status(&self) -> u16 {
        self.status
    }

    /// The answer on the wire, closing the connection.
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let body =
            serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string();
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests;
