//! How domain values become SQLite columns and back: `u64` into INTEGER without wrapping,
//! signatures as base58 text, enums as their stable snake_case names parsed back through
//! explicit tables, and a typed reader that turns any unexpected stored value into
//! [`JournalError::Corrupt`] naming its table and column.

use kyzlo_domain::Timestamp;
use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::error::{JournalError, VALUE_EXCERPT_LIMIT, truncate};

pub(crate) use kyzlo_application::journal::text::{
    blockhash_text, nonce_account_text, parse_blockhash, parse_error_class, parse_exit_kind,
    parse_halt_cause, parse_nonce_account, parse_reduce_only_cause, parse_side, parse_signature,
    signature_text,
};

/// `value` as an SQLite INTEGER, refusing what does not fit instead of wrapping.
pub(crate) fn int(
    value: u64,
    table: &'static str,
    column: &'static str,
) -> Result<i64, JournalError> {
    i64::try_from(value).map_err(|_| JournalError::Overflow {
        table,
        column,
        value,
    })
}

/// A timestamp's microseconds as an SQLite INTEGER.
pub(crate) fn micros(
    at: Timestamp,
    table: &'static str,
    column: &'static str,
) -> Result<i64, JournalError> {
    int(at.as_micros(), table, column)
}

/// A stored value rendered for an error: `NULL`, the number, or the text cut short.
fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => truncate(
            format!("{:?}", String::from_utf8_lossy(t)),
            VALUE_EXCERPT_LIMIT,
        ),
        ValueRef::Blob(b) => format!("<blob of {} bytes>", b.len()),
    }
}

/// Reads the columns of one row of `table`, every surprise becoming
/// [`JournalError::Corrupt`] with the table, the column and the value found.
pub(crate) struct Cols<'a, 'r> {
    row: &'a Row<'r>,
    table: &'static str,
}

impl<'a, 'r> Cols<'a, 'r> {
    pub(crate) fn new(row: &'a Row<'r>, table: &'static str) -> Self {
        Self { row, table }
    }

    /// The error for `value` found in `column`.
    pub(crate) fn corrupt(&self, column: &'static str, value: ValueRef<'_>) -> JournalError {
        JournalError::Corrupt {
            table: self.table,
            column,
            value: describe(value),
        }
    }

