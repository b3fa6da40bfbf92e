//! The explorer: deterministic simulation testing of the whole bot. Each seed draws a
//! world ([`schedule::Schedule`]: a volatile market, a hostile cluster and network,
//! crashes, operator actions, failing journal writes), runs the real bot through it
//! ([`world`]) and judges the run with the invariant checker
//! ([`crate::invariants`]). A violation comes with its seed, a shrunk schedule (every
//! knob that is not needed to break the invariant turned off) and the one-line command
//! that replays it.

pub mod journal;
pub mod schedule;
pub mod store;
pub mod world;

use std::time::{Duration, Instant};

use crate::invariants::{Violation, check};
use schedule::{Knob, Schedule};
use world::RunStats;

/// One run's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The schedule run.
    pub schedule: Schedule,
    /// What it broke (empty: nothing).
    pub violations: Vec<Violation>,
    /// What it did.
    pub stats: RunStats,
}

/// Runs `schedule` and checks every invariant.
#[must_use]
pub fn verify(schedule: &Schedule) -> Verdict {
    let (evidence, stats) = world::run(schedule);
    Verdict {
        schedule: schedule.clone(),
        violations: check(&evidence),
        stats,
    }
}

/// Turns off every knob of `failing` that the violation named `invariant` does not need,
/// one at a time, keeping each removal after which the run still breaks it.
#[must_use]
pub fn shrink(failing: &Schedule, invariant: &str) -> Schedule {
    let mut current = failing.clone();
    loop {
        let mut changed = false;
        for knob in current.knobs_on() {
            let mut candidate = current.clone();
            candidate.turn_off(knob);
            if verify(&candidate)
                .violations
                .iter()
                .any(|v| v.name() == invariant)
            {
                current = candidate;
                changed = true;
            }
        }
        if !changed {
            return current;
        }
    }
}

/// What an exploration found.
#[derive(Debug, Clone, Default)]
pub struct Exploration {
    /// Runs made.
    pub runs: u64,
    /// Runs that broke an invariant, in seed order.
    pub failures: Vec<Verdict>,
    /// Totals over every run.
    pub totals: RunStats,
    /// Wall time.
    pub elapsed: Duration,
}

impl Exploration {
    /// Violations over every run.
    #[must_use]
    pub fn violations(&self) -> usize {
        self.failures.iter().map(|f| f.violations.len()).sum()
    }

    /// The report `kyzlo verify` prints: each violation with its seed and the command that
    /// replays it (the first `shrink_max` failures shrunk to the knobs their worst
    /// violation needs), the totals, and `N runs, M violations`.
    #[must_use]
    pub fn report(&self, shrink_max: usize, threads: usize) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (i, failure) in self.failures.iter().enumerate() {
            for v in &failure.violations {
                let _ = writeln!(out, "seed {}: {}: {v}", failure.schedule.seed, v.name());
            }
            let worst = failure
                .violations
                .iter()
                .min_by_key(|v| v.severity())
                .map_or("", |v| v.name());
            let replay = if i < shrink_max {
                let shrunk = shrink(&failure.schedule, worst);
                format!("  replay (shrunk to {worst}): {}", shrunk.replay_command())
            } else {
                format!("  replay: {}", failure.schedule.replay_command())
            };
            let _ = writeln!(out, "{replay}");
        }
        let t = self.totals;
        let _ = writeln!(
            out,
            "{} starts, {} crashes, {} intents, {} landings in {:.1} s on {threads} threads",
            t.starts,
            t.crashes,
            t.intents,
            t.landings,
            self.elapsed.as_secs_f64()
        );
        if t.cancels + t.nonce_crashes > 0 {
            let _ = writeln!(
                out,
                "on the durable nonce: {} cancels, {} crashes with an attempt on it unresolved",
                t.cancels, t.nonce_crashes
            );
        }
        let _ = writeln!(out, "{} runs, {} violations", self.runs, self.violations());
        out
    }
}

/// Runs seeds `seed .. seed + runs` with `without` turned off, on `threads` threads.
#[must_use]
pub fn explore(runs: u64, seed: u64, threads: usize, without: &[Knob]) -> Exploration {
    explore_in(runs, seed, threads, without, false)
}

/// [`explore`], in nonce mode when `durable_nonce` ([`Schedule::on_durable_nonce`]).
#[must_use]
pub fn explore_in(
    runs: u64,
    seed: u64,
    threads: usize,
    without: &[Knob],
    durable_nonce: bool,
) -> Exploration {
    let started = Instant::now();
    let threads = threads.clamp(1, 64) as u64;
    let chunk = runs.div_ceil(threads).max(1);
    let mut verdicts: Vec<(Vec<Verdict>, RunStats)> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * chunk;
                let end = ((t + 1) * chunk).min(runs);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    let mut totals = RunStats::default();
                    for i in start..end {
                        let mut schedule = Schedule::with_knobs_off(seed.wrapping_add(i), without);
                        if durable_nonce {
                            schedule = schedule.on_durable_nonce();
                        }
                        let verdict = verify(&schedule);
                        add(&mut totals, verdict.stats);
                        if !verdict.violations.is_empty() {
                            failures.push(verdict);
                        }
                    }
                    (failures, totals)
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(part) => verdicts.push(part),
                // A run that panics is a bug in the services or the simulator: surface it.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut out = Exploration {
        runs,
        ..Exploration::default()
    };
    for (failures, totals) in verdicts {
        out.failures.extend(failures);
        add(&mut out.totals, totals);
    }
    out.failures.sort_by_key(|f| f.schedule.seed);
    out.elapsed = started.elapsed();
    out
}

fn add(into: &mut RunStats, s: RunStats) {
    into.cancels += s.cancels;
    into.nonce_crashes += s.nonce_crashes;
    into.starts += s.starts;
    into.crashes += s.crashes;
    into.landings += s.landings;
    into.intents += s.intents;
}
