//! Many markets in one process, over the fleet's PostgreSQL journal (`[[markets]]` with
//! `journal.url`): `kyzlo paper` and `kyzlo run` hand over to [`kyzlo_fleet`] here; and
//! the operator's `kyzlo fleet` commands.

use std::sync::Arc;

use kyzlo_adapters_telemetry::{PrometheusMetrics, RecentAlerts};
use kyzlo_config::Config;
use kyzlo_fleet::ops::{FleetError, Request};

use crate::cli::{FleetCommand, PaperArgs};
use crate::error::AppError;

/// Whether `config` runs as a fleet instance (its markets listed).
pub fn is_fleet(config: &Config) -> bool {
    config.markets.iter().any(|m| m.listed)
}

/// Runs the configured markets until Ctrl-C (or, on paper, the end of its market).
pub fn run(config: &Config, paper: Option<&PaperArgs>) -> Result<String, AppError> {
    if let Some(args) = paper {
        let unsupported = [
            (args.prices.is_some(), "--prices"),
            (args.faults.is_some(), "--faults"),
            (args.fresh, "--fresh"),
            (args.report.is_some(), "--report"),
            (args.json, "--json"),
        ];
        if let Some((_, flag)) = unsupported.iter().find(|(given, _)| *given) {
            return Err(AppError::Usage(format!(
                "{flag} is for one market's paper run; with [[markets]] each market trades its own generated market ([paper] seed plus its index) with [paper] faults"
            )));
        }
    }
    let mut builder = match paper {
        Some(_) => tokio::runtime::Builder::new_current_thread(),
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .start_paused(paper.is_some())
        .enable_all()
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    runtime.block_on(async {
        kyzlo_live::signals::catch();
        let (alerts, worker) = crate::alerts::alert_sink(
            config,
            PrometheusMetrics::new().alert_counters(),
            Arc::new(RecentAlerts::default()),
            None,
        )?;
        let worker = tokio::spawn(worker.run());
        let run = paper.map(|args| kyzlo_fleet::PaperRun {
            seed: args.seed.unwrap_or(config.paper.seed),
            duration: args.duration.unwrap_or(config.paper.duration),
        });
        if let Some(speed) = paper.map(|args| args.speed).filter(|s| *s > 0.0) {
            tokio::spawn(crate::paper::pace(speed));
        }
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::live::wait_for_signal().await;
            say!("stopping: no new trades; letting running exits finish");
            let _ = stop.send(true);
        });
        say!(
            "kyzlo fleet instance: {} market(s) (Ctrl-C to stop)",
            config.markets.len()
        );
        if let Some(listen) = config.api.listen {
            say!("note: with [[markets]] no operator API is served (not on {listen}): use `kyzlo fleet status|halt|resume|exit`");
        }
        let clock = kyzlo_live::unix_clock();
        let outcome = kyzlo_fleet::run_instance(config, run, alerts, shutdown, clock)
            .await
            .map_err(|e| AppError::Startup(e.to_string()))?;
        worker.abort();
        Ok(outcome.render())
    })
}

/// Runs a `kyzlo fleet` command.
pub fn command(config: &Config, command: FleetCommand) -> Result<String, AppError> {
    let request = match command {
        FleetCommand::Status => Request::Status,
        FleetCommand::Halt { reason } => Request::Halt { reason },
        FleetCommand::Resume { approval_key } => Request::Resume { key: approval_key },
        FleetCommand::Exit {
            wallet,
            market,
            position,
        } => Request::Exit {
            wallet,
            market,
            position,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    let by = format!("operator@{}", kyzlo_live::journal::owner_id());
    runtime
        .block_on(kyzlo_fleet::ops::run(config, request, &by))
        .map_err(|e| match e {
            FleetError::Refused(text) => AppError::Failed(format!("{text}\n")),
            other => AppError::Remote(other.to_string()),
        })
}
