//! Back-off for wrong credentials: a client (by IP address) that sends a wrong bearer
//! token or approval key more than [`FREE_TRIES`] times in a row is refused with 429 and
//! `Retry-After`, for a time that doubles with each further failure up to [`MAX_LOCK`],
//! without its credentials being looked at; a success clears it. Once [`ALERT_AFTER`]
//! refusals (wrong credentials, and requests refused while locked out) have piled up
//! across clients, the operator is paged once (again only after a success). The credential comparison itself stays constant-time; this only bounds how
//! often it can be tried.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Wrong credentials a client may send before it is made to wait.
pub const FREE_TRIES: u32 = 5;
/// The longest a client is made to wait.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Wrong credentials, across clients, that page the operator.
pub const ALERT_AFTER: u32 = 20;
/// Clients remembered at most; past it the ones not locked out are forgotten.
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Default)]
struct Strikes {
    failures: u32,
    until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<IpAddr, Strikes>,
    failures: u32,
    alerted: bool,
}

impl State {
    /// Counts one refusal; `Some(count)` the first time the count reaches the threshold.
    fn count_refusal(&mut self) -> Option<u32> {
        self.failures = self.failures.saturating_add(1);
        (!self.alerted && self.failures >= ALERT_AFTER).then(|| {
            self.alerted = true;
            self.failures
        })
    }
}

/// The API's record of wrong credentials.
#[derive(Debug, Default)]
pub(crate) struct Lockout {
    state: Mutex<State>,
}

/// What a failure led to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failed {
    /// The client must wait this long before trying again, if at all.
    pub wait: Option<Duration>,
    /// Page the operator now: this many wrong credentials since the last success.
    pub alert: Option<u32>,
}

impl Lockout {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `client` must still wait, if it is locked out; a request refused for it
    /// counts toward the alert.
    pub(crate) fn locked(&self, client: IpAddr) -> Option<Failed> {
        let now = Instant::now();
        let mut state = self.state();
        let until = state.clients.get(&client)?.until?;
        if until <= now {
            return None;
        }
        let alert = state.count_refusal();
        Some(Failed {
            wait: Some(until - now),
            alert,
        })
    }

    /// Records a wrong credential from `client`.
    pub(crate) fn failed(&self, client: IpAddr) -> Failed {
        let now = Instant::now();
        let mut state = self.state();
        if state.clients.len() >= MAX_CLIENTS && !state.clients.contains_key(&client) {
            state
                .clients
                .retain(|_, s| s.until.is_some_and(|until| until > now));
        }
        let strikes = state.clients.entry(client).or_default();
        strikes.failures = strikes.failures.saturating_add(1);
        let wait = (strikes.failures > FREE_TRIES).then(|| {
            let doublings = (strikes.failures - FREE_TRIES - 1).min(20);
            MAX_LOCK.min(Duration::from_secs(1u64 << doublings))
        });
        strikes.until = wait.map(|w| now + w);
        let alert = state.count_refusal();
        Failed { wait, alert }
    }

    /// Records a right credential from `client`: its strikes and the alert are cleared.
    pub(crate) fn succeeded(&self, client: IpAddr) {
        let mut state = self.state();
        state.clients.remove(&client);
        state.failures = 0;
        state.alerted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_waits_longer_after_each_failure_past_the_free_tries() {
        let lockout = Lockout::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..FREE_TRIES {
            assert_eq!(lockout.failed(a).wait, None);
        }
        let wait = |ip| lockout.locked(ip).and_then(|f| f.wait);
        assert_eq!(wait(a), None);
        assert_eq!(lockout.failed(a).wait, Some(Duration::from_secs(1)));
        assert_eq!(lockout.failed(a).wait, Some(Duration::from_secs(2)));
        assert_eq!(lockout.failed(a).wait, Some(Duration::from_secs(4)));
        assert_eq!(wait(a), Some(Duration::from_secs(4)));
        assert_eq!(wait(b), None, "another client is not held back");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(wait(a), None);
        for _ in 0..40 {
            lockout.failed(a);
        }
        assert_eq!(wait(a), Some(MAX_LOCK));
        lockout.succeeded(a);
        assert_eq!(wait(a), None);
        assert_eq!(lockout.failed(a).wait, None, "a success starts over");
    }

    #[tokio::test(start_paused = true)]
    async fn the_operator_is_paged_once_past_the_threshold_until_a_success() {
        let lockout = Lockout::default();
        let mut alerts = Vec::new();
        for i in 0..3 * ALERT_AFTER {
            let client: IpAddr = [10, 0, 0, u8::try_from(i % 7).unwrap()].into();
            if let Some(n) = lockout.failed(client).alert {
                alerts.push(n);
            }
        }
        assert_eq!(alerts, [ALERT_AFTER]);
        lockout.succeeded([10, 0, 0, 1].into());
        for _ in 0..ALERT_AFTER {
            if let Some(n) = lockout.failed([10, 0, 0, 9].into()).alert {
                alerts.push(n);
            }
        }
        assert_eq!(alerts, [ALERT_AFTER, ALERT_AFTER]);
        // A client hammering while locked out is counted too.
        lockout.succeeded([10, 0, 0, 9].into());
        let c: IpAddr = [10, 0, 0, 20].into();
        for _ in 0..=FREE_TRIES {
            lockout.failed(c);
        }
        let alert = (0..ALERT_AFTER).find_map(|_| lockout.locked(c).and_then(|f| f.alert));
        assert_eq!(alert, Some(ALERT_AFTER));
    }
}
