//! Chaos scenarios: a market (generated from a seed, or replayed from a CSV file from a
//! given timestamp), a fault profile, and the position whose stop-loss is tested. Eight
//! are built in; users write their own in TOML (format in [`from_toml`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_sim::faults::{
    ClusterProfile, EndpointFault, EndpointOutage, FaultProfile, ProfileName, Topology,
};
use kyzlo_adapters_sim::market::{
    CrashSpec, CsvRules, GeneratorConfig, PricePath, Regime, load_csv,
};
use serde::Deserialize;

/// Where a run's prices come from.
#[derive(Debug, Clone)]
pub enum MarketSpec {
    /// A fresh path per run from this generator and the run's seed.
    Generated(GeneratorConfig),
    /// The same recorded path in every run (only the faults vary).
    Replay(Arc<PricePath>),
}

/// One chaos scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// The market.
    pub market: MarketSpec,
    /// The faults.
    pub faults: FaultProfile,
    /// The stop-loss under test, in bps below the entry.
    pub stop_loss_bps: u16,
    /// Position size in base units (lamports of SOL).
    pub position: u64,
    /// How long a run may last.
    pub horizon: Duration,
    /// How long after a halt an operator force-exits.
    pub operator_reaction: Duration,
    /// Tick interval of the bot.
    pub tick: Duration,
    /// RPC blackouts placed relative to the moment the stop fires in each run, as (start,
    /// end) after it.
    pub blackouts_after_stop: Vec<(Duration, Duration)>,
    /// One provider's trouble placed around the moment the stop fires in each run.
    pub outages_around_stop: Vec<OutageAroundStop>,
    /// Whether kyzlo's wallet has a durable nonce account and builds every attempt on it
    /// (nonce mode) instead of on recent blockhashes.
    pub durable_nonce: bool,
}

/// An endpoint down or far behind over a window placed around the moment the stop fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageAroundStop {
    /// The endpoint (0 is the primary).
    pub endpoint: u8,
    /// When it begins (from the run's start at the earliest).
    pub from: FromStop,
    /// When it ends.
    pub until: FromStop,
    /// What is wrong.
    pub fault: EndpointFault,
}

/// A moment placed relative to the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromStop {
    /// This long before it.
    Before(Duration),
    /// This long after it.
    After(Duration),
}

impl FromStop {
    /// The moment in a run whose stop fired at `stop_at`.
    #[must_use]
    pub fn at(self, stop_at: Duration) -> Duration {
        match self {
            FromStop::Before(d) => stop_at.saturating_sub(d),
            FromStop::After(d) => stop_at.saturating_add(d),
        }
    }

    /// Seconds from the stop, negative before it.
    fn from_secs(v: f64) -> Self {
        let d = Duration::from_secs_f64(v.abs());
        if v < 0.0 {
            FromStop::Before(d)
        } else {
            FromStop::After(d)
        }
    }
}

impl OutageAroundStop {
    /// The outage in a run whose stop fired at `stop_at`.
    #[must_use]
    pub fn at(&self, stop_at: Duration) -> EndpointOutage {
        EndpointOutage {
            endpoint: self.endpoint,
            from: self.from.at(stop_at),
            until: self.until.at(stop_at),
            fault: self.fault,
        }
    }
}

/// Names of the built-in scenarios.
pub const BUILTIN: [&str; 8] = [
    "bug-003",
    "rpc-blackout",
    "late-landing",
    "rate-limited",
    "slippage-storm",
    "calm",
    "provider-outage",
    "lagging-provider",
];

const SOL: u64 = 1_000_000_000;

fn crash(drop_pct: f64, over: Duration, duration: Duration) -> GeneratorConfig {
    let mut config = GeneratorConfig::regime(Regime::Crash, 100.0, duration);
    config.crash = Some(CrashSpec {
        at: Duration::ZERO,
        drop_pct,
        over,
        vol_multiplier: 3.0,
    });
    config
}

fn base(name: &str, description: &str, market: GeneratorConfig, faults: FaultProfile) -> Scenario {
    Scenario {
        name: name.to_owned(),
        description: description.to_owned(),
        market: MarketSpec::Generated(market),
        faults,
        stop_loss_bps: 500,
        position: 10 * SOL,
        horizon: Duration::from_secs(600),
        operator_reaction: Duration::from_secs(60),
        tick: Duration::from_secs(1),
        blackouts_after_stop: Vec::new(),
        outages_around_stop: Vec::new(),
        durable_nonce: false,
    }
}

