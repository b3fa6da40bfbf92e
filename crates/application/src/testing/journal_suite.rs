//! The journal port's conformance suite, for every durable adapter (SQLite, PostgreSQL):
//! the same sequences of writes are replayed into the adapter and into the reference
//! [`MemoryJournal`], and `load`, `exit_history` and the audit trail must agree; and the
//! writes every durable journal refuses (an unknown intent, a value above `i64::MAX`, a
//! durable-nonce attempt whose blockhash is not its nonce's value) are refused alike,
//! leaving nothing behind.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // a test suite: it panics on a mismatch by design

use kyzlo_domain::exit_state::{ExitEvent, ExitFailure, ExitState, ExitStateMachine, Transition};
use kyzlo_domain::trading_state::{HaltReason, ReduceOnlyCause, TradingState};
use kyzlo_domain::{
    ErrorClass, ExitKind, HaltCause, IntentId, Lamports, PositionId, Price, Size, Slippage,
    Timestamp, TokenAmount, TxSignature,
};

use crate::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentOutcome, IntentRecord, Journal,
    MemoryJournal, NonceUse, PositionRecord,
};
use crate::ports::{Blockhash, DurableNonce, Fill, NonceAccount, Side};

/// One call on the port.
#[derive(Debug, Clone)]
enum Write {
    Intent(IntentRecord),
    Attempt(AttemptRecord),
    AttemptOutcome(u64, u32, AttemptOutcome),
    Transition(u64, Transition),
    IntentOutcome(u64, IntentOutcome),
    Position(PositionRecord),
    State(TradingState),
    ExitFailures(u32),
    FreeBase(u64),
}

/// An intent id no test journals.
const UNJOURNALED: u64 = 999_999_999;

async fn apply(journal: &dyn Journal, write: &Write) {
    let result = match write {
        Write::Intent(i) => journal.record_intent(i).await,
        Write::Attempt(a) => journal.record_attempt(a).await,
        Write::AttemptOutcome(i, n, o) => {
            journal.record_attempt_outcome(IntentId(*i), *n, *o).await
        }
        Write::Transition(i, t) => journal.record_transition(IntentId(*i), t).await,
        Write::IntentOutcome(i, o) => journal.settle_intent(IntentId(*i), o, None).await,
        // A position written on its own: settled with an intent nobody journaled, which
        // both journals leave alone.
        Write::Position(p) => {
            journal
                .settle_intent(IntentId(UNJOURNALED), &IntentOutcome::Failed, Some(p))
                .await
        }
        Write::State(s) => journal.record_trading_state(s).await,
        Write::ExitFailures(n) => journal.record_exit_failures(*n).await,
        Write::FreeBase(n) => journal.record_free_base(TokenAmount::new(*n)).await,
    };
    assert!(result.is_ok(), "{write:?}: {result:?}");
}

fn intent(id: u64, position: u64, action: IntentAction) -> Write {
    Write::Intent(IntentRecord {
        intent: IntentId(id),
        position: PositionId(position),
        action,
        side: match action {
            IntentAction::Enter => Side::Buy,
            IntentAction::Exit(_) => Side::Sell,
        },
        amount_in: TokenAmount::new(small(id) * 1_000),
        created_at: Timestamp::from_micros(small(id) * 10),
    })
}

/// A value derived from an id that stays small even for the largest ids.
fn small(id: u64) -> u64 {
    id % 1_000_000
}

fn exit(id: u64, position: u64, kind: ExitKind) -> Write {
    intent(id, position, IntentAction::Exit(kind))
}

fn enter(id: u64, position: u64) -> Write {
    intent(id, position, IntentAction::Enter)
}

fn signature(intent: u64, attempt: u32) -> TxSignature {
    let mut bytes = [0u8; 64];
    bytes[..8].copy_from_slice(&intent.to_le_bytes());
    bytes[8..12].copy_from_slice(&attempt.to_le_bytes());
    bytes[63] = 0xAB;
    TxSignature(bytes)
}

