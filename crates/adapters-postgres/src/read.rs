//! Reads: rows decoded into the application's records, the snapshot a start restores and
//! the exit history, each in one repeatable-read transaction (one consistent view).

use deadpool_postgres::{Object, Transaction};
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentHistory, IntentOutcome, IntentRecord,
    JournalSnapshot, NonceUse, PositionRecord, UnreadFill, UnresolvedIntent,
};
use kyzlo_application::ports::{Blockhash, DurableNonce, Fill, Side};
use kyzlo_domain::trading_state::{HaltReason, TradingState};
use kyzlo_domain::{IntentId, Lamports, PositionId, Price, Size, Slippage, TokenAmount};
use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::codec::{self, Cols};
use crate::error::PgError;
use crate::journal::Scope;

/// A read-only repeatable-read transaction: every query in it sees the same state.
pub(crate) async fn begin<'c>(
    client: &'c mut Object,
    scope: &Scope,
) -> Result<Transaction<'c>, PgError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(scope.sql("begin a read"))
}

/// Runs `select` (its first two parameters the wallet and the market) and decodes every
/// row with `decode`.
async fn rows<T>(
    tx: &Transaction<'_>,
    scope: &Scope,
    select: &str,
    params: &[&(dyn ToSql + Sync)],
    decode: impl Fn(&Row) -> Result<T, PgError>,
) -> Result<Vec<T>, PgError> {
    let stmt = tx
        .prepare_cached(select)
        .await
        .map_err(scope.sql("prepare a query"))?;
    let wallet: &str = &scope.wallet;
    let market: &str = &scope.market;
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![&wallet, &market];
    all.extend_from_slice(params);
    tx.query(&stmt, &all)
        .await
        .map_err(scope.sql("run a query"))?
        .iter()
        .map(decode)
        .collect()
}

/// Refuses a row of `table` that names an intent never journaled.
pub(crate) async fn require_intent(
    tx: &Transaction<'_>,
    scope: &Scope,
    table: &'static str,
    intent: IntentId,
) -> Result<(), PgError> {
    let id = codec::int(intent.0, table, "intent_id")?;
    let found = rows(
        tx,
        scope,
        "SELECT 1 FROM intents WHERE wallet = $1 AND market = $2 AND id = $3",
        &[&id],
        |_| Ok(()),
    )
    .await?;
    if found.is_empty() {
        Err(PgError::UnknownIntent {
            table,
            intent: intent.0,
        })
    } else {
        Ok(())
    }
}

fn position_row(row: &Row) -> Result<PositionRecord, PgError> {
    let c = Cols::new(row, "positions");
    let price = c.f64("entry_price")?;
    let size = c.u64("size")?;
    Ok(PositionRecord {
        position: PositionId(c.u64("id")?),
        entry_price: Price::new(price).map_err(|_| c.corrupt("entry_price", price.to_string()))?,
        size: Size::new(TokenAmount::new(size)).map_err(|_| c.corrupt("size", size.to_string()))?,
        remaining: TokenAmount::new(c.u64("remaining")?),
    })
}

fn intent_row(row: &Row) -> Result<(IntentRecord, Option<IntentOutcome>), PgError> {
    let c = Cols::new(row, "intents");
    let kind = c.opt_parsed("exit_kind", codec::parse_exit_kind)?;
    let action = match c.text("action")? {
        "enter" if kind.is_none() => IntentAction::Enter,
        "enter" => return Err(c.corrupt("exit_kind", "<set on an entry>")),
        "exit" => IntentAction::Exit(c.required("exit_kind", kind)?),
        other => return Err(c.corrupt("action", format!("{other:?}"))),
    };
    let intent = IntentRecord {
        intent: IntentId(c.u64("id")?),
        position: PositionId(c.u64("position_id")?),
        action,
        side: c.parsed::<Side>("side", codec::parse_side)?,
        amount_in: TokenAmount::new(c.u64("amount_in")?),
        created_at: c.timestamp("created_at_us")?,
    };
    let fill = || -> Result<Fill, PgError> {
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
        Some(other) => return Err(c.corrupt("outcome", format!("{other:?}"))),
    };
    Ok((intent, outcome))
}

