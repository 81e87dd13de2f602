//! `darkswap-relay`: parses the flags and loads the configuration file; the
//! server is the library's `RelayServer`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use darkswap_proto::relay_auth::Role;
use darkswap_relay::{
    RelayConfig, RelayServer, load_identity, metrics::SecurityMetrics,
    token_authority::TokenAuthority,
};
use libp2p::PeerId;

use cli::{Cli, Command, TokenCommand};
use config_file::{ConfigFile, LogFormat, LogSection};

mod cli;
mod config_file;

/// How long a signal-triggered shutdown may take before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = ConfigFile::load(cli.config.as_deref(), cli.overrides())
        .and_then(|file| Ok((file.relay_config()?, file)));
    let (config, file) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("darkswap-relay: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        print!("{}", file.to_toml());
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
    init_logging(&file.log);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("darkswap-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(log: &LogSection) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn issue_token(config: &RelayConfig, peer: &PeerId, role: Role, ttl: Duration) -> ExitCode {
    let issued = load_identity(&config.data_dir)
        .map_err(anyhow::Error::from)
        .and_then(|key| {
            let metrics = Arc::new(SecurityMetrics::default());
            let authority = TokenAuthority::new(&key, config.tokens.clone(), None, metrics)?;
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
    let mut signals = Signals::install()?;
    let server = RelayServer::spawn(config).await?;
    tracing::info!(peer_id = %server.peer_id(), "relay started");
    while let Signal::Reload = signals.wait().await {
        match server.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Ok(false) => tracing::info!("SIGHUP: no TLS certificate configured"),
            Err(e) => tracing::error!(
                error = %e,
                "SIGHUP: TLS certificate not reloaded; the one in use stays"
            ),
        }
    }
    tracing::info!("shutdown signal received");
    if tokio::time::timeout(SHUTDOWN_DEADLINE, server.shutdown())
        .await
        .is_err()
    {
        anyhow::bail!("shutdown took longer than {SHUTDOWN_DEADLINE:?}");
    }
    Ok(())
}

/// What a signal asks for.
enum Signal {
    /// SIGTERM or SIGINT (Ctrl-C).
    Stop,
    /// SIGHUP: read the TLS certificate and key again.
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(&mut self) -> Signal {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            Some(()) = self.hup.recv() => Signal::Reload,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
