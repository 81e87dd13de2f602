use super::*;
use axum::body::{Body, to_bytes};
use axum::http::Request;
use tower::ServiceExt;

fn state() -> Arc<AdminState> {
    let mut registry = Registry::default();
    let node_metrics = Arc::new(Libp2pNodeMetrics::register(&mut registry));
    node_metrics.set_limits(8, 4);
    Arc::new(AdminState {
        peer_id: PeerId::random(),
        started: Instant::now(),
        registry,
        node_metrics,
        swarm_alive: AtomicBool::new(true),
        status_limits: StatusLimits {
            signaling_peers_max: 10,
            ws_circuits_max: 3,
        },
    })
}

async fn get_path(state: Arc<AdminState>, path: &str) -> (StatusCode, header::HeaderMap, String) {
    let response = router(state)
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, 1 << 20).await.expect("body");
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[tokio::test]
async fn the_page_and_its_files_are_served_under_a_self_only_policy() {
    for (path, ty) in [
        ("/status", "text/html; charset=utf-8"),
        ("/status.js", "text/javascript; charset=utf-8"),
        ("/status.css", "text/css; charset=utf-8"),
    ] {
        let (code, headers, body) = get_path(state(), path).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], ty, "{path}");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'"
        );
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn status_json_carries_the_limits_and_health_is_unchanged() {
    let state = state();
    let (code, headers, body) = get_path(state.clone(), "/status.json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["peer_id"], state.peer_id.to_string());
    assert_eq!(json["reservations"]["max"], 8);
    assert_eq!(json["circuits"]["libp2p"]["max"], 4);
    assert_eq!(json["circuits"]["websocket"]["max"], 3);
    assert_eq!(json["peers"]["signaling"]["max"], 10);
    assert_eq!(json["status"], "ok");

    let (code, _, body) = get_path(state, "/health").await;
    assert_eq!(code, StatusCode::OK);
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut keys: Vec<_> = health
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "circuits",
            "connections",
            "peer_id",
            "reservations",
            "status",
            "uptime_seconds"
        ]
    );
}
