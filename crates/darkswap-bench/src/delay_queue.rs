//! A one-way delay made in user space, for kernels without `sch_netem`.
//!
//! The machines the suite runs on (Firecracker guests) have no netem, so
//! `tc netem` cannot delay anything; what they have is NFQUEUE (through
//! `iptables-legacy`: their nftables has no `queue` statement). An
//! iptables rule in a namespace's mangle table queues the packets it
//! matches (queue 0, with `--queue-bypass` so that nothing is dropped when
//! no reader is there); a thread of this process, entered into that
//! namespace, holds each one for the delay and then lets it go, in order.
//! `netns` delays a namespace's loopback with it (where netem is missing),
//! `holepunch` the NAT lab's router links (always, so that every run
//! delays alike).

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

/// The longest the thread naps with nothing due: the delay's precision.
const NAP: Duration = Duration::from_micros(200);

/// Packets the queue may hold: a 63 ms path at line rate holds thousands.
const QUEUE_LEN: u32 = 1 << 16;

/// Packets matched by a rule in one namespace wait the delay (none at
/// zero, and then no rule either). The rule goes and the thread stops when
/// dropped.
#[derive(Debug)]
pub(crate) struct DelayQueue {
    ns: String,
    /// The rule's chain and match, e.g. `PREROUTING -i lo`.
    rule: Vec<String>,
    /// The delay, microseconds; 0 while the rule is off.
    delay_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DelayQueue {
    /// Starts the thread that reads queue 0 in namespace `ns`, for the
    /// packets `rule` (a mangle chain and a match, such as `["PREROUTING",
    /// "-i", "lo"]`) will queue once a delay is set. Installs iptables if
    /// missing.
    pub(crate) fn start(ns: &str, rule: &[&str]) -> Result<Self> {
        ensure_iptables()?;
        let path = format!("/run/netns/{ns}");
        let file = File::open(&path).with_context(|| format!("open {path}"))?;
        let delay_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (delay_us, stop) = (delay_us.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("{ns}-delay"))
                .spawn(move || hold(file, delay_us, stop, ready_tx))
                .context("spawn a delay thread")?
        };
        let queue = DelayQueue {
            ns: ns.to_owned(),
            rule: rule.iter().map(|s| s.to_string()).collect(),
            delay_us,
            stop,
            thread: Some(thread),
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the delay thread did not start")??;
        Ok(queue)
    }

    /// Sets the one-way delay. The rule is added when the delay leaves zero
    /// and removed when it returns to it, so at zero packets pass
    /// untouched.
    pub(crate) fn set(&self, delay: Duration) -> Result<()> {
        let us = u64::try_from(delay.as_micros())?;
        let was = self.delay_us.swap(us, Ordering::SeqCst);
        match (was == 0, us == 0) {
            (true, false) => self.iptables("-A"),
            (false, true) => self.iptables("-D"),
            _ => Ok(()),
        }
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
            .args(&self.rule)
            .args(["-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"])
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

impl Drop for DelayQueue {
    fn drop(&mut self) {
        if self.delay_us.load(Ordering::SeqCst) != 0 {
            let _ = self.iptables("-D");
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Enters the namespace, reads what queue 0 holds, and accepts each packet
/// `delay_us` after it came, until `stop`. Says on `ready` when it listens.
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
        q.set_queue_max_len(0, QUEUE_LEN)
            .context("NFQUEUE length")?;
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

/// `iptables-legacy` (in Debian's `iptables`), installed if missing.
fn ensure_iptables() -> Result<()> {
    crate::tool_install::ensure_apt("iptables", &["iptables-legacy"])
}
