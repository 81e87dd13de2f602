//! `darkswap-relay`: command line and configuration loading only; the server
//! is the library's `RelayServer`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use darkswap_relay::{LogFormat, RelayConfig, RelayServer, load_identity};
use libp2p::Multiaddr;
use serde_json::{Map, Value, json};

/// How long a signal-triggered shutdown may take before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// DarkSwap relay server: libp2p circuit relay v2, DHT and gossip backbone,
/// Prometheus metrics and health. Runs on built-in defaults with no arguments.
///
/// Configuration: built-in defaults < TOML file (--config) < environment
/// (DARKSWAP_RELAY_<SECTION>__<KEY>) < these flags.
#[derive(Debug, Parser)]
#[command(name = "darkswap-relay", version)]
struct Cli {
    /// TOML configuration file (see deploy/config.toml for every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the identity key and state.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address, replacing network.listen_addresses (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// External address to announce (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    external_address: Vec<Multiaddr>,
    /// Address of the metrics and health server.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Address of the WebSocket signaling server (/signaling and /relay).
    #[arg(long, value_name = "ADDR")]
    signaling_listen: Option<SocketAddr>,
    /// Log level filter (RUST_LOG wins when set).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Print the relay's peer id (creating its key if needed) and exit.
    #[arg(long)]
    print_peer_id: bool,
    /// Validate the configuration, print the effective configuration and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Tokens for the WebSocket plane, minted offline from the relay's key.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Prints a token for PEER with ROLE on stdout (its id and expiry on
    /// stderr, for revoking it later).
    Issue {
        /// The peer id the token is for (only that peer can register with it).
        #[arg(long)]
        peer: libp2p::PeerId,
        /// guest, user or admin.
        #[arg(long)]
        role: darkswap_proto::relay_auth::Role,
        /// Lifetime, e.g. 1h, 30m (at most auth.max_token_ttl_secs).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

impl Cli {
    /// The flags that were given, as a partial configuration tree.
    fn overrides(&self) -> Value {
        let mut root = Map::new();
        let mut section = |name: &str, key: &str, value: Value| {
            let entry = root.entry(name.to_owned()).or_insert_with(|| json!({}));
            if let Value::Object(map) = entry {
                map.insert(key.to_owned(), value);
            }
        };
        if !self.listen.is_empty() {
            section(
                "network",
                "listen_addresses",
                json!(
                    self.listen
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                ),
            );
        }
        if !self.external_address.is_empty() {
            let addrs: Vec<String> = self
                .external_address
                .iter()
                .map(|a| a.to_string())
                .collect();
            section("network", "external_addresses", json!(addrs));
        }
        if let Some(addr) = self.metrics_listen {
            section("metrics", "listen", json!(addr.to_string()));
        }
        if let Some(addr) = self.signaling_listen {
            section("signaling", "listen", json!(addr.to_string()));
        }
        if let Some(level) = &self.log_level {
            section("log", "level", json!(level));
        }
        if let Some(format) = self.log_format {
            section("log", "format", json!(format));
        }
        if let Some(dir) = &self.data_dir {
            root.insert("data_dir".to_owned(), json!(dir));
        }
        Value::Object(root)
    }
}

fn init_logging(config: &RelayConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match RelayConfig::load(cli.config.as_deref(), cli.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("darkswap-relay: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Token(TokenCommand::Issue { peer, role, ttl })) = &cli.command {
        return issue_token(&config, peer, *role, *ttl);
    }
    if cli.print_peer_id {
        return match load_identity(&config.data_dir) {
            Ok(key) => {
                println!("{}", key.public().to_peer_id());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("darkswap-relay: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&config);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("darkswap-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn issue_token(
    config: &RelayConfig,
    peer: &libp2p::PeerId,
    role: darkswap_proto::relay_auth::Role,
    ttl: Duration,
) -> ExitCode {
    let issued = load_identity(&config.data_dir)
        .map_err(anyhow::Error::from)
        .and_then(|key| {
            let metrics = std::sync::Arc::new(darkswap_relay::metrics::SecurityMetrics::default());
            let authority =
                darkswap_relay::auth::Authority::new(&key, config.auth.clone(), None, metrics)?;
            Ok(authority.issue(peer, role, ttl)?)
        });
    match issued {
        Ok((token, claims)) => {
            println!("{token}");
            eprintln!(
                "token id {} for {} ({}), expires at {} (unix seconds)",
                claims.jti, claims.sub, claims.role, claims.exp
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("darkswap-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: RelayConfig) -> anyhow::Result<()> {
    // Handlers go in before anything starts: a signal that arrives while the
    // relay is starting must still mean "stop cleanly", not the default kill.
    let signals = Signals::install()?;
    let server = RelayServer::spawn(config).await?;
    tracing::info!(peer_id = %server.peer_id(), "relay started");
    signals.wait().await;
    tracing::info!("shutdown signal received");
    if tokio::time::timeout(SHUTDOWN_DEADLINE, server.shutdown())
        .await
        .is_err()
    {
        anyhow::bail!("shutdown took longer than {SHUTDOWN_DEADLINE:?}");
    }
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
