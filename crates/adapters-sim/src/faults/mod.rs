//! The fault schedule: a seeded, time-keyed answer to "what does the network do to a call
//! or a send made at time `t`?".
//!
//! Draws depend only on the seed and the time of the call (never on how many draws came
//! before), so every policy of a run consults the same schedule and two policies sending
//! at the same moment meet the same fate: the defensive and the naive policy are compared
//! on the same network, not on two lucky or unlucky ones. A call's faults are keyed on its
//! 100 ms bucket; a send's fate on its **leader window** (4 slots, 1.6 s): every copy of
//! a transaction sent to the same leader meets the same congestion, so rebroadcasting the
//! same bytes buys a new draw only when the leader changes. Times are run times: from the
//! start of the simulated market.
//!
//! # The profile ([`FaultProfile`]; `Default` is a healthy network)
//!
//! | field | meaning | default |
//! |---|---|---|
//! | `confirm_latency_median` | median time from send to landing (log-normal) | 600 ms |
//! | `confirm_latency_sigma` | log-space standard deviation of that latency | 0.5 |
//! | `send_timeout` | P(a send call hangs past any client timeout) | 0 |
//! | `timeout_lands` | P(a hung send still lands, late: after the latency + U(2 s, 20 s)) | 0 |
//! | `drop` | P(a send is acknowledged but never lands) | 0 |
//! | `rate_limited` | P(a send or a call is answered 429 with `retry_after`) | 0 |
//! | `retry_after` | the 429's retry-after | 1 s |
//! | `node_unhealthy` | P(-32005 node behind: a send refused, a chain read failing) | 0 |
//! | `blackouts` | `[start, end)` windows when every call hangs and nothing sent lands | none |
//! | `base_slippage_bps` | a fill is this much worse than the price at landing | 5 bps |
//! | `confirm_price_noise_bps` | standard deviation of extra normal noise on each fill | 0 |
//! | `priority_fee_matters` | a priority fee ≥ 200,000 lamports halves the median latency | true |
//! | `slot_time` | time per slot | 400 ms |
//! | `cluster` | the RPC nodes, their lag and history, how they are reached, endpoints down or far behind, forks, preflight, the router ([`ClusterProfile`]) | a healthy cluster |
//!
//! A send draws one uniform `u`: below `rate_limited` it is a 429; then `node_unhealthy`;
//! then `send_timeout` (a second draw decides `timeout_lands`); then `drop`; otherwise it
//! lands after the latency. A call (quote, statuses, height, balances, probe) draws its
//! own `u` the same way for 429 and node-unhealthy. Probabilities are clamped to
//! `[0, 1]` and, if they sum past 1, the later ones get what is left
//! ([`FaultProfile::validate`] refuses such a profile).
//!
//! # Named profiles ([`FaultProfile::named`], [`FaultProfile::NAMES`])
//!
//! | name | what changes from the default |
//! |---|---|
//! | `none` | nothing: a healthy network |
//! | `flaky` | 5 % hung sends (half land late), 5 % drops, 2 % 429s, 1 % node-behind, latency σ 0.7 |
//! | `rpc-blackout` | one 45 s blackout, from 30 s to 75 s of run time |
//! | `late-landing` | 60 % of sends hang, 80 % of those land late (2-20 s after the latency) |
//! | `rate-limited` | 30 % of sends and calls answered 429 with retry-after 2 s |
//! | `slippage-storm` | fills 30 bps worse, plus normal noise of 100 bps on each fill |
//! | `node-behind` | 25 % of sends and chain reads refused with -32005; nodes lag up to 40 slots |
//! | `adversarial` | the cluster of [`ClusterProfile::adversarial`] on an otherwise healthy network |

use std::time::Duration;

use kyzlo_domain::{ErrorClass, Lamports};

use crate::error::SimError;
use crate::rng::SimRng;

mod cluster;
mod named;

pub use cluster::{ClusterProfile, EndpointFault, EndpointOutage, STATUS_CACHE_SLOTS, Topology};
pub use named::ProfileName;

