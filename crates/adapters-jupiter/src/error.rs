//! The adapter's one error type, and its mapping to the domain's [`ErrorClass`].
//!
//! Every variant is built from a type, an HTTP status or a JSON field, never from the
//! text of a message; the class of each variant is fixed in [`JupiterError::class`].

use std::fmt;
use std::time::Duration;

use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;

/// At most this many bytes of a response body are kept for context.
pub const BODY_EXCERPT_LIMIT: usize = 512;

/// The start of a response body, for logs: at most [`BODY_EXCERPT_LIMIT`] bytes, cut on a
/// character boundary, with the full length it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyExcerpt {
    text: String,
    total_bytes: usize,
}

impl BodyExcerpt {
    /// Keeps the start of `body`; invalid UTF-8 is replaced, never trusted.
    #[must_use]
    pub fn new(body: &[u8]) -> Self {
        let head = &body[..body.len().min(BODY_EXCERPT_LIMIT)];
        let mut text = String::from_utf8_lossy(head).into_owned();
        // A multi-byte character cut at the limit decodes to a trailing U+FFFD: drop it,
        // and never let the replacement characters push the text over the limit.
        if head.len() < body.len() && text.ends_with('\u{FFFD}') {
            text.pop();
        }
        while text.len() > BODY_EXCERPT_LIMIT {
            text.pop();
        }
        Self {
            text,
            total_bytes: body.len(),
        }
    }

    /// The kept text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The length of the whole body it came from.
    #[must_use]
    pub const fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Whether the body was longer than the excerpt.
    #[must_use]
    pub const fn is_truncated(&self) -> bool {
        self.total_bytes > BODY_EXCERPT_LIMIT
    }
}

impl fmt::Display for BodyExcerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)?;
        if self.is_truncated() {
            write!(f, " (first bytes of {})", self.total_bytes)?;
        }
        Ok(())
    }
}

/// The `errorCode` values of a 4xx answer that mean "no route for this pair and size".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoRouteCode {
    /// `NO_ROUTES_FOUND`.
    NoRoutesFound,
    /// `COULD_NOT_FIND_ANY_ROUTE`.
    CouldNotFindAnyRoute,
    /// `TOKEN_NOT_TRADABLE`.
    TokenNotTradable,
    /// `ROUTE_PLAN_DOES_NOT_CONSUME_ALL_THE_AMOUNT`: no route takes the whole input.
    RoutePlanDoesNotConsumeAllTheAmount,
}

impl NoRouteCode {
    /// Every code, for tables.
    pub const ALL: [NoRouteCode; 4] = [
        NoRouteCode::NoRoutesFound,
        NoRouteCode::CouldNotFindAnyRoute,
        NoRouteCode::TokenNotTradable,
        NoRouteCode::RoutePlanDoesNotConsumeAllTheAmount,
    ];

    /// The code as Jupiter spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            NoRouteCode::NoRoutesFound => "NO_ROUTES_FOUND",
            NoRouteCode::CouldNotFindAnyRoute => "COULD_NOT_FIND_ANY_ROUTE",
            NoRouteCode::TokenNotTradable => "TOKEN_NOT_TRADABLE",
            NoRouteCode::RoutePlanDoesNotConsumeAllTheAmount => {
                "ROUTE_PLAN_DOES_NOT_CONSUME_ALL_THE_AMOUNT"
            }
        }
    }

    /// The code whose spelling is exactly `code`.
    #[must_use]
    pub fn from_error_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }
}

impl fmt::Display for NoRouteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a swap's `simulationError` says, decoded from the canonical form Solana prints its
/// typed `TransactionError` in (see [`crate::simulation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimulatedFailure {
    /// `InstructionError(instruction, Custom(code))`: a program's own error code.
    ProgramError {
        /// Index of the failing instruction.
        instruction: u8,
        /// The program's error number (Jupiter's 6001 is slippage tolerance exceeded).
        code: u32,
    },
    /// `InstructionError(instruction, InsufficientFunds)`.
    InstructionInsufficientFunds {
        /// Index of the failing instruction.
        instruction: u8,
    },
    /// `InsufficientFundsForFee`: the fee payer cannot pay the fee.
    InsufficientFundsForFee,
    /// A failure this adapter does not decode.
    Unrecognized,
}

