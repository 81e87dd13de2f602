//! [`OrdIndex`]: rune holdings from an `ord server`'s JSON API.
//!
//! The JSON shapes follow ord 0.27.1 (commit `5241ef31`, `src/api.rs`,
//! `crates/ordinals/src/pile.rs`, `src/templates/rune.rs`):
//!
//! - `GET /output/{txid}:{vout}` with `Accept: application/json` answers an
//!   `api::Output`: `indexed`, `spent`, and `runes`, an object from spaced
//!   rune name to a `Pile` `{"amount": u128, "divisibility": u8, "symbol":
//!   char|null}` (`null` when the server has no rune index). `amount` is
//!   already in the rune's smallest unit; `divisibility` only says where a
//!   display puts the decimal point, so it is not applied. 404 when ord
//!   knows no such output. (Before 0.18.4 `runes` was an array of pairs;
//!   those servers are not supported.)
//! - `GET /rune/{name}` answers an `api::Rune` whose `id` is
//!   `"{block}:{tx}"`: the output names runes, and the trade needs ids.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use darkswap_p2p::{
    HoldingsSource,
    darkswap_trade::{Asset, Holdings, InMemoryIndex, bitcoin::OutPoint},
};
use futures::{StreamExt, TryStreamExt, future::BoxFuture, stream};
use reqwest::{StatusCode, Url, header::ACCEPT};
use serde::Deserialize;

use crate::http::{self, ConfigError, DEFAULT_TIMEOUT};

/// Outputs asked of ord at once: a trade has a handful, and more parallel
/// requests would only load a shared server.
const CONCURRENT_LOOKUPS: usize = 4;

/// Rune ids remembered. A rune's id never changes once its etching is
/// confirmed, so the cache needs no expiry; it is emptied when full,
/// which bounds it without an LRU.
const RUNE_CACHE_CAPACITY: usize = 1024;

/// How to reach an `ord server`.
#[derive(Clone)]
#[non_exhaustive]
pub struct OrdConfig {
    /// Where ord serves, e.g. `http://127.0.0.1:80`. No default.
    pub base_url: String,
    /// The deadline of one [`OrdIndex::lookup`], every request in it
    /// included. Default: [`DEFAULT_TIMEOUT`] (10 s).
    pub timeout: Duration,
    /// HTTP basic credentials, for an ord started with
    /// `--server-username` and `--server-password`. Default: none.
    pub credentials: Option<(String, String)>,
    /// PEM certificates to trust for `https://` besides the system's (a
    /// private CA, a self-signed service). Default: none.
    pub extra_roots: Vec<u8>,
}

impl std::fmt::Debug for OrdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdConfig")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(user, _)| user),
            )
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl OrdConfig {
    /// An ord at `base_url`, with the default timeout and no credentials.
    pub fn new(base_url: impl Into<String>) -> Self {
        OrdConfig {
            base_url: base_url.into(),
            timeout: DEFAULT_TIMEOUT,
            credentials: None,
            extra_roots: Vec::new(),
        }
    }

    /// Sets [`OrdConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`OrdConfig::extra_roots`].
    pub fn with_extra_roots(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots = pem.into();
        self
    }

    /// Sets [`OrdConfig::credentials`].
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }
}

/// Why ord's holdings could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdError {
    /// The lookup did not finish within [`OrdConfig::timeout`].
    #[error("ord did not answer within {0:?}")]
    Timeout(Duration),
    /// ord could not be reached, or the connection broke.
    #[error("cannot reach ord at {url}: {source}")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// ord answered a status other than 200 (or 404 for an output).
    #[error("ord answered {status} to {url}: {text}")]
    Status {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        text: String,
    },
    /// ord answered something that is not the JSON it documents.
    #[error("ord's answer to {url} is not what its API documents: {reason}")]
    Malformed {
        /// The request's URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// ord runs without `--index-runes`, so it cannot say what any output
    /// holds.
    #[error("ord at {0} has no rune index (start it with --index-runes)")]
    NoRuneIndex(String),
    /// An output holds a rune that ord's `/rune` does not know: its index
    /// contradicts itself.
    #[error("ord reports rune {0} in an output but does not know the rune")]
    UnknownRune(String),
}

