//! `/v1/orders`, `/v1/orders/{id}` and `/v1/orderbook`. Creates, updates
//! and cancels go to the state owner, which answers once they are stored.

use std::time::Duration;

use axum::extract::{Path, Query, State, rejection::QueryRejection};
use darkswap_proto::{Asset, OrderId, Side};

use super::{
    ApiError, ApiState,
    json::{Answer, ApiJson},
};
use crate::{
    state::{OrderTerms, UpdateTerms},
    v1::{self, CancelOrder, CreateOrder, GetOrderbook, ListOwnOrders, Order, UpdateOrder},
};

fn parse_asset(field: &str, value: &str) -> Result<Asset, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// The terms of a create, or the 400 naming the field that is wrong.
fn terms(c: &CreateOrder) -> Result<OrderTerms, ApiError> {
    let side: Side = c
        .side
        .parse()
        .map_err(|_| ApiError::bad_request("side: expected \"buy\" or \"sell\""))?;
    if c.expires_in == 0 {
        return Err(ApiError::bad_request(
            "expires_in: must be greater than zero",
        ));
    }
    Ok(OrderTerms {
        side,
        base: parse_asset("base", &c.base)?,
        quote: parse_asset("quote", &c.quote)?,
        amount: c.amount,
        price: c.price,
        lifetime: Duration::from_secs(c.expires_in),
    })
}

pub(super) async fn create(
    State(s): State<ApiState>,
    ApiJson(c): ApiJson<CreateOrder>,
) -> Result<Answer<CreateOrder>, ApiError> {
    let order = s.state.create_order(terms(&c)?).await?;
    Ok(Answer::new(Order::from(&order)))
}

fn parse_id(id: &str) -> Result<OrderId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request("id: expected 64 hex characters"))
}

/// The changes of an update, or the 400 naming the field that is wrong.
/// What only the order can tell (an expiry past its signed one) is the
/// node's to refuse.
fn update_terms(u: &UpdateOrder) -> Result<UpdateTerms, ApiError> {
    if u.amount.is_none() && u.price.is_none() && u.expires_in_secs.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give amount, price and/or expires_in_secs",
        ));
    }
    for (field, value) in [
        ("amount", u.amount),
        ("price", u.price),
        ("expires_in_secs", u.expires_in_secs),
    ] {
        if value == Some(0) {
            return Err(ApiError::bad_request(format!(
                "{field}: must be greater than zero"
            )));
        }
    }
    Ok(UpdateTerms {
        amount: u.amount,
        price: u.price,
        lifetime: u.expires_in_secs.map(Duration::from_secs),
    })
}

pub(super) async fn update(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    ApiJson(u): ApiJson<UpdateOrder>,
) -> Result<Answer<UpdateOrder>, ApiError> {
    let id = parse_id(&id)?;
    let order = s
        .state
        .update_order(id, update_terms(&u)?)
        .await
        .map_err(ApiError::of_update)?;
    Ok(Answer::new(Order::from(&order)))
}

pub(super) async fn cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Answer<CancelOrder>, ApiError> {
    s.state.cancel_order(parse_id(&id)?).await?;
    Ok(Answer::new(()))
}

pub(super) async fn list_own(State(s): State<ApiState>) -> Result<Answer<ListOwnOrders>, ApiError> {
    let mut orders: Vec<Order> = s
        .network
        .orderbook()
        .own_orders()
        .await?
        .iter()
        .map(|(o, _)| o.into())
        .collect();
    orders.sort_by_key(|o| o.created_at);
    Ok(Answer::new(orders))
}

pub(super) async fn book(
    State(s): State<ApiState>,
    query: Result<Query<GetOrderbook>, QueryRejection>,
) -> Result<Answer<GetOrderbook>, ApiError> {
    let Query(pair) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let book = s
        .network
        .orderbook()
        .book(
            parse_asset("base", &pair.base)?,
            parse_asset("quote", &pair.quote)?,
        )
        .await?;
    let side = |orders: &[darkswap_proto::Order]| orders.iter().map(Order::from).collect();
    Ok(Answer::new(v1::Orderbook {
        bids: side(&book.bids),
        asks: side(&book.asks),
        base: pair.base,
        quote: pair.quote,
    }))
}
