//! The crate's one error type, [`SolanaError`], and the table that maps every
//! `solana-client` error (transport, HTTP status, JSON-RPC code, `TransactionError`,
//! program error code) to the domain's [`ErrorClass`], by type and number only.
//!
//! Choices worth knowing (each is a row of the unit-tested table below):
//! - `BlockhashNotFound` at preflight maps to `BlockhashExpired`, but a lagging node may
//!   simply not know a fresh blockhash yet: it is not proof of expiry. The executor proves
//!   expiry only by block height past the last valid height and a final status look-up
//!   with history.
//! - `AlreadyProcessed` at preflight means the same bytes were already processed: `send`
//!   reports success. If it ever reaches a caller it is `Unknown`.
//! - An `InstructionError` with custom code 6001 (Jupiter: slippage tolerance exceeded)
//!   is `SlippageExceeded` and the [`PortError`] code is the program code; any other
//!   instruction error is `LandedFailed`: the transaction ran and failed (on chain, or in
//!   the preflight simulation, which then did not forward it).
//! - `AccountNotFound` (the fee payer holds no lamports) is `InsufficientFunds`.

use std::time::Duration;

use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;
use solana_client::client_error::{ClientError, ClientErrorKind};
use solana_client::rpc_request::{RpcError, RpcResponseErrorData};
use solana_client::rpc_response::RpcSimulateTransactionResult;
use solana_instruction_error::InstructionError;
use solana_transaction_error::TransactionError;

/// Longest excerpt of a remote's text (HTTP body, JSON-RPC message) kept in an error.
pub const EXCERPT_LIMIT: usize = 512;

/// Jupiter v6's program error "slippage tolerance exceeded".
pub const JUPITER_SLIPPAGE_EXCEEDED: u32 = 6001;

/// JSON-RPC code: the preflight simulation of `sendTransaction` failed.
pub const RPC_PREFLIGHT_FAILURE: i64 = -32002;

