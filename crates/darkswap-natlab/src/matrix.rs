//! The matrix: for each pair of NAT presets and each transport, trials of
//! two fresh daemons behind the two routers meeting through one relay.
//!
//! A trial: both daemons reserve on the relay; the second dials the first
//! through its circuit (the relayed connection); the lab waits for a hole
//! punch; then an order made with the first daemon's CLI must arrive at the
//! second. The daemons' own connection list decides "direct", their event
//! stream gives the time from relayed to direct.

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::{
    nat::NatKind,
    nodes::{Binaries, Daemon, Relay, Seen, Timeline, Transport, reserved},
    topology::Segment,
};

/// The relay's address on the public segment.
pub const RELAY_IP: Ipv4Addr = Ipv4Addr::new(7, 7, 7, 1);
/// Bound on both daemons holding a reservation.
const RESERVE_WITHIN: Duration = Duration::from_secs(20);
/// How long a trial waits for a hole punch to turn the link direct: long
/// enough for DCUtR's second attempt, made when the first one's dial runs
/// into the 10 s connection timeout (a TCP punch whose SYNs crossed badly
/// can stall like that).
pub const PUNCH_WITHIN: Duration = Duration::from_secs(25);
/// Bound on an order reaching the other daemon.
const ORDER_WITHIN: Duration = Duration::from_secs(10);
/// Bound on a daemon stopping after SIGTERM (its shutdown grace is 2 s).
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// One cell: the two routers' presets and the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    /// The first daemon's router.
    pub a: NatKind,
    /// The second daemon's router.
    pub b: NatKind,
    /// TCP or QUIC, end to end.
    pub transport: Transport,
}

impl Cell {
    /// Every unordered pair of presets, each with both transports.
    pub fn all() -> Vec<Cell> {
        let mut cells = Vec::new();
        for transport in Transport::ALL {
            for (i, a) in NatKind::ALL.into_iter().enumerate() {
                for b in NatKind::ALL.into_iter().skip(i) {
                    cells.push(Cell { a, b, transport });
                }
            }
        }
        cells
    }

    /// `eim-cone/quic`.
    pub fn name(&self) -> String {
        format!("{}-{}/{}", self.a, self.b, self.transport.name())
    }

    /// Whether both routers map endpoint-independently, so a hole punch
    /// must succeed.
    pub fn expects_direct(&self) -> bool {
        self.a.maps_independently() && self.b.maps_independently()
    }
}

/// What one trial saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trial {
    /// The order made on the first daemon reached the second.
    pub connected: bool,
    /// The daemons ended with a direct connection to each other.
    pub direct: bool,
    /// From the relayed connection to the first `hole_punch_succeeded`.
    pub to_direct_ms: Option<u64>,
    /// `hole_punch_succeeded` events, both daemons together.
    pub punch_succeeded: usize,
    /// `hole_punch_failed` events, both daemons together.
    pub punch_failed: usize,
    /// What went wrong, if anything did.
    pub error: Option<String>,
}

/// A cell's trials.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// The cell's name.
    pub cell: String,
    /// The first router's preset.
    pub a: NatKind,
    /// The second router's preset.
    pub b: NatKind,
    /// The transport's name.
    pub transport: &'static str,
    /// Whether a direct connection is required.
    pub expects_direct: bool,
    /// Every trial.
    pub trials: Vec<Trial>,
}

impl CellResult {
    /// Trials whose order arrived.
    pub fn connected(&self) -> usize {
        self.trials.iter().filter(|t| t.connected).count()
    }

    /// Trials that ended direct.
    pub fn direct(&self) -> usize {
        self.trials.iter().filter(|t| t.direct).count()
    }

