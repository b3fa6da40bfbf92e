//! The one place the services are assembled over the ports: trading control, latency
//! guard, request budgets, attempt engine, exit and entry executors, exit gateway, and
//! what the orchestrator takes. The binary, the chaos simulator and the service tests all
//! build the same graph through it.

use std::sync::Arc;

use kyzlo_domain::ExitBreaker;
use kyzlo_domain::trading_state::TradingState;

use crate::budget::{Budget, BudgetedChain, BudgetedFeed, BudgetedProbe, BudgetedRouter};
use crate::clock::Clock;
use crate::control::{ApprovalKey, TradingControl};
use crate::entry::EntryExecutor;
use crate::execute::{Engine, ExecutionSettings, Venue};
use crate::exit::ExitExecutor;
use crate::gateway::{ExitGateway, GatewayMode};
use crate::guard::{GuardBreakers, GuardedChain, GuardedFeed, GuardedRouter, LatencyGuard};
use crate::journal::Journal;
use crate::metrics::MetricsSink;
use crate::orchestrator::{IdAllocator, Services};
use crate::ports::{AlertSink, Chain, HealthProbe, Pair, PriceFeed, Signer, SwapRouter};
use crate::rng::Jitter;

/// The ports the services run on.
pub struct Ports {
    pub feed: Arc<dyn PriceFeed>,
    /// Quotes and swaps.
    pub router: Arc<dyn SwapRouter>,
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// The wallet's signer.
    pub signer: Arc<dyn Signer>,
    /// The journal.
    pub journal: Arc<dyn Journal>,
    /// Where alerts go.
    pub alerts: Arc<dyn AlertSink>,
    /// Where metric events go.
    pub metrics: Arc<dyn MetricsSink>,
    /// The chain's health probe.
    pub probe: Arc<dyn HealthProbe>,
    /// A probe of the chain's send path that sends nothing (the sends' breaker recovers
    /// by it).
    pub send_probe: Arc<dyn HealthProbe>,
}

/// The validated rules and settings the services apply.
pub struct Settings {
    /// The trading state to start in (the journaled one at start-up).
    pub initial_state: TradingState,
    /// The operator's key for resuming after a halt.
    pub approval_key: Option<ApprovalKey>,
    /// Each guarded dependency's latency breaker and call timeout: new ones, or the
    /// guard another market of the process already runs.
    pub guard: GuardSource,
    /// How exits are executed.
    pub exit: ExecutionSettings,
    /// How entries are executed.
    pub entry: ExecutionSettings,
    /// Consecutive failed exits before a halt.
    pub exit_breaker: ExitBreaker,
    /// The pair's decimals.
    pub pair: Pair,
    /// Whether the gateway blocks ownership conflicts.
    pub gateway_mode: GatewayMode,
    /// Seed of the backoff jitter.
    pub jitter_seed: u64,
    /// The lowest id not yet used by a position or intent.
    pub next_id: u64,
    /// The price feed's and the router's shared request budget, if any.
    pub router_budget: Option<Arc<Budget>>,
    /// The RPC provider's request budget (the chain and its probes), if any.
    pub rpc_budget: Option<Arc<Budget>>,
}

/// Where a market's latency breakers come from.
pub enum GuardSource {
    /// Its own breakers.
    New(Box<GuardBreakers>),
    /// The breakers another market of the process runs: each dependency has one breaker
    /// whoever calls it, and this market's trading state follows it too.
    Shared(Arc<LatencyGuard>),
}

/// The assembled services.
pub struct Assembled {
    /// The trading state's owner.
    pub control: Arc<TradingControl>,
    /// Times calls; admits entries.
    pub guard: Arc<LatencyGuard>,
    /// The attempt engine.
    pub engine: Arc<Engine>,
    /// Runs exits.
    pub exits: Arc<ExitExecutor>,
    /// Runs entries.
    pub entries: Arc<EntryExecutor>,
    /// The single path for exits.
    pub gateway: Arc<ExitGateway>,
    /// Backoff jitter (also for the latency breaker's recovery probing).
    pub jitter: Arc<Jitter>,
    /// The chain's health probe, on the RPC budget: the reads' breaker recovers by it.
    pub chain_probe: Arc<dyn HealthProbe>,
    /// The send path's probe, on the RPC budget: the sends' breaker recovers by it.
    pub send_probe: Arc<dyn HealthProbe>,
    /// What the orchestrator takes.
    pub services: Services,
}

