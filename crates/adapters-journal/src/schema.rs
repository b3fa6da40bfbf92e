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
