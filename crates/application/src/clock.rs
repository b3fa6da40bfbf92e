//! The services' clock: tokio's (so paused time in tests moves it), read as domain
//! [`Timestamp`]s since the clock was made.

use std::time::Duration;

use kyzlo_domain::Timestamp;
use tokio::time::Instant;

/// Reads tokio's clock. Copying it keeps the same origin.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        Timestamp::from_micros(micros)
    }

    /// The tokio instant of a timestamp, for `sleep_until`.
    #[must_use]
    pub fn instant(&self, at: Timestamp) -> Instant {
        self.origin + Duration::from_micros(at.as_micros())
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
