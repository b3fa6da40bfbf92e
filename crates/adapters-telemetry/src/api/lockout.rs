//! Back-off for wrong credentials. Bearer tokens and approval keys are counted apart: a
//! client (by IP address) that sends more than [`FREE_TRIES`] wrong ones of a kind in a
//! row is refused with 429 and `Retry-After` for that kind, for a time that doubles with
//! each further failure up to [`MAX_LOCK`], without its credential being looked at. Each
//! try takes its strike *before* the comparison ([`Lockout::begin`]), so requests sent at
//! once cannot each slip past the count; a right credential of the same kind gives the
//! strike back and clears the client's count and the kind's alert count; a right bearer
//! token clears nothing about approval keys, so holding the token does not buy more
//! guesses at the key. Once [`ALERT_AFTER`] refusals of a kind (wrong credentials, and
//! requests refused while locked out) have piled up across clients, the operator is paged
//! once (again only after a success of that kind). The comparison itself stays
//! constant-time; this only bounds how often it can be tried.
//!
//! Clients are told apart by the address the connection comes from, an IPv6 one by its
//! /64 prefix (what one host or site is usually given, so a client cannot take a fresh
//! count from each of its addresses; an IPv4 address mapped into IPv6 counts as the
//! IPv4 address). Behind a reverse
//! proxy every client shares the proxy's address, so a stranger's wrong tokens hold back
//! the operator too (OPERATIONS.md says to rate-limit at the proxy then).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Wrong credentials of a kind a client may send before it is made to wait.
pub const FREE_TRIES: u32 = 5;
/// The longest a client is made to wait.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Wrong credentials of a kind, across clients, that page the operator.
pub const ALERT_AFTER: u32 = 20;
/// Clients remembered at most; past it the ones not locked out are forgotten.
const MAX_CLIENTS: usize = 10_000;

/// The credentials counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Credential {
    /// The bearer token of every control route.
    Bearer,
    /// The approval key that resumes trading.
    ApprovalKey,
}

impl Credential {
    const fn index(self) -> usize {
        match self {
            Self::Bearer => 0,
            Self::ApprovalKey => 1,
        }
    }
}

#[derive(Debug, Default)]
struct Strikes {
    failures: u32,
    until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<(IpAddr, Credential), Strikes>,
    failures: [u32; 2],
    alerted: [bool; 2],
}

impl State {
    /// Counts one refusal of `kind`; `Some(count)` the first time the count reaches the
    /// threshold.
    fn count_refusal(&mut self, kind: Credential) -> Option<u32> {
        let i = kind.index();
        self.failures[i] = self.failures[i].saturating_add(1);
        (!self.alerted[i] && self.failures[i] >= ALERT_AFTER).then(|| {
            self.alerted[i] = true;
            self.failures[i]
        })
    }
}

/// The leading bits of an IPv6 address that name one client.
const IPV6_CLIENT_PREFIX_BITS: u32 = 64;

/// The client an address belongs to: an IPv4 address itself (also when mapped into
/// IPv6), an IPv6 address's /64 prefix.
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_CLIENT_PREFIX_BITS);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// How long a client waits after `failures` wrong credentials in a row.
fn wait_after(failures: u32) -> Option<Duration> {
    (failures > FREE_TRIES).then(|| {
        let doublings = (failures - FREE_TRIES - 1).min(20);
        MAX_LOCK.min(Duration::from_secs(1u64 << doublings))
    })
}

/// The API's record of wrong credentials.
#[derive(Debug, Default)]
pub(crate) struct Lockout {
    state: Mutex<State>,
}

/// What a refusal led to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failed {
    /// The client must wait this long before trying again, if at all.
    pub wait: Option<Duration>,
    /// Page the operator now: this many refusals of the kind since its last success.
    pub alert: Option<u32>,
}

