//! What a measure reports: named figures (one value per round; the table
//! shows their median and spread), memory series with their soak analysis,
//! and the conditions of the run. Printed as a table and written as JSON;
//! issue 18's suite adds references and ratios to the same shape.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// One figure measured once per round, and, for a side-by-side measure,
/// the reference's value in the same rounds and the ratio of each round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) unit: String,
    /// The goal, as text, if the issue states one (`<= 8`, `>= 3`): on the
    /// ratio when there is a reference, else on the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) goal: Option<String>,
    #[serde(deserialize_with = "nan_for_null::many")]
    pub(crate) values: Vec<f64>,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) median: f64,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) min: f64,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) max: f64,
    /// What the figure is compared with (`rust-libp2p defaults`, `iperf3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reference: Option<Versus>,
    /// Whether the median (of the ratio, if any) meets the goal; `None`
    /// without a goal or with one this code cannot read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) met: Option<bool>,
}

/// The reference side of a figure: its values, measured in the same rounds
/// interleaved with ours (A, B, A, B, ...), and ours ÷ theirs per round, so
/// that a machine slowing down between rounds cancels out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Versus {
    pub(crate) name: String,
    #[serde(deserialize_with = "nan_for_null::many")]
    pub(crate) values: Vec<f64>,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) median: f64,
    #[serde(deserialize_with = "nan_for_null::many")]
    pub(crate) ratios: Vec<f64>,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) ratio_median: f64,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) ratio_min: f64,
    #[serde(deserialize_with = "nan_for_null::one")]
    pub(crate) ratio_max: f64,
}

/// The report of one measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) measure: String,
    pub(crate) conditions: Conditions,
    /// The measure's parameters, as given.
    pub(crate) params: serde_json::Value,
    pub(crate) figures: Vec<Figure>,
    /// Memory samples over time, for soaks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) series: Vec<Sample>,
}

impl Report {
    /// A report of `measure` with the figures collected.
    pub(crate) fn new(
        measure: &str,
        conditions: Conditions,
        params: impl Serialize,
        figures: Figures,
    ) -> anyhow::Result<Self> {
        Ok(Report {
            measure: measure.to_owned(),
            conditions,
            params: serde_json::to_value(params)?,
            figures: figures.finish(),
            series: vec![],
        })
    }
}

/// JSON has no NaN or infinity: serde_json writes them as `null` (a ratio
/// with a zero reference, the range of no values). Read back as NaN, which
/// the tables show as `-`.
mod nan_for_null {
    use serde::{Deserialize, Deserializer};

    pub(super) fn one<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    pub(super) fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }
}

/// When, where and on what the run happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Conditions {
    /// Unix seconds at the start.
    pub(crate) started_at: u64,
    /// `git describe --always --dirty` of the working directory, if any.
    pub(crate) commit: Option<String>,
    pub(crate) cpus: usize,
    /// `MemTotal` of `/proc/meminfo`, KiB.
    pub(crate) mem_total_kib: Option<u64>,
    /// The 1-minute load average at the start: other work on the machine.
    pub(crate) load_average: Option<f64>,
    pub(crate) kernel: Option<String>,
    /// `model name` of `/proc/cpuinfo`.
    #[serde(default)]
    pub(crate) cpu_model: Option<String>,
}

impl Conditions {
    pub(crate) fn now() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let commit = std::process::Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        Conditions {
            started_at,
            commit,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total_kib: read("/proc/meminfo").and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            }),
            load_average: read("/proc/loadavg")
                .and_then(|l| l.split_whitespace().next()?.parse().ok()),
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()),
            cpu_model: read("/proc/cpuinfo").and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            }),
        }
    }
}

/// One memory sample of a soak.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// Seconds since the soak started.
    pub(crate) t: f64,
    pub(crate) rss_kib: u64,
    pub(crate) anon_kib: u64,
    pub(crate) cpu_secs: f64,
    /// A count the measure follows beside memory (peers registered,
    /// create/cancel pairs done).
    pub(crate) load: f64,
}

/// A soak's memory after its warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Soak {
    /// Median RSS over the first window after the warm-up, KiB.
    pub(crate) warm: f64,
    /// Median RSS over the last window, KiB.
    pub(crate) last: f64,
    /// Largest RSS after the warm-up, KiB.
    pub(crate) max: f64,
    /// `last / warm - 1`, percent.
    pub(crate) drift_pct: f64,
    /// Least-squares slope of RSS after the warm-up, KiB per hour.
    pub(crate) slope_kib_per_hour: f64,
}

