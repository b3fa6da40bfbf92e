//! The latency circuit breaker: stops new entries when calls fail or the P99 latency is too high,
//! and lets a bounded number of probes test recovery.
//!
//! A synchronous state machine in the quinn-proto style: time comes in as `now`, timers are
//! applied by [`LatencyBreaker::handle_timeout`] and announced by
//! [`LatencyBreaker::poll_timeout`], and every state change is returned as a value and kept for
//! [`LatencyBreaker::take_events`]. Nothing here reads a clock or sleeps.

use core::fmt;
use core::time::Duration;

use crate::error::DomainError;
use crate::latency_stats::{LatencySnapshot, RollingLatency};
use crate::types::Timestamp;
use crate::unit_interval;

mod config;
mod outcome;

pub use config::LatencyBreakerConfig;
use config::invalid;
use outcome::OutcomeWindow;
pub use outcome::{
    Admission, BreakerSnapshot, CallOutcome, Generation, Permit, StateChange, TripCause,
};

/// State changes kept for [`LatencyBreaker::take_events`]; older ones are dropped beyond this
/// so a caller that never takes them cannot grow memory without bound.
pub const MAX_PENDING_EVENTS: usize = 1_024;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Healthy: every call is admitted.
    Closed,
    /// Tripped: calls are rejected until the recovery timeout has passed.
    Open,
    /// Testing recovery: a bounded number of probe calls are admitted.
    HalfOpen,
}

