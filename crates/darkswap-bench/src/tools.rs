//! The reference tools the measures run (iperf3, coturn, the PeerJS
//! server): installed when missing, so that the suite runs on a fresh
//! Debian machine, and run with a deadline.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Installs Debian `package` unless `binary` is on the PATH.
pub(crate) fn ensure_apt(binary: &str, package: &str) -> anyhow::Result<()> {
    if on_path(binary) {
        return Ok(());
    }
    eprintln!("installing Debian's {package} (for {binary})");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("run apt-get")?;
    if !status.success() || !on_path(binary) {
        // The package lists of a fresh machine may be empty.
        Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .context("run apt-get update")?;
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("run apt-get")?;
        if !status.success() || !on_path(binary) {
            bail!("could not install {package} (needs root and Debian's apt)");
        }
    }
    Ok(())
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join(binary).is_file())
    })
}

/// Runs `cmd` to its end, at most `limit` (then kills it and fails);
/// returns its stdout. Fails naming its stderr if it exits non-zero.
pub(crate) fn output_within(mut cmd: Command, limit: Duration) -> anyhow::Result<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {what}"))?;
    let mut stdout = child.stdout.take().context("piped stdout")?;
    let mut stderr = child.stderr.take().context("piped stderr")?;
    // Read both pipes on threads so a chatty child never blocks on them.
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        bail!("{what} failed ({status}): {}{}", err.trim(), out.trim());
    }
    Ok(out)
}
