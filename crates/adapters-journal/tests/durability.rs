//! What survives: a reopened file keeps everything, a halt survives a restart, migrations
//! apply once, a newer or foreign file is refused, corrupt rows are errors at the port, and
//! a writer killed with SIGKILL loses nothing it had been told was written.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kyzlo_adapters_journal::{JournalError, SCHEMA_VERSION, SqliteJournal};
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentHistory, IntentOutcome, IntentRecord,
    Journal, PositionRecord,
};
use kyzlo_application::ports::{Blockhash, Fill, Side};
use kyzlo_domain::exit_state::{ExitEvent, ExitState, Transition};
use kyzlo_domain::trading_state::{HaltReason, TradingState};
use kyzlo_domain::{
    ErrorClass, ExitKind, HaltCause, IntentId, Lamports, PositionId, Price, Size, Slippage,
    Timestamp, TokenAmount, TxSignature,
};
use rusqlite::Connection;

fn exit_intent(id: u64) -> IntentRecord {
    IntentRecord {
        intent: IntentId(id),
        position: PositionId(id % 3 + 1),
        action: IntentAction::Exit(ExitKind::ALL[usize::try_from(id % 8).unwrap()]),
        side: Side::Sell,
        amount_in: TokenAmount::new(1_000 + id),
        created_at: Timestamp::from_micros(id * 10),
    }
}

fn attempt(intent: u64, attempt: u32) -> AttemptRecord {
    let mut signature = [0x5Au8; 64];
    signature[..8].copy_from_slice(&intent.to_be_bytes());
    signature[8..12].copy_from_slice(&attempt.to_be_bytes());
    AttemptRecord {
        intent: IntentId(intent),
        attempt,
        signature: TxSignature(signature),
        blockhash: Blockhash([7; 32]),
        valid_at_slot: 400 + intent,
        last_valid_block_height: 500 + intent,
        slippage: Slippage::from_bps(100 * u16::try_from(attempt).unwrap()).unwrap(),
        priority_fee: Lamports::new(5_000),
        amount_in: TokenAmount::new(1_000 + intent),
        min_out: TokenAmount::new(intent * 6),
        sent_at: Timestamp::from_micros(intent * 10 + u64::from(attempt)),
        nonce: None,
    }
}

fn signal(intent: u64) -> Transition {
    let kind = ExitKind::ALL[usize::try_from(intent % 8).unwrap()];
    Transition {
        at: Timestamp::from_micros(intent * 10),
        from: ExitState::PositionOpen,
        to: ExitState::ExitSignalReceived { kind },
        event: ExitEvent::Signal { kind },
    }
}

fn intent_outcome(intent: u64) -> IntentOutcome {
    if intent.is_multiple_of(2) {
        IntentOutcome::Failed
    } else {
        IntentOutcome::Filled(Fill {
            amount_in: TokenAmount::new(1_000 + intent),
            amount_out: TokenAmount::new(intent * 7),
            fee: Lamports::new(10_000),
        })
    }
}

/// Every write made for one exit intent, in order.
async fn write_exit(journal: &SqliteJournal, id: u64) {
    journal.record_intent(&exit_intent(id)).await.unwrap();
    journal
        .record_transition(IntentId(id), &signal(id))
        .await
        .unwrap();
    journal.record_attempt(&attempt(id, 1)).await.unwrap();
    journal
        .record_attempt_outcome(IntentId(id), 1, AttemptOutcome::Expired)
        .await
        .unwrap();
    journal.record_attempt(&attempt(id, 2)).await.unwrap();
    journal
        .record_attempt_outcome(IntentId(id), 2, AttemptOutcome::Landed)
        .await
        .unwrap();
    journal
        .settle_intent(IntentId(id), &intent_outcome(id), None)
        .await
        .unwrap();
}

/// What the journal must hold once [`write_exit`] returned for `id`.
fn complete_exit(id: u64) -> IntentHistory {
    IntentHistory {
        intent: exit_intent(id),
        outcome: Some(intent_outcome(id)),
        attempts: vec![
            (attempt(id, 1), Some(AttemptOutcome::Expired)),
            (attempt(id, 2), Some(AttemptOutcome::Landed)),
        ],
    }
}

fn halted() -> TradingState {
    TradingState::Halted {
        reason: HaltReason::new(HaltCause::ExitBreaker, "pos-7: two failed exits"),
        since: Timestamp::from_micros(123_456),
    }
}