/// A [`HoldingsSource`] backed by an `ord server` (runes only; see the
/// crate docs on alkanes). Cheap to clone; clones share the rune id cache.
///
/// An outpoint is left out of the answer (so a trade that needs it is
/// refused) when ord answers 404 for it, when ord says it is not in its
/// index (`indexed: false`: unconfirmed, or ord behind the chain), or when
/// it is spent. In the last two cases ord reports no runes, which would
/// read as "holds none": unknown is not empty. `indexed` is only true on an
/// ord that indexes inscriptions (the default), addresses or sats, so a
/// runes-only ord (`--no-index-inscriptions`) knows no outpoint here.
#[derive(Clone)]
pub struct OrdIndex {
    client: reqwest::Client,
    base: Url,
    timeout: Duration,
    credentials: Option<(String, String)>,
    rune_ids: Arc<Mutex<HashMap<String, Asset>>>,
}

impl std::fmt::Debug for OrdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdIndex")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `api::Output`, the fields read here; ord adds fields over versions.
#[derive(Deserialize)]
struct OutputJson {
    outpoint: String,
    indexed: bool,
    spent: bool,
    runes: Option<BTreeMap<String, PileJson>>,
}

/// `ordinals::Pile`, the field read here. serde_json reads a u128 number
/// exactly (no float on the way).
#[derive(Deserialize)]
struct PileJson {
    amount: u128,
}

/// `api::Rune` (`RuneHtml`), the field read here.
#[derive(Deserialize)]
struct RuneJson {
    id: String,
}

impl OrdIndex {
    /// A client for the ord `config` names. Nothing is sent yet.
    pub fn new(config: OrdConfig) -> Result<Self, ConfigError> {
        Ok(OrdIndex {
            client: http::client(config.timeout, &config.extra_roots)?,
            base: http::base_url(&config.base_url)?,
            timeout: config.timeout,
            credentials: config.credentials,
            rune_ids: Arc::default(),
        })
    }

    /// What ord says each of `outpoints` holds, within
    /// [`OrdConfig::timeout`]. Outpoints ord does not know are left out
    /// (see [`OrdIndex`]); any other failure fails the whole lookup, since
    /// a partial answer would refuse the trade for the wrong reason.
    pub async fn lookup(&self, outpoints: Vec<OutPoint>) -> Result<InMemoryIndex, OrdError> {
        let work = stream::iter(outpoints)
            .map(|outpoint| async move {
                let holdings = self.output(outpoint).await?;
                Ok::<_, OrdError>(holdings.map(|h| (outpoint, h)))
            })
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .try_fold(InMemoryIndex::new(), |mut index, known| async move {
                if let Some((outpoint, holdings)) = known {
                    index.insert(outpoint, holdings);
                }
                Ok(index)
            });
        darkswap_p2p::runtime::timeout(self.timeout, work)
            .await
            .map_err(|_| OrdError::Timeout(self.timeout))?
    }

    /// One output's runes; `None` when ord does not know it.
    async fn output(&self, outpoint: OutPoint) -> Result<Option<Holdings>, OrdError> {
        let url = self.url(&format!("output/{outpoint}"))?;
        let Some(output) = self.get_json::<OutputJson>(url.clone()).await? else {
            return Ok(None);
        };
        if output.outpoint != outpoint.to_string() {
            return Err(OrdError::Malformed {
                url: url.to_string(),
                reason: format!("it describes output {}", output.outpoint),
            });
        }
        let Some(runes) = output.runes else {
            return Err(OrdError::NoRuneIndex(self.base.to_string()));
        };
        if !output.indexed || output.spent {
            tracing::debug!(
                %outpoint,
                indexed = output.indexed,
                spent = output.spent,
                "ord cannot vouch for this output's runes; left out"
            );
            return Ok(None);
        }
        let mut holdings = Holdings::new();
        for (name, pile) in runes {
            let asset = self.rune_id(&name).await?;
            // ord lists each rune once per output; adding keeps an
            // exact total even if two spellings named the same rune.
            let total = holdings.entry(asset).or_insert(0);
            *total = total
                .checked_add(pile.amount)
                .ok_or_else(|| OrdError::Malformed {
                    url: url.to_string(),
                    reason: format!("rune {name} amounts overflow"),
                })?;
        }
        Ok(Some(holdings))
    }

