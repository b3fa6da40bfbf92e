//! One explorer run: the real [`Bot`] trading on the adversarial venue for
//! [`HORIZON`](super::schedule::HORIZON) of market time, killed and restarted on the same
//! journal and chain at the schedule's crash points, prodded by its operator, then
//! stopped, left until every transaction it ever signed is dead, and started once more
//! so that reconciliation settles everything; the evidence goes to the invariant
//! checker. Each start is a new instance of the bot with its own journal on the world's
//! [`DurableStore`] (in memory by default).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_adapters_sim::faults::FaultSchedule;
use kyzlo_adapters_sim::market::{SimMarket, generate};
use kyzlo_adapters_sim::trace::{Trace, TraceEvent};
use kyzlo_adapters_sim::venue::{SimVenue, SimWallet};
use kyzlo_application::bot::{Bot, BotPorts, BotSettings};
use kyzlo_application::clock::Clock;
use kyzlo_application::control::ApprovalKey;
use kyzlo_application::execute::{ExecutionSettings, NonceSettings};
use kyzlo_application::gateway::GatewayMode;
use kyzlo_application::guard::GuardLimits;
use kyzlo_application::journal::Journal;
use kyzlo_application::operator::Operator;
use kyzlo_application::ports::{Alert, AlertKind, AlertSink, Pair, PortError};
use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::latency_breaker::LatencyBreakerConfig;
use kyzlo_domain::strategy::MeanReversionConfig;
use kyzlo_domain::{Bps, EscalationLadder, Lamports, Timestamp, TokenAmount};

use super::journal::{JournalLog, TracedJournal};
use super::schedule::{CrashPoint, HORIZON, OperatorAction, Schedule};
use super::store::{DurableStore, Ending, MemoryStore};
use crate::invariants::{Evidence, Life, Start};
use crate::runner::NONCE_ACCOUNT;

/// The approval key the explorer's operator holds.
const APPROVAL_KEY: &str = "explorer-approval-key-0123456789";
/// How long after the horizon every transaction signed is surely dead.
const SETTLE: Duration = Duration::from_secs(240);
/// How long the final reconciliation may take before it counts as stuck.
const FINAL_RECONCILE: Duration = Duration::from_secs(900);
/// How often a pending "after the n-th landing" crash looks at the trace.
const CRASH_POLL: Duration = Duration::from_millis(250);
const USDC: u64 = 1_000_000;

/// What a run did, besides its evidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Starts of the bot (the first, one per crash, and the final one).
    pub starts: u32,
    /// Crashes that happened.
    pub crashes: u32,
    /// Transactions that landed (successful or failed).
    pub landings: u32,
    /// Intents journaled.
    pub intents: u32,
    /// Cancels journaled (nonce mode).
    pub cancels: u32,
    /// Crashes with an attempt on the nonce unresolved (nonce mode).
    pub nonce_crashes: u32,
}

#[derive(Default)]
struct Recorded {
    alerts: Vec<(Timestamp, Alert)>,
}

/// Alerts with when they were sent; they survive the bot's crashes.
struct RecordingAlerts {
    clock: Clock,
    recorded: Mutex<Recorded>,
}

#[async_trait]
impl AlertSink for RecordingAlerts {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        let now = self.clock.now();
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .alerts
            .push((now, alert.clone()));
        Ok(())
    }
}

impl RecordingAlerts {
    fn all(&self) -> Vec<(Timestamp, Alert)> {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .alerts
            .clone()
    }
}

