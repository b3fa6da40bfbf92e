//! Unit tests of the SQL layer: typed errors for corrupt rows, refused writes that leave
//! nothing behind, and the audit trail read back losslessly.

use std::path::Path;

use kyzlo_domain::exit_state::{ExitEvent, ExitFailure, ExitState};
use kyzlo_domain::{ErrorClass, ExitKind, Timestamp, TxSignature};

use super::*;
use crate::schema;

fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    schema::migrate(&mut conn, Path::new(":memory:")).unwrap();
    conn
}

fn intent(id: u64, action: IntentAction) -> IntentRecord {
    IntentRecord {
        intent: IntentId(id),
        position: PositionId(1),
        action,
        side: Side::Sell,
        amount_in: TokenAmount::new(1_000),
        created_at: Timestamp::from_micros(5),
    }
}

fn attempt(intent: u64, attempt: u32) -> AttemptRecord {
    AttemptRecord {
        intent: IntentId(intent),
        attempt,
        signature: TxSignature([u8::try_from(attempt).unwrap_or(0); 64]),
        blockhash: Blockhash([9; 32]),
        valid_at_slot: 280,
        last_valid_block_height: 300,
        slippage: Slippage::from_bps(100).unwrap(),
        priority_fee: Lamports::new(5_000),
        amount_in: TokenAmount::new(1_000),
        min_out: TokenAmount::new(950),
        sent_at: Timestamp::from_micros(7),
        nonce: None,
    }
}

/// Writes a position on its own (settled with an intent nobody journaled).
fn record_position(
    conn: &mut Connection,
    position: &PositionRecord,
    now_ms: i64,
) -> Result<(), JournalError> {
    settle_intent(
        conn,
        IntentId(999_999),
        &IntentOutcome::Failed,
        Some(position),
        now_ms,
    )
}

/// One of everything: a position, an exit intent with an attempt and an outcome, a
/// transition and a halted trading state.
fn populated() -> Connection {
    let mut conn = db();
    record_position(
        &mut conn,
        &PositionRecord {
            position: PositionId(1),
            entry_price: Price::new(150.0).unwrap(),
            size: Size::new(TokenAmount::new(1_000)).unwrap(),
            remaining: TokenAmount::new(1_000),
        },
        1,
    )
    .unwrap();
    record_intent(
        &mut conn,
        &intent(2, IntentAction::Exit(ExitKind::StopLoss)),
        1,
    )
    .unwrap();
    record_attempt(&mut conn, &attempt(2, 1), 1).unwrap();
    record_attempt_outcome(
        &mut conn,
        IntentId(2),
        1,
        AttemptOutcome::Failed(ErrorClass::SlippageExceeded),
        1,
    )
    .unwrap();
    let transition = Transition {
        at: Timestamp::from_micros(9),
        from: ExitState::PositionOpen,
        to: ExitState::ExitSignalReceived {
            kind: ExitKind::StopLoss,
        },
        event: ExitEvent::Signal {
            kind: ExitKind::StopLoss,
        },
    };
    record_transition(&mut conn, IntentId(2), &transition, 1).unwrap();
    let halted = TradingState::Halted {
        reason: HaltReason::new(kyzlo_domain::HaltCause::ExitBreaker, "two failed exits"),
        since: Timestamp::from_micros(11),
    };
    record_trading_state(&mut conn, &halted, 1).unwrap();
    conn
}

#[derive(Debug, Clone, Copy)]
enum Reader {
    Load,
    History,
    Transitions,
}

fn read_with(conn: &mut Connection, reader: Reader) -> Result<(), JournalError> {
    match reader {
        Reader::Load => load(conn).map(drop),
        Reader::History => exit_history(conn, 10).map(drop),
        Reader::Transitions => transitions_of(conn, IntentId(2)).map(drop),
    }
}

#[test]
fn the_populated_journal_reads_back_cleanly() {
    let mut conn = populated();
    for reader in [Reader::Load, Reader::History, Reader::Transitions] {
        assert!(read_with(&mut conn, reader).is_ok(), "{reader:?}");
    }
}

