//! The typed client of a running daemon's API: it sends [`crate::v1`]
//! requests and reads their answers as the same types the server wrote.

use futures::StreamExt;
use reqwest::StatusCode;

use crate::v1::{self, Endpoint, Verb};

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the API address.
    #[error("no darkswap daemon is running at {0} (start one with `darkswap daemon`)")]
    NoDaemon(String),
    /// The request could not be sent or answered.
    #[error("request to the daemon failed: {0}")]
    Request(reqwest::Error),
    /// The answer could not be read.
    #[error("reading the daemon's answer: {0}")]
    Read(reqwest::Error),
    /// The daemon refused: its error message and the HTTP status.
    #[error("{message} ({status})")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The stable error code, e.g. `not_own_order` (empty if the answer
        /// was not an API error body).
        code: String,
        /// The daemon's message.
        message: String,
    },
    /// A success whose body is not what the endpoint answers.
    #[error("the daemon's answer does not parse: {0}")]
    Decode(serde_json::Error),
}

/// Talks to the daemon at `base` (e.g. `http://127.0.0.1:7070`).
#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the API at `addr`.
    pub fn new(addr: &str) -> Self {
        let base = if addr.starts_with("http") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        Client {
            base,
            http: reqwest::Client::new(),
        }
    }

    fn send_error(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() {
            ClientError::NoDaemon(self.base.clone())
        } else {
            ClientError::Request(e)
        }
    }

    /// Sends `request` and reads its answer.
    pub async fn call<E: Endpoint>(&self, request: &E) -> Result<E::Response, ClientError> {
        let url = format!("{}{}", self.base, request.path());
        let mut builder = self.http.request(E::VERB.method(), url);
        if matches!(E::VERB, Verb::Post | Verb::Patch) {
            builder = builder.json(request);
        }
        let resp = builder.send().await.map_err(|e| self.send_error(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(ClientError::Read)?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<v1::ErrorBody>(&text) {
                Ok(body) => ClientError::Refused {
                    status,
                    code: body.error.code,
                    message: body.error.message,
                },
                Err(_) => ClientError::Refused {
                    status,
                    code: String::new(),
                    message: text,
                },
            });
        }
        // A `204 No Content` carries nothing: the `()` its endpoint answers.
        let body = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(body).map_err(ClientError::Decode)
    }

    /// Hands each server-sent event's data (one JSON object) to `each`,
    /// until the daemon stops.
    pub async fn follow_events(&self, mut each: impl FnMut(&str)) -> Result<(), ClientError> {
        let resp = self
            .http
            .get(format!("{}{}", self.base, v1::EVENTS_ROUTE))
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.map_err(ClientError::Read)?));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        each(data.trim());
                    }
                }
            }
        }
        Ok(())
    }
}