/// The width of the time buckets a call's faults are keyed on.
pub const BUCKET: Duration = Duration::from_millis(100);
/// Slots per leader: sends in the same leader window share their fate.
pub const LEADER_SLOTS: u32 = 4;
/// The priority fee from which, when it matters, the median latency is halved.
pub const FAST_PRIORITY_FEE: Lamports = Lamports::new(200_000);
/// The most buckets [`FaultSchedule::first_landing`] scans (about 28 hours).
pub const MAX_SCAN_BUCKETS: u64 = 1_000_000;

const STREAM_SEND: u64 = 1;
const STREAM_CALL: u64 = 2;
const STREAM_NOISE: u64 = 3;
const STREAM_ENDPOINT_CALL: u64 = 4;

/// Per-send probabilities and latencies of a simulated network (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultProfile {
    /// Median time from send to landing (log-normal).
    pub confirm_latency_median: Duration,
    /// Log-space standard deviation of the landing latency.
    pub confirm_latency_sigma: f64,
    /// P(a send call hangs past any client timeout).
    pub send_timeout: f64,
    /// P(a hung send's transaction still lands, late).
    pub timeout_lands: f64,
    /// P(acknowledged but never lands).
    pub drop: f64,
    /// P(a send or a call is answered 429).
    pub rate_limited: f64,
    /// The 429's retry-after.
    pub retry_after: Duration,
    /// P(-32005 node behind: send refused, chain reads fail).
    pub node_unhealthy: f64,
    /// `[start, end)` windows when every call hangs and nothing sent lands.
    pub blackouts: Vec<(Duration, Duration)>,
    /// A fill is this much worse than the price at landing, in basis points.
    pub base_slippage_bps: f64,
    /// Standard deviation of extra normal noise on each fill, in basis points.
    pub confirm_price_noise_bps: f64,
    /// Whether a priority fee of at least 200,000 lamports halves the median latency.
    pub priority_fee_matters: bool,
    /// Time per slot.
    pub slot_time: Duration,
    /// The RPC cluster and the router.
    pub cluster: ClusterProfile,
}

impl Default for FaultProfile {
    fn default() -> Self {
        Self {
            confirm_latency_median: Duration::from_millis(600),
            confirm_latency_sigma: 0.5,
            send_timeout: 0.0,
            timeout_lands: 0.0,
            drop: 0.0,
            rate_limited: 0.0,
            retry_after: Duration::from_secs(1),
            node_unhealthy: 0.0,
            blackouts: Vec::new(),
            base_slippage_bps: 5.0,
            confirm_price_noise_bps: 0.0,
            priority_fee_matters: true,
            slot_time: Duration::from_millis(400),
            cluster: ClusterProfile::default(),
        }
    }
}

impl FaultProfile {
    /// The names [`FaultProfile::named`] knows.
    pub const NAMES: &[&str] = &[
        "none",
        "flaky",
        "rpc-blackout",
        "late-landing",
        "rate-limited",
        "slippage-storm",
        "node-behind",
        "adversarial",
    ];

