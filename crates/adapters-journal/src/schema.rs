//! The journal's schema as an ordered list of migration steps, tracked in
//! `PRAGMA user_version`.
//!
//! Step `n` (1-based) moves a file from version `n - 1` to `n`. Steps are only ever
//! appended: a released step is never edited, so every file converges on the same schema.
//! A file whose version is newer than the last step is refused untouched.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::JournalError;

/// The migration steps, in order; `MIGRATIONS[n - 1]` brings a file to version `n`.
///
/// Column types are SQLite's plain INTEGER / REAL / TEXT so that an operator can read the
/// file with the `sqlite3` CLI. Timestamps named `*_us` are the bot's monotonic clock in
/// microseconds; `*_ms` columns are wall-clock unix milliseconds taken when the row was
/// written.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE positions (
        id              INTEGER PRIMARY KEY NOT NULL,
        entry_price     REAL    NOT NULL,
        size            INTEGER NOT NULL,
        remaining       INTEGER NOT NULL,
        recorded_at_ms  INTEGER NOT NULL
    );

    CREATE TABLE intents (
        id                 INTEGER PRIMARY KEY NOT NULL,
        position_id        INTEGER NOT NULL,
        action             TEXT    NOT NULL,
        exit_kind          TEXT,
        side               TEXT    NOT NULL,
        amount_in          INTEGER NOT NULL,
        created_at_us      INTEGER NOT NULL,
        outcome            TEXT,
        fill_amount_in     INTEGER,
        fill_amount_out    INTEGER,
        fill_fee_lamports  INTEGER,
        recorded_at_ms     INTEGER NOT NULL,
        resolved_at_ms     INTEGER
    );

    CREATE TABLE attempts (
        intent_id                INTEGER NOT NULL REFERENCES intents (id),
        attempt                  INTEGER NOT NULL,
        signature                TEXT    NOT NULL,
        last_valid_block_height  INTEGER NOT NULL,
        slippage_bps             INTEGER NOT NULL,
        priority_fee_lamports    INTEGER NOT NULL,
        amount_in                INTEGER NOT NULL,
        sent_at_us               INTEGER NOT NULL,
        outcome                  TEXT,
        outcome_class            TEXT,
        recorded_at_ms           INTEGER NOT NULL,
        resolved_at_ms           INTEGER,
        PRIMARY KEY (intent_id, attempt)
    );
    CREATE INDEX attempts_by_signature ON attempts (signature);

    CREATE TABLE transitions (
        id                             INTEGER PRIMARY KEY NOT NULL,
        intent_id                      INTEGER NOT NULL REFERENCES intents (id),
        at_us                          INTEGER NOT NULL,
        from_state                     TEXT    NOT NULL,
        event                          TEXT    NOT NULL,
        to_state                       TEXT    NOT NULL,
        from_attempt                   INTEGER,
        from_signature                 TEXT,
        from_exit_kind                 TEXT,
        from_class                     TEXT,
        from_failure                   TEXT,
        event_attempt                  INTEGER,
        event_signature                TEXT,
        event_last_valid_block_height  INTEGER,
        event_exit_kind                TEXT,
        event_class                    TEXT,
        event_failure                  TEXT,
        to_attempt                     INTEGER,
        to_signature                   TEXT,
        to_exit_kind                   TEXT,
        to_class                       TEXT,
        to_failure                     TEXT,
        recorded_at_ms                 INTEGER NOT NULL
    );
    CREATE INDEX transitions_by_intent ON transitions (intent_id, id);

    CREATE TABLE trading_state (
        id              INTEGER PRIMARY KEY NOT NULL,
        state           TEXT    NOT NULL,
        cause           TEXT,
        detail          TEXT,
        since_us        INTEGER,
        recorded_at_ms  INTEGER NOT NULL
    );
    ",
    // 2: what proves an attempt's fate from one consistent view of the chain (its
    // blockhash and the slot it was seen valid at), the swap's minimum output (a landed
    // fill's lower bound), provisional fills (outcome 'landed'), and the exit breaker's
    // count and the wallet's free base holdings across restarts.
    "
    ALTER TABLE attempts ADD COLUMN blockhash TEXT;
    ALTER TABLE attempts ADD COLUMN valid_at_slot INTEGER;
    ALTER TABLE attempts ADD COLUMN min_out INTEGER;
    ALTER TABLE intents ADD COLUMN landed_signature TEXT;

    CREATE TABLE control (
        key             TEXT    PRIMARY KEY NOT NULL,
        value           INTEGER NOT NULL,
        recorded_at_ms  INTEGER NOT NULL
    );
    ",
    // 3: durable nonces. An attempt built on a durable nonce never expires; what proves
    // it dead is its nonce account holding another value, so the account is kept beside
    // the attempt (base58; NULL for an attempt on a recent blockhash). The value it
    // carries is the `blockhash` column already: a nonce transaction's message carries
    // the nonce's value as its blockhash. `cancel` (0 or 1) marks the intent's cancel, a
    // transaction that only advances the nonce so that nothing else on its value can
    // land. Rows written before this step were all on recent blockhashes, which is what
    // NULL and the default 0 say; no row is rewritten.
    "
    ALTER TABLE attempts ADD COLUMN nonce_account TEXT;
    ALTER TABLE attempts ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0;
    ",
];

