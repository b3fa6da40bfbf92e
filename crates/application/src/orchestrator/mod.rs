//! The tick orchestrator: trading state, price, strategy and exit plans, intents, and
//! the gateway, for any number of positions. It owns the positions and the strategy;
//! executions run as tasks and report back through a channel. One bad tick is logged and
//! counted and never stops the loop.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kyzlo_domain::exit_plan::{ExitPlan, ExitPlanConfig};
use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::strategy::MeanReversion;
use kyzlo_domain::{
    ExitIntent, ExitKind, Fraction, IntentId, PositionId, PositionState, Price, Size, TokenAmount,
    TradeIntent,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::control::TradingControl;
use crate::entry::{EntryExecutor, EntryRefusal, EntrySize};
use crate::execute::{Engine, ExecutionOutcome, ExecutionReport, read_fill};
use crate::exit::{ExitExecutor, ExitRefusal};
use crate::gateway::{ExitGateway, ExitOrder, GatewayRefusal};
use crate::guard::LatencyGuard;
use crate::journal::{IntentOutcome, Journal, PositionRecord};
use crate::metrics::{ExitModule, MetricEvent, MetricsSink};
use crate::ports::{Fill, HealthProbe, Pair, PortError, PriceFeed, Side};
use deferred::DeferredRun;

mod deferred;
mod protect;
mod settle;

pub use protect::{FIRST_WAIT, MAX_WAIT, ProtectiveExits};

/// How long a fill that could not be read at landing is looked for in the background.
const LATE_FILL_WAIT: Duration = Duration::from_secs(600);

/// Hands out ids for positions and intents, never the same twice in a process (and,
/// seeded from the journal, never one already journaled).
#[derive(Debug)]
pub struct IdAllocator(AtomicU64);

impl IdAllocator {
    /// Starts at `next`.
    #[must_use]
    pub fn new(next: u64) -> Self {
        Self(AtomicU64::new(next.max(1)))
    }

    /// A fresh id.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// What the orchestrator needs.
#[derive(Clone)]
pub struct Services {
    /// The price feed (timed by the latency guard).
    pub feed: Arc<dyn PriceFeed>,
    /// The attempt engine (its venue reads fills that could not be read at landing).
    pub engine: Arc<Engine>,
    /// The trading state's owner.
    pub control: Arc<TradingControl>,
    /// Times calls; admits entries.
    pub guard: Arc<LatencyGuard>,
    /// The single path for exits.
    pub gateway: Arc<ExitGateway>,
    /// Runs exits.
    pub exits: Arc<ExitExecutor>,
    /// Runs entries.
    pub entries: Arc<EntryExecutor>,
    /// Positions are journaled here.
    pub journal: Arc<dyn Journal>,
    pub metrics: Arc<dyn MetricsSink>,
    pub ids: Arc<IdAllocator>,
    /// The chain's health probe: what says a protective exit may be tried.
    pub probe: Arc<dyn HealthProbe>,
}

/// The orchestrator's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OrchestratorConfig {
    /// Exit plan for new positions.
    pub exit_plan: ExitPlanConfig,
    /// Quote-token amount spent per entry.
    pub entry_quote_amount: TokenAmount,
    /// The share of the wallet's quote balance an entry spends (capped at
    /// `entry_quote_amount`); `None` spends the cap.
    pub entry_fraction: Option<kyzlo_domain::Fraction>,
    /// At most this many open positions.
    pub max_positions: usize,
    /// The pair's decimals.
    pub pair: Pair,
    /// Whether the strategy's own exit signal (reversion to the mean) closes positions;
    /// the exit plan's legs always apply.
    pub strategy_exits: bool,
    /// What a halt does to a position whose stop has fired.
    pub protective_exits: ProtectiveExits,
}

/// One open position as the orchestrator tracks it.
#[derive(Debug, Clone)]
pub struct OpenPosition {
    /// Its id.
    pub id: PositionId,
    /// Its exit plan (entry, size, remaining, legs).
    pub plan: ExitPlan,
    /// Whether an exit is running for it.
    pub exiting: bool,
    /// Its protective tries while halted.
    protection: protect::Protection,
}

/// A position as shown to an operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionView {
    /// Its id.
    pub id: PositionId,
    /// Entry price.
    pub entry_price: Price,
    /// Base units still held.
    pub remaining: TokenAmount,
    /// The active stop level.
    pub stop_level: Price,
    /// The highest price since entry (what a trailing stop follows).
    pub peak: Price,
    /// Where the next take-profit rung sells, if one is left.
    pub next_take_profit: Option<Price>,
    /// Whether an exit is running.
    pub exiting: bool,
}

