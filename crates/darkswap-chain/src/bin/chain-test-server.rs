//! The test chain (`darkswap_chain::test_server`) as a process, for tests
//! that are not Rust (the browser tests drive it from Node): an Esplora
//! and an `ord server` over the coins a test funds through
//! `POST /test/fund`, checking every posted transaction with Bitcoin
//! Core's script interpreter.
//!
//! `chain-test-server [ADDRESS]` (default `127.0.0.1:0`) prints one JSON
//! line, `{"base_url": "http://…"}`, once it listens, and serves until it
//! is killed or its standard input closes.

use std::{io::Read, net::SocketAddr, process::ExitCode};

use darkswap_chain::test_server::ChainTestServer;

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("chain-test-server: {addr:?} is not an address: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chain-test-server: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let chain = match ChainTestServer::spawn_on(addr).await {
            Ok(chain) => chain,
            Err(e) => {
                eprintln!("chain-test-server: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{}", serde_json::json!({"base_url": chain.base_url()}));
        // The parent holds our standard input: when it goes, so do we.
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        });
        let _ = stdin_closed.await;
        ExitCode::SUCCESS
    })
}
