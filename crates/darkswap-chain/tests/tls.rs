//! The clients over `https://`: the crate's test chain served with TLS
//! under a CA made for it. Trusted through `extra_roots`, Esplora and ord
//! answer as over plain HTTP; not trusted, the call fails with a
//! certificate error and nothing reaches the server.

#[path = "support/tx.rs"]
mod tx;

use std::{error::Error as _, time::Duration};

use darkswap_chain::{
    ConfigError, EsploraClient, EsploraConfig, EsploraError, OrdConfig, OrdIndex,
    test_server::{ChainTestServer, RuneHolding},
};
use darkswap_p2p::darkswap_trade::{
    Asset, AssetIndex, Holdings,
    bitcoin::{Address, Amount, Network, ScriptBuf},
};
use tx::{op_true, spending};

const RUNE: Asset = Asset::Rune {
    block: 840_000,
    tx: 3,
};

fn address() -> Address {
    Address::from_script(
        &ScriptBuf::from_bytes(vec![0x51, 0x20].into_iter().chain([9; 32]).collect()),
        Network::Regtest,
    )
    .expect("a taproot script")
}

#[tokio::test]
async fn esplora_and_ord_answer_over_https_when_the_ca_is_trusted() {
    let chain = ChainTestServer::spawn_tls().await.expect("bind");
    assert!(chain.base_url().starts_with("https://127.0.0.1:"));
    let ca = chain.ca_pem().expect("a TLS server's CA").to_owned();
    let coin = chain.fund(
        &address(),
        Amount::from_sat(10_000),
        Some(RuneHolding {
            name: "DARKSWAP•TEST•RUNE".to_owned(),
            rune: RUNE,
            amount: 700,
        }),
    );

    let esplora = EsploraClient::new(
        EsploraConfig::new(chain.base_url())
            .with_timeout(Duration::from_secs(5))
            .with_extra_roots(ca.clone()),
    )
    .expect("an https URL and a PEM CA");
    let utxos = esplora.address_utxos(&address()).await.expect("listed");
    assert_eq!(utxos.len(), 1);
    assert_eq!(utxos[0].outpoint, coin);

    let ord = OrdIndex::new(
        OrdConfig::new(chain.base_url())
            .with_timeout(Duration::from_secs(5))
            .with_extra_roots(ca),
    )
    .expect("an https URL and a PEM CA");
    let index = ord.lookup(vec![coin]).await.expect("looked up");
    assert_eq!(index.holdings(&coin), Some(Holdings::from([(RUNE, 700)])));

    let paid = chain.fund_script(op_true(), Amount::from_sat(10_000), None);
    let tx = spending(paid, Amount::from_sat(9_000));
    assert_eq!(
        esplora.post_transaction(&tx).await.expect("taken"),
        tx.compute_txid()
    );
    assert_eq!(chain.received(), vec![tx]);
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_is_refused_before_anything_is_sent() {
    let chain = ChainTestServer::spawn_tls().await.expect("bind");
    let esplora = EsploraClient::new(
        EsploraConfig::new(chain.base_url()).with_timeout(Duration::from_secs(5)),
    )
    .expect("an https URL");
    let tx = spending(
        chain.fund_script(op_true(), Amount::from_sat(10_000), None),
        Amount::from_sat(9_000),
    );
    let error = esplora
        .post_transaction(&tx)
        .await
        .expect_err("an unknown CA");
    let EsploraError::Unreachable { source, .. } = &error else {
        panic!("a transport error, got {error}");
    };
    let mut chain_text = source.to_string();
    let mut cause = source.source();
    while let Some(c) = cause {
        chain_text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(chain_text.contains("certificate"), "{chain_text}");
    assert!(chain.received().is_empty());
}

#[test]
fn extra_roots_without_a_certificate_are_a_config_error() {
    let config = EsploraConfig::new("https://127.0.0.1:1").with_extra_roots("not a certificate");
    assert!(matches!(
        EsploraClient::new(config),
        Err(ConfigError::ExtraRoots(_))
    ));
}
