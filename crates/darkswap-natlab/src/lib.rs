//! The NAT lab: real `darkswap-relay` and `darkswap` processes in network
//! namespaces, behind NAT routers made with nftables (RFC 4787's
//! behaviours), checking that every pair of daemons connects, that hole
//! punching upgrades them to a direct link where both routers allow it, and
//! that relays failing and restarting cost seconds, not reachability.
//!
//! Run by the `nat-lab` binary (root only: it makes namespaces); it writes
//! `docs/nat-matrix.md`.

pub mod matrix;
pub mod nat;
pub mod nodes;
pub mod report;
pub mod scenarios;
pub mod topology;
