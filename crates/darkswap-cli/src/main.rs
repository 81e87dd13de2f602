//! `darkswap`: the DarkSwap node daemon and the commands that talk to it,
//! the way `ipfs daemon` / `ipfs swarm peers` work.
//!
//! - `cli.rs`: the flags. `main.rs` only parses them and dispatches.
//! - `config_file.rs`: the daemon's options from defaults, TOML file,
//!   environment and flags.
//! - `daemon.rs`: `darkswap daemon`, wiring the parts below together.
//! - `state.rs` (+ `state/`): the one owner of the daemon's state, and
//!   `state/journal.rs`, its sans-IO write policy.
//! - `store.rs`: the SQLite database only the owner holds.
//! - `api.rs` (+ `api/`): the local HTTP API server.
//! - `v1.rs` (+ `v1/`): the API's request and answer types, shared by the
//!   server and the client.
//! - `client.rs`, `commands.rs`: the typed client and the commands that
//!   print what it gets.
//! - `metrics.rs`: the daemon's Prometheus metrics.
//! - `trading.rs`: the trading wallet and the chain services.

// A binary: nothing here is reachable from outside, so `pub` just marks
// what modules offer each other.
#![allow(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod api;
mod cli;
mod client;
mod commands;
mod config_file;
mod daemon;
mod metrics;
mod state;
mod store;
mod trading;
mod v1;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    cli::{Cli, Command},
    client::Client,
    config_file::ConfigFile,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client_api = cli.client_api();
    let result = match cli.command {
        Command::Daemon(args) => {
            // The configuration first: a bad one is refused before anything
            // starts, with exit code 2 as for a bad flag.
            let overrides = args.overrides(cli.api.as_deref());
            let config = match ConfigFile::load(args.config.as_deref(), overrides) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("darkswap: {e}");
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            daemon::run(config.options()).await
        }
        Command::Client(command) => commands::run(&Client::new(&client_api), command, cli.json)
            .await
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("darkswap: {e:#}");
            ExitCode::FAILURE
        }
    }
}
