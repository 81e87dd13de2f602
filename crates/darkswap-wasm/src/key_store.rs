//! The node's keys in the browser's IndexedDB, so a page that reloads (or
//! opens again tomorrow) is the same peer with the same wallet. One
//! database per store name, one object store, two records: the identity
//! key in libp2p's protobuf encoding (`ed25519`) and, with trading on, the
//! wallet's keys as `KeyWallet::to_json` writes them (`wallet`).

use darkswap_p2p::{
    Keypair,
    darkswap_trade::{KeyWallet, bitcoin::Network},
};
use futures::channel::oneshot;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

const OBJECT_STORE: &str = "identity";
const IDENTITY: &str = "ed25519";
const WALLET: &str = "wallet";
const VERSION: u32 = 1;

/// Why the identity key could not be loaded or kept.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The page has no IndexedDB (a private window in some browsers, or a
    /// context without `indexedDB`).
    #[error("IndexedDB is not available here")]
    Unavailable,
    /// IndexedDB refused an operation.
    #[error("IndexedDB {operation}: {reason}")]
    Idb {
        /// What was being done.
        operation: &'static str,
        /// What the browser said.
        reason: String,
    },
    /// The stored record is not a key this node can use.
    #[error("the stored key is unusable: {0}")]
    Corrupt(String),
    /// The stored wallet is for another Bitcoin network.
    #[error(
        "the stored wallet is for {stored}, the node trades on {configured}: \
         use another identity_store"
    )]
    WrongNetwork {
        /// The wallet's network.
        stored: Network,
        /// The configured one.
        configured: Network,
    },
}

fn idb(operation: &'static str) -> impl Fn(JsValue) -> KeyStoreError {
    move |e| KeyStoreError::Idb {
        operation,
        reason: describe(&e),
    }
}

/// A browser error as text: a `DOMException`'s name and message, or its
/// debug form.
fn describe(e: &JsValue) -> String {
    match e.dyn_ref::<web_sys::DomException>() {
        Some(d) => format!("{}: {}", d.name(), d.message()),
        None => format!("{e:?}"),
    }
}

fn factory() -> Result<IdbFactory, KeyStoreError> {
    let global = js_sys::global();
    let factory = if let Some(window) = global.dyn_ref::<web_sys::Window>() {
        window.indexed_db()
    } else if let Some(worker) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        worker.indexed_db()
    } else {
        return Err(KeyStoreError::Unavailable);
    };
    factory
        .map_err(idb("open"))?
        .ok_or(KeyStoreError::Unavailable)
}

/// The result of `request` once it succeeds or fails. IndexedDB answers
/// every request with exactly one of the two events.
async fn settle(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let (tx, rx) = oneshot::channel::<Result<(), ()>>();
    let tx = std::rc::Rc::new(std::cell::RefCell::new(Some(tx)));
    let on_success = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(Ok(()));
            }
        })
    };
    let on_error = Closure::<dyn FnMut()>::new(move || {
        if let Some(tx) = tx.borrow_mut().take() {
            let _ = tx.send(Err(()));
        }
    });
    request.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
    request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let outcome = rx.await;
    request.set_onsuccess(None);
    request.set_onerror(None);
    match outcome {
        Ok(Ok(())) => request.result(),
        Ok(Err(())) => Err(request
            .error()
            .ok()
            .flatten()
            .map(JsValue::from)
            .unwrap_or(JsValue::NULL)),
        Err(_) => Err(JsValue::from_str("the request was dropped")),
    }
}

async fn open(name: &str) -> Result<IdbDatabase, KeyStoreError> {
    let request: IdbOpenDbRequest = factory()?
        .open_with_u32(name, VERSION)
        .map_err(idb("open"))?;
    // Runs inside `open` the first time: the object store comes with the
    // database.
    let on_upgrade = Closure::<dyn FnMut(web_sys::IdbVersionChangeEvent)>::new(
        move |event: web_sys::IdbVersionChangeEvent| {
            let db = event
                .target()
                .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
                .and_then(|r| r.result().ok())
                .and_then(|r| r.dyn_into::<IdbDatabase>().ok());
            if let Some(db) = db
                && !db.object_store_names().contains(OBJECT_STORE)
                && let Err(e) = db.create_object_store(OBJECT_STORE)
            {
                tracing::error!(error = %describe(&e), "cannot create the identity store");
            }
        },
    );
    request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let db = settle(&request).await.map_err(idb("open"));
    request.set_onupgradeneeded(None);
    db?.dyn_into::<IdbDatabase>()
        .map_err(|e| KeyStoreError::Idb {
            operation: "open",
            reason: format!("not a database: {e:?}"),
        })
}

