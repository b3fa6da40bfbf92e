//! kyzlo's chaos simulator: thousands of seeded runs of a scenario (a crash and a fault
//! schedule), each under three exit policies on the same path and schedule: the seeds'
//! naive passive retry, kyzlo's real defensive services, and an oracle lower bound.
#![forbid(unsafe_code)]

pub mod breakdown;
pub mod explore;
pub mod invariants;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;

use runner::{RunResult, RunTrace, run_one};
use scenario::Scenario;

/// Runs `runs` seeds starting at `seed` on `threads` threads (results in seed order, so
/// the output is the same whatever the thread count). Returns the results and the trace
/// of the first run whose stop fired.
#[must_use]
pub fn run_many(
    scenario: &Scenario,
    runs: u64,
    seed: u64,
    threads: usize,
) -> (Vec<RunResult>, Option<RunTrace>) {
    let threads = threads.clamp(1, 64) as u64;
    let chunk = runs.div_ceil(threads).max(1);
    let mut results: Vec<RunResult> = Vec::with_capacity(usize::try_from(runs).unwrap_or(0));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * chunk;
                let end = ((t + 1) * chunk).min(runs);
                scope.spawn(move || {
                    (start..end)
                        .map(|i| run_one(scenario, seed.wrapping_add(i), false).0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(part) => results.extend(part),
                // A run that panics is a bug in the services or the simulator: surface it.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let trace = results
        .iter()
        .find(|r| r.stop_at.is_some())
        .and_then(|r| run_one(scenario, r.seed, true).1);
    (results, trace)
}
