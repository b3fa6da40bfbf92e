//! The exit deadline: the window (30 s by default) from an exit signal to the position's
//! closure, measured on the caller's clock.

use core::fmt;
use core::time::Duration;

use crate::types::Timestamp;

/// The time window an exit has, from `started` (the exit signal) for `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitDeadline {
    started: Timestamp,
    window: Duration,
}

impl ExitDeadline {
    /// The default exit window: 30 seconds.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

    /// A deadline of `window` starting at `started`.
    #[must_use]
    pub const fn new(started: Timestamp, window: Duration) -> Self {
        Self { started, window }
    }

    /// Whether `now` is still inside the window (`now < started + window`).
    #[must_use]
    pub fn is_within(&self, now: Timestamp) -> bool {
        self.elapsed(now) < self.window
    }

    /// Time left at `now`; zero once the window has closed.
    #[must_use]
    pub fn remaining(&self, now: Timestamp) -> Duration {
        self.window.saturating_sub(self.elapsed(now))
    }

    /// Time since the window opened; zero if `now` is before `started`.
    #[must_use]
    pub fn elapsed(&self, now: Timestamp) -> Duration {
        now.saturating_since(self.started)
    }

    /// When the window closes (to the microsecond, saturating at the end of time).
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        self.started.saturating_add(self.window)
    }

    /// When the window opened.
    #[must_use]
    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// The window's length.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Checks that `now` is inside the window.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] with the time elapsed once `now >= started + window`.
    pub fn check(&self, now: Timestamp) -> Result<(), DeadlineExceeded> {
        if self.is_within(now) {
            Ok(())
        } else {
            Err(DeadlineExceeded {
                elapsed: self.elapsed(now),
                window: self.window,
            })
        }
    }
}

/// The exit window closed before the exit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded {
    /// Time since the window opened.
    pub elapsed: Duration,
    /// The window's length.
    pub window: Duration,
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit deadline exceeded: {:?} elapsed of a {:?} window",
            self.elapsed, self.window
        )
    }
}

impl std::error::Error for DeadlineExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(10_000);

    fn at(millis: u64) -> Timestamp {
        T0.saturating_add(Duration::from_millis(millis))
    }

    #[test]
    fn fresh_deadline_is_within_its_window() {
        let d = ExitDeadline::new(T0, ExitDeadline::DEFAULT_WINDOW);
        assert!(d.is_within(T0));
        assert_eq!(d.check(T0), Ok(()));
        assert_eq!(d.remaining(T0), Duration::from_secs(30));
        assert_eq!(d.elapsed(T0), Duration::ZERO);
        assert_eq!(d.started(), T0);
        assert_eq!(d.expires_at(), at(30_000));
    }

    #[test]
    fn deadline_is_exceeded_600_ms_into_a_500_ms_window() {
        let d = ExitDeadline::new(T0, Duration::from_millis(500));
        assert!(!d.is_within(at(600)));
        let err = d.check(at(600)).unwrap_err();
        assert_eq!(
            err,
            DeadlineExceeded {
                elapsed: Duration::from_millis(600),
                window: Duration::from_millis(500),
            }
        );
        assert_eq!(
            err.to_string(),
            "exit deadline exceeded: 600ms elapsed of a 500ms window"
        );
    }

    #[test]
    fn window_is_half_open_at_its_end() {
        let d = ExitDeadline::new(T0, Duration::from_millis(500));
        let cases = [(0, true), (499, true), (500, false), (501, false)];
        for (millis, within) in cases {
            assert_eq!(d.is_within(at(millis)), within, "{millis} ms");
            assert_eq!(d.check(at(millis)).is_ok(), within, "{millis} ms");
        }
    }

    #[test]
    fn remaining_saturates_at_zero_and_elapsed_before_start_is_zero() {
        let d = ExitDeadline::new(T0, Duration::from_millis(500));
        assert_eq!(d.remaining(at(200)), Duration::from_millis(300));
        assert_eq!(d.remaining(at(600)), Duration::ZERO);
        assert_eq!(
            d.remaining(Timestamp::from_micros(u64::MAX)),
            Duration::ZERO
        );
        assert_eq!(d.elapsed(Timestamp::ZERO), Duration::ZERO);
        assert!(d.is_within(Timestamp::ZERO));
    }

    #[test]
    fn huge_window_saturates_instead_of_overflowing() {
        let d = ExitDeadline::new(T0, Duration::MAX);
        assert_eq!(d.expires_at(), Timestamp::from_micros(u64::MAX));
        assert!(d.is_within(Timestamp::from_micros(u64::MAX)));
    }
}
