//! Who may use the signaling server and how much: tokens from the token
//! service, roles, per-address and global connection limits, the HTTP
//! request rate and the global message and bandwidth ceilings, on 127.0.0.1
//! port 0 with real WebSocket and HTTP clients, an honest client beside
//! every refused one.
#![cfg(feature = "server")]

use std::{sync::Arc, time::Duration};

use darkswap_proto::{
    relay_auth::{Role, sign_token_request},
    signaling::close_code,
};
use darkswap_relay::{
    config::RateLimit, metrics::SecurityMetrics, token_authority::TokenAuthority,
};
use libp2p::identity::Keypair;
use serde_json::json;

use support::{Client, Server, closed_relay, connect_from, send_a_mebibyte, still_routing};

#[path = "support/signaling.rs"]
mod support;

#[tokio::test]
async fn on_a_closed_relay_only_a_token_holder_registers_and_only_as_itself() {
    let server = Server::start_with(closed_relay(|_| {})).await;
    let url = server.url("/signaling");

    // No token: refused at registration with 4004.
    let mut anonymous = Client::connect(&url).await;
    let reply = anonymous.register().await;
    assert_eq!(
        (&reply["type"], &reply["code"]),
        (&json!("error"), &json!("unauthorized"))
    );
    assert_eq!(anonymous.closed().await.0, close_code::UNAUTHORIZED);

    // A token from /auth/token opens it.
    let key = Keypair::generate_ed25519();
    let token = server.token_for(&key).await;
    let mut honest = Client::with_token(&url, key.clone(), &token).await;
    assert_eq!(honest.register().await["type"], "registered");

    // The same token with another key: refused, the honest one unaffected.
    let mut thief = Client::with_token(&url, Keypair::generate_ed25519(), &token).await;
    let reply = thief.register().await;
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("another peer"),
        "{reply}"
    );
    assert_eq!(thief.closed().await.0, close_code::UNAUTHORIZED);

    // Bad tokens are refused at once, each naming why.
    let other_relay = TokenAuthority::new(
        &Keypair::generate_ed25519(),
        Default::default(),
        None,
        Arc::new(SecurityMetrics::default()),
    )
    .unwrap();
    let peer = Keypair::generate_ed25519();
    let (foreign, _) = other_relay
        .issue(
            &peer.public().to_peer_id(),
            Role::Admin,
            Duration::from_secs(60),
        )
        .unwrap();
    for (bad, why) in [("not-a-jwt", "malformed"), (foreign.as_str(), "signature")] {
        let mut c = Client::with_token(&url, peer.clone(), bad).await;
        let reply = c.expect_error("unauthorized").await;
        assert!(
            reply["message"].as_str().unwrap().contains(why),
            "{why}: {reply}"
        );
        assert_eq!(
            c.closed().await,
            (close_code::UNAUTHORIZED, "invalid token".to_owned())
        );
    }
    // Authorization: Bearer works for native clients too.
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let key = Keypair::generate_ed25519();
        let token = server.token_for(&key).await;
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut native = Client { ws, key };
        assert_eq!(native.register().await["type"], "registered");
    }
    let mut second = Client::with_token(&url, peer.clone(), &server.token_for(&peer).await).await;
    assert_eq!(second.register().await["type"], "registered");
    still_routing(&mut honest, &mut second).await;
    assert!(server.metric("darkswap_relay_auth_rejected_total{reason=\"malformed\"}") >= 1.0);
    assert!(server.metric("darkswap_relay_auth_rejected_total{reason=\"bad_signature\"}") >= 1.0);
    assert_eq!(
        server.metric("darkswap_relay_access_denied_total{action=\"signaling\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn the_token_service_refuses_bad_requests_refreshes_and_revokes() {
    let admin = Keypair::generate_ed25519();
    let admin_id = admin.public().to_peer_id();
    let server = Server::start_with(|c| c.tokens.admins = vec![admin_id]).await;
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id().to_string();

    // Malformed bodies and ids.
    for (body, status) in [
        ("{", 400),
        (r#"{"peer_id": 5}"#, 400),
        (r#"{"peer_id": "x", "extra": 1}"#, 400),
        (r#"{"peer_id": "not-a-peer"}"#, 400),
    ] {
        let reply = server.post("/auth/challenge", None, body).await;
        assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
        assert!(
            !reply.code().is_empty(),
            "{body}: a JSON error {:?}",
            reply.body
        );
    }
    assert_eq!(server.post("/auth/nothing", None, "{}").await.status, 404);
    // Pages of other origins may call it (CORS preflight answered).
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.http_url("/auth/challenge"))
        .header("origin", "http://page.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    // A proof for another relay, and a replayed challenge.
    let challenge = server
        .post(
            "/auth/challenge",
            None,
            &json!({"peer_id": peer}).to_string(),
        )
        .await;
    let c = challenge.body["challenge"].as_str().unwrap();
    let wrong = sign_token_request(&key, &libp2p::PeerId::random(), c).unwrap();
    let wrong = serde_json::to_string(&wrong).unwrap();
    let reply = server.post("/auth/token", None, &wrong).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "bad_proof"),
        "{:?}",
        reply.body
    );
    // The challenge was used up by that attempt.
    let right = sign_token_request(&key, &server.authority.relay(), c).unwrap();
    let reply = server
        .post("/auth/token", None, &serde_json::to_string(&right).unwrap())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "unknown_challenge"),
        "{:?}",
        reply.body
    );
    let token = server.token_for(&key).await;

    // Refresh: needs a bearer token; gives a new one and retires the old.
    let reply = server.post("/auth/refresh", None, "").await;
    assert_eq!((reply.status, reply.code()), (401, "missing_token"));
    assert!(reply.www_authenticate.unwrap().starts_with("Bearer"));
    let reply = server.post("/auth/refresh", Some(&token), "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let fresh = reply.body["token"].as_str().unwrap().to_owned();
    let reply = server.post("/auth/refresh", Some(&token), "").await;
    assert_eq!((reply.status, reply.code()), (401, "revoked"));

    // Revoke: admins only.
    let body = json!({"peer_id": peer}).to_string();
    let reply = server.post("/auth/revoke", Some(&fresh), &body).await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    let admin_token = server.token_for(&admin).await;
    let reply = server
        .post("/auth/revoke", Some(&admin_token), r#"{}"#)
        .await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_request"));

    // A socket holding the token is closed when it is revoked.
    let mut holder = Client::with_token(&server.url("/signaling"), key.clone(), &fresh).await;
    assert_eq!(holder.register().await["type"], "registered");
    let reply = server.post("/auth/revoke", Some(&admin_token), &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        holder.closed().await,
        (close_code::UNAUTHORIZED, "token revoked".to_owned())
    );
    let reply = server.post("/auth/refresh", Some(&fresh), "").await;
    assert_eq!((reply.status, reply.code()), (401, "revoked"));

    // The admin's own token still works.
    let reply = server.post("/auth/refresh", Some(&admin_token), "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["role"], "admin");
    assert_eq!(
        server.metric("darkswap_relay_auth_revocations_total{action=\"peer\"}"),
        1.0
    );
    assert_eq!(
        server.metric("darkswap_relay_access_denied_total{action=\"revoke\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_keeps_the_open_socket_and_retires_the_old_token() {
    let server = Server::start_with(closed_relay(|_| {})).await;
    let url = server.url("/signaling");
    let key = Keypair::generate_ed25519();
    let old = server.token_for(&key).await;
    let mut c = Client::with_token(&url, key.clone(), &old).await;
    assert_eq!(c.register().await["type"], "registered");
    let reply = server.post("/auth/refresh", Some(&old), "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let new = reply.body["token"].as_str().unwrap().to_owned();

    // The socket opened with the old token is still served...
    let mut other = Client::with_token(
        &url,
        Keypair::generate_ed25519(),
        &server.token_for(&Keypair::generate_ed25519()).await,
    )
    .await;
    let reply = other.register().await;
    assert_eq!(
        reply["code"], "unauthorized",
        "a token of another peer: {reply}"
    );
    let peer = Keypair::generate_ed25519();
    let mut peer_socket =
        Client::with_token(&url, peer.clone(), &server.token_for(&peer).await).await;
    assert_eq!(peer_socket.register().await["type"], "registered");
    still_routing(&mut c, &mut peer_socket).await;

    // ...but the old token opens nothing new; the new one does.
    let mut again = Client::with_token(&url, key.clone(), &old).await;
    let reply = again.expect_error("unauthorized").await;
    assert!(
        reply["message"].as_str().unwrap().contains("revoked"),
        "{reply}"
    );
    drop(c);
    let mut renewed = Client::with_token(&url, key, &new).await;
    assert_eq!(renewed.register().await["type"], "registered");
    server.stop().await;
}

#[tokio::test]
async fn circuits_need_the_circuit_role() {
    let server = Server::start_with(|c| c.tokens.circuit_role = Role::Admin).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    a.send(json!({"type":"circuit_request","to":b.id()})).await;
    let reply = a.expect_error("forbidden").await;
    assert!(
        reply["message"].as_str().unwrap().contains("admin"),
        "{reply}"
    );
    still_routing(&mut a, &mut b).await;
    assert_eq!(
        server.metric("darkswap_relay_access_denied_total{action=\"circuit\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_flood_from_one_address_is_refused_and_others_are_served() {
    let server = Server::start_with(|c| {
        c.limits.max_connections_per_ip = 4;
    })
    .await;
    let url = server.url("/signaling");
    // Four sockets fill 127.0.0.1's allowance...
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(&url).await;
        assert_eq!(c.register().await["type"], "registered");
        held.push(c);
    }
    // ...so a burst of 40 more is refused with 1013, each, within bounds.
    let flood = tokio::time::timeout(Duration::from_secs(30), async {
        let mut refused = 0;
        for _ in 0..40 {
            let mut c = Client::connect(&url).await;
            if c.closed().await.0 == close_code::TRY_AGAIN_LATER {
                refused += 1;
            }
        }
        refused
    })
    .await
    .expect("the flood is answered in time");
    assert_eq!(flood, 40);
    // HTTP from the same address: 429 with Retry-After.
    let reply = server.post("/auth/challenge", None, "{}").await;
    assert_eq!((reply.status, reply.code()), (429, "rate_limited"));
    assert!(reply.retry_after.unwrap().parse::<u64>().unwrap() >= 1);

    // Another address is served, and the held sockets still route.
    let mut other = connect_from("127.0.0.2", &server, "/signaling")
        .await
        .unwrap();
    assert_eq!(other.register().await["type"], "registered");
    let (first, rest) = held.split_at_mut(1);
    still_routing(&mut first[0], &mut rest[0]).await;
    still_routing(&mut other, &mut first[0]).await;
    assert_eq!(
        server.metric(
            "darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"max_connections_per_ip\"}"
        ),
        40.0
    );
    assert_eq!(
        server.metric(
            "darkswap_relay_rate_limited_total{plane=\"http\",limit=\"max_connections_per_ip\"}"
        ),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn the_http_request_rate_per_address_answers_429_with_retry_after() {
    let server = Server::start_with(|c| {
        c.limits.http_rate_per_ip = RateLimit {
            limit: 3.try_into().unwrap(),
            interval: Duration::from_secs(60),
        };
    })
    .await;
    let peer = libp2p::PeerId::random().to_string();
    let body = json!({"peer_id": peer}).to_string();
    for _ in 0..3 {
        assert_eq!(
            server.post("/auth/challenge", None, &body).await.status,
            200
        );
    }
    let reply = server.post("/auth/challenge", None, &body).await;
    assert_eq!((reply.status, reply.code()), (429, "rate_limited"));
    let retry: u64 = reply.retry_after.unwrap().parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "about one refill interval (20 s): {retry}"
    );
    assert_eq!(
        server
            .metric("darkswap_relay_rate_limited_total{plane=\"http\",limit=\"http_rate_per_ip\"}"),
        1.0
    );
    // WebSocket clients from the same address are not affected by the HTTP limit.
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    still_routing(&mut a, &mut b).await;
    server.stop().await;
}

#[tokio::test]
async fn the_global_bandwidth_ceiling_slows_circuits_down_without_losing_frames() {
    let server = Server::start_with(|c| {
        // Per circuit and per peer far above it: only the global ceiling bites.
        c.limits.bandwidth_global = 256 * 1024;
        c.ws_circuit.max_frame_size = 64 * 1024;
    })
    .await;
    // 1 MiB at 256 KiB/s with a 256 KiB burst cannot take less than ~3 s.
    let elapsed = send_a_mebibyte(&server).await;
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    server.stop().await;
}

#[tokio::test]
async fn over_the_global_message_ceiling_messages_are_dropped_and_nobody_is_cut_off() {
    let server = Server::start_with(|c| {
        c.limits.messages_per_second_global = 10.try_into().unwrap();
        // The per-socket limit stays out of the way.
        c.signaling.messages_per_second = 1_000_000.try_into().unwrap();
        c.signaling.message_burst = 1_000_000.try_into().unwrap();
        c.signaling.max_rate_violations = 1;
    })
    .await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    // A burst far over the server-wide ceiling from one client...
    for n in 0..50 {
        a.send(json!({"type":"ping","id":n})).await;
    }
    let mut pongs = 0;
    let mut dropped = 0;
    while pongs + dropped < 50 {
        let v = a.recv().await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                dropped += 1;
            }
            _ => {}
        }
    }
    assert!(dropped > 0 && pongs > 0, "pongs {pongs}, dropped {dropped}");
    // ...is answered message by message, and nobody is cut off for it
    // (max_rate_violations = 1 would have closed a): once the server-wide
    // bucket refills, both are served again. Every ping gets an answer, so
    // this loop waits on replies, not on time.
    for c in [&mut a, &mut b] {
        let mut served = false;
        for n in 0..1_000_000 {
            c.send(json!({"type":"ping","id":n})).await;
            if c.recv().await["type"] == "pong" {
                served = true;
                break;
            }
        }
        assert!(served, "served again once the bucket refilled");
    }
    assert!(
        server.metric("darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"messages_global\"}")
            >= dropped as f64
    );
    server.stop().await;
}
