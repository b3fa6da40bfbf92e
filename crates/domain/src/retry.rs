//! Bounded retry: a policy (attempts, total time budget, capped exponential backoff with
//! full jitter) and the running budget of one retried operation, which never plans a
//! sleep or an attempt that could not end before the budget does.

use core::fmt;
use core::time::Duration;

use crate::error::{ClassifiedError, DomainError, ErrorClass};
use crate::types::Timestamp;
use crate::unit_interval;

/// How a retried operation is bounded: in attempts, in total time (calls and sleeps
/// together) and in the backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts allowed in all, the first included.
    pub max_attempts: u32,
    /// Time from the start of the first attempt by which the last one must have ended.
    pub total_budget: Duration,
    /// The backoff ceiling before the first retry.
    pub initial_backoff: Duration,
    /// The factor by which the ceiling grows from one retry to the next.
    pub multiplier: f64,
    /// The largest backoff ceiling.
    pub max_backoff: Duration,
}

/// Configuration key names of one policy section, in the order
/// `max_attempts`, `total_budget`, `multiplier`, `initial_backoff`.
type PolicyKeys = [&'static str; 4];

/// Keys of the configuration sections a policy is known to be read from.
const KNOWN_SECTIONS: [(&str, PolicyKeys); 2] = [
    (
        "retry",
        [
            "retry.max_attempts",
            "retry.total_budget",
            "retry.multiplier",
            "retry.initial_backoff",
        ],
    ),
    (
        "exit_retry",
        [
            "exit_retry.max_attempts",
            "exit_retry.total_budget",
            "exit_retry.multiplier",
            "exit_retry.initial_backoff",
        ],
    ),
];

/// Keys used for a section not in [`KNOWN_SECTIONS`].
const BARE_KEYS: PolicyKeys = [
    "max_attempts",
    "total_budget",
    "multiplier",
    "initial_backoff",
];

impl RetryPolicy {
    /// The policy for ordinary calls: 3 attempts, 30 s in all, 1 s initial backoff,
    /// doubling, capped at 10 s.
    #[must_use]
    pub const fn default_policy() -> Self {
        Self {
            max_attempts: 3,
            total_budget: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(10),
        }
    }

    /// The tighter policy for exits: 2 attempts, 20 s in all, 500 ms initial backoff,
    /// x2.5, capped at 5 s.
    #[must_use]
    pub const fn exit_policy() -> Self {
        Self {
            max_attempts: 2,
            total_budget: Duration::from_secs(20),
            initial_backoff: Duration::from_millis(500),
            multiplier: 2.5,
            max_backoff: Duration::from_secs(5),
        }
    }

    /// Checks the policy as read from the configuration section `prefix`.
    ///
    /// The field named in an error is `"{prefix}.{key}"` for the sections `"retry"` and
    /// `"exit_retry"` (e.g. `exit_retry.max_attempts`); for any other prefix it is the
    /// bare key (e.g. `max_attempts`), since the name must be a `&'static str`.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] when `max_attempts` is zero, `total_budget` is zero,
    /// `multiplier` is not a finite number of at least 1, or `initial_backoff` exceeds
    /// `max_backoff` (reported on `initial_backoff`).
    pub fn validate(&self, prefix: &'static str) -> Result<(), DomainError> {
        let [max_attempts, total_budget, multiplier, initial_backoff] = KNOWN_SECTIONS
            .iter()
            .find(|(section, _)| *section == prefix)
            .map_or(BARE_KEYS, |(_, keys)| *keys);
        let invalid = |field, expected| Err(DomainError::InvalidConfig { field, expected });
        if self.max_attempts == 0 {
            return invalid(max_attempts, "at least 1");
        }
        if self.total_budget.is_zero() {
            return invalid(total_budget, "a duration above zero");
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return invalid(multiplier, "a finite number of at least 1");
        }
        if self.initial_backoff > self.max_backoff {
            return invalid(initial_backoff, "at most max_backoff");
        }
        Ok(())
    }

    /// The largest backoff before retry number `retry` (1 is the retry after the first
    /// failure; 0 is treated as 1): `initial_backoff * multiplier^(retry - 1)`, capped at
    /// `max_backoff`. Never overflows or panics, whatever the retry number or policy.
    #[must_use]
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let cap = self.max_backoff;
        if self.initial_backoff >= cap {
            return cap;
        }
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        // NaN and infinity can come from an unvalidated multiplier.
        if secs.is_nan() || secs >= cap.as_secs_f64() {
            return cap;
        }
        Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::default_policy()
    }
}

