//! Reads: rows decoded into the application's records, the snapshot a start restores, the
//! exit history, and an intent's transitions.

use super::*;

pub(super) fn position_row(row: &Row<'_>) -> Result<PositionRecord, JournalError> {
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

pub(super) fn intent_row(
    row: &Row<'_>,
) -> Result<(IntentRecord, Option<IntentOutcome>), JournalError> {
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

pub(super) fn attempt_row(
    row: &Row<'_>,
) -> Result<(AttemptRecord, Option<AttemptOutcome>), JournalError> {
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
    let stored_blockhash = c.opt_parsed("blockhash", codec::parse_blockhash)?;
    let nonce = nonce_use(&c, stored_blockhash)?;
    // Attempts journaled before schema 2 carry no blockhash: harmless once resolved (shown
    // in the history), unprovable while unresolved.
    let blockhash = match (stored_blockhash, outcome) {
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
        nonce,
    };
    Ok((attempt, outcome))
}

/// An attempt's durable nonce from its `nonce_account` and `cancel` columns, its value
/// being the `blockhash` the message carries. Rows from before schema 3 read as attempts
/// on a recent blockhash (NULL, 0); a cancel without a nonce account, or a nonce account
/// without the value it carried, is corrupt.
fn nonce_use(
    c: &Cols<'_, '_>,
    blockhash: Option<Blockhash>,
) -> Result<Option<NonceUse>, JournalError> {
    let account = c.opt_parsed("nonce_account", codec::parse_nonce_account)?;
    let cancel = match c.opt_i64("cancel")? {
        Some(0) => false,
        Some(1) => true,
        other => {
            return Err(c.corrupt("cancel", other.map_or(ValueRef::Null, ValueRef::Integer)));
        }
    };
    match (account, cancel) {
        (None, false) => Ok(None),
        (None, true) => Err(c.corrupt("nonce_account", ValueRef::Text(b"<NULL on a cancel>"))),
        (Some(account), cancel) => {
            let value = c.required("blockhash", blockhash)?;
            Ok(Some(NonceUse {
                nonce: DurableNonce { account, value },
                cancel,
            }))
        }
    }
}

pub(super) fn trading_state_row(row: &Row<'_>) -> Result<TradingState, JournalError> {
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
pub(super) fn rows<T>(
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

pub(super) fn attempts_of(
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
pub(super) fn max_id(
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