fn attempt(intent: u64, attempt: u32) -> Write {
    Write::Attempt(AttemptRecord {
        intent: IntentId(intent),
        attempt,
        signature: signature(intent, attempt),
        blockhash: Blockhash([u8::try_from(attempt % 256).unwrap(); 32]),
        valid_at_slot: 900 + u64::from(attempt),
        last_valid_block_height: 1_000 + u64::from(attempt),
        slippage: Slippage::from_bps(if attempt == 1 { 100 } else { 500 }).unwrap(),
        priority_fee: Lamports::new(5_000 * u64::from(attempt)),
        amount_in: TokenAmount::new(small(intent) * 1_000),
        min_out: TokenAmount::new(small(intent) * 9),
        sent_at: Timestamp::from_micros(small(intent) * 10 + u64::from(attempt)),
        nonce: None,
    })
}

/// The durable nonce the attempts of `intent` are built on: its account, and a value
/// that is no attempt's recent blockhash.
fn nonce(intent: u64) -> DurableNonce {
    let mut account = [0x4E; 32];
    account[..8].copy_from_slice(&intent.to_le_bytes());
    let mut value = [0xC0; 32];
    value[24..].copy_from_slice(&intent.to_le_bytes());
    DurableNonce {
        account: NonceAccount(account),
        value: Blockhash(value),
    }
}

/// Attempt `attempt` of `intent` on the intent's durable nonce: a swap, or (`cancel`) the
/// nonce's advance alone, which swaps nothing.
fn nonce_attempt(intent: u64, attempt: u32, cancel: bool) -> Write {
    let Write::Attempt(on_blockhash) = self::attempt(intent, attempt) else {
        unreachable!("attempt() builds an attempt")
    };
    let nonce = nonce(intent);
    let (amount_in, min_out) = if cancel {
        (TokenAmount::new(0), TokenAmount::new(0))
    } else {
        (on_blockhash.amount_in, on_blockhash.min_out)
    };
    Write::Attempt(AttemptRecord {
        blockhash: nonce.value,
        // What every router reports for a transaction on a nonce: no height bounds it.
        last_valid_block_height: crate::ports::NO_LAST_VALID_HEIGHT,
        amount_in,
        min_out,
        nonce: Some(NonceUse { nonce, cancel }),
        ..on_blockhash
    })
}

fn attempt_outcome(intent: u64, attempt: u32, outcome: AttemptOutcome) -> Write {
    Write::AttemptOutcome(intent, attempt, outcome)
}

fn filled(intent: u64, amount_out: u64) -> Write {
    Write::IntentOutcome(
        intent,
        IntentOutcome::Filled(Fill {
            amount_in: TokenAmount::new(small(intent) * 1_000),
            amount_out: TokenAmount::new(amount_out),
            fee: Lamports::new(10_000),
        }),
    )
}

fn failed(intent: u64) -> Write {
    Write::IntentOutcome(intent, IntentOutcome::Failed)
}

fn position(id: u64, entry_price: f64, size: u64, remaining: u64) -> Write {
    Write::Position(PositionRecord {
        position: PositionId(id),
        entry_price: Price::new(entry_price).unwrap(),
        size: Size::new(TokenAmount::new(size)).unwrap(),
        remaining: TokenAmount::new(remaining),
    })
}

fn halted(cause: HaltCause, detail: &str, since: u64) -> Write {
    Write::State(TradingState::Halted {
        reason: HaltReason::new(cause, detail),
        since: Timestamp::from_micros(since),
    })
}

/// The transitions the real exit state machine journals for `events` of `intent`.
fn transitions(intent: u64, events: &[ExitEvent]) -> Vec<Write> {
    transitions_of(ExitStateMachine::new(), intent, events)
}

/// The transitions the exit state machine of an exit on a durable nonce journals for
/// `events` of `intent`.
fn nonce_transitions(intent: u64, events: &[ExitEvent]) -> Vec<Write> {
    transitions_of(ExitStateMachine::on_durable_nonce(), intent, events)
}

fn transitions_of(mut machine: ExitStateMachine, intent: u64, events: &[ExitEvent]) -> Vec<Write> {
    for (i, event) in (1u64..).zip(events) {
        machine
            .apply(Timestamp::from_micros(small(intent) * 1_000 + i), *event)
            .unwrap();
    }
    machine
        .history()
        .iter()
        .map(|t| Write::Transition(intent, *t))
        .collect()
}

