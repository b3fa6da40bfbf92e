//! The journal a bot runs on, chosen from `[journal]`: the data folder's SQLite file, or
//! a PostgreSQL database shared by a fleet, where the wallet is held under a lease that a
//! heartbeat renews every third of its duration.
//!
//! A lease that is lost (the database refused a renewal: it expired or another instance
//! took it) or that could not be renewed before it would expire stops the bot the way a
//! SIGTERM does: [`OpenJournal::stop_on_loss`] sends `true` on the bot's shutdown channel.
//! Entries stop and running exits are let finish, but their journal writes are refused by
//! the database from the moment the lease is gone, and nothing is sent that is not
//! journaled first: that refusal is the fencing guarantee. [`OpenJournal::finish`] then
//! reports the loss as an error, or releases the lease after a clean stop.

mod elsewhere;
mod lease;

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_journal::{DataDir, DataDirError};
use kyzlo_adapters_postgres::{PgDatabase, PgError};
use kyzlo_application::journal::Journal;
use kyzlo_config::{Config, JournalBackend};
use tokio::runtime::Runtime;

pub use elsewhere::{Elsewhere, JOURNAL_CALL_LIMIT, bridged, bridged_within};
pub use lease::{Heartbeat, LeaseLoss, acquire, owner_id};

/// At most this many pooled connections to the PostgreSQL journal per instance.
pub const MAX_CONNECTIONS: usize = 4;

/// Why the journal could not be opened, or why the run lost it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The data folder's SQLite journal could not be opened.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The journal's own runtime could not be started.
    #[error("journal runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The PostgreSQL journal could not be reached, migrated or read (its errors never
    /// hold the URL's password).
    #[error("journal database (journal.url): {0}")]
    Database(#[source] PgError),
    /// Another instance holds the wallet's lease.
    #[error(
        "wallet {wallet} is held by {owner} (lease epoch {epoch}), whose lease expires in {expires_in_s:.1} s unless it is renewed: stop that instance first, or use another wallet"
    )]
    Held {
        /// The wallet.
        wallet: String,
        /// The instance holding it.
        owner: String,
        /// Its lease's epoch.
        epoch: i64,
        /// Seconds until its lease expires by the database's clock.
        expires_in_s: f64,
    },
    /// The lease was lost while the bot ran: it was stopped.
    #[error(
        "wallet {wallet}: the journal lease (epoch {epoch}) was lost: {loss}; the bot was stopped and the database refuses this instance's writes"
    )]
    LeaseLost {
        /// The wallet.
        wallet: String,
        /// The lost lease's epoch.
        epoch: i64,
        /// How it was lost.
        loss: LeaseLoss,
    },
}

/// The journal a bot runs on and, on PostgreSQL, the lease it holds.
pub struct OpenJournal {
    /// The journal.
    pub journal: Arc<dyn Journal>,
    fleet: Option<Fleet>,
}

/// The PostgreSQL side: its runtime, the database and the heartbeat of the held lease.
struct Fleet {
    runtime: Option<Runtime>,
    db: PgDatabase,
    heartbeat: Heartbeat,
}

