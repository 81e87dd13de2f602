//! A network namespace of the bench's own (`dsb-<tag>-<pid>`), deleted on
//! drop, whose loopback delays packets when a measure needs links with
//! latency, and a tokio runtime whose threads live in it, so that SDK nodes
//! in this process open their sockets there: their traffic never leaves
//! the namespace and the delay touches nothing else on the machine.
//!
//! The delay is netem's on a kernel that has it: `tc qdisc ... netem
//! delay` on the namespace's `lo`. The machines the suite runs on
//! (Firecracker guests) are built without `sch_netem`, so otherwise it is
//! a [`DelayQueue`] on the packets arriving through `lo`. Either way a
//! packet crosses `lo` once on its way from one socket to another and is
//! delayed once: the delay is each link's one-way latency, and a round
//! trip is twice it.

use std::{fs::File, future::Future, process::Command, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};

use crate::delay_queue::DelayQueue;

/// A namespace with its loopback up; deleted (with its qdisc) when dropped.
#[derive(Debug)]
pub(crate) struct Namespace {
    name: String,
    /// How the delay is made: netem, or the user-space queue.
    shaper: Shaper,
}

#[derive(Debug)]
enum Shaper {
    Netem,
    Queue(DelayQueue),
}

impl Namespace {
    /// Creates `dsb-<tag>-<pid>` (needs root, and `ip`/`tc` from iproute2,
    /// installed if missing).
    pub(crate) fn create(tag: &str) -> anyhow::Result<Self> {
        ensure_iproute2()?;
        let name = format!("dsb-{tag}-{}", std::process::id());
        // A namespace left by a killed run of the same pid would make `add`
        // fail: remove it first (an error just means there was none).
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name])?;
        let mut ns = Namespace {
            name,
            shaper: Shaper::Netem,
        };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        if !netem_works(&ns.name) {
            // PREROUTING, not OUTPUT: the loopback has orphaned a packet
            // from its socket by then, so TCP's small-queue limit does not
            // count the packets held here against the sender (held at
            // OUTPUT, a 63 ms TCP path carried 1.4 Mbit/s).
            ns.shaper = Shaper::Queue(DelayQueue::start(&ns.name, &["PREROUTING", "-i", "lo"])?);
        }
        Ok(ns)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Delays every packet on the namespace's loopback by `delay` (none
    /// when zero). A packet crosses `lo` once from sender to receiver, so
    /// `delay` is the one-way latency of every link between two sockets in
    /// the namespace, and the round trip is twice it.
    pub(crate) fn set_delay(&self, delay: Duration) -> anyhow::Result<()> {
        match &self.shaper {
            Shaper::Netem => {
                let args = netem_args(&self.name, delay);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                if delay.is_zero() {
                    // `del` fails when no qdisc is set: that is the state wanted.
                    let _ = Command::new("tc").args(&args).output();
                    return Ok(());
                }
                run("tc", &args)
            }
            Shaper::Queue(queue) => queue.set(delay),
        }
    }

    /// Runs `work` on a fresh multi-thread tokio runtime (`threads` workers)
    /// every thread of which entered this namespace first, on a thread of
    /// its own, and returns its result. The runtime is shut down before
    /// this returns.
    pub(crate) async fn run<F, Fut, T>(&self, threads: usize, work: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let ns = Arc::new(File::open(&path).with_context(|| format!("open {path}"))?);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("{}-main", self.name))
            .spawn(move || {
                let result = (|| {
                    // `block_on` runs `work` on this very thread.
                    setns(&*ns, CloneFlags::CLONE_NEWNET).context("setns")?;
                    let enter = ns.clone();
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads.max(1))
                        .enable_all()
                        .on_thread_start(move || {
                            // A socket opened outside the namespace would
                            // send unshaped traffic on the host's loopback:
                            // better no measure than a wrong one.
                            if let Err(e) = setns(&*enter, CloneFlags::CLONE_NEWNET) {
                                eprintln!("cannot enter the bench's network namespace: {e}");
                                std::process::abort();
                            }
                        })
                        .build()
                        .context("tokio runtime")?;
                    let out = rt.block_on(work());
                    rt.shutdown_timeout(Duration::from_secs(10));
                    out
                })();
                let _ = tx.send(result);
            })
            .context("spawn the namespace's thread")?;
        rx.await.context("the namespace's thread panicked")?
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The queue's thread stops before its namespace goes.
        self.shaper = Shaper::Netem;
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Whether netem can be set on `ns`'s loopback (the kernel has it).
fn netem_works(ns: &str) -> bool {
    let args = netem_args(ns, Duration::from_millis(1));
    let ok = Command::new("tc")
        .args(&args)
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        let _ = Command::new("tc")
            .args(netem_args(ns, Duration::ZERO))
            .output();
    }
    ok
}

/// `tc` arguments that put `delay` on `ns`'s loopback, or remove it when
/// zero. The queue limit is raised from netem's 1,000 packets: a hundred
/// nodes' traffic held for 20 ms would overflow it and drop packets.
fn netem_args(ns: &str, delay: Duration) -> Vec<String> {
    let mut args: Vec<String> = ["-n", ns, "qdisc"].map(str::to_owned).to_vec();
    if delay.is_zero() {
        args.extend(["del", "dev", "lo", "root"].map(str::to_owned));
    } else {
        args.extend([
            "replace".to_owned(),
            "dev".to_owned(),
            "lo".to_owned(),
            "root".to_owned(),
            "netem".to_owned(),
            "delay".to_owned(),
            format!("{}us", delay.as_micros()),
            "limit".to_owned(),
            "100000".to_owned(),
        ]);
    }
    args
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Installs iproute2 (`ip`, `tc`) if either is missing.
fn ensure_iproute2() -> anyhow::Result<()> {
    let has = |p: &str| {
        Command::new(p)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("ip") && has("tc") {
        return Ok(());
    }
    eprintln!("installing iproute2 (ip, tc)");
    let out = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "iproute2",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .context("run apt-get")?;
    if !(out.status.success() && has("ip") && has("tc")) {
        bail!(
            "cannot install iproute2: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_is_set_in_microseconds_with_a_long_queue_and_removed_at_zero() {
        assert_eq!(
            netem_args("dsb-x", Duration::from_micros(31_500)).join(" "),
            "-n dsb-x qdisc replace dev lo root netem delay 31500us limit 100000"
        );
        assert_eq!(
            netem_args("dsb-x", Duration::ZERO).join(" "),
            "-n dsb-x qdisc del dev lo root"
        );
    }
}
