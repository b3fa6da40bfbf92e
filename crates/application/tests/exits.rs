//! The defensive exit executor end to end over the scripted fake venue, on paused time:
//! the seeds' testing checklist (normal exit, retry, RPC timeout, breaker trip and halt,
//! escalation, late landing, deadline) with no intent ever landing twice.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_application::execute::{ExecutionOutcome, ExecutionReport, ExecutionSettings};
use kyzlo_application::exit::ExitRefusal;
use kyzlo_application::gateway::ExitOrder;
use kyzlo_application::metrics::ExitModule;
use kyzlo_application::ports::{AlertKind, Balances};
use kyzlo_application::testing::{HARNESS_APPROVAL_KEY, Harness, SendScript};
use kyzlo_domain::exit_state::{ExitFailure, ExitState};
use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::latency_breaker::LatencyBreakerConfig;
use kyzlo_domain::{
    ErrorClass, ExitKind, Fraction, IntentId, Lamports, PositionId, Price, TokenAmount,
};

const SOL: u64 = 1_000_000_000;

fn wallet(sol: u64) -> Balances {
    Balances {
        base: TokenAmount::new(sol * SOL),
        quote: TokenAmount::new(10_000 * 1_000_000),
        fee_lamports: Lamports::new(SOL),
    }
}

async fn exit(
    h: &Harness,
    position: u64,
    remaining: u64,
    module: ExitModule,
    kind: ExitKind,
    fraction: Fraction,
) -> Result<ExecutionReport, ExitRefusal> {
    let order = ExitOrder {
        module,
        position: PositionId(position),
        kind,
        fraction,
        style: OrderStyle::LimitLike,
        trigger_price: Price::new(95.0).unwrap(),
        explanation: "test".into(),
    };
    let ticket = h.gateway.submit(order, IntentId(h.ids.next())).unwrap();
    h.exits.run(ticket, TokenAmount::new(remaining)).await
}

async fn stop_loss(h: &Harness, position: u64, remaining: u64) -> ExecutionReport {
    exit(
        h,
        position,
        remaining,
        ExitModule::ExitPlan,
        ExitKind::StopLoss,
        Fraction::ALL,
    )
    .await
    .unwrap()
}

fn assert_no_double_execution(h: &Harness) {
    for (intent, landed) in h.landed_per_intent() {
        assert_eq!(landed, 1, "{intent} landed {landed} times");
        assert_ne!(
            intent,
            IntentId(u64::MAX),
            "a landing the journal never saw"
        );
    }
}

fn filled_attempt(report: &ExecutionReport) -> u32 {
    match report.outcome {
        ExecutionOutcome::Filled { attempt, .. } => attempt,
        ExecutionOutcome::Failed {
            failure,
            last_error,
        } => {
            panic!("not filled: {failure:?} {last_error:?}")
        }
    }
}

