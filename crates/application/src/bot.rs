//! The whole bot in one place: [`Bot::start`] reconciles the journal with the chain before
//! any trade, builds every service over the ports (trading control, latency guard,
//! executors, gateway, orchestrator, operator), adopts the positions reconciliation
//! restored, and [`Bot::run`] runs the tick loop with the latency breaker's recovery
//! probing until shutdown. The binary, paper mode, the chaos simulator, the adversarial
//! explorer and the tests all start this same bot; only the adapters differ.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::latency_breaker::BreakerState;
use kyzlo_domain::strategy::{MeanReversion, MeanReversionConfig};
use kyzlo_domain::trading_state::{HaltCause, ReduceOnlyCause, TradingState};
use kyzlo_domain::{DomainError, ExitBreaker, TokenAmount};
use tokio::sync::{mpsc, watch};

use crate::assemble::{Assembled, GuardSource, Ports, Settings, assemble};
use crate::budget::Budget;
use crate::clock::Clock;
use crate::control::{ApprovalKey, TradingControl};
use crate::execute::ExecutionSettings;
use crate::exit::ExitExecutor;
use crate::gateway::GatewayMode;
use crate::guard::{FeedProbe, GUARDED, GuardBreakers, GuardLimits, LatencyGuard};
use crate::journal::Journal;
use crate::metrics::{CountingMetrics, Dependency, FanOutMetrics, MetricsSink};
use crate::operator::Operator;
use crate::orchestrator::ProtectiveExits;
use crate::orchestrator::{Command, Orchestrator, OrchestratorConfig};
use crate::ports::{
    Alert, AlertKind, AlertSink, Chain, HealthProbe, Pair, PortError, PriceFeed, Severity, Signer,
    SwapRouter,
};
use crate::reconcile::{ReconcileReport, ReconcileSettings, Reconciler};
use crate::rng::Jitter;
use kyzlo_domain::budget::RequestBudget;

/// How long reconciliation looks for a landed transaction's fill.
const RECONCILE_FILL_WAIT: Duration = Duration::from_secs(120);
/// The priority fee of a cancel reconciliation sends on a durable nonce when the exit
/// settings name none (the nonce defaults').
const RECONCILE_CANCEL_FEE: kyzlo_domain::Lamports = kyzlo_domain::Lamports::new(100_000);

/// The adapters a bot runs on.
pub struct BotPorts {
    pub feed: Arc<dyn PriceFeed>,
    /// Quotes and swaps.
    pub router: Arc<dyn SwapRouter>,
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// The wallet's signer.
    pub signer: Arc<dyn Signer>,
    /// The chain's health probe: what the RPC reads' breaker recovers by (and what a
    /// halted bot waits for before retrying a fired stop).
    pub probe: Arc<dyn HealthProbe>,
    /// A probe of the chain's send path that sends no transaction (e.g. `getHealth` on
    /// the endpoint sends go to): what the RPC sends' breaker recovers by. A real send is
    /// never the probe: exits never wait for a breaker, and entries, the only other sends,
    /// are refused while a breaker is open, so no send would come to close it.
    pub send_probe: Arc<dyn HealthProbe>,
    /// The durable journal.
    pub journal: Arc<dyn Journal>,
    /// Where alerts go.
    pub alerts: Arc<dyn AlertSink>,
    /// Metric sinks besides the bot's own in-process totals (e.g. Prometheus).
    pub metrics: Vec<Arc<dyn MetricsSink>>,
    /// The clock every service reads (a live bot's counts from the Unix epoch, so what
    /// it journals means the same after a restart).
    pub clock: Clock,
}

