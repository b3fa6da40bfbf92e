//! One explorer run's world, drawn from its seed: a volatile market, a hostile cluster
//! and network, crashes of the bot at seeded instants (some right after a landing),
//! operator actions, and journal writes that fail. Every part the shrinker may remove is
//! a [`Knob`]; a schedule is its seed plus the knobs turned off, so a shrunk failure
//! replays from one short command line.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kyzlo_adapters_sim::faults::{ClusterProfile, FaultProfile, Topology};
use kyzlo_adapters_sim::market::{CrashSpec, GeneratorConfig, Regime};
use kyzlo_adapters_sim::rng::SimRng;

/// How long the bot trades in one run (market time).
pub const HORIZON: Duration = Duration::from_secs(360);

/// When the bot is killed, and for how long it stays down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// At this run time.
    At(Duration),
    /// This long after the `nth` landing of the run (0-based), if there is one.
    AfterLanding {
        /// Which landing.
        nth: u32,
        /// How long after it.
        delay: Duration,
    },
    /// This long after the `nth` exit intent of the run (0-based) was journaled, if there
    /// is one: in the middle of an exit, unless it ended first.
    InExit {
        /// Which exit intent.
        nth: u32,
        /// How long after it.
        delay: Duration,
    },
}

/// A kill of the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    pub point: CrashPoint,
    /// How long before the bot starts again.
    pub downtime: Duration,
}

/// What an operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Halt trading.
    Halt,
    /// Resume, with the right approval key or a wrong one.
    Resume {
        /// Whether the key is the right one.
        right_key: bool,
    },
    /// Force-exit the open position of this index (modulo the open positions).
    ForceExit {
        /// Which position.
        index: u8,
    },
}

/// One knob the shrinker may turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Knob {
    /// The `i`-th crash.
    Crash(u8),
    /// The `i`-th operator action.
    Operator(u8),
    /// Hung sends (and their late landings).
    HungSends,
    /// Dropped sends.
    Drops,
    /// 429s.
    RateLimits,
    /// Node-behind refusals.
    NodeBehind,
    /// The RPC blackout.
    Blackout,
    /// Badly lagging nodes.
    Lagging,
    /// Nodes without history.
    NoHistory,
    /// Abandoned forks.
    Forks,
    /// Skipped slots.
    SkippedSlots,
    /// Processed before confirmed (confirmation delay).
    ConfirmDelay,
    /// Preflight refusals.
    Preflight,
    /// The router reporting a shorter life than its blockhash has.
    RouterLies,
    /// Quotes that drift from the price.
    QuoteDrift,
    /// Fills that cannot be read for a while.
    FillDelay,
    /// Journal writes that fail.
    JournalFailures,
    /// Fill noise.
    PriceNoise,
    /// More than one RPC node (off: one node, so every read sees one view).
    ManyNodes,
    /// Resends refused at preflight while an earlier copy may land.
    RefusedResends,
    /// A short exit deadline (off: the default 30 s).
    TightDeadline,
}

impl Knob {
    /// Every knob that is not an event, in shrinking order.
    pub const FAULTS: [Knob; 19] = [
        Knob::ManyNodes,
        Knob::TightDeadline,
        Knob::RefusedResends,
        Knob::Blackout,
        Knob::HungSends,
        Knob::Drops,
        Knob::RateLimits,
        Knob::NodeBehind,
        Knob::Lagging,
        Knob::NoHistory,
        Knob::Forks,
        Knob::SkippedSlots,
        Knob::ConfirmDelay,
        Knob::Preflight,
        Knob::RouterLies,
        Knob::QuoteDrift,
        Knob::FillDelay,
        Knob::JournalFailures,
        Knob::PriceNoise,
    ];