/// An exit of intent 2 (position 1) that needed two attempts, the first expired, then
/// escalated and landed; with the audit trail.
fn two_attempt_exit() -> Vec<Write> {
    let mut writes = vec![
        position(1, 150.25, 1_000_000, 1_000_000),
        exit(2, 1, ExitKind::StopLoss),
        attempt(2, 1),
    ];
    writes.extend(transitions(
        2,
        &[
            ExitEvent::Signal {
                kind: ExitKind::StopLoss,
            },
            ExitEvent::Submit {
                attempt: 1,
                signature: signature(2, 1),
                last_valid_height: 1_001,
            },
            ExitEvent::ConfirmTimedOut,
            ExitEvent::ProvenExpired {
                signature: signature(2, 1),
            },
            ExitEvent::Escalate,
            ExitEvent::Submit {
                attempt: 2,
                signature: signature(2, 2),
                last_valid_height: 1_002,
            },
            ExitEvent::Landed {
                signature: signature(2, 2),
            },
        ],
    ));
    writes.extend([
        attempt_outcome(2, 1, AttemptOutcome::Expired),
        attempt(2, 2),
        attempt_outcome(2, 2, AttemptOutcome::Landed),
        filled(2, 149_000_000),
        position(1, 150.25, 1_000_000, 0),
    ]);
    writes
}

/// An exit of intent 6 on a durable nonce: attempt 1, attempt 2 sent beside it on the
/// same value, then the cancel (attempt 3) beside both; still in flight.
fn nonce_exit_in_flight() -> Vec<Write> {
    let mut writes = vec![
        position(1, 150.0, 1_000, 1_000),
        exit(6, 1, ExitKind::StopLoss),
        nonce_attempt(6, 1, false),
        nonce_attempt(6, 2, false),
        nonce_attempt(6, 3, true),
    ];
    writes.extend(nonce_transitions(
        6,
        &[
            ExitEvent::Signal {
                kind: ExitKind::StopLoss,
            },
            ExitEvent::Submit {
                attempt: 1,
                signature: signature(6, 1),
                last_valid_height: 1_001,
            },
            ExitEvent::ConfirmTimedOut,
            ExitEvent::SubmitBeside {
                attempt: 2,
                signature: signature(6, 2),
            },
            ExitEvent::SubmitBeside {
                attempt: 3,
                signature: signature(6, 3),
            },
        ],
    ));
    writes
}

/// An exit of intent 7 on a durable nonce whose second attempt, sent beside the first,
/// landed; the first and the cancel can no longer land (the value is used up).
fn nonce_exit_landed() -> Vec<Write> {
    let mut writes = vec![
        position(2, 20.5, 500, 500),
        exit(7, 2, ExitKind::TrailingStop),
        nonce_attempt(7, 1, false),
        nonce_attempt(7, 2, false),
        nonce_attempt(7, 3, true),
    ];
    writes.extend(nonce_transitions(
        7,
        &[
            ExitEvent::Signal {
                kind: ExitKind::TrailingStop,
            },
            ExitEvent::Submit {
                attempt: 1,
                signature: signature(7, 1),
                last_valid_height: 1_001,
            },
            ExitEvent::SubmitBeside {
                attempt: 2,
                signature: signature(7, 2),
            },
            ExitEvent::ConfirmTimedOut,
            ExitEvent::SubmitBeside {
                attempt: 3,
                signature: signature(7, 3),
            },
            ExitEvent::ProvenExpired {
                signature: signature(7, 1),
            },
            ExitEvent::Landed {
                signature: signature(7, 2),
            },
        ],
    ));
    writes.extend([
        attempt_outcome(7, 1, AttemptOutcome::Expired),
        attempt_outcome(7, 2, AttemptOutcome::Landed),
        attempt_outcome(7, 3, AttemptOutcome::Expired),
        filled(7, 10_250),
        position(2, 20.5, 500, 0),
    ]);
    writes
}