impl BreakerState {
    /// A stable snake_case name for logs, metrics and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latency circuit breaker; see the module documentation.
///
/// Admission in Closed touches two counters and allocates nothing; a `Vec` grows only when a
/// state change is kept for [`take_events`](Self::take_events).
#[derive(Debug, Clone)]
pub struct LatencyBreaker {
    config: LatencyBreakerConfig,
    state: BreakerState,
    generation: u64,
    opened_at: Timestamp,
    /// Admission times of the probes in flight in this half-open period, oldest first.
    probes: Vec<Timestamp>,
    consecutive_failures: u32,
    outcomes: OutcomeWindow,
    latency: RollingLatency,
    recovery_attempts: u32,
    events: Vec<StateChange>,
    state_changes: u64,
    admitted: u64,
    rejected: u64,
    successes: u64,
    failures: u64,
    stale_ignored: u64,
}

impl LatencyBreaker {
    /// A closed breaker.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] as [`LatencyBreakerConfig::validate`].
    pub fn new(config: LatencyBreakerConfig) -> Result<Self, DomainError> {
        config.validate()?;
        let latency = RollingLatency::new(config.latency_window).map_err(|_| {
            invalid(
                "latency_breaker.latency_window",
                "an integer from 1 to 1000000",
            )
        })?;
        Ok(Self {
            outcomes: OutcomeWindow::new(config.outcome_window as usize),
            probes: Vec::with_capacity(config.half_open_max_probes as usize),
            latency,
            config,
            state: BreakerState::Closed,
            generation: 0,
            opened_at: Timestamp::ZERO,
            consecutive_failures: 0,
            recovery_attempts: 0,
            events: Vec::new(),
            state_changes: 0,
            admitted: 0,
            rejected: 0,
            successes: 0,
            failures: 0,
            stale_ignored: 0,
        })
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &LatencyBreakerConfig {
        &self.config
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The current generation, for calls made without admission (exits, health probes) whose
    /// outcome should still be recorded.
    #[must_use]
    pub fn generation(&self) -> Generation {
        Generation(self.generation)
    }

    /// Asks leave to make one call.
    ///
    /// Closed: admitted. Open: rejected until `recovery_timeout` has passed since opening, then
    /// moves to HalfOpen (a [`StateChange`], kept for [`take_events`](Self::take_events)) and
    /// admits a probe. HalfOpen: admits up to `half_open_max_probes` probes in flight; a probe
    /// older than `probe_timeout` counts as failed (the breaker reopens), so a stuck probe can
    /// never wedge the breaker.
    #[inline]
    pub fn admit(&mut self, now: Timestamp) -> Admission {
        if self.state == BreakerState::Closed {
            self.admitted += 1;
            return Admission::Admitted(Permit {
                generation: Generation(self.generation),
                probe: false,
            });
        }
        self.admit_slow(now)
    }

    #[cold]
    fn admit_slow(&mut self, now: Timestamp) -> Admission {
        // Timers first: a timed-out probe reopens, an elapsed recovery timeout half-opens.
        let _ = self.handle_timeout(now);
        let full = self.probes.len() >= self.config.half_open_max_probes as usize;
        if self.state != BreakerState::HalfOpen || full {
            self.rejected += 1;
            return Admission::Rejected { state: self.state };
        }
        self.probes.push(now);
        self.admitted += 1;
        Admission::Admitted(Permit {
            generation: Generation(self.generation),
            probe: true,
        })
    }

    /// Records a call's outcome.
    ///
    /// An outcome whose generation is not the current one (the call started before a
    /// transition) is ignored, counted in `stale_ignored`, and returns `None`. Otherwise its
    /// latency goes into the rolling window and:
    /// - Closed: opens on consecutive failures `>= failure_threshold`, on an error rate
    ///   `>= error_rate_threshold` with at least `min_calls` outcomes in the window, or on a
    ///   P99 of the latency window above `p99_threshold` with at least `min_latency_samples`
    ///   samples (checked in that order).
    /// - HalfOpen: a failure, or a success slower than `p99_threshold` (a slow recovery is no
    ///   recovery), reopens; a success that leaves every probe admitted so far succeeded (at
    ///   least one) closes, clearing the windows.
    /// - Open: only counted.
    pub fn record(
        &mut self,
        now: Timestamp,
        generation: Generation,
        outcome: CallOutcome,
    ) -> Option<StateChange> {
        if generation.0 != self.generation {
            self.stale_ignored += 1;
            return None;
        }
        let failed = outcome.is_failure();
        let latency = outcome.latency();
        if failed {
            self.failures += 1;
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        } else {
            self.successes += 1;
            self.consecutive_failures = 0;
        }
        self.outcomes.push(failed);
        self.latency.record(latency);

        match self.state {
            BreakerState::Closed => {
                let cause = self.closed_trip_cause()?;
                Some(self.transition(now, BreakerState::Open, cause))
            }
            BreakerState::HalfOpen => {
                if failed || latency > self.config.p99_threshold {
                    return Some(self.transition(now, BreakerState::Open, TripCause::ProbeFailed));
                }
                // A success with no probe in flight is a call made without admission: it says
                // nothing about the probes, so it neither closes nor reopens.
                self.probes.pop()?;
                if self.probes.is_empty() {
                    Some(self.transition(now, BreakerState::Closed, TripCause::ProbesSucceeded))
                } else {
                    None
                }
            }
            BreakerState::Open => None,
        }
    }

    /// Records the outcome of a call made without admission (an exit's call, a read):
    /// as [`record`](Self::record), except that in HalfOpen a success proves nothing about
    /// recovery (only admitted probes may close the breaker), while a failure still
    /// reopens it.
    pub fn record_unadmitted(
        &mut self,
        now: Timestamp,
        generation: Generation,
        outcome: CallOutcome,
    ) -> Option<StateChange> {
        if self.state == BreakerState::HalfOpen && !outcome.is_failure() {
            if generation.0 != self.generation {
                self.stale_ignored += 1;
            } else {
                self.successes += 1;
                self.latency.record(outcome.latency());
            }
            return None;
        }
        self.record(now, generation, outcome)
    }

    /// Gives back a permit whose call was never made (a request budget deferred it without
    /// a request): nothing is recorded, and a half-open probe's place is freed so that it
    /// neither counts as a failure when its `probe_timeout` passes nor holds a slot. A
    /// permit of another generation, or one that was no probe, changes nothing.
    pub fn withdraw(&mut self, permit: Permit) {
        if permit.probe
            && permit.generation.0 == self.generation
            && self.state == BreakerState::HalfOpen
            && self.probes.pop().is_some()
        {
            self.admitted = self.admitted.saturating_sub(1);
        }
    }

    /// Opens a closed breaker without a failure: the bot restarted while the journal
    /// said a breaker was open, so recovery must be proven again. `None` when not closed.
    pub fn trip(&mut self, now: Timestamp) -> Option<StateChange> {
        (self.state == BreakerState::Closed)
            .then(|| self.transition(now, BreakerState::Open, TripCause::Restored))
    }

    fn closed_trip_cause(&self) -> Option<TripCause> {
        let c = &self.config;
        if self.consecutive_failures >= c.failure_threshold {
            return Some(TripCause::ConsecutiveFailures {
                count: self.consecutive_failures,
            });
        }
        if self.outcomes.len >= c.min_calls as usize
            && self.outcomes.rate() >= c.error_rate_threshold
        {
            let permille = self.outcomes.failures * 1_000 / self.outcomes.len;
            return Some(TripCause::ErrorRate {
                rate_permille: u32::try_from(permille).unwrap_or(1_000),
            });
        }
        if self.latency.len() < c.min_latency_samples {
            return None;
        }
        let p99 = self.latency.p99().filter(|p| *p > c.p99_threshold)?;
        Some(TripCause::P99Latency { p99 })
    }

    /// Applies the timers due at `now` without admitting anything: a half-open probe in flight
    /// for `probe_timeout` reopens the breaker, and an open breaker whose `recovery_timeout`
    /// has passed half-opens. A call when nothing is due does nothing and returns `None`.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Option<StateChange> {
        match self.state {
            BreakerState::Closed => None,
            BreakerState::Open => {
                let due = self.opened_at.saturating_add(self.config.recovery_timeout);
                (now >= due).then(|| {
                    self.transition(
                        now,
                        BreakerState::HalfOpen,
                        TripCause::RecoveryTimeoutElapsed,
                    )
                })
            }
            BreakerState::HalfOpen => {
                let oldest = *self.probes.first()?;
                let due = oldest.saturating_add(self.config.probe_timeout);
                (now >= due)
                    .then(|| self.transition(now, BreakerState::Open, TripCause::ProbeTimedOut))
            }
        }
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) would change
    /// something, if any: the end of the recovery timeout when open, the oldest probe's
    /// deadline when half-open with probes in flight.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.state {
            BreakerState::Closed => None,
            BreakerState::Open => Some(self.opened_at.saturating_add(self.config.recovery_timeout)),
            BreakerState::HalfOpen => self
                .probes
                .first()
                .map(|t| t.saturating_add(self.config.probe_timeout)),
        }
    }