/// Why a force-exit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForceExitError {
    /// No such open position.
    #[error("no open position {0}")]
    UnknownPosition(PositionId),
    /// The gateway refused it (an exit is already running).
    #[error(transparent)]
    Gateway(#[from] GatewayRefusal),
}

/// An operator's request to the running orchestrator.
#[derive(Debug)]
pub enum Command {
    /// Force-exit a position (works while halted).
    ForceExit {
        /// The position.
        position: PositionId,
        /// The intent id, or why not.
        reply: oneshot::Sender<Result<IntentId, ForceExitError>>,
    },
    /// Hold a position: no protective exit for it while halted.
    Hold {
        /// The position.
        position: PositionId,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), ForceExitError>>,
    },
    /// List open positions.
    Positions {
        /// The list.
        reply: oneshot::Sender<Vec<PositionView>>,
    },
}

/// Why a tick failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TickError {
    /// The price could not be read.
    #[error("price unavailable: {0}")]
    Price(PortError),
    /// The price read was deferred by the request budget (its room is kept for exits) and
    /// no fresh exit quote stood in: nothing failed, the tick is skipped.
    #[error("price read deferred: the request budget keeps its room for exits")]
    PriceDeferred,
    /// Settlements are waiting for the journal: nothing new starts until they are written.
    #[error("{waiting} settlements wait for the journal")]
    JournalBehind {
        /// How many.
        waiting: usize,
    },
}

/// What a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TickReport {
    /// The price seen.
    pub price: Option<Price>,
    /// Entries started.
    pub entries_started: u32,
    /// Exits started.
    pub exits_started: u32,
    /// Exit orders the gateway refused.
    pub exits_refused: u32,
}

enum Completion {
    Entry {
        position: PositionId,
        report: Result<ExecutionReport, EntryRefusal>,
    },
    Exit {
        position: PositionId,
        report: Result<ExecutionReport, ExitRefusal>,
    },
    /// A fill that could not be read at landing was read: replaces the provisional one.
    FillRead {
        intent: IntentId,
        position: PositionId,
        entry: bool,
        provisional: Fill,
        fill: Fill,
    },
}

/// Owns the strategy and the positions; runs ticks.
pub struct Orchestrator {
    services: Services,
    config: OrchestratorConfig,
    exit_plan: Arc<ExitPlanConfig>,
    strategy: MeanReversion,
    positions: BTreeMap<PositionId, OpenPosition>,
    pending_entry: Option<PositionId>,
    done_tx: mpsc::UnboundedSender<Completion>,
    done_rx: mpsc::UnboundedReceiver<Completion>,
    tasks: JoinSet<()>,
    last_price: Option<Price>,
    /// Settlements the journal refused, oldest first: written before any later one.
    unsettled: VecDeque<(IntentId, IntentOutcome, Option<PositionRecord>)>,
}