/// Why a call to a Solana RPC endpoint, or local signing, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SolanaError {
    /// The endpoint gave no complete answer within the request timeout.
    #[error("no answer within {after:?}")]
    Timeout {
        /// The timeout that ran out.
        after: Duration,
    },
    /// No connection could be made (refused, unreachable, DNS).
    #[error("could not connect")]
    Connect,
    /// The connection failed or was reset before an answer arrived.
    #[error("connection lost before the answer")]
    ConnectionLost,
    /// The answer stopped short of its end (connection closed, truncated JSON).
    #[error("answer cut short after {received} bytes")]
    Truncated {
        /// Bytes received before it stopped.
        received: usize,
    },
    /// The endpoint answered with a non-success HTTP status.
    #[error("HTTP {status}{}: {body}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    Http {
        /// The status code.
        status: u16,
        /// The `Retry-After` header in whole seconds, when given.
        retry_after: Option<Duration>,
        /// The start of the body, at most [`EXCERPT_LIMIT`] bytes.
        body: String,
    },
    /// The answer was larger than this adapter accepts.
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The answer was complete but not what the method returns.
    #[error("malformed answer: {detail}")]
    Malformed {
        /// What was wrong (never the answer itself).
        detail: String,
    },
    /// A JSON-RPC error object from the node.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc {
        /// The JSON-RPC code.
        code: i64,
        /// The start of the message, at most [`EXCERPT_LIMIT`] bytes.
        message: String,
        /// For -32005: how far behind the node says it is.
        slots_behind: Option<u64>,
    },
    /// `sendTransaction`'s preflight simulation failed with this transaction error.
    #[error("preflight failed: {error}")]
    Preflight {
        /// The simulated transaction's error.
        error: TransactionError,
    },
    /// A transaction error reported outside preflight.
    #[error("transaction error: {error}")]
    Transaction {
        /// The error.
        error: TransactionError,
    },
    /// The node acknowledged a different signature than the one sent.
    #[error("node acknowledged a different signature")]
    SignatureMismatch,
    /// Bytes to sign are not a transaction this wallet can sign.
    #[error("cannot sign: {reason}")]
    Unsignable { reason: &'static str },
    /// Signing or a signer failed inside the client.
    #[error("signer error")]
    Signing,
    /// More accounts were passed than the RPC method accepts.
    #[error("{count} accounts given, at most {max} accepted")]
    TooManyAccounts {
        /// Accounts given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An account read as the wallet's durable nonce is not one: missing data, another
    /// owner than the System program, or data that is not a nonce's state.
    #[error("{account} is not a durable nonce account: {reason}")]
    NotANonceAccount {
        /// The account (base58).
        account: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A nonce account whose authority is not the wallet: the wallet cannot advance it.
    #[error("nonce account {account} answers to {authority}, not to this wallet")]
    NonceAuthority {
        /// The account (base58).
        account: String,
        /// Its authority (base58).
        authority: String,
    },
    /// The adapter's configuration is invalid.
    #[error("invalid configuration {field}: expected {expected}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is allowed.
        expected: &'static str,
    },
    /// A client error with no more specific type (free-form client text, dropped).
    #[error("client error: {detail}")]
    Other {
        /// A short context line.
        detail: &'static str,
    },
}

impl SolanaError {
    /// The domain class of this failure.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            SolanaError::Timeout { .. } => ErrorClass::RpcTimeout,
            SolanaError::Connect | SolanaError::ConnectionLost | SolanaError::Truncated { .. } => {
                ErrorClass::Network
            }
            SolanaError::Http { status, .. } => http_status_class(*status),
            SolanaError::Rpc { code, .. } => rpc_code_class(*code),
            SolanaError::Preflight { error } | SolanaError::Transaction { error } => {
                transaction_error_class(error)
            }
            SolanaError::Unsignable { .. } | SolanaError::Signing => ErrorClass::SignatureFailure,
            SolanaError::NotANonceAccount { .. } | SolanaError::NonceAuthority { .. } => {
                ErrorClass::InvalidAccount
            }
            SolanaError::TooLarge { .. }
            | SolanaError::Malformed { .. }
            | SolanaError::SignatureMismatch
            | SolanaError::TooManyAccounts { .. }
            | SolanaError::Config { .. }
            | SolanaError::Other { .. } => ErrorClass::Unknown,
        }
    }

    /// The remote's code: the HTTP status, the JSON-RPC code, or for a transaction error
    /// the custom program code when there is one (else -32002 at preflight).
    #[must_use]
    pub fn code(&self) -> Option<i64> {
        match self {
            SolanaError::Http { status, .. } => Some(i64::from(*status)),
            SolanaError::Rpc { code, .. } => Some(*code),
            SolanaError::Preflight { error } => {
                Some(custom_program_code(error).map_or(RPC_PREFLIGHT_FAILURE, i64::from))
            }
            SolanaError::Transaction { error } => custom_program_code(error).map(i64::from),
            _ => None,
        }
    }

    /// How long the endpoint asked us to wait, when it said.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SolanaError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether this says the endpoint itself is failing (transport, 429, 5xx, node
    /// unhealthy or behind), so it is passed over for a cool-down and the call fails over.
    #[must_use]
    pub fn is_endpoint_failure(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::RpcTimeout
                | ErrorClass::Network
                | ErrorClass::RateLimited
                | ErrorClass::NodeUnhealthy
        )
    }

    /// Whether this is the node saying the same bytes were already processed.
    #[must_use]
    pub fn is_already_processed(&self) -> bool {
        matches!(
            self,
            SolanaError::Preflight {
                error: TransactionError::AlreadyProcessed
            } | SolanaError::Transaction {
                error: TransactionError::AlreadyProcessed
            }
        )
    }

    /// This failure as a [`PortError`] of `operation`, with `endpoint` (a label without
    /// credentials) in its detail.
    #[must_use]
    pub fn to_port_error(&self, operation: &'static str, endpoint: &str) -> PortError {
        let mut port = PortError::new(operation, self.class(), format!("{endpoint}: {self}"));
        port.code = self.code();
        port.retry_after = self.retry_after();
        port
    }
}

/// The class of an HTTP status that is not a success.
#[must_use]
pub fn http_status_class(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        408 => ErrorClass::RpcTimeout,
        500..=599 => ErrorClass::NodeUnhealthy,
        _ => ErrorClass::Unknown,
    }
}