/// The adversarial cluster as three providers, one endpoint each, reached through the
/// client's endpoint list, with one of them in trouble for 90 s around the stop: from
/// 10 s before it to 80 s after.
fn providers(name: &str, description: &str, fault: EndpointFault) -> Scenario {
    let mut faults = profile(ProfileName::Adversarial);
    faults.cluster.nodes = 3;
    faults.cluster.topology = Topology::Endpoints;
    let mut scenario = base(
        name,
        description,
        crash(20.0, Duration::from_secs(100), Duration::from_secs(600)),
        faults,
    );
    scenario.outages_around_stop = vec![OutageAroundStop {
        endpoint: 0,
        from: FromStop::Before(Duration::from_secs(10)),
        until: FromStop::After(Duration::from_secs(80)),
        fault,
    }];
    scenario
}

/// A named fault profile on the adversarial cluster (lagging nodes, nodes without
/// history, processed before confirmed, forks, skipped slots, refused resends, drifting
/// quotes, fills unreadable for a while).
fn profile(name: ProfileName) -> FaultProfile {
    FaultProfile {
        cluster: ClusterProfile::adversarial(),
        ..name.profile()
    }
}

/// Fault windows `[start, end]` in seconds, each ending after it starts.
fn windows_of(
    path: &Path,
    key: &'static str,
    windows: &[[f64; 2]],
) -> Result<Vec<(Duration, Duration)>, ScenarioError> {
    let mut out = Vec::new();
    for &[a, b] in windows {
        let (a, b) = (secs(path, key, a)?, secs(path, key, b)?);
        if b <= a {
            return Err(ScenarioError::Invalid {
                path: path.to_owned(),
                key,
                value: format!("[{a:?}, {b:?}]"),
                expected: "windows as [start, end] with end after start",
            });
        }
        out.push((a, b));
    }
    Ok(out)
}

/// A built-in scenario by name.
#[must_use]
pub fn builtin(name: &str) -> Option<Scenario> {
    let horizon = Duration::from_secs(600);
    Some(match name {
        "bug-003" => {
            let mut faults = profile(ProfileName::Flaky);
            faults.send_timeout = 0.7;
            faults.timeout_lands = 0.3;
            faults.drop = 0.05;
            base(
                name,
                "The seeds' BUG-003: a 5% stop hit in a crash from 100 toward 80 while most \
                 submissions time out",
                crash(20.0, Duration::from_secs(100), horizon),
                faults,
            )
        }
        "rpc-blackout" => {
            let mut faults = profile(ProfileName::RpcBlackout);
            faults.blackouts = vec![(Duration::from_secs(20), Duration::from_secs(65))];
            base(
                name,
                "The same crash with a 45 s RPC blackout starting as the stop is hit",
                crash(20.0, Duration::from_secs(100), horizon),
                faults,
            )
        }
        "late-landing" => base(
            name,
            "A slide through the stop while many sends hang and their transactions land late",
            crash(10.0, Duration::from_secs(200), horizon),
            profile(ProfileName::LateLanding),
        ),
        "rate-limited" => base(
            name,
            "The crash with many HTTP 429 answers carrying a retry-after",
            crash(20.0, Duration::from_secs(100), horizon),
            profile(ProfileName::RateLimited),
        ),
        "slippage-storm" => base(
            name,
            "The crash with violent price noise between quote and landing",
            crash(20.0, Duration::from_secs(100), horizon),
            profile(ProfileName::SlippageStorm),
        ),
        "calm" => {
            let mut market = GeneratorConfig::regime(Regime::Calm, 100.0, horizon);
            market.crash = Some(CrashSpec {
                at: Duration::ZERO,
                drop_pct: 8.0,
                over: Duration::from_secs(400),
                vol_multiplier: 1.0,
            });
            base(
                name,
                "A calm decline through the stop on a healthy cluster: defense should cost nothing",
                market,
                FaultProfile::default(),
            )
        }
        // The primary provider dies: requests to it get no answer at all (the hostile
        // way: not a refused connection but a hang until the client gives up), and what
        // is sent to it reaches no leader. The other two are healthy. kyzlo's client
        // knows all three; naive's, only the primary.
        "provider-outage" => providers(
            name,
            "The crash while the first of three RPC providers is dead (no answer) for 90 s \
             around the stop",
            EndpointFault::Down,
        ),
        // The primary provider falls 60 slots (24 s) behind and stays there: well inside
        // the 128 slots at which an Agave node starts calling itself unhealthy, so it
        // answers every request from its old view (statuses missing or stale, newer
        // blockhashes unknown so sends built on them are refused at preflight, expiry
        // seen 24 s late) and no client fails over.
        "lagging-provider" => providers(
            name,
            "The crash while the first of three RPC providers answers 60 slots behind for \
             90 s around the stop",
            EndpointFault::Lagging { slots: 60 },
        ),
        _ => return None,
    })
}

mod file;

use file::secs;
pub use file::{ScenarioError, from_toml, load};
