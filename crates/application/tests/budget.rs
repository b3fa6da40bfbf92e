//! Request budgets on paused time. Jupiter's: one request a second (the Free plan: 60 a
//! minute, shared by price reads, quotes and swaps): price reads back off before the room
//! kept for exits is touched, and the stop's exit is never held back by the budget. The
//! RPC provider's: entries' wallet reads and health probes back off, and an exit's sends,
//! status polls and reads wait for room, never refused.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_application::budget::DEFERRED;
use kyzlo_application::entry::{EntryRefusal, EntrySize};
use kyzlo_application::execute::ExecutionOutcome;
use kyzlo_application::gateway::ExitOrder;
use kyzlo_application::journal::PositionRecord;
use kyzlo_application::metrics::ExitModule;
use kyzlo_application::orchestrator::{
    Orchestrator, OrchestratorConfig, ProtectiveExits, TickError,
};
use kyzlo_application::ports::Balances;
use kyzlo_application::testing::{FAKE_PAIR, Harness};
use kyzlo_domain::budget::RequestBudget;
use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::strategy::{MeanReversion, MeanReversionConfig};
use kyzlo_domain::{
    ErrorClass, ExitKind, Fraction, IntentId, Lamports, PositionId, Price, Size, Slippage,
    TokenAmount,
};

const SOL: u64 = 1_000_000_000;
const USDC: u64 = 1_000_000;