/// The class of a JSON-RPC error code (the node's own codes, -32000 and below).
#[must_use]
pub fn rpc_code_class(code: i64) -> ErrorClass {
    match code {
        // Signature verification, precompile verification, signature length mismatch.
        -32003 | -32006 | -32013 => ErrorClass::SignatureFailure,
        // Block not available, node unhealthy or behind, transaction history not
        // available, block status not available yet, min context slot not reached,
        // and the generic internal error providers return for upstream trouble: all
        // say "this node cannot answer now", so another node or a later call may.
        -32004 | -32005 | -32011 | -32014 | -32016 | -32603 => ErrorClass::NodeUnhealthy,
        _ => ErrorClass::Unknown,
    }
}

/// The class of a transaction error, from preflight or from a landed transaction.
#[must_use]
pub fn transaction_error_class(error: &TransactionError) -> ErrorClass {
    match error {
        TransactionError::BlockhashNotFound => ErrorClass::BlockhashExpired,
        TransactionError::InsufficientFundsForFee
        | TransactionError::InsufficientFundsForRent { .. }
        | TransactionError::AccountNotFound
        | TransactionError::InstructionError(_, InstructionError::InsufficientFunds) => {
            ErrorClass::InsufficientFunds
        }
        TransactionError::InstructionError(_, InstructionError::Custom(code))
            if *code == JUPITER_SLIPPAGE_EXCEEDED =>
        {
            ErrorClass::SlippageExceeded
        }
        TransactionError::SignatureFailure
        | TransactionError::SanitizeFailure
        | TransactionError::MissingSignatureForFee => ErrorClass::SignatureFailure,
        TransactionError::ProgramAccountNotFound
        | TransactionError::InvalidAccountForFee
        | TransactionError::InvalidAccountIndex
        | TransactionError::InvalidWritableAccount
        | TransactionError::AddressLookupTableNotFound
        | TransactionError::InvalidAddressLookupTableOwner
        | TransactionError::InvalidAddressLookupTableData
        | TransactionError::InvalidAddressLookupTableIndex => ErrorClass::InvalidAccount,
        TransactionError::AlreadyProcessed => ErrorClass::Unknown,
        _ => ErrorClass::LandedFailed,
    }
}

/// The custom program error code inside a transaction error, if it is one.
#[must_use]
pub fn custom_program_code(error: &TransactionError) -> Option<u32> {
    match error {
        TransactionError::InstructionError(_, InstructionError::Custom(code)) => Some(*code),
        _ => None,
    }
}

/// Converts a `solana-client` error into this crate's typed error: by variant, status,
/// JSON-RPC code and transaction error, never by message text.
#[must_use]
pub fn classify(error: &ClientError) -> SolanaError {
    classify_kind(error.kind())
}

fn classify_kind(kind: &ClientErrorKind) -> SolanaError {
    match kind {
        ClientErrorKind::Middleware(inner) => match inner.downcast_ref::<SolanaError>() {
            Some(ours) => ours.clone(),
            None => SolanaError::Other {
                detail: "middleware error",
            },
        },
        ClientErrorKind::Reqwest(err) => classify_reqwest(err, None),
        ClientErrorKind::Io(err) => classify_io(err.kind()),
        ClientErrorKind::RpcError(rpc) => classify_rpc(rpc),
        ClientErrorKind::SerdeJson(err) => SolanaError::Malformed {
            detail: format!(
                "answer does not match the method's result at line {} column {}",
                err.line(),
                err.column()
            ),
        },
        ClientErrorKind::SigningError(_) => SolanaError::Signing,
        ClientErrorKind::TransactionError(error) => SolanaError::Transaction {
            error: error.clone(),
        },
        ClientErrorKind::Custom(_) => SolanaError::Other {
            detail: "client reported a custom error",
        },
    }
}