fn scenarios() -> Vec<(&'static str, Vec<Write>)> {
    let max = i64::MAX as u64;
    vec![
        ("an empty journal", vec![]),
        (
            "an entry that filled opens a position",
            vec![
                enter(1, 1),
                attempt(1, 1),
                attempt_outcome(1, 1, AttemptOutcome::Landed),
                filled(1, 6_600),
                position(1, 151.5, 6_600, 6_600),
            ],
        ),
        (
            "an exit in flight is unresolved with its attempts",
            vec![
                position(1, 150.0, 1_000, 1_000),
                exit(2, 1, ExitKind::TrailingStop),
                attempt(2, 1),
                attempt_outcome(2, 1, AttemptOutcome::Failed(ErrorClass::SlippageExceeded)),
                attempt(2, 2),
            ],
        ),
        (
            "attempts journaled out of order come back in attempt order",
            vec![
                exit(5, 1, ExitKind::Emergency),
                attempt(5, 3),
                attempt(5, 1),
                attempt_outcome(5, 3, AttemptOutcome::Expired),
                attempt(5, 2),
            ],
        ),
        ("a two-attempt exit closes its position", two_attempt_exit()),
        (
            "a re-recorded intent loses its outcome",
            vec![
                exit(3, 1, ExitKind::Operator),
                failed(3),
                exit(3, 1, ExitKind::Operator),
            ],
        ),
        (
            "a re-recorded attempt loses its outcome",
            vec![
                exit(3, 1, ExitKind::Breakeven),
                attempt(3, 1),
                attempt_outcome(3, 1, AttemptOutcome::Expired),
                attempt(3, 1),
            ],
        ),
        (
            "outcomes for unknown attempts and intents change nothing",
            vec![
                exit(3, 1, ExitKind::TakeProfit),
                attempt_outcome(3, 9, AttemptOutcome::Landed),
                attempt_outcome(8, 1, AttemptOutcome::Landed),
                filled(8, 1),
            ],
        ),
        (
            "a later outcome replaces an earlier one",
            vec![
                exit(3, 1, ExitKind::TakeProfit),
                attempt(3, 1),
                attempt_outcome(3, 1, AttemptOutcome::Expired),
                attempt_outcome(3, 1, AttemptOutcome::Failed(ErrorClass::LandedFailed)),
                failed(3),
                filled(3, 77),
            ],
        ),
        (
            "the latest trading state wins",
            vec![
                Write::State(TradingState::Active),
                Write::State(TradingState::ReduceOnly {
                    cause: ReduceOnlyCause::LatencyBreakerOpen,
                    since: Timestamp::from_micros(5),
                }),
                halted(HaltCause::ExitBreaker, "two failed exits on pos-1", 9),
                Write::State(TradingState::Active),
                Write::State(TradingState::ReduceOnly {
                    cause: ReduceOnlyCause::Operator,
                    since: Timestamp::from_micros(12),
                }),
                halted(HaltCause::Shutdown, "ctrl-c: «exits handed over» ✓", 13),
            ],
        ),
        (
            "a halt with an empty detail round-trips",
            vec![halted(HaltCause::Reconciliation, "", 0)],
        ),
        (
            "exits of every kind, newest first, entries left out",
            vec![
                enter(1, 1),
                filled(1, 10),
                position(1, 100.0, 10, 10),
                exit(2, 1, ExitKind::PartialTakeProfit),
                filled(2, 5),
                position(1, 100.0, 10, 5),
                exit(3, 1, ExitKind::StopLoss),
                attempt(3, 1),
                failed(3),
                enter(4, 4),
                exit(5, 1, ExitKind::Strategy),
                exit(6, 4, ExitKind::Emergency),
                exit(7, 4, ExitKind::Operator),
                exit(8, 1, ExitKind::Breakeven),
                exit(9, 1, ExitKind::TrailingStop),
                exit(10, 1, ExitKind::TakeProfit),
                attempt(10, 1),
                attempt(10, 2),
            ],
        ),
        (
            "ids need not be contiguous: next id follows the largest",
            vec![
                position(40, 1.0, 1, 1),
                exit(7, 40, ExitKind::StopLoss),
                position(3, 2.0, 2, 0),
            ],
        ),
        (
            "the largest storable values and awkward prices round-trip",
            vec![
                position(max, f64::MAX, max, max),
                position(2, 0.1 + 0.2, 1, 1),
                position(3, f64::MIN_POSITIVE, 1, 1),
                position(4, 1e-300, 1, 0),
                exit(max - 1, max, ExitKind::Emergency),
                Write::Attempt(AttemptRecord {
                    intent: IntentId(max - 1),
                    attempt: u32::MAX,
                    signature: TxSignature([0xFF; 64]),
                    blockhash: Blockhash([0xFF; 32]),
                    valid_at_slot: max,
                    last_valid_block_height: max,
                    slippage: Slippage::from_bps(10_000).unwrap(),
                    priority_fee: Lamports::new(max),
                    amount_in: TokenAmount::new(max),
                    min_out: TokenAmount::new(max),
                    sent_at: Timestamp::from_micros(max),
                    nonce: None,
                }),
                Write::Attempt(AttemptRecord {
                    intent: IntentId(max - 1),
                    attempt: 0,
                    signature: TxSignature([0; 64]),
                    blockhash: Blockhash([0; 32]),
                    valid_at_slot: 0,
                    last_valid_block_height: 0,
                    slippage: Slippage::from_bps(1).unwrap(),
                    priority_fee: Lamports::new(0),
                    amount_in: TokenAmount::new(0),
                    min_out: TokenAmount::new(0),
                    sent_at: Timestamp::ZERO,
                    nonce: None,
                }),
                Write::IntentOutcome(
                    max - 1,
                    IntentOutcome::Filled(Fill {
                        amount_in: TokenAmount::new(max),
                        amount_out: TokenAmount::new(0),
                        fee: Lamports::new(max),
                    }),
                ),
                halted(HaltCause::ExitDeadline, "late", max),
            ],
        ),
        (
            "a provisional fill and the control counters survive; a read fill replaces it",
            vec![
                enter(5, 6),
                attempt(5, 1),
                attempt_outcome(5, 1, AttemptOutcome::Landed),
                Write::IntentOutcome(
                    5,
                    IntentOutcome::Landed {
                        signature: signature(5, 1),
                        provisional: Fill {
                            amount_in: TokenAmount::new(5_000),
                            amount_out: TokenAmount::new(45),
                            fee: Lamports::new(0),
                        },
                    },
                ),
                enter(7, 8),
                attempt(7, 1),
                attempt_outcome(7, 1, AttemptOutcome::Landed),
                Write::IntentOutcome(
                    7,
                    IntentOutcome::Landed {
                        signature: signature(7, 1),
                        provisional: Fill {
                            amount_in: TokenAmount::new(7_000),
                            amount_out: TokenAmount::new(60),
                            fee: Lamports::new(0),
                        },
                    },
                ),
                filled(7, 70),
                Write::ExitFailures(1),
                Write::FreeBase(123_456),
            ],
        ),
        ("a failed exit keeps its audit trail and a live attempt", {
            let mut writes = vec![exit(4, 1, ExitKind::StopLoss), attempt(4, 1)];
            writes.extend(transitions(
                4,
                &[
                    ExitEvent::Signal {
                        kind: ExitKind::StopLoss,
                    },
                    ExitEvent::Submit {
                        attempt: 1,
                        signature: signature(4, 1),
                        last_valid_height: 1_001,
                    },
                    ExitEvent::ConfirmTimedOut,
                    ExitEvent::Fail {
                        reason: ExitFailure::DeadlineExceeded,
                    },
                ],
            ));
            writes.push(failed(4));
            writes
        }),
        (
            "a nonce attempt and its cancel on the same nonce are unresolved with their nonce",
            nonce_exit_in_flight(),
        ),
        (
            "an exit on a durable nonce landed by an attempt sent beside another",
            nonce_exit_landed(),
        ),
        (
            "a re-recorded attempt takes its new nonce, or loses it",
            vec![
                exit(8, 1, ExitKind::Emergency),
                attempt(8, 1),
                nonce_attempt(8, 1, false),
                nonce_attempt(8, 2, true),
                nonce_attempt(8, 2, false),
                nonce_attempt(8, 3, false),
                attempt(8, 3),
                nonce_attempt(8, 4, false),
                nonce_attempt(8, 4, true),
            ],
        ),
        (
            "nonce attempts of an entry and an exit side by side",
            vec![
                enter(9, 3),
                nonce_attempt(9, 1, false),
                nonce_attempt(9, 2, true),
                attempt_outcome(9, 2, AttemptOutcome::Landed),
                failed(9),
                exit(10, 1, ExitKind::Operator),
                attempt(10, 1),
                nonce_attempt(10, 2, false),
                attempt_outcome(10, 2, AttemptOutcome::Failed(ErrorClass::SlippageExceeded)),
                nonce_attempt(10, 3, true),
            ],
        ),
    ]
}

