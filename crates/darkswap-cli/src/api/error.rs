//! [`ApiError`]: every refusal and failure as `{"error": {"code",
//! "message"}}` with its HTTP status, and how the node's and the state
//! owner's errors map onto them.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use darkswap_p2p::{
    CommandError, Error as NetError, OrderbookCommandError, OrderbookError, TradeCommandError,
    WebRtcCommandError, WebRtcError, darkswap_trade::negotiation::TradeError,
};

use crate::{state, v1};

/// An API error: `{"error": {"code", "message"}}` with an HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `500 internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// `400 invalid_request`; the message names the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `409 not_trading`: the daemon runs without `trading = true`.
    pub fn not_trading() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "not_trading",
            "this daemon does not trade: set trading = true and its services",
        )
    }

    /// `503 unavailable`: a service the daemon needs did not answer well.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// `404 not_banned`.
    pub fn not_banned(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_banned", message)
    }

    /// `413 body_too_large`.
    pub fn body_too_large(max: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body over {max} bytes"),
        )
    }

    /// How a refused update is answered: `404 not_found` for an order that
    /// is not an open own order (unknown, someone else's, expired), `409
    /// cancelled` for a cancelled one, `400 invalid_request` naming the
    /// field for terms the order cannot take; anything else as any other
    /// command's error.
    pub fn of_update(e: state::Error) -> Self {
        match e {
            state::Error::Orderbook(
                ref refused @ (OrderbookCommandError::NotOwnOrder(_)
                | OrderbookCommandError::Refused(OrderbookError::UnknownOrder(_))),
            ) => Self::not_found(refused.to_string()),
            state::Error::Orderbook(OrderbookCommandError::Refused(
                ref cancelled @ OrderbookError::Cancelled(_),
            )) => Self::new(
                StatusCode::CONFLICT,
                cancelled.reason(),
                cancelled.to_string(),
            ),
            state::Error::Orderbook(ref e @ OrderbookCommandError::ExpiryBeyondSigned { .. }) => {
                Self::bad_request(format!("expires_in_secs: {e}"))
            }
            e => e.into(),
        }
    }

    fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = v1::ErrorBody {
            error: v1::ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<NetError> for ApiError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::InvalidAddress { .. } | NetError::MissingPeerId(_) => {
                Self::bad_request(e.to_string())
            }
            NetError::Dial { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "dial_failed", e.to_string())
            }
            NetError::Command(e) => e.into(),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Timeout(_) => Self::timeout(e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<OrderbookCommandError> for ApiError {
    fn from(e: OrderbookCommandError) -> Self {
        match e {
            OrderbookCommandError::NotOwnOrder(_) => {
                Self::new(StatusCode::FORBIDDEN, "not_own_order", e.to_string())
            }
            // The limits are named, so a client can tell "this maker has
            // too many orders" from "the node's book is full" and from bad
            // terms.
            OrderbookCommandError::Refused(
                ref refused @ (OrderbookError::MakerLimit { .. } | OrderbookError::BookFull { .. }),
            ) => Self::new(StatusCode::CONFLICT, refused.reason(), e.to_string()),
            OrderbookCommandError::Refused(_)
            | OrderbookCommandError::ExpiryBeyondSigned { .. } => Self::bad_request(e.to_string()),
            OrderbookCommandError::Command(e) => e.into(),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<state::Error> for ApiError {
    fn from(e: state::Error) -> Self {
        match e {
            state::Error::Orderbook(e) => e.into(),
            state::Error::Network(e) => e.into(),
            state::Error::Timeout(_) => Self::timeout(e.to_string()),
            e => {
                tracing::error!(error = %e, "the state owner failed");
                Self::internal(e.to_string())
            }
        }
    }
}

impl From<TradeCommandError> for ApiError {
    fn from(e: TradeCommandError) -> Self {
        match e {
            TradeCommandError::NotTrading => Self::not_trading(),
            TradeCommandError::UnknownOrder(_) => Self::not_found(e.to_string()),
            TradeCommandError::OwnOrder(_) => {
                Self::new(StatusCode::CONFLICT, "own_order", e.to_string())
            }
            TradeCommandError::Trade(ref t) => match t {
                TradeError::WrongTrade => Self::not_found(e.to_string()),
                // Amounts the order cannot give, a wallet short of coins,
                // a trade already signed or ended: the request is fine,
                // the state says no.
                t => Self::new(StatusCode::CONFLICT, t.code(), e.to_string()),
            },
            TradeCommandError::Command(e) => e.into(),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<WebRtcCommandError> for ApiError {
    fn from(e: WebRtcCommandError) -> Self {
        let message = e.to_string();
        match e {
            WebRtcCommandError::Disabled => {
                Self::new(StatusCode::CONFLICT, "webrtc_disabled", message)
            }
            WebRtcCommandError::NotRegistered => Self::unavailable(message),
            WebRtcCommandError::UnknownPeer(_)
            | WebRtcCommandError::WebRtc(WebRtcError::UnknownPeer(_)) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_peer", message)
            }
            WebRtcCommandError::ChannelClosed(_) => {
                Self::new(StatusCode::NOT_FOUND, "channel_closed", message)
            }
            WebRtcCommandError::WebRtc(WebRtcError::TooLarge { .. }) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "message_too_large", message)
            }
            WebRtcCommandError::Command(e) => e.into(),
            // No path to the peer, a refused circuit, a handshake that
            // did not finish in time: the peer's side failed.
            WebRtcCommandError::WebRtc(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "webrtc_failed", message)
            }
            _ => Self::internal(message),
        }
    }
}
