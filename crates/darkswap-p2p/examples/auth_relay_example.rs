//! Authenticating relays over `/darkswap/auth/1.0.0`.
//!
//! With no arguments it runs a self-contained demo on 127.0.0.1: a relay
//! operator's node and a client sharing an operator-issued key; the client
//! authenticates the operator's node over the wire, re-authenticates it with
//! the token it got, then runs the out-of-band challenge API of seed 001.
//! It fails (exit code 1) if any step does not reach the `relay` level or a
//! replayed answer is accepted: `scripts/test.sh` runs it.
//!
//! With `--relay` it runs as a node that reserves only on relays that prove
//! the shared key (from `--shared-key-file`, hex) and prints what happens:
//!
//! ```text
//! cargo run -p darkswap-p2p --example auth_relay_example
//! cargo run -p darkswap-p2p --example auth_relay_example -- \
//!     --relay /ip4/203.0.113.7/tcp/9000/p2p/12D3Koo... --shared-key-file relay-auth.key
//! ```

use std::{path::PathBuf, time::SystemTime};

use clap::Parser;
use darkswap_p2p::{
    Identity, Keypair, Multiaddr, Network, NetworkConfig, NetworkEvent,
    auth::{AuthManager, AuthManagerConfig, AuthMethod, AuthorizationLevel},
};

#[derive(Parser)]
struct Args {
    /// Relay to authenticate and reserve on (repeatable).
    #[arg(long)]
    relay: Vec<Multiaddr>,
    /// File with the operator-issued shared key, hex encoded.
    #[arg(long)]
    shared_key_file: Option<PathBuf>,
}

fn shared_key_auth(key: Vec<u8>) -> AuthManagerConfig {
    AuthManagerConfig {
        auth_method: AuthMethod::SharedKey,
        shared_key: Some(key),
        // Whoever proves the operator's key is one of the operator's relays.
        default_auth_level: AuthorizationLevel::Relay,
        ..AuthManagerConfig::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    if args.relay.is_empty() {
        return demo().await;
    }
    let key_file = args
        .shared_key_file
        .ok_or("--shared-key-file is required with --relay")?;
    let key = hex::decode(std::fs::read_to_string(&key_file)?.trim())?;
    let mut node = Network::new(
        NetworkConfig::default()
            .with_relay_peers(args.relay)
            .with_require_relay_auth(true)
            .with_auth(shared_key_auth(key)),
    )
    .await?;
    println!("node {}", node.local_peer_id());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = node.next_event() => match event {
                Some(NetworkEvent::RelayAuthenticated { relay_peer_id, level }) => {
                    println!("relay {relay_peer_id} authenticated at level {level}");
                }
                Some(NetworkEvent::RelayAuthFailed { relay_peer_id, error }) => {
                    println!("relay {relay_peer_id} refused: {error}");
                }
                Some(NetworkEvent::RelayReserved { relay_peer_id, .. }) => {
                    println!("reserved on {relay_peer_id}");
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    node.shutdown().await?;
    Ok(())
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let key = b"operator-issued key, keep secret".to_vec();
    let local = |auth| NetworkConfig::default().with_auth(auth).with_mdns(false);

    // The relay operator's node proves the shared key when challenged.
    let operator_key = Keypair::generate_ed25519();
    let operator = Network::new(
        local(shared_key_auth(key.clone())).with_identity(Identity::Keypair(operator_key.clone())),
    )
    .await?;
    let operator_id = operator.local_peer_id();
    let addr = operator.listen_on("/ip4/127.0.0.1/tcp/0").await?;

    let client = Network::new(local(shared_key_auth(key.clone()))).await?;
    client
        .dial(addr.with(libp2p::multiaddr::Protocol::P2p(operator_id)))
        .await?;

    // Over the wire: challenge, HMAC answer, token.
    let token = client.auth().authenticate_peer(&operator_id).await?;
    expect_relay(token.level)?;
    println!(
        "authenticated {operator_id} over /darkswap/auth/1.0.0 at level {}",
        token.level
    );
    // Later: the token restores the level without a new challenge.
    let level = client
        .auth()
        .authenticate_relay(&operator_id, &token)
        .await?;
    expect_relay(level)?;
    println!("re-authenticated with its token at level {level}");

    // Out of band, as seed 001 shows: the challenge travels by any channel.
    let challenge = client.auth().generate_relay_challenge(&operator_id).await?;
    let operator_auth = AuthManager::new(shared_key_auth(key), operator_key)?;
    let response = operator_auth.respond(&challenge, client.local_peer_id(), SystemTime::now())?;
    let token = client
        .auth()
        .verify_relay_challenge_response(&operator_id, &response)
        .await?;
    expect_relay(token.level)?;
    println!("out-of-band challenge verified: level {}", token.level);
    // A second use of the same answer is a replay.
    match client
        .auth()
        .verify_relay_challenge_response(&operator_id, &response)
        .await
    {
        Err(e) => println!("replayed answer refused: {e}"),
        Ok(_) => return Err("a replayed answer was accepted".into()),
    }

    client.shutdown().await?;
    operator.shutdown().await?;
    Ok(())
}

/// The shared key makes its holder one of the operator's relays.
fn expect_relay(level: AuthorizationLevel) -> Result<(), Box<dyn std::error::Error>> {
    if level == AuthorizationLevel::Relay {
        Ok(())
    } else {
        Err(format!("authenticated at level {level}, not relay").into())
    }
}