/// The schema version this build writes (`PRAGMA user_version`): the number of migration
/// steps.
#[allow(clippy::cast_possible_wrap)] // a handful of steps
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` to [`SCHEMA_VERSION`], applying the missing steps in order inside one
/// immediate transaction (so two processes opening the same file cannot both migrate it,
/// and a failed step leaves the file at its old version).
///
/// # Errors
/// [`JournalError::SchemaTooNew`] when the file is newer than this build;
/// [`JournalError::Corrupt`] when its version is negative;
/// [`JournalError::Migration`] when a step or the version update fails.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let known = SCHEMA_VERSION;
    let migration = |version: i64| {
        let path = path.to_path_buf();
        move |source| JournalError::Migration {
            path,
            version,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(migration(known))?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(migration(known))?;
    if found < 0 {
        return Err(JournalError::Corrupt {
            table: "pragma",
            column: "user_version",
            value: found.to_string(),
        });
    }
    if found > known {
        return Err(JournalError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    if found == known {
        return Ok(());
    }
    for (version, step) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= found) {
        tx.execute_batch(step).map_err(migration(version))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(migration(version))?;
    }
    tx.commit().map_err(migration(known))
}

#[cfg(test)]
mod tests {
    use kyzlo_application::journal::{
        AttemptOutcome, AttemptRecord, IntentAction, IntentRecord, Journal as _, NonceUse,
    };
    use kyzlo_application::ports::{Blockhash, DurableNonce, NonceAccount, Side};
    use kyzlo_domain::{
        ExitKind, IntentId, Lamports, PositionId, Slippage, Timestamp, TokenAmount, TxSignature,
    };
    use rusqlite::params;

    use super::*;
    use crate::{SqliteJournal, codec};

    fn attempt(number: u32) -> AttemptRecord {
        AttemptRecord {
            intent: IntentId(2),
            attempt: number,
            signature: TxSignature([u8::try_from(number).unwrap(); 64]),
            blockhash: Blockhash([0x30 + u8::try_from(number).unwrap(); 32]),
            valid_at_slot: 280 + u64::from(number),
            last_valid_block_height: 300 + u64::from(number),
            slippage: Slippage::from_bps(100).unwrap(),
            priority_fee: Lamports::new(5_000 * u64::from(number)),
            amount_in: TokenAmount::new(1_000),
            min_out: TokenAmount::new(950),
            sent_at: Timestamp::from_micros(7 + u64::from(number)),
            nonce: None,
        }
    }

    /// Writes `attempt` as a version-2 build did: no nonce columns exist yet.
    fn insert_as_version_2(conn: &Connection, a: &AttemptRecord, outcome: Option<&str>) {
        conn.execute(
            "INSERT INTO attempts (intent_id, attempt, signature, blockhash, valid_at_slot,
                                   last_valid_block_height, slippage_bps,
                                   priority_fee_lamports, amount_in, min_out, sent_at_us,
                                   outcome, recorded_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1)",
            params![
                i64::try_from(a.intent.0).unwrap(),
                a.attempt,
                codec::signature_text(&a.signature),
                codec::blockhash_text(&a.blockhash),
                i64::try_from(a.valid_at_slot).unwrap(),
                i64::try_from(a.last_valid_block_height).unwrap(),
                a.slippage.bps().get(),
                i64::try_from(a.priority_fee.get()).unwrap(),
                i64::try_from(a.amount_in.get()).unwrap(),
                i64::try_from(a.min_out.get()).unwrap(),
                i64::try_from(a.sent_at.as_micros()).unwrap(),
                outcome,
            ],
        )
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_2_file_with_attempts_migrates_and_reads_them_back_without_a_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kyzlo.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..2] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO intents (id, position_id, action, exit_kind, side, amount_in,
                                      created_at_us, recorded_at_ms)
                 VALUES (2, 1, 'exit', 'stop_loss', 'sell', 1000, 5, 1)",
                [],
            )
            .unwrap();
            insert_as_version_2(&conn, &attempt(1), Some("expired"));
            insert_as_version_2(&conn, &attempt(2), None);
        }

        let journal = SqliteJournal::open(&path).unwrap();
        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let intent = IntentRecord {
            intent: IntentId(2),
            position: PositionId(1),
            action: IntentAction::Exit(ExitKind::StopLoss),
            side: Side::Sell,
            amount_in: TokenAmount::new(1_000),
            created_at: Timestamp::from_micros(5),
        };
        let expected = vec![
            (attempt(1), Some(AttemptOutcome::Expired)),
            (attempt(2), None),
        ];
        let snapshot = journal.load().await.unwrap();
        assert_eq!(snapshot.unresolved.len(), 1);
        assert_eq!(snapshot.unresolved[0].intent, intent);
        assert_eq!(snapshot.unresolved[0].attempts, expected);
        let history = journal.exit_history(10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].attempts, expected);

        // The migrated file takes the next attempt's nonce.
        let nonce = DurableNonce {
            account: NonceAccount([0x4E; 32]),
            value: Blockhash([0xC0; 32]),
        };
        let on_nonce = AttemptRecord {
            blockhash: nonce.value,
            nonce: Some(NonceUse {
                nonce,
                cancel: false,
            }),
            ..attempt(3)
        };
        journal.record_attempt(&on_nonce).await.unwrap();
        let snapshot = journal.load().await.unwrap();
        assert_eq!(
            snapshot.unresolved[0].attempts.last(),
            Some(&(on_nonce, None))
        );
    }
}
