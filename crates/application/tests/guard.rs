//! The latency guard's breakers per dependency, on paused time: the chain is two
//! dependencies, its reads and its sends, each opened only by its own calls, cut off at
//! its own timeout and closed only by its own probe; the sends' probe sends nothing, and a
//! probe the RPC provider's budget defers is no failure.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::bot::{Bot, BotPorts, BotSettings};
use kyzlo_application::budget::{Budget, BudgetedProbe};
use kyzlo_application::clock::Clock;
use kyzlo_application::control::{ApprovalKey, TradingControl};
use kyzlo_application::execute::ExecutionSettings;
use kyzlo_application::gateway::GatewayMode;
use kyzlo_application::guard::{GuardBreakers, GuardLimits, GuardedChain, LatencyGuard};
use kyzlo_application::journal::{Journal, MemoryJournal};
use kyzlo_application::metrics::{CountingMetrics, Dependency};
use kyzlo_application::orchestrator::ProtectiveExits;
use kyzlo_application::ports::{
    AlertKind, Balances, Blockhash, Chain, Fill, HealthProbe, Observed, PortError, RecentBlockhash,
    Side, SignedTransaction, StatusLookup, TxStatus,
};
use kyzlo_application::rng::Jitter;
use kyzlo_application::testing::{
    FAKE_PAIR, FakeFeed, FakeVenue, HARNESS_APPROVAL_KEY, Harness, RecordingAlerts,
};
use kyzlo_domain::budget::RequestBudget;
use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::latency_breaker::{BreakerState, LatencyBreakerConfig};
use kyzlo_domain::strategy::MeanReversionConfig;
use kyzlo_domain::trading_state::{ReduceOnlyCause, TradingState};
use kyzlo_domain::{ErrorClass, ExitBreaker, Lamports, Price, Timestamp, TokenAmount, TxSignature};

const SOL: u64 = 1_000_000_000;

fn wallet() -> Balances {
    Balances {
        base: TokenAmount::new(10 * SOL),
        quote: TokenAmount::new(10_000 * 1_000_000),
        fee_lamports: Lamports::new(SOL),
    }
}

fn tx() -> SignedTransaction {
    SignedTransaction {
        bytes: Arc::from(&[1u8, 2, 3][..]),
        signature: TxSignature([1; 64]),
        blockhash: Blockhash([2; 32]),
        last_valid_block_height: 1_000,
    }
}

/// A chain whose sends and reads each take as long as the test says; it counts sends.
#[derive(Default)]
struct Latencies {
    send_ms: AtomicU64,
    read_ms: AtomicU64,
    sends: AtomicU64,
}

impl Latencies {
    fn new(send_ms: u64, read_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            send_ms: AtomicU64::new(send_ms),
            read_ms: AtomicU64::new(read_ms),
            sends: AtomicU64::new(0),
        })
    }

    async fn read(&self) {
        tokio::time::sleep(Duration::from_millis(self.read_ms.load(Ordering::SeqCst))).await;
    }

    fn sends(&self) -> u64 {
        self.sends.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Chain for Latencies {
    async fn send(&self, _tx: &SignedTransaction) -> Result<(), PortError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.send_ms.load(Ordering::SeqCst))).await;
        Ok(())
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        _lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        self.read().await;
        Ok(Observed {
            context_slot: 10,
            value: vec![None; signatures.len()],
        })
    }

    async fn blockhash_valid(
        &self,
        _blockhash: Blockhash,
        _min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        self.read().await;
        Ok(Observed {
            context_slot: 10,
            value: true,
        })
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        self.read().await;
        Ok(10)
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        self.read().await;
        Ok(RecentBlockhash {
            blockhash: Blockhash([2; 32]),
            last_valid_block_height: 160,
        })
    }

    async fn fill(&self, _signature: TxSignature, _side: Side) -> Result<Option<Fill>, PortError> {
        self.read().await;
        Ok(None)
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        self.read().await;
        Ok(wallet())
    }
}

