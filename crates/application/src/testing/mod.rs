//! Hand-written fakes of the ports for service tests (enabled for this crate's tests and,
//! through the `testing` feature, for other crates' tests): a scripted venue whose chain
//! can time out, drop, refuse, fail on chain or land late, on tokio's (paused) clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_domain::{ErrorClass, Lamports, Price, TokenAmount, TxSignature};

use crate::clock::Clock;
use crate::ports::{
    Alert, AlertKind, AlertSink, Balances, Blockhash, Chain, Commitment, Fill, HealthProbe,
    Observed, Pair, PortError, PriceFeed, PriceTick, Quote, QuoteRequest, RecentBlockhash, Side,
    SignedTransaction, Signer, StatusLookup, SwapRequest, SwapRouter, TxStatus,
    UnsignedTransaction, WalletAddress,
};

mod fleet;
pub mod journal_suite;
mod venue;

pub use fleet::MemoryFleetStore;
pub use venue::{FAKE_PAIR, FakeVenue, SendScript};

/// An alert sink that keeps what it gets.
#[derive(Debug, Default)]
pub struct RecordingAlerts {
    alerts: Mutex<Vec<Alert>>,
}

impl RecordingAlerts {
    /// Everything received.
    #[must_use]
    pub fn all(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many of `kind` were received.
    #[must_use]
    pub fn count(&self, kind: AlertKind) -> usize {
        self.all().iter().filter(|a| a.kind == kind).count()
    }
}

#[async_trait]
impl AlertSink for RecordingAlerts {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        self.alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(alert.clone());
        Ok(())
    }
}

/// A price the test sets.
#[derive(Debug)]
pub struct FakeFeed {
    price: Mutex<Result<Price, ErrorClass>>,
}

impl FakeFeed {
    /// A feed at `price`.
    #[must_use]
    pub fn new(price: Price) -> Self {
        Self {
            price: Mutex::new(Ok(price)),
        }
    }

    /// Moves the price.
    pub fn set(&self, price: Price) {
        *self.price.lock().unwrap_or_else(PoisonError::into_inner) = Ok(price);
    }

    /// Makes the next reads fail with `class`.
    pub fn fail(&self, class: ErrorClass) {
        *self.price.lock().unwrap_or_else(PoisonError::into_inner) = Err(class);
    }
}

#[async_trait]
impl PriceFeed for FakeFeed {
    async fn price(&self) -> Result<PriceTick, PortError> {
        match *self.price.lock().unwrap_or_else(PoisonError::into_inner) {
            Ok(price) => Ok(PriceTick { price }),
            Err(class) => Err(PortError::new("fake.price", class, "scripted")),
        }
    }
}

/// Every service wired over the fakes, on tokio's clock: what service tests start from.
pub struct Harness {
    /// The scripted price.
    pub feed: Arc<FakeFeed>,
    /// The scripted router, signer and chain.
    pub venue: Arc<FakeVenue>,
    /// The journal.
    pub journal: Arc<crate::journal::MemoryJournal>,
    /// Alerts received.
    pub alerts: Arc<RecordingAlerts>,
    /// Metric totals.
    pub metrics: Arc<crate::metrics::CountingMetrics>,
    /// The trading state.
    pub control: Arc<crate::control::TradingControl>,
    /// The latency guard.
    pub guard: Arc<crate::guard::LatencyGuard>,
    /// The exit gateway.
    pub gateway: Arc<crate::gateway::ExitGateway>,
    /// The attempt engine.
    pub engine: Arc<crate::execute::Engine>,
    /// The exit executor.
    pub exits: Arc<crate::exit::ExitExecutor>,
    /// The entry executor.
    pub entries: Arc<crate::entry::EntryExecutor>,
    pub ids: Arc<crate::orchestrator::IdAllocator>,
    /// Tokio's clock.
    pub clock: Clock,
    services: crate::orchestrator::Services,
}

/// The approval key the harness configures.
pub const HARNESS_APPROVAL_KEY: &str = "harness approval key 0123456789";

impl Harness {
    /// Services at price `price` with a wallet of `balances` and the default settings.
    #[must_use]
    pub fn new(price: f64, balances: Balances) -> Self {
        Self::with_settings(
            price,
            balances,
            crate::execute::ExecutionSettings::exit_defaults(),
            kyzlo_domain::latency_breaker::LatencyBreakerConfig::default(),
        )
    }

    /// As [`Harness::new`] with explicit exit settings and breaker configuration.
    ///
    /// # Panics
    /// On an invalid price or breaker configuration (test inputs).
    #[must_use]
    pub fn with_settings(
        price: f64,
        balances: Balances,
        exit_settings: crate::execute::ExecutionSettings,
        breaker: kyzlo_domain::latency_breaker::LatencyBreakerConfig,
    ) -> Self {
        Self::build(price, balances, exit_settings, breaker, None, None)
    }