#[test]
fn a_corrupt_stored_value_is_a_typed_error_naming_table_column_and_value() {
    use Reader::*;
    // (tampering, reader, table, column, value named)
    let cases: &[(&str, Reader, &str, &str, &str)] = &[
        (
            "UPDATE intents SET exit_kind = 'panic_sell'",
            History,
            "intents",
            "exit_kind",
            "\"panic_sell\"",
        ),
        (
            "UPDATE intents SET exit_kind = 'panic_sell'",
            Load,
            "intents",
            "exit_kind",
            "\"panic_sell\"",
        ),
        (
            "UPDATE intents SET exit_kind = NULL",
            History,
            "intents",
            "exit_kind",
            "NULL",
        ),
        (
            "UPDATE intents SET action = 'exxit'",
            History,
            "intents",
            "action",
            "\"exxit\"",
        ),
        (
            "UPDATE intents SET side = 'short'",
            Load,
            "intents",
            "side",
            "\"short\"",
        ),
        (
            "UPDATE intents SET outcome = 'maybe'",
            Load,
            "intents",
            "outcome",
            "\"maybe\"",
        ),
        (
            "UPDATE intents SET amount_in = -5",
            History,
            "intents",
            "amount_in",
            "-5",
        ),
        (
            "UPDATE intents SET created_at_us = 'soon'",
            Load,
            "intents",
            "created_at_us",
            "\"soon\"",
        ),
        (
            "UPDATE attempts SET outcome = 'lost'",
            History,
            "attempts",
            "outcome",
            "\"lost\"",
        ),
        (
            "UPDATE attempts SET outcome_class = 'gremlins'",
            Load,
            "attempts",
            "outcome_class",
            "\"gremlins\"",
        ),
        (
            "UPDATE attempts SET outcome_class = NULL",
            History,
            "attempts",
            "outcome_class",
            "NULL",
        ),
        (
            "UPDATE attempts SET signature = 'not-base58!'",
            Load,
            "attempts",
            "signature",
            "\"not-base58!\"",
        ),
        (
            "UPDATE attempts SET slippage_bps = 0",
            Load,
            "attempts",
            "slippage_bps",
            "0",
        ),
        (
            "UPDATE attempts SET slippage_bps = 70000",
            Load,
            "attempts",
            "slippage_bps",
            "70000",
        ),
        (
            "UPDATE attempts SET cancel = 1",
            Load,
            "attempts",
            "nonce_account",
            "\"<NULL on a cancel>\"",
        ),
        (
            "UPDATE attempts SET cancel = 1",
            History,
            "attempts",
            "nonce_account",
            "\"<NULL on a cancel>\"",
        ),
        (
            "UPDATE attempts SET cancel = 2",
            Load,
            "attempts",
            "cancel",
            "2",
        ),
        (
            "UPDATE attempts SET cancel = 'yes'",
            History,
            "attempts",
            "cancel",
            "\"yes\"",
        ),
        (
            "UPDATE attempts SET nonce_account = 'not-base58!'",
            Load,
            "attempts",
            "nonce_account",
            "\"not-base58!\"",
        ),
        (
            // Base58, but 3 bytes: no account.
            "UPDATE attempts SET nonce_account = '2222'",
            History,
            "attempts",
            "nonce_account",
            "\"2222\"",
        ),
        (
            "UPDATE attempts SET nonce_account = '11111111111111111111111111111111', blockhash = NULL",
            History,
            "attempts",
            "blockhash",
            "NULL",
        ),
        (
            "UPDATE positions SET entry_price = -1.5",
            Load,
            "positions",
            "entry_price",
            "-1.5",
        ),
        (
            "UPDATE positions SET size = 0",
            Load,
            "positions",
            "size",
            "0",
        ),
        (
            "UPDATE positions SET remaining = x'01'",
            Load,
            "positions",
            "remaining",
            "<blob of 1 bytes>",
        ),
        (
            "UPDATE trading_state SET cause = 'boredom'",
            Load,
            "trading_state",
            "cause",
            "\"boredom\"",
        ),
        (
            "UPDATE trading_state SET state = 'paused'",
            Load,
            "trading_state",
            "state",
            "\"paused\"",
        ),
        (
            "UPDATE trading_state SET since_us = NULL",
            Load,
            "trading_state",
            "since_us",
            "NULL",
        ),
        (
            "UPDATE trading_state SET detail = NULL",
            Load,
            "trading_state",
            "detail",
            "NULL",
        ),
        (
            "UPDATE transitions SET event = 'teleport'",
            Transitions,
            "transitions",
            "event",
            "\"teleport\"",
        ),
        (
            "UPDATE transitions SET to_exit_kind = 'moon'",
            Transitions,
            "transitions",
            "to_exit_kind",
            "\"moon\"",
        ),
        (
            "UPDATE transitions SET from_state = 'limbo'",
            Transitions,
            "transitions",
            "from_state",
            "\"limbo\"",
        ),
    ];
    for &(tamper, reader, table, column, value) in cases {
        let mut conn = populated();
        conn.execute_batch(tamper).unwrap();
        match read_with(&mut conn, reader) {
            Err(JournalError::Corrupt {
                table: t,
                column: c,
                value: v,
            }) => assert_eq!((t, c, v.as_str()), (table, column, value), "{tamper}"),
            other => panic!("{tamper}: expected corrupt {table}.{column}, got {other:?}"),
        }
    }
}

