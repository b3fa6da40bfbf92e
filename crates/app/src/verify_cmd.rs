//! `kyzlo verify`: the explorer. Runs seeded adversarial worlds with the real bot, prints
//! every violation with its seed and a one-line replay command (after shrinking the
//! schedule to the knobs the violation needs), and ends with `N runs, M violations`.

use std::fmt::Write as _;

use kyzlo_chaos::explore::explore_in;
use kyzlo_chaos::explore::schedule::Knob;

use crate::cli::VerifyArgs;
use crate::error::AppError;

/// Runs `kyzlo verify`; returns the report, or [`AppError::Failed`] with it when any
/// invariant was broken.
///
/// # Errors
/// [`AppError::Usage`] for bad arguments; [`AppError::Failed`] for violations.
pub fn run(args: &VerifyArgs) -> Result<String, AppError> {
    if args.runs == 0 || args.runs > 100_000_000 {
        return Err(AppError::Usage(format!(
            "--runs {}: expected 1 to 100,000,000",
            args.runs
        )));
    }
    let without = args
        .without
        .iter()
        .filter(|k| !k.is_empty())
        .map(|k| k.parse::<Knob>().map_err(AppError::Usage))
        .collect::<Result<Vec<_>, _>>()?;
    if args.explain {
        let mut schedule =
            kyzlo_chaos::explore::schedule::Schedule::with_knobs_off(args.seed, &without);
        if args.nonce {
            schedule = schedule.on_durable_nonce();
        }
        let (evidence, _) = kyzlo_chaos::explore::world::run(&schedule);
        let mut out = format!("{schedule:#?}\n{}", evidence.timeline());
        for v in kyzlo_chaos::invariants::check(&evidence) {
            let _ = writeln!(out, "violation {}: {v}", v.name());
        }
        return Ok(out);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let found = explore_in(args.runs, args.seed, threads, &without, args.nonce);
    let shrink_max = if args.no_shrink { 0 } else { args.shrink_max };
    let report = found.report(shrink_max, threads);
    if found.violations() > 0 {
        Err(AppError::Failed(report))
    } else {
        Ok(report)
    }
}
