//! A one-way delay on one interface of a lab namespace, for `holepunch`.
//!
//! This machine's kernel has no `sch_netem`, so `tc netem` cannot delay
//! anything; what it has is NFQUEUE (through `iptables-legacy`: its
//! nftables has no `queue` statement). A rule in the namespace's mangle
//! POSTROUTING queues every packet leaving the interface; a thread of this
//! process, entered into the namespace, holds each one for the delay and
//! then lets it go, in order. Where `tc netem` works it would do the same
//! job; this is used everywhere so that every run delays alike.

use std::{
    collections::VecDeque,
    fs::File,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sched::{CloneFlags, setns};

/// The longest a thread naps with nothing due: the delay's precision.
const NAP: Duration = Duration::from_micros(200);

/// Packets leaving `dev` in namespace `ns` wait `delay` (none at zero).
/// The rule goes and the thread stops when dropped.
#[derive(Debug)]
pub(crate) struct Delay {
    ns: String,
    dev: String,
    delay_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    rule: bool,
}

impl Delay {
    /// Starts the queue's thread in `ns` (no rule yet: no delay).
    pub(crate) fn new(ns: &str, dev: &str) -> Result<Self> {
        ensure_iptables()?;
        let path = format!("/run/netns/{ns}");
        let file = File::open(&path).with_context(|| format!("open {path}"))?;
        let delay_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (delay_us, stop) = (delay_us.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("delay-{dev}"))
                .spawn(move || hold(file, delay_us, stop, ready_tx))
                .context("spawn a delay thread")?
        };
        let delay = Delay {
            ns: ns.to_owned(),
            dev: dev.to_owned(),
            delay_us,
            stop,
            thread: Some(thread),
            rule: false,
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the delay thread did not start")??;
        Ok(delay)
    }

    /// Sets the one-way delay; at zero the rule goes and packets pass
    /// untouched.
    pub(crate) fn set(&mut self, delay: Duration) -> Result<()> {
        self.delay_us
            .store(u64::try_from(delay.as_micros())?, Ordering::SeqCst);
        match (self.rule, delay.is_zero()) {
            (false, false) => {
                self.iptables("-A")?;
                self.rule = true;
            }
            (true, true) => {
                self.iptables("-D")?;
                self.rule = false;
            }
            _ => {}
        }
        Ok(())
    }

    fn iptables(&self, op: &str) -> Result<()> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "iptables-legacy",
                "-t",
                "mangle",
                op,
            ])
            .args(["POSTROUTING", "-o", &self.dev, "-j", "NFQUEUE"])
            .args(["--queue-num", "0", "--queue-bypass"])
            .output()
            .context("run iptables-legacy")?;
        if !out.status.success() {
            bail!(
                "iptables-legacy {op} in {}: {}",
                self.ns,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        if self.rule {
            let _ = self.iptables("-D");
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Enters the namespace, reads what queue 0 holds, and accepts each packet
/// `delay_us` after it came, until `stop`.
fn hold(
    ns: File,
    delay_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<()>>,
) {
    let open = || -> Result<nfq::Queue> {
        setns(&ns, CloneFlags::CLONE_NEWNET).context("setns")?;
        let mut q = nfq::Queue::open().context("open an NFQUEUE netlink socket")?;
        q.bind(0).context("bind NFQUEUE 0")?;
        // The verdict needs the packet's id, not its bytes.
        q.set_copy_range(0, 0).context("NFQUEUE copy range")?;
        q.set_queue_max_len(0, 1 << 14).context("NFQUEUE length")?;
        q.set_nonblocking(true);
        Ok(q)
    };
    let mut q = match open() {
        Ok(q) => {
            let _ = ready.send(Ok(()));
            q
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        let mut got = false;
        while let Ok(m) = q.recv() {
            let delay = Duration::from_micros(delay_us.load(Ordering::Relaxed));
            held.push_back((Instant::now() + delay, m));
            got = true;
        }
        let now = Instant::now();
        // One delay for all: the queue is in release order.
        while held.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, mut m)) = held.pop_front() {
                m.set_verdict(nfq::Verdict::Accept);
                let _ = q.verdict(m);
            }
        }
        if !got {
            // The socket has no wait here: a nap, shorter when a packet
            // is due sooner.
            let nap = held
                .front()
                .map_or(NAP, |(at, _)| at.saturating_duration_since(now).min(NAP));
            std::thread::sleep(nap);
        }
    }
    for (_, mut m) in held {
        m.set_verdict(nfq::Verdict::Accept);
        let _ = q.verdict(m);
    }
}

/// `iptables-legacy` (Debian's `iptables`), installed if missing.
fn ensure_iptables() -> Result<()> {
    let has = || {
        Command::new("iptables-legacy")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has() {
        return Ok(());
    }
    eprintln!("holepunch: installing iptables (NFQUEUE delays packets: no netem here)");
    let ok = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "iptables",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !has() {
        bail!("`iptables-legacy` is missing and `apt-get install iptables` failed");
    }
    Ok(())
}
