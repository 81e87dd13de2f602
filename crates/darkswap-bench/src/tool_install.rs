//! Installs the reference tools a measure runs against when they are
//! missing, so that the suite runs on a fresh machine: Debian packages with
//! `apt-get`, npm packages into `$HOME/.cache/darkswap-tools/<name>`; and
//! runs a tool to its end within a deadline.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Whether `program` is on `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Makes sure every one of `programs` is on `PATH`, installing the Debian
/// `package` (which holds them) if one is missing.
pub(crate) fn ensure_apt(package: &str, programs: &[&str]) -> anyhow::Result<()> {
    if programs.iter().all(|p| on_path(p)) {
        return Ok(());
    }
    eprintln!("installing the Debian package {package} (apt-get)");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .context("run apt-get")
    };
    // A fresh machine may have no package lists yet: update once, retry.
    if !install()?.success() {
        let _ = Command::new("apt-get")
            .args(["update", "-qq"])
            .stdout(Stdio::null())
            .status();
        if !install()?.success() {
            bail!("apt-get install {package} failed");
        }
    }
    if let Some(missing) = programs.iter().find(|p| !on_path(p)) {
        bail!("{missing} is still missing after installing {package}");
    }
    Ok(())
}

/// The directory npm packages of the benchmarks live in:
/// `$HOME/.cache/darkswap-tools/<name>`.
pub(crate) fn tools_dir(name: &str) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(Path::new(&home).join(".cache/darkswap-tools").join(name))
}

/// Makes sure the npm `package` is installed under `tools_dir(name)`, and
/// returns the path of `file` inside the package (its entry point).
pub(crate) fn ensure_npm(name: &str, package: &str, file: &str) -> anyhow::Result<PathBuf> {
    let dir = tools_dir(name)?;
    let entry = dir.join("node_modules").join(package).join(file);
    if entry.is_file() {
        return Ok(entry);
    }
    if !on_path("npm") || !on_path("node") {
        bail!("node and npm are needed to run {package}: apt-get install nodejs npm");
    }
    eprintln!(
        "installing the npm package {package} into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(package)
        .stdout(Stdio::null())
        .status()
        .context("run npm")?;
    if !status.success() || !entry.is_file() {
        bail!("npm install {package} failed: no {}", entry.display());
    }
    Ok(entry)
}

/// A loopback TCP port free now that is also free for UDP (coturn listens
/// on both). The OS picks it; a race with another process is possible but
/// the reference's start then fails loudly.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").context("bind a TCP port")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for both TCP and UDP")
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
