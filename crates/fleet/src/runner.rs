//! [`Instance`]: the markets of one process, each wallet's run under its lease.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kyzlo_adapters_postgres::{PgDatabase, PgFleet};
use kyzlo_application::bot::{Bot, SharedDependencies};
use kyzlo_application::control::ApprovalKey;
use kyzlo_application::fleet::{Fleet, FleetSettings};
use kyzlo_application::journal::Journal;
use kyzlo_application::metrics::MetricsSummary;
use kyzlo_live::journal::{
    Elsewhere, Heartbeat, JournalError, bridged, bridged_within, renewal_interval,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::commands;
use crate::launch::Launcher;

/// One market as an instance runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketPlan {
    /// Its index in the configuration's markets.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// The wallet it trades from (the lease's key).
    pub wallet: String,
    /// Its key in the journal, with the wallet (the pair's mints).
    pub market: String,
}

/// How an instance runs its markets.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// This instance's owner id in the leases.
    pub owner: String,
    /// How long a lease lasts unrenewed (renewed every third).
    pub lease: Duration,
    /// How often the fleet's halt record and the command queue are re-read besides
    /// what LISTEN/NOTIFY pushes.
    pub poll: Duration,
    /// How long the database may be unreachable before the markets go ReduceOnly.
    pub unreachable: Duration,
    /// How long a stopping market's running exits may take.
    pub grace: Duration,
    /// The operator's approval key (resumes, and checking the fleet's).
    pub approval_key: Option<ApprovalKey>,
}

/// How long one call to the coordination tables may take (real time).
pub(crate) const DB_CALL: Duration = Duration::from_secs(10);

/// What the markets did while this instance held them.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per market name: its bot's totals over its last run here.
    pub totals: BTreeMap<String, MetricsSummary>,
    /// Per market name: positions open when it last stopped.
    pub open_positions: BTreeMap<String, usize>,
    /// Leases lost while running.
    pub leases_lost: u32,
}

impl Outcome {
    /// One line per market this instance ran, and the leases lost.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, t) in &self.totals {
            out.push_str(&format!(
                "{name}: {} entries, {} exits closed, {} failed, {} past the deadline; {} open positions\n",
                t.entries_filled,
                t.exits_first_attempt + t.exits_required_retry,
                t.exits_failed,
                t.exits_deadline_exceeded,
                self.open_positions.get(name).copied().unwrap_or(0),
            ));
        }
        if self.totals.is_empty() {
            out.push_str("no market ran here (every wallet was held by another instance)\n");
        }
        if self.leases_lost > 0 {
            out.push_str(&format!(
                "wallet leases lost while running: {}\n",
                self.leases_lost
            ));
        }
        out
    }
}

/// The markets of one process over the fleet's database (see the crate docs).
pub struct Instance {
    /// The database's own runtime (real time, whatever the bots run on).
    runtime: Option<Runtime>,
    /// The journals' pool.
    db: PgDatabase,
    /// A small pool of its own for the leases, the halt record, the registry and the
    /// commands, so that busy journals never starve a renewal.
    coord: PgDatabase,
    settings: InstanceSettings,
    plans: Vec<MarketPlan>,
    held: watch::Sender<BTreeSet<String>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's task would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the wallets' tasks share.
struct Shared {
    db: PgDatabase,
    coord: PgDatabase,
    handle: Handle,
    settings: InstanceSettings,
    launcher: Arc<dyn Launcher>,
    fleet: Arc<Fleet>,
    dependencies: Mutex<Option<SharedDependencies>>,
    operators: commands::Operators,
    held: watch::Sender<BTreeSet<String>>,
    outcome: Mutex<Outcome>,
}

impl Instance {
    /// Connects to the fleet's database at `url` (migrating it) on a runtime of its own.
    ///
    /// # Errors
    /// [`JournalError::Runtime`], [`JournalError::Database`].
    pub async fn open(
        url: &str,
        plans: Vec<MarketPlan>,
        settings: InstanceSettings,
    ) -> Result<Self, JournalError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kyzlo-fleet-db")
            .enable_all()
            .build()
            .map_err(JournalError::Runtime)?;
        let url = url.to_owned();
        let connections = kyzlo_live::journal::MAX_CONNECTIONS + plans.len().min(12);
        let (db, coord) = bridged(runtime.handle(), async move {
            let db = PgDatabase::connect(&url, connections).await?;
            let coord = PgDatabase::connect(&url, 3).await?;
            Ok((db, coord))
        })
        .await
        .map_err(|e| JournalError::Runtime(std::io::Error::other(e.to_string())))?
        .map_err(JournalError::Database)?;
        Ok(Self {
            runtime: Some(runtime),
            db,
            coord,
            settings,
            plans,
            held: watch::channel(BTreeSet::new()).0,
        })
    }