    /// The id of the rune ord calls `spaced_name` (`UNCOMMON•GOODS`), from
    /// the cache or `GET /rune/{name}`.
    async fn rune_id(&self, spaced_name: &str) -> Result<Asset, OrdError> {
        // Spacers are display only: ord finds a rune by its letters.
        let name: String = spaced_name
            .chars()
            .filter(|c| *c != '•' && *c != '.')
            .collect();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(OrdError::Malformed {
                url: self.base.to_string(),
                reason: format!("{spaced_name:?} is not a rune name"),
            });
        }
        if let Some(asset) = self.cached(&name) {
            return Ok(asset);
        }
        let url = self.url(&format!("rune/{name}"))?;
        let Some(rune) = self.get_json::<RuneJson>(url.clone()).await? else {
            return Err(OrdError::UnknownRune(spaced_name.to_owned()));
        };
        let asset = parse_rune_id(&rune.id).ok_or_else(|| OrdError::Malformed {
            url: url.to_string(),
            reason: format!("{:?} is not a rune id", rune.id),
        })?;
        let mut cache = self.rune_ids.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= RUNE_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(name, asset);
        Ok(asset)
    }

    fn cached(&self, name: &str) -> Option<Asset> {
        let cache = self.rune_ids.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(name).copied()
    }

    fn url(&self, path: &str) -> Result<Url, OrdError> {
        self.base.join(path).map_err(|e| OrdError::Malformed {
            url: self.base.to_string(),
            reason: format!("cannot join {path:?}: {e}"),
        })
    }

    /// GETs `url` as JSON; `None` on a 404 (ord's "not found").
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<Option<T>, OrdError> {
        let mut request = self
            .client
            .get(url.clone())
            // ord answers JSON only to exactly this header (AcceptJson).
            .header(ACCEPT, "application/json");
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let unreachable = |source: reqwest::Error| {
            if source.is_timeout() {
                OrdError::Timeout(self.timeout)
            } else {
                OrdError::Unreachable {
                    url: url.to_string(),
                    source,
                }
            }
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(OrdError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                text: http::error_text(&body),
            });
        }
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| OrdError::Malformed {
                url: url.to_string(),
                reason: e.to_string(),
            })
    }
}

/// `ordinals::RuneId`'s text form, `{block}:{tx}`.
fn parse_rune_id(id: &str) -> Option<Asset> {
    let (block, tx) = id.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(block) || !digits(tx) {
        return None;
    }
    Some(Asset::Rune {
        block: block.parse().ok()?,
        tx: tx.parse().ok()?,
    })
}

impl HoldingsSource for OrdIndex {
    fn holdings(
        &self,
        outpoints: Vec<OutPoint>,
    ) -> BoxFuture<'static, Result<InMemoryIndex, String>> {
        let index = self.clone();
        crate::send_future(async move { index.lookup(outpoints).await.map_err(|e| e.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rune_id_parses_from_ords_text_form() {
        assert_eq!(
            parse_rune_id("840000:3"),
            Some(Asset::Rune {
                block: 840_000,
                tx: 3
            })
        );
        assert_eq!(parse_rune_id("1:0"), Some(Asset::Rune { block: 1, tx: 0 }));
        for bad in ["", "1", "1:", ":1", "-1:0", "1:+2", "1:4294967296", "a:b"] {
            assert_eq!(parse_rune_id(bad), None, "{bad}");
        }
    }
}