    /// Trials made direct by a hole punch (the others that ended direct
    /// got there by a plain dial: a full cone admits one).
    pub fn punched(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| t.to_direct_ms.is_some())
            .count()
    }

    /// Median time from relayed to direct over the trials that punched.
    pub fn median_to_direct_ms(&self) -> Option<u64> {
        let mut times: Vec<u64> = self.trials.iter().filter_map(|t| t.to_direct_ms).collect();
        times.sort_unstable();
        times.get(times.len() / 2).copied()
    }

    /// What falls short of the bar: every trial connected, and in
    /// a cell where both routers map endpoint-independently at least 9 in
    /// 10 direct (so every one of 3).
    pub fn shortfalls(&self) -> Vec<String> {
        let n = self.trials.len();
        let mut out = Vec::new();
        if self.connected() < n {
            out.push(format!("{}: connected {}/{n}", self.cell, self.connected()));
        }
        let needed = (n * 9).div_ceil(10);
        if self.expects_direct && self.direct() < needed {
            out.push(format!(
                "{}: direct {}/{n}, needs {needed}",
                self.cell,
                self.direct()
            ));
        }
        // Anything else that went wrong in a trial that connected (a
        // daemon that would not stop on SIGTERM).
        for (i, t) in self.trials.iter().enumerate() {
            if let (true, Some(e)) = (t.connected, &t.error) {
                out.push(format!("{} trial {i}: {e}", self.cell));
            }
        }
        // The events must say what happened: no failure reported for a
        // link that ended direct (extra attempts once did exactly that).
        let contradicted = self
            .trials
            .iter()
            .filter(|t| t.direct && t.punch_failed > 0)
            .count();
        if contradicted > 0 {
            out.push(format!(
                "{}: hole_punch_failed reported on {contradicted} link(s) that ended direct",
                self.cell
            ));
        }
        out
    }
}

/// Runs `trials` trials of `cell` in a topology of its own (tagged `tag`),
/// keeping each trial's daemon logs under `work`.
pub fn run_cell(bins: &Binaries, cell: Cell, trials: usize, tag: &str, work: &Path) -> CellResult {
    let mut result = CellResult {
        cell: cell.name(),
        a: cell.a,
        b: cell.b,
        transport: cell.transport.name(),
        expects_direct: cell.expects_direct(),
        trials: Vec::new(),
    };
    let lab = (|| -> Result<_> {
        let segment = Segment::new(tag)?;
        let relay_host = segment.public_host(&format!("{tag}-rl"), RELAY_IP)?;
        let site_a = segment.site(tag, 1, cell.a)?;
        let site_b = segment.site(tag, 2, cell.b)?;
        let relay_dir = work.join("relay");
        std::fs::create_dir_all(&relay_dir)?;
        let relay = Relay::start(bins, &relay_host.ns, RELAY_IP, cell.transport, &relay_dir)?;
        Ok((segment, relay_host, site_a, site_b, relay))
    })();
    let (_segment, _relay_host, site_a, site_b, relay) = match lab {
        Ok(lab) => lab,
        Err(e) => {
            result.trials = vec![
                Trial {
                    error: Some(format!("lab set-up: {e:#}")),
                    ..Trial::default()
                };
                trials
            ];
            return result;
        }
    };
    for n in 0..trials {
        let dir = work.join(format!("trial{n}"));
        // A fresh port per trial: the last trial's TCP connections sit in
        // TIME_WAIT on it and its NAT mappings are still in conntrack.
        let port = 4100 + u16::try_from(n).unwrap_or(0);
        let trial = run_trial(bins, &relay, [&site_a.host, &site_b.host], cell, port, &dir)
            .unwrap_or_else(|e| Trial {
                error: Some(format!("{e:#} (logs in {})", dir.display())),
                ..Trial::default()
            });
        result.trials.push(trial);
        let _ = relay.save_logs(&work.join("relay.log"));
    }
    result
}

