//! [`EsploraClient`]: an Esplora (Blockstream's electrs, mempool.space's
//! backend) as broadcaster (`POST /tx`) and as the source of a wallet's
//! coins (`GET /address/{address}/utxo`).
//!
//! `POST /tx`: the request body is the transaction's consensus hex;
//! Esplora answers 200 with the txid as plain text, or 400 with Core's
//! refusal as `sendrawtransaction RPC error: {"code":-26,"message":"…"}`.
//! `GET /address/{address}/utxo`: a JSON array of `{txid, vout, value,
//! status: {confirmed, …}}`, mempool outputs included (unconfirmed).

use std::time::Duration;

use darkswap_p2p::{
    Broadcaster,
    darkswap_trade::bitcoin::{
        Address, Amount, OutPoint, Transaction, Txid, consensus::encode::serialize_hex,
    },
};
use futures::future::BoxFuture;
use reqwest::{Url, header::CONTENT_TYPE};

use crate::http::{self, ALREADY_IN_CHAIN, ConfigError, DEFAULT_TIMEOUT};

/// How to reach an Esplora.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EsploraConfig {
    /// The API root, e.g. `http://127.0.0.1:3000` for electrs or
    /// `http://host/api` behind mempool's web server; `tx` is appended.
    /// No default. Esplora has no authentication.
    pub base_url: String,
    /// The deadline of one broadcast. Default: [`DEFAULT_TIMEOUT`] (10 s).
    pub timeout: Duration,
    /// PEM certificates to trust for `https://` besides the system's (a
    /// private CA, a self-signed service). Default: none.
    pub extra_roots: Vec<u8>,
}

impl EsploraConfig {
    /// An Esplora at `base_url`, with the default timeout.
    pub fn new(base_url: impl Into<String>) -> Self {
        EsploraConfig {
            base_url: base_url.into(),
            timeout: DEFAULT_TIMEOUT,
            extra_roots: Vec::new(),
        }
    }

    /// Sets [`EsploraConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`EsploraConfig::extra_roots`].
    pub fn with_extra_roots(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots = pem.into();
        self
    }
}

/// Why Esplora did not take a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EsploraError {
    /// No answer within [`EsploraConfig::timeout`]. The transaction may
    /// still have been relayed.
    #[error("Esplora did not answer within {0:?}")]
    Timeout(Duration),
    /// Esplora could not be reached, or the connection broke.
    #[error("cannot reach Esplora at {url}: {source}")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Esplora refused the transaction: its status and text, and the
    /// Bitcoin Core error code in it when the text carries one (`-26`
    /// policy or consensus rejection, `-25` missing or spent inputs).
    #[error("Esplora refused the transaction ({status}): {text}")]
    Rejected {
        /// The HTTP status (400 for Core's refusals).
        status: u16,
        /// Esplora's text, cut to 1 KiB.
        text: String,
        /// Core's RPC error code, if the text carries one.
        code: Option<i64>,
    },
    /// Esplora answered a request other than a broadcast with something
    /// that is not what its API returns.
    #[error("Esplora's answer to {url} is malformed: {reason}")]
    Malformed {
        /// The request's URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// Esplora answered 200 with something other than this transaction's
    /// txid: it is not the server it claims to be, or it is broken.
    #[error("Esplora answered txid {got:?} for transaction {expected}")]
    TxidMismatch {
        /// The txid of the transaction sent.
        expected: Txid,
        /// What Esplora answered.
        got: String,
    },
}

/// An unspent output of an address, as Esplora lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressUtxo {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
    /// Whether it is in a block (`false`: in the mempool).
    pub confirmed: bool,
}

/// An Esplora client: a [`Broadcaster`] over `POST /tx`, and the unspent
/// outputs of an address. Cheap to clone.
///
/// Core's "already in block chain" (code -27) relayed by Esplora counts as
/// success, for the reason given on [`crate::CoreRpcBroadcaster`].
#[derive(Debug, Clone)]
pub struct EsploraClient {
    client: reqwest::Client,
    base: Url,
    tx_url: Url,
    timeout: Duration,
}

impl EsploraClient {
    /// A client for the Esplora `config` names. Nothing is sent yet.
    pub fn new(config: EsploraConfig) -> Result<Self, ConfigError> {
        let base = http::base_url(&config.base_url)?;
        let tx_url = base.join("tx").map_err(|e| ConfigError::BaseUrl {
            url: config.base_url.clone(),
            reason: e.to_string(),
        })?;
        Ok(EsploraClient {
            client: http::client(config.timeout, &config.extra_roots)?,
            base,
            tx_url,
            timeout: config.timeout,
        })
    }