/// Assembles the services over `ports` with `settings`, on `clock` (a shared guard
/// attaches the new trading state; [`LatencyGuard::catch_up`] then moves it to ReduceOnly
/// if a breaker is open).
#[must_use]
pub fn assemble(ports: Ports, settings: Settings, clock: Clock) -> Assembled {
    let shared = matches!(settings.guard, GuardSource::Shared(_));
    let control = Arc::new(TradingControl::new(
        settings.initial_state,
        settings.approval_key,
        ports.journal.clone(),
        ports.alerts,
        ports.metrics.clone(),
        clock,
    ));
    let guard = match settings.guard {
        GuardSource::New(breakers) => Arc::new(LatencyGuard::new(
            *breakers,
            control.clone(),
            ports.metrics.clone(),
            clock,
        )),
        GuardSource::Shared(guard) => guard,
    };
    if shared {
        guard.attach(&control);
    }
    let jitter = Arc::new(Jitter::new(settings.jitter_seed));
    // The budget sits outside the guard: a deferral is no failure of the provider, and a
    // wait for room no latency of it.
    let guarded_router: Arc<dyn SwapRouter> =
        Arc::new(GuardedRouter::new(ports.router, guard.clone()));
    let guarded_feed: Arc<dyn PriceFeed> = Arc::new(GuardedFeed::new(ports.feed, guard.clone()));
    let router: Arc<dyn SwapRouter> =
        if settings.router_budget.is_some() || settings.rpc_budget.is_some() {
            Arc::new(BudgetedRouter::new(
                guarded_router,
                settings.router_budget.clone(),
                settings.rpc_budget.clone(),
                settings.pair,
            ))
        } else {
            guarded_router
        };
    let feed: Arc<dyn PriceFeed> = match &settings.router_budget {
        Some(budget) => Arc::new(BudgetedFeed::new(guarded_feed, budget.clone())),
        None => guarded_feed,
    };
    let guarded_chain: Arc<dyn Chain> = Arc::new(GuardedChain::new(ports.chain, guard.clone()));
    let (chain, chain_probe, send_probe): (
        Arc<dyn Chain>,
        Arc<dyn HealthProbe>,
        Arc<dyn HealthProbe>,
    ) = match &settings.rpc_budget {
        Some(budget) => (
            Arc::new(BudgetedChain::new(guarded_chain, budget.clone())),
            Arc::new(BudgetedProbe::new(ports.probe, budget.clone())),
            Arc::new(BudgetedProbe::new(ports.send_probe, budget.clone())),
        ),
        None => (guarded_chain, ports.probe, ports.send_probe),
    };
    let engine = Arc::new(Engine::new(Venue {
        router,
        chain,
        signer: ports.signer,
        journal: ports.journal.clone(),
        metrics: ports.metrics.clone(),
        clock,
        jitter: jitter.clone(),
        pair: settings.pair,
    }));
    let exits = Arc::new(ExitExecutor::new(
        engine.clone(),
        settings.exit,
        settings.exit_breaker,
        control.clone(),
        settings.pair,
    ));
    let entries = Arc::new(EntryExecutor::new(
        engine.clone(),
        settings.entry,
        control.clone(),
        guard.clone(),
    ));
    let gateway = Arc::new(ExitGateway::new(
        settings.gateway_mode,
        ports.metrics.clone(),
    ));
    let services = Services {
        feed,
        engine: engine.clone(),
        control: control.clone(),
        guard: guard.clone(),
        gateway: gateway.clone(),
        exits: exits.clone(),
        entries: entries.clone(),
        journal: ports.journal,
        metrics: ports.metrics,
        ids: Arc::new(IdAllocator::new(settings.next_id)),
        probe: chain_probe.clone(),
    };
    Assembled {
        control,
        guard,
        engine,
        exits,
        entries,
        gateway,
        jitter,
        chain_probe,
        send_probe,
        services,
    }
}
