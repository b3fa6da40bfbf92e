//! One test per defect the adversarial explorer and a careful read found in the exit,
//! entry, journal and reconciliation paths: each fails on the code before its fix.
//! Scripted over the fake venue on paused time.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::clock::Clock;
use kyzlo_application::control::TradingControl;
use kyzlo_application::execute::{ExecutionOutcome, ExecutionReport, ExecutionSettings};
use kyzlo_application::gateway::ExitOrder;
use kyzlo_application::guard::{GuardBreakers, GuardLimits, GuardedChain, LatencyGuard};
use kyzlo_application::journal::{
    AttemptOutcome, IntentOutcome, Journal, JournalSnapshot, MemoryJournal, PositionRecord,
};
use kyzlo_application::metrics::{CountingMetrics, Dependency, ExitModule};
use kyzlo_application::ports::{
    AlertKind, Balances, Blockhash, Chain, Commitment, Fill, HealthProbe, Observed, PortError,
    RecentBlockhash, Side, SignedTransaction, StatusLookup, TxStatus,
};
use kyzlo_application::proof::{AttemptKey, Fate, prove};
use kyzlo_application::reconcile::{ReconcileSettings, Reconciler};
use kyzlo_application::testing::{FAKE_PAIR, Harness, RecordingAlerts, SendScript};
use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::latency_breaker::{BreakerState, LatencyBreakerConfig};
use kyzlo_domain::trading_state::{HaltCause, ReduceOnlyCause, TradingState};
use kyzlo_domain::{
    ErrorClass, ExitKind, Fraction, IntentId, Lamports, PositionId, Price, Timestamp, TokenAmount,
    TxSignature,
};

const SOL: u64 = 1_000_000_000;

fn wallet(sol: u64) -> Balances {
    Balances {
        base: TokenAmount::new(sol * SOL),
        quote: TokenAmount::new(10_000 * 1_000_000),
        fee_lamports: Lamports::new(SOL),
    }
}

async fn exit_with_style(h: &Harness, remaining: u64, style: OrderStyle) -> ExecutionReport {
    let order = ExitOrder {
        module: ExitModule::ExitPlan,
        position: PositionId(1),
        kind: ExitKind::StopLoss,
        fraction: Fraction::ALL,
        style,
        trigger_price: Price::new(95.0).unwrap(),
        explanation: "test".into(),
    };
    let ticket = h.gateway.submit(order, IntentId(h.ids.next())).unwrap();
    h.exits
        .run(ticket, TokenAmount::new(remaining))
        .await
        .unwrap()
}

/// Start-up reconciliation over the harness's venue and journal.
async fn reconcile(h: &Harness) -> kyzlo_application::reconcile::ReconcileReport {
    Reconciler::new(
        h.engine.venue().clone(),
        ReconcileSettings {
            pair: FAKE_PAIR,
            poll_interval: Duration::from_millis(400),
            commitment: Commitment::Confirmed,
            fill_wait: Duration::from_secs(5),
            cancel_fee: Lamports::new(100_000),
        },
    )
    .run()
    .await
    .unwrap()
}

fn landings_per_intent_at_most_one(h: &Harness) {
    for (intent, landed) in h.landed_per_intent() {
        assert!(landed <= 1, "{intent} landed {landed} times");
    }
}

/// Defect 1: after the deadline, the live attempt's next resend was treated as its first
/// send; a node refusing it at preflight (slippage on its own state) declared the attempt
/// failed while its first copy was still on its way, and the exit plan re-armed.
#[tokio::test(start_paused = true)]
async fn a_resend_refused_after_the_deadline_never_declares_a_live_attempt_failed() {
    let h = Harness::with_settings(
        95.0,
        wallet(10),
        ExecutionSettings {
            deadline: Duration::from_secs(5),
            ..ExecutionSettings::exit_defaults()
        },
        LatencyBreakerConfig::default(),
    );
    // The one attempt's send hangs (it was forwarded) and lands 6.5 s later, past the
    // 5 s deadline; every resend meets a node whose simulation fails.
    h.venue.script([SendScript::TimeoutThenLand {
        lands_after: Some(Duration::from_millis(6_500)),
    }]);
    h.venue.refuse_resends(ErrorClass::SlippageExceeded);
    let report = exit_with_style(&h, 10 * SOL, OrderStyle::Market).await;
    assert!(report.deadline_exceeded);
    assert!(
        matches!(report.outcome, ExecutionOutcome::Filled { attempt: 1, .. }),
        "the attempt that was in flight landed: {:?}",
        report.outcome
    );
    assert_eq!(h.alerts.count(AlertKind::ExitDeadlineExceeded), 1);
    assert_eq!(h.alerts.count(AlertKind::ExitFailed), 0);
    landings_per_intent_at_most_one(&h);
}

