//! [`PgStore`]: the explorer's durable store on PostgreSQL, one wallet per run, one lease
//! owner per instance. An instance takes the wallet's lease (waiting, by the database's
//! clock, for a killed holder's lease to expire), renews it while it lives, and journals
//! under its epoch; a killed instance never releases its lease and its journal handle goes
//! with it. At every takeover of a killed instance's wallet the store notes what it left
//! unsettled and checks that a write of the killed epoch is refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kyzlo_adapters_postgres::{Lease, PgDatabase, PgError, PgJournal};
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, FENCED_CODE, IntentAction, IntentHistory, IntentOutcome,
    IntentRecord, Journal,
};
use kyzlo_chaos::explore::store::{DurableStore, Ending};
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{ErrorClass, IntentId};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::blocking::{Blocking, block};
use super::read;

/// The market every run journals.
pub const MARKET: &str = "SOL/USDC";

/// One start of an instance, as the store saw it.
#[derive(Debug, Clone, Default)]
pub struct Takeover {
    /// The instance's lease epoch.
    pub epoch: i64,
    /// The previous instance's epoch and how it ended (`None` for the first).
    pub after: Option<(i64, Ending)>,
    /// Exit intents a killed predecessor left unsettled (read before this instance ran).
    pub unsettled_exits: Vec<IntentId>,
    /// How many of those had a transaction journaled (signed; it may still land).
    pub exits_with_attempts: usize,
    /// Writes of the killed predecessor's epoch tried after the takeover.
    pub stale_writes: u32,
    /// How many of them the database refused as fenced.
    pub stale_refused: u32,
    /// Real time waited for the wallet's lease.
    pub waited: Duration,
    /// Claims of the wallet the database refused first (its lease still held).
    pub refused_claims: u32,
}

struct Live {
    lease: Lease,
    heartbeat: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    current: Option<Live>,
    last: Option<(Lease, Ending)>,
    takeovers: Vec<Takeover>,
    leases_lost: u32,
}

/// The explorer's store on PostgreSQL (see the module docs).
pub struct PgStore {
    db: PgDatabase,
    reader: Arc<Client>,
    runtime: Handle,
    wallet: String,
    ttl: Duration,
    state: Mutex<State>,
}

impl PgStore {
    /// A store on `wallet` (not used before) of `db`, its calls run on `runtime`; leases
    /// last `ttl`; `reader` reads the tables back for the checker.
    pub fn new(
        db: PgDatabase,
        reader: Arc<Client>,
        runtime: Handle,
        wallet: String,
        ttl: Duration,
    ) -> Self {
        Self {
            db,
            reader,
            runtime,
            wallet,
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every instance's start, in order.
    pub fn takeovers(&self) -> Vec<Takeover> {
        self.state(|s| s.takeovers.clone())
    }

    /// Leases lost while their instance lived (a renewal refused): none, unless the
    /// machine stalled longer than a lease.
    pub fn leases_lost(&self) -> u32 {
        self.state(|s| s.leases_lost)
    }

    /// The exit history as the journal port reads it (newest first).
    pub fn exit_history(&self) -> Vec<IntentHistory> {
        let lease = self.state(|s| s.last.as_ref().map(|(l, _)| l.clone()));
        let lease = lease.unwrap_or_else(|| panic!("no instance ran"));
        let journal = self.db.journal(&lease, MARKET);
        block(&self.runtime, async move {
            journal.exit_history(usize::MAX).await
        })
        .unwrap_or_else(|e| panic!("read the exit history: {e}"))
    }

    /// What a killed instance left unsettled, read through the new instance's journal,
    /// and its epoch's writes tried again: each must be refused as fenced.
    fn after_kill(&self, killed: &Lease, journal: &PgJournal) -> Takeover {
        let (journal, stale) = (journal.clone(), self.db.journal(killed, MARKET));
        let (snapshot, refusals) = block(&self.runtime, async move {
            let snapshot = journal.load().await;
            let unsettled_exit = snapshot.as_ref().ok().and_then(|s| {
                s.unresolved
                    .iter()
                    .find(|u| matches!(u.intent.action, IntentAction::Exit(_)))
                    .map(|u| u.intent.intent)
            });
            let mut refusals = vec![stale.record_trading_state(&TradingState::Active).await];
            if let Some(intent) = unsettled_exit {
                refusals.push(
                    stale
                        .settle_intent(intent, &IntentOutcome::Failed, None)
                        .await,
                );
            }
            (snapshot, refusals)
        });
        let snapshot = snapshot.unwrap_or_else(|e| panic!("load at takeover: {e}"));
        let exits: Vec<_> = snapshot
            .unresolved
            .iter()
            .filter(|u| matches!(u.intent.action, IntentAction::Exit(_)))
            .collect();
        Takeover {
            after: Some((killed.epoch, Ending::Killed)),
            unsettled_exits: exits.iter().map(|u| u.intent.intent).collect(),
            exits_with_attempts: exits.iter().filter(|u| !u.attempts.is_empty()).count(),
            stale_writes: u32::try_from(refusals.len()).unwrap_or(u32::MAX),
            stale_refused: u32::try_from(
                refusals
                    .iter()
                    .filter(|r| {
                        r.as_ref().is_err_and(|e| {
                            e.class == ErrorClass::Unknown && e.code == Some(FENCED_CODE)
                        })
                    })
                    .count(),
            )
            .unwrap_or(u32::MAX),
            ..Takeover::default()
        }
    }
}

/// Takes `wallet` for `owner`, waiting (by the database's clock) for the holder's lease to
/// expire; with the number of claims refused first.
async fn take_when_free(
    db: PgDatabase,
    wallet: String,
    owner: String,
    ttl: Duration,
) -> Result<(Lease, u32), PgError> {
    let mut refused = 0;
    loop {
        if let Some(lease) = db.acquire(&wallet, &owner, ttl).await? {
            return Ok((lease, refused));
        }
        refused += 1;
        let left = db
            .leases()
            .await?
            .iter()
            .find(|v| v.lease.wallet == wallet)
            .map_or(0, |v| v.expires_in_ms.max(0));
        let left = u64::try_from(left).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(left + 1)).await;
    }
}

/// Renews `lease` five times a lease; a refusal (the lease was lost) is flagged.
async fn heartbeat(db: PgDatabase, lease: Lease, ttl: Duration, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(ttl / 5).await;
        if let Err(e) = db.renew(&lease, ttl).await
            && e.is_fenced()
        {
            lost.store(true, Ordering::Relaxed);
            return;
        }
    }
}