/// The bot's settings in `schedule`'s world: a strategy that trades often and tight
/// stops, so every run has entries and exits of every kind to break, and the schedule's
/// exit deadline.
#[must_use]
pub fn settings(schedule: &Schedule) -> BotSettings {
    // The wait before the next rung is sent beside the previous: anywhere from almost at
    // once to longer than most attempts take.
    let nonce = schedule.durable_nonce.then(|| NonceSettings {
        escalate_after: Duration::from_millis(
            100 + kyzlo_adapters_sim::rng::mix64(schedule.seed ^ 0x6e6f_6e63) % 3_000,
        ),
        ..NonceSettings::on(NONCE_ACCOUNT)
    });
    let exit_plan = ExitPlanConfig {
        stop_loss: Bps::new(200).unwrap_or_default(),
        trailing_activation: Bps::new(150).ok(),
        trailing_distance: Bps::new(100).unwrap_or_default(),
        breakeven_trigger: Bps::new(100).ok(),
        ..ExitPlanConfig::default()
    };
    BotSettings {
        pair: Pair::SOL_USDC,
        strategy: MeanReversionConfig {
            window: 30,
            entry_z: 1.5,
            exit_z: 0.5,
            ..MeanReversionConfig::default()
        },
        exit_plan,
        exit: ExecutionSettings {
            deadline: schedule.exit_deadline,
            nonce,
            ..ExecutionSettings::exit_defaults()
        },
        entry: ExecutionSettings {
            nonce,
            ..ExecutionSettings::entry_defaults(EscalationLadder::default_ladder())
        },
        // The seed's breaker on every dependency; prices, quotes and reads cut at
        // 2 s, sends at 200 ms (the rebroadcast gives a cut send another chance).
        guard: GuardLimits::new(
            LatencyBreakerConfig::default(),
            Duration::from_secs(2),
            Duration::from_millis(200),
        ),
        exit_breaker_threshold: 2,
        entry_quote_amount: TokenAmount::new(100 * USDC),
        entry_fraction: None,
        max_positions: 2,
        strategy_exits: true,
        protective_exits: kyzlo_application::orchestrator::ProtectiveExits::OnRecovery,
        router_budget: None,
        rpc_budget: None,
        tick_interval: Duration::from_secs(1),
        approval_key: ApprovalKey::new(APPROVAL_KEY).ok(),
        gateway_mode: GatewayMode::Enforce,
        jitter_seed: schedule.seed ^ 0x6a69_7474_6572,
    }
}

/// How long an exit may take in `schedule`'s world: the deadline, plus the longest
/// attempt life (its blockhash's blocks, stretched by skipped slots), plus how far a
/// node may lag behind the expiry and the confirmation delay, plus polling slack.
#[must_use]
pub fn exit_bound(schedule: &Schedule) -> Duration {
    let settings = ExecutionSettings::exit_defaults();
    let cluster = &schedule.faults.cluster;
    let life_blocks = if cluster.router_ignores_expiry {
        150.0
    } else {
        f64::from(settings.expiry_slots)
    };
    let slots = life_blocks / (1.0 - cluster.skipped_slots.clamp(0.0, 0.5))
        + cluster.lagging_slots as f64
        + cluster.confirm_slots.1 as f64
        + 10.0;
    schedule.exit_deadline + schedule.faults.slot_time.mul_f64(slots) + Duration::from_secs(5)
}

fn wallet() -> SimWallet {
    SimWallet {
        base: TokenAmount::ZERO,
        quote: TokenAmount::new(1_000 * USDC),
        fee_lamports: Lamports::new(500_000_000),
    }
}

/// How a life ended.
enum End {
    /// The schedule's crash of this index killed it.
    Crashed(usize),
    Stopped,
}

struct World<'s> {
    schedule: Schedule,
    clock: Clock,
    market: Arc<SimMarket>,
    venue: Arc<SimVenue>,
    trace: Arc<Trace>,
    store: &'s dyn DurableStore,
    log: Arc<JournalLog>,
    alerts: Arc<RecordingAlerts>,
    /// Crashes not yet happened (index into the schedule's).
    pending_crashes: Vec<usize>,
    /// Operator actions not yet done (index into the schedule's).
    pending_ops: Vec<usize>,
    /// When an operator last resumed successfully.
    last_resume: Option<Timestamp>,
    lives: Vec<Life>,
    starts: Vec<Start>,
    stats: RunStats,
}

