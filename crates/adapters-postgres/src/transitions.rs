//! The audit trail: exit-state transitions flattened into plain columns (a state or event
//! name plus its payload: attempt, signature, exit kind, error class, failure) and read
//! back losslessly; the same columns and names as the SQLite journal's.

use deadpool_postgres::Transaction;
use kyzlo_application::journal::flat::{
    EVENT, FROM, Group, Payload, PayloadSource, TO, event_from, event_payload, state_from,
    state_payload,
};
use kyzlo_domain::exit_state::{ExitFailure, Transition};
use kyzlo_domain::{ErrorClass, ExitKind, IntentId, TxSignature};

use crate::codec::{self, Cols};
use crate::error::PgError;
use crate::journal::Scope;

const TABLE: &str = "transitions";

/// Reads one payload group; each part is checked against its column, and the caller
/// says which parts its name requires.
struct Read<'c, 'r> {
    cols: &'c Cols<'r>,
    group: &'c Group,
}

impl PayloadSource for Read<'_, '_> {
    type Error = PgError;

    fn name(&self) -> Result<&str, PgError> {
        self.cols.text(self.group.name)
    }

    fn attempt(&self) -> Result<u32, PgError> {
        self.cols.u32(self.group.attempt)
    }

    fn signature(&self) -> Result<TxSignature, PgError> {
        self.cols
            .parsed(self.group.signature, codec::parse_signature)
    }

    fn last_valid_height(&self) -> Result<u64, PgError> {
        self.cols.u64(self.group.last_valid_height)
    }

    fn exit_kind(&self) -> Result<ExitKind, PgError> {
        self.cols
            .parsed(self.group.exit_kind, codec::parse_exit_kind)
    }

    fn class(&self) -> Result<ErrorClass, PgError> {
        self.cols.parsed(self.group.class, codec::parse_error_class)
    }

    fn failure(&self) -> Result<ExitFailure, PgError> {
        let name = self.cols.text(self.group.failure)?;
        Ok(match name {
            "deadline_exceeded" => ExitFailure::DeadlineExceeded,
            "attempts_exhausted" => ExitFailure::AttemptsExhausted,
            "permanent" => ExitFailure::Permanent(self.class()?),
            "halted" => ExitFailure::Halted,
            _ => {
                return Err(self.cols.corrupt(self.group.failure, format!("{name:?}")));
            }
        })
    }

    fn unknown_name(&self, name: &str) -> PgError {
        self.cols.corrupt(self.group.name, format!("{name:?}"))
    }
}

/// Appends `transition` of `intent`.
///
/// # Errors
/// [`PgError::UnknownIntent`] when the intent was never journaled; [`PgError::Overflow`]
/// for a time or height above `i64::MAX`; [`PgError::Fenced`]; SQL failures.
pub(crate) async fn insert(
    tx: &Transaction<'_>,
    scope: &Scope,
    intent: IntentId,
    transition: &Transition,
) -> Result<(), PgError> {
    let intent_id = codec::int(intent.0, TABLE, "intent_id")?;
    let at = codec::micros(transition.at, TABLE, "at_us")?;
    let from = state_payload(transition.from);
    let event = event_payload(transition.event);
    let to = state_payload(transition.to);
    let height = event
        .last_valid_height
        .map(|h| codec::int(h, TABLE, "event_last_valid_block_height"))
        .transpose()?;
    crate::read::require_intent(tx, scope, TABLE, intent).await?;
    let attempt = |p: &Payload| p.attempt.map(i64::from);
    let sig = |p: &Payload| p.signature.as_ref().map(codec::signature_text);
    let kind = |p: &Payload| p.exit_kind.map(ExitKind::as_str);
    let class = |p: &Payload| p.class.map(ErrorClass::as_str);
    let failure = |p: &Payload| p.failure.map(ExitFailure::as_str);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO transitions (
                wallet, market, intent_id, at_us, from_state, event, to_state,
                from_attempt, from_signature, from_exit_kind, from_class, from_failure,
                event_attempt, event_signature, event_last_valid_block_height,
                event_exit_kind, event_class, event_failure,
                to_attempt, to_signature, to_exit_kind, to_class, to_failure, epoch
            ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                      $17, $18, $19, $20, $21, $22, $23, $24)",
        )
        .await
        .map_err(scope.sql("prepare a transition insert"))?;
    tx.execute(
        &stmt,
        &[
            &&*scope.wallet,
            &&*scope.market,
            &intent_id,
            &at,
            &transition.from.as_str(),
            &transition.event.as_str(),
            &transition.to.as_str(),
            &attempt(&from),
            &sig(&from),
            &kind(&from),
            &class(&from),
            &failure(&from),
            &attempt(&event),
            &sig(&event),
            &height,
            &kind(&event),
            &class(&event),
            &failure(&event),
            &attempt(&to),
            &sig(&to),
            &kind(&to),
            &class(&to),
            &failure(&to),
            &scope.epoch,
        ],
    )
    .await
    .map_err(scope.sql("insert a transition"))?;
    Ok(())
}

/// Every transition of `intent`, oldest first.
///
/// # Errors
/// [`PgError::Corrupt`] for any row that does not read back; SQL failures.
pub(crate) async fn of_intent(
    tx: &Transaction<'_>,
    scope: &Scope,
    intent: IntentId,
) -> Result<Vec<Transition>, PgError> {
    let intent_id = codec::int(intent.0, TABLE, "intent_id")?;
    let stmt = tx
        .prepare_cached(
            "SELECT * FROM transitions WHERE wallet = $1 AND market = $2 AND intent_id = $3
              ORDER BY id",
        )
        .await
        .map_err(scope.sql("prepare the transitions query"))?;
    let rows = tx
        .query(&stmt, &[&&*scope.wallet, &&*scope.market, &intent_id])
        .await
        .map_err(scope.sql("query transitions"))?;
    rows.iter()
        .map(|row| {
            let cols = Cols::new(row, TABLE);
            let read = |group| Read { cols: &cols, group };
            Ok(Transition {
                at: cols.timestamp("at_us")?,
                from: state_from(&read(&FROM))?,
                to: state_from(&read(&TO))?,
                event: event_from(&read(&EVENT))?,
            })
        })
        .collect()
}