/// A chain whose two answers come from two nodes: statuses from a lagging one, blockhash
/// validity from one ahead. Nothing else is called.
struct TwoNodes {
    status_slot: u64,
    status: Option<TxStatus>,
    history: bool,
    blockhash_slot: u64,
    blockhash_valid: bool,
}

#[async_trait]
impl Chain for TwoNodes {
    async fn send(&self, _tx: &SignedTransaction) -> Result<(), PortError> {
        Ok(())
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        if lookup == StatusLookup::WithHistory && !self.history {
            return Err(
                PortError::new("two.statuses", ErrorClass::NodeUnhealthy, "-32011")
                    .with_code(-32_011),
            );
        }
        Ok(Observed {
            context_slot: self.status_slot,
            value: vec![self.status; signatures.len()],
        })
    }

    async fn blockhash_valid(
        &self,
        _blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        if self.blockhash_slot < min_context_slot {
            return Err(PortError::new(
                "two.valid",
                ErrorClass::NodeUnhealthy,
                "-32016",
            ));
        }
        Ok(Observed {
            context_slot: self.blockhash_slot,
            value: self.blockhash_valid,
        })
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        Ok(self.blockhash_slot)
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        Ok(RecentBlockhash {
            blockhash: key().blockhash,
            last_valid_block_height: self.blockhash_slot + 150,
        })
    }

    async fn fill(&self, _s: TxSignature, _side: Side) -> Result<Option<Fill>, PortError> {
        Ok(None)
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        Ok(Balances::default())
    }
}

fn key() -> AttemptKey {
    AttemptKey {
        signature: TxSignature([1; 64]),
        blockhash: Blockhash([2; 32]),
        valid_at_slot: 1_000,
    }
}

/// Defect 2: expiry was proven from a block height read on one node and a status read
/// on another: a node past the expiry and a lagging one that had not seen the landing
/// made a landed transaction look dead. Death now needs the status node's view to reach
/// the slot where the blockhash was seen expired.
#[tokio::test]
async fn expiry_is_never_proven_from_a_status_older_than_the_expiry() {
    let lagging = TwoNodes {
        status_slot: 1_120,
        status: None,
        history: true,
        blockhash_slot: 1_160,
        blockhash_valid: false,
    };
    assert_eq!(
        prove(&lagging, &key(), Commitment::Confirmed).await,
        Fate::Unknown
    );
    // The same answers from a status node that has caught up: dead.
    let caught_up = TwoNodes {
        status_slot: 1_160,
        ..lagging
    };
    assert_eq!(
        prove(&caught_up, &key(), Commitment::Confirmed).await,
        Fate::Dead
    );
    // A node that has not seen the slot the blockhash was first valid at proves nothing.
    let behind = TwoNodes {
        blockhash_slot: 990,
        status_slot: 1_200,
        ..caught_up
    };
    assert_eq!(
        prove(&behind, &key(), Commitment::Confirmed).await,
        Fate::Unknown
    );
    // Long after the send, a recent look-up no longer covers it; history must answer.
    let late_without_history = TwoNodes {
        status_slot: 2_000,
        blockhash_slot: 2_000,
        history: false,
        ..caught_up
    };
    assert_eq!(
        prove(&late_without_history, &key(), Commitment::Confirmed).await,
        Fate::Unknown
    );
    let late_with_history = TwoNodes {
        history: true,
        ..late_without_history
    };
    assert_eq!(
        prove(&late_with_history, &key(), Commitment::Confirmed).await,
        Fate::Dead
    );
}

