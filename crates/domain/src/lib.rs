//! kyzlo's domain: the trading and exit-defense rules as pure, synchronous values.
//!
//! Nothing here performs I/O, reads a clock, sleeps or draws randomness: time comes in
//! as a [`Timestamp`] argument, random draws as `u64` arguments, and every decision is
//! returned as a value. The crate has no dependencies.
#![forbid(unsafe_code)]

pub mod budget;
pub mod deadline;
pub mod error;
pub mod exit_breaker;
pub mod exit_plan;
pub mod exit_state;
pub mod ladder;
pub mod latency_breaker;
pub mod latency_stats;
pub mod retry;
pub mod strategy;
pub mod trading_state;
pub mod types;

pub use deadline::{DeadlineExceeded, ExitDeadline};
pub use error::{ClassifiedError, DomainError, ErrorClass, ErrorDecision};
pub use exit_breaker::{ExitBreaker, ExitBreakerDecision};
pub use exit_plan::{ExitPlan, ExitPlanConfig, TakeProfitRung};
pub use exit_state::{
    ExitEvent, ExitFailure, ExitState, ExitStateMachine, InvalidTransition, LiveAttempt,
};
pub use ladder::{EscalationLadder, OrderStyle, Rung};
pub use latency_breaker::{
    Admission, BreakerSnapshot, BreakerState, CallOutcome, Generation, LatencyBreaker,
    LatencyBreakerConfig, Permit, StateChange, TripCause,
};
pub use latency_stats::{LatencySnapshot, RollingLatency};
pub use retry::{AttemptGrant, GiveUpReason, RetryBudget, RetryDecision, RetryPolicy};
pub use strategy::{MeanReversion, MeanReversionConfig, RoundTripCost};
pub use trading_state::{
    HaltCause, HaltOutcome, HaltReason, NotHalted, ReduceOnlyCause, TradingState,
};
pub use types::{
    Bps, ExitIntent, ExitKind, Fraction, IntentId, Lamports, PositionId, PositionState, Price,
    Size, Slippage, Timestamp, TokenAmount, TradeIntent, TxSignature,
};

/// Turns 64 random bits into a uniform draw in `[0, 1)`: how callers pass randomness in.
#[must_use]
pub fn unit_interval(random: u64) -> f64 {
    // 53 high bits fill an f64 mantissa exactly.
    (random >> 11) as f64 / (1u64 << 53) as f64
}
