//! How domain values become PostgreSQL columns and back: `u64` into BIGINT without
//! wrapping, signatures and blockhashes as base58 text, enums as their stable snake_case
//! names parsed back through explicit tables, and a typed reader that turns any unexpected
//! stored value into [`PgError::Corrupt`] naming its table and column.
//!
//! The names are the ones the SQLite journal stores, so both read alike to an operator.

use kyzlo_domain::Timestamp;
use tokio_postgres::Row;

use crate::error::{PgError, VALUE_EXCERPT_LIMIT, truncate};

pub(crate) use kyzlo_application::journal::text::{
    blockhash_text, nonce_account_text, parse_blockhash, parse_error_class, parse_exit_kind,
    parse_halt_cause, parse_nonce_account, parse_reduce_only_cause, parse_side, parse_signature,
    signature_text,
};

/// `value` as a BIGINT, refusing what does not fit instead of wrapping.
pub(crate) fn int(value: u64, table: &'static str, column: &'static str) -> Result<i64, PgError> {
    i64::try_from(value).map_err(|_| PgError::Overflow {
        table,
        column,
        value,
    })
}

/// A timestamp's microseconds as a BIGINT.
pub(crate) fn micros(
    at: Timestamp,
    table: &'static str,
    column: &'static str,
) -> Result<i64, PgError> {
    int(at.as_micros(), table, column)
}

/// Reads the columns of one row of `table`, every surprise becoming [`PgError::Corrupt`]
/// with the table, the column and the value found. The column types are fixed by the
/// schema; what can be wrong is a NULL, a negative number, or a name this build does not
/// know.
pub(crate) struct Cols<'r> {
    row: &'r Row,
    table: &'static str,
}

impl<'r> Cols<'r> {
    pub(crate) fn new(row: &'r Row, table: &'static str) -> Self {
        Self { row, table }
    }

    /// The error for `value` (rendered) found in `column`.
    pub(crate) fn corrupt(&self, column: &'static str, value: impl Into<String>) -> PgError {
        PgError::Corrupt {
            table: self.table,
            column,
            value: truncate(value.into(), VALUE_EXCERPT_LIMIT),
        }
    }

    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        column: &'static str,
    ) -> Result<T, PgError> {
        self.row.try_get(column).map_err(|source| PgError::Sql {
            context: "read a column",
            source,
        })
    }

    /// A BIGINT or NULL.
    pub(crate) fn opt_i64(&self, column: &'static str) -> Result<Option<i64>, PgError> {
        self.get(column)
    }

    /// A non-negative BIGINT or NULL.
    pub(crate) fn opt_u64(&self, column: &'static str) -> Result<Option<u64>, PgError> {
        self.opt_i64(column)?
            .map(|i| u64::try_from(i).map_err(|_| self.corrupt(column, i.to_string())))
            .transpose()
    }

    /// A non-negative BIGINT.
    pub(crate) fn u64(&self, column: &'static str) -> Result<u64, PgError> {
        self.opt_u64(column)?
            .ok_or_else(|| self.corrupt(column, "NULL"))
    }

    /// A BIGINT that fits `u32`, or NULL.
    pub(crate) fn opt_u32(&self, column: &'static str) -> Result<Option<u32>, PgError> {
        self.opt_i64(column)?
            .map(|i| u32::try_from(i).map_err(|_| self.corrupt(column, i.to_string())))
            .transpose()
    }

    /// A BIGINT that fits `u32`.
    pub(crate) fn u32(&self, column: &'static str) -> Result<u32, PgError> {
        self.opt_u32(column)?
            .ok_or_else(|| self.corrupt(column, "NULL"))
    }

    /// A DOUBLE PRECISION.
    pub(crate) fn f64(&self, column: &'static str) -> Result<f64, PgError> {
        self.get::<Option<f64>>(column)?
            .ok_or_else(|| self.corrupt(column, "NULL"))
    }

    /// A non-NULL BOOLEAN.
    pub(crate) fn bool(&self, column: &'static str) -> Result<bool, PgError> {
        self.get::<Option<bool>>(column)?
            .ok_or_else(|| self.corrupt(column, "NULL"))
    }

    /// A TEXT or NULL.
    pub(crate) fn opt_text(&self, column: &'static str) -> Result<Option<&str>, PgError> {
        self.get(column)
    }

    /// A non-NULL TEXT.
    pub(crate) fn text(&self, column: &'static str) -> Result<&str, PgError> {
        self.opt_text(column)?
            .ok_or_else(|| self.corrupt(column, "NULL"))
    }

    /// A TEXT or NULL parsed by `parse`; text `parse` refuses is corrupt.
    pub(crate) fn opt_parsed<T>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, PgError> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => parse(text)
                .map(Some)
                .ok_or_else(|| self.corrupt(column, format!("{text:?}"))),
        }
    }

    /// A non-NULL TEXT parsed by `parse`.
    pub(crate) fn parsed<T>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, PgError> {
        self.opt_parsed(column, parse)?
            .ok_or_else(|| self.corrupt(column, "NULL"))
    }

    /// A non-NULL timestamp in microseconds.
    pub(crate) fn timestamp(&self, column: &'static str) -> Result<Timestamp, PgError> {
        self.u64(column).map(Timestamp::from_micros)
    }

    /// A value that must be present: `value`, or corrupt `NULL` in `column`.
    pub(crate) fn required<T>(&self, column: &'static str, value: Option<T>) -> Result<T, PgError> {
        value.ok_or_else(|| self.corrupt(column, "NULL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_above_i64_max_is_an_overflow_not_a_wrap() {
        assert_eq!(int(i64::MAX as u64, "t", "c").ok(), Some(i64::MAX));
        assert!(matches!(
            int(u64::MAX, "attempts", "amount_in"),
            Err(PgError::Overflow {
                table: "attempts",
                column: "amount_in",
                value: u64::MAX
            })
        ));
    }
}