/// Defect 3: reconciliation skipped a status below the required commitment, then read a
/// block height past the last valid height and settled the landed transaction as expired.
#[tokio::test(start_paused = true)]
async fn reconciliation_waits_out_a_processed_status_and_never_declares_it_dead() {
    let h = Harness::new(95.0, wallet(10));
    // The exit lands, but shows as processed for 20 s (past its 20-slot life), and the
    // process dies before anyone settles it.
    h.venue.delay_confirmation(Duration::from_secs(20));
    let order = ExitOrder {
        module: ExitModule::ExitPlan,
        position: PositionId(1),
        kind: ExitKind::StopLoss,
        fraction: Fraction::ALL,
        style: OrderStyle::Market,
        trigger_price: Price::new(95.0).unwrap(),
        explanation: "test".into(),
    };
    h.journal
        .settle_intent(
            IntentId(900),
            &IntentOutcome::Failed,
            Some(&PositionRecord {
                position: PositionId(1),
                entry_price: Price::new(100.0).unwrap(),
                size: kyzlo_domain::Size::new(TokenAmount::new(10 * SOL)).unwrap(),
                remaining: TokenAmount::new(10 * SOL),
            }),
        )
        .await
        .unwrap();
    let ticket = h.gateway.submit(order, IntentId(7)).unwrap();
    let run = h.exits.run(ticket, TokenAmount::new(10 * SOL));
    // The crash: the exit is dropped 2 s in, after its landing, before any settlement.
    let _ = tokio::time::timeout(Duration::from_secs(2), run).await;
    assert_eq!(h.venue.landed().len(), 1, "it landed");
    let report = reconcile(&h).await;
    assert_eq!((report.landed, report.failed), (1, 0), "{report:?}");
    assert!(report.positions.is_empty(), "the position was sold");
    let attempts = h.journal.attempts();
    assert_eq!(attempts[0].1, Some(AttemptOutcome::Landed));
}

/// Defect 4: a landed entry whose fill could not be read was recorded with the quoted
/// output (the engine) or zero (reconciliation, which then dropped the position). Now
/// the quote's minimum stands in, and the position is corrected once the fill is read.
#[tokio::test(start_paused = true)]
async fn an_unreadable_fill_is_never_zero_and_is_corrected_once_read() {
    let h = Harness::new(100.0, wallet(0));
    h.venue.delay_fills(Duration::from_secs(60));
    let report = h
        .entries
        .run(
            IntentId(2),
            PositionId(1),
            kyzlo_application::entry::EntrySize {
                cap: TokenAmount::new(100 * 1_000_000),
                fraction: None,
            },
        )
        .await
        .unwrap();
    let ExecutionOutcome::Filled { fill, exact, .. } = report.outcome else {
        panic!("{:?}", report.outcome);
    };
    assert!(!exact);
    // 100 USDC at 100 is 1 SOL; the entry rung's 0.5% minimum stands in.
    assert_eq!(fill.amount_out, TokenAmount::new(995_000_000));
    h.journal
        .settle_intent(
            report.intent,
            &IntentOutcome::Landed {
                signature: TxSignature([0; 64]),
                provisional: fill,
            },
            None,
        )
        .await
        .unwrap();
    // Reconciliation, once the fill is readable, reads the real one.
    tokio::time::advance(Duration::from_secs(61)).await;
    let mut journal_signature = None;
    for (a, _) in h.journal.attempts() {
        journal_signature = Some(a.signature);
    }
    h.journal
        .settle_intent(
            report.intent,
            &IntentOutcome::Landed {
                signature: journal_signature.unwrap(),
                provisional: fill,
            },
            Some(&PositionRecord {
                position: PositionId(1),
                entry_price: Price::new(100.5).unwrap(),
                size: kyzlo_domain::Size::new(fill.amount_out).unwrap(),
                remaining: fill.amount_out,
            }),
        )
        .await
        .unwrap();
    let reconciled = reconcile(&h).await;
    assert_eq!(reconciled.fills_corrected, 1);
    assert_eq!(
        reconciled.positions[0].remaining,
        TokenAmount::new(SOL),
        "the whole fill, read from the ledger"
    );
}

