//! `[turn]`: [`TurnConfig`], the STUN/TURN port.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use darkswap_proto::relay_auth::Role;
use darkswap_relay::config::TurnConfig;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[turn]`. Optional keys are absent by default (`relay_ip`,
/// `public_host`, `secret`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TurnSection {
    enabled: bool,
    listen: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_host: Option<String>,
    relay_port_min: u16,
    relay_port_max: u16,
    realm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    credential_ttl_secs: u64,
    role: Role,
    max_allocations: usize,
    max_allocations_per_peer: usize,
    bandwidth_per_allocation: u64,
}

impl Default for TurnSection {
    fn default() -> Self {
        let t = TurnConfig::default();
        TurnSection {
            enabled: t.enabled,
            listen: t.listen,
            relay_ip: t.relay_ip,
            public_host: t.public_host,
            relay_port_min: t.relay_port_min,
            relay_port_max: t.relay_port_max,
            realm: t.realm,
            secret: t.secret,
            credential_ttl_secs: t.credential_ttl.as_secs(),
            role: t.role,
            max_allocations: t.max_allocations,
            max_allocations_per_peer: t.max_allocations_per_peer,
            bandwidth_per_allocation: t.bandwidth_per_allocation,
        }
    }
}

impl TurnSection {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("turn.credential_ttl_secs", self.credential_ttl_secs),
            ("turn.max_allocations", self.max_allocations as u64),
            (
                "turn.max_allocations_per_peer",
                self.max_allocations_per_peer as u64,
            ),
            (
                "turn.bandwidth_per_allocation",
                self.bandwidth_per_allocation,
            ),
            ("turn.relay_port_min", u64::from(self.relay_port_min)),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{key} must be greater than 0")));
            }
        }
        if self.relay_port_min > self.relay_port_max {
            return Err(ConfigError(
                "turn.relay_port_min must not be above turn.relay_port_max".into(),
            ));
        }
        if self.secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError(
                "turn.secret must be at least 16 characters".into(),
            ));
        }
        if self.realm.is_empty() {
            return Err(ConfigError("turn.realm must not be empty".into()));
        }
        Ok(())
    }

    pub(crate) fn turn_config(&self) -> TurnConfig {
        let mut t = TurnConfig::default();
        t.enabled = self.enabled;
        t.listen = self.listen;
        t.relay_ip = self.relay_ip;
        t.public_host = self.public_host.clone();
        t.relay_port_min = self.relay_port_min;
        t.relay_port_max = self.relay_port_max;
        t.realm = self.realm.clone();
        t.secret = self.secret.clone();
        t.credential_ttl = Duration::from_secs(self.credential_ttl_secs);
        t.role = self.role;
        t.max_allocations = self.max_allocations;
        t.max_allocations_per_peer = self.max_allocations_per_peer;
        t.bandwidth_per_allocation = self.bandwidth_per_allocation;
        t
    }
}
