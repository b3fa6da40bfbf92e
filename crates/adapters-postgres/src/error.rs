//! The PostgreSQL journal's one error type, and its conversion to the application's
//! [`PortError`].
//!
//! Every failure is class [`ErrorClass::Unknown`] at the port (give up: a write that cannot
//! be made durable is never retried blindly, and the caller does not send). A write the
//! database refused because this instance no longer holds the wallet's lease carries
//! [`FENCED_CODE`], so the caller can tell it apart without reading text.

use std::fmt::Write as _;

use kyzlo_application::journal::FENCED_CODE;
use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;
use tokio_postgres::error::SqlState;

/// At most this many bytes of an error's text are carried into a [`PortError`]'s detail.
pub const DETAIL_LIMIT: usize = 512;

/// At most this many bytes of a corrupt stored value are kept in [`PgError::Corrupt`].
pub const VALUE_EXCERPT_LIMIT: usize = 128;

/// The SQLSTATE the database raises for a write whose epoch does not hold the wallet's
/// lease (class `KZ`: kyzlo's own, outside PostgreSQL's classes).
pub const FENCED_SQLSTATE: &str = "KZ001";

/// What went wrong in the PostgreSQL journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The journal URL is not a PostgreSQL connection string. The URL itself is never
    /// repeated (it holds the password).
    #[error("journal.url is not a valid PostgreSQL URL: {reason}")]
    InvalidUrl {
        /// The driver's complaint, with any password masked.
        reason: String,
    },
    /// No connection could be had from the pool (the server down, refused, or slow).
    #[error("cannot get a PostgreSQL connection: {reason}")]
    Connect {
        /// The pool's or the driver's complaint, with any password masked.
        reason: String,
    },
    /// An SQL statement failed.
    #[error("journal SQL failed while trying to {context}")]
    Sql {
        /// What was being done, e.g. `"insert an attempt"`.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database refused the write: `epoch` no longer holds `wallet`'s lease (it
    /// expired, or another instance took it over with a higher epoch). Nothing was
    /// written; this instance must stop trading the wallet.
    #[error("wallet {wallet}: epoch {epoch} no longer holds the lease; the write was refused")]
    Fenced {
        /// The wallet.
        wallet: String,
        /// The stale epoch.
        epoch: i64,
    },
    /// The database holds a schema newer than this build knows: it is left untouched.
    #[error(
        "the journal database has schema version {found}, newer than {known}, the latest this build knows"
    )]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The latest this build knows.
        known: i32,
    },
    /// An operator's command found the database at another schema version than this
    /// build's (it migrates nothing: an instance of this build does).
    #[error(
        "the fleet database has schema version {found}, not {known} as this build: start an instance of this version first (it migrates), or use the matching kyzlo"
    )]
    SchemaMismatch {
        /// The version found (0: never migrated).
        found: i32,
        /// This build's.
        known: i32,
    },
    /// A migration step failed; the database is left at its previous version.
    #[error("migrating the journal database to schema version {version} failed")]
    Migration {
        /// The version being migrated to.
        version: i32,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A stored value is not one this build can read back. Nothing is defaulted.
    #[error("corrupt journal value in {table}.{column}: {value}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The value found, rendered and cut to [`VALUE_EXCERPT_LIMIT`] bytes.
        value: String,
    },
    /// A `u64` above `i64::MAX` cannot be stored in a BIGINT; nothing was written.
    #[error(
        "{value} does not fit {table}.{column} (a BIGINT holds at most {})",
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
    /// An attempt or a transition names an intent that was never journaled.
    #[error("{table} row refused: intent {intent} was never journaled")]
    UnknownIntent {
        /// The table written to.
        table: &'static str,
        /// The intent named.
        intent: u64,
    },
}

impl PgError {
    /// `error` from a statement doing `context`: the database's fencing refusal becomes
    /// [`PgError::Fenced`] for `wallet` at `epoch`.
    pub(crate) fn sql(
        context: &'static str,
        wallet: &str,
        epoch: i64,
        source: tokio_postgres::Error,
    ) -> Self {
        if source.code().map(SqlState::code) == Some(FENCED_SQLSTATE) {
            PgError::Fenced {
                wallet: wallet.to_owned(),
                epoch,
            }
        } else {
            PgError::Sql { context, source }
        }
    }

    /// Whether the connection this error came from was already closed (by the server or
    /// the network): nothing more can be sent on it.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, PgError::Sql { source, .. } if source.is_closed())
    }

    /// The SQLSTATE behind this error, when the server gave one.
    #[must_use]
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            PgError::Sql { source, .. } | PgError::Migration { source, .. } => {
                source.code().map(SqlState::code)
            }
            PgError::Fenced { .. } => Some(FENCED_SQLSTATE),
            _ => None,
        }
    }

    /// Whether the database refused this write for a lost lease.
    #[must_use]
    pub fn is_fenced(&self) -> bool {
        matches!(self, PgError::Fenced { .. })
    }

    /// The failure as the port reports it: class [`ErrorClass::Unknown`] at `operation`,
    /// [`FENCED_CODE`] for a fencing refusal, and the error's text with its causes cut to
    /// [`DETAIL_LIMIT`] bytes.
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
        if self.is_fenced() {
            error.with_code(FENCED_CODE)
        } else {
            error
        }
    }
}

/// `text` with every occurrence of `secret` replaced by `***` (nothing when `secret` is
/// empty).
pub(crate) fn mask(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "***"),
        _ => text.to_owned(),
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
    fn a_fenced_write_is_unknown_class_with_the_fenced_code() {
        let port = PgError::Fenced {
            wallet: "W1".to_owned(),
            epoch: 3,
        }
        .to_port_error("journal.record_attempt");
        assert_eq!(port.class, ErrorClass::Unknown);
        assert_eq!(port.code, Some(FENCED_CODE));
        assert_eq!(
            port.detail,
            "wallet W1: epoch 3 no longer holds the lease; the write was refused"
        );
    }

    #[test]
    fn other_errors_carry_no_code_and_a_bounded_detail() {
        let port = PgError::Corrupt {
            table: "intents",
            column: "side",
            value: "x".repeat(4_000),
        }
        .to_port_error("journal.load");
        assert_eq!(port.code, None);
        assert!(port.detail.len() <= DETAIL_LIMIT);
    }

    #[test]
    fn mask_hides_the_secret_everywhere() {
        assert_eq!(mask("a s3cret b s3cret", Some("s3cret")), "a *** b ***");
        assert_eq!(mask("nothing", Some("")), "nothing");
        assert_eq!(mask("nothing", None), "nothing");
    }
}
