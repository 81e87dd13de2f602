//! The connection pool under a WebRTC connection manager: create, reuse,
//! release, prune and close connections, and read the pool's stats.
//!
//! ```sh
//! cargo run -p darkswap-relay        # a signaling server on ws://localhost:9001
//! cargo run -p darkswap-p2p --example connection_pool_example [ws://localhost:9001/signaling]
//! ```
//!
//! It runs two native peers in one process: `alice` keeps her connections
//! in a pool, `bob` answers.

use std::{sync::Arc, time::Duration};

use darkswap_webrtc::{
    ConnectionPool, ConnectionPoolConfig, DataMessage, Keypair, WebRtcConfig,
    WebRtcConnectionManager, WebRtcSignalingClient,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://localhost:9001/signaling".to_owned());

    // Bob answers whatever arrives.
    let bob_signaling = Arc::new(WebRtcSignalingClient::new(Keypair::generate_ed25519()));
    bob_signaling.connect(&url).await?;
    let bob_id = bob_signaling.local_peer_id();
    let bob = WebRtcConnectionManager::new(bob_signaling, WebRtcConfig::loopback());
    let bob_task = tokio::spawn(async move {
        while let Some(conn) = bob.accept().await {
            tokio::spawn(async move {
                while let Ok(DataMessage::Text(t)) = conn.receive().await {
                    if conn.send_text(&format!("bob got {t}")).await.is_err() {
                        break;
                    }
                }
            });
        }
    });

    // Alice pools her connections.
    let pool_config = ConnectionPoolConfig {
        max_connections: 100,
        ttl: Duration::from_secs(300),
        max_age: Duration::from_secs(3600),
        enable_reuse: true,
    };
    let pool = Arc::new(ConnectionPool::new(pool_config));
    let alice_signaling = Arc::new(WebRtcSignalingClient::new(Keypair::generate_ed25519()));
    alice_signaling.connect(&url).await?;
    let alice = WebRtcConnectionManager::with_connection_pool(
        alice_signaling,
        pool.clone(),
        WebRtcConfig::loopback(),
    );

    let conn = alice.create_connection(&bob_id).await?;
    conn.send_text("first").await?;
    println!("reply: {:?}", conn.receive().await?);
    let stats = alice.get_connection_stats();
    println!(
        "after create: total {} in use {} idle {}",
        stats.total_connections, stats.in_use_connections, stats.idle_connections
    );

    alice.release_connection(&bob_id);
    let stats = alice.get_connection_stats();
    println!(
        "after release: total {} in use {} idle {}",
        stats.total_connections, stats.in_use_connections, stats.idle_connections
    );

    // The pooled connection is handed out again: no new WebRTC handshake.
    let again = alice
        .get_connection(&bob_id)
        .ok_or("the pooled connection was not reused")?;
    again.send_text("second").await?;
    println!(
        "reply on the reused connection: {:?}",
        again.receive().await?
    );
    alice.release_connection(&bob_id);

    // Nothing idle for 5 minutes yet: prune keeps it.
    println!("pruned: {}", alice.prune_connections());
    println!("closed: {}", alice.close_connection(&bob_id));
    let stats = alice.get_connection_stats();
    println!(
        "after close: total {} in use {} idle {}",
        stats.total_connections, stats.in_use_connections, stats.idle_connections
    );
    if stats.total_connections != 0 {
        return Err("the pool still holds a connection".into());
    }
    bob_task.abort();
    Ok(())
}