/// Permission to make one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptGrant {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// When the call must have ended (`now + max_call_time`), never past the budget end.
    pub call_deadline: Timestamp,
}

/// Why a retried operation stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The last failure's class may not be retried.
    NotRetryable(ErrorClass),
    /// Every allowed attempt has been made.
    AttemptsExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// Another attempt could not end before the total budget does.
    BudgetExhausted {
        /// Time used since the operation started.
        elapsed: Duration,
    },
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::NotRetryable(class) => write!(f, "{class} is not retryable"),
            GiveUpReason::AttemptsExhausted { attempts } => {
                write!(f, "all {attempts} attempts used")
            }
            GiveUpReason::BudgetExhausted { elapsed } => {
                write!(f, "time budget exhausted after {elapsed:?}")
            }
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then begin the next attempt.
    RetryAfter(Duration),
    GiveUp(GiveUpReason),
}

/// The running state of one retried operation under a [`RetryPolicy`].
///
/// The budget counts call time as well as sleeps: an attempt is granted only if it can
/// end (at its `max_call_time`) before `started + total_budget`, and a retry is planned
/// only if the sleep and the next call both fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    policy: RetryPolicy,
    started: Timestamp,
    budget_end: Timestamp,
    attempts: u32,
    gave_up: Option<GiveUpReason>,
}

impl RetryBudget {
    /// The budget of an operation starting at `started`.
    #[must_use]
    pub fn new(policy: RetryPolicy, started: Timestamp) -> Self {
        Self {
            policy,
            started,
            budget_end: started.saturating_add(policy.total_budget),
            attempts: 0,
            gave_up: None,
        }
    }

    /// Starts an attempt that may take up to `max_call_time`.
    ///
    /// # Errors
    /// The [`GiveUpReason`] when the attempts are used up, when the attempt could not end
    /// before the budget end (`now + max_call_time > budget_end`), or when
    /// [`RetryBudget::after_failure`] has already given up (that refusal is final).
    pub fn begin_attempt(
        &mut self,
        now: Timestamp,
        max_call_time: Duration,
    ) -> Result<AttemptGrant, GiveUpReason> {
        let call_deadline = self.could_begin(now, max_call_time)?;
        self.attempts += 1;
        Ok(AttemptGrant {
            attempt: self.attempts,
            call_deadline,
        })
    }

    /// Whether [`RetryBudget::begin_attempt`] would grant an attempt at `now`, without
    /// spending one: the attempt's call deadline when it would.
    ///
    /// # Errors
    /// The [`GiveUpReason`] `begin_attempt` would give.
    pub fn could_begin(
        &self,
        now: Timestamp,
        max_call_time: Duration,
    ) -> Result<Timestamp, GiveUpReason> {
        if let Some(reason) = self.gave_up {
            return Err(reason);
        }
        if self.attempts >= self.policy.max_attempts {
            return Err(GiveUpReason::AttemptsExhausted {
                attempts: self.attempts,
            });
        }
        let call_deadline = add_ceil(now, max_call_time);
        if call_deadline > self.budget_end {
            return Err(GiveUpReason::BudgetExhausted {
                elapsed: now.saturating_since(self.started),
            });
        }
        Ok(call_deadline)
    }

    /// Decides what follows a failed attempt.
    ///
    /// Gives up if the class is not retryable, if the attempts are used up, or if
    /// sleeping the delay and then a call of `next_call_time` would not end by the budget
    /// end. The delay is full jitter, `unit_interval(random) * backoff_ceiling(retry)`
    /// (truncated to whole microseconds), raised to `error.retry_after` (rounded up to
    /// whole microseconds) when that is larger. Once it has given up, it always gives up.
    #[must_use]
    pub fn after_failure(
        &mut self,
        now: Timestamp,
        error: ClassifiedError,
        next_call_time: Duration,
        random: u64,
    ) -> RetryDecision {
        let decision = self.plan_retry(now, error, next_call_time, random);
        if let RetryDecision::GiveUp(reason) = decision {
            self.gave_up = Some(reason);
        }
        decision
    }

