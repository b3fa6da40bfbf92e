//! What the breaker is told and what it answers: admissions and their permits, call
//! outcomes, trip causes, state changes, snapshots, and the window of recent outcomes.

use super::*;

/// Identifies one stretch of the breaker between two state transitions; an outcome carries the
/// generation it was admitted in, so one that started before a transition can be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generation(pub(super) u64);

impl Generation {
    /// The raw counter, for logs.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// Leave to make one call; hand its generation back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// The generation the call was admitted in.
    pub generation: Generation,
    /// Whether the call is a half-open recovery probe.
    pub probe: bool,
}

/// The answer to [`LatencyBreaker::admit`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The call may go ahead.
    Admitted(Permit),
    /// The call must not be made now.
    Rejected {
        /// The state that refused it.
        state: BreakerState,
    },
}

impl Admission {
    /// The permit, when admitted.
    #[must_use]
    pub const fn permit(self) -> Option<Permit> {
        match self {
            Admission::Admitted(permit) => Some(permit),
            Admission::Rejected { .. } => None,
        }
    }

    /// Whether the call may go ahead.
    #[must_use]
    pub const fn is_admitted(self) -> bool {
        matches!(self, Admission::Admitted(_))
    }
}

/// How a call ended, with how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The call succeeded.
    Success {
        /// Its duration.
        latency: Duration,
    },
    /// The call failed (an error or a timeout).
    Failure {
        /// Its duration.
        latency: Duration,
    },
}

impl CallOutcome {
    /// The call's duration.
    #[must_use]
    pub const fn latency(self) -> Duration {
        match self {
            CallOutcome::Success { latency } | CallOutcome::Failure { latency } => latency,
        }
    }

    /// Whether the call failed.
    #[must_use]
    pub const fn is_failure(self) -> bool {
        matches!(self, CallOutcome::Failure { .. })
    }
}

/// Why the breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripCause {
    /// Closed -> Open: this many failures in a row.
    ConsecutiveFailures {
        /// Failures in a row.
        count: u32,
    },
    /// Closed -> Open: the error rate over the outcome window, in per mille.
    ErrorRate {
        /// Failures per thousand outcomes.
        rate_permille: u32,
    },
    /// Closed -> Open: the P99 of the latency window.
    P99Latency {
        /// The P99 that was over the threshold.
        p99: Duration,
    },
    /// Open -> HalfOpen: the recovery timeout passed.
    RecoveryTimeoutElapsed,
    /// HalfOpen -> Closed: every admitted probe succeeded.
    ProbesSucceeded,
    /// HalfOpen -> Open: a probe (or any call) failed, or succeeded slower than the P99
    /// threshold.
    ProbeFailed,
    /// HalfOpen -> Open: a probe was not reported within the probe timeout.
    ProbeTimedOut,
    /// Any -> Closed: an operator reset it.
    Reset,
    /// Closed -> Open: the bot restarted while the journal said a breaker was open, so
    /// recovery must be proven again before entries resume.
    Restored,
}

impl TripCause {
    /// A stable snake_case name for logs and metrics labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TripCause::ConsecutiveFailures { .. } => "consecutive_failures",
            TripCause::ErrorRate { .. } => "error_rate",
            TripCause::P99Latency { .. } => "p99_latency",
            TripCause::RecoveryTimeoutElapsed => "recovery_timeout_elapsed",
            TripCause::ProbesSucceeded => "probes_succeeded",
            TripCause::ProbeFailed => "probe_failed",
            TripCause::ProbeTimedOut => "probe_timed_out",
            TripCause::Reset => "reset",
            TripCause::Restored => "restored",
        }
    }
}

/// One state transition: the audit record the breaker returns and keeps for
/// [`LatencyBreaker::take_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    pub at: Timestamp,
    pub cause: TripCause,
}

/// The breaker's counters and windows at one moment, for metrics and `/status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Transitions since creation.
    pub state_changes: u64,
    /// Calls admitted (probes included).
    pub admitted: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Successful outcomes recorded (stale ones excluded).
    pub successes: u64,
    /// Failed outcomes recorded (stale ones excluded).
    pub failures: u64,
    /// Outcomes ignored because they started before a transition.
    pub stale_ignored: u64,
    /// Current run of failures.
    pub consecutive_failures: u32,
    /// Failures over outcomes in the outcome window (0 when empty).
    pub error_rate: f64,
    /// The latency window.
    pub latency: LatencySnapshot,
    /// Consecutive failed recoveries (half-open back to open) since the last close.
    pub recovery_attempts: u32,
}

/// The last `outcome_window` outcomes as a ring of failure flags with a running failure count.
#[derive(Debug, Clone)]
pub(super) struct OutcomeWindow {
    failed: Vec<bool>,
    next: usize,
    pub(super) len: usize,
    pub(super) failures: usize,
}

impl OutcomeWindow {
    pub(super) fn new(size: usize) -> Self {
        Self {
            failed: vec![false; size],
            next: 0,
            len: 0,
            failures: 0,
        }
    }

    pub(super) fn push(&mut self, failed: bool) {
        if self.len == self.failed.len() {
            if self.failed[self.next] {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        self.failed[self.next] = failed;
        self.failures += usize::from(failed);
        self.next = (self.next + 1) % self.failed.len();
    }

    pub(super) fn rate(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            self.failures as f64 / self.len as f64
        }
    }

    pub(super) fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.failures = 0;
    }
}