/// Everything the bot's rules and services are configured with, validated.
#[derive(Debug, Clone)]
pub struct BotSettings {
    /// The pair's decimals.
    pub pair: Pair,
    /// The mean-reversion strategy.
    pub strategy: MeanReversionConfig,
    /// The exit plan of every new position.
    pub exit_plan: ExitPlanConfig,
    /// How exits are executed.
    pub exit: ExecutionSettings,
    /// How entries are executed.
    pub entry: ExecutionSettings,
    /// Each guarded dependency's latency breaker and call timeout.
    pub guard: GuardLimits,
    /// Consecutive failed exits before a halt.
    pub exit_breaker_threshold: u32,
    /// Quote units spent per entry.
    pub entry_quote_amount: TokenAmount,
    /// The share of the wallet's quote balance an entry spends, capped at
    /// `entry_quote_amount`; `None` spends the cap.
    pub entry_fraction: Option<kyzlo_domain::Fraction>,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Whether the strategy's own exit signal closes positions (the exit plan's legs
    /// always apply).
    pub strategy_exits: bool,
    /// What a halt does to a position whose stop has fired.
    pub protective_exits: ProtectiveExits,
    /// The price feed's and the router's shared request budget (one provider's plan,
    /// such as Jupiter's), if any.
    pub router_budget: Option<RequestBudget>,
    /// The RPC provider's request budget (every chain call and its health probes), if any.
    pub rpc_budget: Option<RequestBudget>,
    /// Tick interval.
    pub tick_interval: Duration,
    /// The operator's key for resuming after a halt; `None` means nobody can resume.
    pub approval_key: Option<ApprovalKey>,
    /// Whether the exit gateway blocks ownership conflicts.
    pub gateway_mode: GatewayMode,
    /// Seed of the backoff jitter.
    pub jitter_seed: u64,
}

/// Why a bot could not start. Nothing was traded.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// Reconciliation could not read or write the journal, or read the chain.
    #[error("start-up reconciliation failed: {0}")]
    Reconcile(PortError),
    /// A rule's settings are invalid.
    #[error("invalid settings: {0}")]
    Settings(DomainError),
}

/// What the markets of one process share: one latency breaker per dependency and one
/// request budget per provider, whichever market calls it.
#[derive(Clone)]
pub struct SharedDependencies {
    guard: Arc<LatencyGuard>,
    router_budget: Option<Arc<Budget>>,
    rpc_budget: Option<Arc<Budget>>,
}

/// A started bot: reconciled and wired, not yet ticking.
pub struct Bot {
    orchestrator: Orchestrator,
    operator: Operator,
    commands: mpsc::Receiver<Command>,
    control: Arc<TradingControl>,
    guard: Arc<LatencyGuard>,
    exits: Arc<ExitExecutor>,
    totals: Arc<CountingMetrics>,
    chain_probe: Arc<dyn HealthProbe>,
    send_probe: Arc<dyn HealthProbe>,
    feed_probe: Arc<dyn HealthProbe>,
    jitter: Arc<Jitter>,
    tick_interval: Duration,
    reconciled: ReconcileReport,
    shared: SharedDependencies,
}

impl Bot {
    /// Builds the services over the ports, then reconciles the journal with the chain
    /// (every pending attempt settled, unread fills read, the trading state and the exit
    /// breaker's count restored) and adopts the open positions. No trade happens before
    /// this returns.
    ///
    /// # Errors
    /// [`BotError`] when the journal cannot be read, reconciliation fails, or a setting
    /// is invalid.
    pub async fn start(ports: BotPorts, settings: BotSettings) -> Result<Self, BotError> {
        Self::start_sharing(ports, settings, None).await
    }