/// Jupiter's swap program: slippage tolerance exceeded.
pub const JUPITER_SLIPPAGE_TOLERANCE_EXCEEDED: u32 = 6001;
/// Jupiter's swap program: exact-out amount not matched (a slippage failure).
pub const JUPITER_EXACT_OUT_AMOUNT_NOT_MATCHED: u32 = 6017;
/// Jupiter's swap program: insufficient funds for the swap, the fees or the rent.
pub const JUPITER_INSUFFICIENT_FUNDS: u32 = 6024;

impl SimulatedFailure {
    /// The domain class of the failure.
    #[must_use]
    pub const fn class(self) -> ErrorClass {
        match self {
            SimulatedFailure::ProgramError {
                code: JUPITER_SLIPPAGE_TOLERANCE_EXCEEDED | JUPITER_EXACT_OUT_AMOUNT_NOT_MATCHED,
                ..
            } => ErrorClass::SlippageExceeded,
            SimulatedFailure::ProgramError {
                code: JUPITER_INSUFFICIENT_FUNDS,
                ..
            }
            | SimulatedFailure::InstructionInsufficientFunds { .. }
            | SimulatedFailure::InsufficientFundsForFee => ErrorClass::InsufficientFunds,
            SimulatedFailure::ProgramError { .. } | SimulatedFailure::Unrecognized => {
                ErrorClass::Unknown
            }
        }
    }

