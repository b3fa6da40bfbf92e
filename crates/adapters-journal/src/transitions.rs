//! The audit trail: exit-state transitions flattened into plain columns (a state or event
//! name plus its payload: attempt, signature, exit kind, error class, failure) and read
//! back losslessly.

use kyzlo_application::journal::flat::{
    EVENT, FROM, Group, Payload, PayloadSource, TO, event_from, event_payload, state_from,
    state_payload,
};
use kyzlo_domain::exit_state::{ExitFailure, Transition};
use kyzlo_domain::{ErrorClass, ExitKind, IntentId, TxSignature};
use rusqlite::{Connection, Transaction, params};

use crate::codec::{self, Cols};
use crate::error::JournalError;

const TABLE: &str = "transitions";

/// Reads one payload group; each part is checked against its column, and the caller
/// says which parts its name requires.
struct Read<'c, 'a, 'r> {
    cols: &'c Cols<'a, 'r>,
    group: &'c Group,
}

impl PayloadSource for Read<'_, '_, '_> {
    type Error = JournalError;

    fn name(&self) -> Result<&str, JournalError> {
        self.cols.text(self.group.name)
    }

    fn attempt(&self) -> Result<u32, JournalError> {
        self.cols.u32(self.group.attempt)
    }

    fn signature(&self) -> Result<TxSignature, JournalError> {
        self.cols
            .parsed(self.group.signature, codec::parse_signature)
    }

    fn last_valid_height(&self) -> Result<u64, JournalError> {
        self.cols.u64(self.group.last_valid_height)
    }

    fn exit_kind(&self) -> Result<ExitKind, JournalError> {
        self.cols
            .parsed(self.group.exit_kind, codec::parse_exit_kind)
    }

    fn class(&self) -> Result<ErrorClass, JournalError> {
        self.cols.parsed(self.group.class, codec::parse_error_class)
    }

    fn failure(&self) -> Result<ExitFailure, JournalError> {
        let name = self.cols.text(self.group.failure)?;
        Ok(match name {
            "deadline_exceeded" => ExitFailure::DeadlineExceeded,
            "attempts_exhausted" => ExitFailure::AttemptsExhausted,
            "permanent" => ExitFailure::Permanent(self.class()?),
            "halted" => ExitFailure::Halted,
            _ => {
                return Err(self.cols.corrupt(
                    self.group.failure,
                    rusqlite::types::ValueRef::Text(name.as_bytes()),
                ));
            }
        })
    }

    fn unknown_name(&self, name: &str) -> JournalError {
        self.cols.corrupt(
            self.group.name,
            rusqlite::types::ValueRef::Text(name.as_bytes()),
        )
    }
}

/// Appends `transition` of `intent`.
///
/// # Errors
/// [`JournalError::UnknownIntent`] when the intent was never journaled;
/// [`JournalError::Overflow`] for a time or height above `i64::MAX`; SQL failures.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    intent: IntentId,
    transition: &Transition,
    now_ms: i64,
) -> Result<(), JournalError> {
    let intent_id = codec::int(intent.0, TABLE, "intent_id")?;
    let at = codec::micros(transition.at, TABLE, "at_us")?;
    let from = state_payload(transition.from);
    let event = event_payload(transition.event);
    let to = state_payload(transition.to);
    let height = event
        .last_valid_height
        .map(|h| codec::int(h, TABLE, "event_last_valid_block_height"))
        .transpose()?;
    crate::store::require_intent(tx, TABLE, intent)?;
    let sig = |p: &Payload| p.signature.as_ref().map(codec::signature_text);
    let kind = |p: &Payload| p.exit_kind.map(ExitKind::as_str);
    let class = |p: &Payload| p.class.map(ErrorClass::as_str);
    let failure = |p: &Payload| p.failure.map(ExitFailure::as_str);
    tx.prepare_cached(
        "INSERT INTO transitions (
            intent_id, at_us, from_state, event, to_state,
            from_attempt, from_signature, from_exit_kind, from_class, from_failure,
            event_attempt, event_signature, event_last_valid_block_height,
            event_exit_kind, event_class, event_failure,
            to_attempt, to_signature, to_exit_kind, to_class, to_failure,
            recorded_at_ms
        ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                  ?17, ?18, ?19, ?20, ?21, ?22)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            intent_id,
            at,
            transition.from.as_str(),
            transition.event.as_str(),
            transition.to.as_str(),
            from.attempt,
            sig(&from),
            kind(&from),
            class(&from),
            failure(&from),
            event.attempt,
            sig(&event),
            height,
            kind(&event),
            class(&event),
            failure(&event),
            to.attempt,
            sig(&to),
            kind(&to),
            class(&to),
            failure(&to),
            now_ms,
        ])
    })
    .map_err(|source| JournalError::Sql {
        context: "insert a transition",
        source,
    })?;
    Ok(())
}

/// Every transition of `intent`, oldest first.
///
/// # Errors
/// [`JournalError::Corrupt`] for any row that does not read back; SQL failures.
pub(crate) fn of_intent(
    conn: &Connection,
    intent: IntentId,
) -> Result<Vec<Transition>, JournalError> {
    let sql = |context| move |source| JournalError::Sql { context, source };
    let intent_id = codec::int(intent.0, TABLE, "intent_id")?;
    let mut stmt = conn
        .prepare_cached("SELECT * FROM transitions WHERE intent_id = ?1 ORDER BY id")
        .map_err(sql("prepare the transitions query"))?;
    let mut rows = stmt.query([intent_id]).map_err(sql("query transitions"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql("read transitions"))? {
        let cols = Cols::new(row, TABLE);
        let read = |group| Read { cols: &cols, group };
        out.push(Transition {
            at: cols.timestamp("at_us")?,
            from: state_from(&read(&FROM))?,
            to: state_from(&read(&TO))?,
            event: event_from(&read(&EVENT))?,
        });
    }
    Ok(out)
}