fn open_position() -> PositionRecord {
    PositionRecord {
        position: PositionId(1),
        entry_price: Price::new(151.37).unwrap(),
        size: Size::new(TokenAmount::new(2_000_000)).unwrap(),
        remaining: TokenAmount::new(1_000_000),
    }
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn tables(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn integrity(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_journal_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kyzlo.db");
    let journal = SqliteJournal::open(&path).unwrap();
    journal
        .settle_intent(IntentId(0), &IntentOutcome::Failed, Some(&open_position()))
        .await
        .unwrap();
    for id in 2..=4 {
        write_exit(&journal, id).await;
    }
    journal.record_intent(&exit_intent(5)).await.unwrap();
    journal.record_attempt(&attempt(5, 1)).await.unwrap();
    journal.record_trading_state(&halted()).await.unwrap();
    let before = (
        journal.load().await.unwrap(),
        journal.exit_history(usize::MAX).await.unwrap(),
        journal.transitions(IntentId(3)).await.unwrap(),
    );
    drop(journal);

    let reopened = SqliteJournal::open(&path).unwrap();
    let after = (
        reopened.load().await.unwrap(),
        reopened.exit_history(usize::MAX).await.unwrap(),
        reopened.transitions(IntentId(3)).await.unwrap(),
    );
    assert_eq!(after, before);
    let (snapshot, history, trail) = after;
    assert_eq!(snapshot.open_positions, vec![open_position()]);
    assert_eq!(snapshot.unresolved.len(), 1);
    assert_eq!(snapshot.unresolved[0].attempts, vec![(attempt(5, 1), None)]);
    assert_eq!(snapshot.next_id, 6);
    assert_eq!(history.len(), 4);
    assert_eq!(
        history[1..],
        [complete_exit(4), complete_exit(3), complete_exit(2)]
    );
    assert_eq!(trail, vec![signal(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_survives_a_restart_and_so_does_the_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kyzlo.db");
    let journal = SqliteJournal::open(&path).unwrap();
    journal
        .record_trading_state(&TradingState::Active)
        .await
        .unwrap();
    journal.record_trading_state(&halted()).await.unwrap();
    drop(journal);

    let journal = SqliteJournal::open(&path).unwrap();
    assert_eq!(journal.load().await.unwrap().trading_state, Some(halted()));
    journal
        .record_trading_state(&TradingState::Active)
        .await
        .unwrap();
    drop(journal);

    let journal = SqliteJournal::open(&path).unwrap();
    assert_eq!(
        journal.load().await.unwrap().trading_state,
        Some(TradingState::Active)
    );
    let rows: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM trading_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3, "the history of states is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_file_is_migrated_in_wal_mode_and_a_migrated_one_is_left_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("deeper").join("kyzlo.db");
    let journal = SqliteJournal::open(&path).unwrap();
    assert_eq!(journal.path(), path);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(
        tables(&path),
        [
            "attempts",
            "control",
            "intents",
            "positions",
            "trading_state",
            "transitions"
        ]
    );
    let mode: String = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    journal
        .settle_intent(IntentId(0), &IntentOutcome::Failed, Some(&open_position()))
        .await
        .unwrap();
    drop(journal);

    let journal = SqliteJournal::open(&path).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(
        journal.load().await.unwrap().open_positions,
        vec![open_position()]
    );
}

#[test]
fn a_file_from_a_newer_build_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kyzlo.db");
    let future = SCHEMA_VERSION + 1;
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE things_to_come (x INTEGER)")
            .unwrap();
        conn.pragma_update(None, "user_version", future).unwrap();
    }
    match SqliteJournal::open(&path) {
        Err(JournalError::SchemaTooNew {
            path: p,
            found,
            known,
        }) => {
            assert_eq!(
                (p.as_path(), found, known),
                (path.as_path(), future, SCHEMA_VERSION)
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(user_version(&path), future);
    assert_eq!(tables(&path), ["things_to_come"]);
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kyzlo.db");
    std::fs::write(&path, "this is not an SQLite database\n".repeat(200)).unwrap();
    match SqliteJournal::open(&path) {
        Err(error @ JournalError::Open { .. }) => {
            assert_eq!(
                error.sqlite_code(),
                Some(i64::from(rusqlite::ffi::SQLITE_NOTADB))
            );
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

#[test]
fn a_directory_that_cannot_be_created_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    match SqliteJournal::open(blocker.join("sub").join("kyzlo.db")) {
        Err(JournalError::CreateDir { path, .. }) => assert_eq!(path, blocker.join("sub")),
        other => panic!("expected CreateDir, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_and_refused_writes_are_unknown_class_errors_at_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kyzlo.db");
    let journal = SqliteJournal::open(&path).unwrap();
    journal.record_intent(&exit_intent(2)).await.unwrap();

    let refused = journal.record_attempt(&attempt(9, 1)).await.unwrap_err();
    assert_eq!(refused.operation, "journal.record_attempt");
    assert_eq!(refused.class, ErrorClass::Unknown);

    let mut huge = attempt(2, 1);
    huge.amount_in = TokenAmount::new(u64::MAX);
    let overflow = journal.record_attempt(&huge).await.unwrap_err();
    assert_eq!(
        (overflow.operation, overflow.class, overflow.code),
        ("journal.record_attempt", ErrorClass::Unknown, None)
    );

    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE intents SET exit_kind = 'panic_sell' WHERE id = 2",
            [],
        )
        .unwrap();
    let load = journal.load().await.unwrap_err();
    assert_eq!(
        (load.operation, load.class),
        ("journal.load", ErrorClass::Unknown)
    );
    let history = journal.exit_history(5).await.unwrap_err();
    assert_eq!(
        (history.operation, history.class),
        ("journal.exit_history", ErrorClass::Unknown)
    );
    // The typed error behind it names the table, the column and the value.
    let expected = JournalError::Corrupt {
        table: "intents",
        column: "exit_kind",
        value: "\"panic_sell\"".to_owned(),
    };
    assert_eq!(load.detail, expected.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_through_clones_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(dir.path().join("kyzlo.db")).unwrap();
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            let journal = journal.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    let id = t * 100 + i + 1;
                    journal.record_intent(&exit_intent(id)).await.unwrap();
                    journal.record_attempt(&attempt(id, 1)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let snapshot = journal.load().await.unwrap();
    assert_eq!(snapshot.unresolved.len(), 20);
    assert!(snapshot.unresolved.iter().all(|u| u.attempts.len() == 1));
    assert_eq!(snapshot.next_id, 306);
}

/// Set in the re-executed test binary: the path of the journal the child writes.
const CHILD_ENV: &str = "KYZLO_JOURNAL_CRASH_CHILD";
/// This test's name, for re-executing only it.
const CRASH_TEST: &str = "a_writer_killed_mid_write_loses_nothing_it_reported";
/// The child is killed once it has reported this many exits written.
const KILL_AFTER: u64 = 12;

/// The child: writes exits in a loop and reports each one once every call returned.
/// Bounded in count and time so that it ends even if its parent died.
fn child_writes_until_killed(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let journal = SqliteJournal::open(path).unwrap();
        let started = Instant::now();
        for id in 1..=10_000 {
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
            write_exit(&journal, id).await;
            let mut out = std::io::stdout().lock();
            writeln!(out, "written {id}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain test (not `#[tokio::test]`): the child builds its own runtime.
#[test]
fn a_writer_killed_mid_write_loses_nothing_it_reported() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child_writes_until_killed(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kyzlo.db");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([CRASH_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness may print its own text before the child's first line.
            let id = line
                .split("written ")
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(id) = id
                && tx.send(id).is_err()
            {
                break;
            }
        }
    });
    let mut reported = Vec::new();
    while reported.len() < usize::try_from(KILL_AFTER).unwrap() {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(id) => reported.push(id),
            Err(e) => panic!("the child stopped reporting after {reported:?}: {e}"),
        }
    }
    // SIGKILL while the child is in the middle of its next writes.
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(
        !status.success(),
        "the child was killed, not finished: {status}"
    );
    reader.join().unwrap();
    reported.extend(rx.try_iter());
    let last_reported = *reported.last().unwrap();
    assert_eq!(reported, (1..=last_reported).collect::<Vec<_>>());

    let journal = SqliteJournal::open(&path).unwrap();
    assert_eq!(integrity(&path), ["ok"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(check_after_crash(&journal, last_reported));
}

/// Checks what a killed child left: every exit it reported, intact.
async fn check_after_crash(journal: &SqliteJournal, last_reported: u64) {
    // Every row decodes: nothing torn.
    let snapshot = journal.load().await.unwrap();
    let mut history = journal.exit_history(usize::MAX).await.unwrap();
    history.reverse();
    assert!(
        history.len() >= usize::try_from(last_reported).unwrap(),
        "{} exits found, {last_reported} reported",
        history.len()
    );
    // Writes are sequential: every exit before the last one found is complete, the last
    // one may have been cut anywhere between two calls, never inside one.
    let (last, complete) = history.split_last().unwrap();
    for (found, id) in complete.iter().zip(1..) {
        assert_eq!(*found, complete_exit(id), "exit {id}");
        assert_eq!(
            journal.transitions(IntentId(id)).await.unwrap(),
            vec![signal(id)]
        );
    }
    let last_id = u64::try_from(history.len()).unwrap();
    let full = complete_exit(last_id);
    assert_eq!(last.intent, full.intent);
    assert!(last.outcome.is_none() || last.outcome == full.outcome);
    for (found, expected) in last.attempts.iter().zip(&full.attempts) {
        assert_eq!(found.0, expected.0);
        assert!(found.1.is_none() || found.1 == expected.1);
    }
    assert!(last_id >= last_reported);
    assert!(
        snapshot
            .unresolved
            .iter()
            .all(|u| u.intent.intent.0 == last_id)
    );
    assert_eq!(snapshot.next_id, last_id + 1);
}
