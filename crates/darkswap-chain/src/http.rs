//! What the three clients share: the HTTP client with its deadline and
//! its TLS roots, and base URL checks.

use std::time::Duration;

use reqwest::Url;

/// The default deadline of one call to a chain service: 10 seconds. An
/// `ord server` answering from its database, Esplora or Core accepting a
/// transaction all answer in well under a second when healthy; ten
/// seconds leaves room for a loaded server without letting a dead one
/// hold a trade step (whose own deadline is longer) for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `RPC_VERIFY_ALREADY_IN_CHAIN`: the transaction's outputs are already in
/// the UTXO set ("Transaction already in block chain", "Transaction
/// outputs already in utxo set" in newer Core). Esplora relays Core's code.
pub(crate) const ALREADY_IN_CHAIN: i64 = -27;

/// Why a client could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL does not parse.
    #[error("invalid base URL {url:?}: {reason}")]
    BaseUrl {
        /// The URL as configured.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The base URL is neither `http://` nor `https://`.
    #[error("base URL {0:?} must be http:// or https://")]
    Scheme(String),
    /// The extra root certificates are not PEM certificates.
    #[error("extra root certificates: {0}")]
    ExtraRoots(String),
    /// The timeout is zero, which would fail every call.
    #[error("the timeout must be above zero")]
    ZeroTimeout,
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Parses `base` as an `http://` or `https://` URL whose path ends with `/`, so that
/// joining `tx` or `output/…` appends to it instead of replacing its last
/// segment (an Esplora at `http://host/api` serves `http://host/api/tx`).
pub(crate) fn base_url(base: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(base).map_err(|e| ConfigError::BaseUrl {
        url: base.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Scheme(base.to_owned()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An HTTP client whose every request (connect, send, read the whole
/// body) must finish within `timeout`. `https://` is verified against the
/// system's roots (rustls with the platform verifier) and the PEM
/// certificates in `extra_roots` (a private CA), if any.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn client(
    timeout: Duration,
    extra_roots: &[u8],
) -> Result<reqwest::Client, ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout);
    }
    let mut builder = reqwest::Client::builder();
    if !extra_roots.is_empty() {
        let roots = reqwest::Certificate::from_pem_bundle(extra_roots)
            .map_err(|e| ConfigError::ExtraRoots(e.to_string()))?;
        // Text without a certificate in it is a mistake, not "trust none".
        if roots.is_empty() {
            return Err(ConfigError::ExtraRoots("no PEM certificate in them".into()));
        }
        builder = builder.tls_certs_merge(roots);
    }
    builder
        .timeout(timeout)
        .connect_timeout(timeout)
        // The services are named by the operator; a redirect elsewhere is
        // not something to follow with credentials or a transaction.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ConfigError::Client)
}

/// In a browser: the page's `fetch`, which trusts the browser's roots
/// only (a private CA is installed in the browser, not passed here). The
/// deadline is the callers' (`runtime::timeout` around each call).
#[cfg(target_arch = "wasm32")]
pub(crate) fn client(
    timeout: Duration,
    extra_roots: &[u8],
) -> Result<reqwest::Client, ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout);
    }
    if !extra_roots.is_empty() {
        return Err(ConfigError::ExtraRoots(
            "a browser trusts its own roots: install the CA there".into(),
        ));
    }
    reqwest::Client::builder()
        .build()
        .map_err(ConfigError::Client)
}

/// At most this much of an error body is kept in an error, so a server
/// cannot fill logs through us.
const MAX_ERROR_TEXT: usize = 1024;

/// `body` cut to [`MAX_ERROR_TEXT`] bytes on a character boundary, trimmed.
pub(crate) fn error_text(body: &str) -> String {
    let body = body.trim();
    let mut end = body.len().min(MAX_ERROR_TEXT);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gains_a_trailing_slash_so_joins_append() {
        let url = base_url("http://127.0.0.1:3000/api").unwrap();
        assert_eq!(
            url.join("tx").unwrap().as_str(),
            "http://127.0.0.1:3000/api/tx"
        );
        let url = base_url("http://127.0.0.1:3000").unwrap();
        assert_eq!(url.join("tx").unwrap().as_str(), "http://127.0.0.1:3000/tx");
    }

    #[test]
    fn another_scheme_or_an_unparsable_base_url_is_refused() {
        assert!(base_url("https://x.example").is_ok());
        assert!(matches!(
            base_url("ftp://x.example"),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            base_url("not a url"),
            Err(ConfigError::BaseUrl { .. })
        ));
    }

    #[test]
    fn error_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = error_text(&long);
        assert!(cut.len() <= MAX_ERROR_TEXT);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