async fn get(db: &IdbDatabase, record: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
    let tx = db.transaction_with_str(OBJECT_STORE).map_err(idb("read"))?;
    let store = tx.object_store(OBJECT_STORE).map_err(idb("read"))?;
    let value = settle(&store.get(&JsValue::from_str(record)).map_err(idb("read"))?)
        .await
        .map_err(idb("read"))?;
    if value.is_undefined() {
        return Ok(None);
    }
    let bytes = value
        .dyn_into::<Uint8Array>()
        .map_err(|_| KeyStoreError::Corrupt("not a byte array".to_owned()))?;
    Ok(Some(bytes.to_vec()))
}

/// Stores `bytes` unless a key is there already; `Ok(false)` then. `add`,
/// not `put`: two tabs that start at once must not each keep a different
/// key.
async fn add(db: &IdbDatabase, record: &str, bytes: &[u8]) -> Result<bool, KeyStoreError> {
    let tx = db
        .transaction_with_str_and_mode(OBJECT_STORE, IdbTransactionMode::Readwrite)
        .map_err(idb("write"))?;
    let store = tx.object_store(OBJECT_STORE).map_err(idb("write"))?;
    let request = store
        .add_with_key(&Uint8Array::from(bytes), &JsValue::from_str(record))
        .map_err(idb("write"))?;
    match settle(&request).await {
        Ok(_) => Ok(true),
        Err(e)
            if e.dyn_ref::<web_sys::DomException>()
                .is_some_and(|d| d.name() == "ConstraintError") =>
        {
            Ok(false)
        }
        Err(e) => Err(idb("write")(e)),
    }
}

/// The bytes of `record` in the IndexedDB database `name`; `make`s them
/// and stores them there on first use. When two tabs start at once, the
/// first to store wins and both use its bytes.
async fn load_or_create_record(
    name: &str,
    record: &str,
    make: impl FnOnce() -> Result<Vec<u8>, KeyStoreError>,
) -> Result<Vec<u8>, KeyStoreError> {
    let db = open(name).await?;
    let result = async {
        if let Some(bytes) = get(&db, record).await? {
            return Ok(bytes);
        }
        let bytes = make()?;
        if add(&db, record, &bytes).await? {
            return Ok(bytes);
        }
        get(&db, record)
            .await?
            .ok_or_else(|| KeyStoreError::Corrupt(format!("{record} vanished while it was stored")))
    }
    .await;
    db.close();
    result
}

/// The identity key kept in the IndexedDB database `name`, created there on
/// first use.
pub async fn load_or_create(name: &str) -> Result<Keypair, KeyStoreError> {
    let bytes = load_or_create_record(name, IDENTITY, || {
        Keypair::generate_ed25519()
            .to_protobuf_encoding()
            .map_err(|e| KeyStoreError::Corrupt(e.to_string()))
    })
    .await?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| KeyStoreError::Corrupt(e.to_string()))
}

/// The trading wallet kept in the IndexedDB database `name`, made with two
/// new keys for `network` on first use.
pub async fn load_or_create_wallet(
    name: &str,
    network: Network,
) -> Result<KeyWallet, KeyStoreError> {
    let corrupt =
        |e: darkswap_p2p::darkswap_trade::WalletFileError| KeyStoreError::Corrupt(e.to_string());
    let bytes = load_or_create_record(name, WALLET, || {
        KeyWallet::generate(network)
            .and_then(|w| w.to_json())
            .map_err(corrupt)
    })
    .await?;
    let wallet = KeyWallet::from_json(&bytes).map_err(corrupt)?;
    if wallet.network() != network {
        return Err(KeyStoreError::WrongNetwork {
            stored: wallet.network(),
            configured: network,
        });
    }
    Ok(wallet)
}
