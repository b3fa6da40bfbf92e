//! The journal's SQL, synchronous: each write is one immediate transaction, each read one
//! transaction (a consistent snapshot). The async adapter runs these on a blocking thread.

use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentHistory, IntentOutcome, IntentRecord,
    JournalSnapshot, NonceUse, PositionRecord, UnreadFill, UnresolvedIntent,
};
use kyzlo_application::ports::{Blockhash, DurableNonce, Fill, Side};
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::{HaltReason, TradingState};
use kyzlo_domain::{IntentId, Lamports, PositionId, Price, Size, Slippage, TokenAmount};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::codec::{self, Cols};
use crate::error::JournalError;
use crate::transitions;

mod read;

pub(crate) use read::{exit_history, load, position, transitions_of};

fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    move |source| JournalError::Sql { context, source }
}

/// Runs `f` in one immediate transaction and commits: all of it is durable, or none.
fn write<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("begin a write"))?;
    let value = f(&tx)?;
    tx.commit().map_err(sql("commit a write"))?;
    Ok(value)
}

/// Runs `f` in one read transaction, so that it sees a single state of the file.
fn read<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    let tx = conn.transaction().map_err(sql("begin a read"))?;
    let value = f(&tx)?;
    tx.commit().map_err(sql("end a read"))?;
    Ok(value)
}

/// Refuses a row of `table` that names an intent never journaled.
pub(crate) fn require_intent(
    tx: &Transaction<'_>,
    table: &'static str,
    intent: IntentId,
) -> Result<(), JournalError> {
    let id = codec::int(intent.0, table, "intent_id")?;
    let found = tx
        .prepare_cached("SELECT 1 FROM intents WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id], |_| Ok(())).optional())
        .map_err(sql("look up an intent"))?;
    found.ok_or(JournalError::UnknownIntent {
        table,
        intent: intent.0,
    })
}

/// Inserts or replaces an intent; a replaced intent loses its outcome (as the port's
/// reference journal does).
pub(crate) fn record_intent(
    conn: &mut Connection,
    intent: &IntentRecord,
    now_ms: i64,
) -> Result<(), JournalError> {
    const T: &str = "intents";
    let id = codec::int(intent.intent.0, T, "id")?;
    let position = codec::int(intent.position.0, T, "position_id")?;
    let amount = codec::int(intent.amount_in.get(), T, "amount_in")?;
    let created = codec::micros(intent.created_at, T, "created_at_us")?;
    let (action, kind) = match intent.action {
        IntentAction::Enter => ("enter", None),
        IntentAction::Exit(kind) => ("exit", Some(kind.as_str())),
    };
    write(conn, |tx| {
        tx.prepare_cached(
            "INSERT INTO intents (id, position_id, action, exit_kind, side, amount_in,
                                  created_at_us, recorded_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET
                position_id = excluded.position_id, action = excluded.action,
                exit_kind = excluded.exit_kind, side = excluded.side,
                amount_in = excluded.amount_in, created_at_us = excluded.created_at_us,
                outcome = NULL, fill_amount_in = NULL, fill_amount_out = NULL,
                fill_fee_lamports = NULL, resolved_at_ms = NULL,
                recorded_at_ms = excluded.recorded_at_ms",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id,
                position,
                action,
                kind,
                intent.side.as_str(),
                amount,
                created,
                now_ms
            ])
        })
        .map_err(sql("insert an intent"))?;
        Ok(())
    })
}

