//! `nat-lab`: runs the NAT matrix and the relay scenarios with real
//! processes in network namespaces, prints the results, writes
//! `docs/nat-matrix.md` (with `--out`), and exits non-zero when a cell or a
//! scenario falls short. Needs root, `ip` and `nft`.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use darkswap_natlab::{
    matrix::{Cell, CellResult, run_cell},
    nodes::{Binaries, Transport},
    report::{RunInfo, markdown},
    scenarios::{self, Outcome},
};

#[derive(Debug, Parser)]
#[command(
    about = "The NAT lab: darkswap daemons behind nftables NAT routers in network namespaces"
)]
struct Args {
    /// Trials per cell (the bar: at least 10 for the published
    /// matrix; the test command runs 3).
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// Cells or scenarios run at once (each has its own namespaces).
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Only these cells, e.g. `eim-cone/quic` (repeatable).
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Only these scenarios, e.g. `restart/quic` or `autonat/tcp`
    /// (repeatable).
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    /// Skip the matrix: scenarios only.
    #[arg(long)]
    no_matrix: bool,
    /// Skip the failover, restart and AutoNAT scenarios.
    #[arg(long)]
    no_scenarios: bool,
    /// Write the Markdown report here (e.g. docs/nat-matrix.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the daemons' logs even when everything passed.
    #[arg(long)]
    keep: bool,
    /// Write every trial as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

enum Job {
    Cell(Cell),
    Scenario(&'static str, Option<Transport>),
}

enum Done {
    Cell(CellResult),
    Scenario(Outcome),
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !darkswap_testkit::netns::is_root() {
        bail!("the NAT lab makes network namespaces: run it as root");
    }
    for tool in ["ip", "nft"] {
        let found = std::process::Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            bail!("`{tool}` is missing (Debian: iproute2, nftables)");
        }
    }
    let bins = Binaries::locate()?;
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("darkswap-natlab-")
        .tempdir()?;

    let mut jobs = VecDeque::new();
    if !args.no_scenarios {
        // The long ones first, so they overlap the matrix.
        let wanted =
            |name: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name);
        if wanted("autonat/tcp") {
            jobs.push_back(Job::Scenario("autonat", None));
        }
        for t in Transport::ALL {
            for name in ["failover", "restart"] {
                if wanted(&format!("{name}/{}", t.name())) {
                    jobs.push_back(Job::Scenario(name, Some(t)));
                }
            }
        }
    }
    if !args.no_matrix {
        for cell in Cell::all() {
            if args.cells.is_empty() || args.cells.contains(&cell.name()) {
                jobs.push_back(Job::Cell(cell));
            }
        }
    }
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(
        jobs.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut workers = Vec::new();
    for _ in 0..args.jobs.max(1) {
        let (queue, tx, bins) = (queue.clone(), tx.clone(), bins.clone());
        let (trials, work) = (args.trials, work.path().to_owned());
        workers.push(std::thread::spawn(move || {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((i, job)) = next else { break };
                let tag = format!("l{i}");
                let dir = work.join(&tag);
                let done = match job {
                    Job::Cell(cell) => Done::Cell(run_cell(&bins, cell, trials, &tag, &dir)),
                    Job::Scenario(name, transport) => Done::Scenario(match (name, transport) {
                        ("failover", Some(t)) => scenarios::failover(&bins, t, &tag, &dir),
                        ("restart", Some(t)) => scenarios::restart(&bins, t, &tag, &dir),
                        _ => scenarios::autonat(&bins, &tag, &dir),
                    }),
                };
                if tx.send(done).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let (mut cells, mut outcomes) = (Vec::new(), Vec::new());
    for done in rx.iter().take(total) {
        match done {
            Done::Cell(c) => {
                println!(
                    "{:<16} connected {}/{} direct {}/{} median {:?} ms{}",
                    c.cell,
                    c.connected(),
                    c.trials.len(),
                    c.direct(),
                    c.trials.len(),
                    c.median_to_direct_ms(),
                    if c.shortfalls().is_empty() {
                        ""
                    } else {
                        "  FAIL"
                    }
                );
                for (i, t) in c.trials.iter().enumerate() {
                    if let Some(e) = &t.error {
                        println!("    trial {i}: {e}");
                    }
                }
                cells.push(c);
            }
            Done::Scenario(o) => {
                println!(
                    "{:<16} {}{}",
                    o.name,
                    if o.passed { "pass" } else { "FAIL" },
                    o.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
                );
                for step in &o.steps {
                    println!("    {step}");
                }
                outcomes.push(o);
            }
        }
    }
    for w in workers {
        let _ = w.join();
    }
    cells.sort_by_key(|c| (c.transport, c.a, c.b));
    outcomes.sort_by(|x, y| x.name.cmp(&y.name));

    let mut shortfalls: Vec<String> = cells
        .iter()
        .flat_map(CellResult::shortfalls)
        .chain(
            outcomes
                .iter()
                .filter(|o| !o.passed)
                .map(|o| o.name.clone()),
        )
        .collect();
    // A job that panicked (a process that would not start) sent nothing.
    let missing = total - cells.len() - outcomes.len();
    if missing > 0 {
        shortfalls.push(format!(
            "{missing} job(s) died before reporting (see the panic above)"
        ));
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let info = RunInfo {
        trials: args.trials,
        command: format!(
            "nat-lab {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        date,
        seconds: started.elapsed().as_secs(),
    };
    if let Some(out) = &args.out {
        std::fs::write(out, markdown(&info, &cells, &outcomes))
            .with_context(|| format!("write {}", out.display()))?;
    }
    if let Some(json) = &args.json {
        let all = serde_json::json!({ "cells": cells, "scenarios": outcomes });
        std::fs::write(json, serde_json::to_vec_pretty(&all)?)?;
    }
    if shortfalls.is_empty() {
        if args.keep {
            println!("logs kept in {}", work.keep().display());
        }
        println!(
            "NAT lab: all {total} passed in {} s",
            started.elapsed().as_secs()
        );
        Ok(())
    } else {
        // Keep the daemons' logs for whoever reads the failure.
        let kept = work.keep();
        bail!(
            "NAT lab: {} fell short (logs kept in {}):\n  {}",
            shortfalls.len(),
            kept.display(),
            shortfalls.join("\n  ")
        )
    }
}