/// Analyses `series` (of `value`) after `warmup`, comparing windows of
/// `window` at both ends. `None` if fewer than two samples are after the
/// warm-up.
pub(crate) fn soak(
    series: &[Sample],
    value: impl Fn(&Sample) -> f64,
    warmup: Duration,
    window: Duration,
) -> Option<Soak> {
    let after: Vec<(f64, f64)> = series
        .iter()
        .filter(|s| s.t >= warmup.as_secs_f64())
        .map(|s| (s.t, value(s)))
        .collect();
    let (first_t, last_t) = (after.first()?.0, after.last()?.0);
    if after.len() < 2 {
        return None;
    }
    let w = window.as_secs_f64();
    let warm: Vec<f64> = after
        .iter()
        .filter(|(t, _)| *t <= first_t + w)
        .map(|s| s.1)
        .collect();
    let last: Vec<f64> = after
        .iter()
        .filter(|(t, _)| *t >= last_t - w)
        .map(|s| s.1)
        .collect();
    let (warm, last) = (median(&warm), median(&last));
    let max = after.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    let n = after.len() as f64;
    let (mt, mv) = (
        after.iter().map(|s| s.0).sum::<f64>() / n,
        after.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let cov: f64 = after.iter().map(|(t, v)| (t - mt) * (v - mv)).sum();
    let var: f64 = after.iter().map(|(t, _)| (t - mt) * (t - mt)).sum();
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    Some(Soak {
        warm,
        last,
        max,
        drift_pct: 100.0 * (last / warm - 1.0),
        slope_kib_per_hour: slope * 3600.0,
    })
}

/// The median of `values` (0 if empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The `q` quantile (0..=1) of `values`, nearest rank (0 if empty).
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Collects figures round by round, keeping their order of first use.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    list: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    unit: &'static str,
    goal: Option<&'static str>,
    values: Vec<f64>,
    reference: Option<(String, Vec<f64>)>,
}

impl Figures {
    /// Adds this round's `value` of figure `name`.
    pub(crate) fn add(&mut self, name: &str, unit: &'static str, value: f64) {
        self.add_with_goal(name, unit, None, value);
    }

    /// As [`Figures::add`], with the goal the issue states.
    pub(crate) fn add_with_goal(
        &mut self,
        name: &str,
        unit: &'static str,
        goal: Option<&'static str>,
        value: f64,
    ) {
        self.entry(name, unit, goal).values.push(value);
    }

    /// Adds this round's value of figure `name` for ours and for the
    /// reference `versus`, measured in the same round; `goal` is on the
    /// ratio ours ÷ theirs.
    pub(crate) fn add_versus(
        &mut self,
        name: &str,
        unit: &'static str,
        versus: &str,
        goal: Option<&'static str>,
        ours: f64,
        theirs: f64,
    ) {
        let e = self.entry(name, unit, goal);
        e.values.push(ours);
        e.reference
            .get_or_insert_with(|| (versus.to_owned(), vec![]))
            .1
            .push(theirs);
    }