    /// As [`Bot::start`], for one more market of a process: with `shared` (another
    /// market's [`Bot::shared`]), its calls go through the same latency breakers and
    /// request budgets as that market's, and its trading state follows the shared
    /// breakers; `settings.guard` and the budgets' windows are then the shared ones'.
    ///
    /// # Errors
    /// As [`Bot::start`].
    pub async fn start_sharing(
        ports: BotPorts,
        settings: BotSettings,
        shared: Option<&SharedDependencies>,
    ) -> Result<Self, BotError> {
        let clock = ports.clock;
        let guard_source = match shared {
            Some(shared) => GuardSource::Shared(shared.guard.clone()),
            None => GuardSource::New(Box::new(
                GuardBreakers::new(&settings.guard).map_err(BotError::Settings)?,
            )),
        };
        let strategy = MeanReversion::new(settings.strategy).map_err(BotError::Settings)?;
        let journaled = ports.journal.load().await.map_err(BotError::Reconcile)?;
        let exit_breaker = ExitBreaker::restored(
            settings.exit_breaker_threshold,
            journaled.consecutive_failed_exits,
        )
        .map_err(BotError::Settings)?;
        let totals = Arc::new(CountingMetrics::new());
        let mut sinks: Vec<Arc<dyn MetricsSink>> = vec![totals.clone()];
        sinks.extend(ports.metrics);
        let metrics: Arc<dyn MetricsSink> = Arc::new(FanOutMetrics::new(sinks));
        let initial = journaled
            .trading_state
            .clone()
            .unwrap_or(TradingState::Active);
        if initial.is_halted() {
            tracing::warn!(state = %initial, "trading is halted (journaled): resume needs the approval key");
        }
        let restore_breakers = matches!(
            initial,
            TradingState::ReduceOnly {
                cause: ReduceOnlyCause::LatencyBreakerOpen,
                ..
            }
        );
        let exit_settings = settings.exit.clone();
        let (router_budget, rpc_budget) = match shared {
            Some(shared) => (shared.router_budget.clone(), shared.rpc_budget.clone()),
            None => (
                settings
                    .router_budget
                    .clone()
                    .map(|window| Budget::new("the router", window, clock)),
                settings
                    .rpc_budget
                    .clone()
                    .map(|window| Budget::new("the RPC provider", window, clock)),
            ),
        };
        let Assembled {
            control,
            guard,
            engine,
            exits,
            jitter,
            chain_probe,
            send_probe,
            services,
            ..
        } = assemble(
            Ports {
                feed: ports.feed.clone(),
                router: ports.router,
                chain: ports.chain,
                signer: ports.signer,
                journal: ports.journal.clone(),
                alerts: ports.alerts,
                metrics,
                probe: ports.probe,
                send_probe: ports.send_probe,
            },
            Settings {
                initial_state: initial,
                approval_key: settings.approval_key,
                guard: guard_source,
                exit: settings.exit,
                entry: settings.entry,
                exit_breaker,
                pair: settings.pair,
                gateway_mode: settings.gateway_mode,
                jitter_seed: settings.jitter_seed,
                next_id: journaled.next_id,
                router_budget: router_budget.clone(),
                rpc_budget: rpc_budget.clone(),
            },
            clock,
        );
        guard.catch_up(&control).await;
        if restore_breakers {
            // The bot stopped while a breaker was open: recovery must be proven again
            // (probes close the breakers and lift ReduceOnly), not assumed.
            guard.restore_open().await;
        }
        // Reconciliation settles what may still land: its calls come first, as an exit's.
        let reconciled = crate::budget::protecting(
            Reconciler::new(
                engine.venue().clone(),
                ReconcileSettings {
                    pair: settings.pair,
                    poll_interval: exit_settings.poll_interval,
                    commitment: exit_settings.commitment,
                    // Nothing trades before reconciliation ends: a fill read late is worth
                    // more patience here than during an exit.
                    fill_wait: exit_settings.fill_wait.max(RECONCILE_FILL_WAIT),
                    cancel_fee: exit_settings
                        .nonce
                        .map_or(RECONCILE_CANCEL_FEE, |n| n.cancel_fee),
                },
            )
            .run(),
        )
        .await
        .map_err(BotError::Reconcile)?;
        if reconciled.landed + reconciled.failed + reconciled.fills_corrected > 0 {
            tracing::warn!(
                landed = reconciled.landed,
                failed = reconciled.failed,
                fills_corrected = reconciled.fills_corrected,
                "start-up reconciliation settled pending intents"
            );
        }
        if let Some(shortfall) = reconciled.balance_shortfall {
            let _ = control
                .halt(
                    HaltCause::Reconciliation,
                    format!(
                        "the wallet holds {shortfall} base units less than the journal's open positions"
                    ),
                )
                .await;
        }
        if let Some(unknown) = reconciled.unknown_tokens {
            control
                .alert(Alert {
                    kind: AlertKind::Reconciliation,
                    severity: Severity::Warning,
                    message: format!(
                        "the wallet holds {unknown} base units more than the journal accounts for (a landing it missed, or a deposit)"
                    ),
                    position: None,
                })
                .await;
        }
        let mut orchestrator = Orchestrator::new(
            services,
            OrchestratorConfig {
                exit_plan: settings.exit_plan,
                entry_quote_amount: settings.entry_quote_amount,
                entry_fraction: settings.entry_fraction,
                max_positions: settings.max_positions,
                pair: settings.pair,
                strategy_exits: settings.strategy_exits,
                protective_exits: settings.protective_exits,
            },
            strategy,
        );
        for position in &reconciled.positions {
            orchestrator.adopt(*position);
        }
        let (tx, commands) = mpsc::channel(64);
        let operator = Operator::new(
            control.clone(),
            tx,
            ports.journal,
            guard.clone(),
            exits.clone(),
            totals.clone(),
        )
        .with_unknown_tokens(reconciled.unknown_tokens);
        Ok(Self {
            orchestrator,
            operator,
            commands,
            control,
            guard: guard.clone(),
            exits,
            totals,
            chain_probe,
            send_probe,
            feed_probe: Arc::new(FeedProbe(ports.feed)),
            jitter,
            tick_interval: settings.tick_interval,
            reconciled,
            shared: SharedDependencies {
                guard: guard.clone(),
                router_budget,
                rpc_budget,
            },
        })
    }

