//! The journal's SQL, synchronous: each write is one immediate transaction, each read one
//! transaction (a consistent snapshot). The async adapter runs these on a blocking thread.

use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentHistory, IntentOutcome, IntentRecord,
    JournalSnapshot, PositionRecord, UnreadFill, UnresolvedIntent,
};
use kyzlo_application::ports::{Blockhash, Fill, Side};
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::{HaltReason, TradingState};
use kyzlo_domain::{IntentId, Lamports, PositionId, Price, Size, Slippage, TokenAmount};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::codec::{self, Cols};
use crate::error::JournalError;
use crate::transitions;

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
    write(conn, |tx| {
        require_intent(tx, T, attempt.intent)?;
        tx.prepare_cached(
            "INSERT INTO attempts (intent_id, attempt, signature, blockhash, valid_at_slot,
                                   last_valid_block_height, slippage_bps,
                                   priority_fee_lamports, amount_in, min_out, sent_at_us,
                                   recorded_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (intent_id, attempt) DO UPDATE SET
                signature = excluded.signature, blockhash = excluded.blockhash,
                valid_at_slot = excluded.valid_at_slot,
                last_valid_block_height = excluded.last_valid_block_height,
                slippage_bps = excluded.slippage_bps,
                priority_fee_lamports = excluded.priority_fee_lamports,
                amount_in = excluded.amount_in, min_out = excluded.min_out,
                sent_at_us = excluded.sent_at_us,
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
                now_ms
            ])
        })
        .map_err(sql("insert an attempt"))?;
        Ok(())
    })
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

fn position_row(row: &Row<'_>) -> Result<PositionRecord, JournalError> {
    let c = Cols::new(row, "positions");
    let price = c.f64("entry_price")?;
    let size = c.u64("size")?;
    Ok(PositionRecord {
        position: PositionId(c.u64("id")?),
        entry_price: Price::new(price)
            .map_err(|_| c.corrupt("entry_price", ValueRef::Real(price)))?,
        size: Size::new(TokenAmount::new(size))
            .map_err(|_| c.corrupt("size", ValueRef::Integer(0)))?,
        remaining: TokenAmount::new(c.u64("remaining")?),
    })
}

fn intent_row(row: &Row<'_>) -> Result<(IntentRecord, Option<IntentOutcome>), JournalError> {
    let c = Cols::new(row, "intents");
    let kind = c.opt_parsed("exit_kind", codec::parse_exit_kind)?;
    let action = match c.text("action")? {
        "enter" if kind.is_none() => IntentAction::Enter,
        "enter" => return Err(c.corrupt("exit_kind", ValueRef::Text(b"<set on an entry>"))),
        "exit" => IntentAction::Exit(c.required("exit_kind", kind)?),
        other => return Err(c.corrupt("action", ValueRef::Text(other.as_bytes()))),
    };
    let intent = IntentRecord {
        intent: IntentId(c.u64("id")?),
        position: PositionId(c.u64("position_id")?),
        action,
        side: c.parsed::<Side>("side", codec::parse_side)?,
        amount_in: TokenAmount::new(c.u64("amount_in")?),
        created_at: c.timestamp("created_at_us")?,
    };
    let fill = || -> Result<Fill, JournalError> {
        Ok(Fill {
            amount_in: TokenAmount::new(c.u64("fill_amount_in")?),
            amount_out: TokenAmount::new(c.u64("fill_amount_out")?),
            fee: Lamports::new(c.u64("fill_fee_lamports")?),
        })
    };
    let outcome = match c.opt_text("outcome")? {
        None => None,
        Some("filled") => Some(IntentOutcome::Filled(fill()?)),
        Some("landed") => Some(IntentOutcome::Landed {
            signature: c.parsed("landed_signature", codec::parse_signature)?,
            provisional: fill()?,
        }),
        Some("failed") => Some(IntentOutcome::Failed),
        Some(other) => return Err(c.corrupt("outcome", ValueRef::Text(other.as_bytes()))),
    };
    Ok((intent, outcome))
}

