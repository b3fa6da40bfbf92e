//! The tick orchestrator over the fake venue on paused time: the BUG-003 crash, 1,000
//! positions exiting at once, halted and reduce-only trading, protective exits while
//! halted, and failing ticks.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_application::journal::{Journal, PositionRecord};
use kyzlo_application::orchestrator::{
    ForceExitError, Orchestrator, OrchestratorConfig, ProtectiveExits,
};
use kyzlo_application::ports::Balances;
use kyzlo_application::testing::{Harness, SendScript};
use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::strategy::{MeanReversion, MeanReversionConfig};
use kyzlo_domain::trading_state::{HaltCause, ReduceOnlyCause};
use kyzlo_domain::{ErrorClass, Lamports, PositionId, Price, Size, TokenAmount};

const SOL: u64 = 1_000_000_000;
const USDC: u64 = 1_000_000;
/// A z-score window, and prices that fill it calmly: a drop to 95 after them is a
/// dip of more than two standard deviations.
const WINDOW: usize = 10;
const WARM: [f64; 9] = [100.0, 101.0, 99.0, 100.0, 100.5, 99.5, 100.0, 101.0, 99.0];

fn wallet(sol: u64) -> Balances {
    Balances {
        base: TokenAmount::new(sol * SOL),
        quote: TokenAmount::new(10_000 * USDC),
        fee_lamports: Lamports::new(SOL),
    }
}

fn orchestrator(h: &Harness, max_positions: usize, window: usize) -> Orchestrator {
    orchestrator_with(h, max_positions, window, ProtectiveExits::OnRecovery)
}

fn orchestrator_with(
    h: &Harness,
    max_positions: usize,
    window: usize,
    protective_exits: ProtectiveExits,
) -> Orchestrator {
    Orchestrator::new(
        h.services(),
        OrchestratorConfig {
            exit_plan: ExitPlanConfig::default(),
            entry_quote_amount: TokenAmount::new(100 * USDC),
            entry_fraction: None,
            max_positions,
            pair: kyzlo_application::testing::FAKE_PAIR,
            strategy_exits: true,
            protective_exits,
        },
        MeanReversion::new(MeanReversionConfig {
            window,
            ..MeanReversionConfig::default()
        })
        .unwrap(),
    )
}

fn position(id: u64, sol: u64) -> PositionRecord {
    let size = Size::new(TokenAmount::new(sol * SOL)).unwrap();
    PositionRecord {
        position: PositionId(id),
        entry_price: Price::new(100.0).unwrap(),
        size,
        remaining: size.amount(),
    }
}

fn price(p: f64) -> Price {
    Price::new(p).unwrap()
}

