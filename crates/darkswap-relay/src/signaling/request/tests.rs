use super::*;

fn head(text: &str) -> RequestHead {
    let bytes = text.as_bytes();
    let end = head_end(bytes, 0).expect("a complete head");
    assert_eq!(end, bytes.len(), "the head is all of {text:?}");
    RequestHead::parse(bytes).unwrap()
}

const UPGRADE: &str = "GET /signaling?x=1 HTTP/1.1\r\nHost: relay\r\nUpgrade: WebSocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn without(name: &str) -> String {
    UPGRADE
        .split("\r\n")
        .filter(|l| {
            !l.to_ascii_lowercase()
                .starts_with(&name.to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn with(line: &str) -> String {
    UPGRADE.replacen("\r\n\r\n", &format!("\r\n{line}\r\n\r\n"), 1)
}

#[test]
fn the_end_of_a_head_is_found_in_what_arrives_a_byte_at_a_time() {
    let text = UPGRADE.as_bytes();
    let mut found = None;
    for n in 1..=text.len() {
        if let Some(end) = head_end(&text[..n], n - 1) {
            found = Some((n, end));
            break;
        }
    }
    assert_eq!(found, Some((text.len(), text.len())));
    // Bare LF line endings, and bytes after the head (a pipelined body).
    let lf = b"GET / HTTP/1.1\nHost: x\n\nBODY";
    assert_eq!(head_end(lf, 0), Some(lf.len() - 4));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
}

#[test]
fn the_path_picks_the_endpoint() {
    assert_eq!(head(UPGRADE).endpoint(), Endpoint::Signaling);
    let relay = head("GET /relay HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(relay.endpoint(), Endpoint::Relay);
    let auth = head("POST /auth/token HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(auth.endpoint(), Endpoint::Http);
    let nested = head("GET /signaling/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(nested.endpoint(), Endpoint::Http);
}

#[test]
fn heads_that_are_not_http_are_malformed_or_too_large() {
    assert!(matches!(
        RequestHead::parse(b"\x16\x03\x01 hello\r\n\r\n"),
        Err(HeadError::Malformed)
    ));
    let many = (0..=MAX_HEADERS)
        .map(|n| format!("x-{n}: y\r\n"))
        .collect::<String>();
    let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert!(matches!(
        RequestHead::parse(text.as_bytes()),
        Err(HeadError::TooLarge)
    ));
    assert_eq!(HeadError::TimedOut.answer().unwrap().status(), 408);
    assert_eq!(HeadError::TooLarge.answer().unwrap().status(), 431);
    assert!(HeadError::Closed.answer().is_none());
}

#[test]
fn a_valid_upgrade_gets_its_accept_key_and_the_protocol_it_offered() {
    let upgrade = check_upgrade(&head(UPGRADE)).unwrap();
    let answer = String::from_utf8(upgrade.switching_protocols()).unwrap();
    // RFC 6455 §1.3's example key and accept value.
    assert!(answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(answer.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(!answer.contains("sec-websocket-protocol"));
    assert!(answer.ends_with("\r\n\r\n"));
    assert_eq!(upgrade.token, None);

    let offered = with("Sec-WebSocket-Protocol: darkswap.v1, darkswap-token.abc.def.ghi");
    let upgrade = check_upgrade(&head(&offered)).unwrap();
    let answer = String::from_utf8(upgrade.switching_protocols()).unwrap();
    assert!(answer.contains("sec-websocket-protocol: darkswap.v1\r\n"));
    assert!(!answer.contains("abc"), "the token is never echoed");
    assert_eq!(upgrade.token.as_deref(), Some("abc.def.ghi"));

    let bearer = check_upgrade(&head(&with("Authorization: Bearer tok"))).unwrap();
    assert_eq!(bearer.token.as_deref(), Some("tok"));
}

#[test]
fn each_broken_upgrade_gets_its_answer() {
    let refused = |text: &str| check_upgrade(&head(text)).unwrap_err();
    let plain = "GET /signaling HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(refused(plain), UpgradeRefused::NotUpgrade);
    let version = UPGRADE.replace("Version: 13", "Version: 8");
    assert_eq!(refused(&version), UpgradeRefused::Version);
    assert_eq!(
        refused(&without("Sec-WebSocket-Version")),
        UpgradeRefused::Version
    );
    assert_eq!(refused(&without("Sec-WebSocket-Key")), UpgradeRefused::Key);
    let short_key = UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=");
    assert_eq!(refused(&short_key), UpgradeRefused::Key);
    let twice = with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(refused(&twice), UpgradeRefused::Key);
    assert_eq!(
        refused(&UPGRADE.replace("GET", "POST")),
        UpgradeRefused::Malformed
    );
    assert_eq!(
        refused(&UPGRADE.replace("HTTP/1.1", "HTTP/1.0")),
        UpgradeRefused::Malformed
    );
    assert_eq!(refused(&without("Host")), UpgradeRefused::Malformed);
    assert_eq!(refused(&without("Connection")), UpgradeRefused::Malformed);

    let text = |a: Answer| String::from_utf8(a.to_bytes()).unwrap();
    let version = text(UpgradeRefused::Version.answer());
    assert!(version.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(version.contains("sec-websocket-version: 13\r\n"));
    let plain = text(UpgradeRefused::NotUpgrade.answer());
    assert!(plain.contains("upgrade: websocket\r\n"));
    assert!(text(UpgradeRefused::Key.answer()).starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn answers_are_complete_http_responses_that_close() {
    let bytes = Answer::too_many(0).to_bytes();
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = response.parse(&bytes).unwrap() else {
        panic!("a complete head");
    };
    assert_eq!(response.code, Some(429));
    let header = |name: &str| {
        let h = response.headers.iter().find(|h| h.name == name).unwrap();
        std::str::from_utf8(h.value).unwrap().to_owned()
    };
    assert_eq!(header("retry-after"), "1", "at least a second");
    assert_eq!(header("connection"), "close");
    let body: serde_json::Value = serde_json::from_slice(&bytes[len..]).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(header("content-length"), (bytes.len() - len).to_string());
}
