//! `/v1/trades`, `/v1/trades/{id}`, `/v1/wallet` and `/v1/wallet/sync`.
//! Trades run in the node: a take or a cancel is a command to it, and each
//! step is a `trade_updated` event on `/v1/events`.

use axum::extract::{Path, State};
use darkswap_p2p::{TradeInfo, core::trade::TradeId};
use darkswap_proto::OrderId;

use super::{
    ApiError, ApiState,
    json::{Answer, ApiJson},
};
use crate::v1::{CancelTrade, GetTrade, GetWallet, ListTrades, SyncWallet, TakeOrder, Trade};

fn parse_trade_id(id: &str) -> Result<TradeId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request("id: expected 64 hex characters"))
}

async fn find(s: &ApiState, id: TradeId) -> Result<TradeInfo, ApiError> {
    s.network
        .trades()
        .list()
        .await?
        .into_iter()
        .find(|t| t.trade_id == id)
        .ok_or_else(|| ApiError::not_found(format!("no trade {id}")))
}

pub(super) async fn take(
    State(s): State<ApiState>,
    ApiJson(t): ApiJson<TakeOrder>,
) -> Result<Answer<TakeOrder>, ApiError> {
    let order: OrderId = t
        .order_id
        .parse()
        .map_err(|_| ApiError::bad_request("order_id: expected 64 hex characters"))?;
    if t.amount == 0 {
        return Err(ApiError::bad_request("amount: must be greater than zero"));
    }
    let id = s.network.trades().take(order, t.amount).await?;
    Ok(Answer::new(Trade::from(&find(&s, id).await?)))
}

pub(super) async fn list(State(s): State<ApiState>) -> Result<Answer<ListTrades>, ApiError> {
    let trades = s.network.trades().list().await?;
    Ok(Answer::new(trades.iter().map(Trade::from).collect()))
}

pub(super) async fn get(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Answer<GetTrade>, ApiError> {
    let id = parse_trade_id(&id)?;
    Ok(Answer::new(Trade::from(&find(&s, id).await?)))
}

pub(super) async fn cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Answer<CancelTrade>, ApiError> {
    let id = parse_trade_id(&id)?;
    // An unknown id is a 404 rather than the node's "another trade".
    find(&s, id).await?;
    s.network.trades().cancel(id).await?;
    Ok(Answer::new(()))
}

pub(super) async fn wallet(State(s): State<ApiState>) -> Result<Answer<GetWallet>, ApiError> {
    let wallet = s.wallet.as_ref().ok_or_else(ApiError::not_trading)?;
    Ok(Answer::new(wallet.view()))
}

pub(super) async fn sync_wallet(
    State(s): State<ApiState>,
    ApiJson(_): ApiJson<SyncWallet>,
) -> Result<Answer<SyncWallet>, ApiError> {
    let wallet = s.wallet.as_ref().ok_or_else(ApiError::not_trading)?;
    let view = wallet
        .sync()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Answer::new(view))
}