/// Inserts or replaces an attempt (a replaced attempt loses its outcome).
pub(crate) fn record_attempt(
    conn: &mut Connection,
    attempt: &AttemptRecord,
    now_ms: i64,
) -> Result<(), JournalError> {
    const T: &str = "attempts";
    let intent = codec::int(attempt.intent.0, T, "intent_id")?;
    let height = codec::int(
        attempt.last_valid_block_height,
        T,
        "last_valid_block_height",
    )?;
    let fee = codec::int(attempt.priority_fee.get(), T, "priority_fee_lamports")?;
    let amount = codec::int(attempt.amount_in.get(), T, "amount_in")?;
    let min_out = codec::int(attempt.min_out.get(), T, "min_out")?;
    let valid_at = codec::int(attempt.valid_at_slot, T, "valid_at_slot")?;
    let sent = codec::micros(attempt.sent_at, T, "sent_at_us")?;
    let (nonce_account, cancel) = nonce_columns(attempt)?;
    write(conn, |tx| {
        require_intent(tx, T, attempt.intent)?;
        tx.prepare_cached(
            "INSERT INTO attempts (intent_id, attempt, signature, blockhash, valid_at_slot,
                                   last_valid_block_height, slippage_bps,
                                   priority_fee_lamports, amount_in, min_out, sent_at_us,
                                   recorded_at_ms, nonce_account, cancel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (intent_id, attempt) DO UPDATE SET
                signature = excluded.signature, blockhash = excluded.blockhash,
                valid_at_slot = excluded.valid_at_slot,
                last_valid_block_height = excluded.last_valid_block_height,
                slippage_bps = excluded.slippage_bps,
                priority_fee_lamports = excluded.priority_fee_lamports,
                amount_in = excluded.amount_in, min_out = excluded.min_out,
                sent_at_us = excluded.sent_at_us,
                nonce_account = excluded.nonce_account, cancel = excluded.cancel,
                outcome = NULL, outcome_class = NULL, resolved_at_ms = NULL,
                recorded_at_ms = excluded.recorded_at_ms",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                intent,
                attempt.attempt,
                codec::signature_text(&attempt.signature),
                codec::blockhash_text(&attempt.blockhash),
                valid_at,
                height,
                attempt.slippage.bps().get(),
                fee,
                amount,
                min_out,
                sent,
                now_ms,
                nonce_account,
                cancel
            ])
        })
        .map_err(sql("insert an attempt"))?;
        Ok(())
    })
}

/// An attempt's `nonce_account` (base58, NULL on a recent blockhash) and `cancel` (1 for
/// a cancel, else 0) columns. The nonce's value is stored once, as the `blockhash` the
/// message carries, so an attempt whose nonce value is not its blockhash is refused
/// rather than stored as something else.
fn nonce_columns(attempt: &AttemptRecord) -> Result<(Option<String>, i64), JournalError> {
    match attempt.nonce {
        None => Ok((None, 0)),
        Some(NonceUse { nonce, .. }) if nonce.value != attempt.blockhash => {
            Err(JournalError::NonceNotBlockhash {
                intent: attempt.intent.0,
                attempt: attempt.attempt,
            })
        }
        Some(NonceUse { nonce, cancel }) => Ok((
            Some(codec::nonce_account_text(&nonce.account)),
            i64::from(cancel),
        )),
    }
}

/// Sets an attempt's outcome; an attempt never journaled is left alone (as the port's
/// reference journal does).
pub(crate) fn record_attempt_outcome(
    conn: &mut Connection,
    intent: IntentId,
    attempt: u32,
    outcome: AttemptOutcome,
    now_ms: i64,
) -> Result<(), JournalError> {
    let intent = codec::int(intent.0, "attempts", "intent_id")?;
    let (name, class) = match outcome {
        AttemptOutcome::Landed => ("landed", None),
        AttemptOutcome::Failed(class) => ("failed", Some(class.as_str())),
        AttemptOutcome::Expired => ("expired", None),
    };
    write(conn, |tx| {
        tx.prepare_cached(
            "UPDATE attempts SET outcome = ?3, outcome_class = ?4, resolved_at_ms = ?5
             WHERE intent_id = ?1 AND attempt = ?2",
        )
        .and_then(|mut stmt| stmt.execute(params![intent, attempt, name, class, now_ms]))
        .map_err(sql("update an attempt's outcome"))?;
        Ok(())
    })
}

/// Appends one transition of `intent`.
pub(crate) fn record_transition(
    conn: &mut Connection,
    intent: IntentId,
    transition: &Transition,
    now_ms: i64,
) -> Result<(), JournalError> {
    write(conn, |tx| {
        transitions::insert(tx, intent, transition, now_ms)
    })
}

/// Sets an intent's outcome and the position it leaves, in one transaction: after a
/// crash both are there or neither is.
pub(crate) fn settle_intent(
    conn: &mut Connection,
    intent: IntentId,
    outcome: &IntentOutcome,
    position: Option<&PositionRecord>,
    now_ms: i64,
) -> Result<(), JournalError> {
    write(conn, |tx| {
        update_intent_outcome(tx, intent, outcome, now_ms)?;
        if let Some(position) = position {
            upsert_position(tx, position, now_ms)?;
        }
        Ok(())
    })
}