    fn name(self) -> String {
        match self {
            Knob::Crash(i) => format!("crash{i}"),
            Knob::Operator(i) => format!("op{i}"),
            Knob::HungSends => "hung-sends".into(),
            Knob::Drops => "drops".into(),
            Knob::RateLimits => "rate-limits".into(),
            Knob::NodeBehind => "node-behind".into(),
            Knob::Blackout => "blackout".into(),
            Knob::Lagging => "lagging".into(),
            Knob::NoHistory => "no-history".into(),
            Knob::Forks => "forks".into(),
            Knob::SkippedSlots => "skipped-slots".into(),
            Knob::ConfirmDelay => "confirm-delay".into(),
            Knob::Preflight => "preflight".into(),
            Knob::RouterLies => "router-lies".into(),
            Knob::QuoteDrift => "quote-drift".into(),
            Knob::FillDelay => "fill-delay".into(),
            Knob::JournalFailures => "journal-failures".into(),
            Knob::PriceNoise => "price-noise".into(),
            Knob::ManyNodes => "many-nodes".into(),
            Knob::RefusedResends => "refused-resends".into(),
            Knob::TightDeadline => "tight-deadline".into(),
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Knob {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let indexed = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|rest| rest.parse::<u8>().ok())
        };
        if let Some(i) = indexed("crash") {
            return Ok(Knob::Crash(i));
        }
        if let Some(i) = indexed("op") {
            return Ok(Knob::Operator(i));
        }
        Knob::FAULTS
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown knob {s:?}: crashN, opN or one of {}",
                    Knob::FAULTS
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// A run's world (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// The knobs turned off.
    pub without: Vec<Knob>,
    /// The market.
    pub market: GeneratorConfig,
    /// The network and the cluster.
    pub faults: FaultProfile,
    /// Kills of the bot.
    pub crashes: Vec<Crash>,
    /// Operator actions, by run time.
    pub operator: Vec<(Duration, OperatorAction)>,
    /// P(a journal write fails: disk full, database busy).
    pub journal_failures: f64,
    /// The bot's exit deadline.
    pub exit_deadline: Duration,
    /// Nonce mode: the wallet has a durable nonce account and the bot builds every
    /// attempt (entries and exits) on it.
    pub durable_nonce: bool,
}

/// The exit deadline when the schedule does not tighten it.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

fn secs(rng: &mut SimRng, lo: f64, hi: f64) -> Duration {
    Duration::from_secs_f64(lo + (hi - lo) * rng.uniform())
}

fn chance(rng: &mut SimRng, p: f64) -> bool {
    rng.uniform() < p
}

impl Schedule {
    /// The world of `seed` with every knob on. Each part draws from its own keyed
    /// stream, so adding a part later leaves every other part of a seed's world as it
    /// was (and replay commands stay valid).
    #[must_use]
    pub fn generate(seed: u64) -> Self {
        let stream = |part: u64| SimRng::keyed(seed, 0x6578_706c, part);
        let hostile = |part: u64, p: f64, hi: f64| {
            let mut rng = stream(part);
            if chance(&mut rng, p) {
                hi * rng.uniform()
            } else {
                0.0
            }
        };
        let mut rng = stream(1);
        let mut market = GeneratorConfig::regime(Regime::Calm, 100.0, HORIZON);
        // Volatile enough that the strategy enters often and stops fire within minutes.
        market.annual_vol = 8.0 + 20.0 * rng.uniform();
        market.jump_rate_per_hour = 30.0 + 60.0 * rng.uniform();
        market.jump_mean_pct = -0.8;
        market.jump_std_pct = 1.5;
        if chance(&mut rng, 0.5) {
            market.crash = Some(CrashSpec {
                at: secs(&mut rng, 30.0, 240.0),
                drop_pct: 5.0 + 15.0 * rng.uniform(),
                over: secs(&mut rng, 20.0, 120.0),
                vol_multiplier: 2.0,
            });
        }
        let mut faults = FaultProfile {
            send_timeout: hostile(10, 0.6, 0.5),
            timeout_lands: stream(11).uniform(),
            drop: hostile(12, 0.5, 0.2),
            rate_limited: hostile(13, 0.3, 0.15),
            retry_after: secs(&mut stream(14), 0.5, 4.0),
            node_unhealthy: hostile(15, 0.3, 0.1),
            confirm_latency_median: secs(&mut stream(16), 0.3, 1.5),
            confirm_latency_sigma: 0.3 + 0.7 * stream(17).uniform(),
            confirm_price_noise_bps: hostile(18, 0.3, 60.0),
            ..FaultProfile::default()
        };
        let mut rng = stream(19);
        if chance(&mut rng, 0.3) {
            let start = secs(&mut rng, 10.0, 300.0);
            faults.blackouts = vec![(start, start + secs(&mut rng, 5.0, 70.0))];
        }
        let mut rng = stream(20);
        faults.cluster = ClusterProfile {
            nodes: 1 + u8::try_from(rng.next_u64() % 4).unwrap_or(0),
            topology: if chance(&mut rng, 0.7) {
                Topology::LoadBalanced
            } else {
                Topology::Failover
            },
            lag_slots: rng.next_u64() % 3,
            lagging: hostile(21, 0.6, 0.3),
            lagging_slots: 3 + stream(22).next_u64() % 60,
            no_history: hostile(23, 0.5, 0.7),
            confirm_slots: {
                let mut r = stream(24);
                (r.next_u64() % 2, 2 + r.next_u64() % 6)
            },
            forks: hostile(25, 0.4, 0.1),
            skipped_slots: hostile(26, 0.5, 0.15),
            preflight: chance(&mut stream(27), 0.8),
            router_ignores_expiry: chance(&mut stream(28), 0.25),
            refused_resends: hostile(29, 0.5, 0.5),
            quote_drift_bps: hostile(30, 0.5, 40.0),
            fill_delay: {
                let mut r = stream(31);
                if chance(&mut r, 0.4) {
                    secs(&mut r, 0.5, 20.0)
                } else {
                    Duration::ZERO
                }
            },
            outages: Vec::new(),
        };
        let mut rng = stream(40);
        let crashes = (0..rng.next_u64() % 4)
            .map(|_| Crash {
                point: if chance(&mut rng, 0.5) {
                    CrashPoint::At(secs(&mut rng, 5.0, HORIZON.as_secs_f64()))
                } else {
                    CrashPoint::AfterLanding {
                        nth: u32::try_from(rng.next_u64() % 12).unwrap_or(0),
                        delay: secs(&mut rng, 0.0, 3.0),
                    }
                },
                downtime: if chance(&mut rng, 0.5) {
                    secs(&mut rng, 0.0, 2.0)
                } else {
                    secs(&mut rng, 2.0, 60.0)
                },
            })
            .collect();
        let mut rng = stream(41);
        let mut operator: Vec<(Duration, OperatorAction)> = (0..rng.next_u64() % 4)
            .map(|_| {
                let at = secs(&mut rng, 5.0, HORIZON.as_secs_f64());
                let action = match rng.next_u64() % 4 {
                    0 => OperatorAction::Halt,
                    1 => OperatorAction::Resume { right_key: true },
                    2 => OperatorAction::Resume {
                        right_key: chance(&mut rng, 0.3),
                    },
                    _ => OperatorAction::ForceExit {
                        index: u8::try_from(rng.next_u64() % 3).unwrap_or(0),
                    },
                };
                (at, action)
            })
            .collect();
        operator.sort_by_key(|(at, _)| *at);
        let journal_failures = hostile(42, 0.3, 0.1);
        let mut rng = stream(43);
        let exit_deadline = if chance(&mut rng, 0.4) {
            secs(&mut rng, 6.0, 20.0)
        } else {
            DEFAULT_DEADLINE
        };
        Self {
            seed,
            without: Vec::new(),
            market,
            faults,
            crashes,
            operator,
            journal_failures,
            exit_deadline,
            durable_nonce: false,
        }
    }