    fn raw(&self, column: &'static str) -> Result<ValueRef<'a>, JournalError> {
        self.row
            .get_ref(column)
            .map_err(|source| JournalError::Sql {
                context: "read a column",
                source,
            })
    }

    /// An INTEGER or NULL.
    pub(crate) fn opt_i64(&self, column: &'static str) -> Result<Option<i64>, JournalError> {
        match self.raw(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            other => Err(self.corrupt(column, other)),
        }
    }

    /// A non-negative INTEGER.
    pub(crate) fn u64(&self, column: &'static str) -> Result<u64, JournalError> {
        self.opt_u64(column)?
            .ok_or_else(|| self.corrupt(column, ValueRef::Null))
    }

    /// A non-negative INTEGER or NULL.
    pub(crate) fn opt_u64(&self, column: &'static str) -> Result<Option<u64>, JournalError> {
        self.opt_i64(column)?
            .map(|i| u64::try_from(i).map_err(|_| self.corrupt(column, ValueRef::Integer(i))))
            .transpose()
    }

    /// An INTEGER that fits `u32`, or NULL.
    pub(crate) fn opt_u32(&self, column: &'static str) -> Result<Option<u32>, JournalError> {
        self.opt_i64(column)?
            .map(|i| u32::try_from(i).map_err(|_| self.corrupt(column, ValueRef::Integer(i))))
            .transpose()
    }

    /// An INTEGER that fits `u32`.
    pub(crate) fn u32(&self, column: &'static str) -> Result<u32, JournalError> {
        self.opt_u32(column)?
            .ok_or_else(|| self.corrupt(column, ValueRef::Null))
    }

    /// A REAL (an INTEGER is taken as the same number).
    pub(crate) fn f64(&self, column: &'static str) -> Result<f64, JournalError> {
        match self.raw(column)? {
            ValueRef::Real(f) => Ok(f),
            #[allow(clippy::cast_precision_loss)]
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(self.corrupt(column, other)),
        }
    }

    /// A TEXT or NULL.
    pub(crate) fn opt_text(&self, column: &'static str) -> Result<Option<&'a str>, JournalError> {
        match self.raw(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(Some)
                .map_err(|_| self.corrupt(column, ValueRef::Text(t))),
            other => Err(self.corrupt(column, other)),
        }
    }

    /// A non-NULL TEXT.
    pub(crate) fn text(&self, column: &'static str) -> Result<&'a str, JournalError> {
        self.opt_text(column)?
            .ok_or_else(|| self.corrupt(column, ValueRef::Null))
    }

    /// A TEXT or NULL parsed by `parse`; text `parse` refuses is corrupt.
    pub(crate) fn opt_parsed<T>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, JournalError> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => parse(text)
                .map(Some)
                .ok_or_else(|| self.corrupt(column, ValueRef::Text(text.as_bytes()))),
        }
    }

    /// A non-NULL TEXT parsed by `parse`.
    pub(crate) fn parsed<T>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, JournalError> {
        self.opt_parsed(column, parse)?
            .ok_or_else(|| self.corrupt(column, ValueRef::Null))
    }

    /// A non-NULL timestamp in microseconds.
    pub(crate) fn timestamp(&self, column: &'static str) -> Result<Timestamp, JournalError> {
        self.u64(column).map(Timestamp::from_micros)
    }

    /// A value that must be present: `value`, or corrupt `NULL` in `column`.
    pub(crate) fn required<T>(
        &self,
        column: &'static str,
        value: Option<T>,
    ) -> Result<T, JournalError> {
        value.ok_or_else(|| self.corrupt(column, ValueRef::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyzlo_domain::ExitKind;
    use rusqlite::Connection;

    #[test]
    fn u64_above_i64_max_is_an_overflow_not_a_wrap() {
        assert_eq!(int(0, "t", "c").ok(), Some(0));
        assert_eq!(int(i64::MAX as u64, "t", "c").ok(), Some(i64::MAX));
        for value in [i64::MAX as u64 + 1, u64::MAX] {
            assert!(matches!(
                int(value, "attempts", "amount_in"),
                Err(JournalError::Overflow { table: "attempts", column: "amount_in", value: v }) if v == value
            ));
        }
    }

    /// Reads the single row of `select` through `read`.
    fn read_one<T>(
        select: &str,
        read: impl FnOnce(&Cols<'_, '_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let conn = Connection::open_in_memory().map_err(|source| JournalError::Sql {
            context: "open",
            source,
        })?;
        let mut stmt = conn.prepare(select).map_err(|source| JournalError::Sql {
            context: "prepare",
            source,
        })?;
        let mut rows = stmt.query([]).map_err(|source| JournalError::Sql {
            context: "query",
            source,
        })?;
        let row = rows
            .next()
            .map_err(|source| JournalError::Sql {
                context: "step",
                source,
            })?
            .ok_or_else(|| JournalError::Corrupt {
                table: "test",
                column: "row",
                value: "none".to_owned(),
            })?;
        read(&Cols::new(row, "t"))
    }

    fn corrupt_value(result: Result<impl std::fmt::Debug, JournalError>) -> String {
        match result {
            Err(JournalError::Corrupt {
                table: "t",
                column: "c",
                value,
            }) => value,
            other => panic!("expected a corrupt t.c, got {other:?}"),
        }
    }

    #[test]
    fn unexpected_stored_values_are_corrupt_with_the_value_found() {
        // (select, what is read, the value the error must name)
        type Read = fn(&Cols<'_, '_>) -> Result<String, JournalError>;
        let u64_read: Read = |c| c.u64("c").map(|v| v.to_string());
        let u32_read: Read = |c| c.u32("c").map(|v| v.to_string());
        let text_read: Read = |c| c.text("c").map(str::to_owned);
        let f64_read: Read = |c| c.f64("c").map(|v| v.to_string());
        let kind_read: Read = |c| {
            c.parsed("c", parse_exit_kind)
                .map(|k| k.as_str().to_owned())
        };
        let cases: [(&str, Read, &str); 10] = [
            ("select -1 as c", u64_read, "-1"),
            ("select 'ten' as c", u64_read, "\"ten\""),
            ("select 1.5 as c", u64_read, "1.5"),
            ("select null as c", u64_read, "NULL"),
            ("select x'00ff' as c", u64_read, "<blob of 2 bytes>"),
            ("select 4294967296 as c", u32_read, "4294967296"),
            ("select 7 as c", text_read, "7"),
            ("select 'abc' as c", f64_read, "\"abc\""),
            ("select 'panic_sell' as c", kind_read, "\"panic_sell\""),
            ("select cast(x'ff' as text) as c", text_read, "\"\u{FFFD}\""),
        ];
        for (select, read, expected) in cases {
            assert_eq!(corrupt_value(read_one(select, read)), expected, "{select}");
        }
    }

    #[test]
    fn a_huge_corrupt_text_is_cut_in_the_error() {
        let value = corrupt_value(read_one("select hex(zeroblob(50000)) as c", |c| {
            c.parsed("c", parse_exit_kind)
        }));
        assert!(value.len() <= VALUE_EXCERPT_LIMIT, "{}", value.len());
        assert!(value.starts_with("\"000"), "{value}");
    }

    #[test]
    fn well_formed_values_are_read() {
        let row = read_one(
            "select 9223372036854775807 as big, 3 as small, 2.5 as price, 4 as whole, 'stop_loss' as kind, null as absent",
            |c| {
                Ok((
                    c.u64("big")?,
                    c.u32("small")?,
                    c.f64("price")?,
                    c.f64("whole")?,
                    c.parsed("kind", parse_exit_kind)?,
                    c.opt_text("absent")?.map(str::to_owned),
                ))
            },
        );
        assert_eq!(
            row.unwrap(),
            (i64::MAX as u64, 3, 2.5, 4.0, ExitKind::StopLoss, None)
        );
    }
}
