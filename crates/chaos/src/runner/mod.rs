//! One chaos run per seed: the same price path and fault schedule under three exit
//! policies: `naive` (the seeds' "before"), `kyzlo` (the real services) and `oracle`
//! (a lower bound), and where kyzlo's excess over the oracle went
//! ([`crate::breakdown`]).

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_sim::faults::FaultSchedule;
use kyzlo_adapters_sim::market::{PricePath, SimMarket, generate};
use kyzlo_adapters_sim::trace::{Trace, TraceEvent};
use kyzlo_adapters_sim::venue::{EndpointClient, SimVenue, SimWallet};
use kyzlo_application::bot::{Bot, BotPorts, BotSettings};
use kyzlo_application::clock::Clock;
use kyzlo_application::execute::{ExecutionSettings, NonceSettings};
use kyzlo_application::gateway::GatewayMode;
use kyzlo_application::guard::GuardLimits;
use kyzlo_application::journal::{
    IntentAction, IntentOutcome, Journal, MemoryJournal, PositionRecord,
};
use kyzlo_application::orchestrator::ProtectiveExits;
use kyzlo_application::ports::NonceAccount;
use kyzlo_application::ports::{
    Alert, AlertSink, Chain, Commitment, Pair, PortError, QuoteRequest, Side, Signer, StatusLookup,
    SwapRequest, SwapRouter,
};
use kyzlo_domain::exit_plan::{ExitPlan, ExitPlanConfig};
use kyzlo_domain::latency_breaker::LatencyBreakerConfig;
use kyzlo_domain::strategy::MeanReversionConfig;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{
    Bps, ExitBreaker, IntentId, Lamports, PositionId, Price, Size, Slippage, Timestamp,
    TokenAmount, TxSignature,
};

use crate::breakdown::{self, Ending, LossBreakdown, Reference, Timeline, fee_points};
use crate::scenario::{MarketSpec, Scenario};

mod policies;

use policies::{run_kyzlo, run_naive, run_oracle};

/// What one policy did in one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolicyRun {
    /// Realised loss against the entry, in percent (positive is a loss).
    pub realized_loss_pct: f64,
    /// From the stop trigger to the (last) landing that closed the position.
    pub exit_time: Duration,
    /// Transactions sent (distinct signatures).
    pub attempts: u32,
    /// Fees paid, in lamports.
    pub fees_lamports: u64,
    /// Intents with more than one successful landing.
    pub double_executions: u32,
    /// Exits still unresolved at their 30 s deadline.
    pub unresolved_at_deadline: u32,
    /// Whether trading halted.
    pub halted: bool,
    /// Whether the position was closed within the horizon.
    pub closed: bool,
}

/// The three policies of one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunResult {
    /// The run's seed.
    pub seed: u64,
    /// When the stop fired (from the run's start); `None` when it never did.
    pub stop_at: Option<Duration>,
    /// The seeds' passive retry.
    pub naive: PolicyRun,
    /// The defensive executor.
    pub kyzlo: PolicyRun,
    /// The lower bound.
    pub oracle: PolicyRun,
    /// Where kyzlo's excess over the oracle went.
    pub breakdown: LossBreakdown,
}

/// One send, for the report's example run.
#[derive(Debug, Clone, PartialEq)]
pub struct SendMark {
    /// When it was first sent, from the run's start.
    pub at: Duration,
    /// When it landed, if it did.
    pub landed_at: Option<Duration>,
    /// Whether it landed successfully.
    pub ok: bool,
    /// Every send call for it (the first and each rebroadcast): when, and whether a node
    /// accepted it (a refusal otherwise).
    pub sends: Vec<(Duration, bool)>,
}

/// The detail of one run, for the report's plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunTrace {
    /// The price path.
    pub prices: Vec<(Duration, f64)>,
    /// Entry price.
    pub entry: f64,
    /// Stop level.
    pub stop: f64,
    /// When the stop fired.
    pub stop_at: Option<Duration>,
    /// kyzlo's transactions.
    pub kyzlo: Vec<SendMark>,
    /// Naive's transactions.
    pub naive: Vec<SendMark>,
    /// Where kyzlo's excess over the oracle went in this run.
    pub breakdown: LossBreakdown,
}

const USDC: u64 = 1_000_000;

