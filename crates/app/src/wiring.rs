//! Wiring: from adapters and a validated configuration to a running bot. The same code
//! builds the paper bot and the live one; only the adapters differ.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_telemetry::{ApiConfig, PrometheusMetrics};
use kyzlo_application::assemble::{Assembled, Ports, Settings, assemble};
use kyzlo_application::clock::Clock;
use kyzlo_application::control::{ApprovalKey, TradingControl};
use kyzlo_application::exit::ExitExecutor;
use kyzlo_application::gateway::GatewayMode;
use kyzlo_application::guard::LatencyGuard;
use kyzlo_application::journal::Journal;
use kyzlo_application::metrics::{CountingMetrics, FanOutMetrics, MetricsSink};
use kyzlo_application::operator::Operator;
use kyzlo_application::orchestrator::{Command, Orchestrator, OrchestratorConfig};
use kyzlo_application::ports::{AlertSink, Chain, HealthProbe, PriceFeed, Signer, SwapRouter};
use kyzlo_application::reconcile::Reconciler;
use kyzlo_application::rng::Jitter;
use kyzlo_domain::ExitBreaker;
use kyzlo_domain::latency_breaker::LatencyBreaker;
use kyzlo_domain::strategy::MeanReversion;
use kyzlo_domain::trading_state::{HaltCause, TradingState};
use tokio::sync::mpsc;

use crate::config::{Config, Validated};
use crate::error::AppError;

/// The adapters a bot runs on.
pub struct Adapters {
    /// Prices.
    pub feed: Arc<dyn PriceFeed>,
    /// Quotes and swaps.
    pub router: Arc<dyn SwapRouter>,
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// The wallet's signer.
    pub signer: Arc<dyn Signer>,
    /// Health probe for the latency breaker's recovery.
    pub probe: Arc<dyn HealthProbe>,
    /// The durable journal.
    pub journal: Arc<dyn Journal>,
}

/// A wired bot, not yet running.
pub struct Bot {
    /// The tick loop.
    pub orchestrator: Orchestrator,
    /// The operator's handle.
    pub operator: Operator,
    /// Commands into the loop.
    pub commands: mpsc::Receiver<Command>,
    /// The trading state.
    pub control: Arc<TradingControl>,
    /// The latency guard.
    pub guard: Arc<LatencyGuard>,
    /// The exit executor.
    pub exits: Arc<ExitExecutor>,
    /// In-process totals.
    pub totals: Arc<CountingMetrics>,
    /// The health probe.
    pub probe: Arc<dyn HealthProbe>,
    /// Jitter source.
    pub jitter: Arc<Jitter>,
    /// Tick interval.
    pub tick_interval: Duration,
}