    /// The world of `seed` with its crashes redrawn to kill the bot in the middle of
    /// exits: two to four kills, each within a second and a half of an exit intent
    /// being journaled (a later exit for each kill), down for a moment or for up to a
    /// minute. Everything else is `seed`'s world as [`Schedule::generate`] draws it.
    #[must_use]
    pub fn failover(seed: u64) -> Self {
        let mut schedule = Self::generate(seed);
        let mut rng = SimRng::keyed(seed, 0x6578_706c, 44);
        let kills = 2 + rng.next_u64() % 3;
        let mut nth = 0;
        schedule.crashes = (0..kills)
            .map(|_| {
                nth += u32::try_from(rng.next_u64() % 2).unwrap_or(0);
                let point = CrashPoint::InExit {
                    nth,
                    delay: secs(&mut rng, 0.0, 1.5),
                };
                nth += 1;
                Crash {
                    point,
                    downtime: if chance(&mut rng, 0.5) {
                        secs(&mut rng, 0.0, 2.0)
                    } else {
                        secs(&mut rng, 2.0, 60.0)
                    },
                }
            })
            .collect();
        schedule
    }

    /// Nonce mode in this world, with one more kill drawn for it: in the middle of an
    /// exit, at any moment up to a few seconds past its deadline, so that lives end
    /// between an attempt's send and the cancel, and around the cancel itself.
    #[must_use]
    pub fn on_durable_nonce(mut self) -> Self {
        let mut rng = SimRng::keyed(self.seed, 0x6578_706c, 45);
        let nth = u32::try_from(rng.next_u64() % 3).unwrap_or(0);
        let until = self.exit_deadline.as_secs_f64() + 4.0;
        self.crashes.push(Crash {
            point: CrashPoint::InExit {
                nth,
                delay: secs(&mut rng, 0.0, until),
            },
            downtime: if chance(&mut rng, 0.5) {
                secs(&mut rng, 0.0, 2.0)
            } else {
                secs(&mut rng, 2.0, 40.0)
            },
        });
        self.durable_nonce = true;
        self
    }

    /// The world of `seed` with `without` turned off.
    #[must_use]
    pub fn with_knobs_off(seed: u64, without: &[Knob]) -> Self {
        let mut s = Self::generate(seed);
        for knob in without {
            s.turn_off(*knob);
        }
        s
    }