/// Every intent id a scenario mentions, for comparing audit trails.
fn intent_ids(writes: &[Write]) -> Vec<u64> {
    let mut ids: Vec<u64> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Intent(i) => Some(i.intent.0),
            Write::Transition(i, _) => Some(*i),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Replays every scenario into a fresh journal from `fresh` and into a [`MemoryJournal`],
/// and asserts that `load`, `exit_history` (at several limits) and, through
/// `transitions`, the audit trail of every intent agree.
///
/// # Panics
/// On the first disagreement, naming the scenario and the read.
pub async fn check_against_memory<J: Journal>(
    mut fresh: impl AsyncFnMut() -> J,
    transitions: impl AsyncFn(&J, IntentId) -> Vec<Transition>,
) {
    for (name, writes) in scenarios() {
        let journal = fresh().await;
        let memory = MemoryJournal::new();
        for write in &writes {
            apply(&memory, write).await;
            apply(&journal, write).await;
        }
        assert_eq!(
            journal.load().await.unwrap(),
            memory.load().await.unwrap(),
            "load: {name}"
        );
        for limit in [0, 1, 2, 3, 7, usize::MAX] {
            assert_eq!(
                journal.exit_history(limit).await.unwrap(),
                memory.exit_history(limit).await.unwrap(),
                "exit_history({limit}): {name}"
            );
        }
        for id in intent_ids(&writes) {
            assert_eq!(
                transitions(&journal, IntentId(id)).await,
                memory.transitions(IntentId(id)),
                "transitions of {id}: {name}"
            );
        }
    }
}

/// Asserts the refusals every durable journal makes on `journal` (fresh, empty): an
/// attempt or a transition naming an intent never journaled, and values above
/// `i64::MAX`, are errors of class `Unknown`, and nothing of them is written.
///
/// # Panics
/// When a write is accepted, or leaves something behind.
pub async fn check_durable_refusals(journal: &dyn Journal) {
    let Write::Attempt(orphan) = attempt(9, 1) else {
        unreachable!("attempt() builds an attempt")
    };
    let refused = journal.record_attempt(&orphan).await.unwrap_err();
    assert_eq!(refused.class, ErrorClass::Unknown, "{refused}");
    let signal = Transition {
        at: Timestamp::ZERO,
        from: ExitState::PositionOpen,
        to: ExitState::ExitSignalReceived {
            kind: ExitKind::Operator,
        },
        event: ExitEvent::Signal {
            kind: ExitKind::Operator,
        },
    };
    let refused = journal
        .record_transition(IntentId(9), &signal)
        .await
        .unwrap_err();
    assert_eq!(refused.class, ErrorClass::Unknown, "{refused}");

    let too_big = i64::MAX as u64 + 1;
    let Write::Intent(mut big) = enter(1, 1) else {
        unreachable!("enter() builds an intent")
    };
    big.amount_in = TokenAmount::new(too_big);
    assert!(journal.record_intent(&big).await.is_err());
    big.amount_in = TokenAmount::new(1);
    big.intent = IntentId(too_big);
    assert!(journal.record_intent(&big).await.is_err());
    apply(journal, &enter(1, 1)).await;
    let Write::Attempt(mut high) = attempt(1, 1) else {
        unreachable!("attempt() builds an attempt")
    };
    high.last_valid_block_height = u64::MAX;
    assert!(journal.record_attempt(&high).await.is_err());
    // A nonce attempt carries its nonce's value as its blockhash; the journal stores it
    // once, so a record where they differ cannot be stored as it is.
    let Write::Attempt(mut astray) = nonce_attempt(1, 1, false) else {
        unreachable!("nonce_attempt() builds an attempt")
    };
    astray.blockhash = Blockhash([0x11; 32]);
    let refused = journal.record_attempt(&astray).await.unwrap_err();
    assert_eq!(refused.class, ErrorClass::Unknown, "{refused}");
    let Write::Attempt(mut cancel) = nonce_attempt(1, 2, true) else {
        unreachable!("nonce_attempt() builds an attempt")
    };
    cancel.blockhash = Blockhash([0x11; 32]);
    assert!(journal.record_attempt(&cancel).await.is_err());
    let fill = IntentOutcome::Filled(Fill {
        amount_in: TokenAmount::new(1),
        amount_out: TokenAmount::new(u64::MAX),
        fee: Lamports::new(1),
    });
    let position = PositionRecord {
        position: PositionId(1),
        entry_price: Price::new(1.0).unwrap(),
        size: Size::new(TokenAmount::new(1)).unwrap(),
        remaining: TokenAmount::new(1),
    };
    assert!(
        journal
            .settle_intent(IntentId(1), &fill, Some(&position))
            .await
            .is_err()
    );
    let late = TradingState::Halted {
        reason: HaltReason::new(HaltCause::Operator, "x"),
        since: Timestamp::from_micros(u64::MAX),
    };
    assert!(journal.record_trading_state(&late).await.is_err());

    let snapshot = journal.load().await.unwrap();
    assert_eq!(snapshot.unresolved.len(), 1, "only the valid intent");
    assert!(snapshot.unresolved[0].attempts.is_empty());
    assert!(
        snapshot.open_positions.is_empty(),
        "a refused settle wrote its position"
    );
    assert_eq!(snapshot.trading_state, None);
    assert_eq!(snapshot.next_id, 2);
    assert!(journal.position(PositionId(1)).await.unwrap().is_none());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scenarios_exercise_what_they_claim() {
        // Guards the table above against silently comparing empty results.
        let memory = MemoryJournal::new();
        for write in &two_attempt_exit() {
            apply(&memory, write).await;
        }
        let snapshot = memory.load().await.unwrap();
        assert!(snapshot.open_positions.is_empty());
        assert!(snapshot.unresolved.is_empty());
        assert_eq!(snapshot.next_id, 3);
        let history = memory.exit_history(10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].attempts.len(), 2);
        assert_eq!(memory.transitions(IntentId(2)).len(), 7);
    }

    #[tokio::test]
    async fn the_nonce_scenarios_hold_nonces_cancels_and_a_submit_beside() {
        // Guards the nonce scenarios against comparing attempts without their nonce.
        let memory = MemoryJournal::new();
        for write in &nonce_exit_in_flight() {
            apply(&memory, write).await;
        }
        let snapshot = memory.load().await.unwrap();
        assert_eq!(snapshot.unresolved.len(), 1);
        let uses: Vec<Option<NonceUse>> = snapshot.unresolved[0]
            .attempts
            .iter()
            .map(|(a, _)| a.nonce)
            .collect();
        let (swap, cancel) = (
            Some(NonceUse {
                nonce: nonce(6),
                cancel: false,
            }),
            Some(NonceUse {
                nonce: nonce(6),
                cancel: true,
            }),
        );
        assert_eq!(uses, [swap, swap, cancel]);
        let (cancel, _) = snapshot.unresolved[0].attempts[2];
        assert_eq!(
            (cancel.blockhash, cancel.amount_in, cancel.min_out),
            (nonce(6).value, TokenAmount::new(0), TokenAmount::new(0))
        );
        let events: Vec<&str> = memory
            .transitions(IntentId(6))
            .iter()
            .map(|t| t.event.as_str())
            .collect();
        assert_eq!(
            events,
            [
                "signal",
                "submit",
                "confirm_timed_out",
                "submit_beside",
                "submit_beside"
            ]
        );
        let memory = MemoryJournal::new();
        for write in &nonce_exit_landed() {
            apply(&memory, write).await;
        }
        let history = memory.exit_history(10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].attempts.len(), 3);
        assert!(history[0].attempts.iter().all(|(a, _)| a.nonce.is_some()));
        assert!(matches!(
            memory.transitions(IntentId(7)).last().map(|t| t.to),
            Some(ExitState::PositionClosed { attempt: 2, .. })
        ));
    }

    #[tokio::test]
    async fn the_memory_journal_agrees_with_itself() {
        check_against_memory(
            async || MemoryJournal::new(),
            async |j: &MemoryJournal, id| j.transitions(id),
        )
        .await;
    }
}