    /// A named profile, or `None` for an unknown name.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        name.parse::<ProfileName>().ok().map(ProfileName::profile)
    }

    /// Checks every field against its range.
    ///
    /// # Errors
    /// [`SimError::InvalidParameter`] naming the first bad field: a probability outside
    /// `[0, 1]`, outcome probabilities summing past 1, a σ outside `[0, 5]`, slippage
    /// outside `[0, 10000)` or noise outside `[0, 5000]` bps, a zero slot time or latency,
    /// or an empty blackout window.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field, value, expected| {
            Err(SimError::InvalidParameter {
                field,
                value,
                expected,
            })
        };
        let probabilities = [
            ("send_timeout", self.send_timeout),
            ("timeout_lands", self.timeout_lands),
            ("drop", self.drop),
            ("rate_limited", self.rate_limited),
            ("node_unhealthy", self.node_unhealthy),
        ];
        for (field, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, p, "a probability in 0 ..= 1");
            }
        }
        let sum = self.rate_limited + self.node_unhealthy + self.send_timeout + self.drop;
        if sum > 1.0 + 1e-12 {
            return bad(
                "rate_limited + node_unhealthy + send_timeout + drop",
                sum,
                "at most 1",
            );
        }
        if !(0.0..=5.0).contains(&self.confirm_latency_sigma) {
            return bad(
                "confirm_latency_sigma",
                self.confirm_latency_sigma,
                "0 ..= 5",
            );
        }
        if self.confirm_latency_median.is_zero() {
            return bad("confirm_latency_median", 0.0, "> 0");
        }
        if !(0.0..10_000.0).contains(&self.base_slippage_bps) {
            return bad("base_slippage_bps", self.base_slippage_bps, "0 ..< 10000");
        }
        if !(0.0..=5_000.0).contains(&self.confirm_price_noise_bps) {
            return bad(
                "confirm_price_noise_bps",
                self.confirm_price_noise_bps,
                "0 ..= 5000",
            );
        }
        if self.slot_time.is_zero() {
            return bad("slot_time", 0.0, "> 0");
        }
        for (start, end) in &self.blackouts {
            if start >= end {
                return bad("blackouts", start.as_secs_f64(), "start < end");
            }
        }
        self.cluster.validate()
    }
}

/// What happens to one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFate {
    /// Acknowledged; lands `after` the send.
    Lands {
        /// Send-to-landing latency.
        after: Duration,
    },
    /// The call hangs past any client timeout, yet the transaction lands `after` the send.
    HangsThenLands {
        /// Send-to-landing latency.
        after: Duration,
    },
    /// The call hangs and the transaction never lands.
    HangsNeverLands,
    /// Acknowledged but never lands.
    Dropped,
    /// Refused with 429; not forwarded.
    RateLimited {
        /// The retry-after the endpoint gives.
        retry_after: Duration,
    },
    /// Refused: node behind (-32005); not forwarded.
    NodeUnhealthy,
    /// Inside a blackout: the call hangs, nothing reaches the chain.
    Blackout,
}

impl SendFate {
    /// The landing latency, for fates that land.
    #[must_use]
    pub fn lands_after(self) -> Option<Duration> {
        match self {
            SendFate::Lands { after } | SendFate::HangsThenLands { after } => Some(after),
            _ => None,
        }
    }
}

/// The seeded, time-keyed fault schedule of one run (see the module docs).
#[derive(Debug, Clone)]
pub struct FaultSchedule {
    profile: FaultProfile,
    seed: u64,
}

