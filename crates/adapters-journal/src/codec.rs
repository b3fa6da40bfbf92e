//! How domain values become SQLite columns and back: `u64` into INTEGER without wrapping,
//! signatures as base58 text, enums as their stable snake_case names parsed back through
//! explicit tables, and a typed reader that turns any unexpected stored value into
//! [`JournalError::Corrupt`] naming its table and column.

use kyzlo_application::ports::{Blockhash, Side};
use kyzlo_domain::trading_state::ReduceOnlyCause;
use kyzlo_domain::{ErrorClass, ExitKind, HaltCause, Timestamp, TxSignature};
use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::error::{JournalError, VALUE_EXCERPT_LIMIT, truncate};

/// The longest base58 text a 64-byte signature encodes to.
const SIGNATURE_BASE58_MAX: usize = 88;

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

/// A signature as the base58 text explorers and wallets show.
pub(crate) fn signature_text(signature: &TxSignature) -> String {
    bs58::encode(signature.0).into_string()
}

/// A signature back from its base58 text; `None` unless it is exactly 64 bytes of base58.
pub(crate) fn parse_signature(text: &str) -> Option<TxSignature> {
    // Bounded before decoding: base58 decoding is quadratic in the input's length.
    if text.len() > SIGNATURE_BASE58_MAX {
        return None;
    }
    let bytes = bs58::decode(text).into_vec().ok()?;
    <[u8; 64]>::try_from(bytes).ok().map(TxSignature)
}

/// [`ExitKind`] from its [`ExitKind::as_str`] name.
/// A blockhash as its base58 text.
pub(crate) fn blockhash_text(blockhash: &Blockhash) -> String {
    bs58::encode(blockhash.0).into_string()
}

/// A blockhash from its base58 text: exactly 32 bytes.
pub(crate) fn parse_blockhash(text: &str) -> Option<Blockhash> {
    let bytes = bs58::decode(text).into_vec().ok()?;
    Some(Blockhash(bytes.try_into().ok()?))
}

pub(crate) fn parse_exit_kind(name: &str) -> Option<ExitKind> {
    Some(match name {
        "stop_loss" => ExitKind::StopLoss,
        "trailing_stop" => ExitKind::TrailingStop,
        "breakeven" => ExitKind::Breakeven,
        "partial_take_profit" => ExitKind::PartialTakeProfit,
        "take_profit" => ExitKind::TakeProfit,
        "strategy" => ExitKind::Strategy,
        "emergency" => ExitKind::Emergency,
        "operator" => ExitKind::Operator,
        _ => return None,
    })
}

/// [`ErrorClass`] from its [`ErrorClass::as_str`] name.
pub(crate) fn parse_error_class(name: &str) -> Option<ErrorClass> {
    Some(match name {
        "rpc_timeout" => ErrorClass::RpcTimeout,
        "network" => ErrorClass::Network,
        "rate_limited" => ErrorClass::RateLimited,
        "node_unhealthy" => ErrorClass::NodeUnhealthy,
        "blockhash_expired" => ErrorClass::BlockhashExpired,
        "landed_failed" => ErrorClass::LandedFailed,
        "slippage_exceeded" => ErrorClass::SlippageExceeded,
        "no_route" => ErrorClass::NoRoute,
        "insufficient_funds" => ErrorClass::InsufficientFunds,
        "invalid_account" => ErrorClass::InvalidAccount,
        "signature_failure" => ErrorClass::SignatureFailure,
        "unknown" => ErrorClass::Unknown,
        _ => return None,
    })
}

/// [`HaltCause`] from its [`HaltCause::as_str`] name.
pub(crate) fn parse_halt_cause(name: &str) -> Option<HaltCause> {
    HaltCause::ALL.into_iter().find(|c| c.as_str() == name)
}

/// [`ReduceOnlyCause`] from its [`ReduceOnlyCause::as_str`] name.
pub(crate) fn parse_reduce_only_cause(name: &str) -> Option<ReduceOnlyCause> {
    ReduceOnlyCause::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
}

/// [`Side`] from its [`Side::as_str`] name.
pub(crate) fn parse_side(name: &str) -> Option<Side> {
    Some(match name {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return None,
    })
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
    use kyzlo_domain::trading_state::ReduceOnlyCause;
    use rusqlite::Connection;

    #[test]
    fn every_exit_kind_and_error_class_round_trips_through_its_name() {
        for kind in ExitKind::ALL {
            assert_eq!(parse_exit_kind(kind.as_str()), Some(kind));
        }
        for class in ErrorClass::ALL {
            assert_eq!(parse_error_class(class.as_str()), Some(class));
        }
    }

    #[test]
    fn every_cause_and_side_round_trips_through_its_name() {
        for cause in HaltCause::ALL {
            assert_eq!(parse_halt_cause(cause.as_str()), Some(cause));
        }
        for cause in ReduceOnlyCause::ALL {
            assert_eq!(parse_reduce_only_cause(cause.as_str()), Some(cause));
        }
        for side in [Side::Buy, Side::Sell] {
            assert_eq!(parse_side(side.as_str()), Some(side));
        }
    }

    #[test]
    fn unknown_names_parse_to_none() {
        for name in ["", "StopLoss", "stop-loss", "STOP_LOSS", "stop_loss ", "x"] {
            assert_eq!(parse_exit_kind(name), None, "{name:?}");
            assert_eq!(parse_error_class(name), None, "{name:?}");
            assert_eq!(parse_halt_cause(name), None, "{name:?}");
            assert_eq!(parse_reduce_only_cause(name), None, "{name:?}");
            assert_eq!(parse_side(name), None, "{name:?}");
        }
    }

    #[test]
    fn signatures_round_trip_as_base58_and_bad_text_is_refused() {
        let mut bytes = [0u8; 64];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i * 7 % 256).unwrap_or(0);
        }
        for signature in [
            TxSignature([0; 64]),
            TxSignature([255; 64]),
            TxSignature(bytes),
        ] {
            let text = signature_text(&signature);
            assert!(text.len() <= SIGNATURE_BASE58_MAX, "{}", text.len());
            assert_eq!(parse_signature(&text), Some(signature));
        }
        let short = bs58::encode([1u8; 63]).into_string();
        let long = bs58::encode([1u8; 65]).into_string();
        let huge = "1".repeat(1_000_000);
        for bad in ["", "0OIl", short.as_str(), long.as_str(), huge.as_str()] {
            assert_eq!(parse_signature(bad), None, "{}", bad.len());
        }
    }

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