#[tokio::test(start_paused = true)]
async fn normal_exit_lands_on_the_first_attempt_without_added_waiting() {
    let h = Harness::new(95.0, wallet(10));
    let report = stop_loss(&h, 1, 10 * SOL).await;
    assert_eq!(filled_attempt(&report), 1);
    assert!(!report.deadline_exceeded);
    // Lands after 800 ms; the first status poll after that sees it.
    let elapsed = report.finished.saturating_since(report.started);
    assert!(elapsed <= Duration::from_millis(1_300), "{elapsed:?}");
    assert_eq!(h.venue.swaps().len(), 1);
    assert_eq!(h.venue.swaps()[0].quote.request.slippage.bps().get(), 100);
    assert_eq!(h.venue.balances().base, TokenAmount::ZERO);
    let m = h.metrics.summary();
    assert_eq!(
        (
            m.exits_attempted,
            m.exits_first_attempt,
            m.exits_required_retry
        ),
        (1, 1, 0)
    );
    let states: Vec<_> = h
        .journal
        .transitions(report.intent)
        .iter()
        .map(|t| t.to)
        .collect();
    assert!(
        matches!(
            states[..],
            [
                ExitState::ExitSignalReceived { .. },
                ExitState::Submitted { attempt: 1, .. },
                ExitState::PositionClosed { attempt: 1, .. }
            ]
        ),
        "{states:?}"
    );
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn exit_escalates_to_the_wide_swap_after_a_slippage_failure_and_succeeds() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.script([
        SendScript::LandFailed {
            class: ErrorClass::SlippageExceeded,
            after: Duration::from_millis(800),
        },
        SendScript::Land {
            after: Duration::from_millis(800),
        },
    ]);
    let report = stop_loss(&h, 1, 10 * SOL).await;
    assert_eq!(filled_attempt(&report), 2);
    let swaps = h.venue.swaps();
    let ladder: Vec<_> = swaps
        .iter()
        .map(|s| (s.quote.request.slippage.bps().get(), s.priority_fee.get()))
        .collect();
    assert_eq!(ladder, vec![(100, 50_000), (500, 500_000)]);
    let states: Vec<_> = h
        .journal
        .transitions(report.intent)
        .iter()
        .map(|t| t.to)
        .collect();
    assert!(
        states
            .iter()
            .any(|s| matches!(s, ExitState::EmergencyEscalation { next_attempt: 2 }))
    );
    let m = h.metrics.summary();
    assert_eq!((m.exits_first_attempt, m.exits_required_retry), (0, 1));
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn rpc_timeout_on_send_keeps_the_attempt_live_and_its_late_landing_counts() {
    let h = Harness::new(95.0, wallet(10));
    // The send call hangs (cut short by the send timeout); the transaction lands 3 s after
    // the send, after the 2 s confirmation timeout but before its blockhash expires.
    h.venue.script([SendScript::TimeoutThenLand {
        lands_after: Some(Duration::from_secs(3)),
    }]);
    let report = stop_loss(&h, 1, 10 * SOL).await;
    assert_eq!(filled_attempt(&report), 1);
    assert_eq!(
        h.venue.swaps().len(),
        1,
        "no second transaction while the first could land"
    );
    assert!(h.venue.sends() >= 2, "the same bytes are rebroadcast");
    let states: Vec<_> = h
        .journal
        .transitions(report.intent)
        .iter()
        .map(|t| t.to)
        .collect();
    assert!(
        states
            .iter()
            .any(|s| matches!(s, ExitState::TimedOut { attempt: 1, .. }))
    );
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_attempt_is_replaced_only_after_it_is_proven_expired() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.script([SendScript::Drop]);
    let report = stop_loss(&h, 1, 10 * SOL).await;
    assert_eq!(filled_attempt(&report), 2);
    let attempts = h.journal.attempts();
    assert_eq!(attempts.len(), 2);
    let first = attempts[0].0;
    let second = attempts[1].0;
    let first_dead = h.venue.expiry_time(first.last_valid_block_height);
    assert!(
        Duration::from_micros(second.sent_at.as_micros()) >= first_dead,
        "attempt 2 built at {:?}, before attempt 1 could no longer land at {first_dead:?}",
        second.sent_at
    );
    assert!(report.finished.saturating_since(report.started) < Duration::from_secs(30));
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn exit_breaker_trips_after_two_failed_exits_halts_trading_and_pages_once() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.set_default(SendScript::Drop);
    for position in [1, 2] {
        let report = stop_loss(&h, position, SOL).await;
        match report.outcome {
            ExecutionOutcome::Failed { failure, .. } => {
                assert_eq!(failure, ExitFailure::AttemptsExhausted);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(report.attempts, 2, "bounded by the exit policy");
        assert!(report.finished.saturating_since(report.started) <= Duration::from_secs(20));
    }
    assert!(h.control.state().is_halted());
    assert_eq!(h.alerts.count(AlertKind::TradingHalted), 1);
    assert_eq!(h.alerts.count(AlertKind::ExitFailed), 2);
    assert_eq!(h.metrics.summary().circuit_breaker_trips, 1);

    // Halted: automatic exits are refused, an operator's force-exit still runs.
    let refused = exit(
        &h,
        3,
        SOL,
        ExitModule::ExitPlan,
        ExitKind::StopLoss,
        Fraction::ALL,
    )
    .await;
    assert_eq!(
        refused.unwrap_err(),
        ExitRefusal::NotAllowed {
            state: kyzlo_domain::trading_state::TradingMode::Halted
        }
    );
    h.venue.set_default(SendScript::Land {
        after: Duration::from_millis(800),
    });
    let forced = exit(
        &h,
        3,
        SOL,
        ExitModule::Operator,
        ExitKind::Operator,
        Fraction::ALL,
    )
    .await
    .unwrap();
    assert_eq!(filled_attempt(&forced), 1);
    assert!(
        h.control.state().is_halted(),
        "a force-exit does not lift the halt"
    );

    // Resume needs the approval key.
    assert!(h.control.resume(b"not the key at all!!").await.is_err());
    h.control
        .resume(HARNESS_APPROVAL_KEY.as_bytes())
        .await
        .unwrap();
    assert!(h.control.state().allows_entry());
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_exit_breaker() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.script([SendScript::Drop, SendScript::Drop]);
    let failed = stop_loss(&h, 1, SOL).await;
    assert!(matches!(failed.outcome, ExecutionOutcome::Failed { .. }));
    assert_eq!(h.exits.consecutive_failures(), 1);
    let ok = stop_loss(&h, 2, SOL).await;
    assert_eq!(filled_attempt(&ok), 1);
    assert_eq!(h.exits.consecutive_failures(), 0);
    h.venue.script([SendScript::Drop, SendScript::Drop]);
    let _ = stop_loss(&h, 3, SOL).await;
    assert!(!h.control.state().is_halted());
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_gives_up_at_once() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.script([SendScript::Refuse {
        class: ErrorClass::InvalidAccount,
    }]);
    let report = stop_loss(&h, 1, SOL).await;
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Failed {
            failure: ExitFailure::Permanent(ErrorClass::InvalidAccount),
            last_error: Some(ErrorClass::InvalidAccount),
        }
    );
    assert_eq!(report.attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn no_route_is_not_retried_and_rate_limits_are_waited_out() {
    use kyzlo_application::ports::PortError;
    let h = Harness::new(95.0, wallet(10));
    h.venue.fail_quotes([PortError::new(
        "quote",
        ErrorClass::NoRoute,
        "NO_ROUTES_FOUND",
    )]);
    let report = stop_loss(&h, 1, SOL).await;
    assert!(matches!(
        report.outcome,
        ExecutionOutcome::Failed {
            failure: ExitFailure::Permanent(ErrorClass::NoRoute),
            ..
        }
    ));
    assert_eq!(h.venue.quotes().len(), 1, "NO_ROUTES_FOUND is not retried");

    let h = Harness::new(95.0, wallet(10));
    h.venue
        .fail_quotes([PortError::new("quote", ErrorClass::RateLimited, "429")
            .with_retry_after(Duration::from_millis(1_500))]);
    let report = stop_loss(&h, 1, SOL).await;
    assert_eq!(filled_attempt(&report), 1);
    assert_eq!(h.venue.quotes().len(), 2);
    let elapsed = report.finished.saturating_since(report.started);
    assert!(
        elapsed >= Duration::from_millis(1_500),
        "waited the retry-after: {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn at_the_deadline_no_new_attempt_starts_the_live_one_is_tracked_and_an_operator_is_paged() {
    let h = Harness::new(95.0, wallet(10));
    // The router ignores the short blockhash life: the attempt lives ~60 s and lands at 40 s.
    h.venue.ignore_expiry();
    h.venue.script([SendScript::TimeoutThenLand {
        lands_after: Some(Duration::from_secs(40)),
    }]);
    let report = stop_loss(&h, 1, SOL).await;
    assert_eq!(filled_attempt(&report), 1);
    assert!(report.deadline_exceeded);
    assert_eq!(h.venue.swaps().len(), 1, "no attempt after the deadline");
    assert_eq!(h.alerts.count(AlertKind::ExitDeadlineExceeded), 1);
    let m = h.metrics.summary();
    assert_eq!(m.exits_deadline_exceeded, 1);
    let states: Vec<_> = h
        .journal
        .transitions(report.intent)
        .iter()
        .map(|t| t.to)
        .collect();
    assert!(matches!(
        states[states.len() - 2],
        ExitState::ExitFailed {
            reason: ExitFailure::DeadlineExceeded
        }
    ));
    assert!(
        matches!(states[states.len() - 1], ExitState::PositionClosed { .. }),
        "the late landing closes it"
    );
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn late_landings_never_execute_a_partial_exit_twice() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.script([SendScript::TimeoutThenLand {
        lands_after: Some(Duration::from_secs(3)),
    }]);
    let report = exit(
        &h,
        1,
        10 * SOL,
        ExitModule::ExitPlan,
        ExitKind::PartialTakeProfit,
        Fraction::from_bps(5_000).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(filled_attempt(&report), 1);
    assert_eq!(h.venue.balances().base, TokenAmount::new(5 * SOL));
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn late_landings_never_execute_an_entry_twice() {
    let h = Harness::new(100.0, wallet(0));
    h.venue.script([SendScript::TimeoutThenLand {
        lands_after: Some(Duration::from_secs(3)),
    }]);
    let report = h
        .entries
        .run(
            IntentId(h.ids.next()),
            PositionId(h.ids.next()),
            kyzlo_application::entry::EntrySize {
                cap: TokenAmount::new(1_000 * 1_000_000),
                fraction: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(filled_attempt(&report), 1);
    assert_eq!(h.venue.landed().len(), 1);
    assert_eq!(h.venue.balances().base, TokenAmount::new(10 * SOL));
    assert_no_double_execution(&h);
}

#[tokio::test(start_paused = true)]
async fn entries_are_refused_while_the_latency_breaker_is_open_but_exits_run() {
    let breaker = LatencyBreakerConfig {
        failure_threshold: 3,
        ..LatencyBreakerConfig::default()
    };
    let h = Harness::with_settings(
        95.0,
        wallet(10),
        ExecutionSettings::exit_defaults(),
        breaker,
    );
    // Three quote timeouts open the breaker.
    h.venue.set_default(SendScript::Land {
        after: Duration::from_millis(800),
    });
    for _ in 0..3 {
        let _ = h
            .guard
            .call(kyzlo_application::metrics::Dependency::Router, "x", async {
                Err::<(), _>(kyzlo_application::ports::PortError::new(
                    "x",
                    ErrorClass::RpcTimeout,
                    "t",
                ))
            })
            .await;
    }
    assert!(!h.control.state().allows_entry(), "reduce-only");
    let refused = h
        .entries
        .run(
            IntentId(h.ids.next()),
            PositionId(h.ids.next()),
            kyzlo_application::entry::EntrySize {
                cap: TokenAmount::new(1_000_000),
                fraction: None,
            },
        )
        .await;
    assert!(refused.is_err());
    let report = stop_loss(&h, 1, SOL).await;
    assert_eq!(
        filled_attempt(&report),
        1,
        "a stop-loss still fires while reduce-only"
    );
    assert_eq!(h.alerts.count(AlertKind::LatencyBreaker), 1);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_could_not_be_prepared_keeps_its_number_and_rung() {
    use kyzlo_application::ports::PortError;
    let h = Harness::new(95.0, wallet(10));
    // Every quote call of the first try fails (node behind): nothing is sent.
    h.venue
        .fail_quotes((0..3).map(|_| PortError::new("quote", ErrorClass::NodeUnhealthy, "-32005")));
    let report = stop_loss(&h, 1, SOL).await;
    assert_eq!(
        filled_attempt(&report),
        1,
        "the first transaction is attempt 1"
    );
    let swaps = h.venue.swaps();
    assert_eq!(swaps.len(), 1);
    assert_eq!(
        swaps[0].quote.request.slippage.bps().get(),
        100,
        "still the first rung"
    );
    let states: Vec<_> = h
        .journal
        .transitions(report.intent)
        .iter()
        .map(|t| t.to)
        .collect();
    assert!(
        !states
            .iter()
            .any(|s| matches!(s, ExitState::EmergencyEscalation { .. })),
        "{states:?}"
    );
}