/// A probe that fails its first `failures` calls, then answers; it counts calls.
struct Probe {
    failures: AtomicU64,
    calls: AtomicU64,
    healthy: AtomicBool,
}

impl Probe {
    fn failing_first(failures: u64) -> Arc<Self> {
        Arc::new(Self {
            failures: AtomicU64::new(failures),
            calls: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl HealthProbe for Probe {
    async fn probe(&self) -> Result<(), PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let scripted_failure = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if scripted_failure || !self.healthy.load(Ordering::SeqCst) {
            return Err(PortError::new(
                "probe",
                ErrorClass::NodeUnhealthy,
                "scripted",
            ));
        }
        Ok(())
    }
}

fn harness(breaker: LatencyBreakerConfig) -> Harness {
    Harness::with_settings(95.0, wallet(), ExecutionSettings::exit_defaults(), breaker)
}

/// Sends slower than their 200 ms timeout open the sends' breaker alone: entries stop
/// (ReduceOnly, alerted once, naming `rpc_sends`) while reads go on, timed into a breaker
/// that stays closed.
#[tokio::test(start_paused = true)]
async fn slow_sends_open_only_the_rpc_sends_breaker_and_entries_stop() {
    let h = harness(LatencyBreakerConfig {
        failure_threshold: 3,
        ..LatencyBreakerConfig::default()
    });
    let node = Latencies::new(1_000, 20);
    let chain = GuardedChain::new(node.clone(), h.guard.clone());
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let e = chain.send(&tx()).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::RpcTimeout);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(200),
            "the sends' own timeout"
        );
    }
    for _ in 0..30 {
        chain.block_height().await.unwrap();
        chain
            .statuses(&[TxSignature([1; 64])], StatusLookup::Recent)
            .await
            .unwrap();
    }
    assert_eq!(h.guard.state_of(Dependency::RpcSends), BreakerState::Open);
    assert_eq!(h.guard.state_of(Dependency::RpcReads), BreakerState::Closed);
    assert_eq!(h.guard.state_of(Dependency::Router), BreakerState::Closed);
    assert_eq!(
        h.guard.state_of(Dependency::PriceFeed),
        BreakerState::Closed
    );
    assert!(matches!(
        h.control.state(),
        TradingState::ReduceOnly {
            cause: ReduceOnlyCause::LatencyBreakerOpen,
            ..
        }
    ));
    assert!(!h.guard.admit_entry().await);
    let alerts = h.alerts.all();
    let breaker_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::LatencyBreaker)
        .collect();
    assert_eq!(breaker_alerts.len(), 1);
    assert!(
        breaker_alerts[0]
            .message
            .starts_with("rpc_sends latency breaker open")
    );
    let summary = h.metrics.summary();
    assert_eq!(summary.calls.get("rpc_sends"), Some(&(3, 3)));
    assert_eq!(summary.calls.get("rpc_reads"), Some(&(60, 0)));
}