fn attempt_row(row: &Row<'_>) -> Result<(AttemptRecord, Option<AttemptOutcome>), JournalError> {
    let c = Cols::new(row, "attempts");
    let bps = c.u32("slippage_bps")?;
    let slippage = u16::try_from(bps)
        .ok()
        .and_then(|bps| Slippage::from_bps(bps).ok())
        .ok_or_else(|| c.corrupt("slippage_bps", ValueRef::Integer(i64::from(bps))))?;
    let class = c.opt_parsed("outcome_class", codec::parse_error_class)?;
    let outcome = match c.opt_text("outcome")? {
        None => None,
        Some("landed") => Some(AttemptOutcome::Landed),
        Some("failed") => Some(AttemptOutcome::Failed(c.required("outcome_class", class)?)),
        Some("expired") => Some(AttemptOutcome::Expired),
        Some(other) => return Err(c.corrupt("outcome", ValueRef::Text(other.as_bytes()))),
    };
    let intent = IntentId(c.u64("intent_id")?);
    let number = c.u32("attempt")?;
    // Attempts journaled before schema 2 carry no blockhash: harmless once resolved (shown
    // in the history), unprovable while unresolved.
    let blockhash = match (c.opt_parsed("blockhash", codec::parse_blockhash)?, outcome) {
        (Some(hash), _) => hash,
        (None, Some(_)) => Blockhash([0; 32]),
        (None, None) => {
            return Err(JournalError::LegacyAttempt {
                intent: intent.0,
                attempt: number,
            });
        }
    };
    let attempt = AttemptRecord {
        intent,
        attempt: number,
        signature: c.parsed("signature", codec::parse_signature)?,
        blockhash,
        valid_at_slot: c.opt_u64("valid_at_slot")?.unwrap_or(0),
        last_valid_block_height: c.u64("last_valid_block_height")?,
        slippage,
        priority_fee: Lamports::new(c.u64("priority_fee_lamports")?),
        amount_in: TokenAmount::new(c.u64("amount_in")?),
        min_out: TokenAmount::new(c.opt_u64("min_out")?.unwrap_or(0)),
        sent_at: c.timestamp("sent_at_us")?,
    };
    Ok((attempt, outcome))
}

fn trading_state_row(row: &Row<'_>) -> Result<TradingState, JournalError> {
    let c = Cols::new(row, "trading_state");
    Ok(match c.text("state")? {
        "active" => TradingState::Active,
        "reduce_only" => TradingState::ReduceOnly {
            cause: c.parsed("cause", codec::parse_reduce_only_cause)?,
            since: c.timestamp("since_us")?,
        },
        "halted" => TradingState::Halted {
            reason: HaltReason::new(
                c.parsed("cause", codec::parse_halt_cause)?,
                c.text("detail")?,
            ),
            since: c.timestamp("since_us")?,
        },
        other => return Err(c.corrupt("state", ValueRef::Text(other.as_bytes()))),
    })
}