    /// One tick outside [`Bot::run`] (price, strategy, exit plans, intents): what a
    /// benchmark of many markets times. Executions it starts run as tasks.
    ///
    /// # Errors
    /// The tick's error (the price could not be read, or was refused).
    pub async fn tick(
        &mut self,
    ) -> Result<crate::orchestrator::TickReport, crate::orchestrator::TickError> {
        self.orchestrator.tick().await
    }

    /// What another market of the process starts with to share this one's latency
    /// breakers and request budgets ([`Bot::start_sharing`]).
    #[must_use]
    pub fn shared(&self) -> SharedDependencies {
        self.shared.clone()
    }

    /// The operator's handle (status, halt, resume, force-exit, history).
    #[must_use]
    pub fn operator(&self) -> Operator {
        self.operator.clone()
    }

    /// The trading state's owner.
    #[must_use]
    pub fn control(&self) -> Arc<TradingControl> {
        Arc::clone(&self.control)
    }

    /// The latency guard (for metrics gauges).
    #[must_use]
    pub fn guard(&self) -> Arc<LatencyGuard> {
        Arc::clone(&self.guard)
    }

    /// The exit executor (for metrics gauges).
    #[must_use]
    pub fn exits(&self) -> Arc<ExitExecutor> {
        Arc::clone(&self.exits)
    }

    /// The bot's in-process totals.
    #[must_use]
    pub fn totals(&self) -> Arc<CountingMetrics> {
        Arc::clone(&self.totals)
    }

    /// What start-up reconciliation settled.
    #[must_use]
    pub fn reconciled(&self) -> &ReconcileReport {
        &self.reconciled
    }

    /// Runs ticks, operator commands and the latency breaker's recovery probing until
    /// `shutdown` turns true; then stops starting trades and lets running executions
    /// finish for up to `grace` (what is left is in the journal for the next start).
    /// Dropping the returned future stops everything the bot runs at once, as a crash
    /// would.
    pub async fn run(self, shutdown: watch::Receiver<bool>, grace: Duration) -> Orchestrator {
        let guard = self.guard;
        let jitter = self.jitter;
        // Recovery probing starts whenever the trading state changes (a breaker's
        // opening moves trading to ReduceOnly) and runs until every breaker closes: the
        // RPC reads' by the chain's health probe, the RPC sends' by the send path's probe
        // (no transaction), the feed's and the router's by a price read.
        let mut state = self.control.subscribe();
        let (chain_probe, send_probe, feed_probe) =
            (self.chain_probe, self.send_probe, self.feed_probe);
        let recovery = AbortOnDrop(tokio::spawn(async move {
            loop {
                // Markets sharing the guard probe in turn: the next finds the breakers
                // closed by the one before.
                let turn = guard.recovery_turn().await;
                for dependency in GUARDED {
                    if guard.state_of(dependency) != BreakerState::Closed {
                        let probe = match dependency {
                            Dependency::RpcReads | Dependency::Health => chain_probe.as_ref(),
                            Dependency::RpcSends => send_probe.as_ref(),
                            Dependency::PriceFeed | Dependency::Router => feed_probe.as_ref(),
                        };
                        guard.recover(dependency, probe, &jitter).await;
                    }
                }
                drop(turn);
                if guard.state() != BreakerState::Closed {
                    continue;
                }
                if state.changed().await.is_err() {
                    return;
                }
            }
        }));
        let orchestrator = self
            .orchestrator
            .run(self.tick_interval, self.commands, shutdown, grace)
            .await;
        drop(recovery);
        orchestrator
    }
}

/// A spawned task that dies with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