fn attempt_row(row: &Row) -> Result<(AttemptRecord, Option<AttemptOutcome>), PgError> {
    let c = Cols::new(row, "attempts");
    let bps = c.u32("slippage_bps")?;
    let slippage = u16::try_from(bps)
        .ok()
        .and_then(|bps| Slippage::from_bps(bps).ok())
        .ok_or_else(|| c.corrupt("slippage_bps", bps.to_string()))?;
    let class = c.opt_parsed("outcome_class", codec::parse_error_class)?;
    let outcome = match c.opt_text("outcome")? {
        None => None,
        Some("landed") => Some(AttemptOutcome::Landed),
        Some("failed") => Some(AttemptOutcome::Failed(c.required("outcome_class", class)?)),
        Some("expired") => Some(AttemptOutcome::Expired),
        Some(other) => return Err(c.corrupt("outcome", format!("{other:?}"))),
    };
    let blockhash = c.parsed("blockhash", codec::parse_blockhash)?;
    let attempt = AttemptRecord {
        intent: IntentId(c.u64("intent_id")?),
        attempt: c.u32("attempt")?,
        signature: c.parsed("signature", codec::parse_signature)?,
        blockhash,
        valid_at_slot: c.u64("valid_at_slot")?,
        last_valid_block_height: c.u64("last_valid_block_height")?,
        slippage,
        priority_fee: Lamports::new(c.u64("priority_fee_lamports")?),
        amount_in: TokenAmount::new(c.u64("amount_in")?),
        min_out: TokenAmount::new(c.u64("min_out")?),
        sent_at: c.timestamp("sent_at_us")?,
        nonce: nonce_use(&c, blockhash)?,
    };
    Ok((attempt, outcome))
}

/// An attempt's durable nonce from its `nonce_account` and `cancel` columns, its value
/// being the `blockhash` the message carries. Rows from before schema 3 read as attempts
/// on a recent blockhash (NULL, false); a cancel without a nonce account is corrupt.
fn nonce_use(c: &Cols<'_>, blockhash: Blockhash) -> Result<Option<NonceUse>, PgError> {
    let account = c.opt_parsed("nonce_account", codec::parse_nonce_account)?;
    match (account, c.bool("cancel")?) {
        (None, false) => Ok(None),
        (None, true) => Err(c.corrupt("nonce_account", "<NULL on a cancel>")),
        (Some(account), cancel) => Ok(Some(NonceUse {
            nonce: DurableNonce {
                account,
                value: blockhash,
            },
            cancel,
        })),
    }
}

fn trading_state_row(row: &Row) -> Result<TradingState, PgError> {
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
        other => return Err(c.corrupt("state", format!("{other:?}"))),
    })
}

async fn attempts_of(
    tx: &Transaction<'_>,
    scope: &Scope,
    intent: IntentId,
) -> Result<Vec<(AttemptRecord, Option<AttemptOutcome>)>, PgError> {
    let id = codec::int(intent.0, "attempts", "intent_id")?;
    rows(
        tx,
        scope,
        "SELECT * FROM attempts WHERE wallet = $1 AND market = $2 AND intent_id = $3
          ORDER BY attempt",
        &[&id],
        attempt_row,
    )
    .await
}

/// A control counter, if set.
async fn control(
    tx: &Transaction<'_>,
    scope: &Scope,
    key: &'static str,
) -> Result<Option<u64>, PgError> {
    let found = rows(
        tx,
        scope,
        "SELECT value FROM control WHERE wallet = $1 AND market = $2 AND key = $3",
        &[&key],
        |row| Cols::new(row, "control").u64("value"),
    )
    .await?;
    Ok(found.into_iter().next())
}

