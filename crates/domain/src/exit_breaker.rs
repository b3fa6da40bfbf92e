//! The exit circuit breaker: N consecutive failed exits (default 2) ask for a trading
//! halt; a successful exit resets the count.

use crate::error::DomainError;

/// Counts consecutive failed exits and trips at a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitBreaker {
    threshold: u32,
    consecutive: u32,
    tripped: bool,
}

/// What a recorded failure asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitBreakerDecision {
    /// Below the threshold: keep trading.
    Continue {
        /// Consecutive failed exits so far.
        consecutive: u32,
    },
    /// At or past the threshold: halt trading.
    HaltTrading {
        /// Consecutive failed exits so far.
        consecutive: u32,
    },
}

impl ExitBreaker {
    /// The default threshold: two consecutive failed exits.
    pub const DEFAULT_THRESHOLD: u32 = 2;

    /// A breaker tripping after `threshold` consecutive failed exits.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] on `exit_breaker.threshold` when it is zero.
    pub fn new(threshold: u32) -> Result<Self, DomainError> {
        if threshold == 0 {
            return Err(DomainError::InvalidConfig {
                field: "exit_breaker.threshold",
                expected: "at least 1",
            });
        }
        Ok(Self {
            threshold,
            consecutive: 0,
            tripped: false,
        })
    }

    /// A breaker that had counted `consecutive` failed exits before a restart (a count
    /// at or past the threshold is tripped).
    ///
    /// # Errors
    /// As [`ExitBreaker::new`].
    pub fn restored(threshold: u32, consecutive: u32) -> Result<Self, DomainError> {
        let mut breaker = Self::new(threshold)?;
        breaker.consecutive = consecutive;
        breaker.tripped = consecutive >= threshold;
        Ok(breaker)
    }

    /// A successful exit: resets the count and un-trips.
    pub fn record_success(&mut self) {
        self.consecutive = 0;
        self.tripped = false;
    }

    /// A failed exit: [`ExitBreakerDecision::HaltTrading`] for every failure at or past
    /// the threshold, [`ExitBreakerDecision::Continue`] below it.
    #[must_use]
    pub fn record_failure(&mut self) -> ExitBreakerDecision {
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive >= self.threshold {
            self.tripped = true;
            ExitBreakerDecision::HaltTrading {
                consecutive: self.consecutive,
            }
        } else {
            ExitBreakerDecision::Continue {
                consecutive: self.consecutive,
            }
        }
    }

    /// Whether the breaker has tripped (and not been reset since).
    #[must_use]
    pub fn is_tripped(&self) -> bool {
        self.tripped
    }

    /// Consecutive failed exits since the last success or reset.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// The number of consecutive failures that trips the breaker.
    #[must_use]
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// An operator's resume: clears the count and un-trips.
    pub fn reset(&mut self) {
        self.consecutive = 0;
        self.tripped = false;
    }
}

impl Default for ExitBreaker {
    fn default() -> Self {
        Self {
            threshold: Self::DEFAULT_THRESHOLD,
            consecutive: 0,
            tripped: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExitBreakerDecision::{Continue, HaltTrading};

    #[test]
    fn zero_threshold_is_refused_naming_the_key() {
        assert_eq!(
            ExitBreaker::new(0),
            Err(DomainError::InvalidConfig {
                field: "exit_breaker.threshold",
                expected: "at least 1"
            })
        );
        assert_eq!(ExitBreaker::default(), ExitBreaker::new(2).unwrap());
    }

    #[test]
    fn breaker_stays_closed_under_threshold() {
        let mut breaker = ExitBreaker::new(3).unwrap();
        assert_eq!(breaker.record_failure(), Continue { consecutive: 1 });
        assert_eq!(breaker.record_failure(), Continue { consecutive: 2 });
        assert!(!breaker.is_tripped());
    }

    #[test]
    fn breaker_opens_at_a_configured_threshold_of_three() {
        let mut breaker = ExitBreaker::new(3).unwrap();
        let _ = breaker.record_failure();
        let _ = breaker.record_failure();
        assert_eq!(breaker.record_failure(), HaltTrading { consecutive: 3 });
        assert!(breaker.is_tripped());
        assert_eq!(breaker.threshold(), 3);
    }

    /// Seed 5.5: repeated failed exits end in an emergency halt.
    #[test]
    fn exit_breaker_trips_after_two_consecutive_failures() {
        let mut breaker = ExitBreaker::default();
        assert_eq!(breaker.record_failure(), Continue { consecutive: 1 });
        assert!(!breaker.is_tripped());
        assert_eq!(breaker.record_failure(), HaltTrading { consecutive: 2 });
        assert!(breaker.is_tripped());
    }

    #[test]
    fn success_resets_the_count() {
        let mut breaker = ExitBreaker::new(2).unwrap();
        let _ = breaker.record_failure();
        breaker.record_success();
        assert_eq!(breaker.consecutive_failures(), 0);
        assert_eq!(breaker.record_failure(), Continue { consecutive: 1 });
        assert!(!breaker.is_tripped());
    }

    #[test]
    fn every_failure_past_the_threshold_keeps_asking_for_a_halt() {
        let mut breaker = ExitBreaker::new(1).unwrap();
        for consecutive in 1..=4 {
            assert_eq!(breaker.record_failure(), HaltTrading { consecutive });
            assert!(breaker.is_tripped());
        }
    }

    #[test]
    fn tripped_breaker_is_cleared_by_operator_reset_or_a_success() {
        let mut breaker = ExitBreaker::default();
        let _ = breaker.record_failure();
        let _ = breaker.record_failure();
        breaker.reset();
        assert!(!breaker.is_tripped());
        assert_eq!(breaker.consecutive_failures(), 0);
        let _ = breaker.record_failure();
        let _ = breaker.record_failure();
        breaker.record_success();
        assert!(!breaker.is_tripped());
    }

    #[test]
    fn count_saturates_instead_of_overflowing() {
        let mut breaker = ExitBreaker {
            consecutive: u32::MAX,
            ..ExitBreaker::default()
        };
        assert_eq!(
            breaker.record_failure(),
            HaltTrading {
                consecutive: u32::MAX
            }
        );
    }
}
