//! The breaker's limits and their validation.

use super::*;

/// The breaker's thresholds and timers (configuration keys `latency_breaker.<field>`).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBreakerConfig {
    /// Consecutive failures that open the breaker (default 5).
    pub failure_threshold: u32,
    /// Error rate over the outcome window that opens the breaker (default 0.5)...
    pub error_rate_threshold: f64,
    /// ...only once at least this many outcomes are in the window (default 20).
    pub min_calls: u32,
    /// How many recent outcomes the error rate looks at (default 100).
    pub outcome_window: u32,
    /// A P99 of the latency window above this opens the breaker (default 200 ms)...
    pub p99_threshold: Duration,
    /// Samples in the rolling latency window (default 1,000).
    pub latency_window: usize,
    /// ...only with at least this many samples (default 20).
    pub min_latency_samples: usize,
    /// Time from opening to half-open (default 30 s).
    pub recovery_timeout: Duration,
    /// Probes admitted in flight while half-open (default 3).
    pub half_open_max_probes: u32,
    /// A half-open probe not reported by then counts as failed (default 5 s).
    pub probe_timeout: Duration,
    /// First recovery health-probe delay ceiling (default 1 s).
    pub recovery_backoff_base: Duration,
    /// Largest recovery health-probe delay (default 300 s).
    pub recovery_backoff_max: Duration,
    /// Growth of the delay ceiling per failed recovery (default 2.0).
    pub recovery_backoff_multiplier: f64,
}

impl Default for LatencyBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            error_rate_threshold: 0.5,
            min_calls: 20,
            outcome_window: 100,
            p99_threshold: Duration::from_millis(200),
            latency_window: 1_000,
            min_latency_samples: 20,
            recovery_timeout: Duration::from_secs(30),
            half_open_max_probes: 3,
            probe_timeout: Duration::from_secs(5),
            recovery_backoff_base: Duration::from_secs(1),
            recovery_backoff_max: Duration::from_secs(300),
            recovery_backoff_multiplier: 2.0,
        }
    }
}

/// The largest outcome window, latency window and probe count accepted.
const MAX_WINDOW: u32 = 1_000_000;
const MAX_PROBES: u32 = 1_000;

pub(super) fn invalid(field: &'static str, expected: &'static str) -> DomainError {
    DomainError::InvalidConfig { field, expected }
}

impl LatencyBreakerConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] naming the first offending key, e.g.
    /// `latency_breaker.min_calls` when it is zero or above `outcome_window`.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.failure_threshold == 0 {
            return Err(invalid(
                "latency_breaker.failure_threshold",
                "an integer of at least 1",
            ));
        }
        let rate = self.error_rate_threshold;
        if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
            return Err(invalid(
                "latency_breaker.error_rate_threshold",
                "a number above 0 and at most 1",
            ));
        }
        if self.outcome_window == 0 || self.outcome_window > MAX_WINDOW {
            return Err(invalid(
                "latency_breaker.outcome_window",
                "an integer from 1 to 1000000",
            ));
        }
        if self.min_calls == 0 || self.min_calls > self.outcome_window {
            return Err(invalid(
                "latency_breaker.min_calls",
                "an integer from 1 to latency_breaker.outcome_window",
            ));
        }
        if self.p99_threshold.is_zero() {
            return Err(invalid(
                "latency_breaker.p99_threshold",
                "a duration above zero",
            ));
        }
        if self.latency_window == 0 || self.latency_window > MAX_WINDOW as usize {
            return Err(invalid(
                "latency_breaker.latency_window",
                "an integer from 1 to 1000000",
            ));
        }
        if self.min_latency_samples == 0 || self.min_latency_samples > self.latency_window {
            return Err(invalid(
                "latency_breaker.min_latency_samples",
                "an integer from 1 to latency_breaker.latency_window",
            ));
        }
        if self.recovery_timeout.is_zero() {
            return Err(invalid(
                "latency_breaker.recovery_timeout",
                "a duration above zero",
            ));
        }
        if self.half_open_max_probes == 0 || self.half_open_max_probes > MAX_PROBES {
            return Err(invalid(
                "latency_breaker.half_open_max_probes",
                "an integer from 1 to 1000",
            ));
        }
        if self.probe_timeout.is_zero() {
            return Err(invalid(
                "latency_breaker.probe_timeout",
                "a duration above zero",
            ));
        }
        if self.recovery_backoff_base.is_zero() {
            return Err(invalid(
                "latency_breaker.recovery_backoff_base",
                "a duration above zero",
            ));
        }
        if self.recovery_backoff_max < self.recovery_backoff_base {
            return Err(invalid(
                "latency_breaker.recovery_backoff_max",
                "a duration of at least latency_breaker.recovery_backoff_base",
            ));
        }
        let m = self.recovery_backoff_multiplier;
        if !(m.is_finite() && m >= 1.0) {
            return Err(invalid(
                "latency_breaker.recovery_backoff_multiplier",
                "a finite number of at least 1",
            ));
        }
        Ok(())
    }
}
