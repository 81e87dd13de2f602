//! The token service: the token authority's HTTP endpoints
//! `/auth/challenge`, `/auth/token`, `/auth/refresh` and `/auth/revoke`
//! (`docs/security.md`), plain HTTP on the public port beside the WebSocket
//! endpoints. Requests are rate limited per IP
//! address and globally; over a limit the answer is 429 with `Retry-After`.
//! Errors are JSON: `{"error": {"code": "...", "message": "..."}}`.
//! Tokens are never logged.

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Extension, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use darkswap_proto::relay_auth::{
    ChallengeRequest, ChallengeResponse, RevokeRequest, Role, TokenRequest, TokenResponse,
};
use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, RateLimiter,
    clock::{Clock, DefaultClock},
};
use serde_json::json;

use crate::{
    clock::unix_now,
    config::LimitsConfig,
    defaults::queues,
    stun_turn::IceService,
    token::{Claims, TokenError},
    token_authority::{ChallengeError, Revocation, TokenAuthority},
    turn_credentials::IceServersResponse,
};

/// The client's address, set per connection.
#[derive(Debug, Clone, Copy)]
struct ClientIp(IpAddr);

/// The token service: what its HTTP handlers share.
#[derive(Debug)]
pub(crate) struct TokenService {
    authority: Arc<TokenAuthority>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    global: DefaultDirectRateLimiter,
    /// The STUN/TURN port's credentials, when it runs.
    ice: Option<Arc<IceService>>,
}

impl TokenService {
    pub(crate) fn new(
        authority: Arc<TokenAuthority>,
        limits: &LimitsConfig,
        ice: Option<Arc<IceService>>,
    ) -> Self {
        TokenService {
            authority,
            per_ip: RateLimiter::keyed(limits.http_rate_per_ip.quota()),
            global: RateLimiter::direct(limits.http_rate_global.quota()),
            ice,
        }
    }

    /// Forgets addresses whose bucket is full again, so the map stays small.
    pub(crate) fn forget_idle(&self) {
        self.per_ip.retain_recent();
    }

    fn admit(&self, ip: IpAddr) -> Result<(), ApiError> {
        let metrics = self.authority.metrics();
        let refused = match self.per_ip.check_key(&ip) {
            Err(not_until) => Some(("http_rate_per_ip", not_until)),
            Ok(()) => self.global.check().err().map(|n| ("http_rate_global", n)),
        };
        match refused {
            None => Ok(()),
            Some((limit, not_until)) => {
                metrics.limited("http", limit);
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(ApiError::too_many(wait))
            }
        }
    }
}

/// A JSON error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn too_many(wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            )
        }
    }

    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    fn bad_json(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "invalid_request", rejection.body_text())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::unauthorized(e.reason(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"darkswap-relay\""),
            );
        }
        response
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

fn token_response(token: String, claims: &Claims) -> TokenResponse {
    TokenResponse {
        token,
        role: claims.role,
        expires_at: claims.exp,
    }
}

/// The bearer token of `Authorization`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn require_bearer(http: &TokenService, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send the token as Authorization: Bearer")
    })?;
    Ok(http.authority.validate(token)?)
}

async fn challenge(
    State(http): State<Arc<TokenService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    body: Result<Json<ChallengeRequest>, JsonRejection>,
) -> Answer<ChallengeResponse> {
    http.admit(ip)?;
    let Json(request) = body.map_err(ApiError::bad_json)?;
    let challenge = http.authority.challenge(&request.peer_id).map_err(|e| {
        let status = match e {
            ChallengeError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.reason(), e.to_string())
    })?;
    Ok(Json(ChallengeResponse {
        challenge,
        relay_peer_id: http.authority.relay().to_string(),
        expires_in: http.authority.config().challenge_ttl.as_secs(),
    }))
}

async fn token(
    State(http): State<Arc<TokenService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Answer<TokenResponse> {
    http.admit(ip)?;
    let Json(request) = body.map_err(ApiError::bad_json)?;
    let (token, claims) = http
        .authority
        .exchange(&request)
        .map_err(|e| ApiError::unauthorized(e.reason(), e.to_string()))?;
    Ok(Json(token_response(token, &claims)))
}

async fn refresh(
    State(http): State<Arc<TokenService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
) -> Answer<TokenResponse> {
    http.admit(ip)?;
    let token = bearer(&headers).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send the token as Authorization: Bearer")
    })?;
    let (token, claims) = http.authority.refresh(token)?;
    Ok(Json(token_response(token, &claims)))
}

