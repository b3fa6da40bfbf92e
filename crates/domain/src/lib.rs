//! kyzlo's domain: the trading and exit-defense rules as pure, synchronous values.
//!
//! Nothing here performs I/O, reads a clock, sleeps or draws randomness: time comes in
//! as a [`Timestamp`] argument, random draws as `u64` arguments, and every decision is
//! returned as a value. The crate has no dependencies.
#![forbid(unsafe_code)]

pub mod error;
pub mod types;

pub use error::{ClassifiedError, DomainError, ErrorClass, ErrorDecision};
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
