//! The closed error taxonomy every adapter maps into, the decision taken for each class,
//! and the domain's own validation errors.

use core::fmt;
use core::time::Duration;

/// The class of a failure seen while talking to the chain or the router.
///
/// The set is closed on purpose: adapters convert their typed errors (HTTP status,
/// JSON-RPC code, `TransactionError`, program error code) into exactly one class, and
/// every service decides on the class alone. Nothing is classified by message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// A request got no answer in time; a sent transaction may still land.
    RpcTimeout,
    /// The connection failed or was reset; a sent transaction may still land.
    Network,
    /// The endpoint refused for rate (HTTP 429); `retry_after` when the endpoint said.
    RateLimited,
    /// The node is unhealthy or behind (JSON-RPC -32005, -32016 and kin).
    NodeUnhealthy,
    /// The transaction's blockhash is no longer valid: it can never land.
    BlockhashExpired,
    /// The transaction landed and failed on chain: it is resolved, nothing moved.
    LandedFailed,
    /// The swap's slippage tolerance was exceeded (e.g. Jupiter program error 6001).
    SlippageExceeded,
    /// The router found no route for this pair and size.
    NoRoute,
    /// The wallet lacks the tokens or the SOL for fees.
    InsufficientFunds,
    /// An account is missing or of the wrong kind.
    InvalidAccount,
    /// The transaction failed signature verification or sanitization.
    SignatureFailure,
    /// Anything the adapter could not place: treated as permanent.
    Unknown,
}

/// What to do after a failure of a given class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorDecision {
    /// The attempt may still land: send the same signed bytes again, never new ones.
    ResendSameBytes,
    /// A transient refusal: wait (at least any retry-after) and repeat the same call.
    Retry,
    /// The attempt is resolved and cannot land: quote again on the next, wider rung.
    RequoteEscalate,
    /// Permanent: stop, alert, and leave the position to an operator.
    GiveUp,
}

impl ErrorClass {
    /// Every class, for exhaustive tables and metrics labels.
    pub const ALL: [ErrorClass; 12] = [
        ErrorClass::RpcTimeout,
        ErrorClass::Network,
        ErrorClass::RateLimited,
        ErrorClass::NodeUnhealthy,
        ErrorClass::BlockhashExpired,
        ErrorClass::LandedFailed,
        ErrorClass::SlippageExceeded,
        ErrorClass::NoRoute,
        ErrorClass::InsufficientFunds,
        ErrorClass::InvalidAccount,
        ErrorClass::SignatureFailure,
        ErrorClass::Unknown,
    ];

    /// The decision for this class.
    #[must_use]
    pub const fn decision(self) -> ErrorDecision {
        match self {
            ErrorClass::RpcTimeout | ErrorClass::Network => ErrorDecision::ResendSameBytes,
            ErrorClass::RateLimited | ErrorClass::NodeUnhealthy => ErrorDecision::Retry,
            ErrorClass::BlockhashExpired
            | ErrorClass::LandedFailed
            | ErrorClass::SlippageExceeded => ErrorDecision::RequoteEscalate,
            ErrorClass::NoRoute
            | ErrorClass::InsufficientFunds
            | ErrorClass::InvalidAccount
            | ErrorClass::SignatureFailure
            | ErrorClass::Unknown => ErrorDecision::GiveUp,
        }
    }

