//! [`CoreRpcBroadcaster`]: Bitcoin Core's `sendrawtransaction` over
//! JSON-RPC.
//!
//! The request is JSON-RPC 1.0 (`{"jsonrpc":"1.0","id":…,"method":
//! "sendrawtransaction","params":["<hex>"]}`), which every Core version
//! serves. Core answers `{"result":"<txid>","error":null,"id":…}`, or an
//! error object with HTTP 500 (404 for an unknown method); a wrong
//! password gets 401 with an empty body.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use darkswap_p2p::{
    Broadcaster,
    darkswap_trade::bitcoin::{Transaction, Txid, consensus::encode::serialize_hex},
};
use futures::{FutureExt, future::BoxFuture};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::http::{self, ALREADY_IN_CHAIN, ConfigError, DEFAULT_TIMEOUT};

/// `RPC_VERIFY_ERROR`: Core could not verify the transaction (missing or
/// spent inputs).
const VERIFY_ERROR: i64 = -25;
/// `RPC_VERIFY_REJECTED`: refused by policy or consensus rules.
const VERIFY_REJECTED: i64 = -26;

/// How Core checks who calls.
#[derive(Clone)]
#[non_exhaustive]
pub enum CoreRpcAuth {
    /// `rpcuser`/`rpcpassword`, or a user from `rpcauth`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// The cookie file Core writes at start (`<datadir>/.cookie`, one line
    /// `__cookie__:<password>`). It is read at every call, since Core
    /// writes a new one each time it restarts.
    CookieFile(PathBuf),
}

impl fmt::Debug for CoreRpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreRpcAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .finish_non_exhaustive(),
            CoreRpcAuth::CookieFile(path) => f.debug_tuple("CookieFile").field(path).finish(),
        }
    }
}

/// How to reach Bitcoin Core's JSON-RPC server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CoreRpcConfig {
    /// The RPC endpoint, e.g. `http://127.0.0.1:8332` (mainnet's default
    /// port; 18443 on regtest). No default.
    pub url: String,
    /// The credentials. No default.
    pub auth: CoreRpcAuth,
    /// The deadline of one broadcast, reading the cookie included.
    /// Default: [`DEFAULT_TIMEOUT`] (10 s).
    pub timeout: Duration,
    /// PEM certificates to trust for `https://` besides the system's (a
    /// private CA, a self-signed service). Default: none.
    pub extra_roots: Vec<u8>,
}

impl CoreRpcConfig {
    /// Core at `url` with `auth` and the default timeout.
    pub fn new(url: impl Into<String>, auth: CoreRpcAuth) -> Self {
        CoreRpcConfig {
            url: url.into(),
            auth,
            timeout: DEFAULT_TIMEOUT,
            extra_roots: Vec::new(),
        }
    }

    /// Sets [`CoreRpcConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`CoreRpcConfig::extra_roots`].
    pub fn with_extra_roots(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots = pem.into();
        self
    }
}

/// Why Core did not take a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreRpcError {
    /// No answer within [`CoreRpcConfig::timeout`]. The transaction may
    /// still have been accepted.
    #[error("Bitcoin Core did not answer within {0:?}")]
    Timeout(Duration),
    /// Core could not be reached, or the connection broke.
    #[error("cannot reach Bitcoin Core at {url}: {source}")]
    Unreachable {
        /// The RPC URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The cookie file could not be read (Core not started yet, or another
    /// data directory).
    #[error("cannot read Bitcoin Core's cookie file {path}: {source}")]
    Cookie {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cookie file is not `user:password`.
    #[error("Bitcoin Core's cookie file {0} is not user:password")]
    CookieFormat(PathBuf),
    /// Core refused the credentials (HTTP 401).
    #[error("Bitcoin Core refused the RPC credentials")]
    Unauthorized,
    /// Core refused the transaction: code -26 (policy or consensus, e.g.
    /// "min relay fee not met", "non-final") or -25 (missing or spent
    /// inputs), with Core's message.
    #[error("Bitcoin Core rejected the transaction (code {code}): {message}")]
    Rejected {
        /// Core's RPC error code.
        code: i64,
        /// Core's message.
        message: String,
    },
    /// Core answered another RPC error (e.g. -22, the hex did not decode).
    #[error("Bitcoin Core RPC error {code}: {message}")]
    Rpc {
        /// Core's RPC error code.
        code: i64,
        /// Core's message.
        message: String,
    },
    /// An HTTP answer that is not JSON-RPC (403 for an address outside
    /// `rpcallowip`, a proxy's error page).
    #[error("Bitcoin Core answered {status}: {text}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        text: String,
    },
    /// A JSON-RPC answer whose result is not a txid string.
    #[error("Bitcoin Core's answer is not a JSON-RPC result: {0}")]
    Malformed(String),
    /// Core answered a txid other than this transaction's.
    #[error("Bitcoin Core answered txid {got} for transaction {expected}")]
    TxidMismatch {
        /// The txid of the transaction sent.
        expected: Txid,
        /// What Core answered.
        got: String,
    },
}