    /// The wallets whose markets run now (their lease held).
    #[must_use]
    pub fn held(&self) -> watch::Receiver<BTreeSet<String>> {
        self.held.subscribe()
    }

    /// Runs the markets until `shutdown` turns true: each wallet taken when free, its
    /// markets started by `launcher`, stopped when its lease is lost, taken again when it
    /// can be; then every market stopped (running exits let finish within the grace),
    /// every lease released and the instance unregistered. Dropping the future stops
    /// everything at once, as a killed process would, and releases nothing.
    pub async fn run(
        mut self,
        launcher: Arc<dyn Launcher>,
        shutdown: watch::Receiver<bool>,
    ) -> Outcome {
        let Some(runtime) = self.runtime.as_ref() else {
            return Outcome::default();
        };
        let handle = runtime.handle().clone();
        let store = {
            let _db_runtime = handle.enter();
            Arc::new(PgFleet::new(self.coord.clone()))
        };
        let fleet = Fleet::new(
            Arc::new(commands::BridgedFleet::new(store, handle.clone())),
            self.settings.approval_key.clone(),
            FleetSettings {
                poll: self.settings.poll,
                unreachable_after: self.settings.unreachable,
                instance: self.settings.owner.clone(),
            },
        );
        let shared = Arc::new(Shared {
            db: self.db.clone(),
            coord: self.coord.clone(),
            handle: handle.clone(),
            settings: self.settings.clone(),
            launcher,
            fleet: fleet.clone(),
            dependencies: Mutex::new(None),
            operators: commands::Operators::default(),
            held: self.held.clone(),
            outcome: Mutex::new(Outcome::default()),
        });
        let mut tasks = JoinSet::new();
        let polls = Pulse::every(&handle, self.settings.poll);
        tasks.spawn(fleet.run_on_pulse(shutdown.clone(), polls.receiver()));
        tasks.spawn(commands::serve(
            shared.coord.clone(),
            handle.clone(),
            shared.settings.clone(),
            shared.operators.clone(),
            self.held.subscribe(),
            shutdown.clone(),
        ));
        tasks.spawn(register(shared.clone(), shutdown.clone()));
        let mut wallets: BTreeMap<String, Vec<MarketPlan>> = BTreeMap::new();
        for plan in std::mem::take(&mut self.plans) {
            wallets.entry(plan.wallet.clone()).or_default().push(plan);
        }
        let mut runs = JoinSet::new();
        for (wallet, plans) in wallets {
            runs.spawn(hold(shared.clone(), wallet, plans, shutdown.clone()));
        }
        while runs.join_next().await.is_some() {}
        tasks.abort_all();
        let owner = shared.settings.owner.clone();
        let db = shared.coord.clone();
        if let Ok(Err(e)) =
            bridged_within(&handle, DB_CALL, async move { db.unregister(&owner).await }).await
        {
            tracing::warn!(error = %e, "the instance could not be unregistered");
        }
        std::mem::take(
            &mut *shared
                .outcome
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// A real-time beat, kept on the database's runtime: what the instance's own loops
/// (polls, retries, the registry) wait on, so that on paper, whose clock races ahead, they
/// keep the database's pace rather than the market's.
pub(crate) struct Pulse(watch::Receiver<u64>);

impl Pulse {
    /// A beat every `every` on `handle`'s runtime, for as long as it is held.
    pub(crate) fn every(handle: &Handle, every: Duration) -> Self {
        let (tx, rx) = watch::channel(0_u64);
        handle.spawn(async move {
            while !tx.is_closed() {
                tokio::time::sleep(every).await;
                tx.send_modify(|n| *n += 1);
            }
        });
        Self(rx)
    }

    /// The receiver of the beats.
    pub(crate) fn receiver(&self) -> watch::Receiver<u64> {
        self.0.clone()
    }

    /// Waits for the next beat (forever once the runtime is gone).
    pub(crate) async fn beat(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Keeps the registry's row of this instance fresh: the markets it runs now.
async fn register(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut held = shared.held.subscribe();
    let mut pulse = Pulse::every(&shared.handle, renewal_interval(shared.settings.lease));
    loop {
        let wallets = held.borrow_and_update().clone();
        let markets: Vec<String> = shared
            .operators
            .names()
            .into_iter()
            .filter(|(wallet, _)| wallets.contains(wallet))
            .map(|(wallet, name)| format!("{name} {wallet}"))
            .collect();
        let (db, owner) = (shared.db.clone(), shared.settings.owner.clone());
        if let Ok(Err(e)) = bridged(&shared.handle, async move {
            db.register(&owner, &markets).await
        })
        .await
        {
            tracing::warn!(error = %e, "the instance's registry row could not be written");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = held.changed() => {}
            () = pulse.beat() => {}
        }
    }
}

/// One wallet's life in this instance: taken when free, its markets run while held.
async fn hold(
    shared: Arc<Shared>,
    wallet: String,
    plans: Vec<MarketPlan>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retry = Pulse::every(&shared.handle, renewal_interval(shared.settings.lease));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (db, owner, ttl, w) = (
            shared.coord.clone(),
            shared.settings.owner.clone(),
            shared.settings.lease,
            wallet.clone(),
        );
        let acquired = bridged_within(&shared.handle, DB_CALL, async move {
            kyzlo_live::journal::acquire(&db, &w, &owner, ttl).await
        })
        .await;
        let lease = match acquired {
            Ok(Ok(lease)) => lease,
            Ok(Err(JournalError::Held { .. })) => {
                if wait(&mut shutdown, &mut retry, 1).await {
                    return;
                }
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(wallet = %wallet, error = %e, "the wallet's lease could not be taken");
                if wait(&mut shutdown, &mut retry, 1).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(wallet = %wallet, error = %e, "the fleet's database did not answer; trying again");
                if wait(&mut shutdown, &mut retry, 1).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(wallet = %wallet, epoch = lease.epoch, "wallet taken: starting its markets");
        let heartbeat = {
            let _db_runtime = shared.handle.enter();
            Heartbeat::start(shared.coord.clone(), lease.clone(), shared.settings.lease)
        };
        let lost = run_markets(&shared, &plans, &lease, &heartbeat, &mut shutdown).await;
        let loss = heartbeat.stop().await;
        if lost || loss.is_some() {
            shared
                .outcome
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .leases_lost += 1;
            tracing::error!(wallet = %wallet, epoch = lease.epoch, "wallet lease lost: its markets were stopped");
            if wait(&mut shutdown, &mut retry, 1).await {
                return;
            }
            continue;
        }
        let db = shared.coord.clone();
        let released = bridged_within(
            &shared.handle,
            DB_CALL,
            async move { db.release(&lease).await },
        )
        .await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::warn!(wallet = %wallet, "the wallet lease could not be released; it expires by itself");
        }
        if *shutdown.borrow() {
            return;
        }
        // A market failed to start: the wallet is left for a while (to another instance,
        // or to a later try here).
        if wait(&mut shutdown, &mut retry, 3).await {
            return;
        }
    }
}

/// Waits `beats` beats of `pulse` or until shutdown; whether shutdown came.
async fn wait(shutdown: &mut watch::Receiver<bool>, pulse: &mut Pulse, beats: u32) -> bool {
    let stopped = tokio::select! {
        stopped = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => stopped,
        () = async {
            for _ in 0..beats {
                pulse.beat().await;
            }
        } => false,
    };
    stopped || *shutdown.borrow()
}

/// Starts the wallet's markets on journals fenced by `lease` and runs them until the lease
/// is lost (true) or shutdown (false); a market that cannot start stops the others
/// (false, after they stopped).
async fn run_markets(
    shared: &Arc<Shared>,
    plans: &[MarketPlan],
    lease: &kyzlo_adapters_postgres::Lease,
    heartbeat: &Heartbeat,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut lost = heartbeat.subscribe();
    let mut bots: Vec<(MarketPlan, Bot)> = Vec::new();
    for plan in plans {
        let journal: Arc<dyn Journal> = Arc::new(Elsewhere {
            journal: Arc::new(shared.db.journal(lease, &plan.market)),
            handle: shared.handle.clone(),
        });
        let dependencies = shared
            .dependencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let started = tokio::select! {
            started = shared.launcher.start(plan, journal, dependencies.as_ref()) => started,
            _ = async { lost.wait_for(Option::is_some).await.is_ok() } => return true,
        };
        match started {
            Ok(bot) => {
                shared
                    .dependencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| bot.shared());
                shared.fleet.join(&plan.name, &bot.control()).await;
                bots.push((plan.clone(), bot));
            }
            Err(e) => {
                tracing::error!(market = %plan.name, wallet = %plan.wallet, error = %e, "a market could not start: its wallet is let go");
                return false;
            }
        }
    }
    let (stop, stopped) = watch::channel(false);
    let mut runs = JoinSet::new();
    let mut plans_of = std::collections::HashMap::new();
    for (plan, bot) in bots {
        shared.operators.insert(&plan, bot.operator(), bot.totals());
        let grace = shared.settings.grace;
        let stopped = stopped.clone();
        let name = plan.clone();
        let id = runs
            .spawn(async move {
                let orchestrator = bot.run(stopped, grace).await;
                (plan, orchestrator.positions().len())
            })
            .id();
        plans_of.insert(id, name);
    }
    shared
        .held
        .send_modify(|held| _ = held.insert(lease.wallet.clone()));
    let end = tokio::select! {
        lost = async { lost.wait_for(Option::is_some).await.is_ok() } => {
            if lost { End::Lost } else { End::Stop }
        }
        _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => End::Stop,
        ended = runs.join_next_with_id() => End::Died(match ended {
            Some(Ok((id, _))) => plans_of.get(&id).map(|p| p.name.clone()),
            Some(Err(e)) => plans_of.get(&e.id()).map(|p| p.name.clone()),
            None => None,
        }.unwrap_or_default()),
    };
    shared
        .held
        .send_modify(|held| _ = held.remove(&lease.wallet));
    match &end {
        // The lease is gone: its markets stop at once, as a killed process's would (the
        // new owner reconciles what they left in flight); nothing of theirs is let run.
        End::Lost => runs.abort_all(),
        End::Died(name) => {
            tracing::error!(wallet = %lease.wallet, market = %name, "a market stopped by itself: stopping the wallet's other markets and letting the wallet go");
            let _ = stop.send(true);
        }
        End::Stop => {
            let _ = stop.send(true);
        }
    }
    while let Some(joined) = runs.join_next_with_id().await {
        let (plan, open) = match joined {
            Ok((_, done)) => done,
            Err(e) => {
                if e.is_panic() {
                    let name = plans_of.get(&e.id()).map(|p| p.name.clone());
                    tracing::error!(wallet = %lease.wallet, market = ?name, "a market's bot panicked");
                }
                if let Some(plan) = plans_of.get(&e.id()) {
                    shared.operators.remove(plan);
                }
                continue;
            }
        };
        let totals = shared.operators.remove(&plan);
        let mut outcome = shared
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        outcome.open_positions.insert(plan.name.clone(), open);
        if let Some(totals) = totals {
            outcome.totals.insert(plan.name.clone(), totals);
        }
    }
    for plan in plans_of.values() {
        shared.operators.remove(plan);
    }
    matches!(end, End::Lost)
}

/// Why a wallet's markets stopped.
enum End {
    /// Its lease was lost.
    Lost,
    /// Shutdown.
    Stop,
    /// One of its markets (named) ended by itself: a panic, or its run returned.
    Died(String),
}