/// A position as last written, open or closed.
pub(crate) async fn position(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: PositionId,
) -> Result<Option<PositionRecord>, PgError> {
    let id = codec::int(id.0, "positions", "id")?;
    Ok(rows(
        tx,
        scope,
        "SELECT * FROM positions WHERE wallet = $1 AND market = $2 AND id = $3",
        &[&id],
        position_row,
    )
    .await?
    .into_iter()
    .next())
}

/// What start-up needs: open positions, unresolved intents with their attempts, the
/// latest trading state, the counters and the next free id.
pub(crate) async fn load(tx: &Transaction<'_>, scope: &Scope) -> Result<JournalSnapshot, PgError> {
    let open_positions = rows(
        tx,
        scope,
        "SELECT * FROM positions WHERE wallet = $1 AND market = $2 AND remaining <> 0
          ORDER BY id",
        &[],
        position_row,
    )
    .await?;
    // Every intent but the ones settled for good is decoded, so that a corrupt outcome is
    // an error rather than silently left out.
    let intents = rows(
        tx,
        scope,
        "SELECT * FROM intents WHERE wallet = $1 AND market = $2
            AND outcome IS DISTINCT FROM 'filled' AND outcome IS DISTINCT FROM 'failed'
          ORDER BY id",
        &[],
        intent_row,
    )
    .await?;
    let mut unresolved = Vec::new();
    let mut unread_fills = Vec::new();
    for (intent, outcome) in intents {
        match outcome {
            None => unresolved.push(UnresolvedIntent {
                attempts: attempts_of(tx, scope, intent.intent).await?,
                intent,
            }),
            Some(IntentOutcome::Landed {
                signature,
                provisional,
            }) => unread_fills.push(UnreadFill {
                intent,
                signature,
                provisional,
            }),
            Some(IntentOutcome::Filled(_) | IntentOutcome::Failed) => {}
        }
    }
    let trading_state = rows(
        tx,
        scope,
        "SELECT * FROM trading_state WHERE wallet = $1 AND market = $2
          ORDER BY id DESC LIMIT 1",
        &[],
        trading_state_row,
    )
    .await?
    .into_iter()
    .next();
    let max = rows(
        tx,
        scope,
        "SELECT GREATEST(
                    (SELECT MAX(id) FROM positions WHERE wallet = $1 AND market = $2),
                    (SELECT MAX(id) FROM intents WHERE wallet = $1 AND market = $2)) AS id",
        &[],
        |row| Cols::new(row, "positions").opt_u64("id"),
    )
    .await?
    .into_iter()
    .next()
    .flatten();
    // Ids are at most i64::MAX (they are refused above it), so `+ 1` cannot overflow.
    let next_id = max.unwrap_or(0) + 1;
    let consecutive_failed_exits = control(tx, scope, "exit_failures")
        .await?
        .map(|v| {
            u32::try_from(v).map_err(|_| PgError::Corrupt {
                table: "control",
                column: "value",
                value: v.to_string(),
            })
        })
        .transpose()?
        .unwrap_or(0);
    let free_base = control(tx, scope, "free_base").await?.map(TokenAmount::new);
    Ok(JournalSnapshot {
        open_positions,
        unresolved,
        unread_fills,
        trading_state,
        consecutive_failed_exits,
        free_base,
        next_id,
    })
}

/// The latest `limit` exit intents, newest first, with their outcomes and attempts.
pub(crate) async fn exit_history(
    tx: &Transaction<'_>,
    scope: &Scope,
    limit: usize,
) -> Result<Vec<IntentHistory>, PgError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let intents = rows(
        tx,
        scope,
        "SELECT * FROM intents WHERE wallet = $1 AND market = $2 AND action <> 'enter'
          ORDER BY id DESC LIMIT $3",
        &[&limit],
        intent_row,
    )
    .await?;
    let mut out = Vec::with_capacity(intents.len());
    for (intent, outcome) in intents {
        out.push(IntentHistory {
            attempts: attempts_of(tx, scope, intent.intent).await?,
            intent,
            outcome,
        });
    }
    Ok(out)
}