impl DurableStore for PgStore {
    fn instance(&self) -> Arc<dyn Journal> {
        let (n, last) = self.state(|s| {
            assert!(
                s.current.is_none(),
                "an instance started before the last ended"
            );
            (s.takeovers.len() + 1, s.last.clone())
        });
        let owner = format!("{}-instance-{n}", self.wallet);
        let started = Instant::now();
        let (lease, refused_claims) = block(
            &self.runtime,
            take_when_free(self.db.clone(), self.wallet.clone(), owner, self.ttl),
        )
        .unwrap_or_else(|e| panic!("take the wallet's lease: {e}"));
        let waited = started.elapsed();
        let journal = self.db.journal(&lease, MARKET);
        let mut takeover = match &last {
            Some((killed, Ending::Killed)) => self.after_kill(killed, &journal),
            Some((stopped, how)) => Takeover {
                after: Some((stopped.epoch, *how)),
                ..Takeover::default()
            },
            None => Takeover::default(),
        };
        takeover.epoch = lease.epoch;
        takeover.waited = waited;
        takeover.refused_claims = refused_claims;
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.runtime.spawn(heartbeat(
            self.db.clone(),
            lease.clone(),
            self.ttl,
            lost.clone(),
        ));
        self.state(|s| {
            s.takeovers.push(takeover);
            s.current = Some(Live {
                lease,
                heartbeat,
                lost,
            });
        });
        Arc::new(Blocking {
            journal,
            runtime: self.runtime.clone(),
        })
    }

    fn ended(&self, how: Ending) {
        let live = self.state(|s| s.current.take());
        let live = live.unwrap_or_else(|| panic!("an instance ended that never started"));
        // A killed process renews nothing more; a clean stop also gives the wallet up.
        live.heartbeat.abort();
        if how == Ending::Stopped {
            let (db, lease) = (self.db.clone(), live.lease.clone());
            block(&self.runtime, async move { db.release(&lease).await })
                .unwrap_or_else(|e| panic!("release the lease: {e}"));
        }
        self.state(|s| {
            if live.lost.load(Ordering::Relaxed) {
                s.leases_lost += 1;
            }
            s.last = Some((live.lease, how));
        });
    }

    fn intents(&self) -> Vec<(IntentRecord, Option<IntentOutcome>)> {
        let (reader, wallet) = (self.reader.clone(), self.wallet.clone());
        block(&self.runtime, async move {
            read::intents(&reader, &wallet, MARKET).await
        })
    }

    fn attempts(&self) -> Vec<(AttemptRecord, Option<AttemptOutcome>)> {
        let (reader, wallet) = (self.reader.clone(), self.wallet.clone());
        block(&self.runtime, async move {
            read::attempts(&reader, &wallet, MARKET).await
        })
    }
}