/// Defect 6: a halt whose journal write failed was only logged (a restart then resumed
/// silently). Now it is retried until written, and alerted only then.
#[tokio::test(start_paused = true)]
async fn a_halt_is_journaled_before_it_is_alerted_even_when_writes_fail_at_first() {
    let journal = Arc::new(FlakyJournal {
        inner: MemoryJournal::new(),
        failures: std::sync::atomic::AtomicU32::new(3),
    });
    let alerts = Arc::new(RecordingAlerts::default());
    let control = TradingControl::new(
        TradingState::Active,
        None,
        journal.clone(),
        alerts.clone(),
        Arc::new(CountingMetrics::new()),
        Clock::new(),
    );
    let _ = control
        .halt(HaltCause::ExitBreaker, "two failed exits")
        .await;
    assert_eq!(alerts.count(AlertKind::TradingHalted), 1);
    assert!(
        journal
            .load()
            .await
            .unwrap()
            .trading_state
            .is_some_and(|s| s.is_halted()),
        "journaled before the alert"
    );
    assert!(alerts.all()[0].message.ends_with("two failed exits"));
    // A later, weaker change never overwrites it in the journal.
    assert!(
        !control
            .enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
            .await
    );
    assert!(
        journal
            .load()
            .await
            .unwrap()
            .trading_state
            .unwrap()
            .is_halted()
    );
}

/// A journal whose first writes of the trading state fail.
struct FlakyJournal {
    inner: MemoryJournal,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl Journal for FlakyJournal {
    async fn record_intent(
        &self,
        intent: &kyzlo_application::journal::IntentRecord,
    ) -> Result<(), PortError> {
        self.inner.record_intent(intent).await
    }
    async fn record_attempt(
        &self,
        attempt: &kyzlo_application::journal::AttemptRecord,
    ) -> Result<(), PortError> {
        self.inner.record_attempt(attempt).await
    }
    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        self.inner
            .record_attempt_outcome(intent, attempt, outcome)
            .await
    }
    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &kyzlo_domain::exit_state::Transition,
    ) -> Result<(), PortError> {
        self.inner.record_transition(intent, transition).await
    }
    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        self.inner.settle_intent(intent, outcome, position).await
    }
    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        let left = self.failures.load(std::sync::atomic::Ordering::Relaxed);
        if left > 0 {
            self.failures
                .store(left - 1, std::sync::atomic::Ordering::Relaxed);
            return Err(PortError::new("flaky", ErrorClass::Unknown, "disk full"));
        }
        self.inner.record_trading_state(state).await
    }
    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        self.inner.record_exit_failures(consecutive).await
    }
    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        self.inner.record_free_base(free).await
    }
    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        self.inner.position(id).await
    }
    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        self.inner.load().await
    }
    async fn exit_history(
        &self,
        limit: usize,
    ) -> Result<Vec<kyzlo_application::journal::IntentHistory>, PortError> {
        self.inner.exit_history(limit).await
    }
}

/// Defect 6 (continued): the exit breaker's count lived only in memory: a restart forgot
/// a failed exit toward the halt. It is journaled with every change.
#[tokio::test(start_paused = true)]
async fn the_exit_breakers_count_is_journaled() {
    let h = Harness::new(95.0, wallet(10));
    h.venue.set_default(SendScript::Refuse {
        class: ErrorClass::InsufficientFunds,
    });
    let _ = exit_with_style(&h, 10 * SOL, OrderStyle::Market).await;
    assert_eq!(h.journal.load().await.unwrap().consecutive_failed_exits, 1);
}