    /// Whether a call that failed with this class may be made again.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        !matches!(self.decision(), ErrorDecision::GiveUp)
    }

    /// Whether a transaction whose send or confirmation failed with this class may still
    /// land on chain (so no new transaction may be built for its intent yet).
    #[must_use]
    pub const fn may_still_land(self) -> bool {
        matches!(
            self,
            ErrorClass::RpcTimeout
                | ErrorClass::Network
                | ErrorClass::RateLimited
                | ErrorClass::NodeUnhealthy
                | ErrorClass::Unknown
        )
    }

    /// A stable snake_case name for logs, metrics and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RpcTimeout => "rpc_timeout",
            ErrorClass::Network => "network",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::NodeUnhealthy => "node_unhealthy",
            ErrorClass::BlockhashExpired => "blockhash_expired",
            ErrorClass::LandedFailed => "landed_failed",
            ErrorClass::SlippageExceeded => "slippage_exceeded",
            ErrorClass::NoRoute => "no_route",
            ErrorClass::InsufficientFunds => "insufficient_funds",
            ErrorClass::InvalidAccount => "invalid_account",
            ErrorClass::SignatureFailure => "signature_failure",
            ErrorClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure: the class plus what the adapter knew of timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifiedError {
    /// The class.
    pub class: ErrorClass,
    /// How long the remote asked us to wait, when it said (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ClassifiedError {
    /// A failure of `class` with no retry-after.
    #[must_use]
    pub const fn new(class: ErrorClass) -> Self {
        Self {
            class,
            retry_after: None,
        }
    }
}

/// A value or configuration the domain refuses to build.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DomainError {
    /// A price that is NaN, infinite, zero or negative.
    InvalidPrice {
        /// The rejected value.
        value: f64,
    },
    /// A position or order size of zero.
    ZeroSize,
    /// Basis points above 10,000.
    BpsOutOfRange {
        /// The rejected value.
        bps: u32,
    },
    /// A slippage tolerance of zero or above 10,000 bps.
    InvalidSlippage {
        /// The rejected value.
        bps: u32,
    },
    /// A position fraction of zero or above 10,000 bps.
    InvalidFraction {
        /// The rejected value.
        bps: u32,
    },
    /// A written amount that cannot be a token amount.
    InvalidAmount {
        /// Why.
        why: &'static str,
    },
    /// A configuration value outside what the rule allows.
    InvalidConfig {
        /// The field, as named in the configuration (e.g. `exit_retry.max_attempts`).
        field: &'static str,
        /// What is allowed.
        expected: &'static str,
    },
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::InvalidPrice { value } => {
                write!(f, "invalid price {value}: must be finite and above zero")
            }
            DomainError::ZeroSize => f.write_str("size must be above zero"),
            DomainError::BpsOutOfRange { bps } => {
                write!(f, "{bps} bps is out of range: at most 10000")
            }
            DomainError::InvalidSlippage { bps } => {
                write!(f, "slippage of {bps} bps is invalid: 1 to 10000")
            }
            DomainError::InvalidFraction { bps } => {
                write!(f, "fraction of {bps} bps is invalid: 1 to 10000")
            }
            DomainError::InvalidAmount { why } => write!(f, "invalid amount: {why}"),
            DomainError::InvalidConfig { field, expected } => {
                write!(f, "invalid value for {field}: expected {expected}")
            }
        }
    }
}

impl std::error::Error for DomainError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_the_documented_decision() {
        use ErrorClass::*;
        use ErrorDecision::*;
        let table = [
            (RpcTimeout, ResendSameBytes, true),
            (Network, ResendSameBytes, true),
            (RateLimited, Retry, true),
            (NodeUnhealthy, Retry, true),
            (BlockhashExpired, RequoteEscalate, false),
            (LandedFailed, RequoteEscalate, false),
            (SlippageExceeded, RequoteEscalate, false),
            (NoRoute, GiveUp, false),
            (InsufficientFunds, GiveUp, false),
            (InvalidAccount, GiveUp, false),
            (SignatureFailure, GiveUp, false),
            (Unknown, GiveUp, true),
        ];
        assert_eq!(table.len(), ErrorClass::ALL.len());
        for (class, decision, may_land) in table {
            assert_eq!(class.decision(), decision, "{class}");
            assert_eq!(class.may_still_land(), may_land, "{class}");
            assert_eq!(class.is_retryable(), decision != GiveUp, "{class}");
        }
    }

    #[test]
    fn class_names_are_unique() {
        let mut names: Vec<_> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorClass::ALL.len());
    }
}