#[test]
fn an_attempt_or_transition_for_an_unknown_intent_is_refused_and_not_written() {
    let mut conn = db();
    assert!(matches!(
        record_attempt(&mut conn, &attempt(9, 1), 1),
        Err(JournalError::UnknownIntent {
            table: "attempts",
            intent: 9
        })
    ));
    let transition = Transition {
        at: Timestamp::ZERO,
        from: ExitState::PositionOpen,
        to: ExitState::ExitSignalReceived {
            kind: ExitKind::Operator,
        },
        event: ExitEvent::Signal {
            kind: ExitKind::Operator,
        },
    };
    assert!(matches!(
        record_transition(&mut conn, IntentId(9), &transition, 1),
        Err(JournalError::UnknownIntent {
            table: "transitions",
            intent: 9
        })
    ));
    let count: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM attempts) + (SELECT count(*) FROM transitions)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn values_above_i64_max_are_refused_and_leave_nothing_written() {
    let too_big = i64::MAX as u64 + 1;
    let mut conn = db();
    let mut big_intent = intent(1, IntentAction::Enter);
    big_intent.amount_in = TokenAmount::new(too_big);
    assert!(matches!(
        record_intent(&mut conn, &big_intent, 1),
        Err(JournalError::Overflow { table: "intents", column: "amount_in", value }) if value == too_big
    ));
    assert!(matches!(
        record_intent(&mut conn, &intent(too_big, IntentAction::Enter), 1),
        Err(JournalError::Overflow {
            table: "intents",
            column: "id",
            ..
        })
    ));
    record_intent(&mut conn, &intent(1, IntentAction::Enter), 1).unwrap();
    let mut big_attempt = attempt(1, 1);
    big_attempt.last_valid_block_height = u64::MAX;
    assert!(matches!(
        record_attempt(&mut conn, &big_attempt, 1),
        Err(JournalError::Overflow {
            table: "attempts",
            column: "last_valid_block_height",
            ..
        })
    ));
    let fill = IntentOutcome::Filled(Fill {
        amount_in: TokenAmount::new(1),
        amount_out: TokenAmount::new(u64::MAX),
        fee: Lamports::new(1),
    });
    assert!(matches!(
        settle_intent(&mut conn, IntentId(1), &fill, None, 1),
        Err(JournalError::Overflow {
            table: "intents",
            column: "fill_amount_out",
            ..
        })
    ));
    let halted = TradingState::Halted {
        reason: HaltReason::new(kyzlo_domain::HaltCause::Operator, "x"),
        since: Timestamp::from_micros(u64::MAX),
    };
    assert!(matches!(
        record_trading_state(&mut conn, &halted, 1),
        Err(JournalError::Overflow {
            table: "trading_state",
            column: "since_us",
            ..
        })
    ));
    let snapshot = load(&mut conn).unwrap();
    assert_eq!(snapshot.unresolved.len(), 1, "only the valid intent");
    assert!(snapshot.unresolved[0].attempts.is_empty());
    assert_eq!(snapshot.trading_state, None);
    assert_eq!(snapshot.next_id, 2);
}