    /// Turns `knob` off (a no-op for a knob this schedule does not have).
    pub fn turn_off(&mut self, knob: Knob) {
        if self.without.contains(&knob) {
            return;
        }
        self.without.push(knob);
        self.without.sort();
        let f = &mut self.faults;
        let c = &mut f.cluster;
        match knob {
            Knob::Crash(_) | Knob::Operator(_) => {}
            Knob::HungSends => f.send_timeout = 0.0,
            Knob::Drops => f.drop = 0.0,
            Knob::RateLimits => f.rate_limited = 0.0,
            Knob::NodeBehind => f.node_unhealthy = 0.0,
            Knob::Blackout => f.blackouts.clear(),
            Knob::Lagging => c.lagging = 0.0,
            Knob::NoHistory => c.no_history = 0.0,
            Knob::Forks => c.forks = 0.0,
            Knob::SkippedSlots => c.skipped_slots = 0.0,
            Knob::ConfirmDelay => c.confirm_slots = (0, 0),
            Knob::Preflight => c.preflight = false,
            Knob::RouterLies => c.router_ignores_expiry = false,
            Knob::QuoteDrift => c.quote_drift_bps = 0.0,
            Knob::FillDelay => c.fill_delay = Duration::ZERO,
            Knob::JournalFailures => self.journal_failures = 0.0,
            Knob::PriceNoise => f.confirm_price_noise_bps = 0.0,
            Knob::ManyNodes => c.nodes = 1,
            Knob::RefusedResends => c.refused_resends = 0.0,
            Knob::TightDeadline => self.exit_deadline = DEFAULT_DEADLINE,
        }
    }

    /// Whether the `i`-th crash is on.
    #[must_use]
    pub fn crash_on(&self, i: usize) -> bool {
        !self
            .without
            .contains(&Knob::Crash(u8::try_from(i).unwrap_or(u8::MAX)))
    }

    /// Whether the `i`-th operator action is on.
    #[must_use]
    pub fn operator_on(&self, i: usize) -> bool {
        !self
            .without
            .contains(&Knob::Operator(u8::try_from(i).unwrap_or(u8::MAX)))
    }

    /// The knobs this schedule has on, events first: what the shrinker tries to remove.
    #[must_use]
    pub fn knobs_on(&self) -> Vec<Knob> {
        let mut knobs: Vec<Knob> = (0..self.crashes.len())
            .map(|i| Knob::Crash(u8::try_from(i).unwrap_or(u8::MAX)))
            .chain(
                (0..self.operator.len())
                    .map(|i| Knob::Operator(u8::try_from(i).unwrap_or(u8::MAX))),
            )
            .collect();
        knobs.extend(Knob::FAULTS);
        knobs.retain(|k| !self.without.contains(k));
        knobs
    }

    /// The command line that replays this schedule.
    #[must_use]
    pub fn replay_command(&self) -> String {
        let mut cmd = format!("kyzlo verify --seed {} --runs 1", self.seed);
        if self.durable_nonce {
            cmd.push_str(" --nonce");
        }
        if !self.without.is_empty() {
            let knobs: Vec<String> = self.without.iter().map(Knob::to_string).collect();
            cmd.push_str(&format!(" --without {}", knobs.join(",")));
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_a_function_of_the_seed_and_valid() {
        for seed in 0..200 {
            let a = Schedule::generate(seed);
            assert_eq!(a, Schedule::generate(seed));
            a.faults
                .validate()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            a.market
                .validate()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        assert_ne!(Schedule::generate(1), Schedule::generate(2));
    }

    #[test]
    fn failover_schedules_kill_in_distinct_exits_and_keep_the_rest_of_the_world() {
        for seed in 0..200 {
            let failover = Schedule::failover(seed);
            let world = Schedule::generate(seed);
            assert_eq!(failover, Schedule::failover(seed));
            assert!((2..=4).contains(&failover.crashes.len()), "seed {seed}");
            let exits: Vec<u32> = failover
                .crashes
                .iter()
                .map(|c| match c.point {
                    CrashPoint::InExit { nth, .. } => nth,
                    other => panic!("seed {seed}: {other:?}"),
                })
                .collect();
            assert!(
                exits.windows(2).all(|w| w[0] < w[1]),
                "seed {seed}: {exits:?}"
            );
            assert_eq!(
                Schedule {
                    crashes: world.crashes.clone(),
                    ..failover
                },
                world
            );
        }
    }

    #[test]
    fn knobs_turn_off_and_round_trip_through_their_names() {
        let mut s = Schedule::generate(7);
        for knob in s.knobs_on() {
            assert_eq!(knob.to_string().parse::<Knob>(), Ok(knob));
            s.turn_off(knob);
        }
        assert!(s.knobs_on().is_empty());
        assert!(s.faults.blackouts.is_empty());
        assert_eq!(s.faults.send_timeout, 0.0);
        assert!(!s.faults.cluster.router_ignores_expiry);
        assert!(
            (0..s.crashes.len()).all(|i| !s.crash_on(i)),
            "every crash off"
        );
        let replay = s.replay_command();
        assert!(replay.starts_with("kyzlo verify --seed 7 --runs 1 --without "));
        assert!("meteor".parse::<Knob>().is_err());
    }
}