/// A [`Broadcaster`] over Core's `sendrawtransaction`. Cheap to clone.
///
/// Code -27 ("already in block chain") counts as success with the
/// transaction's own txid: Core says so only when this very txid's outputs
/// are in its UTXO set, i.e. the transaction is confirmed. In a trade both
/// sides may broadcast the same final transaction, and a broadcast may be
/// retried after a timeout; the goal of a broadcast (the transaction on
/// chain) is then met, and failing the trade would be wrong. A transaction
/// that conflicts with a confirmed one is -25 or -26 instead, so this
/// cannot hide a lost race.
#[derive(Debug, Clone)]
pub struct CoreRpcBroadcaster {
    client: reqwest::Client,
    url: Url,
    auth: CoreRpcAuth,
    timeout: Duration,
}

#[derive(Deserialize)]
struct RpcResponse {
    result: Option<serde_json::Value>,
    error: Option<RpcErrorJson>,
}

#[derive(Deserialize)]
struct RpcErrorJson {
    code: i64,
    message: String,
}

impl CoreRpcBroadcaster {
    /// A client for the Core `config` names. Nothing is sent or read yet.
    pub fn new(config: CoreRpcConfig) -> Result<Self, ConfigError> {
        Ok(CoreRpcBroadcaster {
            client: http::client(config.timeout, &config.extra_roots)?,
            url: http::base_url(&config.url)?,
            auth: config.auth,
            timeout: config.timeout,
        })
    }

    /// Calls `sendrawtransaction` with `tx` and returns its txid once Core
    /// took it (or has it confirmed already).
    pub async fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, CoreRpcError> {
        let expected = tx.compute_txid();
        let (status, body) = darkswap_p2p::runtime::timeout(self.timeout, self.call(tx))
            .await
            .map_err(|_| CoreRpcError::Timeout(self.timeout))??;
        if status == StatusCode::UNAUTHORIZED {
            return Err(CoreRpcError::Unauthorized);
        }
        let Ok(response) = serde_json::from_str::<RpcResponse>(&body) else {
            return Err(if status.is_success() {
                CoreRpcError::Malformed(http::error_text(&body))
            } else {
                CoreRpcError::Status {
                    status: status.as_u16(),
                    text: http::error_text(&body),
                }
            });
        };
        if let Some(RpcErrorJson { code, message }) = response.error {
            return match code {
                ALREADY_IN_CHAIN => Ok(expected),
                VERIFY_REJECTED | VERIFY_ERROR => Err(CoreRpcError::Rejected { code, message }),
                _ => Err(CoreRpcError::Rpc { code, message }),
            };
        }
        let Some(serde_json::Value::String(got)) = response.result else {
            return Err(CoreRpcError::Malformed(http::error_text(&body)));
        };
        if got.parse::<Txid>().ok() != Some(expected) {
            return Err(CoreRpcError::TxidMismatch { expected, got });
        }
        Ok(expected)
    }

    /// One JSON-RPC exchange: the status and the body.
    async fn call(&self, tx: &Transaction) -> Result<(StatusCode, String), CoreRpcError> {
        let (user, password) = match &self.auth {
            CoreRpcAuth::UserPassword { user, password } => (user.clone(), password.clone()),
            CoreRpcAuth::CookieFile(path) => read_cookie(path).await?,
        };
        let request = serde_json::json!({
            "jsonrpc": "1.0",
            "id": "darkswap",
            "method": "sendrawtransaction",
            "params": [serialize_hex(tx)],
        });
        let unreachable = |source: reqwest::Error| {
            if source.is_timeout() {
                CoreRpcError::Timeout(self.timeout)
            } else {
                CoreRpcError::Unreachable {
                    url: self.url.to_string(),
                    source,
                }
            }
        };
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth(user, Some(password))
            .json(&request)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        Ok((status, body))
    }
}

/// The `user:password` in Core's cookie file.
async fn read_cookie(path: &Path) -> Result<(String, String), CoreRpcError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| CoreRpcError::Cookie {
            path: path.to_owned(),
            source,
        })?;
    let (user, password) = text
        .trim_end()
        .split_once(':')
        .filter(|(user, password)| !user.is_empty() && !password.is_empty())
        .ok_or_else(|| CoreRpcError::CookieFormat(path.to_owned()))?;
    Ok((user.to_owned(), password.to_owned()))
}

impl Broadcaster for CoreRpcBroadcaster {
    fn broadcast(&self, tx: Transaction) -> BoxFuture<'static, Result<Txid, String>> {
        let core = self.clone();
        async move {
            core.send_raw_transaction(&tx)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}