fn classify_rpc(rpc: &RpcError) -> SolanaError {
    match rpc {
        RpcError::RpcResponseError {
            code,
            message,
            data,
        } => match data {
            RpcResponseErrorData::SendTransactionPreflightFailure(
                RpcSimulateTransactionResult { err: Some(err), .. },
            ) => SolanaError::Preflight {
                error: err.clone().into(),
            },
            RpcResponseErrorData::NodeUnhealthy { num_slots_behind } => SolanaError::Rpc {
                code: *code,
                message: excerpt(message.as_bytes()),
                slots_behind: *num_slots_behind,
            },
            _ => SolanaError::Rpc {
                code: *code,
                message: excerpt(message.as_bytes()),
                slots_behind: None,
            },
        },
        RpcError::RpcRequestError(_) => SolanaError::Other {
            detail: "request error",
        },
        RpcError::ParseError(_) => SolanaError::Malformed {
            detail: "answer could not be parsed".to_owned(),
        },
        RpcError::ForUser(_) => SolanaError::Other {
            detail: "client gave up",
        },
    }
}

/// Classifies a `reqwest` error by its kind flags and its I/O source.
pub(crate) fn classify_reqwest(err: &reqwest::Error, timeout: Option<Duration>) -> SolanaError {
    if err.is_timeout() {
        return SolanaError::Timeout {
            after: timeout.unwrap_or_default(),
        };
    }
    if err.is_connect() {
        return SolanaError::Connect;
    }
    if let Some(status) = err.status() {
        return SolanaError::Http {
            status: status.as_u16(),
            retry_after: None,
            body: String::new(),
        };
    }
    if let Some(io) = io_source(err) {
        return classify_io(io.kind());
    }
    SolanaError::ConnectionLost
}

fn io_source(err: &reqwest::Error) -> Option<&std::io::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = current.source();
    }
    None
}

fn classify_io(kind: std::io::ErrorKind) -> SolanaError {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => SolanaError::Timeout {
            after: Duration::ZERO,
        },
        ErrorKind::ConnectionRefused
        | ErrorKind::AddrNotAvailable
        | ErrorKind::NotFound
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable => SolanaError::Connect,
        ErrorKind::UnexpectedEof => SolanaError::Truncated { received: 0 },
        _ => SolanaError::ConnectionLost,
    }
}