fn update_intent_outcome(
    tx: &Transaction<'_>,
    intent: IntentId,
    outcome: &IntentOutcome,
    now_ms: i64,
) -> Result<(), JournalError> {
    const T: &str = "intents";
    let id = codec::int(intent.0, T, "id")?;
    let (name, landed) = match outcome {
        IntentOutcome::Filled(_) => ("filled", None),
        IntentOutcome::Landed { signature, .. } => {
            ("landed", Some(codec::signature_text(signature)))
        }
        IntentOutcome::Failed => ("failed", None),
    };
    let fill = outcome
        .fill()
        .map(|fill| {
            Ok::<_, JournalError>((
                codec::int(fill.amount_in.get(), T, "fill_amount_in")?,
                codec::int(fill.amount_out.get(), T, "fill_amount_out")?,
                codec::int(fill.fee.get(), T, "fill_fee_lamports")?,
            ))
        })
        .transpose()?;
    tx.prepare_cached(
        "UPDATE intents SET outcome = ?2, fill_amount_in = ?3, fill_amount_out = ?4,
                            fill_fee_lamports = ?5, resolved_at_ms = ?6,
                            landed_signature = ?7
         WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id,
            name,
            fill.map(|f| f.0),
            fill.map(|f| f.1),
            fill.map(|f| f.2),
            now_ms,
            landed
        ])
    })
    .map_err(sql("update an intent's outcome"))?;
    Ok(())
}

fn upsert_position(
    tx: &Transaction<'_>,
    position: &PositionRecord,
    now_ms: i64,
) -> Result<(), JournalError> {
    const T: &str = "positions";
    let id = codec::int(position.position.0, T, "id")?;
    let size = codec::int(position.size.amount().get(), T, "size")?;
    let remaining = codec::int(position.remaining.get(), T, "remaining")?;
    tx.prepare_cached(
        "INSERT INTO positions (id, entry_price, size, remaining, recorded_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET
            entry_price = excluded.entry_price, size = excluded.size,
            remaining = excluded.remaining, recorded_at_ms = excluded.recorded_at_ms",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id,
            position.entry_price.get(),
            size,
            remaining,
            now_ms
        ])
    })
    .map_err(sql("upsert a position"))?;
    Ok(())
}

/// Sets one of the control counters (`exit_failures`, `free_base`).
pub(crate) fn record_control(
    conn: &mut Connection,
    key: &'static str,
    value: u64,
    now_ms: i64,
) -> Result<(), JournalError> {
    let value = codec::int(value, "control", "value")?;
    write(conn, |tx| {
        tx.prepare_cached(
            "INSERT INTO control (key, value, recorded_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET
                value = excluded.value, recorded_at_ms = excluded.recorded_at_ms",
        )
        .and_then(|mut stmt| stmt.execute(params![key, value, now_ms]))
        .map_err(sql("set a control counter"))?;
        Ok(())
    })
}

/// A control counter, if set.
fn control(conn: &Connection, key: &'static str) -> Result<Option<u64>, JournalError> {
    let value: Option<i64> = conn
        .prepare_cached("SELECT value FROM control WHERE key = ?1")
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
        .map_err(sql("read a control counter"))?;
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| JournalError::Corrupt {
                table: "control",
                column: "value",
                value: v.to_string(),
            })
        })
        .transpose()
}

/// Appends a trading state; the latest row is the current state.
pub(crate) fn record_trading_state(
    conn: &mut Connection,
    state: &TradingState,
    now_ms: i64,
) -> Result<(), JournalError> {
    const T: &str = "trading_state";
    let (cause, detail, since) = match state {
        TradingState::Active => (None, None, None),
        TradingState::ReduceOnly { cause, since } => (
            Some(cause.as_str()),
            None,
            Some(codec::micros(*since, T, "since_us")?),
        ),
        TradingState::Halted { reason, since } => (
            Some(reason.cause.as_str()),
            Some(reason.detail.as_str()),
            Some(codec::micros(*since, T, "since_us")?),
        ),
    };
    write(conn, |tx| {
        tx.prepare_cached(
            "INSERT INTO trading_state (state, cause, detail, since_us, recorded_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| stmt.execute(params![state.as_str(), cause, detail, since, now_ms]))
        .map_err(sql("insert a trading state"))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