    fn entry(&mut self, name: &str, unit: &'static str, goal: Option<&'static str>) -> &mut Entry {
        let i = match self.list.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.list.push(Entry {
                    name: name.to_owned(),
                    unit,
                    goal,
                    values: vec![],
                    reference: None,
                });
                self.list.len() - 1
            }
        };
        &mut self.list[i]
    }

    pub(crate) fn finish(self) -> Vec<Figure> {
        self.list
            .into_iter()
            .map(|e| {
                let reference = e.reference.map(|(name, values)| {
                    let ratios: Vec<f64> = e
                        .values
                        .iter()
                        .zip(&values)
                        .map(|(ours, theirs)| ours / theirs)
                        .collect();
                    let (ratio_min, ratio_max) = range(&ratios);
                    Versus {
                        name,
                        median: median(&values),
                        ratio_median: median(&ratios),
                        ratio_min,
                        ratio_max,
                        values,
                        ratios,
                    }
                });
                let median = median(&e.values);
                let judged = reference.as_ref().map_or(median, |r| r.ratio_median);
                let (min, max) = range(&e.values);
                Figure {
                    met: e.goal.and_then(|g| meets(g, judged)),
                    median,
                    min,
                    max,
                    name: e.name,
                    unit: e.unit.to_owned(),
                    goal: e.goal.map(str::to_owned),
                    values: e.values,
                    reference,
                }
            })
            .collect()
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    (
        finite.clone().fold(f64::INFINITY, f64::min),
        finite.fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Whether `value` meets `goal` (`<= 8`, `< 1`, `>= 3`, `> 0`); `None` if
/// the goal is not a comparison with a number.
pub(crate) fn meets(goal: &str, value: f64) -> Option<bool> {
    let goal = goal.trim();
    for (op, f) in [
        ("<=", f64::le as fn(&f64, &f64) -> bool),
        (">=", f64::ge),
        ("<", f64::lt),
        (">", f64::gt),
    ] {
        if let Some(rest) = goal.strip_prefix(op) {
            let bound: f64 = rest
                .split_whitespace()
                .next()?
                .replace(',', "")
                .parse()
                .ok()?;
            return Some(value.is_finite() && f(&value, &bound));
        }
    }
    None
}

impl Report {
    /// Prints the table: one line a figure, median, spread over the rounds
    /// (min..max and ± half the range in percent of the median), goal.
    pub(crate) fn print(&self) {
        let c = &self.conditions;
        println!(
            "\n{}  (commit {}, {} cpus, load {:.2} at start)",
            self.measure,
            c.commit.as_deref().unwrap_or("?"),
            c.cpus,
            c.load_average.unwrap_or(f64::NAN)
        );
        println!(
            "{:<44} {:>10} {:>21} {:>6}  {:<9} {:>10} {:>20}  goal",
            "figure", "median", "min..max", "±%", "unit", "reference", "ratio (min..max)"
        );
        for f in &self.figures {
            let (theirs, ratio) = match &f.reference {
                Some(r) => (
                    num(r.median),
                    format!(
                        "{} ({}..{})",
                        num(r.ratio_median),
                        num(r.ratio_min),
                        num(r.ratio_max)
                    ),
                ),
                None => (String::new(), String::new()),
            };
            println!(
                "{:<44} {:>10} {:>21} {:>6}  {:<9} {:>10} {:>20}  {}{}",
                f.name,
                num(f.median),
                format!("{}..{}", num(f.min), num(f.max)),
                spread(f),
                f.unit,
                theirs,
                ratio,
                f.goal.as_deref().unwrap_or(""),
                match f.met {
                    Some(true) => " met",
                    Some(false) => " MISSED",
                    None => "",
                }
            );
            if let Some(r) = &f.reference {
                println!("{:<44} (reference: {})", "", r.name);
            }
        }
    }

    /// Writes the report as pretty JSON to `path`.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        println!("JSON: {}", path.display());
        Ok(())
    }
}

/// ± half the range over the rounds, percent of the median.
pub(crate) fn spread(f: &Figure) -> String {
    if f.median != 0.0 && f.values.len() > 1 {
        format!("{:.1}", 50.0 * (f.max - f.min) / f.median.abs())
    } else {
        "-".to_owned()
    }
}

/// A number as the tables show it.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[u64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                t: 10.0 * i as f64,
                rss_kib: *v,
                anon_kib: *v,
                cpu_secs: 0.0,
                load: 0.0,
            })
            .collect()
    }

    #[test]
    fn a_flat_series_after_warm_up_has_no_drift() {
        let s = series(&[10, 50, 100, 100, 101, 99, 100, 100]);
        let soak = soak(
            &s,
            |s| s.rss_kib as f64,
            Duration::from_secs(20),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(soak.warm, 100.0);
        assert_eq!(soak.last, 100.0);
        assert_eq!(soak.max, 101.0);
        assert!(soak.drift_pct.abs() < 1e-9);
    }

    #[test]
    fn a_growing_series_has_its_drift_and_slope() {
        let s = series(&[100, 110, 120, 130, 140]);
        let soak = soak(
            &s,
            |s| s.rss_kib as f64,
            Duration::ZERO,
            Duration::from_secs(0),
        )
        .unwrap();
        assert!((soak.drift_pct - 40.0).abs() < 1e-9);
        assert!((soak.slope_kib_per_hour - 3600.0).abs() < 1e-6);
    }

    #[test]
    fn median_and_quantiles_take_the_middle_and_the_rank() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
    }
}