/// Runs `select` with `params` and decodes every row with `decode`.
fn rows<T>(
    conn: &Connection,
    select: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T, JournalError>,
) -> Result<Vec<T>, JournalError> {
    let mut stmt = conn
        .prepare_cached(select)
        .map_err(sql("prepare a query"))?;
    let mut rows = stmt.query(params).map_err(sql("run a query"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql("read a row"))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn attempts_of(
    conn: &Connection,
    intent: IntentId,
) -> Result<Vec<(AttemptRecord, Option<AttemptOutcome>)>, JournalError> {
    let id = codec::int(intent.0, "attempts", "intent_id")?;
    rows(
        conn,
        "SELECT * FROM attempts WHERE intent_id = ?1 ORDER BY attempt",
        [id],
        attempt_row,
    )
}

/// The largest id in `table`, if any.
fn max_id(
    conn: &Connection,
    table: &'static str,
    select: &str,
) -> Result<Option<u64>, JournalError> {
    let max: Option<i64> = conn
        .query_row(select, [], |row| row.get(0))
        .map_err(sql("read the largest id"))?;
    max.map(|m| {
        u64::try_from(m).map_err(|_| JournalError::Corrupt {
            table,
            column: "id",
            value: m.to_string(),
        })
    })
    .transpose()
}

/// A position as last written, open or closed.
pub(crate) fn position(
    conn: &mut Connection,
    id: PositionId,
) -> Result<Option<PositionRecord>, JournalError> {
    let id = codec::int(id.0, "positions", "id")?;
    read(conn, |tx| {
        Ok(rows(
            tx,
            "SELECT * FROM positions WHERE id = ?1",
            [id],
            position_row,
        )?
        .into_iter()
        .next())
    })
}

/// What start-up needs: open positions, unresolved intents with their attempts, the
/// latest trading state and the next free id.
pub(crate) fn load(conn: &mut Connection) -> Result<JournalSnapshot, JournalError> {
    read(conn, |tx| {
        // Rows are filtered in SQL only on exact, well-typed values; anything else is
        // decoded, so a corrupt row is an error rather than silently left out.
        let open_positions = rows(
            tx,
            "SELECT * FROM positions WHERE remaining IS NOT 0 ORDER BY id",
            [],
            position_row,
        )?;
        let intents = rows(
            tx,
            "SELECT * FROM intents WHERE outcome IS NOT 'filled' AND outcome IS NOT 'failed'
                                     AND outcome IS NOT 'landed'
             ORDER BY id",
            [],
            intent_row,
        )?;
        let landed = rows(
            tx,
            "SELECT * FROM intents WHERE outcome IS 'landed' ORDER BY id",
            [],
            intent_row,
        )?;
        let unread_fills = landed
            .into_iter()
            .filter_map(|(intent, outcome)| match outcome {
                Some(IntentOutcome::Landed {
                    signature,
                    provisional,
                }) => Some(UnreadFill {
                    intent,
                    signature,
                    provisional,
                }),
                _ => None,
            })
            .collect();
        let mut unresolved = Vec::with_capacity(intents.len());
        // Only NULL outcomes reach here: any other value failed to decode.
        for (intent, _) in intents {
            unresolved.push(UnresolvedIntent {
                attempts: attempts_of(tx, intent.intent)?,
                intent,
            });
        }
        let trading_state = tx
            .prepare_cached("SELECT * FROM trading_state ORDER BY id DESC LIMIT 1")
            .and_then(|mut stmt| {
                stmt.query_row([], |row| Ok(trading_state_row(row)))
                    .optional()
            })
            .map_err(sql("read the trading state"))?
            .transpose()?;
        let max_position = max_id(tx, "positions", "SELECT MAX(id) FROM positions")?;
        let max_intent = max_id(tx, "intents", "SELECT MAX(id) FROM intents")?;
        // Ids are at most i64::MAX (they are refused above it), so `+ 1` cannot overflow.
        let next_id = max_position.max(max_intent).unwrap_or(0) + 1;
        let consecutive_failed_exits = control(tx, "exit_failures")?
            .map(|v| {
                u32::try_from(v).map_err(|_| JournalError::Corrupt {
                    table: "control",
                    column: "value",
                    value: v.to_string(),
                })
            })
            .transpose()?
            .unwrap_or(0);
        let free_base = control(tx, "free_base")?.map(TokenAmount::new);
        Ok(JournalSnapshot {
            open_positions,
            unresolved,
            unread_fills,
            trading_state,
            consecutive_failed_exits,
            free_base,
            next_id,
        })
    })
}

/// The latest `limit` exit intents, newest first, with their outcomes and attempts.
pub(crate) fn exit_history(
    conn: &mut Connection,
    limit: usize,
) -> Result<Vec<IntentHistory>, JournalError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    read(conn, |tx| {
        let intents = rows(
            tx,
            "SELECT * FROM intents WHERE action IS NOT 'enter' ORDER BY id DESC LIMIT ?1",
            [limit],
            intent_row,
        )?;
        intents
            .into_iter()
            .map(|(intent, outcome)| {
                Ok(IntentHistory {
                    attempts: attempts_of(tx, intent.intent)?,
                    intent,
                    outcome,
                })
            })
            .collect()
    })
}

/// Every transition of `intent`, oldest first.
pub(crate) fn transitions_of(
    conn: &mut Connection,
    intent: IntentId,
) -> Result<Vec<Transition>, JournalError> {
    read(conn, |tx| transitions::of_intent(tx, intent))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