    /// The program error code, when there is one.
    #[must_use]
    pub const fn program_code(self) -> Option<u32> {
        match self {
            SimulatedFailure::ProgramError { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Why a swap transaction from Jupiter was refused before reaching the signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxCheckError {
    /// `swapTransaction` is not base64.
    #[error("swapTransaction is not base64: {reason}")]
    Base64 {
        /// The decoder's reason.
        reason: String,
    },
    /// The bytes are longer than a Solana packet can carry.
    #[error("transaction is {len} bytes, more than the {limit}-byte packet limit")]
    TooLarge {
        /// Decoded length.
        len: usize,
        /// The packet limit.
        limit: usize,
    },
    /// The bytes are not exactly one versioned transaction.
    #[error("not a versioned transaction: {reason}")]
    Malformed {
        /// The decoder's reason.
        reason: String,
    },
    /// The transaction does not pass Solana's sanitization.
    #[error("transaction fails sanitization: {reason}")]
    Unsanitary {
        /// The sanitizer's reason.
        reason: String,
    },
    /// The transaction asks for no signature at all.
    #[error("transaction has no signature slot")]
    NoSignatureSlot,
    /// A signature slot already holds a signature: not the unsigned transaction we expect.
    #[error("signature slot {index} is already filled")]
    SignatureSlotFilled {
        /// The slot's index.
        index: usize,
    },
    /// The fee payer is not our wallet.
    #[error("fee payer {found} is not our wallet {expected}")]
    FeePayerMismatch {
        /// Our wallet, base58.
        expected: String,
        /// The transaction's fee payer, base58.
        found: String,
    },
    /// An instruction needs a signature from an account other than our wallet.
    #[error("instruction needs a signature from {account}, not our wallet")]
    ForeignSigner {
        /// The account, base58.
        account: String,
    },
}

impl TxCheckError {
    /// The domain class: a transaction our wallet cannot sign as it is is a signature
    /// failure; bytes that are not a transaction are unknown.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            TxCheckError::Unsanitary { .. }
            | TxCheckError::NoSignatureSlot
            | TxCheckError::SignatureSlotFilled { .. }
            | TxCheckError::FeePayerMismatch { .. }
            | TxCheckError::ForeignSigner { .. } => ErrorClass::SignatureFailure,
            TxCheckError::Base64 { .. }
            | TxCheckError::TooLarge { .. }
            | TxCheckError::Malformed { .. } => ErrorClass::Unknown,
        }
    }
}

/// Everything that can go wrong talking to Jupiter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JupiterError {
    /// The configuration cannot work; says which field, never its secret value.
    #[error("invalid Jupiter configuration: {field}: {reason}")]
    Config {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Jupiter has no route for this pair and size: permanent for that size.
    #[error("no route (HTTP {status}, {code}): {body}")]
    NoRoute {
        /// HTTP status.
        status: u16,
        /// Jupiter's `errorCode`.
        code: NoRouteCode,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// HTTP 429.
    #[error("rate limited (HTTP 429, retry after {retry_after:?}): {body}")]
    RateLimited {
        /// From `Retry-After` or `x-ratelimit-reset`, when either parsed.
        retry_after: Option<Duration>,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// HTTP 401 or 403: the API key is missing, wrong or not allowed this.
    #[error("unauthorized (HTTP {status}): {body}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// Any other 4xx: Jupiter refused the request as we built it.
    #[error("bad request (HTTP {status}, errorCode {code:?}): {body}")]
    BadRequest {
        /// HTTP status.
        status: u16,
        /// Jupiter's `errorCode`, when the body had one.
        code: Option<String>,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// HTTP 5xx: Jupiter or its gateway is failing; transient.
    #[error("server error (HTTP {status}): {body}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// A status outside 2xx, 4xx and 5xx (a redirect is never followed: it would carry the
    /// API key elsewhere).
    #[error("unexpected HTTP status {status}: {body}")]
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// No complete answer within the request timeout.
    #[error("no answer within {timeout:?}")]
    Timeout {
        /// The configured request timeout.
        timeout: Duration,
    },
    /// The connection could not be made.
    #[error("could not connect: {source}")]
    Connect {
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed while the request or the answer was on the wire.
    #[error("transport failed: {source}")]
    Transport {
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer larger than the configured limit; it was not read past the limit.
    #[error("HTTP {status} body larger than {limit} bytes (declared length {declared:?})")]
    BodyTooLarge {
        /// HTTP status.
        status: u16,
        /// The configured limit.
        limit: usize,
        /// The `Content-Length` the server declared, if any.
        declared: Option<u64>,
    },
    /// A successful answer that is not JSON by its `Content-Type`.
    #[error("HTTP {status} answer has content type {content_type:?}, not JSON: {body}")]
    WrongContentType {
        /// HTTP status.
        status: u16,
        /// The `Content-Type` header, if any.
        content_type: Option<String>,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// A successful answer that does not decode: bad or truncated JSON, wrong types,
    /// missing fields, unparsable amounts or keys.
    #[error("undecodable HTTP {status} answer: {reason}: {body}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What failed to decode.
        reason: String,
        /// Start of the body.
        body: BodyExcerpt,
    },
    /// A quote that does not answer what was asked (another mint, amount, mode or slippage).
    #[error("quote does not answer the request: {field} is {got}, expected {expected}")]
    QuoteMismatch {
        /// The quote field.
        field: &'static str,
        /// What was asked.
        expected: String,
        /// What came back.
        got: String,
    },
    /// The quote to post back to `/swap` is not a JSON document.
    #[error("quote to post back is not JSON: {reason}")]
    InvalidQuote {
        /// The parser's reason.
        reason: String,
    },
    /// Jupiter simulated the swap and it failed.
    #[error("swap simulation failed ({error_code}, {failure:?}): {message}")]
    Simulation {
        /// Jupiter's `simulationError.errorCode`.
        error_code: String,
        /// The decoded failure.
        failure: SimulatedFailure,
        /// Start of `simulationError.error`.
        message: BodyExcerpt,
    },
    /// The swap transaction failed its checks.
    #[error("swap transaction refused: {0}")]
    Transaction(#[from] TxCheckError),
    /// The price answer has no usable entry for the mint.
    #[error("no price for mint {mint}")]
    PriceMissing {
        /// The mint asked for.
        mint: String,
    },
    /// A swap asked to be built on a durable nonce: v1's `/swap` returns Jupiter's own
    /// whole transaction, on Jupiter's blockhash, which cannot carry a nonce's advance.
    #[error(
        "v1 /swap cannot build on a durable nonce (Jupiter's transaction carries its own blockhash); use the Swap API v2 router"
    )]
    NonceUnsupported,
    /// The price answer's value is zero, negative or not finite.
    #[error("invalid price {value} for mint {mint}")]
    InvalidPrice {
        /// The mint asked for.
        mint: String,
        /// The value received.
        value: f64,
    },
}

impl JupiterError {
    /// The domain class the executor decides on.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            JupiterError::NoRoute { .. } => ErrorClass::NoRoute,
            JupiterError::RateLimited { .. } => ErrorClass::RateLimited,
            JupiterError::Server { .. } => ErrorClass::NodeUnhealthy,
            JupiterError::Timeout { .. } => ErrorClass::RpcTimeout,
            JupiterError::Connect { .. } | JupiterError::Transport { .. } => ErrorClass::Network,
            JupiterError::Simulation { failure, .. } => failure.class(),
            JupiterError::Transaction(check) => check.class(),
            JupiterError::Config { .. }
            | JupiterError::Unauthorized { .. }
            | JupiterError::BadRequest { .. }
            | JupiterError::UnexpectedStatus { .. }
            | JupiterError::BodyTooLarge { .. }
            | JupiterError::WrongContentType { .. }
            | JupiterError::Decode { .. }
            | JupiterError::QuoteMismatch { .. }
            | JupiterError::InvalidQuote { .. }
            | JupiterError::PriceMissing { .. }
            | JupiterError::NonceUnsupported
            | JupiterError::InvalidPrice { .. } => ErrorClass::Unknown,
        }
    }

    /// How long Jupiter asked us to wait, when it said.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JupiterError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The remote's code: the HTTP status of an HTTP failure, the program error code of a
    /// failed simulation.
    #[must_use]
    pub fn code(&self) -> Option<i64> {
        match self {
            JupiterError::NoRoute { status, .. }
            | JupiterError::Unauthorized { status, .. }
            | JupiterError::BadRequest { status, .. }
            | JupiterError::Server { status, .. }
            | JupiterError::UnexpectedStatus { status, .. }
            | JupiterError::BodyTooLarge { status, .. }
            | JupiterError::WrongContentType { status, .. }
            | JupiterError::Decode { status, .. } => Some(i64::from(*status)),
            JupiterError::RateLimited { .. } => Some(429),
            JupiterError::Simulation { failure, .. } => failure.program_code().map(i64::from),
            _ => None,
        }
    }

    /// This error as the port reports it for `operation` (e.g. `"jupiter.quote"`).
    #[must_use]
    pub fn to_port_error(&self, operation: &'static str) -> PortError {
        PortError {
            operation,
            class: self.class(),
            retry_after: self.retry_after(),
            code: self.code(),
            detail: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_at_most_the_limit_and_the_total_length() {
        let body = vec![b'x'; 100_000];
        let excerpt = BodyExcerpt::new(&body);
        assert_eq!(excerpt.as_str().len(), BODY_EXCERPT_LIMIT);
        assert_eq!(excerpt.total_bytes(), 100_000);
        assert!(excerpt.is_truncated());
        assert!(excerpt.to_string().contains("100000"));
    }

    #[test]
    fn excerpt_cuts_on_a_character_boundary() {
        // 511 ASCII bytes then a 3-byte character straddling the limit.
        let mut body = vec![b'a'; BODY_EXCERPT_LIMIT - 1];
        body.extend_from_slice("€€".as_bytes());
        let excerpt = BodyExcerpt::new(&body);
        assert_eq!(excerpt.as_str(), "a".repeat(BODY_EXCERPT_LIMIT - 1));
    }

    #[test]
    fn excerpt_of_invalid_utf8_stays_within_the_limit() {
        let body = vec![0xFF; 2 * BODY_EXCERPT_LIMIT];
        let excerpt = BodyExcerpt::new(&body);
        assert!(excerpt.as_str().len() <= BODY_EXCERPT_LIMIT);
        assert!(!excerpt.as_str().is_empty());
    }

    #[test]
    fn short_excerpt_is_whole_and_not_truncated() {
        let excerpt = BodyExcerpt::new(br#"{"error":"x"}"#);
        assert_eq!(excerpt.as_str(), r#"{"error":"x"}"#);
        assert!(!excerpt.is_truncated());
    }

    #[test]
    fn no_route_codes_match_exactly_and_only_exactly() {
        for code in NoRouteCode::ALL {
            assert_eq!(NoRouteCode::from_error_code(code.as_str()), Some(code));
        }
        assert_eq!(NoRouteCode::from_error_code("no_routes_found"), None);
        assert_eq!(NoRouteCode::from_error_code("NO_ROUTES_FOUND "), None);
        assert_eq!(NoRouteCode::from_error_code("INVALID_AMOUNT"), None);
    }

    #[test]
    fn simulated_failures_have_the_documented_classes() {
        use SimulatedFailure::*;
        let table = [
            (
                ProgramError {
                    instruction: 3,
                    code: 6001,
                },
                ErrorClass::SlippageExceeded,
                Some(6001),
            ),
            (
                ProgramError {
                    instruction: 3,
                    code: 6017,
                },
                ErrorClass::SlippageExceeded,
                Some(6017),
            ),
            (
                ProgramError {
                    instruction: 1,
                    code: 6024,
                },
                ErrorClass::InsufficientFunds,
                Some(6024),
            ),
            (
                ProgramError {
                    instruction: 2,
                    code: 6025,
                },
                ErrorClass::Unknown,
                Some(6025),
            ),
            (
                InstructionInsufficientFunds { instruction: 0 },
                ErrorClass::InsufficientFunds,
                None,
            ),
            (InsufficientFundsForFee, ErrorClass::InsufficientFunds, None),
            (Unrecognized, ErrorClass::Unknown, None),
        ];
        for (failure, class, code) in table {
            assert_eq!(failure.class(), class, "{failure:?}");
            assert_eq!(failure.program_code(), code, "{failure:?}");
        }
    }

    #[test]
    fn port_error_carries_class_code_and_retry_after() {
        let err = JupiterError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            body: BodyExcerpt::new(b"slow down"),
        };
        let port = err.to_port_error("jupiter.quote");
        assert_eq!(port.operation, "jupiter.quote");
        assert_eq!(port.class, ErrorClass::RateLimited);
        assert_eq!(port.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(port.code, Some(429));

        let err = JupiterError::Simulation {
            error_code: "TRANSACTION_ERROR".to_owned(),
            failure: SimulatedFailure::ProgramError {
                instruction: 3,
                code: 6001,
            },
            message: BodyExcerpt::default(),
        };
        let port = err.to_port_error("jupiter.swap");
        assert_eq!(port.class, ErrorClass::SlippageExceeded);
        assert_eq!(port.code, Some(6001));
        assert_eq!(port.retry_after, None);
    }

    #[test]
    fn http_failures_have_the_documented_classes() {
        let body = BodyExcerpt::default;
        let table = [
            (
                JupiterError::NoRoute {
                    status: 400,
                    code: NoRouteCode::NoRoutesFound,
                    body: body(),
                },
                ErrorClass::NoRoute,
            ),
            (
                JupiterError::Unauthorized {
                    status: 401,
                    body: body(),
                },
                ErrorClass::Unknown,
            ),
            (
                JupiterError::BadRequest {
                    status: 400,
                    code: None,
                    body: body(),
                },
                ErrorClass::Unknown,
            ),
            (
                JupiterError::Server {
                    status: 503,
                    body: body(),
                },
                ErrorClass::NodeUnhealthy,
            ),
            (
                JupiterError::Timeout {
                    timeout: Duration::from_secs(1),
                },
                ErrorClass::RpcTimeout,
            ),
            (
                JupiterError::BodyTooLarge {
                    status: 200,
                    limit: 1,
                    declared: None,
                },
                ErrorClass::Unknown,
            ),
            (
                JupiterError::Transaction(TxCheckError::FeePayerMismatch {
                    expected: "a".into(),
                    found: "b".into(),
                }),
                ErrorClass::SignatureFailure,
            ),
            (
                JupiterError::Transaction(TxCheckError::Base64 { reason: "x".into() }),
                ErrorClass::Unknown,
            ),
        ];
        for (err, class) in table {
            assert_eq!(err.class(), class, "{err}");
        }
    }
}
