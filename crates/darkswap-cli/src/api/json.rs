//! JSON at the edge: [`ApiJson`] reads a request body, [`Answer`] writes an
//! endpoint's success with the status its [`Endpoint`] names.

use std::marker::PhantomData;

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::ApiError;
use crate::v1::Endpoint;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// `Json<T>` whose rejections are our 400s (413 for an oversized body),
/// with serde's message, which names the offending field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::body_too_large(MAX_BODY))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The success of endpoint `E`: its status, and its JSON unless the status
/// is `204 No Content`. Objects are written with their keys sorted (through
/// [`serde_json::Value`]), as the API has written most of them from the
/// start and the CLI prints them.
#[derive(Debug)]
pub struct Answer<E: Endpoint>(E::Response, PhantomData<fn() -> E>);

impl<E: Endpoint> Answer<E> {
    /// `E`'s answer.
    pub fn new(response: E::Response) -> Self {
        Answer(response, PhantomData)
    }
}

impl<E: Endpoint> IntoResponse for Answer<E> {
    fn into_response(self) -> Response {
        if E::SUCCESS == StatusCode::NO_CONTENT {
            return E::SUCCESS.into_response();
        }
        match serde_json::to_value(&self.0) {
            Ok(body) => (E::SUCCESS, Json(body)).into_response(),
            Err(e) => ApiError::internal(e.to_string()).into_response(),
        }
    }
}
