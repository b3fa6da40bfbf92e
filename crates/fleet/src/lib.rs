//! kyzlo's fleet: one process running many markets, many processes sharing the markets of
//! a PostgreSQL journal, one owner per wallet at any moment.
//!
//! An instance ([`Instance`]) is given the markets of its configuration (each a wallet, a
//! pair, a strategy and an exit plan). For each wallet it tries to take the wallet's lease
//! (`kyzlo-adapters-postgres`): when it gets it, it starts that wallet's markets, each a
//! [`Bot`](kyzlo_application::bot::Bot) on the journal fenced by the lease's epoch
//! (reconciled before any trade, as every start), sharing one latency breaker per
//! dependency and one request budget per provider with every other market of the
//! process; when the lease is lost (expired, taken, or the database unreachable past it)
//! it stops them at once and tries again later; when another instance holds it, it
//! tries again every third of a lease, so a dead instance's wallets are taken over within
//! a lease and a third of its last renewal. Instances configured alike thus share the
//! wallets out between them and take over each other's.
//!
//! Every market of the process follows the fleet's halt
//! ([`kyzlo_application::fleet::Fleet`] over [`PgFleet`](kyzlo_adapters_postgres::PgFleet)),
//! the instance is registered for `kyzlo fleet status`, and operators' force-exits queued
//! with `kyzlo fleet exit` are carried out by the instance holding the wallet
//! ([`commands`]). [`ops`] is the operator's side.
#![forbid(unsafe_code)]

pub mod commands;
pub mod launch;
pub mod ops;
mod runner;

pub use runner::{Instance, InstanceSettings, MarketPlan, Outcome};

use std::sync::Arc;
use std::time::Duration;

use kyzlo_application::ports::AlertSink;
use kyzlo_config::{Config, JournalBackend};
use kyzlo_live::journal::JournalError;

use crate::launch::{Common, Launcher, LiveLauncher, PaperLauncher};

/// A paper instance's run: its seed and how much market it trades.
#[derive(Debug, Clone, Copy)]
pub struct PaperRun {
    /// The paper seed (each market's is this plus its index).
    pub seed: u64,
    /// Market time to trade; the run stops at its end.
    pub duration: Duration,
}

/// Why an instance could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceError {
    /// `[[markets]]` needs the fleet journal.
    #[error("[[markets]] runs on the fleet's PostgreSQL journal: set journal.url")]
    NoDatabase,
    /// A market's keypair could not be read.
    #[error(transparent)]
    Config(#[from] kyzlo_config::ConfigError),
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Runs `config`'s markets as one fleet instance until `shutdown` (or, on `paper`, the
/// end of its market), alerts going to `alerts`.
///
/// # Errors
/// [`InstanceError`] before any market started.
pub async fn run_instance(
    config: &Config,
    paper: Option<PaperRun>,
    alerts: Arc<dyn AlertSink>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    clock: kyzlo_application::clock::Clock,
) -> Result<Outcome, InstanceError> {
    let JournalBackend::Postgres {
        url,
        lease,
        fleet_poll,
        fleet_unreachable,
    } = &config.journal
    else {
        return Err(InstanceError::NoDatabase);
    };
    let settings = InstanceSettings {
        owner: kyzlo_live::journal::owner_id(),
        lease: *lease,
        poll: *fleet_poll,
        unreachable: *fleet_unreachable,
        grace: Duration::from_secs(90),
        approval_key: config.api.approval_key.clone(),
    };
    if config.api.approval_key.is_none() {
        tracing::warn!(
            "no api.approval_key: this instance cannot check a fleet resume, so it answers one with a new fleet halt"
        );
    }
    let instance = Instance::open(url.expose(), ops::plans(config)?, settings).await?;
    let common = Common {
        config: config.clone(),
        alerts,
        metrics: Vec::new(),
        clock,
        dir: config.data_dir.clone(),
    };
    let mut shutdown = shutdown;
    let launcher: Arc<dyn Launcher> = match paper {
        Some(run) => {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mut outer = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(run.duration) => {}
                    _ = outer.wait_for(|stop| *stop) => {}
                }
                let _ = stop.send(true);
            });
            shutdown = stopped;
            Arc::new(PaperLauncher {
                common,
                seed: run.seed,
                faults: config.paper.faults.clone(),
                duration: run.duration,
            })
        }
        None => Arc::new(LiveLauncher { common }),
    };
    Ok(instance.run(launcher, shutdown).await)
}
