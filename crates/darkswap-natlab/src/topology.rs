//! The lab's network: a "public" segment (a bridge in a namespace of its
//! own) with relays and NAT routers on it, and one host behind each router.
//! Everything lives in network namespaces this process creates and deletes
//! when dropped; nothing the processes send can leave them.
//!
//! Addresses: the public segment is `7.7.7.0/24`, an address range that
//! counts as global (libp2p's AutoNAT only probes global addresses, so
//! documentation ranges would leave it silent) yet never leaves the lab.
//! Site `n`'s LAN is `10.0.n.0/24`, the router `.1`, the host `.2`.

use std::{
    io::Write,
    net::Ipv4Addr,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use darkswap_testkit::netns::Netns;

use crate::nat::NatKind;

/// Runs `cmd`, failing with its stderr if it fails; `stdin` is fed to it.
pub(crate) fn run(mut cmd: Command, stdin: Option<&str>) -> Result<()> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {what}"))?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs `ip -n <ns> args`.
fn ip(ns: &Netns, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["-n", &ns.name]).args(args);
    run(cmd, None)
}

/// The public segment: a bridge every relay and router plugs into.
#[derive(Debug)]
pub struct Segment {
    switch: Netns,
    ports: std::cell::Cell<u32>,
}

impl Segment {
    /// Makes the switch namespace and its bridge.
    pub fn new(tag: &str) -> Result<Self> {
        let switch = Netns::new(&format!("{tag}-sw"));
        ip(&switch, &["link", "add", "br0", "type", "bridge"])?;
        ip(&switch, &["link", "set", "br0", "up"])?;
        Ok(Segment {
            switch,
            ports: std::cell::Cell::new(0),
        })
    }

    /// Plugs `ns` into the segment as `ifname` with address `addr`/24.
    fn attach(&self, ns: &Netns, ifname: &str, addr: Ipv4Addr) -> Result<()> {
        let n = self.ports.get();
        self.ports.set(n + 1);
        let port = format!("port{n}");
        ip(
            ns,
            &[
                "link",
                "add",
                ifname,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.switch.name,
            ],
        )?;
        ip(&self.switch, &["link", "set", &port, "master", "br0"])?;
        ip(&self.switch, &["link", "set", &port, "up"])?;
        ip(ns, &["addr", "add", &format!("{addr}/24"), "dev", ifname])?;
        ip(ns, &["link", "set", ifname, "up"])
    }

    /// A namespace on the segment with `addr` (a relay's home).
    pub fn public_host(&self, tag: &str, addr: Ipv4Addr) -> Result<PublicHost> {
        let ns = Netns::new(tag);
        self.attach(&ns, "eth0", addr)?;
        Ok(PublicHost { ns, addr })
    }

    /// A router of kind `nat` on the segment at `7.7.7.(10 + n)` with a
    /// host behind it on `10.0.n.0/24`.
    pub fn site(&self, tag: &str, n: u8, nat: NatKind) -> Result<Site> {
        let router = Netns::new(&format!("{tag}-r{n}"));
        let host = Netns::new(&format!("{tag}-h{n}"));
        let wan = Ipv4Addr::new(7, 7, 7, 10 + n);
        self.attach(&router, "wan", wan)?;
        ip(
            &router,
            &[
                "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", &host.name,
            ],
        )?;
        ip(
            &router,
            &["addr", "add", &format!("10.0.{n}.1/24"), "dev", "lan"],
        )?;
        ip(&router, &["link", "set", "lan", "up"])?;
        ip(
            &host,
            &["addr", "add", &format!("10.0.{n}.2/24"), "dev", "eth0"],
        )?;
        ip(&host, &["link", "set", "eth0", "up"])?;
        ip(
            &host,
            &["route", "add", "default", "via", &format!("10.0.{n}.1")],
        )?;
        let mut sysctl = router.command("sysctl");
        sysctl.args(["-qw", "net.ipv4.ip_forward=1"]);
        run(sysctl, None)?;
        let mut nft = router.command("nft");
        nft.args(["-f", "-"]);
        run(nft, Some(&nat.ruleset("wan", "lan")))?;
        Ok(Site {
            router,
            host,
            nat,
            wan,
        })
    }
}

/// A namespace on the public segment.
#[derive(Debug)]
pub struct PublicHost {
    /// The namespace.
    pub ns: Netns,
    /// Its address on the segment.
    pub addr: Ipv4Addr,
}

/// A NAT router and the host behind it.
#[derive(Debug)]
pub struct Site {
    /// The router's namespace (kept alive with the site).
    pub router: Netns,
    /// The host's namespace, where a daemon runs.
    pub host: Netns,
    /// How the router translates.
    pub nat: NatKind,
    /// The router's public address.
    pub wan: Ipv4Addr,
}
