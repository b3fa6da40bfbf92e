//! The crate's errors: one [`SimError`] enum with structured fields, the CSV loader's
//! positioned [`CsvError`], and their mapping to the application's [`PortError`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;

/// A CSV price series that could not be read, with where: `file.csv:12:3: message`.
///
/// `line` and `column` are 1-based; an I/O failure has line and column 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct CsvError {
    /// The file name (or any label the caller gave the text).
    pub origin: String,
    /// 1-based line; 0 when the file could not be read at all.
    pub line: usize,
    /// 1-based column (field number); 0 when the whole line or file is concerned.
    pub column: usize,
    /// What is wrong, naming the offending text (bounded).
    pub message: String,
}

/// Everything that can go wrong in the simulated venue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A price path needs at least one price and a nonzero step.
    #[error("invalid price path: {reason}")]
    InvalidPath {
        /// What is wrong.
        reason: &'static str,
    },
    /// A generator or fault parameter is out of its range.
    #[error("invalid parameter {field} = {value}: {expected}")]
    InvalidParameter {
        /// The parameter's name.
        field: &'static str,
        /// Its value (durations in seconds).
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },
    /// A CSV price series could not be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The paper wallet file could not be read or written.
    #[error("paper wallet {path}: cannot {operation}: {source}")]
    WalletIo {
        /// The file.
        path: PathBuf,
        /// What was being done (`"read"`, `"write"`, `"sync"`, `"rename"`).
        operation: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The paper wallet file exists but is not a wallet this version can read: it is
    /// never silently reset.
    #[error("paper wallet {path} is corrupt at line {line}, column {column}: {message}")]
    WalletCorrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when not positional).
        line: usize,
        /// 1-based column of the problem (0 when not positional).
        column: usize,
        /// What is wrong (bounded).
        message: String,
    },
    /// An injected fault answered a call.
    #[error("{operation}: injected {class}")]
    Injected {
        /// The operation that failed.
        operation: &'static str,
        /// The class the fault stands for.
        class: ErrorClass,
        /// The remote's retry-after, for 429s.
        retry_after: Option<Duration>,
        /// The JSON-RPC or HTTP code a real endpoint would give (429, -32005).
        code: Option<i64>,
    },
    /// The bytes are not a transaction this venue built.
    #[error("{len} bytes are not a transaction built by this venue")]
    UnknownTransaction {
        /// Length of the bytes.
        len: usize,
    },
    /// The transaction's blockhash has expired: it can never land.
    #[error("blockhash expired: last valid height {last_valid}, height {height}")]
    BlockhashExpired {
        /// The transaction's last valid block height.
        last_valid: u64,
        /// The height now.
        height: u64,
    },
    /// The router has no route for this amount (zero, or too small to buy anything).
    #[error("no route for {amount_in} base units")]
    NoRoute {
        /// The input amount asked for.
        amount_in: u64,
    },
    /// More signatures in one status call than a node accepts.
    #[error("{count} signatures in one status call; at most {limit}")]
    TooManySignatures {
        /// Signatures asked for.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A node's simulation of a sent transaction failed, so it was not forwarded (the
    /// swap's slippage check, funds); the same bytes may still land from an earlier copy.
    #[error("preflight refused the transaction: {reason}")]
    Preflight {
        /// The class of the failure the simulation saw.
        class: ErrorClass,
        /// The code a real node gives (the program's custom error, or -32002).
        code: i64,
        /// What failed.
        reason: &'static str,
    },
    /// A transaction on a durable nonce whose value the node's view no longer (or never)
    /// holds: a node refuses it as it refuses an unknown blockhash.
    #[error("blockhash not found: the durable nonce holds another value on the node's view")]
    NonceMismatch,
    /// A transaction was asked for on a nonce account the wallet does not have.
    #[error("the wallet has no such nonce account")]
    UnknownNonceAccount,
    /// A history look-up reached a node that keeps no transaction history.
    #[error("transaction history is not available from this node")]
    HistoryUnavailable,
    /// The node answering is behind the minimum context slot the request asked for.
    #[error("minimum context slot {min} not reached: the node is at {view}")]
    MinContextSlot {
        /// The slot asked for.
        min: u64,
        /// The node's view.
        view: u64,
    },
    /// The fee payer cannot pay the transaction's fee (refused at preflight).
    #[error("fee payer holds {held} lamports, the fee is {fee}")]
    InsufficientFee {
        /// Lamports held.
        held: u64,
        /// Lamports the fee needs.
        fee: u64,
    },
}

