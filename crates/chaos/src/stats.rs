//! Aggregates over runs: per-policy distributions of realized loss, excess over the stop
//! and exit time, counts, and the mean breakdown of kyzlo's excess over the oracle, in
//! the JSON shape the CLI prints.

use std::time::Duration;

use serde::Serialize;

use crate::breakdown::{LossBreakdown, PARTS, shown};
use crate::runner::{PolicyRun, RunResult};

/// mean, p50, p95, p99, max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Distribution {
    pub mean: f64,
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    pub max: f64,
}

/// p50, p99, max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct TimeDistribution {
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    pub max: f64,
}

/// One policy over all runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct PolicyStats {
    /// Realised loss in percent of the entry.
    pub realized_loss_pct: Distribution,
    /// Realised loss minus the stop, in percentage points.
    pub excess_loss_pct: Distribution,
    /// Seconds from the stop trigger to closure.
    pub exit_time_s: TimeDistribution,
    /// Transactions sent per run.
    pub attempts_mean: f64,
    /// Fees per run, lamports.
    pub fees_lamports_mean: f64,
    /// Intents that landed more than once, over all runs.
    pub double_executions: u64,
    /// Exits not closed by their 30 s deadline, over all runs.
    pub unresolved_at_deadline: u64,
    /// Runs in which trading halted.
    pub halts: u64,
}

/// The whole result, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChaosSummary {
    /// Scenario name.
    pub scenario: String,
    /// Runs asked for.
    pub runs: u64,
    /// First seed.
    pub seed: u64,
    /// Runs in which the stop fired (the others are left out of the statistics).
    pub triggered: u64,
    /// Per policy.
    pub policies: Policies,
    /// Where kyzlo's excess over the oracle went: each part's mean over the runs in which
    /// the stop fired, in points of the position (see [`crate::breakdown`]).
    pub loss_breakdown: LossBreakdown,
}

/// The three policies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policies {
    /// Passive retry.
    pub naive: PolicyStats,
    /// The defensive executor.
    pub kyzlo: PolicyStats,
    /// The lower bound.
    pub oracle: PolicyStats,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn distribution(mut values: Vec<f64>) -> Distribution {
    if values.is_empty() {
        return Distribution::default();
    }
    values.sort_by(f64::total_cmp);
    Distribution {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        p50: percentile(&values, 0.50),
        p95: percentile(&values, 0.95),
        p99: percentile(&values, 0.99),
        max: values[values.len() - 1],
    }
}

fn times(mut values: Vec<f64>) -> TimeDistribution {
    values.sort_by(f64::total_cmp);
    TimeDistribution {
        p50: percentile(&values, 0.50),
        p99: percentile(&values, 0.99),
        max: values.last().copied().unwrap_or(0.0),
    }
}

fn policy(runs: &[&PolicyRun], stop_pct: f64) -> PolicyStats {
    let n = runs.len().max(1) as f64;
    PolicyStats {
        realized_loss_pct: distribution(runs.iter().map(|r| r.realized_loss_pct).collect()),
        excess_loss_pct: distribution(
            runs.iter()
                .map(|r| r.realized_loss_pct - stop_pct)
                .collect(),
        ),
        exit_time_s: times(runs.iter().map(|r| r.exit_time.as_secs_f64()).collect()),
        attempts_mean: runs.iter().map(|r| f64::from(r.attempts)).sum::<f64>() / n,
        fees_lamports_mean: runs.iter().map(|r| r.fees_lamports as f64).sum::<f64>() / n,
        double_executions: runs.iter().map(|r| u64::from(r.double_executions)).sum(),
        unresolved_at_deadline: runs
            .iter()
            .map(|r| u64::from(r.unresolved_at_deadline))
            .sum(),
        halts: runs.iter().filter(|r| r.halted).count() as u64,
    }
}

/// Summarises runs of a scenario whose stop is `stop_loss_bps`.
#[must_use]
pub fn summarize(
    scenario: &str,
    seed: u64,
    stop_loss_bps: u16,
    results: &[RunResult],
) -> ChaosSummary {
    let triggered: Vec<&RunResult> = results.iter().filter(|r| r.stop_at.is_some()).collect();
    let stop_pct = f64::from(stop_loss_bps) / 100.0;
    let pick = |f: fn(&RunResult) -> &PolicyRun| -> Vec<&PolicyRun> {
        triggered.iter().map(|r| f(r)).collect()
    };
    ChaosSummary {
        scenario: scenario.to_owned(),
        runs: results.len() as u64,
        seed,
        triggered: triggered.len() as u64,
        policies: Policies {
            naive: policy(&pick(|r| &r.naive), stop_pct),
            kyzlo: policy(&pick(|r| &r.kyzlo), stop_pct),
            oracle: policy(&pick(|r| &r.oracle), stop_pct),
        },
        loss_breakdown: LossBreakdown::mean(triggered.iter().map(|r| &r.breakdown)),
    }
}

/// The summary as an aligned text table.
#[must_use]
pub fn table(summary: &ChaosSummary) -> String {
    let mut out = format!(
        "scenario {} | runs {} (stop hit in {}) | seed {}\n",
        summary.scenario, summary.runs, summary.triggered, summary.seed
    );
    out.push_str(&format!(
        "{:<7} {:>27} {:>27} {:>21} {:>8} {:>10} {:>7} {:>10} {:>6}\n",
        "policy",
        "realized loss % mean/p50/p99/max",
        "excess % mean/p95/p99",
        "exit s p50/p99/max",
        "attempts",
        "fees lamp",
        "double",
        "unresolved",
        "halts"
    ));
    for (name, p) in [
        ("naive", &summary.policies.naive),
        ("kyzlo", &summary.policies.kyzlo),
        ("oracle", &summary.policies.oracle),
    ] {
        let l = p.realized_loss_pct;
        let e = p.excess_loss_pct;
        let t = p.exit_time_s;
        out.push_str(&format!(
            "{:<7} {:>27} {:>27} {:>21} {:>8.2} {:>10.0} {:>7} {:>10} {:>6}\n",
            name,
            format!("{:.2}/{:.2}/{:.2}/{:.2}", l.mean, l.p50, l.p99, l.max),
            format!("{:.2}/{:.2}/{:.2}", e.mean, e.p95, e.p99),
            format!("{:.1}/{:.1}/{:.1}", t.p50, t.p99, t.max),
            p.attempts_mean,
            p.fees_lamports_mean,
            p.double_executions,
            p.unresolved_at_deadline,
            p.halts
        ));
    }
    let b = &summary.loss_breakdown;
    out.push_str(&format!(
        "kyzlo's excess over the oracle, fees included, mean points: {} =",
        shown(b.total)
    ));
    for ((name, _), value) in PARTS.iter().zip(b.parts()) {
        out.push_str(&format!(" {name} {}", shown(value)));
    }
    out.push_str(&format!(" (residual {:+.1e})\n", b.residual));
    out
}

/// Exit times as durations, for tests.
#[must_use]
pub fn exit_time(d: &TimeDistribution) -> Duration {
    Duration::from_secs_f64(d.p99.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = distribution(v);
        assert_eq!((d.p50, d.p95, d.p99, d.max), (50.0, 95.0, 99.0, 100.0));
        assert!((d.mean - 50.5).abs() < 1e-9);
        assert_eq!(distribution(Vec::new()), Distribution::default());
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }
}