impl Orchestrator {
    /// An orchestrator with no positions.
    #[must_use]
    pub fn new(services: Services, config: OrchestratorConfig, strategy: MeanReversion) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            exit_plan: Arc::new(config.exit_plan.clone()),
            services,
            config,
            strategy,
            positions: BTreeMap::new(),
            pending_entry: None,
            done_tx,
            done_rx,
            tasks: JoinSet::new(),
            last_price: None,
            unsettled: VecDeque::new(),
        }
    }

    /// Takes over a position (from the journal at start-up, or a test), keeping its
    /// original size so take-profit rungs already sold do not fire again.
    pub fn adopt(&mut self, record: PositionRecord) {
        let Ok(remaining) = Size::new(record.remaining) else {
            return;
        };
        let plan = ExitPlan::restore(
            Arc::clone(&self.exit_plan),
            record.entry_price,
            record.size,
            record.remaining,
        );
        self.positions.insert(
            record.position,
            OpenPosition {
                id: record.position,
                plan,
                exiting: false,
                protection: protect::Protection::default(),
            },
        );
        self.strategy.confirm_trade(PositionState::Long {
            size: remaining,
            entry_price: record.entry_price,
        });
    }

    /// The open positions.
    #[must_use]
    pub fn positions(&self) -> Vec<PositionView> {
        self.positions
            .values()
            .map(|p| PositionView {
                id: p.id,
                entry_price: p.plan.entry(),
                remaining: p.plan.remaining(),
                stop_level: p.plan.stop_level(),
                peak: p.plan.peak(),
                next_take_profit: p.plan.next_take_profit(),
                exiting: p.exiting,
            })
            .collect()
    }

    /// Executions still running.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// The last price seen.
    #[must_use]
    pub fn last_price(&self) -> Option<Price> {
        self.last_price
    }

    /// One tick.
    ///
    /// # Errors
    /// [`TickError`] when the price cannot be read; the caller logs it and ticks again.
    pub async fn tick(&mut self) -> Result<TickReport, TickError> {
        self.apply_completions().await;
        if !self.flush_settlements().await {
            // The journal refuses writes: nothing new may start until what happened is
            // recorded (a new intent could not be journaled anyway).
            self.services.metrics.record(MetricEvent::TickError);
            return Err(TickError::JournalBehind {
                waiting: self.unsettled.len(),
            });
        }
        let s = self.services.clone();
        let price = match s.feed.price().await {
            Ok(tick) => tick.price,
            Err(e) if e.operation == crate::budget::DEFERRED => {
                return Err(TickError::PriceDeferred);
            }
            Err(e) => {
                s.metrics.record(MetricEvent::TickError);
                return Err(TickError::Price(e));
            }
        };
        s.metrics.record(MetricEvent::Tick);
        self.last_price = Some(price);
        let mut report = TickReport {
            price: Some(price),
            ..TickReport::default()
        };
        let state = s.control.state();
        let intent = self.strategy.update(price);

        if let TradeIntent::Enter { .. } = intent {
            if state.allows_entry()
                && self.pending_entry.is_none()
                && self.positions.len() < self.config.max_positions
            {
                self.spawn_entry();
                report.entries_started += 1;
            } else {
                // Tell the strategy nothing happened so it may signal again later.
                self.strategy.confirm_trade(self.strategy_position());
            }
        }

        if state.is_halted() {
            self.protect(price, &mut report).await;
        } else if state.allows_automatic_exit() {
            self.end_protection();
            let strategy_exit = match intent {
                TradeIntent::Exit(exit) if self.config.strategy_exits => Some(exit),
                _ => None,
            };
            let ids: Vec<PositionId> = self.positions.keys().copied().collect();
            for id in ids {
                let Some(position) = self.positions.get_mut(&id) else {
                    continue;
                };
                if position.exiting {
                    continue;
                }
                let (module, exit) = match position.plan.evaluate(price) {
                    Some(exit) => (ExitModule::ExitPlan, exit),
                    None => match strategy_exit {
                        Some(exit) => (ExitModule::Strategy, exit),
                        None => continue,
                    },
                };
                match self.spawn_exit(id, module, exit) {
                    Ok(_) => report.exits_started += 1,
                    Err(_) => report.exits_refused += 1,
                }
            }
        }
        Ok(report)
    }

    fn strategy_position(&self) -> PositionState {
        self.positions
            .values()
            .next()
            .and_then(|p| {
                Size::new(p.plan.remaining())
                    .ok()
                    .map(|size| PositionState::Long {
                        size,
                        entry_price: p.plan.entry(),
                    })
            })
            .unwrap_or(PositionState::Flat)
    }

    /// Force-exits a position on an operator's request: allowed while halted.
    ///
    /// # Errors
    /// [`ForceExitError`] for an unknown position or one already exiting.
    pub fn force_exit(&mut self, position: PositionId) -> Result<IntentId, ForceExitError> {
        let price = self
            .last_price
            .or_else(|| self.positions.get(&position).map(|p| p.plan.entry()))
            .ok_or(ForceExitError::UnknownPosition(position))?;
        if !self.positions.contains_key(&position) {
            return Err(ForceExitError::UnknownPosition(position));
        }
        let exit = ExitIntent {
            kind: ExitKind::Operator,
            fraction: Fraction::ALL,
            trigger_price: price,
        };
        self.spawn_exit(position, ExitModule::Operator, exit)
    }

    fn spawn_entry(&mut self) {
        let s = &self.services;
        let position = PositionId(s.ids.next());
        let intent = IntentId(s.ids.next());
        self.pending_entry = Some(position);
        let entries = Arc::clone(&s.entries);
        let amount = EntrySize {
            cap: self.config.entry_quote_amount,
            fraction: self.config.entry_fraction,
        };
        let done = self.done_tx.clone();
        self.tasks.spawn(async move {
            let report = entries.run(intent, position, amount).await;
            let _ = done.send(Completion::Entry { position, report });
        });
    }

    fn spawn_exit(
        &mut self,
        id: PositionId,
        module: ExitModule,
        exit: ExitIntent,
    ) -> Result<IntentId, ForceExitError> {
        let s = &self.services;
        let Some(position) = self.positions.get_mut(&id) else {
            return Err(ForceExitError::UnknownPosition(id));
        };
        let intent = IntentId(s.ids.next());
        let style = if exit.kind.is_protective() {
            OrderStyle::Market
        } else {
            OrderStyle::LimitLike
        };
        let order = ExitOrder {
            module,
            position: id,
            kind: exit.kind,
            fraction: exit.fraction,
            style,
            trigger_price: exit.trigger_price,
            explanation: format!(
                "{} at {} (entry {}, stop {})",
                exit.kind,
                exit.trigger_price,
                position.plan.entry(),
                position.plan.stop_level()
            ),
        };
        let ticket = match s.gateway.submit(order, intent) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                if matches!(module, ExitModule::ExitPlan | ExitModule::Protective) {
                    position.plan.on_exit_abandoned();
                }
                return Err(refusal.into());
            }
        };
        position.exiting = true;
        let remaining = position.plan.remaining();
        let exits = Arc::clone(&s.exits);
        let done = self.done_tx.clone();
        self.tasks.spawn(async move {
            let report = exits.run(ticket, remaining).await;
            let _ = done.send(Completion::Exit {
                position: id,
                report,
            });
        });
        Ok(intent)
    }

    /// Waits for every running execution to finish and applies it (entries stop being
    /// started since no tick runs).
    pub async fn drain(&mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.apply_completions().await;
        let _ = self.flush_settlements().await;
    }

    /// Runs ticks every `interval` and serves `commands` until `shutdown` turns true;
    /// then stops starting trades and waits for running executions (whose state is in
    /// the journal) up to `grace`.
    pub async fn run(
        mut self,
        interval: Duration,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) -> Self {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deferred = DeferredRun::default();
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(command) = commands.recv() => self.serve(command).await,
                _ = ticker.tick() => {
                    match self.tick().await {
                        Err(e @ TickError::PriceDeferred) => {
                            tracing::debug!(%e, "tick skipped");
                            if deferred.deferred() {
                                tracing::warn!(
                                    ticks = deferred.ticks,
                                    "price reads deferred tick after tick: the request budget keeps its room for exits, and nothing is priced meanwhile (raise the plan's requests per minute or the tick interval)"
                                );
                            }
                        }
                        other => {
                            if let Some(ticks) = deferred.ended() {
                                tracing::info!(ticks, "price reads resumed after a run of deferred ticks");
                            }
                            if let Err(e) = other {
                                tracing::warn!(error = %e, "tick failed");
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(
            in_flight = self.in_flight(),
            "shutting down: no new trades; waiting for running exits"
        );
        if tokio::time::timeout(grace, self.drain()).await.is_err() {
            tracing::warn!(
                in_flight = self.in_flight(),
                "grace period over: remaining executions are left to the journal and start-up reconciliation"
            );
            self.tasks.abort_all();
        }
        self
    }

    async fn serve(&mut self, command: Command) {
        self.apply_completions().await;
        match command {
            Command::ForceExit { position, reply } => {
                let _ = reply.send(self.force_exit(position));
            }
            Command::Hold { position, reply } => {
                let _ = reply.send(self.hold(position));
            }
            Command::Positions { reply } => {
                let _ = reply.send(self.positions());
            }
        }
    }
}
