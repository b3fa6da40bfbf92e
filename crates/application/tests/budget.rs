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
    ErrorClass, ExitKind, Fraction, IntentId, Lamports, PositionId, Price, Size, TokenAmount,
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
