//! A request budget of one request a second (Jupiter's Free plan: 60 a minute, shared by
//! price reads, quotes and swaps), on paused time: price reads back off before the room
//! kept for exits is touched, and the stop's exit is never held back by the budget.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_application::journal::PositionRecord;
use kyzlo_application::orchestrator::{
    Orchestrator, OrchestratorConfig, ProtectiveExits, TickError,
};
use kyzlo_application::ports::Balances;
use kyzlo_application::testing::{FAKE_PAIR, Harness};
use kyzlo_domain::budget::RequestBudget;
use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::strategy::{MeanReversion, MeanReversionConfig};
use kyzlo_domain::{Lamports, PositionId, Price, Size, TokenAmount};

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