fn run_trial(
    bins: &Binaries,
    relay: &Relay,
    hosts: [&darkswap_testkit::netns::Netns; 2],
    cell: Cell,
    port: u16,
    dir: &Path,
) -> Result<Trial> {
    let start = |i: usize| -> Result<Daemon> {
        let data = dir.join(["a", "b"][i]);
        std::fs::create_dir_all(&data)?;
        let args = [
            "--listen".to_owned(),
            cell.transport.listen(Ipv4Addr::UNSPECIFIED, port),
            "--relay".to_owned(),
            relay.addr.clone(),
        ];
        Daemon::start(bins, hosts[i], &data, &args)
    };
    // a is followed before b exists: the two often meet through the
    // relay's DHT within milliseconds of b's start, before anyone asks.
    let mut timeline = Timeline::default();
    let a = start(0)?;
    let _follow_a = a.follow(0, &timeline)?;
    let b = start(1)?;
    let _follow_b = b.follow(1, &timeline)?;

    let deadline = Instant::now() + RESERVE_WITHIN;
    for tag in [0, 1] {
        timeline
            .wait(deadline, |s| s.tag == tag && reserved(&s.event, None))
            .ok_or_else(|| anyhow!("daemon {tag} held no reservation within {RESERVE_WITHIN:?}"))?;
    }

    // The relayed connection: b dials a's circuit address.
    let circuit = format!("{}/p2p-circuit/p2p/{}", relay.addr, a.peer_id);
    b.cli(&["connect", &circuit])?;
    // The relayed link began at the first `peer_connected` of the pair
    // (maybe long before this dial, when they met through the DHT).
    let relayed_since = timeline
        .wait(Instant::now() + ORDER_WITHIN, |s| {
            is_peer_event(s, "peer_connected", &a, &b)
        })
        .map(|s| s.at)
        .context("connected, but no peer_connected event")?;

    // Until a punch reports, or the link is direct anyway (behind a full
    // cone a plain dial gets there and no punch is even tried), or the
    // deadline. A direct connection has no event of its own in the stream:
    // the connection list is asked between waits.
    let deadline = Instant::now() + PUNCH_WITHIN;
    let punched = loop {
        let step = deadline.min(Instant::now() + Duration::from_millis(250));
        let outcome = timeline.wait(step, |s| {
            is_peer_event(s, "hole_punch_succeeded", &a, &b)
                || (!cell.expects_direct() && is_peer_event(s, "hole_punch_failed", &a, &b))
        });
        if outcome.is_some() || Instant::now() >= deadline || has_direct_connection(&b, &a.peer_id)?
        {
            break outcome;
        }
    };
    let mut trial = Trial::default();
    if let Some(s) = punched.filter(|s| s.event["type"] == "hole_punch_succeeded") {
        trial.to_direct_ms = Some(
            u64::try_from(s.at.saturating_duration_since(relayed_since).as_millis())
                .unwrap_or(u64::MAX),
        );
    }
    trial.direct = has_direct_connection(&b, &a.peer_id)?;

    let created = a.cli(&[
        "order",
        "create",
        "--side",
        "sell",
        "--base",
        "BTC",
        "--quote",
        "rune:840000:3",
        "--amount",
        "1000",
        "--price",
        "5000",
        "--expires-in",
        "1h",
    ])?;
    let id = created["id"].as_str().context("order id")?.to_owned();
    trial.connected = timeline
        .wait(Instant::now() + ORDER_WITHIN, |s| {
            s.tag == 1 && s.event["type"] == "order_added" && s.event["order"]["id"] == id.as_str()
        })
        .is_some();

    timeline.catch_up();
    trial.punch_succeeded = count(&timeline.seen, "hole_punch_succeeded", &a, &b);
    trial.punch_failed = count(&timeline.seen, "hole_punch_failed", &a, &b);
    timeline.save(&dir.join("events.jsonl"), relayed_since)?;
    // Stopped as users stop them: the relay sees them go at once and takes
    // their circuit addresses out of its DHT. (Killed, over QUIC the relay
    // noticed only at its 10 s idle timeout; meanwhile every next trial's
    // DHT walk dialled the dead daemons through it, and with trials a
    // second apart that used up the per-IP circuit rate limit.)
    for d in [&a, &b] {
        d.terminate();
    }
    let (mut a, mut b) = (a, b);
    for d in [&mut a, &mut b] {
        if !d.wait_exit(STOP_WITHIN) {
            trial.error = Some(format!(
                "a daemon did not stop within {STOP_WITHIN:?} of SIGTERM"
            ));
        }
    }
    if !trial.connected {
        trial.error = Some(format!(
            "order {id} did not arrive (logs in {})",
            dir.display()
        ));
    }
    Ok(trial)
}

