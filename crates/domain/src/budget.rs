//! A provider's request budget, kept on our side so that kyzlo never asks for more than
//! the plan allows: at most `limit` requests in any `window` (a sliding window, as
//! Jupiter counts its plans: 60 s). Requests of low priority (price reads, entries) are
//! only made while more than `reserve` remain, so an exit's calls always find room; a
//! 429's reset time closes the budget until then.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::DomainError;
use crate::types::Timestamp;

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// An exit and its confirmations, or start-up reconciliation: waits for room, never
    /// refused.
    Protect,
    /// A price read or an entry: only made while the reserve stays untouched.
    Routine,
}

/// What the budget says to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go now (the request is counted).
    Go,
    /// Wait this long, then ask again.
    Wait(Duration),
    /// Not now: the room left is kept for exits.
    Deferred,
}

/// A sliding-window request budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBudget {
    limit: u32,
    window: Duration,
    reserve: u32,
    sent: VecDeque<Timestamp>,
    closed_until: Timestamp,
}

impl RequestBudget {
    /// `limit` requests per `window`, `reserve` of them kept for [`Urgency::Protect`].
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] when `limit` or `window` is zero, or `reserve` is not
    /// below `limit`.
    pub fn new(limit: u32, window: Duration, reserve: u32) -> Result<Self, DomainError> {
        if limit == 0 || window.is_zero() {
            return Err(DomainError::InvalidConfig {
                field: "requests_per_minute",
                expected: "at least 1 request in a window longer than zero",
            });
        }
        if reserve >= limit {
            return Err(DomainError::InvalidConfig {
                field: "reserved_for_exits",
                expected: "fewer than the requests per window",
            });
        }
        Ok(Self {
            limit,
            window,
            reserve,
            sent: VecDeque::new(),
            closed_until: Timestamp::ZERO,
        })
    }

    /// Requests still allowed at `now`.
    pub fn available(&mut self, now: Timestamp) -> u32 {
        while self
            .sent
            .front()
            .is_some_and(|t| self.window_end(*t) <= now)
        {
            self.sent.pop_front();
        }
        if now < self.closed_until {
            return 0;
        }
        self.limit
            .saturating_sub(u32::try_from(self.sent.len()).unwrap_or(u32::MAX))
    }

    fn window_end(&self, sent: Timestamp) -> Timestamp {
        sent.saturating_add(self.window)
    }

    /// Asks for one request of `urgency` at `now`.
    pub fn admit(&mut self, urgency: Urgency, now: Timestamp) -> Admission {
        let available = self.available(now);
        let floor = match urgency {
            Urgency::Protect => 0,
            Urgency::Routine => self.reserve,
        };
        if available > floor {
            self.sent.push_back(now);
            return Admission::Go;
        }
        match urgency {
            Urgency::Routine => Admission::Deferred,
            Urgency::Protect => {
                let oldest_frees = self.sent.front().map_or(now, |t| self.window_end(*t));
                let at = oldest_frees.max(self.closed_until).max(now);
                // Never a zero wait: the caller asks again after it.
                Admission::Wait(at.saturating_since(now).max(Duration::from_millis(1)))
            }
        }
    }

    /// The provider answered 429 with a reset `after` from `now`: nothing is asked before.
    /// The reset is held to one window at most: the plan's count starts again within a
    /// window, and a hostile or mistaken reset (hours) must not keep exits waiting.
    pub fn rate_limited(&mut self, now: Timestamp, after: Duration) {
        let after = after.min(self.window);
        self.closed_until = self.closed_until.max(now.saturating_add(after));
    }

    /// Requests allowed per window.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window the limit counts over.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Requests of each window kept for exits.
    #[must_use]
    pub fn reserve(&self) -> u32 {
        self.reserve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1_000)
    }

    #[test]
    fn routine_requests_leave_the_reserve_to_exits() {
        let mut b = RequestBudget::new(10, Duration::from_secs(60), 4).unwrap();
        let routine = (0..20)
            .filter(|_| b.admit(Urgency::Routine, at(0)) == Admission::Go)
            .count();
        assert_eq!(routine, 6, "the reserve of 4 is untouched");
        for _ in 0..4 {
            assert_eq!(b.admit(Urgency::Protect, at(1)), Admission::Go);
        }
        // Full: an exit waits for the oldest request to leave the window, a price read
        // is deferred.
        assert_eq!(
            b.admit(Urgency::Protect, at(1)),
            Admission::Wait(Duration::from_secs(59))
        );
        assert_eq!(b.admit(Urgency::Routine, at(1)), Admission::Deferred);
        // A window later, everything sent at 0 s has left it.
        assert_eq!(b.available(at(60)), 6);
        assert_eq!(b.admit(Urgency::Protect, at(60)), Admission::Go);
    }

    #[test]
    fn a_429_closes_the_budget_until_its_reset() {
        let mut b = RequestBudget::new(60, Duration::from_secs(60), 6).unwrap();
        b.rate_limited(at(10), Duration::from_secs(7));
        assert_eq!(b.admit(Urgency::Routine, at(12)), Admission::Deferred);
        assert_eq!(
            b.admit(Urgency::Protect, at(12)),
            Admission::Wait(Duration::from_secs(5))
        );
        assert_eq!(b.admit(Urgency::Protect, at(17)), Admission::Go);
    }

    #[test]
    fn a_429_reset_longer_than_the_window_closes_the_budget_for_one_window() {
        let mut b = RequestBudget::new(60, Duration::from_secs(60), 6).unwrap();
        b.rate_limited(at(10), Duration::from_secs(6 * 3_600));
        assert_eq!(
            b.admit(Urgency::Protect, at(10)),
            Admission::Wait(Duration::from_secs(60))
        );
        assert_eq!(b.admit(Urgency::Routine, at(69)), Admission::Deferred);
        assert_eq!(b.admit(Urgency::Protect, at(70)), Admission::Go);
        assert_eq!(b.admit(Urgency::Routine, at(70)), Admission::Go);
    }

    #[test]
    fn nonsense_limits_are_refused() {
        assert!(RequestBudget::new(0, Duration::from_secs(60), 0).is_err());
        assert!(RequestBudget::new(10, Duration::ZERO, 0).is_err());
        assert!(RequestBudget::new(10, Duration::from_secs(60), 10).is_err());
    }
}