/// Reads whose P99 passes the threshold open the reads' breaker alone, while sends answer
/// and their breaker stays closed; a 500 ms read is within the reads' 2 s timeout, where a
/// send would have been cut at 200 ms.
#[tokio::test(start_paused = true)]
async fn slow_reads_open_only_the_rpc_reads_breaker_and_sends_stay_closed() {
    let h = harness(LatencyBreakerConfig {
        p99_threshold: Duration::from_millis(300),
        min_latency_samples: 5,
        ..LatencyBreakerConfig::default()
    });
    let node = Latencies::new(20, 500);
    let chain = GuardedChain::new(node.clone(), h.guard.clone());
    for _ in 0..5 {
        assert_eq!(chain.block_height().await.unwrap(), 10, "not cut off");
    }
    for _ in 0..10 {
        chain.send(&tx()).await.unwrap();
    }
    assert_eq!(h.guard.state_of(Dependency::RpcReads), BreakerState::Open);
    assert_eq!(h.guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert!(!h.control.state().allows_entry());
    assert!(!h.guard.admit_entry().await);
}

/// The sends' breaker closes only by its own probe, and recovering it sends nothing: a
/// healthy reads' probe and successful reads leave it open, its failing probes keep it
/// open (with backoff), and its first healthy probe closes it and lifts ReduceOnly.
#[tokio::test(start_paused = true)]
async fn the_sends_breaker_recovers_by_its_own_probe_without_sending() {
    let h = harness(LatencyBreakerConfig {
        failure_threshold: 2,
        recovery_timeout: Duration::from_secs(1),
        half_open_max_probes: 1,
        ..LatencyBreakerConfig::default()
    });
    let node = Latencies::new(1_000, 20);
    let chain = GuardedChain::new(node.clone(), h.guard.clone());
    for _ in 0..2 {
        let _ = chain.send(&tx()).await;
    }
    assert_eq!(h.guard.state_of(Dependency::RpcSends), BreakerState::Open);
    let sends_when_opened = node.sends();
    let jitter = Jitter::new(3);
    // The reads' breaker is closed: its probe has nothing to do and is never called.
    let reads_probe = Probe::failing_first(0);
    h.guard
        .recover(Dependency::RpcReads, reads_probe.as_ref(), &jitter)
        .await;
    assert_eq!(reads_probe.calls(), 0);
    // Half-open, healthy reads prove nothing about the send path.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = h.guard.admit_entry().await;
    for _ in 0..20 {
        chain.block_height().await.unwrap();
    }
    assert_ne!(h.guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert!(!h.control.state().allows_entry());
    // Its own probe: two failures reopen it, the third answer closes it.
    let send_probe = Probe::failing_first(2);
    h.guard
        .recover(Dependency::RpcSends, send_probe.as_ref(), &jitter)
        .await;
    assert_eq!(send_probe.calls(), 3);
    assert_eq!(h.guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert_eq!(node.sends(), sends_when_opened, "recovery sent nothing");
    assert_eq!(h.control.state(), TradingState::Active);
    assert!(h.guard.admit_entry().await);
}

/// A recovery probe the RPC budget defers made no request: its permit is given back, it
/// is not counted as a failure (which would reopen the breaker and restart its recovery
/// timeout), and the probe goes through once routine room is back.
#[tokio::test(start_paused = true)]
async fn a_recovery_probe_deferred_by_the_rpc_budget_is_no_failure() {
    let clock = Clock::new();
    let control = Arc::new(TradingControl::new(
        TradingState::Active,
        None,
        Arc::new(MemoryJournal::new()),
        Arc::new(RecordingAlerts::default()),
        Arc::new(CountingMetrics::new()),
        clock,
    ));
    let metrics = Arc::new(CountingMetrics::new());
    let guard = LatencyGuard::new(
        GuardBreakers::new(&GuardLimits::new(
            LatencyBreakerConfig {
                recovery_timeout: Duration::from_secs(30),
                half_open_max_probes: 1,
                probe_timeout: Duration::from_secs(1),
                ..LatencyBreakerConfig::default()
            },
            Duration::from_secs(2),
            Duration::from_millis(200),
        ))
        .unwrap(),
        control.clone(),
        metrics.clone(),
        clock,
    );
    guard.restore_open().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    // Routine calls take every request but the 4 kept for exits.
    let budget = Budget::new(
        "the RPC provider",
        RequestBudget::new(10, Duration::from_secs(10), 4).unwrap(),
        clock,
    );
    for _ in 0..6 {
        budget
            .call("chain.balances", async { Ok::<_, PortError>(()) })
            .await
            .unwrap();
    }
    let started = clock.now();
    let inner = Probe::failing_first(0);
    let probe = BudgetedProbe::new(inner.clone(), budget);
    guard
        .recover(Dependency::RpcSends, &probe, &Jitter::new(9))
        .await;
    let took = clock.now().saturating_since(started);
    assert_eq!(guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert_eq!(inner.calls(), 1, "one request, once room was back");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(20),
        "closed as soon as the window had room, without reopening: {took:?}"
    );
    let sends = guard
        .snapshots()
        .into_iter()
        .find(|(d, _)| *d == Dependency::RpcSends)
        .unwrap()
        .1;
    assert_eq!(sends.failures, 0);
    assert_eq!(metrics.summary().calls.get("health"), Some(&(1, 0)));
}

/// The bot's recovery loop closes the sends' breaker by the send path's probe, never by
/// the chain's health probe: a bot restarted in ReduceOnly stays there while only the
/// send probe fails, and resumes once it answers, without sending anything.
#[tokio::test(start_paused = true)]
async fn a_bot_recovers_its_sends_breaker_by_the_send_probe_only() {
    let clock = Clock::new();
    let journal = Arc::new(MemoryJournal::new());
    journal
        .record_trading_state(&TradingState::ReduceOnly {
            cause: ReduceOnlyCause::LatencyBreakerOpen,
            since: Timestamp::ZERO,
        })
        .await
        .unwrap();
    let feed = Arc::new(FakeFeed::new(Price::new(95.0).unwrap()));
    let venue = Arc::new(FakeVenue::new(feed.clone(), wallet(), clock));
    let send_probe = Probe::failing_first(0);
    send_probe.healthy.store(false, Ordering::SeqCst);
    let exit = ExecutionSettings::exit_defaults();
    let bot = Bot::start(
        BotPorts {
            feed,
            router: venue.clone(),
            chain: venue.clone(),
            signer: venue.clone(),
            probe: venue.clone(),
            send_probe: send_probe.clone(),
            journal,
            alerts: Arc::new(RecordingAlerts::default()),
            metrics: Vec::new(),
            clock,
        },
        BotSettings {
            pair: FAKE_PAIR,
            // A window the test never fills: the strategy stays silent.
            strategy: MeanReversionConfig {
                window: 10_000,
                ..MeanReversionConfig::default()
            },
            exit_plan: ExitPlanConfig::default(),
            entry: ExecutionSettings::entry_defaults(exit.ladder.clone()),
            exit,
            guard: GuardLimits::new(
                LatencyBreakerConfig {
                    recovery_timeout: Duration::from_secs(1),
                    recovery_backoff_max: Duration::from_secs(2),
                    ..LatencyBreakerConfig::default()
                },
                Duration::from_secs(2),
                Duration::from_millis(200),
            ),
            exit_breaker_threshold: ExitBreaker::DEFAULT_THRESHOLD,
            entry_quote_amount: TokenAmount::new(100_000_000),
            entry_fraction: None,
            max_positions: 1,
            strategy_exits: true,
            protective_exits: ProtectiveExits::OnRecovery,
            router_budget: None,
            rpc_budget: None,
            tick_interval: Duration::from_millis(500),
            approval_key: ApprovalKey::new(HARNESS_APPROVAL_KEY).ok(),
            gateway_mode: GatewayMode::Enforce,
            jitter_seed: 7,
        },
    )
    .await
    .unwrap();
    let (guard, control) = (bot.guard(), bot.control());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(bot.run(shutdown, Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(guard.state_of(Dependency::RpcReads), BreakerState::Closed);
    assert_eq!(guard.state_of(Dependency::PriceFeed), BreakerState::Closed);
    assert_ne!(guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert!(!control.state().allows_entry());
    assert!(send_probe.calls() > 1, "probed with backoff");
    send_probe.healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert_eq!(control.state(), TradingState::Active);
    assert_eq!(venue.sends(), 0, "no transaction was a probe");
    stop.send(true).unwrap();
    let _ = running.await.unwrap();
}
