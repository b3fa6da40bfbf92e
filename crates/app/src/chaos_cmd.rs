//! `kyzlo chaos`: runs a scenario's seeds under the three policies and prints the table,
//! or JSON, and writes the HTML report.

use kyzlo_chaos::scenario;
use kyzlo_chaos::stats::{summarize, table};

use crate::cli::ChaosArgs;
use crate::error::AppError;

/// Runs `kyzlo chaos`; returns what to print.
///
/// # Errors
/// [`AppError::Usage`] for an unknown scenario or bad arguments; [`AppError::Io`] when
/// the report cannot be written.
pub fn run(args: &ChaosArgs) -> Result<String, AppError> {
    let mut scenario =
        scenario::load(&args.scenario).map_err(|e| AppError::Usage(e.to_string()))?;
    scenario.durable_nonce = args.nonce;
    if args.runs == 0 || args.runs > 10_000_000 {
        return Err(AppError::Usage(format!(
            "--runs {}: expected 1 to 10,000,000",
            args.runs
        )));
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = std::time::Instant::now();
    let (results, trace) = kyzlo_chaos::run_many(&scenario, args.runs, args.seed, threads);
    let elapsed = started.elapsed();
    let summary = summarize(&scenario.name, args.seed, scenario.stop_loss_bps, &results);
    if summary.triggered == 0 {
        return Err(AppError::NothingMeasured(format!(
            "the {:.1}% stop was hit in none of the {} runs within the {} s horizon: nothing to compare. Lower stop_loss_bps, lengthen horizon_s, or replay a stretch that falls (from_ts_ms)",
            f64::from(scenario.stop_loss_bps) / 100.0,
            args.runs,
            scenario.horizon.as_secs()
        )));
    }
    if let Some(path) = &args.report {
        let html = kyzlo_chaos::report::html(
            &summary,
            &results,
            trace.as_ref(),
            scenario.horizon,
            scenario.stop_loss_bps,
        );
        std::fs::write(path, html).map_err(|source| AppError::Io {
            path: path.clone(),
            source,
        })?;
    }
    if args.json {
        serde_json::to_string(&summary).map_err(|e| AppError::Startup(e.to_string()))
    } else {
        Ok(format!(
            "{}\n{}{} runs in {:.1} s on {threads} threads{}\n",
            scenario.description,
            table(&summary),
            args.runs,
            elapsed.as_secs_f64(),
            args.report
                .as_ref()
                .map(|p| format!("; report: {}", p.display()))
                .unwrap_or_default()
        ))
    }
}