    /// As [`Harness::new`], with the feed and the router on one request budget.
    #[must_use]
    pub fn with_router_budget(
        price: f64,
        balances: Balances,
        window: kyzlo_domain::budget::RequestBudget,
    ) -> Self {
        Self::build(
            price,
            balances,
            crate::execute::ExecutionSettings::exit_defaults(),
            kyzlo_domain::latency_breaker::LatencyBreakerConfig::default(),
            Some(window),
            None,
        )
    }

    /// As [`Harness::new`], with the chain and its health probe on the RPC provider's
    /// request budget.
    #[must_use]
    pub fn with_rpc_budget(
        price: f64,
        balances: Balances,
        window: kyzlo_domain::budget::RequestBudget,
    ) -> Self {
        Self::build(
            price,
            balances,
            crate::execute::ExecutionSettings::exit_defaults(),
            kyzlo_domain::latency_breaker::LatencyBreakerConfig::default(),
            None,
            Some(window),
        )
    }

    fn build(
        price: f64,
        balances: Balances,
        exit_settings: crate::execute::ExecutionSettings,
        breaker: kyzlo_domain::latency_breaker::LatencyBreakerConfig,
        router_budget: Option<kyzlo_domain::budget::RequestBudget>,
        rpc_budget: Option<kyzlo_domain::budget::RequestBudget>,
    ) -> Self {
        use crate::assemble::{Ports, Settings, assemble};
        use crate::control::ApprovalKey;
        use crate::execute::ExecutionSettings;
        use crate::gateway::GatewayMode;
        use kyzlo_domain::ladder::{EscalationLadder, OrderStyle, Rung};
        use kyzlo_domain::{ExitBreaker, Slippage};

        let clock = Clock::new();
        #[allow(clippy::expect_used)]
        let feed = Arc::new(FakeFeed::new(Price::new(price).expect("test price")));
        let venue = Arc::new(FakeVenue::new(Arc::clone(&feed), balances, clock));
        let journal = Arc::new(crate::journal::MemoryJournal::new());
        let alerts = Arc::new(RecordingAlerts::default());
        let metrics = Arc::new(crate::metrics::CountingMetrics::new());
        #[allow(clippy::expect_used)]
        let entry_ladder = EscalationLadder::new(
            vec![Rung {
                slippage: Slippage::from_bps(50).expect("bps"),
                priority_fee: Lamports::new(20_000),
                style: OrderStyle::LimitLike,
            }],
            Slippage::from_bps(500).expect("bps"),
        )
        .expect("ladder");
        #[allow(clippy::expect_used)]
        let settings = Settings {
            initial_state: kyzlo_domain::trading_state::TradingState::Active,
            approval_key: ApprovalKey::new(HARNESS_APPROVAL_KEY).ok(),
            // Two seconds for a price, a quote or a read, 200 ms for a send (a send may
            // still have been forwarded; the rebroadcast gives it another chance).
            guard: crate::assemble::GuardSource::New(Box::new(
                crate::guard::GuardBreakers::new(&crate::guard::GuardLimits::new(
                    breaker,
                    Duration::from_secs(2),
                    Duration::from_millis(200),
                ))
                .expect("breaker config"),
            )),
            exit: exit_settings,
            entry: ExecutionSettings::entry_defaults(entry_ladder),
            exit_breaker: ExitBreaker::default(),
            pair: FAKE_PAIR,
            gateway_mode: GatewayMode::Enforce,
            jitter_seed: 42,
            next_id: 1,
            router_budget: router_budget
                .map(|window| crate::budget::Budget::new("the router", window, clock)),
            rpc_budget: rpc_budget
                .map(|window| crate::budget::Budget::new("the RPC provider", window, clock)),
        };
        let a = assemble(
            Ports {
                feed: feed.clone(),
                router: venue.clone(),
                chain: venue.clone(),
                signer: venue.clone(),
                journal: journal.clone(),
                alerts: alerts.clone(),
                metrics: metrics.clone(),
                probe: venue.clone(),
                send_probe: venue.clone(),
            },
            settings,
            clock,
        );
        Self {
            ids: a.services.ids.clone(),
            gateway: a.gateway,
            feed,
            venue,
            journal,
            alerts,
            metrics,
            control: a.control,
            guard: a.guard,
            engine: a.engine,
            exits: a.exits,
            entries: a.entries,
            services: a.services,
            clock,
        }
    }

    /// The services as the orchestrator takes them.
    #[must_use]
    pub fn services(&self) -> crate::orchestrator::Services {
        self.services.clone()
    }

    /// Every landed transaction grouped by the intent whose attempt it was.
    #[must_use]
    pub fn landed_per_intent(&self) -> BTreeMap<kyzlo_domain::IntentId, usize> {
        let attempts = self.journal.attempts();
        let mut per_intent = BTreeMap::new();
        for (sig, _, _) in self.venue.landed() {
            // A landing the journal does not know of is counted under an impossible id,
            // so a test sees it.
            let intent = attempts
                .iter()
                .find(|(a, _)| a.signature == sig)
                .map_or(kyzlo_domain::IntentId(u64::MAX), |(a, _)| a.intent);
            *per_intent.entry(intent).or_insert(0) += 1;
        }
        per_intent
    }
}