/// Reconciles the journal with the chain, then builds every service. No trade happens
/// before reconciliation has settled every pending attempt.
///
/// # Errors
/// [`AppError`] when reconciliation cannot read the journal or the chain.
pub async fn build(
    adapters: Adapters,
    v: &Validated,
    approval_key: Option<&str>,
    seed: u64,
    alerts: Arc<dyn AlertSink>,
    extra_metrics: Vec<Arc<dyn MetricsSink>>,
) -> Result<Bot, AppError> {
    let clock = Clock::new();
    let totals = Arc::new(CountingMetrics::new());
    let mut sinks: Vec<Arc<dyn MetricsSink>> = vec![totals.clone()];
    sinks.extend(extra_metrics);
    let metrics: Arc<dyn MetricsSink> = Arc::new(FanOutMetrics::new(sinks));

    let reconciler = Reconciler::new(
        adapters.chain.clone(),
        adapters.journal.clone(),
        v.pair,
        v.exit.poll_interval,
    );
    let reconciled = reconciler.run().await.map_err(AppError::Reconcile)?;
    if reconciled.landed + reconciled.failed > 0 {
        tracing::warn!(
            landed = reconciled.landed,
            failed = reconciled.failed,
            "start-up reconciliation settled pending intents"
        );
    }
    let initial = reconciled
        .trading_state
        .clone()
        .unwrap_or(TradingState::Active);
    if initial.is_halted() {
        tracing::warn!(state = %initial, "trading is halted (journaled): resume needs the approval key");
    }
    let approval_key = approval_key
        .map(ApprovalKey::new)
        .transpose()
        .map_err(|_| {
            AppError::Config(crate::config::ConfigError::Invalid {
                key: "api.approval_key".into(),
                value: "***".into(),
                expected: "at least 16 characters".into(),
            })
        })?;
    let latency_breaker = LatencyBreaker::new(v.latency_breaker.clone())
        .map_err(|e| AppError::Startup(format!("latency breaker: {e}")))?;
    let exit_breaker = ExitBreaker::new(v.exit_breaker_threshold)
        .map_err(|e| AppError::Startup(format!("exit breaker: {e}")))?;
    let Assembled {
        control,
        guard,
        exits,
        jitter,
        services,
        ..
    } = assemble(
        Ports {
            feed: adapters.feed.clone(),
            router: adapters.router.clone(),
            chain: adapters.chain.clone(),
            signer: adapters.signer.clone(),
            journal: adapters.journal.clone(),
            alerts,
            metrics,
        },
        Settings {
            initial_state: initial,
            approval_key,
            latency_breaker,
            call_timeout: v.call_timeout,
            exit: v.exit.clone(),
            entry: v.entry.clone(),
            exit_breaker,
            pair: v.pair,
            gateway_mode: GatewayMode::Enforce,
            jitter_seed: seed,
            next_id: reconciled.next_id,
        },
        clock,
    );
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
    let strategy =
        MeanReversion::new(v.strategy).map_err(|e| AppError::Startup(format!("strategy: {e}")))?;
    let mut orchestrator = Orchestrator::new(
        services,
        OrchestratorConfig {
            exit_plan: v.exit_plan.clone(),
            entry_quote_amount: v.entry_quote_amount,
            max_positions: v.max_positions,
            pair: v.pair,
            strategy_exits: true,
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
        adapters.journal.clone(),
        guard.clone(),
        exits.clone(),
        totals.clone(),
    );
    Ok(Bot {
        orchestrator,
        operator,
        commands,
        control,
        guard,
        exits,
        totals,
        probe: adapters.probe,
        jitter,
        tick_interval: v.tick_interval,
    })
}

impl Bot {
    /// Runs until `shutdown` turns true: ticks, operator commands, and the latency
    /// breaker's recovery probing. Returns the orchestrator after a clean shutdown.
    pub async fn run(
        self,
        shutdown: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> Orchestrator {
        let guard = self.guard.clone();
        let probe = self.probe.clone();
        let jitter = self.jitter.clone();
        // Recovery probing starts whenever the trading state changes (the breaker's
        // opening moves trading to ReduceOnly) and runs until the breaker closes.
        let mut state = self.control.subscribe();
        let recovery = tokio::spawn(async move {
            loop {
                if guard.state() != kyzlo_domain::latency_breaker::BreakerState::Closed {
                    guard.recover(probe.as_ref(), &jitter).await;
                }
                if state.changed().await.is_err() {
                    return;
                }
            }
        });
        let orchestrator = self
            .orchestrator
            .run(self.tick_interval, self.commands, shutdown, grace)
            .await;
        recovery.abort();
        orchestrator
    }
}

/// A bot wired with its telemetry: alerts routed to the log and webhooks, Prometheus
/// metrics, and the operator API when `api.listen` is set.
pub struct Launched {
    /// The bot, ready to run.
    pub bot: Bot,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Launched {
    /// Runs the bot until `shutdown`, then stops the API and the alert worker (after the
    /// alerts already queued are delivered or a second has passed).
    pub async fn run(
        self,
        shutdown: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> Orchestrator {
        let orchestrator = self.bot.run(shutdown, grace).await;
        for task in self.tasks {
            task.abort();
        }
        orchestrator
    }
}

/// Builds the bot over `adapters` with alerts, metrics and the operator API.
///
/// # Errors
/// [`AppError`] for a bad webhook URL, an API that cannot bind, or a failed start-up.
pub async fn launch(
    config: &Config,
    v: &Validated,
    adapters: Adapters,
    seed: u64,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Launched, AppError> {
    let prometheus = Arc::new(PrometheusMetrics::new());
    let (alerts, worker) = crate::alerts::alert_sink(config, prometheus.alert_counters())?;
    let mut tasks = vec![tokio::spawn(worker.run())];
    let bot = build(
        adapters,
        v,
        config.api.approval_key.as_deref(),
        seed,
        alerts,
        vec![prometheus.clone()],
    )
    .await?;
    prometheus.observe(&bot.guard, &bot.exits);
    if let Some(listen) = v.listen {
        let api_config = ApiConfig {
            listen,
            bearer_token: config.api.bearer_token.clone(),
        };
        let (task, addr) =
            kyzlo_adapters_telemetry::serve(api_config, bot.operator.clone(), prometheus, shutdown)
                .await
                .map_err(|e| AppError::Startup(format!("operator API: {e}")))?;
        tasks.push(tokio::spawn(async move {
            if let Ok(Err(e)) = task.await {
                tracing::error!(error = %e, "operator API stopped");
            }
        }));
        eprintln!("operator API listening on http://{addr}");
    }
    Ok(Launched { bot, tasks })
}