fn probability(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

fn bucket(at: Duration) -> u64 {
    u64::try_from(at.as_millis() / BUCKET.as_millis()).unwrap_or(u64::MAX)
}

impl FaultSchedule {
    /// The schedule of `profile` for `seed`.
    #[must_use]
    pub fn new(profile: FaultProfile, seed: u64) -> Self {
        Self { profile, seed }
    }

    /// The profile.
    #[must_use]
    pub fn profile(&self) -> &FaultProfile {
        &self.profile
    }

    /// The seed.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether `at` falls in a blackout window.
    #[must_use]
    pub fn in_blackout(&self, at: Duration) -> bool {
        self.profile
            .blackouts
            .iter()
            .any(|(start, end)| *start <= at && at < *end)
    }

    fn median_latency(&self, priority_fee: Lamports) -> Duration {
        let median = self.profile.confirm_latency_median;
        if self.profile.priority_fee_matters && priority_fee >= FAST_PRIORITY_FEE {
            median / 2
        } else {
            median
        }
    }

    /// The leader window of `at`: sends in one window meet one leader.
    #[must_use]
    pub fn leader_window(&self, at: Duration) -> u64 {
        let window = self.profile.slot_time.max(Duration::from_millis(1)) * LEADER_SLOTS;
        u64::try_from(at.as_nanos() / window.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The start of the leader window after the one of `at`.
    #[must_use]
    pub fn next_leader_window(&self, at: Duration) -> Duration {
        let window = self.profile.slot_time.max(Duration::from_millis(1)) * LEADER_SLOTS;
        let next = self.leader_window(at).saturating_add(1);
        Duration::from_nanos(
            u64::try_from(window.as_nanos().saturating_mul(u128::from(next))).unwrap_or(u64::MAX),
        )
    }

    /// Deterministic in (seed, the leader window of `at`): two policies, or two copies
    /// of one transaction, sent to the same leader meet the same fate. The priority fee
    /// changes only the latency.
    #[must_use]
    pub fn send_fate(&self, at: Duration, priority_fee: Lamports) -> SendFate {
        if self.in_blackout(at) {
            return SendFate::Blackout;
        }
        let p = &self.profile;
        let mut rng = SimRng::keyed(self.seed, STREAM_SEND, self.leader_window(at));
        let u = rng.uniform();
        let sigma = if p.confirm_latency_sigma.is_nan() {
            0.0
        } else {
            p.confirm_latency_sigma.clamp(0.0, 5.0)
        };
        let median = self.median_latency(priority_fee).as_secs_f64();
        // Whole microseconds: the clock's resolution, so a landing is due exactly when
        // the clock reads its time.
        let micros = |secs: f64| Duration::from_micros((secs * 1e6).round() as u64);
        let latency = micros(rng.lognormal(median, sigma).clamp(0.001, 600.0));
        let lands_late = rng.uniform() < probability(p.timeout_lands);
        let late_by = micros(2.0 + 18.0 * rng.uniform());

        let mut edge = probability(p.rate_limited);
        if u < edge {
            return SendFate::RateLimited {
                retry_after: p.retry_after,
            };
        }
        edge += probability(p.node_unhealthy);
        if u < edge {
            return SendFate::NodeUnhealthy;
        }
        edge += probability(p.send_timeout);
        if u < edge {
            return if lands_late {
                SendFate::HangsThenLands {
                    after: latency + late_by,
                }
            } else {
                SendFate::HangsNeverLands
            };
        }
        edge += probability(p.drop);
        if u < edge {
            return SendFate::Dropped;
        }
        SendFate::Lands { after: latency }
    }

    /// Whether a quote, status, height, balance or probe call made at `at` fails:
    /// `RpcTimeout` inside a blackout (the caller makes it hang), `RateLimited` (a 429
    /// with the profile's retry-after), `NodeUnhealthy` (-32005), or `None`.
    #[must_use]
    pub fn call_fails(&self, at: Duration) -> Option<ErrorClass> {
        if self.in_blackout(at) {
            return Some(ErrorClass::RpcTimeout);
        }
        self.call_fault(SimRng::keyed(self.seed, STREAM_CALL, bucket(at)).uniform())
    }

    /// As [`FaultSchedule::call_fails`] for a call to one provider's `endpoint` (the
    /// [`Topology::Endpoints`] cluster): each provider draws its own 429s and -32005s,
    /// while a blackout is the whole network's.
    #[must_use]
    pub fn call_fails_on(&self, at: Duration, endpoint: usize) -> Option<ErrorClass> {
        if self.in_blackout(at) {
            return Some(ErrorClass::RpcTimeout);
        }
        let key = bucket(at).wrapping_mul(64).wrapping_add(endpoint as u64);
        self.call_fault(SimRng::keyed(self.seed, STREAM_ENDPOINT_CALL, key).uniform())
    }

    fn call_fault(&self, u: f64) -> Option<ErrorClass> {
        let rate_limited = probability(self.profile.rate_limited);
        if u < rate_limited {
            return Some(ErrorClass::RateLimited);
        }
        if u < rate_limited + probability(self.profile.node_unhealthy) {
            return Some(ErrorClass::NodeUnhealthy);
        }
        None
    }

    /// The extra price noise, in basis points, of a fill landing at `at` (normal with
    /// the profile's `confirm_price_noise_bps` as standard deviation; 0 by default).
    #[must_use]
    pub fn price_noise_bps(&self, at: Duration) -> f64 {
        let sd = self.profile.confirm_price_noise_bps;
        if sd.is_nan() || sd <= 0.0 {
            return 0.0;
        }
        sd.min(5_000.0) * SimRng::keyed(self.seed, STREAM_NOISE, bucket(at)).normal()
    }

    /// The earliest send time `>= from` (scanning leader windows, up to `horizon` after
    /// `from` and at most [`MAX_SCAN_BUCKETS`] of them) whose fate lands, and its landing
    /// time.
    #[must_use]
    pub fn first_landing(
        &self,
        from: Duration,
        horizon: Duration,
        priority_fee: Lamports,
    ) -> Option<(Duration, Duration)> {
        let end = from.saturating_add(horizon);
        let mut at = from;
        for _ in 0..MAX_SCAN_BUCKETS {
            if let Some(after) = self.send_fate(at, priority_fee).lands_after() {
                return Some((at, at.saturating_add(after)));
            }
            let next = self.next_leader_window(at);
            if next <= at || next > end {
                return None;
            }
            at = next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    /// One leader window at the default slot time.
    const WINDOW: Duration = Duration::from_millis(1_600);

    fn median(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    }

    #[test]
    fn every_named_profile_exists_and_is_valid() {
        for name in FaultProfile::NAMES {
            let p = FaultProfile::named(name).unwrap_or_else(|| panic!("{name}"));
            p.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(FaultProfile::named("none"), Some(FaultProfile::default()));
        assert_eq!(FaultProfile::named("chaos-monkey"), None);
        let blackout = FaultProfile::named("rpc-blackout").unwrap();
        let (start, end) = blackout.blackouts[0];
        assert_eq!(end - start, Duration::from_secs(45));
        assert_eq!(
            FaultProfile::named("rate-limited").unwrap().retry_after,
            Duration::from_secs(2)
        );
        assert!(
            FaultProfile::named("slippage-storm")
                .unwrap()
                .confirm_price_noise_bps
                > 0.0
        );
        assert!(FaultProfile::named("node-behind").unwrap().cluster.lagging > 0.0);
        assert_eq!(
            FaultProfile::named("adversarial").unwrap().cluster,
            ClusterProfile::adversarial()
        );
    }

    #[test]
    fn invalid_profiles_are_refused_naming_the_field() {
        let ok = FaultProfile::default();
        let cases: Vec<(&str, FaultProfile)> = vec![
            (
                "drop",
                FaultProfile {
                    drop: 1.5,
                    ..ok.clone()
                },
            ),
            (
                "send_timeout",
                FaultProfile {
                    send_timeout: f64::NAN,
                    ..ok.clone()
                },
            ),
            (
                "rate_limited + node_unhealthy + send_timeout + drop",
                FaultProfile {
                    drop: 0.6,
                    send_timeout: 0.6,
                    ..ok.clone()
                },
            ),
            (
                "confirm_latency_sigma",
                FaultProfile {
                    confirm_latency_sigma: -1.0,
                    ..ok.clone()
                },
            ),
            (
                "confirm_latency_median",
                FaultProfile {
                    confirm_latency_median: Duration::ZERO,
                    ..ok.clone()
                },
            ),
            (
                "base_slippage_bps",
                FaultProfile {
                    base_slippage_bps: 10_000.0,
                    ..ok.clone()
                },
            ),
            (
                "confirm_price_noise_bps",
                FaultProfile {
                    confirm_price_noise_bps: -1.0,
                    ..ok.clone()
                },
            ),
            (
                "slot_time",
                FaultProfile {
                    slot_time: Duration::ZERO,
                    ..ok.clone()
                },
            ),
            (
                "blackouts",
                FaultProfile {
                    blackouts: vec![(MS(5), MS(5))],
                    ..ok.clone()
                },
            ),
            (
                "cluster.outages.endpoint",
                FaultProfile {
                    cluster: ClusterProfile {
                        outages: vec![EndpointOutage {
                            endpoint: 3,
                            from: MS(0),
                            until: MS(10),
                            fault: EndpointFault::Down,
                        }],
                        ..ClusterProfile::default()
                    },
                    ..ok.clone()
                },
            ),
            (
                "cluster.outages",
                FaultProfile {
                    cluster: ClusterProfile {
                        outages: vec![EndpointOutage {
                            endpoint: 0,
                            from: MS(10),
                            until: MS(10),
                            fault: EndpointFault::Lagging { slots: 5 },
                        }],
                        ..ClusterProfile::default()
                    },
                    ..ok.clone()
                },
            ),
        ];
        for (field, profile) in cases {
            match profile.validate() {
                Err(SimError::InvalidParameter { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn send_fates_follow_the_profile_probabilities_over_ten_thousand_draws() {
        let profile = FaultProfile {
            rate_limited: 0.10,
            node_unhealthy: 0.05,
            send_timeout: 0.20,
            timeout_lands: 0.5,
            drop: 0.10,
            retry_after: Duration::from_secs(2),
            ..FaultProfile::default()
        };
        let schedule = FaultSchedule::new(profile, 11);
        let n = 10_000u32;
        let mut counts = [0u32; 6];
        let mut latencies = Vec::new();
        let mut late = Vec::new();
        for i in 0..n {
            let at = WINDOW * i;
            match schedule.send_fate(at, Lamports::new(10_000)) {
                SendFate::RateLimited { retry_after } => {
                    assert_eq!(retry_after, Duration::from_secs(2));
                    counts[0] += 1;
                }
                SendFate::NodeUnhealthy => counts[1] += 1,
                SendFate::HangsThenLands { after } => {
                    counts[2] += 1;
                    late.push(after.as_secs_f64());
                }
                SendFate::HangsNeverLands => counts[3] += 1,
                SendFate::Dropped => counts[4] += 1,
                SendFate::Lands { after } => {
                    counts[5] += 1;
                    latencies.push(after.as_secs_f64());
                }
                SendFate::Blackout => panic!("no blackout configured"),
            }
        }
        let expected = [0.10, 0.05, 0.10, 0.10, 0.10, 0.55];
        for (i, (count, p)) in counts.iter().zip(expected).enumerate() {
            let freq = f64::from(*count) / f64::from(n);
            // Four standard errors.
            let tolerance = 4.0 * (p * (1.0 - p) / f64::from(n)).sqrt();
            assert!((freq - p).abs() < tolerance, "outcome {i}: {freq} vs {p}");
        }
        let m = median(latencies);
        assert!((m / 0.6 - 1.0).abs() < 0.05, "median latency {m}");
        // Late landings come 2 to 20 s after a normal latency.
        assert!(late.iter().all(|s| *s > 2.0));
        let m = median(late);
        assert!((9.0..14.0).contains(&m), "median late latency {m}");
    }

    #[test]
    fn a_high_priority_fee_halves_the_median_latency_when_it_matters() {
        let schedule = FaultSchedule::new(FaultProfile::default(), 5);
        let lat = |fee| {
            median(
                (0..4_000u32)
                    .filter_map(|i| {
                        schedule
                            .send_fate(WINDOW * i, Lamports::new(fee))
                            .lands_after()
                    })
                    .map(|d| d.as_secs_f64())
                    .collect(),
            )
        };
        let (slow, fast) = (lat(10_000), lat(200_000));
        assert!((fast / slow - 0.5).abs() < 0.01, "{slow} {fast}");
        let indifferent = FaultSchedule::new(
            FaultProfile {
                priority_fee_matters: false,
                ..FaultProfile::default()
            },
            5,
        );
        assert_eq!(
            indifferent.send_fate(MS(300), Lamports::new(1_000_000)),
            indifferent.send_fate(MS(300), Lamports::new(0))
        );
    }

    #[test]
    fn send_fates_are_keyed_on_the_leader_window_and_calls_on_the_100_ms_bucket() {
        let flaky = FaultProfile::named("flaky").unwrap();
        let a = FaultSchedule::new(flaky.clone(), 1);
        let b = FaultSchedule::new(flaky.clone(), 1);
        let c = FaultSchedule::new(flaky, 2);
        let fee = Lamports::new(5_000);
        for i in 0..500u64 {
            let window = MS(i * 1_600);
            // Every copy sent to one leader meets the same fate.
            assert_eq!(
                a.send_fate(window, fee),
                a.send_fate(window + MS(1_599), fee)
            );
            assert_eq!(a.send_fate(window, fee), b.send_fate(window, fee));
            assert_eq!(a.leader_window(window + MS(800)), i);
            assert_eq!(a.next_leader_window(window + MS(800)), window + WINDOW);
            let at = MS(i * 100);
            assert_eq!(a.call_fails(at), a.call_fails(at + MS(50)));
        }
        let fates = |s: &FaultSchedule| -> Vec<SendFate> {
            (0..200u32)
                .map(|i| s.send_fate(WINDOW * i, Lamports::new(0)))
                .collect()
        };
        assert_ne!(fates(&a), fates(&c));
    }

    #[test]
    fn blackouts_hang_calls_and_sends_inside_the_window_only() {
        let schedule = FaultSchedule::new(FaultProfile::named("rpc-blackout").unwrap(), 3);
        let fee = Lamports::new(0);
        assert!(!schedule.in_blackout(MS(29_999)));
        assert!(schedule.in_blackout(MS(30_000)));
        assert!(schedule.in_blackout(MS(74_999)));
        assert!(!schedule.in_blackout(MS(75_000)));
        assert_eq!(schedule.send_fate(MS(40_000), fee), SendFate::Blackout);
        assert_eq!(
            schedule.call_fails(MS(40_000)),
            Some(ErrorClass::RpcTimeout)
        );
        assert!(matches!(
            schedule.send_fate(MS(75_000), fee),
            SendFate::Lands { .. }
        ));
        assert_eq!(schedule.call_fails(MS(75_000)), None);
    }

    #[test]
    fn calls_fail_at_the_profile_rates() {
        let profile = FaultProfile {
            rate_limited: 0.2,
            node_unhealthy: 0.1,
            ..FaultProfile::default()
        };
        let schedule = FaultSchedule::new(profile, 8);
        let n = 10_000u32;
        let outcomes: Vec<_> = (0..n).map(|i| schedule.call_fails(BUCKET * i)).collect();
        let freq = |class| {
            f64::from(
                u32::try_from(outcomes.iter().filter(|o| **o == Some(class)).count()).unwrap(),
            ) / f64::from(n)
        };
        assert!((freq(ErrorClass::RateLimited) - 0.2).abs() < 0.016);
        assert!((freq(ErrorClass::NodeUnhealthy) - 0.1).abs() < 0.012);
        let healthy = FaultSchedule::new(FaultProfile::default(), 8);
        assert!((0..n).all(|i| healthy.call_fails(BUCKET * i).is_none()));
        assert_eq!(healthy.price_noise_bps(MS(100)), 0.0);
    }

    #[test]
    fn each_provider_draws_its_own_call_faults_but_shares_the_network_s_blackouts() {
        let profile = FaultProfile {
            rate_limited: 0.3,
            blackouts: vec![(Duration::from_secs(10), Duration::from_secs(20))],
            ..FaultProfile::default()
        };
        let schedule = FaultSchedule::new(profile, 9);
        let n = 10_000u32;
        let (mut first, mut second, mut both) = (0u32, 0u32, 0u32);
        for i in 0..n {
            let at = Duration::from_secs(30) + BUCKET * i;
            let a = schedule.call_fails_on(at, 0) == Some(ErrorClass::RateLimited);
            let b = schedule.call_fails_on(at, 1) == Some(ErrorClass::RateLimited);
            first += u32::from(a);
            second += u32::from(b);
            both += u32::from(a && b);
        }
        let freq = |k: u32| f64::from(k) / f64::from(n);
        assert!((freq(first) - 0.3).abs() < 0.02 && (freq(second) - 0.3).abs() < 0.02);
        // Independent: both refuse as often as the product says, not as often as one.
        assert!((freq(both) - 0.09).abs() < 0.015, "{}", freq(both));
        for endpoint in 0..3 {
            assert_eq!(
                schedule.call_fails_on(MS(15_000), endpoint),
                Some(ErrorClass::RpcTimeout)
            );
        }
    }

    #[test]
    fn an_outage_covers_its_endpoint_over_its_window_only() {
        let cluster = ClusterProfile {
            outages: vec![EndpointOutage {
                endpoint: 1,
                from: MS(1_000),
                until: MS(2_000),
                fault: EndpointFault::Down,
            }],
            ..ClusterProfile::default()
        };
        assert_eq!(cluster.endpoint_fault(1, MS(999)), None);
        assert_eq!(
            cluster.endpoint_fault(1, MS(1_000)),
            Some(EndpointFault::Down)
        );
        assert_eq!(
            cluster.endpoint_fault(1, MS(1_999)),
            Some(EndpointFault::Down)
        );
        assert_eq!(cluster.endpoint_fault(1, MS(2_000)), None);
        assert_eq!(cluster.endpoint_fault(0, MS(1_500)), None);
        assert!(!cluster.all_endpoints_down(MS(1_500)));
        let dark = ClusterProfile {
            nodes: 1,
            ..cluster
        };
        assert!(!dark.all_endpoints_down(MS(1_500)), "endpoint 0 is up");
    }

    #[test]
    fn first_landing_agrees_with_send_fate() {
        let profile = FaultProfile {
            send_timeout: 0.4,
            timeout_lands: 0.3,
            drop: 0.3,
            rate_limited: 0.1,
            blackouts: vec![(Duration::from_secs(10), Duration::from_secs(20))],
            ..FaultProfile::default()
        };
        let schedule = FaultSchedule::new(profile, 21);
        let fee = Lamports::new(50_000);
        let mut found = 0;
        for i in 0..300u64 {
            let from = MS(i * 73);
            let Some((sent, landed)) = schedule.first_landing(from, Duration::from_secs(30), fee)
            else {
                continue;
            };
            found += 1;
            assert!(sent >= from && sent <= from + Duration::from_secs(30));
            let after = schedule.send_fate(sent, fee).lands_after().unwrap();
            assert_eq!(landed, sent + after);
            // No earlier leader window from `from` on would have landed.
            let mut t = from;
            while t < sent {
                assert_eq!(schedule.send_fate(t, fee).lands_after(), None, "{t:?}");
                t = schedule.next_leader_window(t);
            }
        }
        assert!(found > 250, "{found}");
        // Nothing lands inside the blackout, and nothing at all with a zero horizon on a
        // bucket that does not land.
        let (sent, _) = schedule
            .first_landing(MS(10_000), Duration::from_secs(60), fee)
            .unwrap();
        assert!(sent >= MS(20_000));
        assert_eq!(schedule.first_landing(MS(15_000), MS(100), fee), None);
        let never = FaultSchedule::new(
            FaultProfile {
                drop: 1.0,
                ..FaultProfile::default()
            },
            1,
        );
        assert_eq!(never.first_landing(MS(0), Duration::MAX, fee), None);
    }

    #[test]
    fn price_noise_is_seeded_per_bucket_with_the_profile_spread() {
        let schedule = FaultSchedule::new(FaultProfile::named("slippage-storm").unwrap(), 4);
        let draws: Vec<f64> = (0..10_000u32)
            .map(|i| schedule.price_noise_bps(BUCKET * i))
            .collect();
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let sd = (draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(
            mean.abs() < 4.0 && (sd / 100.0 - 1.0).abs() < 0.03,
            "{mean} {sd}"
        );
        assert_eq!(
            schedule.price_noise_bps(MS(1_234)),
            schedule.price_noise_bps(MS(1_299))
        );
    }
}