/// Whether `s` is an event of type `kind` about the other daemon of the pair.
fn is_peer_event(s: &Seen, kind: &str, a: &Daemon, b: &Daemon) -> bool {
    let other = if s.tag == 0 { &b.peer_id } else { &a.peer_id };
    s.event["type"] == kind && s.event["peer_id"] == other.as_str()
}

fn count(seen: &[Seen], kind: &str, a: &Daemon, b: &Daemon) -> usize {
    seen.iter().filter(|s| is_peer_event(s, kind, a, b)).count()
}

/// Whether `from` lists a direct connection to `peer` (`darkswap peers`).
fn has_direct_connection(from: &Daemon, peer: &str) -> Result<bool> {
    let peers = from.cli(&["peers"])?;
    Ok(peers.as_array().is_some_and(|ps| {
        ps.iter().any(|p| {
            p["peer_id"] == peer
                && p["connections"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["path"] == "direct"))
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(cell: Cell, trials: &[(bool, bool, usize)]) -> CellResult {
        CellResult {
            cell: cell.name(),
            a: cell.a,
            b: cell.b,
            transport: cell.transport.name(),
            expects_direct: cell.expects_direct(),
            trials: trials
                .iter()
                .map(|&(connected, direct, punch_failed)| Trial {
                    connected,
                    direct,
                    punch_failed,
                    ..Trial::default()
                })
                .collect(),
        }
    }

    #[test]
    fn every_unordered_pair_of_presets_with_both_transports() {
        let cells = Cell::all();
        assert_eq!(cells.len(), 12);
        let expecting = cells.iter().filter(|c| c.expects_direct()).count();
        // eim-eim, eim-cone, cone-cone, per transport.
        assert_eq!(expecting, 6);
    }

    #[test]
    fn the_bar_is_nine_in_ten_direct_where_both_map_independently_and_all_connected() {
        let eim = Cell {
            a: NatKind::EndpointIndependent,
            b: NatKind::EndpointIndependent,
            transport: Transport::Quic,
        };
        let mut nine = vec![(true, true, 0); 9];
        nine.push((true, false, 0));
        assert!(result(eim, &nine).shortfalls().is_empty());
        nine[0].1 = false;
        assert_eq!(result(eim, &nine).shortfalls().len(), 1);
        // Three trials: every one must punch.
        assert_eq!(
            result(eim, &[(true, true, 0), (true, true, 0), (true, false, 0)])
                .shortfalls()
                .len(),
            1
        );
        // A symmetric side needs no direct link, but every trial connected.
        let sym = Cell {
            b: NatKind::Symmetric,
            ..eim
        };
        assert!(result(sym, &[(true, false, 0); 3]).shortfalls().is_empty());
        assert_eq!(
            result(sym, &[(true, false, 0), (false, false, 0)])
                .shortfalls()
                .len(),
            1
        );
    }

    #[test]
    fn a_failure_reported_for_a_link_that_ended_direct_falls_short() {
        let cell = Cell {
            a: NatKind::FullCone,
            b: NatKind::Symmetric,
            transport: Transport::Tcp,
        };
        let r = result(cell, &[(true, true, 1), (true, false, 1)]);
        assert_eq!(r.shortfalls().len(), 1, "{:?}", r.shortfalls());
    }
}