    /// The ceiling of the next recovery health-probe delay:
    /// `recovery_backoff_base * multiplier^recovery_attempts`, capped at `recovery_backoff_max`.
    #[must_use]
    pub fn recovery_backoff_ceiling(&self) -> Duration {
        let c = &self.config;
        let exponent = i32::try_from(self.recovery_attempts).unwrap_or(i32::MAX);
        let secs =
            c.recovery_backoff_base.as_secs_f64() * c.recovery_backoff_multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .map_or(c.recovery_backoff_max, |d| d.min(c.recovery_backoff_max))
    }

    /// Delay before the next recovery health probe: a uniform draw from
    /// `[0, recovery_backoff_ceiling())` taken from `random` (full jitter). `recovery_attempts`
    /// counts consecutive failed recoveries and is reset when the breaker closes.
    #[must_use]
    pub fn next_recovery_probe_delay(&self, random: u64) -> Duration {
        let ceiling = self.recovery_backoff_ceiling();
        let drawn = Duration::try_from_secs_f64(ceiling.as_secs_f64() * unit_interval(random))
            .unwrap_or(ceiling);
        // Rounding to whole nanoseconds can reach the ceiling; the draw stays below it.
        if drawn >= ceiling {
            ceiling.saturating_sub(Duration::from_nanos(1))
        } else {
            drawn
        }
    }

    /// The state changes since the last call, oldest first (at most [`MAX_PENDING_EVENTS`]).
    pub fn take_events(&mut self) -> Vec<StateChange> {
        core::mem::take(&mut self.events)
    }

    /// Counters, state and windows now.
    #[must_use]
    pub fn snapshot(&self) -> BreakerSnapshot {
        BreakerSnapshot {
            state: self.state,
            state_changes: self.state_changes,
            admitted: self.admitted,
            rejected: self.rejected,
            successes: self.successes,
            failures: self.failures,
            stale_ignored: self.stale_ignored,
            consecutive_failures: self.consecutive_failures,
            error_rate: self.outcomes.rate(),
            latency: self.latency.snapshot(),
            recovery_attempts: self.recovery_attempts,
        }
    }

    /// The rolling latency window.
    #[must_use]
    pub fn latency(&self) -> &RollingLatency {
        &self.latency
    }

    /// Operator reset: back to Closed with the windows cleared. Returns the change, or `None`
    /// when already closed (the windows are cleared and the generation moves on anyway, so
    /// calls admitted before the reset cannot refill the cleared windows).
    pub fn reset(&mut self, now: Timestamp) -> Option<StateChange> {
        if self.state == BreakerState::Closed {
            self.clear_windows();
            self.generation = self.generation.wrapping_add(1);
            return None;
        }
        Some(self.transition(now, BreakerState::Closed, TripCause::Reset))
    }

    fn clear_windows(&mut self) {
        self.consecutive_failures = 0;
        self.outcomes.clear();
        self.latency.clear();
    }

    fn transition(&mut self, now: Timestamp, to: BreakerState, cause: TripCause) -> StateChange {
        let change = StateChange {
            from: self.state,
            to,
            at: now,
            cause,
        };
        match to {
            BreakerState::Open => {
                if self.state == BreakerState::HalfOpen {
                    self.recovery_attempts = self.recovery_attempts.saturating_add(1);
                }
                self.opened_at = now;
            }
            BreakerState::HalfOpen => {}
            BreakerState::Closed => {
                self.clear_windows();
                self.recovery_attempts = 0;
            }
        }
        self.probes.clear();
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
        self.state_changes += 1;
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.remove(0);
        }
        self.events.push(change);
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn at_ms(v: u64) -> Timestamp {
        Timestamp::from_millis(v)
    }

    fn ok(latency_ms: u64) -> CallOutcome {
        CallOutcome::Success {
            latency: ms(latency_ms),
        }
    }

    fn fail() -> CallOutcome {
        CallOutcome::Failure { latency: ms(10) }
    }

    fn breaker(config: LatencyBreakerConfig) -> LatencyBreaker {
        LatencyBreaker::new(config).unwrap()
    }

    /// Admits one call at `now` and records `outcome` for it; `None` if rejected.
    fn call(b: &mut LatencyBreaker, now: Timestamp, outcome: CallOutcome) -> Option<Permit> {
        let permit = b.admit(now).permit()?;
        let _ = b.record(now, permit.generation, outcome);
        Some(permit)
    }