async fn revoke(
    State(http): State<Arc<TokenService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
    body: Result<Json<RevokeRequest>, JsonRejection>,
) -> Answer<serde_json::Value> {
    http.admit(ip)?;
    let caller = require_bearer(&http, &headers)?;
    if caller.role < Role::Admin {
        http.authority.metrics().denied("revoke");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "revoking needs the admin role",
        ));
    }
    let Json(request) = body.map_err(ApiError::bad_json)?;
    let config = http.authority.config();
    let (what, expires) = match (request.token_id, request.peer_id) {
        (Some(jti), None) if !jti.is_empty() && jti.len() <= 128 => (
            Revocation::Token(jti),
            unix_now() + (config.max_token_ttl + config.clock_skew).as_secs(),
        ),
        (None, Some(peer)) => match peer.parse() {
            Ok(peer) => (Revocation::Peer(peer), 0),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "peer_id is not a peer id",
                ));
            }
        },
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give exactly one of token_id (1..=128 chars) and peer_id",
            ));
        }
    };
    let kind = match &what {
        Revocation::Token(_) => "token",
        Revocation::Peer(_) => "peer",
    };
    http.authority.revoke(what, expires).map_err(|e| {
        tracing::error!(error = %e, "cannot persist a revocation");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the revocation could not be stored",
        )
    })?;
    tracing::info!(by = %caller.sub, kind, "revoked");
    Ok(Json(json!({ "revoked": kind })))
}

/// `POST /auth/ice-servers`: the relay's STUN server and its TURN server
/// with time-limited credentials for the token's peer.
async fn ice_servers(
    State(http): State<Arc<TokenService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
) -> Answer<IceServersResponse> {
    http.admit(ip)?;
    let ice = http.ice.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_enabled",
            "this relay serves no STUN/TURN ([turn] enabled = false)",
        )
    })?;
    let caller = require_bearer(&http, &headers)?;
    if caller.role < ice.role {
        http.authority.metrics().denied("turn");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("TURN credentials need the {} role", ice.role),
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_of)
        .unwrap_or("localhost");
    Ok(Json(ice.ice_servers(&caller.sub, host)))
}

/// The host part of a `Host` header (`[::1]:9001` → `[::1]`).
fn host_of(value: &str) -> &str {
    match value.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => value,
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn router(http: Arc<TokenService>) -> Router {
    // Browser pages of any origin may ask for tokens: a token is earned by
    // signing with the peer's key, no cookie or ambient credential is
    // involved, so there is nothing a foreign origin could ride on.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(3600));
    Router::new()
        .route("/auth/challenge", post(challenge))
        .route("/auth/token", post(token))
        .route("/auth/refresh", post(refresh))
        .route("/auth/revoke", post(revoke))
        .route("/auth/ice-servers", post(ice_servers))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(queues::HTTP_BODY))
        .layer(cors)
        .with_state(http)
}

/// Deadlines of one HTTP connection on the public port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// For each request head after the first (which the listener read).
    pub(crate) head: Duration,
    /// For each request's body and answer, once its head is in.
    pub(crate) body: Duration,
}

/// Serves HTTP/1.1 on one accepted connection until the client is done,
/// misses a deadline, or `cancel` fires.
pub(crate) async fn serve_connection<S>(
    stream: S,
    ip: IpAddr,
    http: Arc<TokenService>,
    deadlines: Deadlines,
    cancel: tokio_util::sync::CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let app = router(http);
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientIp(ip));
            let answer = app.clone().oneshot(request.map(axum::body::Body::new));
            // hyper bounds the head, not the body: a body trickled a byte
            // at a time would hold the connection for as long as it likes.
            // Answering before the body is in also ends the connection,
            // since hyper cannot reuse it with a body half read.
            async move {
                match tokio::time::timeout(deadlines.body, answer).await {
                    Ok(answer) => answer,
                    Err(_) => Ok(request_timeout()),
                }
            }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        // Also bounds the wait for the next request on a kept-alive
        // connection: hyper starts it when it begins reading a head.
        .header_read_timeout(deadlines.head)
        .max_buf_size(queues::REQUEST_HEAD)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%ip, error = %e, "http connection ended with an error");
            }
        }
        _ = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
        }
    }
}

/// 408 for a request whose body did not come in time; the connection closes.
fn request_timeout() -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request body did not arrive in time",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