impl OpenJournal {
    /// The journal of `config` for `wallet`: the SQLite file of `dir`, or the PostgreSQL
    /// database of `journal.url`, the wallet's lease acquired (owner [`owner_id`]) and its
    /// heartbeat started.
    ///
    /// # Errors
    /// [`JournalError::DataDir`] for SQLite; [`JournalError::Database`] when PostgreSQL
    /// cannot be reached; [`JournalError::Held`] when another live instance holds the
    /// wallet.
    pub async fn open(
        config: &Config,
        dir: &DataDir,
        wallet: &str,
    ) -> Result<OpenJournal, JournalError> {
        let (url, ttl) = match &config.journal {
            JournalBackend::Sqlite => {
                return Ok(OpenJournal {
                    journal: Arc::new(dir.open_journal()?),
                    fleet: None,
                });
            }
            JournalBackend::Postgres { url, lease, .. } => (url.expose().to_owned(), *lease),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kyzlo-journal")
            .enable_all()
            .build()
            .map_err(JournalError::Runtime)?;
        let (wallet, market) = (wallet.to_owned(), market(config));
        let opened = runtime
            .spawn(async move {
                let db = PgDatabase::connect(&url, MAX_CONNECTIONS)
                    .await
                    .map_err(JournalError::Database)?;
                let lease = lease::acquire(&db, &wallet, &owner_id(), ttl).await?;
                let journal = db.journal(&lease, &market);
                let heartbeat = Heartbeat::start(db.clone(), lease, ttl);
                Ok::<_, JournalError>((db, journal, heartbeat))
            })
            .await;
        let (db, journal, heartbeat) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                runtime.shutdown_background();
                return Err(e);
            }
            Err(e) => {
                runtime.shutdown_background();
                return Err(JournalError::Runtime(std::io::Error::other(e)));
            }
        };
        tracing::info!(
            wallet = %heartbeat.lease().wallet,
            owner = %heartbeat.lease().owner,
            epoch = heartbeat.lease().epoch,
            lease_s = ttl.as_secs(),
            "journal on PostgreSQL: wallet lease acquired"
        );
        Ok(OpenJournal {
            journal: Arc::new(Elsewhere {
                journal: Arc::new(journal),
                handle: runtime.handle().clone(),
            }),
            fleet: Some(Fleet {
                runtime: Some(runtime),
                db,
                heartbeat,
            }),
        })
    }

    /// Sends `true` on `stop` (the bot's shutdown) as soon as the lease is lost. Does
    /// nothing on SQLite.
    pub fn stop_on_loss(&self, stop: tokio::sync::watch::Sender<bool>) {
        if let Some(fleet) = &self.fleet {
            let mut lost = fleet.heartbeat.subscribe();
            if let Some(runtime) = &fleet.runtime {
                runtime.spawn(async move {
                    if lost.wait_for(Option::is_some).await.is_ok() {
                        let _ = stop.send(true);
                    }
                });
            }
        }
    }

    /// Ends the run's hold on the journal: stops the heartbeat and releases the lease.
    ///
    /// # Errors
    /// [`JournalError::LeaseLost`] when the lease was lost during the run (nothing is
    /// released: it is no longer this instance's).
    pub async fn finish(mut self) -> Result<(), JournalError> {
        let Some(mut fleet) = self.fleet.take() else {
            return Ok(());
        };
        let Some(runtime) = fleet.runtime.take() else {
            return Ok(());
        };
        let (db, heartbeat) = (fleet.db.clone(), fleet.heartbeat);
        let released = runtime
            .spawn(async move {
                let lease = heartbeat.lease().clone();
                if let Some(loss) = heartbeat.stop().await {
                    return Err(JournalError::LeaseLost {
                        wallet: lease.wallet,
                        epoch: lease.epoch,
                        loss,
                    });
                }
                match db.release(&lease).await {
                    Ok(()) => tracing::info!(wallet = %lease.wallet, "wallet lease released"),
                    // The lease expires by itself: another instance waits at most its span.
                    Err(e) => tracing::warn!(wallet = %lease.wallet, error = %e, "the wallet lease could not be released; it expires by itself"),
                }
                Ok(())
            })
            .await;
        runtime.shutdown_background();
        released.unwrap_or_else(|e| Err(JournalError::Runtime(std::io::Error::other(e))))
    }
}

impl Drop for OpenJournal {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's task would panic.
        if let Some(runtime) = self.fleet.as_mut().and_then(|f| f.runtime.take()) {
            runtime.shutdown_background();
        }
    }
}

/// The market a journal's rows are keyed by, with the wallet: the pair's two mints.
#[must_use]
pub fn market(config: &Config) -> String {
    format!("{}/{}", config.pair.base_mint, config.pair.quote_mint)
}

/// The wallet id a paper run leases: paper trades no real wallet, so its id is the data
/// folder as configured (`paper:kyzlo-data`), shared by every instance configured alike.
#[must_use]
pub fn paper_wallet(config: &Config) -> String {
    format!("paper:{}", config.data_dir.display())
}

/// How often a lease of `lease` is renewed: every third of it, so two renewals may fail
/// before it would expire.
#[must_use]
pub fn renewal_interval(lease: Duration) -> Duration {
    lease / 3
}

/// The wallet id a live run leases: the signer's address in base 58.
#[must_use]
pub fn live_wallet(wallet: kyzlo_application::ports::WalletAddress) -> String {
    kyzlo_adapters_solana::Pubkey::new_from_array(wallet.0).to_string()
}