/// The chaos runner's exit plan: the stop-loss leg alone, so the stop is what is measured.
fn stop_only(stop_loss_bps: u16) -> ExitPlanConfig {
    ExitPlanConfig {
        stop_loss: Bps::new(stop_loss_bps).unwrap_or(Bps::new(500).unwrap_or_default()),
        trailing_activation: None,
        breakeven_trigger: None,
        take_profit: Vec::new(),
        ..ExitPlanConfig::default()
    }
}

fn path_for(scenario: &Scenario, seed: u64) -> Arc<PricePath> {
    match &scenario.market {
        MarketSpec::Generated(config) => Arc::new(generate(config, seed)),
        MarketSpec::Replay(path) => Arc::clone(path),
    }
}

/// When the stop fires, ticking every `scenario.tick` from the start.
fn stop_time(scenario: &Scenario, path: &PricePath, entry: Price, size: Size) -> Option<Duration> {
    let mut plan = ExitPlan::new(stop_only(scenario.stop_loss_bps), entry, size);
    let mut t = Duration::ZERO;
    while t <= scenario.horizon {
        if plan.evaluate(path.price_at(t)).is_some() {
            return Some(t);
        }
        t += scenario.tick;
    }
    None
}

fn runtime() -> tokio::runtime::Runtime {
    // A current-thread runtime on paused time: the run's clock only moves when every
    // task waits, so a 10-minute run takes microseconds. Building one cannot fail short
    // of the OS refusing a timer, which would be a broken machine.
    #[allow(clippy::expect_used)]
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

/// kyzlo's nonce account in nonce mode.
pub const NONCE_ACCOUNT: NonceAccount = NonceAccount([0x4E; 32]);

/// Runs the three policies on the path and fault schedule of `seed`.
#[must_use]
pub fn run_one(scenario: &Scenario, seed: u64, trace: bool) -> (RunResult, Option<RunTrace>) {
    let path = path_for(scenario, seed);
    let entry = path.price_at(Duration::ZERO);
    let Ok(size) = Size::new(TokenAmount::new(scenario.position)) else {
        return (RunResult::default(), None);
    };
    let stop_at = stop_time(scenario, &path, entry, size);
    let mut result = RunResult {
        seed,
        stop_at,
        ..RunResult::default()
    };
    let Some(stop_at) = stop_at else {
        return (result, None);
    };
    let mut faults = scenario.faults.clone();
    faults.blackouts.extend(
        scenario
            .blackouts_after_stop
            .iter()
            .map(|&(a, b)| (stop_at + a, stop_at + b)),
    );
    faults
        .cluster
        .outages
        .extend(scenario.outages_around_stop.iter().map(|o| o.at(stop_at)));
    let schedule = Arc::new(FaultSchedule::new(faults, seed));
    let mut tr = trace.then(|| RunTrace {
        prices: (0..=scenario.horizon.as_secs())
            .step_by(2)
            .map(|s| {
                (
                    Duration::from_secs(s),
                    path.price_at(Duration::from_secs(s)).get(),
                )
            })
            .collect(),
        entry: entry.get(),
        stop: entry.get() * (1.0 - f64::from(scenario.stop_loss_bps) / 10_000.0),
        stop_at: Some(stop_at),
        ..RunTrace::default()
    });
    let kyzlo = runtime().block_on(run_kyzlo(scenario, &path, &schedule, entry, size, stop_at));
    let (naive, naive_marks) =
        runtime().block_on(run_naive(scenario, &path, &schedule, entry, size, stop_at));
    let (oracle, oracle_sent) = run_oracle(scenario, &path, &schedule, entry, stop_at);
    result.kyzlo = kyzlo.policy;
    result.naive = naive;
    result.oracle = oracle;
    let oracle_landed = if oracle.closed {
        stop_at + oracle.exit_time
    } else {
        scenario.horizon
    };
    let reference = Reference {
        path: &path,
        entry,
        stop: entry.get() * (1.0 - f64::from(scenario.stop_loss_bps) / 10_000.0),
        stop_at,
        tick: scenario.tick,
    };
    let oracle_fees = if oracle.closed {
        fee_points(
            oracle.fees_lamports,
            scenario.position,
            path.price_at(oracle_landed).get(),
            entry.get(),
        )
    } else {
        0.0
    };
    result.breakdown = breakdown::breakdown(
        &reference,
        &kyzlo.timeline,
        Ending {
            landed: kyzlo.landed,
            loss_pct: kyzlo.policy.realized_loss_pct,
            fees_pts: kyzlo.fees_pts,
        },
        oracle_sent,
        Ending {
            landed: oracle_landed,
            loss_pct: oracle.realized_loss_pct,
            fees_pts: oracle_fees,
        },
    );
    if let Some(tr) = tr.as_mut() {
        tr.kyzlo = kyzlo.marks;
        tr.naive = naive_marks;
        tr.breakdown = result.breakdown;
    }
    (result, tr)
}

fn loss_pct(entry: Price, sold: u64, received: u64) -> f64 {
    match Pair::SOL_USDC.price_of(TokenAmount::new(sold), TokenAmount::new(received)) {
        Some(realised) => (1.0 - realised.get() / entry.get()) * 100.0,
        None => 100.0,
    }
}

/// The wallet of a run: twice the position, so a double sell can really happen.
fn wallet(size: Size) -> SimWallet {
    SimWallet {
        base: TokenAmount::new(size.amount().get().saturating_mul(2)),
        quote: TokenAmount::new(1_000 * USDC),
        fee_lamports: Lamports::new(1_000_000_000),
    }
}

struct NullAlerts;

#[async_trait::async_trait]
impl AlertSink for NullAlerts {
    async fn send(&self, _alert: &Alert) -> Result<(), PortError> {
        Ok(())
    }
}

fn elapsed(t: Timestamp) -> Duration {
    Duration::from_micros(t.as_micros())
}

/// What a policy's sales did.
struct Sales {
    /// Sold and received by the sales that closed the position (later sales sold the
    /// trader's other holdings: they are double executions, not the position's loss).
    sold: u64,
    received: u64,
    fees: u64,
    /// From the stop to the sale that closed the position.
    exit_time: Duration,
    doubles: u32,
    marks: Vec<SendMark>,
    /// The landing that closed the position: its transaction and when it landed.
    closing: Option<(TxSignature, Duration)>,
}

/// Accounting over a venue's landings, oldest first: the sales up to the one that
/// closed `position` count toward its loss.
fn account(
    venue: &SimVenue,
    trace: &Trace,
    intents: &[(TxSignature, u64)],
    stop_at: Duration,
    position: u64,
) -> Sales {
    let landings = venue.landings();
    let mut sold = 0;
    let mut received = 0;
    let mut last = stop_at;
    let mut closing = None;
    let mut per_intent: std::collections::BTreeMap<u64, u32> = std::collections::BTreeMap::new();
    // A cancel (a durable nonce's advance alone) sells nothing: its fee is counted with
    // the fees, not here.
    for l in landings.iter().filter(|l| !l.cancel) {
        if l.ok && l.side == Side::Sell {
            if sold < position {
                sold += l.amount_in.get();
                received += l.amount_out.get();
                last = last.max(l.at);
                if sold >= position {
                    closing = Some((l.signature, l.at));
                }
            }
            if let Some((_, intent)) = intents.iter().find(|(s, _)| *s == l.signature) {
                *per_intent.entry(*intent).or_default() += 1;
            }
        }
    }
    let doubles = per_intent.values().filter(|n| **n > 1).count() as u32;
    let events = trace.events();
    let marks = intents
        .iter()
        .map(|(sig, _)| {
            let landing = landings.iter().find(|l| l.signature == *sig);
            SendMark {
                at: venue.first_sent_at(*sig).unwrap_or_default(),
                landed_at: landing.map(|l| l.at),
                ok: landing.is_some_and(|l| l.ok),
                sends: events
                    .iter()
                    .filter_map(|e| match e {
                        TraceEvent::Sent {
                            signature,
                            at,
                            accepted,
                        } if signature == sig => Some((*at, *accepted)),
                        _ => None,
                    })
                    .collect(),
            }
        })
        .collect();
    Sales {
        sold,
        received,
        fees: venue.fees_paid().get(),
        exit_time: last.saturating_sub(stop_at),
        doubles,
        marks,
        closing,
    }
}

/// What the kyzlo policy left for the runner: its results, its transactions, and what
/// the breakdown needs.
struct KyzloRun {
    policy: PolicyRun,
    marks: Vec<SendMark>,
    /// Its time from the stop, from its journal and the venue's landings.
    timeline: Timeline,
    /// When its fill is valued: the closing landing, or the horizon.
    landed: Duration,
    /// Every landing's fee, in points of the position.
    fees_pts: f64,
}