impl<'s> World<'s> {
    fn new(schedule: &Schedule, store: &'s dyn DurableStore) -> Self {
        let clock = Clock::new();
        let path = Arc::new(generate(&schedule.market, schedule.seed));
        let market = Arc::new(SimMarket::starting_now(path, clock));
        let trace = Arc::new(Trace::new());
        let faults = Arc::new(FaultSchedule::new(schedule.faults.clone(), schedule.seed));
        let mut venue = SimVenue::new(market.clone(), faults, wallet(), clock, Pair::SOL_USDC)
            .with_trace(trace.clone());
        if schedule.durable_nonce {
            venue = venue.with_nonce_account(NONCE_ACCOUNT);
        }
        let venue = Arc::new(venue);
        let log = Arc::new(JournalLog::new(
            trace.clone(),
            clock,
            schedule.seed,
            schedule.journal_failures,
        ));
        let alerts = Arc::new(RecordingAlerts {
            clock,
            recorded: Mutex::new(Recorded::default()),
        });
        Self {
            pending_crashes: (0..schedule.crashes.len())
                .filter(|i| schedule.crash_on(*i))
                .collect(),
            pending_ops: (0..schedule.operator.len())
                .filter(|i| schedule.operator_on(*i))
                .collect(),
            schedule: schedule.clone(),
            clock,
            market,
            venue,
            trace,
            store,
            log,
            alerts,
            last_resume: None,
            lives: Vec::new(),
            starts: Vec::new(),
            stats: RunStats::default(),
        }
    }

    fn run_time(&self) -> Duration {
        self.clock.now().saturating_since(self.market.start)
    }

    fn at(&self, run_time: Duration) -> tokio::time::Instant {
        let now = self.run_time();
        tokio::time::Instant::now() + run_time.saturating_sub(now)
    }

    /// A new instance of the bot: its own journal on the store.
    fn instance(&self) -> Arc<TracedJournal> {
        Arc::new(TracedJournal::new(self.store.instance(), self.log.clone()))
    }

    fn ports(&self, journal: &Arc<TracedJournal>) -> BotPorts {
        BotPorts {
            feed: self.market.clone(),
            router: self.venue.clone(),
            chain: self.venue.clone(),
            signer: self.venue.clone(),
            probe: self.venue.clone(),
            send_probe: self.venue.clone(),
            journal: journal.clone(),
            alerts: self.alerts.clone(),
            metrics: Vec::new(),
            clock: self.clock,
        }
    }

    fn landings(&self) -> u32 {
        self.trace
            .events()
            .iter()
            .filter(|e| matches!(e, TraceEvent::Landed { .. }))
            .count() as u32
    }

    /// Whether a halt was alerted that no operator has lifted since.
    fn halt_alerted_not_lifted(&self) -> bool {
        let last_halt = self
            .alerts
            .all()
            .iter()
            .filter(|(_, a)| a.kind == AlertKind::TradingHalted)
            .map(|(at, _)| *at)
            .max();
        last_halt.is_some_and(|h| self.last_resume.is_none_or(|r| r < h))
    }

