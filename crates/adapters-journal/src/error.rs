//! The journal's one error type, and its conversion to the application's [`PortError`].
//!
//! Every failure of the journal is class [`ErrorClass::Unknown`] at the port: a write that
//! cannot be made durable is never retried blindly, and the caller does not send.

use std::fmt::Write as _;
use std::path::PathBuf;

use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;

/// At most this many bytes of an error's text are carried into a [`PortError`]'s detail.
pub const DETAIL_LIMIT: usize = 512;

/// At most this many bytes of a corrupt stored value are kept in [`JournalError::Corrupt`].
pub const VALUE_EXCERPT_LIMIT: usize = 128;

/// What went wrong in the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal's directory could not be created.
    #[error("cannot create the journal directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The file-system error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be opened as an SQLite database, or its connection settings
    /// (WAL, synchronous=FULL, foreign keys, busy timeout) could not be applied.
    #[error("cannot open the journal {}: {source} (while trying to {step})", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database would not switch to write-ahead logging.
    #[error("journal {} stays in journal mode {mode:?}, not wal", path.display())]
    NotWal {
        /// The file.
        path: PathBuf,
        /// The mode SQLite reported.
        mode: String,
    },
    /// The file was written by a newer build: this one refuses to touch it.
    #[error(
        "journal {} has schema version {found}, newer than {known}, the latest this build knows",
        path.display()
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The version found in the file (`PRAGMA user_version`).
        found: i64,
        /// The latest version this build knows.
        known: i64,
    },
    /// A migration step failed; the file is left at its previous version.
    #[error("migrating journal {} to schema version {version} failed", path.display())]
    Migration {
        /// The file.
        path: PathBuf,
        /// The version being migrated to.
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An SQL statement failed.
    #[error("journal SQL failed while trying to {context}")]
    Sql {
        /// What was being done, e.g. `"insert attempt"`.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value is not one this build can read back: a wrong type, a name outside
    /// the known table, a value out of range. Nothing is defaulted.
    #[error("corrupt journal value in {table}.{column}: {value}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The value found, rendered and cut to [`VALUE_EXCERPT_LIMIT`] bytes.
        value: String,
    },
    /// A `u64` above `i64::MAX` cannot be stored in an SQLite INTEGER; nothing was written.
    #[error(
        "{value} does not fit {table}.{column} (an SQLite INTEGER holds at most {})",
        i64::MAX
    )]
    Overflow {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The value refused.
        value: u64,
    },
    /// An attempt or a transition names an intent that was never journaled.
    #[error("{table} row refused: intent {intent} was never journaled")]
    UnknownIntent {
        /// The table written to.
        table: &'static str,
        /// The intent named.
        intent: u64,
    },
    /// An attempt on a durable nonce whose blockhash is not the nonce's value: such a
    /// transaction carries the value as its blockhash, and the journal stores it once
    /// (as the blockhash), so the record cannot be stored as it is; nothing was written.
    #[error(
        "intent {intent} attempt {attempt} refused: its blockhash is not the value of the durable nonce it is built on"
    )]
    NonceNotBlockhash {
        /// The intent.
        intent: u64,
        /// The attempt.
        attempt: u32,
    },
    /// An unresolved attempt recorded by a kyzlo from before blockhash tracking: its fate
    /// cannot be proven by this version.
    #[error(
        "intent {intent} attempt {attempt} is unresolved and was recorded without its blockhash by an older kyzlo: let that version settle it (start and stop it once) before upgrading"
    )]
    LegacyAttempt {
        /// The intent.
        intent: u64,
        /// The attempt.
        attempt: u32,
    },
    /// The blocking worker running the SQL was cancelled or panicked.
    #[error("journal worker thread failed")]
    Worker {
        /// tokio's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl JournalError {
    /// The SQLite extended result code behind this error, when SQLite gave one.
    #[must_use]
    pub fn sqlite_code(&self) -> Option<i64> {
        match self {
            JournalError::Open { source, .. }
            | JournalError::Migration { source, .. }
            | JournalError::Sql { source, .. } => {
                source.sqlite_error().map(|e| i64::from(e.extended_code))
            }
            _ => None,
        }
    }

    /// The failure as the port reports it: class [`ErrorClass::Unknown`] at `operation`
    /// (e.g. `"journal.record_attempt"`), SQLite's extended code when there is one, and the
    /// error's text with its causes cut to [`DETAIL_LIMIT`] bytes.
    #[must_use]
    pub fn to_port_error(&self, operation: &'static str) -> PortError {
        let mut detail = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let _ = write!(detail, ": {c}");
            cause = c.source();
        }
        let error = PortError::new(
            operation,
            ErrorClass::Unknown,
            truncate(detail, DETAIL_LIMIT),
        );
        match self.sqlite_code() {
            Some(code) => error.with_code(code),
            None => error,
        }
    }
}

/// `text` cut to at most `limit` bytes on a character boundary.
pub(crate) fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_error_is_unknown_with_operation_code_and_bounded_detail() {
        let source = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some("x".repeat(4_000)),
        );
        let error = JournalError::Sql {
            context: "insert attempt",
            source,
        };
        let port = error.to_port_error("journal.record_attempt");
        assert_eq!(port.operation, "journal.record_attempt");
        assert_eq!(port.class, ErrorClass::Unknown);
        assert_eq!(
            port.code,
            Some(i64::from(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY))
        );
        assert!(port.detail.len() <= DETAIL_LIMIT, "{}", port.detail.len());
        assert!(
            port.detail
                .starts_with("journal SQL failed while trying to insert attempt: ")
        );
    }

    #[test]
    fn errors_without_sqlite_cause_have_no_code() {
        let error = JournalError::Overflow {
            table: "attempts",
            column: "amount_in",
            value: u64::MAX,
        };
        let port = error.to_port_error("journal.record_attempt");
        assert_eq!(port.code, None);
        assert_eq!(
            port.detail,
            format!(
                "18446744073709551615 does not fit attempts.amount_in (an SQLite INTEGER holds at most {})",
                i64::MAX
            )
        );
    }

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        let cases = [
            ("abc", 5, "abc"),
            ("abcdef", 3, "abc"),
            ("aé", 2, "a"),
            ("éé", 4, "éé"),
            ("", 0, ""),
        ];
        for (text, limit, expected) in cases {
            assert_eq!(
                truncate(text.to_owned(), limit),
                expected,
                "{text:?} {limit}"
            );
        }
    }
}
