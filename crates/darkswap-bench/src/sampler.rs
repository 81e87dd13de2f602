//! What both soaks share: how long they run, sampling the process's memory
//! while the load runs, and the figures of the series after warm-up.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use clap::Args;
use tokio_util::task::TaskTracker;

use crate::{
    process::{Usage, usage},
    report::{Figures, Sample, soak},
};

/// How long a soak runs and how it is read.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub(crate) struct SoakTimes {
    /// How long the load runs (`10m`, `1h`).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Time between two memory samples.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) sample_every: Duration,
    /// Samples before this are the warm-up [default: a fifth of the
    /// duration].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) warmup: Option<Duration>,
    /// Length of the windows compared (first after warm-up, last)
    /// [default: a tenth of the duration].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) window: Option<Duration>,
}

impl SoakTimes {
    /// A few seconds, for `--quick`.
    pub(crate) fn quick() -> Self {
        SoakTimes {
            duration: Duration::from_secs(10),
            sample_every: Duration::from_secs(1),
            warmup: None,
            window: None,
        }
    }

    pub(crate) fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(self.duration / 5)
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
            .unwrap_or(self.duration / 10)
            .max(self.sample_every * 2)
    }
}

/// Samples `pid` every `times.sample_every` (with `load()`, a figure of the
/// load at that moment) until `load_tasks` have all finished, and at most
/// `times.duration` plus a minute.
pub(crate) async fn sample<F, Fut>(
    pid: u32,
    start: Instant,
    times: &SoakTimes,
    load_tasks: &TaskTracker,
    load: F,
) -> anyhow::Result<Vec<Sample>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = f64>,
{
    let mut series = Vec::new();
    let mut ticks = tokio::time::interval(times.sample_every);
    let limit = times.duration + Duration::from_secs(60);
    let mut reported = Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = load_tasks.wait() => break,
        }
        if start.elapsed() > limit {
            eprintln!("the load did not stop within a minute of its end; sampling stops");
            break;
        }
        let u = usage(pid)?;
        let s = Sample {
            t: start.elapsed().as_secs_f64(),
            rss_kib: u.rss_kib,
            anon_kib: u.anon_kib,
            cpu_secs: u.cpu_secs,
            load: load().await,
        };
        if reported.elapsed() >= Duration::from_secs(60) {
            reported = Instant::now();
            eprintln!(
                "  t={:>5.0}s  RSS {:>8.1} MiB  anon {:>8.1} MiB  cpu {:>7.1} s  load {}",
                s.t,
                s.rss_kib as f64 / 1024.0,
                s.anon_kib as f64 / 1024.0,
                s.cpu_secs,
                s.load
            );
        }
        series.push(s);
    }
    Ok(series)
}

/// The memory figures of a soak: levels after warm-up, drift, slope, and
/// the memory once the load stopped (`after`).
pub(crate) fn soak_figures(
    figures: &mut Figures,
    series: &[Sample],
    times: &SoakTimes,
    after: Usage,
) {
    let mib = 1.0 / 1024.0;
    for (label, value) in [
        ("RSS", (|s: &Sample| s.rss_kib as f64) as fn(&Sample) -> f64),
        ("heap (RssAnon)", |s: &Sample| s.anon_kib as f64),
    ] {
        let Some(soak) = soak(series, value, times.warmup(), times.window()) else {
            eprintln!("too few samples after the warm-up for {label}");
            continue;
        };
        figures.add(&format!("{label} warm-up level"), "MiB", soak.warm * mib);
        figures.add(&format!("{label} final level"), "MiB", soak.last * mib);
        figures.add(&format!("{label} max after warm-up"), "MiB", soak.max * mib);
        figures.add_with_goal(
            &format!("{label} drift after warm-up"),
            "%",
            Some("within ±10"),
            soak.drift_pct,
        );
        figures.add(
            &format!("{label} slope after warm-up"),
            "MiB/h",
            soak.slope_kib_per_hour * mib,
        );
    }
    if let Some(first) = series.first() {
        figures.add("RSS at the first sample", "MiB", first.rss_kib as f64 * mib);
    }
    figures.add(
        "RSS once the load stopped",
        "MiB",
        after.rss_kib as f64 * mib,
    );
    figures.add(
        "CPU during the soak",
        "CPU-s",
        after.cpu_secs - series.first().map_or(0.0, |s| s.cpu_secs),
    );
}
