//! `[latency_breaker]` and `[exit_breaker]`.

use kyzlo_domain::latency_breaker::LatencyBreakerConfig;
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, domain, invalid, millis, positive_ms, positive_secs};

/// `[exit_breaker]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitBreakerFile {
    /// Consecutive failed exits that halt trading.
    pub threshold: u32,
}

impl ExitBreakerFile {
    pub(crate) fn validate(&self) -> Result<u32, ConfigError> {
        if self.threshold == 0 {
            return Err(invalid("exit_breaker.threshold", 0, "at least 1"));
        }
        Ok(self.threshold)
    }
}

/// `[halt]` as written: what a halt does besides stopping entries and automatic exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaltFile {
    /// A position whose stop fires while halted: `on_recovery` retries its exit on the
    /// widest rung once the chain answers (alerting on each try, with backoff, until it
    /// closes or `kyzlo hold ID`); `operator_only` leaves it to an operator.
    pub protective_exits: ProtectiveExitsFile,
}

/// `halt.protective_exits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectiveExitsFile {
    /// Retried once the chain answers.
    #[default]
    OnRecovery,
    /// Left to an operator.
    OperatorOnly,
}

impl ProtectiveExitsFile {
    pub(crate) fn validate(self) -> kyzlo_application::orchestrator::ProtectiveExits {
        use kyzlo_application::orchestrator::ProtectiveExits;
        match self {
            Self::OnRecovery => ProtectiveExits::OnRecovery,
            Self::OperatorOnly => ProtectiveExits::OperatorOnly,
        }
    }
}

/// `[latency_breaker]` as written: one breaker per dependency, each with these limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyBreakerFile {
    /// A run of failed calls this long opens it.
    pub failure_threshold: u32,
    /// A failed share of the window this high opens it.
    pub error_rate_threshold: f64,
    /// Calls needed before the failed share counts.
    pub min_calls: u32,
    /// Calls in the failed-share window.
    pub outcome_window: u32,
    /// A p99 latency this high opens it.
    pub p99_threshold_ms: u64,
    /// Latencies in the p99 window.
    pub latency_window: usize,
    /// Latencies needed before the p99 counts.
    pub min_latency_samples: usize,
    /// Open this long, it lets probes through (half-open).
    pub recovery_timeout_s: f64,
    /// Probes let through while half-open.
    pub half_open_max_probes: u32,
    /// A probe unanswered this long failed.
    pub probe_timeout_s: f64,
}

impl Default for LatencyBreakerFile {
    fn default() -> Self {
        let d = LatencyBreakerConfig::default();
        Self {
            failure_threshold: d.failure_threshold,
            error_rate_threshold: d.error_rate_threshold,
            min_calls: d.min_calls,
            outcome_window: d.outcome_window,
            p99_threshold_ms: millis(d.p99_threshold),
            latency_window: d.latency_window,
            min_latency_samples: d.min_latency_samples,
            recovery_timeout_s: d.recovery_timeout.as_secs_f64(),
            half_open_max_probes: d.half_open_max_probes,
            probe_timeout_s: d.probe_timeout.as_secs_f64(),
        }
    }
}

impl LatencyBreakerFile {
    pub(crate) fn validate(&self) -> Result<LatencyBreakerConfig, ConfigError> {
        let config = LatencyBreakerConfig {
            failure_threshold: self.failure_threshold,
            error_rate_threshold: self.error_rate_threshold,
            min_calls: self.min_calls,
            outcome_window: self.outcome_window,
            p99_threshold: positive_ms("latency_breaker.p99_threshold_ms", self.p99_threshold_ms)?,
            latency_window: self.latency_window,
            min_latency_samples: self.min_latency_samples,
            recovery_timeout: positive_secs(
                "latency_breaker.recovery_timeout_s",
                self.recovery_timeout_s,
            )?,
            half_open_max_probes: self.half_open_max_probes,
            probe_timeout: positive_secs("latency_breaker.probe_timeout_s", self.probe_timeout_s)?,
            ..LatencyBreakerConfig::default()
        };
        config
            .validate()
            .map_err(|err| domain(err, "latency_breaker", self))?;
        Ok(config)
    }
}