    #[test]
    fn an_unadmitted_success_in_half_open_neither_closes_nor_counts_as_a_probe() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            recovery_timeout: ms(1_000),
            half_open_max_probes: 1,
            ..LatencyBreakerConfig::default()
        });
        trip(&mut b, at_ms(0));
        let probe = b.admit(at_ms(1_000)).permit().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // A price read succeeds while the chain's probe is out: nothing changes.
        let generation = b.generation();
        assert_eq!(b.record_unadmitted(at_ms(1_010), generation, ok(5)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // The probe itself decides.
        let change = b.record(at_ms(1_020), probe.generation, ok(5)).unwrap();
        assert_eq!(change.to, BreakerState::Closed);
        // In half-open an unadmitted failure still reopens.
        trip(&mut b, at_ms(2_000));
        let _ = b.admit(at_ms(3_000)).permit().unwrap();
        let change = b
            .record_unadmitted(at_ms(3_001), b.generation(), fail())
            .unwrap();
        assert_eq!(change.to, BreakerState::Open);
    }

    #[test]
    fn a_withdrawn_probe_frees_its_place_and_records_nothing() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            recovery_timeout: ms(1_000),
            half_open_max_probes: 1,
            probe_timeout: ms(500),
            ..LatencyBreakerConfig::default()
        });
        trip(&mut b, at_ms(0));
        let probe = b.admit(at_ms(1_000)).permit().unwrap();
        assert!(
            !b.admit(at_ms(1_001)).is_admitted(),
            "the one place is taken"
        );
        let before = b.snapshot();
        b.withdraw(probe);
        let after = b.snapshot();
        assert_eq!(after.failures, before.failures);
        assert_eq!(after.successes, before.successes);
        assert_eq!(after.admitted + 1, before.admitted);
        // Past the probe timeout nothing reopens: no probe is in flight.
        assert_eq!(b.handle_timeout(at_ms(2_000)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // The place is free again, and the next probe decides.
        let next = b.admit(at_ms(2_000)).permit().unwrap();
        let change = b.record(at_ms(2_010), next.generation, ok(5)).unwrap();
        assert_eq!(change.to, BreakerState::Closed);
        // A permit from an older generation, or no probe, changes nothing.
        let closed = b.admit(at_ms(2_020)).permit().unwrap();
        b.withdraw(probe);
        b.withdraw(closed);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_restored_breaker_opens_without_a_failure_and_recovers_by_probes() {
        let mut b = breaker(LatencyBreakerConfig {
            recovery_timeout: ms(1_000),
            half_open_max_probes: 1,
            ..LatencyBreakerConfig::default()
        });
        let change = b.trip(at_ms(0)).unwrap();
        assert_eq!(
            (change.to, change.cause),
            (BreakerState::Open, TripCause::Restored)
        );
        assert_eq!(b.trip(at_ms(1)), None);
        assert!(!b.admit(at_ms(10)).is_admitted());
        let probe = b.admit(at_ms(1_000)).permit().unwrap();
        assert!(probe.probe);
        assert_eq!(
            b.record(at_ms(1_001), probe.generation, ok(5))
                .map(|c| c.to),
            Some(BreakerState::Closed)
        );
    }

    /// Opens a breaker with consecutive failures at `now`.
    fn trip(b: &mut LatencyBreaker, now: Timestamp) {
        while b.state() == BreakerState::Closed {
            call(b, now, fail());
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn defaults_are_the_documented_values_and_valid() {
        let c = LatencyBreakerConfig::default();
        assert_eq!(c.failure_threshold, 5);
        assert_eq!(c.error_rate_threshold, 0.5);
        assert_eq!((c.min_calls, c.outcome_window), (20, 100));
        assert_eq!(c.p99_threshold, ms(200));
        assert_eq!((c.latency_window, c.min_latency_samples), (1_000, 20));
        assert_eq!(c.recovery_timeout, Duration::from_secs(30));
        assert_eq!(
            (c.half_open_max_probes, c.probe_timeout),
            (3, Duration::from_secs(5))
        );
        assert_eq!(c.recovery_backoff_base, Duration::from_secs(1));
        assert_eq!(c.recovery_backoff_max, Duration::from_secs(300));
        assert_eq!(c.recovery_backoff_multiplier, 2.0);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn invalid_config_is_refused_naming_the_key() {
        type Edit = fn(&mut LatencyBreakerConfig);
        let table: [(Edit, &str); 17] = [
            (|c| c.failure_threshold = 0, "failure_threshold"),
            (|c| c.error_rate_threshold = 0.0, "error_rate_threshold"),
            (|c| c.error_rate_threshold = 1.5, "error_rate_threshold"),
            (
                |c| c.error_rate_threshold = f64::NAN,
                "error_rate_threshold",
            ),
            (|c| c.outcome_window = 0, "outcome_window"),
            (|c| c.min_calls = 0, "min_calls"),
            (|c| c.min_calls = 101, "min_calls"),
            (|c| c.p99_threshold = Duration::ZERO, "p99_threshold"),
            (|c| c.latency_window = 0, "latency_window"),
            (|c| c.min_latency_samples = 1_001, "min_latency_samples"),
            (|c| c.recovery_timeout = Duration::ZERO, "recovery_timeout"),
            (|c| c.half_open_max_probes = 0, "half_open_max_probes"),
            (|c| c.probe_timeout = Duration::ZERO, "probe_timeout"),
            (
                |c| c.recovery_backoff_base = Duration::ZERO,
                "recovery_backoff_base",
            ),
            (|c| c.recovery_backoff_max = ms(10), "recovery_backoff_max"),
            (
                |c| c.recovery_backoff_multiplier = 0.5,
                "recovery_backoff_multiplier",
            ),
            (
                |c| c.recovery_backoff_multiplier = f64::INFINITY,
                "recovery_backoff_multiplier",
            ),
        ];
        for (edit, key) in table {
            let mut config = LatencyBreakerConfig::default();
            edit(&mut config);
            match LatencyBreaker::new(config).err() {
                Some(DomainError::InvalidConfig { field, .. }) => {
                    assert_eq!(field, format!("latency_breaker.{key}"));
                }
                other => panic!("{key}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn state_names_are_stable() {
        assert_eq!(BreakerState::Closed.as_str(), "closed");
        assert_eq!(BreakerState::Open.as_str(), "open");
        assert_eq!(BreakerState::HalfOpen.to_string(), "half_open");
    }

    /// Seed 004 `test_circuit_breaker_state_transitions`, on time passed in.
    #[test]
    fn breaker_opens_on_failures_half_opens_after_recovery_timeout_and_closes_on_success() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 3,
            recovery_timeout: Duration::from_secs(1),
            ..Default::default()
        });
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit(at_ms(0)).is_admitted());

        for _ in 0..3 {
            call(&mut b, at_ms(10), fail());
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.admit(at_ms(500)),
            Admission::Rejected {
                state: BreakerState::Open
            }
        );
        assert_eq!(b.poll_timeout(), Some(at_ms(1_010)));

        let probe = b.admit(at_ms(2_010)).permit().unwrap();
        assert!(probe.probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);

        let change = b.record(at_ms(2_050), probe.generation, ok(40)).unwrap();
        assert_eq!(change.to, BreakerState::Closed);
        assert_eq!(change.cause, TripCause::ProbesSucceeded);
        assert_eq!(b.state(), BreakerState::Closed);

        let causes: Vec<_> = b
            .take_events()
            .iter()
            .map(|e| (e.from, e.to, e.cause))
            .collect();
        assert_eq!(
            causes,
            [
                (
                    BreakerState::Closed,
                    BreakerState::Open,
                    TripCause::ConsecutiveFailures { count: 3 }
                ),
                (
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                    TripCause::RecoveryTimeoutElapsed
                ),
                (
                    BreakerState::HalfOpen,
                    BreakerState::Closed,
                    TripCause::ProbesSucceeded
                ),
            ]
        );
        assert!(b.take_events().is_empty());
    }

    /// Seed 004 `test_latency_monitoring`: the breaker's window sees every latency.
    #[test]
    fn breaker_latency_window_reports_count_min_max_and_p99() {
        let mut b = breaker(LatencyBreakerConfig {
            latency_window: 100,
            ..Default::default()
        });
        for i in 1..=100 {
            call(&mut b, at_ms(i), ok(i * 2));
        }
        let s = b.snapshot().latency;
        assert_eq!(s.count, 100);
        assert_eq!((s.min, s.max), (ms(2), ms(200)));
        let p99_error = s.p99.abs_diff(ms(198)).as_secs_f64();
        assert!(
            p99_error <= RollingLatency::RELATIVE_ERROR * 0.198,
            "{:?}",
            s.p99
        );
        // A P99 of 198 ms is under the 200 ms threshold.
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.latency().len(), 100);
    }

    /// Seed 004 `test_exponential_backoff`, with full jitter: a random word of 0 draws 0, so
    /// the progression is checked on the ceiling.
    #[test]
    fn recovery_backoff_doubles_per_failed_recovery_up_to_the_cap_and_resets_on_close() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            recovery_timeout: Duration::from_secs(1),
            recovery_backoff_base: Duration::from_secs(1),
            recovery_backoff_max: Duration::from_secs(60),
            recovery_backoff_multiplier: 2.0,
            ..Default::default()
        });
        let mut now = at_ms(0);
        trip(&mut b, now);
        let mut ceilings = vec![b.recovery_backoff_ceiling()];
        for _ in 0..10 {
            now = now.saturating_add(Duration::from_secs(2));
            let probe = b.admit(now).permit().unwrap();
            assert_eq!(
                b.record(now, probe.generation, fail()).map(|c| c.cause),
                Some(TripCause::ProbeFailed)
            );
            ceilings.push(b.recovery_backoff_ceiling());
        }
        let secs: Vec<u64> = ceilings.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
        assert_eq!(b.snapshot().recovery_attempts, 10);

        assert_eq!(b.next_recovery_probe_delay(0), Duration::ZERO);
        let top = b.next_recovery_probe_delay(u64::MAX);
        assert!(
            top < Duration::from_secs(60) && top > Duration::from_secs(59),
            "{top:?}"
        );
        let middle = b.next_recovery_probe_delay(u64::MAX / 2);
        assert!(
            middle.abs_diff(Duration::from_secs(30)) < ms(1),
            "{middle:?}"
        );

        now = now.saturating_add(Duration::from_secs(2));
        call(&mut b, now, ok(10));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.recovery_backoff_ceiling(), Duration::from_secs(1));
    }

    /// Seed 004 `test_trading_circuit_breaker`: slow calls open it and further calls are
    /// blocked.
    #[test]
    fn slow_calls_open_the_breaker_and_block_further_requests() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 2,
            min_latency_samples: 5,
            ..Default::default()
        });
        for i in 0..5 {
            assert!(call(&mut b, at_ms(i * 100), ok(50)).is_some());
        }
        let slow_admitted = (0..3)
            .filter(|i| call(&mut b, at_ms(1_000 + i * 300), ok(250)).is_some())
            .count();
        assert_eq!(
            slow_admitted, 1,
            "the first slow call trips it, the rest are blocked"
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.admit(at_ms(2_000)),
            Admission::Rejected {
                state: BreakerState::Open
            }
        );
        let snapshot = b.snapshot();
        assert_eq!(snapshot.rejected, 3);
        assert_eq!(
            snapshot.failures, 0,
            "slow successes are not failures, the P99 opened it"
        );
    }

    /// Seed 004 integration test: the state-change log holds Closed -> Open after a latency
    /// spike, and requests are blocked afterwards.
    #[test]
    fn latency_spike_logs_closed_to_open_and_blocks_requests() {
        let mut b = breaker(LatencyBreakerConfig::default());
        for i in 0..10 {
            call(&mut b, at_ms(i * 100), ok(50));
        }
        for i in 0..15 {
            call(&mut b, at_ms(1_000 + i * 300), ok(300));
        }
        let log: Vec<_> = b.take_events().iter().map(|e| (e.from, e.to)).collect();
        assert!(
            log.contains(&(BreakerState::Closed, BreakerState::Open)),
            "{log:?}"
        );
        let s = b.snapshot();
        assert_eq!(s.state, BreakerState::Open);
        // 20 samples are needed before the P99 is trusted: the 10th slow call trips it.
        assert_eq!((s.admitted, s.rejected), (20, 5));
        assert_eq!(s.latency.count, 20);
    }

    #[test]
    fn error_rate_opens_only_once_min_calls_outcomes_are_in_the_window() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 100,
            error_rate_threshold: 0.5,
            min_calls: 20,
            outcome_window: 100,
            ..Default::default()
        });
        // Fail, succeed, fail...: 10 failures in 19 outcomes is a 53% rate, too few outcomes.
        for i in 0..19 {
            let outcome = if i % 2 == 0 { fail() } else { ok(10) };
            call(&mut b, at_ms(i), outcome);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.snapshot().error_rate > 0.5);
        let permit = b.admit(at_ms(20)).permit().unwrap();
        let change = b.record(at_ms(20), permit.generation, ok(10));
        assert_eq!(
            change.map(|c| c.cause),
            Some(TripCause::ErrorRate { rate_permille: 500 })
        );
    }

    #[test]
    fn error_rate_below_threshold_keeps_it_closed() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 100,
            min_calls: 10,
            ..Default::default()
        });
        for i in 0..200 {
            let outcome = if i % 3 == 0 { fail() } else { ok(10) };
            call(&mut b, at_ms(i), outcome);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!((b.snapshot().error_rate - 0.33).abs() < 0.01);
    }

    #[test]
    fn consecutive_failure_run_is_broken_by_a_success() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 3,
            ..Default::default()
        });
        for outcome in [fail(), fail(), ok(10), fail(), fail()] {
            call(&mut b, at_ms(0), outcome);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 2);
        call(&mut b, at_ms(0), fail());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn p99_over_the_threshold_opens_it_only_with_enough_samples() {
        let mut b = breaker(LatencyBreakerConfig {
            min_latency_samples: 50,
            ..Default::default()
        });
        // 49 samples, all slow: not enough to judge.
        for i in 0..49 {
            call(&mut b, at_ms(i), ok(500));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let permit = b.admit(at_ms(49)).permit().unwrap();
        let change = b.record(at_ms(49), permit.generation, ok(500)).unwrap();
        match change.cause {
            TripCause::P99Latency { p99 } => {
                assert!(p99.abs_diff(ms(500)) <= ms(2), "{p99:?}");
            }
            other => panic!("expected P99Latency, got {other:?}"),
        }
    }

    #[test]
    fn one_slow_call_in_a_hundred_does_not_move_the_p99() {
        let mut b = breaker(LatencyBreakerConfig::default());
        for i in 0..300 {
            let latency = if i % 100 == 99 { 5_000 } else { 30 };
            call(&mut b, at_ms(i), ok(latency));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.snapshot().latency.p99 < ms(200));
    }

    #[test]
    fn stuck_probe_times_out_reopens_and_a_new_probe_is_admitted_after_recovery() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            half_open_max_probes: 1,
            recovery_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(5),
            ..Default::default()
        });
        trip(&mut b, at_ms(0));
        let stuck = b.admit(at_ms(30_000)).permit().unwrap();
        assert!(stuck.probe);
        assert_eq!(
            b.admit(at_ms(31_000)),
            Admission::Rejected {
                state: BreakerState::HalfOpen
            }
        );
        assert_eq!(b.poll_timeout(), Some(at_ms(35_000)));
        assert_eq!(b.handle_timeout(at_ms(34_999)), None);

        let change = b.handle_timeout(at_ms(35_000)).unwrap();
        assert_eq!(
            (change.to, change.cause),
            (BreakerState::Open, TripCause::ProbeTimedOut)
        );
        assert_eq!(b.snapshot().recovery_attempts, 1);
        assert_eq!(b.poll_timeout(), Some(at_ms(65_000)));

        let fresh = b.admit(at_ms(65_000)).permit().unwrap();
        assert!(fresh.probe);
        assert_ne!(fresh.generation, stuck.generation);
        // The stuck probe finally answers: too late, it is ignored.
        assert_eq!(b.record(at_ms(65_001), stuck.generation, ok(1)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.record(at_ms(65_002), fresh.generation, ok(1)).is_some());
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn admit_applies_a_due_probe_timeout_before_deciding() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            half_open_max_probes: 1,
            ..Default::default()
        });
        trip(&mut b, at_ms(0));
        assert!(b.admit(at_ms(30_000)).is_admitted());
        assert_eq!(
            b.admit(at_ms(35_000)),
            Admission::Rejected {
                state: BreakerState::Open
            }
        );
        let causes: Vec<_> = b.take_events().iter().map(|e| e.cause).collect();
        assert_eq!(causes.last(), Some(&TripCause::ProbeTimedOut));
    }

    #[test]
    fn outcomes_from_before_a_transition_are_ignored() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 2,
            recovery_timeout: Duration::from_secs(1),
            ..Default::default()
        });
        let early = b.admit(at_ms(0)).permit().unwrap();
        trip(&mut b, at_ms(1));
        let before = b.snapshot();
        assert_eq!(b.record(at_ms(2), early.generation, fail()), None);
        let after = b.snapshot();
        assert_eq!(after.stale_ignored, 1);
        assert_eq!(
            (after.failures, after.successes),
            (before.failures, before.successes)
        );

        // A pre-trip success arriving while half-open must not close the breaker.
        let probe = b.admit(at_ms(1_001)).permit().unwrap();
        assert_eq!(b.record(at_ms(1_002), early.generation, ok(1)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.snapshot().stale_ignored, 2);
        assert!(b.record(at_ms(1_003), probe.generation, ok(1)).is_some());
    }

    #[test]
    fn half_open_closes_only_when_every_admitted_probe_succeeded() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            half_open_max_probes: 3,
            ..Default::default()
        });
        trip(&mut b, at_ms(0));
        let probes: Vec<_> = (0..3)
            .map(|_| b.admit(at_ms(30_000)).permit().unwrap())
            .collect();
        assert!(
            !b.admit(at_ms(30_000)).is_admitted(),
            "a fourth probe in flight"
        );
        assert_eq!(b.record(at_ms(30_010), probes[0].generation, ok(5)), None);
        assert_eq!(b.record(at_ms(30_020), probes[1].generation, ok(5)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let change = b
            .record(at_ms(30_030), probes[2].generation, ok(5))
            .unwrap();
        assert_eq!(change.to, BreakerState::Closed);
        let s = b.snapshot();
        assert_eq!(
            (s.latency.count, s.consecutive_failures, s.error_rate),
            (0, 0, 0.0)
        );
    }

    #[test]
    fn half_open_failure_or_slow_probe_reopens() {
        for (outcome, name) in [(fail(), "failure"), (ok(250), "slow success")] {
            let mut b = breaker(LatencyBreakerConfig {
                failure_threshold: 1,
                ..Default::default()
            });
            trip(&mut b, at_ms(0));
            let probe = b.admit(at_ms(30_000)).permit().unwrap();
            let change = b.record(at_ms(30_100), probe.generation, outcome);
            assert_eq!(
                change.map(|c| (c.from, c.to, c.cause)),
                Some((
                    BreakerState::HalfOpen,
                    BreakerState::Open,
                    TripCause::ProbeFailed
                )),
                "{name}"
            );
            assert_eq!(b.snapshot().recovery_attempts, 1, "{name}");
            assert_eq!(b.poll_timeout(), Some(at_ms(60_100)), "{name}");
        }
    }

    #[test]
    fn success_without_a_probe_in_flight_does_not_close_a_half_open_breaker() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            ..Default::default()
        });
        trip(&mut b, at_ms(0));
        assert!(b.handle_timeout(at_ms(30_000)).is_some());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.poll_timeout(), None, "no probe in flight, no timer");
        assert_eq!(b.record(at_ms(30_001), b.generation(), ok(5)), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn spurious_handle_timeout_calls_change_nothing() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            ..Default::default()
        });
        assert_eq!(b.handle_timeout(at_ms(1_000_000)), None);
        assert_eq!(b.poll_timeout(), None);
        trip(&mut b, at_ms(0));
        let generation = b.generation();
        assert_eq!(b.handle_timeout(at_ms(29_999)), None);
        assert_eq!(
            (b.state(), b.generation()),
            (BreakerState::Open, generation)
        );
    }

    #[test]
    fn reset_closes_with_windows_cleared_and_reports_the_operator_cause() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 2,
            ..Default::default()
        });
        trip(&mut b, at_ms(0));
        let change = b.reset(at_ms(5)).unwrap();
        assert_eq!(
            (change.from, change.to, change.cause),
            (BreakerState::Open, BreakerState::Closed, TripCause::Reset)
        );
        let s = b.snapshot();
        assert_eq!(
            (s.state, s.consecutive_failures, s.latency.count),
            (BreakerState::Closed, 0, 0)
        );

        let old = b.admit(at_ms(6)).permit().unwrap();
        call(&mut b, at_ms(6), fail());
        assert_eq!(b.reset(at_ms(7)), None, "already closed");
        assert_eq!(b.snapshot().consecutive_failures, 0);
        assert_eq!(
            b.record(at_ms(8), old.generation, fail()),
            None,
            "from before the reset"
        );
    }

    #[test]
    fn admission_in_closed_keeps_no_events_and_counts() {
        let mut b = breaker(LatencyBreakerConfig::default());
        for i in 0..1_000 {
            assert!(b.admit(at_ms(i)).is_admitted());
        }
        assert!(b.take_events().is_empty());
        assert_eq!(b.snapshot().admitted, 1_000);
    }

    #[test]
    fn pending_events_are_bounded_keeping_the_newest() {
        let mut b = breaker(LatencyBreakerConfig {
            failure_threshold: 1,
            ..Default::default()
        });
        for i in 0..=MAX_PENDING_EVENTS as u64 {
            call(&mut b, at_ms(i), fail());
            let _ = b.reset(at_ms(i));
        }
        let events = b.take_events();
        assert_eq!(events.len(), MAX_PENDING_EVENTS);
        assert_eq!(events.last().map(|e| e.cause), Some(TripCause::Reset));
        assert_eq!(
            b.snapshot().state_changes,
            2 * (MAX_PENDING_EVENTS as u64 + 1)
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Succeed { index: usize, latency_ms: u64 },
        Fail { index: usize },
        Timeout,
        Advance { ms: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Admit),
            2 => (any::<usize>(), 0u64..400).prop_map(|(index, latency_ms)| Op::Succeed { index, latency_ms }),
            1 => any::<usize>().prop_map(|index| Op::Fail { index }),
            1 => Just(Op::Timeout),
            2 => (0u64..20_000).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    fn small_config() -> impl Strategy<Value = LatencyBreakerConfig> {
        (1u32..4, 1u32..5, 1u64..10, 1u64..10).prop_map(
            |(failures, probes, recovery_s, probe_s)| LatencyBreakerConfig {
                failure_threshold: failures,
                half_open_max_probes: probes,
                recovery_timeout: Duration::from_secs(recovery_s),
                probe_timeout: Duration::from_secs(probe_s),
                min_calls: 5,
                min_latency_samples: 5,
                ..Default::default()
            },
        )
    }

    proptest! {
        #[test]
        fn never_more_than_max_probes_in_flight_in_one_half_open_period(
            config in small_config(),
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let max = config.half_open_max_probes as usize;
            let mut b = LatencyBreaker::new(config).unwrap();
            let mut now = Timestamp::ZERO;
            let mut outstanding: Vec<Permit> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => {
                        let state_before = b.state();
                        if let Admission::Admitted(permit) = b.admit(now) {
                            prop_assert_eq!(permit.generation, b.generation());
                            prop_assert_eq!(permit.probe, b.state() == BreakerState::HalfOpen);
                            prop_assert!(state_before != BreakerState::Open || permit.probe);
                            outstanding.push(permit);
                        }
                    }
                    Op::Succeed { index, latency_ms } if !outstanding.is_empty() => {
                        let permit = outstanding.swap_remove(index % outstanding.len());
                        let _ = b.record(now, permit.generation, CallOutcome::Success { latency: ms(latency_ms) });
                    }
                    Op::Fail { index } if !outstanding.is_empty() => {
                        let permit = outstanding.swap_remove(index % outstanding.len());
                        let _ = b.record(now, permit.generation, CallOutcome::Failure { latency: ms(1) });
                    }
                    Op::Succeed { .. } | Op::Fail { .. } => {}
                    Op::Timeout => {
                        let _ = b.handle_timeout(now);
                    }
                    Op::Advance { ms: step } => now = now.saturating_add(ms(step)),
                }
                let current = b.generation();
                let probes_in_flight = outstanding
                    .iter()
                    .filter(|p| p.probe && p.generation == current)
                    .count();
                prop_assert!(probes_in_flight <= max, "{} probes in flight, max {}", probes_in_flight, max);
                if b.state() != BreakerState::HalfOpen {
                    prop_assert_eq!(probes_in_flight, 0);
                }
            }
        }

        #[test]
        fn from_any_state_a_call_is_admitted_after_probe_and_recovery_timeouts(
            config in small_config(),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let wait = config.probe_timeout;
            let recovery = config.recovery_timeout;
            let mut b = LatencyBreaker::new(config).unwrap();
            let mut now = Timestamp::ZERO;
            let mut outstanding: Vec<Permit> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => outstanding.extend(b.admit(now).permit()),
                    Op::Fail { index } if !outstanding.is_empty() => {
                        let permit = outstanding.swap_remove(index % outstanding.len());
                        let _ = b.record(now, permit.generation, CallOutcome::Failure { latency: ms(1) });
                    }
                    Op::Advance { ms: step } => now = now.saturating_add(ms(step)),
                    _ => {}
                }
            }
            // Outstanding permits never report: stuck calls must not wedge it.
            now = now.saturating_add(wait);
            let _ = b.handle_timeout(now);
            now = now.saturating_add(recovery);
            prop_assert!(b.admit(now).is_admitted(), "wedged in {:?}", b.state());
        }
    }
}