/// At most [`EXCERPT_LIMIT`] bytes of `bytes` as text, cut on a character boundary.
#[must_use]
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_LIMIT)];
    let text = String::from_utf8_lossy(cut);
    // A multi-byte character split by the cut shows as one replacement character.
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_client::rpc_request::RpcError;
    use solana_client::rpc_response::RpcSimulateTransactionResult;

    fn rpc_error(code: i64, data: RpcResponseErrorData) -> ClientError {
        ClientErrorKind::RpcError(RpcError::RpcResponseError {
            code,
            message: "node says so".to_owned(),
            data,
        })
        .into()
    }

    fn preflight(err: TransactionError) -> ClientError {
        let result = RpcSimulateTransactionResult {
            err: Some(err.into()),
            logs: None,
            accounts: None,
            units_consumed: None,
            loaded_accounts_data_size: None,
            return_data: None,
            inner_instructions: None,
            replacement_blockhash: None,
            fee: None,
            pre_balances: None,
            post_balances: None,
            pre_token_balances: None,
            post_token_balances: None,
            loaded_addresses: None,
        };
        rpc_error(
            RPC_PREFLIGHT_FAILURE,
            RpcResponseErrorData::SendTransactionPreflightFailure(result),
        )
    }

    fn ours(error: SolanaError) -> ClientError {
        ClientErrorKind::Middleware(anyhow::Error::new(error)).into()
    }

    /// One row: a client error, the class it must map to, its code and retry-after.
    fn check(error: &ClientError, class: ErrorClass, code: Option<i64>, retry: Option<u64>) {
        let mapped = classify(error);
        assert_eq!(mapped.class(), class, "class of {error:?} -> {mapped:?}");
        assert_eq!(mapped.code(), code, "code of {error:?} -> {mapped:?}");
        assert_eq!(
            mapped.retry_after(),
            retry.map(Duration::from_secs),
            "retry-after of {error:?}"
        );
        let port = mapped.to_port_error("rpc.test", "http://node");
        assert_eq!(port.class, class);
        assert_eq!(port.code, code);
    }

    #[test]
    fn every_client_error_maps_to_its_documented_class_and_code() {
        use ErrorClass::*;
        use InstructionError as Ix;
        use TransactionError as Tx;
        let slow = Duration::from_secs(2);
        let rows: Vec<(ClientError, ErrorClass, Option<i64>, Option<u64>)> = vec![
            // Transport, as our sender reports it.
            (
                ours(SolanaError::Timeout { after: slow }),
                RpcTimeout,
                None,
                None,
            ),
            (ours(SolanaError::Connect), Network, None, None),
            (ours(SolanaError::ConnectionLost), Network, None, None),
            (
                ours(SolanaError::Truncated { received: 10 }),
                Network,
                None,
                None,
            ),
            (
                ours(SolanaError::Http {
                    status: 429,
                    retry_after: Some(Duration::from_secs(7)),
                    body: String::new(),
                }),
                RateLimited,
                Some(429),
                Some(7),
            ),
            (
                ours(SolanaError::Http {
                    status: 429,
                    retry_after: None,
                    body: String::new(),
                }),
                RateLimited,
                Some(429),
                None,
            ),
            (
                ours(SolanaError::Http {
                    status: 500,
                    retry_after: None,
                    body: String::new(),
                }),
                NodeUnhealthy,
                Some(500),
                None,
            ),
            (
                ours(SolanaError::Http {
                    status: 503,
                    retry_after: None,
                    body: String::new(),
                }),
                NodeUnhealthy,
                Some(503),
                None,
            ),
            (
                ours(SolanaError::Http {
                    status: 408,
                    retry_after: None,
                    body: String::new(),
                }),
                RpcTimeout,
                Some(408),
                None,
            ),
            (
                ours(SolanaError::Http {
                    status: 401,
                    retry_after: None,
                    body: String::new(),
                }),
                Unknown,
                Some(401),
                None,
            ),
            (
                ours(SolanaError::TooLarge { limit: 1 }),
                Unknown,
                None,
                None,
            ),
            // Transport, as the stock client reports it.
            (
                std::io::Error::from(std::io::ErrorKind::TimedOut).into(),
                RpcTimeout,
                None,
                None,
            ),
            (
                std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
                Network,
                None,
                None,
            ),
            (
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                Network,
                None,
                None,
            ),
            // JSON-RPC codes.
            (
                rpc_error(-32003, RpcResponseErrorData::Empty),
                SignatureFailure,
                Some(-32003),
                None,
            ),
            (
                rpc_error(-32004, RpcResponseErrorData::Empty),
                NodeUnhealthy,
                Some(-32004),
                None,
            ),
            (
                rpc_error(
                    -32005,
                    RpcResponseErrorData::NodeUnhealthy {
                        num_slots_behind: Some(42),
                    },
                ),
                NodeUnhealthy,
                Some(-32005),
                None,
            ),
            (
                rpc_error(-32005, RpcResponseErrorData::Empty),
                NodeUnhealthy,
                Some(-32005),
                None,
            ),
            (
                rpc_error(-32011, RpcResponseErrorData::Empty),
                NodeUnhealthy,
                Some(-32011),
                None,
            ),
            (
                rpc_error(-32014, RpcResponseErrorData::Empty),
                NodeUnhealthy,
                Some(-32014),
                None,
            ),
            (
                rpc_error(-32016, RpcResponseErrorData::Empty),
                NodeUnhealthy,
                Some(-32016),
                None,
            ),
            (
                rpc_error(-32603, RpcResponseErrorData::Empty),
                NodeUnhealthy,
                Some(-32603),
                None,
            ),
            (
                rpc_error(-32602, RpcResponseErrorData::Empty),
                Unknown,
                Some(-32602),
                None,
            ),
            (
                rpc_error(-32002, RpcResponseErrorData::Empty),
                Unknown,
                Some(-32002),
                None,
            ),
            // Preflight failures with their transaction error.
            (
                preflight(Tx::BlockhashNotFound),
                BlockhashExpired,
                Some(-32002),
                None,
            ),
            (preflight(Tx::AlreadyProcessed), Unknown, Some(-32002), None),
            (
                preflight(Tx::InsufficientFundsForFee),
                InsufficientFunds,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::InsufficientFundsForRent { account_index: 2 }),
                InsufficientFunds,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::AccountNotFound),
                InsufficientFunds,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::InstructionError(3, Ix::Custom(6001))),
                SlippageExceeded,
                Some(6001),
                None,
            ),
            (
                preflight(Tx::InstructionError(0, Ix::Custom(1))),
                LandedFailed,
                Some(1),
                None,
            ),
            (
                preflight(Tx::InstructionError(1, Ix::InsufficientFunds)),
                InsufficientFunds,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::InstructionError(1, Ix::InvalidAccountData)),
                LandedFailed,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::SignatureFailure),
                SignatureFailure,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::SanitizeFailure),
                SignatureFailure,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::AddressLookupTableNotFound),
                InvalidAccount,
                Some(-32002),
                None,
            ),
            (
                preflight(Tx::WouldExceedMaxBlockCostLimit),
                LandedFailed,
                Some(-32002),
                None,
            ),
            // Other kinds.
            (
                ClientErrorKind::TransactionError(Tx::InstructionError(0, Ix::Custom(6001))).into(),
                SlippageExceeded,
                Some(6001),
                None,
            ),
            (
                ClientErrorKind::SerdeJson(
                    serde_json::from_str::<u64>("\"x\"").expect_err("not a number"),
                )
                .into(),
                Unknown,
                None,
                None,
            ),
            (
                ClientErrorKind::Custom("whatever".to_owned()).into(),
                Unknown,
                None,
                None,
            ),
            (
                ClientErrorKind::RpcError(RpcError::ParseError("x".to_owned())).into(),
                Unknown,
                None,
                None,
            ),
            (
                ClientErrorKind::Middleware(anyhow::anyhow!("foreign middleware")).into(),
                Unknown,
                None,
                None,
            ),
        ];
        for (error, class, code, retry) in &rows {
            check(error, *class, *code, *retry);
        }
    }

    #[test]
    fn endpoint_failures_are_exactly_the_transient_node_classes() {
        let failing = [
            SolanaError::Timeout {
                after: Duration::from_secs(1),
            },
            SolanaError::Connect,
            SolanaError::Truncated { received: 3 },
            SolanaError::Http {
                status: 429,
                retry_after: None,
                body: String::new(),
            },
            SolanaError::Http {
                status: 502,
                retry_after: None,
                body: String::new(),
            },
            SolanaError::Rpc {
                code: -32005,
                message: String::new(),
                slots_behind: None,
            },
        ];
        for error in &failing {
            assert!(error.is_endpoint_failure(), "{error:?}");
        }
        let answering = [
            SolanaError::Preflight {
                error: TransactionError::BlockhashNotFound,
            },
            SolanaError::Http {
                status: 400,
                retry_after: None,
                body: String::new(),
            },
            SolanaError::Malformed {
                detail: String::new(),
            },
            SolanaError::Rpc {
                code: -32602,
                message: String::new(),
                slots_behind: None,
            },
        ];
        for error in &answering {
            assert!(!error.is_endpoint_failure(), "{error:?}");
        }
    }

    #[test]
    fn already_processed_is_recognised_by_type() {
        assert!(
            SolanaError::Preflight {
                error: TransactionError::AlreadyProcessed
            }
            .is_already_processed()
        );
        assert!(
            !SolanaError::Preflight {
                error: TransactionError::BlockhashNotFound
            }
            .is_already_processed()
        );
    }

    #[test]
    fn excerpts_are_bounded_even_for_huge_or_invalid_text() {
        let huge = vec![b'a'; 10_000];
        assert_eq!(excerpt(&huge).len(), EXCERPT_LIMIT);
        let invalid = [0xff_u8, 0xfe, b'o', b'k'];
        assert!(excerpt(&invalid).ends_with("ok"));
        // "é" is two bytes: a cut in its middle must not panic.
        let mut split = vec![b'a'; EXCERPT_LIMIT - 1];
        split.extend_from_slice("é".as_bytes());
        assert!(excerpt(&split).len() <= EXCERPT_LIMIT + 3);
    }
}
