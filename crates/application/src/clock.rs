//! The services' clock: tokio's (so paused time in tests moves it), read as domain
//! [`Timestamp`]s from an epoch fixed when the clock is made. A live bot counts from the
//! Unix epoch, so the times it journals mean the same after a restart; a simulation
//! shares one clock between every start of its bot.

use kyzlo_domain::Timestamp;
use tokio::time::Instant;

/// Reads tokio's clock. Copying it keeps the same origin.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    /// The timestamp at `origin`.
    epoch: Timestamp,
}

impl Clock {
    /// A clock reading [`Timestamp::ZERO`] now: for simulations and tests.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(Timestamp::ZERO)
    }

    /// A clock reading `epoch` now (a live bot passes the Unix time).
    #[must_use]
    pub fn starting_at(epoch: Timestamp) -> Self {
        Self {
            origin: Instant::now(),
            epoch,
        }
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.epoch.saturating_add(self.origin.elapsed())
    }

    /// The tokio instant of a timestamp, for `sleep_until` (now, for a time before the
    /// clock was made).
    #[must_use]
    pub fn instant(&self, at: Timestamp) -> Instant {
        self.origin + at.saturating_since(self.epoch)
    }

    /// Sleeps until `at` (returns at once if it has passed).
    pub async fn sleep_until(&self, at: Timestamp) {
        tokio::time::sleep_until(self.instant(at)).await;
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