#[tokio::test(start_paused = true)]
async fn on_one_request_a_second_price_reads_back_off_and_the_exit_is_never_held_back() {
    let window = RequestBudget::new(60, Duration::from_secs(60), 6).unwrap();
    let h = Harness::with_router_budget(
        100.0,
        Balances {
            base: TokenAmount::new(10 * SOL),
            quote: TokenAmount::new(10_000 * USDC),
            fee_lamports: Lamports::new(SOL),
        },
        window,
    );
    let mut orch = Orchestrator::new(
        h.services(),
        OrchestratorConfig {
            exit_plan: ExitPlanConfig::default(),
            entry_quote_amount: TokenAmount::new(100 * USDC),
            entry_fraction: None,
            max_positions: 1,
            pair: FAKE_PAIR,
            strategy_exits: false,
            protective_exits: ProtectiveExits::OnRecovery,
        },
        MeanReversion::new(MeanReversionConfig {
            window: 10_000,
            ..MeanReversionConfig::default()
        })
        .unwrap(),
    );
    let size = Size::new(TokenAmount::new(10 * SOL)).unwrap();
    orch.adopt(PositionRecord {
        position: PositionId(1),
        entry_price: Price::new(100.0).unwrap(),
        size,
        remaining: size.amount(),
    });
    // Two ticks a second: twice what the plan allows.
    let (mut read, mut deferred, mut started) = (0, 0, 0);
    for half_second in 0..400u32 {
        let p = if half_second < 150 { 100.0 } else { 90.0 };
        h.feed.set(Price::new(p).unwrap());
        match orch.tick().await {
            Ok(report) => {
                read += 1;
                started += report.exits_started;
            }
            Err(TickError::PriceDeferred) => deferred += 1,
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    orch.drain().await;
    // 200 s: at most 54 routine reads a minute (60 less the 6 kept for exits), and the
    // rest deferred without a request.
    assert!(read <= 4 * 54 + 6, "{read} reads");
    assert!(deferred >= 150, "{deferred} deferred");
    assert_eq!(started, 1, "one exit");
    assert!(orch.positions().is_empty(), "the stop closed the position");
    let m = h.metrics.summary();
    assert_eq!(
        m.exits_first_attempt, 1,
        "closed on its first attempt: no quote refused"
    );
    // The exit's quote and swap were made (none deferred: a deferral would have failed the
    // attempt's preparation and shown as a retry).
    assert_eq!(h.venue.quotes().len(), 1);
    assert_eq!(h.venue.swaps().len(), 1);
}

/// 20 RPC calls in any 10 s, 4 kept for exits (a provider five times tighter than
/// Solana's public endpoint). A wallet read and a health probe every 100 ms (an entry's
/// sizing, a halted bot's wait for the chain) take the routine room and are then
/// deferred without a request; an entry sized by the wallet is refused without a read;
/// the stop's exit, which needs more calls than the 4 left, waits for the window to free
/// them and closes on its first attempt, none of its calls refused.
#[tokio::test(start_paused = true)]
async fn on_a_tight_rpc_budget_reads_and_probes_back_off_and_the_exits_calls_are_never_refused() {
    let window = RequestBudget::new(20, Duration::from_secs(10), 4).unwrap();
    let h = Harness::with_rpc_budget(
        95.0,
        Balances {
            base: TokenAmount::new(10 * SOL),
            quote: TokenAmount::new(10_000 * USDC),
            fee_lamports: Lamports::new(SOL),
        },
        window,
    );
    let chain = h.engine.venue().chain.clone();
    let probe = h.services().probe;
    let routine = async {
        let (mut made, mut deferred) = (0u32, 0u32);
        for _ in 0..150 {
            for result in [chain.balances().await.map(|_| ()), probe.probe().await] {
                match result {
                    Ok(()) => made += 1,
                    Err(e) => {
                        assert_eq!((e.operation, e.class), (DEFERRED, ErrorClass::RateLimited));
                        deferred += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (made, deferred)
    };
    let exit = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = h.clock.now();
        let ticket = h
            .gateway
            .submit(
                ExitOrder {
                    module: ExitModule::ExitPlan,
                    position: PositionId(1),
                    kind: ExitKind::StopLoss,
                    fraction: Fraction::ALL,
                    style: kyzlo_domain::ladder::OrderStyle::Market,
                    trigger_price: Price::new(95.0).unwrap(),
                    explanation: "stop".into(),
                },
                IntentId(h.ids.next()),
            )
            .unwrap();
        let report = h
            .exits
            .run(ticket, TokenAmount::new(10 * SOL))
            .await
            .unwrap();
        (report, h.clock.now().saturating_since(started))
    };
    let entry = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.entries
            .run(
                IntentId(h.ids.next()),
                PositionId(2),
                EntrySize {
                    cap: TokenAmount::new(100 * USDC),
                    fraction: Some(Fraction::from_bps(1_000).unwrap()),
                },
            )
            .await
    };
    let ((made, deferred), (report, took), entry) = tokio::join!(routine, exit, entry);
    // 15 s of routine traffic: at most the 16 routine calls per window, the rest
    // deferred.
    assert!(made <= 2 * 16, "{made} routine calls made");
    assert!(deferred >= 250, "{deferred} routine calls deferred");
    assert!(matches!(entry, Err(EntryRefusal::Balance)), "{entry:?}");
    assert!(
        matches!(report.outcome, ExecutionOutcome::Filled { .. }),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 1, "no call of the exit was refused");
    assert_eq!(h.metrics.summary().exits_first_attempt, 1);
    assert_eq!(h.journal.attempts().len(), 1);
    assert!(
        took > Duration::from_secs(5),
        "the exit waited for the window to free room: {took:?}"
    );
}

/// A router whose build is kyzlo's own message: no Jupiter request, six RPC reads.
struct OwnMessageRouter {
    builds: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl kyzlo_application::ports::SwapRouter for OwnMessageRouter {
    async fn quote(
        &self,
        request: &kyzlo_application::ports::QuoteRequest,
    ) -> Result<kyzlo_application::ports::Quote, kyzlo_application::ports::PortError> {
        Ok(kyzlo_application::ports::Quote {
            request: *request,
            expected_out: TokenAmount::new(1),
            min_out: TokenAmount::new(1),
            price_impact_pct: 0.0,
            route_label: "own".into(),
            raw: std::sync::Arc::from(Vec::new()),
        })
    }

    async fn build_swap(
        &self,
        _request: &kyzlo_application::ports::SwapRequest,
    ) -> Result<kyzlo_application::ports::UnsignedTransaction, kyzlo_application::ports::PortError>
    {
        self.builds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(kyzlo_application::ports::UnsignedTransaction {
            bytes: vec![1],
            last_valid_block_height: 1,
            priority_fee: None,
        })
    }

    fn build_cost(&self) -> kyzlo_application::ports::BuildCost {
        kyzlo_application::ports::BuildCost {
            router: 0,
            chain: 6,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_own_message_build_counts_on_the_rpc_budget_not_jupiters_and_an_exits_waits() {
    use kyzlo_application::budget::{Budget, BudgetedRouter, protecting};
    use kyzlo_application::clock::Clock;
    use kyzlo_application::ports::{QuoteRequest, Side, SwapRequest, SwapRouter};
    let clock = Clock::new();
    // Jupiter: 3 a minute, 1 kept for exits (2 routine). The RPC: 10 per 10 s, 4 kept
    // for exits (6 routine).
    let jupiter = Budget::new(
        "jupiter",
        RequestBudget::new(3, Duration::from_secs(60), 1).unwrap(),
        clock,
    );
    let rpc = Budget::new(
        "rpc",
        RequestBudget::new(10, Duration::from_secs(10), 4).unwrap(),
        clock,
    );
    let inner = std::sync::Arc::new(OwnMessageRouter {
        builds: std::sync::atomic::AtomicU32::new(0),
    });
    let router = BudgetedRouter::new(
        inner.clone(),
        Some(jupiter.clone()),
        Some(rpc.clone()),
        FAKE_PAIR,
    );
    let request = QuoteRequest {
        side: Side::Sell,
        amount_in: TokenAmount::new(1),
        slippage: Slippage::from_bps(100).unwrap(),
    };
    let quote = router.quote(&request).await.unwrap();
    let swap = SwapRequest {
        quote,
        priority_fee: Lamports::new(1),
        expiry_slots: Some(20),
        attempt: 1,
        nonce: None,
    };
    // A routine build takes 6 of the RPC's 6 routine requests and none of Jupiter's.
    router.build_swap(&swap).await.unwrap();
    let refused = router.build_swap(&swap).await.unwrap_err();
    assert_eq!(refused.operation, DEFERRED, "{refused}");
    assert_eq!(inner.builds.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Jupiter's second routine request is still there: the builds asked nothing of it.
    router.quote(&request).await.unwrap();
    // An exit's build waits for the RPC's window to turn, and is never refused.
    let started = tokio::time::Instant::now();
    protecting(router.build_swap(&swap)).await.unwrap();
    assert_eq!(inner.builds.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for room: {:?}",
        started.elapsed()
    );
}