/// The JSON-RPC code of "node is behind" (`-32005`).
pub const NODE_BEHIND_CODE: i64 = -32_005;
/// The JSON-RPC code of invalid parameters (`-32602`).
pub const INVALID_PARAMS: i64 = -32_602;
/// The JSON-RPC code of a failed preflight (`-32002`), as for "blockhash not found".
pub const BLOCKHASH_NOT_FOUND: i64 = -32_002;
/// The JSON-RPC code of "transaction history is not available" (`-32011`).
pub const HISTORY_UNAVAILABLE: i64 = -32_011;
/// The JSON-RPC code of "minimum context slot has not been reached" (`-32016`).
pub const MIN_CONTEXT_SLOT: i64 = -32_016;
/// HTTP 429.
pub const TOO_MANY_REQUESTS: i64 = 429;

impl SimError {
    /// The domain class of this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            SimError::Injected { class, .. } => *class,
            SimError::UnknownTransaction { .. } => ErrorClass::SignatureFailure,
            SimError::BlockhashExpired { .. } | SimError::NonceMismatch => {
                ErrorClass::BlockhashExpired
            }
            SimError::UnknownNonceAccount => ErrorClass::InvalidAccount,
            SimError::InsufficientFee { .. } => ErrorClass::InsufficientFunds,
            SimError::Preflight { class, .. } => *class,
            SimError::HistoryUnavailable | SimError::MinContextSlot { .. } => {
                ErrorClass::NodeUnhealthy
            }
            SimError::NoRoute { .. } => ErrorClass::NoRoute,
            SimError::TooManySignatures { .. } => ErrorClass::Unknown,
            SimError::InvalidPath { .. }
            | SimError::InvalidParameter { .. }
            | SimError::Csv(_)
            | SimError::WalletIo { .. }
            | SimError::WalletCorrupt { .. } => ErrorClass::Unknown,
        }
    }

    /// This error as a [`PortError`] of `operation`, with its class, code and retry-after.
    #[must_use]
    pub fn to_port(&self, operation: &'static str) -> PortError {
        let mut e = PortError::new(operation, self.class(), bounded(&self.to_string()));
        match self {
            SimError::Injected {
                retry_after, code, ..
            } => {
                if let Some(wait) = retry_after {
                    e = e.with_retry_after(*wait);
                }
                if let Some(code) = code {
                    e = e.with_code(*code);
                }
            }
            SimError::TooManySignatures { .. } => e = e.with_code(INVALID_PARAMS),
            SimError::BlockhashExpired { .. } | SimError::NonceMismatch => {
                e = e.with_code(BLOCKHASH_NOT_FOUND);
            }
            SimError::Preflight { code, .. } => e = e.with_code(*code),
            SimError::HistoryUnavailable => e = e.with_code(HISTORY_UNAVAILABLE),
            SimError::MinContextSlot { .. } => e = e.with_code(MIN_CONTEXT_SLOT),
            _ => {}
        }
        e
    }
}

/// The most bytes of foreign text an error carries.
pub const EXCERPT_LIMIT: usize = 512;

/// `text` cut to at most [`EXCERPT_LIMIT`] bytes on a character boundary.
#[must_use]
pub fn bounded(text: &str) -> String {
    if text.len() <= EXCERPT_LIMIT {
        return text.to_owned();
    }
    let mut end = EXCERPT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A quoted, bounded excerpt of foreign text for messages: `"abc"`.
pub(crate) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", bounded(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_faults_become_port_errors_with_class_code_and_retry_after() {
        let e = SimError::Injected {
            operation: "sim.quote",
            class: ErrorClass::RateLimited,
            retry_after: Some(Duration::from_secs(2)),
            code: Some(TOO_MANY_REQUESTS),
        }
        .to_port("sim.quote");
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(e.code, Some(429));
        assert_eq!(
            SimError::UnknownTransaction { len: 3 }.class(),
            ErrorClass::SignatureFailure
        );
        assert_eq!(
            SimError::BlockhashExpired {
                last_valid: 1,
                height: 2
            }
            .class(),
            ErrorClass::BlockhashExpired
        );
    }

    #[test]
    fn excerpts_are_bounded_on_char_boundaries() {
        let long = "é".repeat(1_000);
        let cut = bounded(&long);
        assert!(cut.len() <= EXCERPT_LIMIT + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn csv_error_displays_file_line_column_and_message() {
        let e = CsvError {
            origin: "file.csv".into(),
            line: 12,
            column: 3,
            message: format!("price is not a number ({})", Quoted("abc")),
        };
        assert_eq!(
            e.to_string(),
            "file.csv:12:3: price is not a number (\"abc\")"
        );
    }
}