impl Lockout {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts one try of a `kind` credential from `client`: refused (and counted toward
    /// the alert) while the client is made to wait; otherwise the try takes a strike now,
    /// which [`Lockout::succeeded`] or [`Lockout::not_compared`] gives back.
    ///
    /// # Errors
    /// [`Failed`] with the wait when the client is locked out.
    pub(crate) fn begin(&self, client: IpAddr, kind: Credential) -> Result<(), Failed> {
        let client = client_of(client);
        let now = Instant::now();
        let mut state = self.state();
        if let Some(until) = state.clients.get(&(client, kind)).and_then(|s| s.until)
            && until > now
        {
            let alert = state.count_refusal(kind);
            return Err(Failed {
                wait: Some(until - now),
                alert,
            });
        }
        if state.clients.len() >= MAX_CLIENTS && !state.clients.contains_key(&(client, kind)) {
            state
                .clients
                .retain(|_, s| s.until.is_some_and(|until| until > now));
        }
        let strikes = state.clients.entry((client, kind)).or_default();
        strikes.failures = strikes.failures.saturating_add(1);
        strikes.until = wait_after(strikes.failures).map(|w| now + w);
        Ok(())
    }

    /// The credential of a try was wrong: its strike stays. Returns the wait the client
    /// now has and whether to page.
    pub(crate) fn failed(&self, client: IpAddr, kind: Credential) -> Failed {
        let client = client_of(client);
        let now = Instant::now();
        let mut state = self.state();
        let wait = state
            .clients
            .get(&(client, kind))
            .and_then(|s| s.until)
            .filter(|until| *until > now)
            .map(|until| until - now);
        let alert = state.count_refusal(kind);
        Failed { wait, alert }
    }

    /// The credential of a try was right: the client's strikes of that kind and the
    /// kind's alert count are cleared.
    pub(crate) fn succeeded(&self, client: IpAddr, kind: Credential) {
        let client = client_of(client);
        let mut state = self.state();
        state.clients.remove(&(client, kind));
        state.failures[kind.index()] = 0;
        state.alerted[kind.index()] = false;
    }

    /// A try ended before its credential was compared: its strike is given back.
    pub(crate) fn not_compared(&self, client: IpAddr, kind: Credential) {
        let client = client_of(client);
        let mut state = self.state();
        if let Some(strikes) = state.clients.get_mut(&(client, kind)) {
            strikes.failures = strikes.failures.saturating_sub(1);
            if wait_after(strikes.failures).is_none() {
                strikes.until = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Credential::{ApprovalKey, Bearer};

    /// One wrong try; the wait it leaves, or the wait that refused it.
    fn wrong(lockout: &Lockout, client: IpAddr, kind: Credential) -> Failed {
        match lockout.begin(client, kind) {
            Ok(()) => lockout.failed(client, kind),
            Err(refused) => refused,
        }
    }

    fn right(lockout: &Lockout, client: IpAddr, kind: Credential) -> Result<(), Failed> {
        lockout.begin(client, kind)?;
        lockout.succeeded(client, kind);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_waits_longer_after_each_failure_past_the_free_tries() {
        let lockout = Lockout::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..FREE_TRIES {
            assert_eq!(wrong(&lockout, a, Bearer).wait, None);
        }
        assert_eq!(
            wrong(&lockout, a, Bearer).wait,
            Some(Duration::from_secs(1))
        );
        let locked = |ip| lockout.begin(ip, Bearer).err().and_then(|f| f.wait);
        assert_eq!(locked(a), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            wrong(&lockout, a, Bearer).wait,
            Some(Duration::from_secs(2))
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            wrong(&lockout, a, Bearer).wait,
            Some(Duration::from_secs(4))
        );
        assert_eq!(locked(a), Some(Duration::from_secs(4)));
        assert!(
            lockout.begin(b, Bearer).is_ok(),
            "another client is not held back"
        );
        lockout.succeeded(b, Bearer);
        for _ in 0..40 {
            tokio::time::advance(MAX_LOCK).await;
            wrong(&lockout, a, Bearer);
        }
        assert_eq!(locked(a), Some(MAX_LOCK));
        tokio::time::advance(MAX_LOCK).await;
        assert!(right(&lockout, a, Bearer).is_ok());
        assert_eq!(
            wrong(&lockout, a, Bearer).wait,
            None,
            "a success starts over"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix_and_an_ipv4_one_its_address() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let table = [
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
            ("2001:db8:1:2::1", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("192.0.2.7", "192.0.2.7"),
            ("192.0.2.8", "192.0.2.8"),
        ];
        for (address, client) in table {
            assert_eq!(client_of(v6(address)), v6(client), "{address}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_of_one_ipv6_64_share_a_count_and_other_prefixes_do_not() {
        let lockout = Lockout::default();
        let address = |host: u16| IpAddr::from([0x2001, 0xdb8, 7, 7, 0, 0, 0, host]);
        // Each wrong try from a new address of the same /64: still one client.
        for host in 0..=u16::try_from(FREE_TRIES).unwrap() {
            wrong(&lockout, address(host), Bearer);
        }
        assert!(
            lockout.begin(address(1_000), Bearer).is_err(),
            "a fresh address in the /64 is locked out too"
        );
        let neighbour = IpAddr::from([0x2001, 0xdb8, 7, 8, 0, 0, 0, 1]);
        assert!(lockout.begin(neighbour, Bearer).is_ok(), "another /64");
        // A right token from any address of the /64 clears the client.
        tokio::time::advance(MAX_LOCK).await;
        assert!(right(&lockout, address(42), Bearer).is_ok());
        assert_eq!(wrong(&lockout, address(0), Bearer).wait, None);
    }

    #[tokio::test(start_paused = true)]
    async fn tries_sent_at_once_each_take_a_strike_before_the_comparison() {
        let lockout = Lockout::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        // A hundred requests in flight together: only the free tries and one more get to
        // compare their key; the rest are refused before it.
        let started = (0..100)
            .filter(|_| lockout.begin(a, ApprovalKey).is_ok())
            .count();
        assert_eq!(started, usize::try_from(FREE_TRIES).unwrap() + 1);
        // A try that ended before its key was compared gives its strike back.
        let c: IpAddr = [127, 0, 0, 3].into();
        for _ in 0..3 * FREE_TRIES {
            lockout.begin(c, ApprovalKey).unwrap();
            lockout.not_compared(c, ApprovalKey);
        }
        assert!(lockout.begin(c, ApprovalKey).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_right_bearer_token_buys_no_more_guesses_at_the_approval_key() {
        let lockout = Lockout::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..=FREE_TRIES {
            wrong(&lockout, a, ApprovalKey);
            assert!(right(&lockout, a, Bearer).is_ok());
        }
        assert!(
            lockout.begin(a, ApprovalKey).is_err(),
            "the key's back-off survives right tokens"
        );
        // ... and a client locked out of the key can still halt with its right token.
        assert!(right(&lockout, a, Bearer).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_operator_is_paged_once_past_the_threshold_until_a_success_of_that_kind() {
        let lockout = Lockout::default();
        let mut alerts = Vec::new();
        for i in 0..3 * ALERT_AFTER {
            let client: IpAddr = [10, 0, 0, u8::try_from(i % 7).unwrap()].into();
            if let Some(n) = wrong(&lockout, client, ApprovalKey).alert {
                alerts.push(n);
            }
        }
        assert_eq!(alerts, [ALERT_AFTER]);
        // A right bearer token does not re-arm the key's page.
        lockout.succeeded([10, 0, 0, 1].into(), Bearer);
        for _ in 0..ALERT_AFTER {
            if let Some(n) = wrong(&lockout, [10, 0, 0, 9].into(), ApprovalKey).alert {
                alerts.push(n);
            }
        }
        assert_eq!(alerts, [ALERT_AFTER]);
        lockout.succeeded([10, 0, 0, 1].into(), ApprovalKey);
        for _ in 0..ALERT_AFTER {
            if let Some(n) = wrong(&lockout, [10, 0, 0, 10].into(), ApprovalKey).alert {
                alerts.push(n);
            }
        }
        assert_eq!(alerts, [ALERT_AFTER, ALERT_AFTER]);
        // A client hammering while locked out is counted too.
        let c: IpAddr = [10, 0, 0, 20].into();
        for _ in 0..=FREE_TRIES {
            wrong(&lockout, c, Bearer);
        }
        let alert =
            (0..ALERT_AFTER).find_map(|_| lockout.begin(c, Bearer).err().and_then(|f| f.alert));
        assert_eq!(alert, Some(ALERT_AFTER));
    }
}