    fn plan_retry(
        &self,
        now: Timestamp,
        error: ClassifiedError,
        next_call_time: Duration,
        random: u64,
    ) -> RetryDecision {
        if let Some(reason) = self.gave_up {
            return RetryDecision::GiveUp(reason);
        }
        if !error.class.is_retryable() {
            return RetryDecision::GiveUp(GiveUpReason::NotRetryable(error.class));
        }
        if self.attempts >= self.policy.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted {
                attempts: self.attempts,
            });
        }
        let ceiling = self.policy.backoff_ceiling(self.attempts);
        let jittered = Duration::try_from_secs_f64(ceiling.as_secs_f64() * unit_interval(random))
            .map_or(ceiling, |d| d.min(ceiling));
        let mut delay = floor_micros(jittered);
        if let Some(asked) = error.retry_after {
            delay = delay.max(ceil_micros(asked));
        }
        let next_call_end = add_ceil(now.saturating_add(delay), next_call_time);
        if next_call_end > self.budget_end {
            return RetryDecision::GiveUp(GiveUpReason::BudgetExhausted {
                elapsed: now.saturating_since(self.started),
            });
        }
        RetryDecision::RetryAfter(delay)
    }

    /// Attempts begun so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When every attempt must have ended: `started + total_budget`.
    #[must_use]
    pub fn budget_end(&self) -> Timestamp {
        self.budget_end
    }

    /// Time left before the budget end at `now` (zero once past it).
    #[must_use]
    pub fn remaining(&self, now: Timestamp) -> Duration {
        self.budget_end.saturating_since(now)
    }

    /// The policy this budget follows.
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

/// `d` rounded down to whole microseconds, the resolution of [`Timestamp`].
fn floor_micros(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `d` rounded up to whole microseconds, so that time arithmetic never undercounts.
fn ceil_micros(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX))
}