#[test]
fn the_largest_storable_id_still_yields_a_next_id() {
    let mut conn = db();
    let max = i64::MAX as u64;
    record_intent(&mut conn, &intent(max, IntentAction::Enter), 1).unwrap();
    assert_eq!(load(&mut conn).unwrap().next_id, max + 1);
}

fn sig(byte: u8) -> TxSignature {
    TxSignature([byte; 64])
}

#[test]
fn every_kind_of_transition_reads_back_exactly() {
    let states = [
        ExitState::PositionOpen,
        ExitState::ExitSignalReceived {
            kind: ExitKind::TrailingStop,
        },
        ExitState::Submitted {
            attempt: 1,
            signature: sig(1),
        },
        ExitState::TimedOut {
            attempt: 1,
            signature: sig(1),
        },
        ExitState::Expired {
            attempt: 2,
            signature: sig(2),
        },
        ExitState::LandedFailed {
            attempt: 3,
            signature: sig(3),
            class: ErrorClass::SlippageExceeded,
        },
        ExitState::EmergencyEscalation { next_attempt: 4 },
        ExitState::PositionClosed {
            attempt: u32::MAX,
            signature: sig(255),
        },
        ExitState::ExitFailed {
            reason: ExitFailure::DeadlineExceeded,
        },
        ExitState::ExitFailed {
            reason: ExitFailure::AttemptsExhausted,
        },
        ExitState::ExitFailed {
            reason: ExitFailure::Permanent(ErrorClass::InsufficientFunds),
        },
        ExitState::ExitFailed {
            reason: ExitFailure::Halted,
        },
    ];
    let events = [
        ExitEvent::Signal {
            kind: ExitKind::Breakeven,
        },
        ExitEvent::Submit {
            attempt: 2,
            signature: sig(2),
            last_valid_height: i64::MAX as u64,
        },
        ExitEvent::ConfirmTimedOut,
        ExitEvent::ProvenExpired { signature: sig(4) },
        ExitEvent::LandedFailed {
            signature: sig(5),
            class: ErrorClass::LandedFailed,
        },
        ExitEvent::Landed { signature: sig(6) },
        ExitEvent::Escalate,
        ExitEvent::Fail {
            reason: ExitFailure::Permanent(ErrorClass::NoRoute),
        },
        ExitEvent::Fail {
            reason: ExitFailure::Halted,
        },
    ];
    let mut conn = db();
    record_intent(
        &mut conn,
        &intent(2, IntentAction::Exit(ExitKind::Operator)),
        1,
    )
    .unwrap();
    // Not every pair is a valid machine step: the journal stores what it is given.
    let mut expected = Vec::new();
    for (i, from) in states.iter().enumerate() {
        for (j, event) in events.iter().enumerate() {
            let to = states[(i + j + 1) % states.len()];
            let at = Timestamp::from_micros(u64::try_from(i * 100 + j).unwrap());
            let t = Transition {
                at,
                from: *from,
                to,
                event: *event,
            };
            record_transition(&mut conn, IntentId(2), &t, 1).unwrap();
            expected.push(t);
        }
    }
    assert_eq!(transitions_of(&mut conn, IntentId(2)).unwrap(), expected);
    assert!(transitions_of(&mut conn, IntentId(3)).unwrap().is_empty());
}