    /// Posts `tx` and returns its txid once Esplora took it (or says the
    /// chain already has it).
    pub async fn post_transaction(&self, tx: &Transaction) -> Result<Txid, EsploraError> {
        let expected = tx.compute_txid();
        let request = self
            .client
            .post(self.tx_url.clone())
            .header(CONTENT_TYPE, "text/plain")
            .body(serialize_hex(tx));
        let (status, body) = self.exchange(request, self.tx_url.as_str()).await?;
        if !status.is_success() {
            let code = core_error_code(&body);
            if code == Some(ALREADY_IN_CHAIN) {
                return Ok(expected);
            }
            return Err(EsploraError::Rejected {
                status: status.as_u16(),
                text: http::error_text(&body),
                code,
            });
        }
        let got = body.trim();
        if got.parse::<Txid>().ok() != Some(expected) {
            return Err(EsploraError::TxidMismatch {
                expected,
                got: http::error_text(got),
            });
        }
        Ok(expected)
    }
}

impl EsploraClient {
    /// The unspent outputs paying `address`, mempool ones included.
    pub async fn address_utxos(&self, address: &Address) -> Result<Vec<AddressUtxo>, EsploraError> {
        #[derive(serde::Deserialize)]
        struct Status {
            confirmed: bool,
        }
        #[derive(serde::Deserialize)]
        struct Utxo {
            txid: String,
            vout: u32,
            value: u64,
            status: Status,
        }
        let url = self
            .base
            .join(&format!("address/{address}/utxo"))
            .map_err(|e| EsploraError::Malformed {
                url: format!("{}address/{address}/utxo", self.base),
                reason: e.to_string(),
            })?;
        let text = url.to_string();
        let (status, body) = self.exchange(self.client.get(url), &text).await?;
        if !status.is_success() {
            return Err(EsploraError::Rejected {
                status: status.as_u16(),
                text: http::error_text(&body),
                code: None,
            });
        }
        let utxos: Vec<Utxo> =
            serde_json::from_str(&body).map_err(|e| EsploraError::Malformed {
                url: text.clone(),
                reason: e.to_string(),
            })?;
        utxos
            .into_iter()
            .map(|u| {
                let txid = u
                    .txid
                    .parse::<Txid>()
                    .map_err(|e| EsploraError::Malformed {
                        url: text.clone(),
                        reason: format!("txid {:?}: {e}", u.txid),
                    })?;
                Ok(AddressUtxo {
                    outpoint: OutPoint { txid, vout: u.vout },
                    value: Amount::from_sat(u.value),
                    confirmed: u.status.confirmed,
                })
            })
            .collect()
    }
}

impl EsploraClient {
    /// Sends `request` to `url` and reads the whole answer, within the
    /// configured timeout.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(reqwest::StatusCode, String), EsploraError> {
        let unreachable = |source: reqwest::Error| {
            if source.is_timeout() {
                EsploraError::Timeout(self.timeout)
            } else {
                EsploraError::Unreachable {
                    url: url.to_owned(),
                    source,
                }
            }
        };
        let exchange = async {
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            let body = response.text().await.map_err(unreachable)?;
            Ok::<_, EsploraError>((status, body))
        };
        darkswap_p2p::runtime::timeout(self.timeout, exchange)
            .await
            .map_err(|_| EsploraError::Timeout(self.timeout))?
    }
}

/// The Core error code in Esplora's `sendrawtransaction RPC error: {json}`.
fn core_error_code(text: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct RpcError {
        code: i64,
    }
    let json = text.trim().strip_prefix("sendrawtransaction RPC error:")?;
    serde_json::from_str::<RpcError>(json.trim())
        .ok()
        .map(|e| e.code)
}

impl Broadcaster for EsploraClient {
    fn broadcast(&self, tx: Transaction) -> BoxFuture<'static, Result<Txid, String>> {
        let esplora = self.clone();
        crate::send_future(async move {
            esplora
                .post_transaction(&tx)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_code_is_read_from_esploras_error_text() {
        let text = r#"sendrawtransaction RPC error: {"code":-26,"message":"min relay fee not met, 14 < 141"}"#;
        assert_eq!(core_error_code(text), Some(-26));
        assert_eq!(core_error_code("Invalid hex string"), None);
        assert_eq!(
            core_error_code("sendrawtransaction RPC error: txn-already-in-mempool"),
            None
        );
    }
}
