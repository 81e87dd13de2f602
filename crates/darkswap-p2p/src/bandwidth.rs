//! Bytes the node moved, read back from libp2p's own bandwidth counters
//! (`libp2p-metrics`, installed by the swarm builder around every
//! transport, relay circuits included). The counters live in a
//! `prometheus-client` registry, which hands no value back except as
//! OpenMetrics text, so this sums the text's `libp2p_bandwidth_bytes_total`
//! samples: one per transport stack and direction.

use prometheus_client::registry::Registry;

/// Bytes sent and received since the node started (payload and the
/// transports' own framing above the socket, as libp2p counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bandwidth {
    /// Received over every connection.
    pub inbound: u64,
    /// Sent over every connection.
    pub outbound: u64,
    /// Of `inbound`, received over relay circuits (also counted once more
    /// on the connection to the relay that carried them).
    pub relayed_inbound: u64,
    /// Of `outbound`, sent over relay circuits.
    pub relayed_outbound: u64,
}

const SAMPLE: &str = "libp2p_bandwidth_bytes_total{";

/// The totals in `registry`'s bandwidth counters.
pub(crate) fn totals(registry: &Registry) -> Bandwidth {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "bandwidth counters not readable");
        return Bandwidth::default();
    }
    parse(&text)
}

fn parse(text: &str) -> Bandwidth {
    let mut total = Bandwidth::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(SAMPLE) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(bytes) = value.trim().parse::<u64>() else {
            continue;
        };
        // A circuit this node dialled is labelled by its address
        // (`…/p2p-circuit/p2p`); one it accepted, by the address the relay
        // client gives it, the remote's peer id alone (`/p2p`).
        let relayed = labels.contains("/p2p-circuit") || labels.contains("protocols=\"/p2p\"");
        if labels.contains("direction=\"Inbound\"") {
            total.inbound = total.inbound.saturating_add(bytes);
            if relayed {
                total.relayed_inbound = total.relayed_inbound.saturating_add(bytes);
            }
        } else if labels.contains("direction=\"Outbound\"") {
            total.outbound = total.outbound.saturating_add(bytes);
            if relayed {
                total.relayed_outbound = total.relayed_outbound.saturating_add(bytes);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_by_direction_and_circuits_counted_apart() {
        let text = "\
# HELP libp2p_bandwidth_bytes Bandwidth usage by direction and transport protocols.
# TYPE libp2p_bandwidth_bytes counter
# UNIT libp2p_bandwidth_bytes bytes
libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp/p2p\",direction=\"Inbound\"} 100
libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp/p2p\",direction=\"Outbound\"} 40
libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp/p2p/p2p-circuit/p2p\",direction=\"Inbound\"} 7
libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp/p2p/p2p-circuit/p2p\",direction=\"Outbound\"} 3
libp2p_bandwidth_bytes_total{protocols=\"/p2p\",direction=\"Inbound\"} 20
libp2p_bandwidth_bytes_total{protocols=\"/p2p\",direction=\"Outbound\"} 10
libp2p_other_total{direction=\"Inbound\"} 999
# EOF
";
        assert_eq!(
            parse(text),
            Bandwidth {
                inbound: 127,
                outbound: 53,
                relayed_inbound: 27,
                relayed_outbound: 13,
            }
        );
    }

    #[test]
    fn an_empty_registry_is_all_zero() {
        assert_eq!(totals(&Registry::default()), Bandwidth::default());
    }
}
