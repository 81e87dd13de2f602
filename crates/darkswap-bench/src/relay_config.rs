//! The relay configuration the benchmarks run with: the defaults, except
//! the connection limits of the public port, raised so that thousands of
//! clients from a few loopback addresses are measured rather than refused.
//! Everything else (message sizes, queues, timeouts, per-socket rates) is
//! the default a user runs.

/// The config file (TOML) for a relay that admits `max_peers` signaling
/// peers and `max_circuits` WebSocket circuits.
pub(crate) fn relay_toml(max_peers: usize, max_circuits: usize) -> String {
    format!(
        r#"# Written by darkswap-bench: connection limits raised for load.
[signaling]
max_peers = {max_peers}

[ws_relay]
max_circuits = {max_circuits}

[limits]
max_connections_per_ip = {conns}
connection_rate_per_ip = {{ limit = 1000000, interval_secs = 1 }}
connection_rate_global = {{ limit = 1000000, interval_secs = 1 }}
messages_per_second_global = 1000000
"#,
        // One below the public port's socket ceiling (max_peers + 2 ×
        // max_circuits + 64): the relay refuses a per-address limit that
        // would let one address take every socket.
        conns = max_peers + 2 * max_circuits + 63,
    )
}

/// [`relay_toml`] plus the libp2p circuit relay's (`[relay]`) load limits:
/// room for `reservations` reservations and `circuits` circuits at once
/// (never below the defaults, 1,024 and 256), and reservation and circuit
/// request rates per IP address raised, because every client of a
/// benchmark dials from 127.0.0.1. Per-peer limits and rates, durations and
/// byte limits stay the defaults (each client reserves once and opens at
/// most one circuit).
pub(crate) fn relay_hop_toml(reservations: usize, circuits: usize) -> String {
    format!(
        r#"{base}
[relay]
max_reservations = {reservations}
max_circuits = {circuits}
reservation_rate_per_ip = {{ limit = 1000000, interval_secs = 1 }}
circuit_rate_per_ip = {{ limit = 1000000, interval_secs = 1 }}
"#,
        base = relay_toml(64, 256),
        reservations = reservations.max(1024),
        circuits = circuits.max(256),
    )
}

/// Which relay binary to run, and with what environment.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct RelayArgs {
    /// The relay binary [default: darkswap-relay next to this runner].
    #[arg(long)]
    pub(crate) relay_bin: Option<std::path::PathBuf>,
    /// Environment for the relay, `KEY=VALUE`, repeatable (e.g.
    /// `MALLOC_ARENA_MAX=2` to tell allocator arenas from leaks).
    #[arg(long = "relay-env", value_parser = parse_env)]
    pub(crate) relay_env: Vec<(String, String)>,
}

impl RelayArgs {
    /// Starts the relay with `config`.
    pub(crate) fn start(&self, config: &str) -> anyhow::Result<crate::process::Relay> {
        self.start_with(config, &[])
    }

    /// As [`RelayArgs::start`], with `extra` flags.
    pub(crate) fn start_with(
        &self,
        config: &str,
        extra: &[&str],
    ) -> anyhow::Result<crate::process::Relay> {
        let bin = self
            .relay_bin
            .clone()
            .unwrap_or_else(|| crate::process::sibling_binary("darkswap-relay"));
        let env: Vec<(&str, &str)> = self
            .relay_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        crate::process::Relay::start_with(&bin, config, &env, extra)
    }
}

/// Parses `KEY=VALUE`.
pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE"))
}
