//! A wallet's lease in the PostgreSQL journal: acquired at start (or refused, naming the
//! holder), renewed by a [`Heartbeat`] every third of its duration, and reported lost when
//! the database refuses a renewal or none succeeds before the lease would expire.

use std::time::Duration;

use kyzlo_adapters_postgres::{Lease, PgDatabase, PgError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{JournalError, renewal_interval};

/// How a lease was lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// The database refused the renewal: the lease had expired or another instance took
    /// the wallet.
    #[error("the database refused its renewal (it expired or another instance took the wallet)")]
    Fenced,
    /// No renewal succeeded before the lease would expire.
    #[error("no renewal succeeded within the lease's {lease_s} s (last error: {last_error})")]
    Unreachable {
        /// The lease's duration, in seconds.
        lease_s: u64,
        /// The last renewal's error (the password masked out).
        last_error: String,
    },
}

/// This process as a lease owner: host name, process id and a random suffix, so that a
/// restarted process never passes for its predecessor.
#[must_use]
pub fn owner_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    // `RandomState` is seeded from the operating system's randomness per process.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        hasher.finish() & 0xffff_ffff
    )
}

/// Acquires `wallet` for `owner`, or says who holds it and for how long.
///
/// # Errors
/// [`JournalError::Database`]; [`JournalError::Held`] naming the holder.
pub async fn acquire(
    db: &PgDatabase,
    wallet: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Lease, JournalError> {
    if let Some(lease) = db
        .acquire(wallet, owner, ttl)
        .await
        .map_err(JournalError::Database)?
    {
        return Ok(lease);
    }
    let leases = db.leases().await.map_err(JournalError::Database)?;
    let held = leases.into_iter().find(|l| l.lease.wallet == wallet);
    Err(match held {
        Some(view) => JournalError::Held {
            wallet: wallet.to_owned(),
            owner: view.lease.owner,
            epoch: view.lease.epoch,
            expires_in_s: view.expires_in_ms.max(0) as f64 / 1_000.0,
        },
        // Released between the two statements: the caller may simply start again.
        None => JournalError::Held {
            wallet: wallet.to_owned(),
            owner: "an instance that has just released it".to_owned(),
            epoch: 0,
            expires_in_s: 0.0,
        },
    })
}

/// The task renewing a held lease every third of `ttl`; it publishes the loss, if any.
pub struct Heartbeat {
    lease: Lease,
    lost: watch::Receiver<Option<LeaseLoss>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts renewing `lease` (just acquired) on the current runtime.
    #[must_use]
    pub fn start(db: PgDatabase, lease: Lease, ttl: Duration) -> Self {
        let (tx, lost) = watch::channel(None);
        let task = tokio::spawn(beat(db, lease.clone(), ttl, tx));
        Self { lease, lost, task }
    }

    /// The lease held.
    #[must_use]
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The loss, `None` until the lease is lost.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Option<LeaseLoss>> {
        self.lost.clone()
    }

    /// Stops renewing; the loss, if the lease was lost before.
    pub async fn stop(mut self) -> Option<LeaseLoss> {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.lost.borrow().clone()
    }
}

impl Drop for Heartbeat {
    /// A heartbeat dropped without [`Heartbeat::stop`] (its owner's task died) renews no
    /// more: the lease expires and another instance can take the wallet.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews `lease` until it is lost. The lease's end is counted, on this side, from before
/// the last successful renewal was sent, so it is never later than the database's.
async fn beat(db: PgDatabase, lease: Lease, ttl: Duration, lost: watch::Sender<Option<LeaseLoss>>) {
    let every = renewal_interval(ttl);
    let mut expires = Instant::now() + ttl;
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        let loss = match tokio::time::timeout_at(expires, db.renew(&lease, ttl)).await {
            Ok(Ok(())) => {
                expires = sent + ttl;
                continue;
            }
            Ok(Err(PgError::Fenced { .. })) => LeaseLoss::Fenced,
            Ok(Err(e)) if Instant::now() + every < expires => {
                tracing::warn!(wallet = %lease.wallet, error = %e, "wallet lease renewal failed; retrying before it expires");
                continue;
            }
            Ok(Err(e)) => LeaseLoss::Unreachable {
                lease_s: ttl.as_secs(),
                last_error: e.to_string(),
            },
            Err(_) => LeaseLoss::Unreachable {
                lease_s: ttl.as_secs(),
                last_error: "the renewal did not answer in time".to_owned(),
            },
        };
        tracing::error!(wallet = %lease.wallet, epoch = lease.epoch, %loss, "wallet lease lost: stopping the bot");
        let _ = lost.send(Some(loss));
        return;
    }
}
