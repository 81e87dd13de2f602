//! The NAT routers' behaviours, after RFC 4787, as nftables rulesets.
//!
//! Every preset drops unsolicited inbound packets instead of rejecting them:
//! a reject (an ICMP error or a TCP RST) would leave conntrack state that
//! takes the very port a hole punch needs, and real home routers drop.

use std::fmt;

/// How a router maps and filters, in RFC 4787's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatKind {
    /// Endpoint-independent mapping (Linux masquerade keeps the source port
    /// when it is free), address-and-port-dependent filtering: the common
    /// home router ("port-restricted cone").
    EndpointIndependent,
    /// Endpoint-independent mapping and filtering ("full cone"): once a host
    /// has sent from a port, anyone may reach it there. An nftables map from
    /// the outside port to the inside address, as n0's patchbay does.
    FullCone,
    /// A fresh random port for every destination (`masquerade
    /// fully-random`): what the other side learns is useless to anyone
    /// else, so hole punching cannot work and the relay stays the path.
    Symmetric,
}

impl NatKind {
    /// Every preset, in the order the matrix lists them.
    pub const ALL: [NatKind; 3] = [
        NatKind::EndpointIndependent,
        NatKind::FullCone,
        NatKind::Symmetric,
    ];

    /// Short name used on the command line and in the matrix.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::EndpointIndependent => "eim",
            NatKind::FullCone => "cone",
            NatKind::Symmetric => "sym",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// One line for the report.
    pub fn describe(self) -> &'static str {
        match self {
            NatKind::EndpointIndependent => {
                "endpoint-independent mapping, address-and-port-dependent filtering (masquerade)"
            }
            NatKind::FullCone => {
                "endpoint-independent mapping and filtering (masquerade + nftables full-cone map)"
            }
            NatKind::Symmetric => "address-and-port-dependent mapping (masquerade fully-random)",
        }
    }

    /// Whether the mapping is endpoint-independent: a hole punch between
    /// two such routers must succeed.
    pub fn maps_independently(self) -> bool {
        !matches!(self, NatKind::Symmetric)
    }

    /// The router's ruleset; `wan` faces the public segment, `lan` the host.
    pub fn ruleset(self, wan: &str, lan: &str) -> String {
        let random = if self == NatKind::Symmetric {
            " fully-random"
        } else {
            ""
        };
        // Full cone: remember, for each connection leaving through the WAN,
        // which inside address and port its outside port stands for
        // (conntrack's reply tuple holds the port masquerade picked), and
        // send anything arriving on that outside port there.
        let cone = if self == NatKind::FullCone {
            format!(
                "  map cone_udp {{ type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout 120s; }}
  map cone_tcp {{ type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout 120s; }}
  chain cone_in {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname \"{wan}\" udp dport @cone_udp dnat ip to udp dport map @cone_udp
    iifname \"{wan}\" tcp dport @cone_tcp dnat ip to tcp dport map @cone_tcp
  }}
  chain cone_record {{
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname \"{wan}\" ct direction original meta l4proto udp update @cone_udp {{ ct reply proto-dst : ct original ip saddr . ct original proto-src }}
    oifname \"{wan}\" ct direction original meta l4proto tcp update @cone_tcp {{ ct reply proto-dst : ct original ip saddr . ct original proto-src }}
  }}
"
            )
        } else {
            String::new()
        };
        format!(
            "table ip natlab {{
{cone}  chain input {{
    type filter hook input priority filter; policy drop;
    iifname \"lo\" accept
    iifname \"{lan}\" accept
    ct state established,related accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname \"{lan}\" oifname \"{wan}\" accept
    ct state established,related accept
    ct status dnat accept
  }}
  chain outbound {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{wan}\" masquerade{random}
  }}
}}
"
        )
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for NatKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in NatKind::ALL {
            assert_eq!(NatKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(NatKind::from_name("open"), None);
    }

    #[test]
    fn only_the_symmetric_preset_randomises_ports_and_only_the_cone_forwards_unsolicited() {
        let sym = NatKind::Symmetric.ruleset("wan", "lan");
        assert!(sym.contains("masquerade fully-random"));
        assert!(!sym.contains("cone_udp"));
        let eim = NatKind::EndpointIndependent.ruleset("wan", "lan");
        assert!(!eim.contains("fully-random") && !eim.contains("dnat ip to"));
        let cone = NatKind::FullCone.ruleset("wan", "lan");
        assert!(cone.contains("dnat ip to udp dport map @cone_udp"));
        // Nothing is ever rejected: unsolicited packets are dropped.
        for rules in [sym, eim, cone] {
            assert!(!rules.contains("reject"));
            assert!(rules.contains("policy drop"));
        }
    }
}