/// Defect 7 and 8: one breaker per dependency; a restart in ReduceOnly (a breaker was
/// open) opens the breakers again; only each dependency's own probe closes its breaker
/// (a healthy price feed never closes the chain's reads' or sends'), and only then does
/// trading resume.
#[tokio::test(start_paused = true)]
async fn each_dependency_recovers_by_its_own_probe_and_a_restored_reduce_only_is_lifted() {
    let control = Arc::new(TradingControl::new(
        TradingState::ReduceOnly {
            cause: ReduceOnlyCause::LatencyBreakerOpen,
            since: Timestamp::ZERO,
        },
        None,
        Arc::new(MemoryJournal::new()),
        Arc::new(RecordingAlerts::default()),
        Arc::new(CountingMetrics::new()),
        Clock::new(),
    ));
    let guard = Arc::new(LatencyGuard::new(
        GuardBreakers::new(&GuardLimits::new(
            LatencyBreakerConfig {
                recovery_timeout: Duration::from_secs(1),
                half_open_max_probes: 1,
                ..LatencyBreakerConfig::default()
            },
            Duration::from_secs(2),
            Duration::from_millis(200),
        ))
        .unwrap(),
        control.clone(),
        Arc::new(CountingMetrics::new()),
        Clock::new(),
    ));
    guard.restore_open().await;
    assert_eq!(guard.state(), BreakerState::Open);
    assert!(!guard.admit_entry().await);
    // Plenty of healthy price reads while the chain's breaker is half-open: nothing closes.
    tokio::time::advance(Duration::from_secs(2)).await;
    let _ = guard.admit_entry().await;
    for _ in 0..10 {
        let _ = guard
            .call(Dependency::PriceFeed, "feed.price", async {
                Ok::<_, PortError>(())
            })
            .await;
    }
    assert_ne!(guard.state_of(Dependency::RpcReads), BreakerState::Closed);
    assert_ne!(guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert!(!control.state().allows_entry());
    // Each of the chain's breakers by its own probe, and the others by theirs; then
    // trading resumes.
    let jitter = kyzlo_application::rng::Jitter::new(1);
    guard.recover(Dependency::RpcReads, &Healthy, &jitter).await;
    assert_eq!(guard.state_of(Dependency::RpcReads), BreakerState::Closed);
    assert_ne!(guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    guard.recover(Dependency::RpcSends, &Healthy, &jitter).await;
    assert_eq!(guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert!(!control.state().allows_entry(), "the others are still open");
    guard.recover(Dependency::Router, &Healthy, &jitter).await;
    guard
        .recover(Dependency::PriceFeed, &Healthy, &jitter)
        .await;
    assert_eq!(control.state(), TradingState::Active);
    assert!(guard.admit_entry().await);
}

struct Healthy;

#[async_trait]
impl HealthProbe for Healthy {
    async fn probe(&self) -> Result<(), PortError> {
        Ok(())
    }
}

/// Defect 9: the deadline was not checked again after a slow preparation: a transaction
/// could be sent with no time left to live out its attempt. It is discarded unsent.
#[tokio::test(start_paused = true)]
async fn an_attempt_prepared_past_its_window_is_never_sent() {
    let h = Harness::with_settings(
        95.0,
        wallet(10),
        ExecutionSettings {
            deadline: Duration::from_secs(3),
            ..ExecutionSettings::exit_defaults()
        },
        LatencyBreakerConfig::default(),
    );
    // Each quote takes 1.9 s (under the 2 s call timeout): the preparation ends past
    // the 3 s deadline.
    h.venue.delay_quotes(Duration::from_millis(1_900));
    h.venue.fail_quotes([PortError::new(
        "jupiter.quote",
        ErrorClass::RpcTimeout,
        "slow",
    )]);
    let report = exit_with_style(&h, 10 * SOL, OrderStyle::Market).await;
    assert!(matches!(report.outcome, ExecutionOutcome::Failed { .. }));
    assert_eq!(h.venue.sends(), 0, "nothing was sent");
    assert!(
        h.journal.attempts().is_empty(),
        "nothing was journaled to send"
    );
}

/// Defect 10: a stop-loss, placed market-style, started on the ladder's tight
/// limit-like rung. It starts on the first market rung.
#[tokio::test(start_paused = true)]
async fn a_market_style_exit_starts_on_the_first_market_rung() {
    let h = Harness::new(95.0, wallet(10));
    let report = exit_with_style(&h, 10 * SOL, OrderStyle::Market).await;
    assert!(matches!(report.outcome, ExecutionOutcome::Filled { .. }));
    assert_eq!(h.venue.quotes()[0].slippage.bps().get(), 500);
    assert_eq!(h.venue.swaps()[0].priority_fee, Lamports::new(500_000));
    let h = Harness::new(95.0, wallet(10));
    let _ = exit_with_style(&h, 10 * SOL, OrderStyle::LimitLike).await;
    assert_eq!(h.venue.quotes()[0].slippage.bps().get(), 100);
}

/// The guard times the chain's reads into the RPC reads' breaker only.
#[tokio::test(start_paused = true)]
async fn failing_chain_reads_open_only_the_rpc_reads_breaker() {
    let h = Harness::with_settings(
        95.0,
        wallet(10),
        ExecutionSettings::exit_defaults(),
        LatencyBreakerConfig {
            failure_threshold: 2,
            ..LatencyBreakerConfig::default()
        },
    );
    let chain = GuardedChain::new(
        Arc::new(TwoNodes {
            status_slot: 1,
            status: None,
            history: false,
            blockhash_slot: 1,
            blockhash_valid: true,
        }),
        h.guard.clone(),
    );
    for _ in 0..2 {
        let _ = chain
            .statuses(&[TxSignature([0; 64])], StatusLookup::WithHistory)
            .await;
    }
    assert_eq!(h.guard.state_of(Dependency::RpcReads), BreakerState::Open);
    assert_eq!(h.guard.state_of(Dependency::RpcSends), BreakerState::Closed);
    assert_eq!(h.guard.state_of(Dependency::Router), BreakerState::Closed);
    assert_eq!(
        h.guard.state_of(Dependency::PriceFeed),
        BreakerState::Closed
    );
    assert!(!h.control.state().allows_entry());
}

/// Defect 11 (found by the chaos simulator on the adversarial cluster): a router on a
/// lagging node hands out blockhashes that are expired, or valid but nearly spent. Each
/// failed preparation spent one of the exit's two attempts (so the exit gave up within a
/// second, and two such exits halted trading), and a nearly spent blockhash was sent and
/// expired before it could land.
#[tokio::test(start_paused = true)]
async fn a_lagging_router_costs_the_exit_time_never_its_attempts() {
    let h = Harness::with_settings(
        95.0,
        wallet(10),
        ExecutionSettings::exit_defaults(),
        LatencyBreakerConfig::default(),
    );
    // Twenty slots asked for: four builds already expired, three with a quarter of
    // their life left.
    h.venue.stale_builds([25, 30, 20, 21, 15, 16, 18]);
    let report = exit_with_style(&h, 10 * SOL, OrderStyle::Market).await;
    assert!(
        matches!(report.outcome, ExecutionOutcome::Filled { attempt: 1, .. }),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 1, "only the sound build was sent");
    assert_eq!(h.venue.swaps().len(), 8);
    assert!(!report.deadline_exceeded);
    assert_eq!(h.alerts.count(AlertKind::ExitFailed), 0);
}

/// The other side of defect 11: a router that never hands out a sound blockhash fails
/// the exit once its retry budget has no room left for an attempt (never past the
/// deadline), having sent nothing.
#[tokio::test(start_paused = true)]
async fn an_exit_whose_router_never_builds_a_sound_transaction_fails_in_time_unsent() {
    let h = Harness::with_settings(
        95.0,
        wallet(10),
        ExecutionSettings::exit_defaults(),
        LatencyBreakerConfig::default(),
    );
    h.venue.stale_builds(std::iter::repeat_n(40, 1_000));
    let report = exit_with_style(&h, 10 * SOL, OrderStyle::Market).await;
    assert!(
        matches!(report.outcome, ExecutionOutcome::Failed { .. }),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 0);
    assert_eq!(h.venue.sends(), 0);
    let took = report.finished.saturating_since(report.started);
    let settings = ExecutionSettings::exit_defaults();
    assert!(took <= settings.policy.total_budget, "{took:?}");
    assert!(
        took >= settings.policy.total_budget / 2,
        "{took:?}: gave up early"
    );
    assert_eq!(h.alerts.count(AlertKind::ExitFailed), 1);
}