#[tokio::test(start_paused = true)]
async fn bug_003_crash_with_timing_out_submissions_keeps_the_loss_near_the_stop() {
    let h = Harness::new(100.0, wallet(10));
    // The RPC outage: the first submission's send hangs and the transaction never lands.
    h.venue
        .script([SendScript::TimeoutThenLand { lands_after: None }]);
    let mut orch = orchestrator(&h, 1, 20);
    orch.adopt(position(1, 10));
    let quote_before = h.venue.balances().quote;
    // The seeds' timeline: from 100 toward 80 over 120 s; the 5% stop is hit at 30 s.
    let mut stop_hit_at = None;
    for second in 0..=150u32 {
        let p = (100.0 - f64::from(second) * 20.0 / 120.0).max(80.0);
        h.feed.set(price(p));
        let report = orch.tick().await.unwrap();
        if report.exits_started > 0 && stop_hit_at.is_none() {
            stop_hit_at = Some(second);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    orch.drain().await;
    assert_eq!(stop_hit_at, Some(30));
    assert!(orch.positions().is_empty(), "the position is closed");
    let received = h.venue.balances().quote.get() - quote_before.get();
    let realised = received as f64 / USDC as f64 / 10.0;
    let loss = 1.0 - realised / 100.0;
    // Two attempts bounded in 30 s: at most ~10 s of a 20%-in-120-s crash past the stop.
    assert!(loss < 0.075, "realised loss {:.2}%", loss * 100.0);
    assert!(loss >= 0.05);
    let m = h.metrics.summary();
    assert_eq!((m.exits_required_retry, m.exits_deadline_exceeded), (1, 0));
    assert!(m.exit_times[0] < Duration::from_secs(30));
    for (intent, n) in h.landed_per_intent() {
        assert_eq!(n, 1, "{intent}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_positions_exit_at_once_each_exactly_once() {
    let h = Harness::new(100.0, wallet(1_000));
    let mut orch = orchestrator(&h, 1_000, 20);
    for id in 1..=1_000 {
        orch.adopt(position(id, 1));
    }
    h.feed.set(price(94.0));
    let report = orch.tick().await.unwrap();
    assert_eq!(report.exits_started, 1_000);
    // A second tick while they run starts nothing new.
    let again = orch.tick().await.unwrap();
    assert_eq!(again.exits_started, 0);
    orch.drain().await;
    assert!(orch.positions().is_empty());
    assert_eq!(h.venue.landed().len(), 1_000);
    assert_eq!(h.venue.balances().base, TokenAmount::ZERO);
    let per_intent = h.landed_per_intent();
    assert_eq!(per_intent.len(), 1_000);
    assert!(per_intent.values().all(|n| *n == 1));
    let m = h.metrics.summary();
    assert_eq!(m.exits_first_attempt, 1_000);
    assert_eq!(m.gateway_conflicts, 0);
}

#[tokio::test(start_paused = true)]
async fn a_halted_bot_places_no_entries_and_no_automatic_exits_but_a_force_exit_goes_through() {
    let h = Harness::new(100.0, wallet(10));
    let mut orch = orchestrator_with(&h, 2, WINDOW, ProtectiveExits::OperatorOnly);
    orch.adopt(position(1, 10));
    let _ = h.control.halt(HaltCause::Operator, "maintenance").await;
    // A crash through the stop that would also signal an entry.
    for p in WARM.iter().copied().chain([80.0, 79.0]) {
        h.feed.set(price(p));
        let report = orch.tick().await.unwrap();
        assert_eq!(
            (report.entries_started, report.exits_started),
            (0, 0),
            "at {p}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    orch.drain().await;
    assert!(h.venue.swaps().is_empty());
    assert_eq!(orch.positions().len(), 1);

    assert_eq!(
        orch.force_exit(PositionId(9)),
        Err(ForceExitError::UnknownPosition(PositionId(9)))
    );
    orch.force_exit(PositionId(1)).unwrap();
    assert!(
        orch.force_exit(PositionId(1)).is_err(),
        "one exit per position"
    );
    orch.drain().await;
    assert!(orch.positions().is_empty());
    assert!(h.control.state().is_halted());
}

#[tokio::test(start_paused = true)]
async fn reduce_only_still_lets_a_stop_loss_fire_but_no_entry() {
    let h = Harness::new(100.0, wallet(10));
    let mut orch = orchestrator(&h, 2, WINDOW);
    orch.adopt(position(1, 10));
    assert!(
        h.control
            .enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
            .await
    );
    let mut entries = 0;
    let mut exits = 0;
    for p in WARM.iter().copied().chain([94.0, 80.0]) {
        h.feed.set(price(p));
        let report = orch.tick().await.unwrap();
        entries += report.entries_started;
        exits += report.exits_started;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    orch.drain().await;
    assert_eq!((entries, exits), (0, 1));
    assert!(orch.positions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dip_opens_a_position_once_and_its_stop_closes_it() {
    let h = Harness::new(100.0, wallet(0));
    let mut orch = orchestrator(&h, 1, WINDOW);
    for p in WARM.iter().copied().chain([95.0]) {
        h.feed.set(price(p));
        orch.tick().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    orch.drain().await;
    let positions = orch.positions();
    assert_eq!(positions.len(), 1);
    let entry = positions[0].entry_price.get();
    assert!((entry - 95.0).abs() < 0.01, "{entry}");
    assert_eq!(h.venue.landed().len(), 1);
    // 5% under the entry.
    h.feed.set(price(entry * 0.94));
    orch.tick().await.unwrap();
    orch.drain().await;
    assert!(orch.positions().is_empty());
    assert_eq!(h.venue.landed().len(), 2);
    let journaled = h.journal.load().await.unwrap();
    assert!(journaled.open_positions.is_empty());
    assert!(journaled.unresolved.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_tick_is_counted_and_the_next_one_runs() {
    let h = Harness::new(100.0, wallet(10));
    let mut orch = orchestrator(&h, 1, 5);
    h.feed.fail(ErrorClass::RpcTimeout);
    assert!(orch.tick().await.is_err());
    h.feed.set(price(100.0));
    assert!(orch.tick().await.is_ok());
    let m = h.metrics.summary();
    assert_eq!((m.ticks, m.tick_errors), (1, 1));
}

/// Ticks once a second at `p` for `seconds`; the exits started.
async fn ticks_at(orch: &mut Orchestrator, h: &Harness, p: f64, seconds: u32) -> u32 {
    let mut started = 0;
    for _ in 0..seconds {
        h.feed.set(price(p));
        started += orch.tick().await.unwrap().exits_started;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    started
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_fires_while_halted_is_retried_on_the_widest_rung_once_the_chain_answers() {
    let h = Harness::new(100.0, wallet(10));
    let mut orch = orchestrator(&h, 1, WINDOW);
    orch.adopt(position(1, 10));
    let _ = h
        .control
        .halt(HaltCause::ExitBreaker, "2 consecutive failed exits")
        .await;
    // The chain does not answer: the stop is below, but nothing is tried.
    h.venue.set_reachable(false);
    assert_eq!(ticks_at(&mut orch, &h, 90.0, 5).await, 0);
    assert!(h.venue.swaps().is_empty());
    // It answers again: one protective exit, on the widest rung (5%), alerted.
    h.venue.set_reachable(true);
    // The first try's two attempts are dropped by the chain and die; the next try lands.
    h.venue.script([SendScript::Drop, SendScript::Drop]);
    let started = ticks_at(&mut orch, &h, 90.0, 1).await;
    assert_eq!(started, 1);
    let first = h.venue.swaps();
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].quote.request.slippage.bps().get(),
        500,
        "the widest rung"
    );
    let alerts = h.alerts.all();
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == kyzlo_application::ports::AlertKind::ProtectiveExit),
        "{alerts:?}"
    );
    // The failed try is not repeated on every tick: one more, after its backoff.
    let mut started = 0;
    let mut seconds = 0;
    while !orch.positions().is_empty() && seconds < 300 {
        started += ticks_at(&mut orch, &h, 90.0, 1).await;
        seconds += 1;
    }
    orch.drain().await;
    assert!(orch.positions().is_empty(), "closed by the second try");
    assert_eq!(started, 1, "one more try, not one per tick");
    assert_eq!(
        h.venue.swaps().len(),
        3,
        "two dropped attempts, then the landing"
    );
    assert!(
        h.venue
            .swaps()
            .iter()
            .all(|s| s.quote.request.slippage.bps().get() == 500)
    );
    assert!(
        h.control.state().is_halted(),
        "still halted: only the stop ran"
    );
    for (intent, n) in h.landed_per_intent() {
        assert_eq!(n, 1, "{intent}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_position_and_operator_only_mode_get_no_protective_exit() {
    for held in [true, false] {
        let h = Harness::new(100.0, wallet(10));
        let mode = if held {
            ProtectiveExits::OnRecovery
        } else {
            ProtectiveExits::OperatorOnly
        };
        let mut orch = orchestrator_with(&h, 1, WINDOW, mode);
        orch.adopt(position(1, 10));
        let _ = h.control.halt(HaltCause::Operator, "maintenance").await;
        if held {
            assert_eq!(
                orch.hold(PositionId(9)),
                Err(ForceExitError::UnknownPosition(PositionId(9)))
            );
            orch.hold(PositionId(1)).unwrap();
        }
        assert_eq!(ticks_at(&mut orch, &h, 90.0, 30).await, 0, "held {held}");
        assert!(h.venue.swaps().is_empty());
        // A price above the stop is no reason either way; and a take-profit is not taken
        // while halted.
        assert_eq!(ticks_at(&mut orch, &h, 130.0, 3).await, 0);
        assert_eq!(orch.positions().len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_halted_tick_above_the_peak_moves_no_trailing_stop() {
    let h = Harness::new(100.0, wallet(10));
    let mut orch = orchestrator(&h, 1, WINDOW);
    orch.adopt(position(1, 10));
    let _ = h.control.halt(HaltCause::Operator, "maintenance").await;
    // Far above the trailing activation (+3%) and every take-profit rung: while halted
    // only the hard stop is checked, and the price is not fed to the plan.
    assert_eq!(ticks_at(&mut orch, &h, 150.0, 3).await, 0);
    let positions = orch.positions();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].peak, price(100.0), "the peak is not raised");
    assert_eq!(
        positions[0].stop_level,
        price(95.0),
        "still the hard stop: no trailing or breakeven stop armed"
    );
    assert!(h.venue.swaps().is_empty());
}