/// `t + d` with `d` rounded up to whole microseconds.
fn add_ceil(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(ceil_micros(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Timestamp = Timestamp::from_millis(1_000);

    fn policy(
        max_attempts: u32,
        initial_ms: u64,
        max_ms: u64,
        multiplier: f64,
        budget_ms: u64,
    ) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            total_budget: ms(budget_ms),
            initial_backoff: ms(initial_ms),
            multiplier,
            max_backoff: ms(max_ms),
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn timeout() -> ClassifiedError {
        ClassifiedError::new(ErrorClass::RpcTimeout)
    }

    fn after(t: Timestamp, d: Duration) -> Timestamp {
        t.saturating_add(d)
    }

    #[test]
    fn defaults_match_the_seed_numbers() {
        assert_eq!(
            RetryPolicy::default_policy(),
            policy(3, 1_000, 10_000, 2.0, 30_000)
        );
        assert_eq!(
            RetryPolicy::exit_policy(),
            policy(2, 500, 5_000, 2.5, 20_000)
        );
        assert_eq!(RetryPolicy::default(), RetryPolicy::default_policy());
        assert_eq!(RetryPolicy::default_policy().validate("retry"), Ok(()));
        assert_eq!(RetryPolicy::exit_policy().validate("exit_retry"), Ok(()));
    }

    #[test]
    fn backoff_ceiling_grows_by_the_multiplier_until_the_cap() {
        let default_secs = [
            (0, 1.0),
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (6, 10.0),
        ];
        for (retry, secs) in default_secs {
            assert_eq!(
                RetryPolicy::default_policy().backoff_ceiling(retry),
                Duration::from_secs_f64(secs),
                "default retry {retry}"
            );
        }
        let exit_ms = [(1, 500), (2, 1_250), (3, 3_125), (4, 5_000), (5, 5_000)];
        for (retry, millis) in exit_ms {
            assert_eq!(
                RetryPolicy::exit_policy().backoff_ceiling(retry),
                ms(millis),
                "exit retry {retry}"
            );
        }
    }

    #[test]
    fn backoff_ceiling_never_overflows_and_caps_odd_policies() {
        let p = RetryPolicy::default_policy();
        assert_eq!(p.backoff_ceiling(u32::MAX), ms(10_000));
        let cases = [
            (f64::NAN, 5, ms(10_000)),
            (f64::INFINITY, 2, ms(10_000)),
            (-3.0, 2, ms(10_000)),
            (0.5, 2, ms(500)),
            (1.0, 1_000, ms(1_000)),
        ];
        for (multiplier, retry, want) in cases {
            let odd = RetryPolicy { multiplier, ..p };
            assert_eq!(odd.backoff_ceiling(retry), want, "multiplier {multiplier}");
        }
        let inverted = RetryPolicy {
            initial_backoff: ms(20_000),
            ..p
        };
        assert_eq!(inverted.backoff_ceiling(1), ms(10_000));
    }

    #[test]
    fn validate_names_the_offending_config_key() {
        let good = RetryPolicy::exit_policy();
        let cases: [(RetryPolicy, &str, &str); 7] = [
            (
                RetryPolicy {
                    max_attempts: 0,
                    ..good
                },
                "exit_retry",
                "exit_retry.max_attempts",
            ),
            (
                RetryPolicy {
                    total_budget: Duration::ZERO,
                    ..good
                },
                "retry",
                "retry.total_budget",
            ),
            (
                RetryPolicy {
                    multiplier: 0.9,
                    ..good
                },
                "exit_retry",
                "exit_retry.multiplier",
            ),
            (
                RetryPolicy {
                    multiplier: f64::NAN,
                    ..good
                },
                "retry",
                "retry.multiplier",
            ),
            (
                RetryPolicy {
                    multiplier: f64::INFINITY,
                    ..good
                },
                "retry",
                "retry.multiplier",
            ),
            (
                RetryPolicy {
                    initial_backoff: ms(6_000),
                    ..good
                },
                "exit_retry",
                "exit_retry.initial_backoff",
            ),
            (
                RetryPolicy {
                    max_attempts: 0,
                    ..good
                },
                "entry",
                "max_attempts",
            ),
        ];
        for (p, prefix, field) in cases {
            match p.validate(prefix) {
                Err(DomainError::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{p:?} under {prefix}: {other:?}"),
            }
        }
    }

    #[test]
    fn succeeds_on_second_attempt() {
        let mut budget = RetryBudget::new(policy(3, 100, 1_000, 2.0, 5_000), T0);
        let first = budget.begin_attempt(T0, ms(500)).unwrap();
        assert_eq!(
            first,
            AttemptGrant {
                attempt: 1,
                call_deadline: after(T0, ms(500))
            }
        );
        let failed_at = after(T0, ms(200));
        let RetryDecision::RetryAfter(delay) =
            budget.after_failure(failed_at, timeout(), ms(500), u64::MAX)
        else {
            panic!("a timeout within budget must be retried");
        };
        assert!(delay <= ms(100), "{delay:?}");
        let second = budget
            .begin_attempt(after(failed_at, delay), ms(500))
            .unwrap();
        assert_eq!(second.attempt, 2);
        assert_eq!(budget.attempts(), 2);
    }

    #[test]
    fn non_retryable_error_gives_up_after_one_attempt_and_stays_given_up() {
        let mut budget = RetryBudget::new(policy(5, 100, 1_000, 2.0, 5_000), T0);
        budget.begin_attempt(T0, ms(100)).unwrap();
        let funds = ClassifiedError::new(ErrorClass::InsufficientFunds);
        let want = GiveUpReason::NotRetryable(ErrorClass::InsufficientFunds);
        assert_eq!(
            budget.after_failure(after(T0, ms(50)), funds, ms(100), 0),
            RetryDecision::GiveUp(want)
        );
        assert_eq!(budget.attempts(), 1);
        assert_eq!(budget.begin_attempt(after(T0, ms(60)), ms(100)), Err(want));
        assert_eq!(
            budget.after_failure(after(T0, ms(70)), timeout(), ms(100), 0),
            RetryDecision::GiveUp(want)
        );
    }

    #[test]
    fn max_attempts_are_exhausted_after_the_last_failure() {
        let mut budget = RetryBudget::new(policy(2, 100, 100, 1.0, 5_000), T0);
        let mut now = T0;
        let mut decision = RetryDecision::RetryAfter(Duration::ZERO);
        while let RetryDecision::RetryAfter(delay) = decision {
            now = after(now, delay);
            budget.begin_attempt(now, ms(100)).unwrap();
            now = after(now, ms(100));
            decision = budget.after_failure(now, timeout(), ms(100), u64::MAX / 2);
        }
        assert_eq!(
            decision,
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted { attempts: 2 })
        );
        assert_eq!(
            budget.begin_attempt(now, ms(1)),
            Err(GiveUpReason::AttemptsExhausted { attempts: 2 })
        );
    }

    #[test]
    fn total_budget_stops_retries_long_before_many_allowed_attempts() {
        let mut budget = RetryBudget::new(policy(100, 1_000, 1_000, 1.0, 2_500), T0);
        let mut now = T0;
        let mut decision = RetryDecision::RetryAfter(Duration::ZERO);
        while let RetryDecision::RetryAfter(delay) = decision {
            now = after(now, delay);
            budget.begin_attempt(now, ms(100)).unwrap();
            now = after(now, ms(10));
            decision = budget.after_failure(now, timeout(), ms(100), u64::MAX);
        }
        // Calls at 0, ~1.01 s and ~2.02 s; a fourth could not end before 2.5 s.
        assert_eq!(budget.attempts(), 3);
        let RetryDecision::GiveUp(GiveUpReason::BudgetExhausted { elapsed }) = decision else {
            panic!("expected the budget to run out, got {decision:?}");
        };
        assert_eq!(elapsed, now.saturating_since(T0));
        assert!(elapsed > ms(2_000) && elapsed < ms(2_500), "{elapsed:?}");
    }

    #[test]
    fn attempt_that_cannot_end_before_the_budget_is_refused() {
        let mut budget = RetryBudget::new(RetryPolicy::exit_policy(), T0);
        assert_eq!(budget.budget_end(), after(T0, ms(20_000)));
        let late = after(T0, ms(15_000));
        assert_eq!(
            budget.begin_attempt(late, ms(5_001)),
            Err(GiveUpReason::BudgetExhausted {
                elapsed: ms(15_000)
            })
        );
        assert_eq!(budget.attempts(), 0);
        let grant = budget.begin_attempt(late, ms(5_000)).unwrap();
        assert_eq!(grant.call_deadline, budget.budget_end());
        assert_eq!(budget.remaining(late), ms(5_000));
    }

    #[test]
    fn retry_after_raises_the_delay_but_never_past_the_budget() {
        let mut budget = RetryBudget::new(RetryPolicy::default_policy(), T0);
        budget.begin_attempt(T0, ms(1_000)).unwrap();
        let limited = |secs| ClassifiedError {
            class: ErrorClass::RateLimited,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let now = after(T0, ms(1_000));
        assert_eq!(
            budget.after_failure(now, limited(7), ms(1_000), 0),
            RetryDecision::RetryAfter(ms(7_000))
        );
        budget
            .begin_attempt(after(now, ms(7_000)), ms(1_000))
            .unwrap();
        let now = after(T0, ms(9_000));
        assert_eq!(
            budget.after_failure(now, limited(25), ms(1_000), 0),
            RetryDecision::GiveUp(GiveUpReason::BudgetExhausted { elapsed: ms(9_000) })
        );
    }

    #[test]
    fn could_begin_spends_nothing_and_agrees_with_begin_attempt() {
        let mut budget = RetryBudget::new(RetryPolicy::exit_policy(), T0);
        for _ in 0..5 {
            assert_eq!(budget.could_begin(T0, ms(1_000)), Ok(after(T0, ms(1_000))));
        }
        assert_eq!(budget.attempts(), 0);
        assert_eq!(
            budget.could_begin(T0, ms(20_001)),
            Err(GiveUpReason::BudgetExhausted {
                elapsed: Duration::ZERO
            })
        );
        budget.begin_attempt(T0, ms(1_000)).unwrap();
        budget.begin_attempt(T0, ms(1_000)).unwrap();
        assert_eq!(
            budget.could_begin(T0, ms(1_000)),
            Err(GiveUpReason::AttemptsExhausted { attempts: 2 })
        );
    }

    #[test]
    fn exit_policy_retries_once_after_a_timeout_then_succeeds() {
        let mut budget = RetryBudget::new(RetryPolicy::exit_policy(), T0);
        budget.begin_attempt(T0, ms(5_000)).unwrap();
        let timed_out = after(T0, ms(5_000));
        let RetryDecision::RetryAfter(delay) =
            budget.after_failure(timed_out, timeout(), ms(5_000), u64::MAX)
        else {
            panic!("first exit timeout must be retried");
        };
        assert!(delay <= ms(500), "{delay:?}");
        let second = budget
            .begin_attempt(after(timed_out, delay), ms(5_000))
            .unwrap();
        assert_eq!(second.attempt, 2);
        assert!(second.call_deadline <= budget.budget_end());
    }

    #[test]
    fn exit_policy_gives_up_after_two_timeouts_within_twenty_seconds() {
        let mut budget = RetryBudget::new(RetryPolicy::exit_policy(), T0);
        let mut now = T0;
        let mut decision = RetryDecision::RetryAfter(Duration::ZERO);
        while let RetryDecision::RetryAfter(delay) = decision {
            now = after(now, delay);
            let grant = budget.begin_attempt(now, ms(5_000)).unwrap();
            now = grant.call_deadline;
            decision = budget.after_failure(now, timeout(), ms(5_000), u64::MAX);
        }
        assert_eq!(
            decision,
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted { attempts: 2 })
        );
        assert!(now.saturating_since(T0) <= ms(20_000));
    }

    fn arb_policy() -> impl Strategy<Value = RetryPolicy> {
        (
            1u32..8,
            1u64..60_000_000,
            0u64..5_000_000,
            1.0f64..4.0,
            0u64..10_000_000,
        )
            .prop_map(
                |(max_attempts, budget_us, initial_us, multiplier, extra_us)| RetryPolicy {
                    max_attempts,
                    total_budget: Duration::from_micros(budget_us),
                    initial_backoff: Duration::from_micros(initial_us),
                    multiplier,
                    max_backoff: Duration::from_micros(initial_us + extra_us),
                },
            )
    }

    /// One attempt of a simulated loop: (max call time in µs, share of it the call
    /// takes, jitter word, retry-after in µs if the remote sent one).
    type Step = (u64, f64, u64, Option<u64>);

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            (
                0u64..10_000_000,
                0.0f64..=1.0,
                any::<u64>(),
                proptest::option::weighted(0.2, 0u64..20_000_000),
            ),
            1..12,
        )
    }

    proptest! {
        #[test]
        fn simulated_retry_loop_stays_within_every_bound(policy in arb_policy(), steps in arb_steps()) {
            let start = Timestamp::from_micros(123_456);
            let mut budget = RetryBudget::new(policy, start);
            let mut now = start;
            let mut spent = Duration::ZERO;
            for (i, &(max_call_us, share, random, retry_after_us)) in steps.iter().enumerate() {
                let max_call = Duration::from_micros(max_call_us);
                let Ok(grant) = budget.begin_attempt(now, max_call) else { break };
                prop_assert!(grant.call_deadline <= budget.budget_end());
                // Whole microseconds, the resolution of the caller's clock.
                let call = Duration::from_micros((max_call_us as f64 * share) as u64).min(max_call);
                spent += call;
                now = now.saturating_add(call);
                let next_call = steps.get(i + 1).map_or(Duration::ZERO, |s| Duration::from_micros(s.0));
                let error = ClassifiedError {
                    class: ErrorClass::RpcTimeout,
                    retry_after: retry_after_us.map(Duration::from_micros),
                };
                match budget.after_failure(now, error, next_call, random) {
                    RetryDecision::RetryAfter(delay) => {
                        let bound = policy.max_backoff.max(error.retry_after.unwrap_or(Duration::ZERO));
                        prop_assert!(delay <= bound, "delay {delay:?} above {bound:?}");
                        spent += delay;
                        now = now.saturating_add(delay);
                    }
                    RetryDecision::GiveUp(_) => break,
                }
            }
            prop_assert!(spent <= policy.total_budget, "{spent:?} > {:?}", policy.total_budget);
            prop_assert!(budget.attempts() <= policy.max_attempts);
        }
    }
}