    /// Starts the bot on `journal`, retrying while reconciliation cannot reach the chain.
    async fn start(&mut self, journal: &Arc<TracedJournal>, patience: Duration) -> Option<Bot> {
        let give_up = self.clock.now().saturating_add(patience);
        loop {
            let journaled = journal.load().await.ok().and_then(|s| s.trading_state);
            let halt_pending = self.halt_alerted_not_lifted();
            let at = self.clock.now();
            let remaining = give_up.saturating_since(at);
            match tokio::time::timeout(
                remaining,
                Bot::start(self.ports(journal), settings(&self.schedule)),
            )
            .await
            {
                Ok(Ok(bot)) => {
                    self.stats.starts += 1;
                    self.starts.push(Start {
                        at,
                        journaled,
                        halt_alerted_not_lifted: halt_pending,
                        started: bot.control().state(),
                    });
                    return Some(bot);
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "explorer: start failed; retrying"),
                Err(_) => return None,
            }
            if self.clock.now() >= give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    /// Waits for the earliest pending crash; returns its index.
    async fn next_crash(&self) -> usize {
        let mut best: Option<(Duration, usize)> = None;
        let mut watch_landings = false;
        let mut watch_exits = false;
        for &i in &self.pending_crashes {
            match self.schedule.crashes[i].point {
                CrashPoint::At(t) => {
                    if best.is_none_or(|(b, _)| t < b) {
                        best = Some((t, i));
                    }
                }
                CrashPoint::AfterLanding { .. } => watch_landings = true,
                CrashPoint::InExit { .. } => watch_exits = true,
            }
        }
        let watching = watch_landings || watch_exits;
        loop {
            if watching {
                let landings = if watch_landings {
                    self.landing_times()
                } else {
                    Vec::new()
                };
                let exits = if watch_exits {
                    self.exit_times()
                } else {
                    Vec::new()
                };
                for &i in &self.pending_crashes {
                    let (events, nth, delay) = match self.schedule.crashes[i].point {
                        CrashPoint::AfterLanding { nth, delay } => (&landings, nth, delay),
                        CrashPoint::InExit { nth, delay } => (&exits, nth, delay),
                        CrashPoint::At(_) => continue,
                    };
                    if let Some(at) = events.get(nth as usize) {
                        let t = at.saturating_add(delay);
                        if best.is_none_or(|(b, _)| t < b) {
                            best = Some((t, i));
                        }
                    }
                }
            }
            let now = self.run_time();
            if let Some((t, i)) = best
                && t <= now
            {
                return i;
            }
            let wake = match best {
                Some((t, _)) if !watching => t,
                Some((t, _)) => t.min(now + CRASH_POLL),
                None if watching => now + CRASH_POLL,
                None => return std::future::pending().await,
            };
            tokio::time::sleep_until(self.at(wake)).await;
        }
    }

    /// When each exit intent was journaled, in run time.
    fn exit_times(&self) -> Vec<Duration> {
        self.log
            .exits_journaled()
            .iter()
            .map(|at| at.saturating_since(self.market.start))
            .collect()
    }

    fn landing_times(&self) -> Vec<Duration> {
        self.trace
            .events()
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Landed { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    /// Runs the operator actions due from now on, in order; `busy` is set while one is in
    /// flight (a graceful stop lets it finish, as a server finishes a request).
    async fn operate(
        &self,
        operator: Operator,
        resumes: &Mutex<Vec<Timestamp>>,
        done: &Mutex<Vec<usize>>,
        busy: &std::cell::Cell<bool>,
    ) {
        for &i in &self.pending_ops {
            let (at, action) = self.schedule.operator[i];
            if at < self.run_time() {
                continue;
            }
            tokio::time::sleep_until(self.at(at)).await;
            busy.set(true);
            match action {
                OperatorAction::Halt => {
                    let _ = operator.halt("explorer: operator halt").await;
                }
                OperatorAction::Resume { right_key } => {
                    let key: &[u8] = if right_key {
                        APPROVAL_KEY.as_bytes()
                    } else {
                        b"explorer-wrong-key-0000000000000"
                    };
                    if operator.resume(key).await.is_ok() {
                        resumes
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(self.clock.now());
                    }
                }
                OperatorAction::ForceExit { index } => {
                    if let Ok(status) = operator.status().await
                        && !status.positions.is_empty()
                    {
                        let p = &status.positions[usize::from(index) % status.positions.len()];
                        let _ = operator.force_exit(p.id).await;
                    }
                }
            }
            done.lock().unwrap_or_else(PoisonError::into_inner).push(i);
            busy.set(false);
        }
        std::future::pending::<()>().await;
    }

    /// One life of the bot, from its start (at `from`) to a crash or the horizon.
    async fn life(&mut self, from: Timestamp, bot: Bot) -> End {
        let totals = bot.totals();
        let operator = bot.operator();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let resumes = Mutex::new(Vec::new());
        let done = Mutex::new(Vec::new());
        let busy = std::cell::Cell::new(false);
        let horizon = self.at(HORIZON);
        let end = {
            let run = bot.run(shutdown, Duration::from_secs(60));
            tokio::pin!(run);
            let ops = self.operate(operator, &resumes, &done, &busy);
            tokio::pin!(ops);
            let crash = self.next_crash();
            tokio::pin!(crash);
            let outcome = tokio::select! {
                biased;
                i = &mut crash => Some(i),
                () = tokio::time::sleep_until(horizon) => None,
                _ = &mut run => None,
                () = &mut ops => None,
            };
            match outcome {
                Some(i) => End::Crashed(i),
                None => {
                    let _ = stop.send(true);
                    let end = tokio::select! {
                        biased;
                        i = &mut crash => End::Crashed(i),
                        _ = &mut run => End::Stopped,
                        () = &mut ops => End::Stopped,
                    };
                    // An operator request in flight finishes before the process exits.
                    let patience = tokio::time::sleep(Duration::from_secs(30));
                    tokio::pin!(patience);
                    while busy.get() && matches!(end, End::Stopped) {
                        tokio::select! {
                            () = &mut ops => {}
                            () = &mut patience => break,
                            () = tokio::time::sleep(Duration::from_millis(10)) => {}
                        }
                    }
                    end
                }
            }
        };
        let done = done.into_inner().unwrap_or_else(PoisonError::into_inner);
        self.pending_ops.retain(|i| !done.contains(i));
        if let Some(r) = resumes
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
        {
            self.last_resume = Some(*r);
        }
        if let End::Crashed(i) = end {
            self.pending_crashes.retain(|c| *c != i);
            self.stats.crashes += 1;
            let settled = self.log.settled_at();
            if self
                .store
                .attempts()
                .iter()
                .any(|(a, o)| a.nonce.is_some() && o.is_none() && !settled.contains_key(&a.intent))
            {
                self.stats.nonce_crashes += 1;
            }
        }
        self.lives.push(Life {
            from,
            to: self.clock.now(),
            crashed: matches!(end, End::Crashed(_)),
            halts: totals.summary().halts,
        });
        end
    }

    async fn run(mut self) -> (Evidence, RunStats) {
        // The first line of a replayed run's log: its times count from here.
        tracing::info!(target: "kyzlo", seed = self.schedule.seed, "explorer: the world begins");
        let mut reconciled = false;
        let mut open_positions = Vec::new();
        loop {
            let from = self.clock.now();
            let journal = self.instance();
            let Some(bot) = self.start(&journal, FINAL_RECONCILE).await else {
                self.store.ended(Ending::Stopped);
                break;
            };
            match self.life(from, bot).await {
                End::Stopped => {
                    self.store.ended(Ending::Stopped);
                    drop(journal);
                    // Past the horizon: wait until nothing signed can land, then start
                    // once more to reconcile everything.
                    tokio::time::sleep(SETTLE).await;
                    let from = self.clock.now();
                    let journal = self.instance();
                    if let Some(bot) = self.start(&journal, FINAL_RECONCILE).await {
                        reconciled = true;
                        open_positions = bot.reconciled().positions.clone();
                        self.lives.push(Life {
                            from,
                            to: self.clock.now(),
                            crashed: false,
                            halts: bot.totals().summary().halts,
                        });
                    }
                    self.store.ended(Ending::Stopped);
                    break;
                }
                End::Crashed(i) => {
                    // The killed instance's journal goes with it; its lease, if any, is
                    // left to expire.
                    self.store.ended(Ending::Killed);
                    drop(journal);
                    tokio::time::sleep(self.schedule.crashes[i].downtime).await;
                }
            }
        }
        let intents = self.store.intents();
        self.stats.intents = intents.len() as u32;
        self.stats.cancels = self
            .store
            .attempts()
            .iter()
            .filter(|(a, _)| a.nonce.is_some_and(|n| n.cancel))
            .count() as u32;
        self.stats.landings = self.landings();
        let evidence = Evidence {
            trace: self.trace.events(),
            intents,
            attempts: self.store.attempts(),
            settled_at: self.log.settled_at(),
            started: self.market.start,
            open_positions,
            alerts: self.alerts.all(),
            starts: self.starts,
            lives: self.lives,
            exit_bound: exit_bound(&self.schedule),
            reconciled,
            nonce_value: self.venue.nonce_value(),
        };
        (evidence, self.stats)
    }
}

/// Runs `schedule`'s world on a fresh paused runtime, its journal in memory; returns its
/// evidence.
#[must_use]
pub fn run(schedule: &Schedule) -> (Evidence, RunStats) {
    run_on(schedule, &MemoryStore::new())
}

/// Runs `schedule`'s world on a fresh paused runtime with its journal on `store`;
/// returns its evidence, the intents and attempts read back from `store`.
#[must_use]
pub fn run_on(schedule: &Schedule, store: &dyn DurableStore) -> (Evidence, RunStats) {
    // A current-thread runtime on paused time: the world's clock only moves when every
    // task waits, so ten minutes of market take milliseconds. Building one cannot fail
    // short of the OS refusing a timer, which would be a broken machine.
    #[allow(clippy::expect_used)]
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    // The world (its clock first) is built inside the runtime: built outside, its clock
    // would start at a real instant and a few microseconds of the machine would leak into
    // every time it reads, so a seed would not replay exactly.
    runtime.block_on(async { World::new(schedule, store).run().await })
}
