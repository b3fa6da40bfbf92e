//! The metrics port: typed events the services emit, and an in-process aggregate of them
//! that the paper summary, the chaos simulator and the tests read.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::latency_breaker::BreakerState;
use kyzlo_domain::trading_state::TradingMode;
use kyzlo_domain::{ExitKind, Lamports};

/// Which module placed an exit order through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitModule {
    /// A position's exit plan (stops, take-profit ladder).
    ExitPlan,
    /// The strategy's own exit signal.
    Strategy,
    /// An operator's force-exit.
    Operator,
    /// A stop retried while trading is halted, once the chain answers again.
    Protective,
}

impl ExitModule {
    /// A stable snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitModule::ExitPlan => "exit_plan",
            ExitModule::Strategy => "strategy",
            ExitModule::Operator => "operator",
            ExitModule::Protective => "protective",
        }
    }
}

/// An external dependency whose calls are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// The price feed.
    PriceFeed,
    /// The swap router (quote, build).
    Router,
    /// The chain's reads: statuses, blockhash checks, block height, blockhashes, fills,
    /// balances.
    RpcReads,
    /// The chain's sends (`sendTransaction`).
    RpcSends,
    /// A recovery health probe (counted apart; it feeds the breaker it probes for).
    Health,
}

impl Dependency {
    /// A stable snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Dependency::PriceFeed => "price_feed",
            Dependency::Router => "router",
            Dependency::RpcReads => "rpc_reads",
            Dependency::RpcSends => "rpc_sends",
            Dependency::Health => "health",
        }
    }
}

/// How an exit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitResult {
    /// The position (or its fraction) was sold.
    Closed,
    /// The exit gave up; the position is still open.
    Failed,
}

/// One thing worth counting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricEvent {
    /// A tick ran.
    Tick,
    /// A tick failed (logged, counted, not fatal).
    TickError,
    /// An exit started.
    ExitStarted { kind: ExitKind },
    /// An exit attempt was sent.
    ExitAttemptSent {
        /// Why the exit.
        kind: ExitKind,
        /// 1-based attempt number.
        attempt: u32,
        /// The rung's style.
        style: OrderStyle,
    },
    /// An exit ended.
    ExitFinished {
        /// Why the exit.
        kind: ExitKind,
        /// How it ended.
        result: ExitResult,
        /// Transactions sent.
        attempts: u32,
        /// From signal to end.
        elapsed: Duration,
        /// Realised slippage against the trigger price, in bps (positive is worse).
        slippage_bps: Option<f64>,
    },
    /// What an exit's transactions bid in priority fees and what the landed one paid.
    ExitFees {
        /// Why the exit.
        kind: ExitKind,
        /// Priority fees bid across its attempts.
        bid: Lamports,
        /// The fee the landed transaction paid (base and priority, read from the
        /// chain); `None` when nothing landed.
        paid: Option<Lamports>,
    },
    /// An exit was still unresolved at its deadline.
    ExitDeadlineExceeded {
        /// Why the exit.
        kind: ExitKind,
    },
    /// The exit breaker tripped and asked for a halt.
    ExitBreakerTripped,
    /// The gateway accepted an exit order.
    GatewayAccepted {
        /// Who placed it.
        module: ExitModule,
        kind: ExitKind,
    },
    /// The gateway saw a second exit for a position that already has an owner.
    GatewayConflict {
        /// Who placed the second order.
        module: ExitModule,
        kind: ExitKind,
    },
    /// An entry ended.
    EntryFinished {
        /// Whether it filled.
        filled: bool,
        /// Transactions sent.
        attempts: u32,
    },
    /// An entry was refused by the trading state or the latency breaker.
    EntryRefused,
    /// A dependency call finished.
    Call {
        /// Which dependency.
        dependency: Dependency,
        /// How long it took.
        elapsed: Duration,
        /// Whether it succeeded.
        ok: bool,
    },
    /// The latency breaker changed state.
    LatencyBreakerState {
        /// The dependency whose breaker it is.
        dependency: Dependency,
        /// Its new state.
        state: BreakerState,
    },
    /// The trading state is now of this kind.
    TradingState(TradingMode),
    /// Trading went from not halted to halted (a restart into a journaled halt is not
    /// a new halt).
    Halted,
}

/// Where metric events go. Recording must be cheap and must not block: it is called on
/// the hot path.
pub trait MetricsSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: MetricEvent);
}

/// Totals of the events seen, by label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSummary {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that failed.
    pub tick_errors: u64,
    /// Exits started.
    pub exits_attempted: u64,
    /// Exits that closed on their first transaction.
    pub exits_first_attempt: u64,
    /// Exits that needed more than one transaction.
    pub exits_required_retry: u64,
    /// Exits unresolved at their deadline.
    pub exits_deadline_exceeded: u64,
    /// Priority fees exits bid, in lamports.
    pub priority_fees_bid: u64,
    /// Fees exits' landed transactions paid, in lamports.
    pub fees_paid: u64,
    /// Exits that gave up.
    pub exits_failed: u64,
    /// Exit breaker trips.
    pub circuit_breaker_trips: u64,
    /// Closed exits by kind.
    pub exits_closed_by_kind: BTreeMap<&'static str, u64>,
    /// Exit transactions sent.
    pub exit_attempts_sent: u64,
    /// Gateway orders by (module, kind).
    pub gateway_orders: BTreeMap<(&'static str, &'static str), u64>,
    /// Gateway ownership conflicts.
    pub gateway_conflicts: u64,
    /// Entries filled.
    pub entries_filled: u64,
    /// Entries that failed.
    pub entries_failed: u64,
    /// Entries refused by trading state or breaker.
    pub entries_refused: u64,
    /// Exit times of closed exits.
    pub exit_times: Vec<Duration>,
    /// Realised exit slippage in bps.
    pub exit_slippage_bps: Vec<f64>,
    /// Dependency calls (count, failures).
    pub calls: BTreeMap<&'static str, (u64, u64)>,
    /// Latest latency-breaker state per dependency.
    pub latency_breakers: BTreeMap<&'static str, BreakerState>,
    /// Latest trading state.
    pub trading_state: Option<TradingMode>,
    /// Times trading halted.
    pub halts: u64,
}

/// A [`MetricsSink`] that keeps totals in memory.
#[derive(Debug, Default)]
pub struct CountingMetrics {
    summary: Mutex<MetricsSummary>,
}

impl CountingMetrics {
    /// An empty aggregate.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the totals so far.
    #[must_use]
    pub fn summary(&self) -> MetricsSummary {
        self.summary
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

impl MetricsSink for CountingMetrics {
    fn record(&self, event: MetricEvent) {
        let mut s = self
            .summary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            MetricEvent::Tick => s.ticks += 1,
            MetricEvent::TickError => s.tick_errors += 1,
            MetricEvent::ExitStarted { .. } => s.exits_attempted += 1,
            MetricEvent::ExitAttemptSent { .. } => s.exit_attempts_sent += 1,
            MetricEvent::ExitFinished {
                kind,
                result,
                attempts,
                elapsed,
                slippage_bps,
            } => match result {
                ExitResult::Closed => {
                    if attempts <= 1 {
                        s.exits_first_attempt += 1;
                    } else {
                        s.exits_required_retry += 1;
                    }
                    *s.exits_closed_by_kind.entry(kind.as_str()).or_default() += 1;
                    s.exit_times.push(elapsed);
                    if let Some(bps) = slippage_bps {
                        s.exit_slippage_bps.push(bps);
                    }
                }
                ExitResult::Failed => s.exits_failed += 1,
            },
            MetricEvent::ExitDeadlineExceeded { .. } => s.exits_deadline_exceeded += 1,
            MetricEvent::ExitBreakerTripped => s.circuit_breaker_trips += 1,
            MetricEvent::GatewayAccepted { module, kind } => {
                *s.gateway_orders
                    .entry((module.as_str(), kind.as_str()))
                    .or_default() += 1;
            }
            MetricEvent::GatewayConflict { .. } => s.gateway_conflicts += 1,
            MetricEvent::EntryFinished { filled, .. } => {
                if filled {
                    s.entries_filled += 1;
                } else {
                    s.entries_failed += 1;
                }
            }
            MetricEvent::EntryRefused => s.entries_refused += 1,
            MetricEvent::ExitFees { bid, paid, .. } => {
                s.priority_fees_bid = s.priority_fees_bid.saturating_add(bid.get());
                s.fees_paid = s.fees_paid.saturating_add(paid.map_or(0, |p| p.get()));
            }
            MetricEvent::Call { dependency, ok, .. } => {
                let entry = s.calls.entry(dependency.as_str()).or_default();
                entry.0 += 1;
                if !ok {
                    entry.1 += 1;
                }
            }
            MetricEvent::LatencyBreakerState { dependency, state } => {
                s.latency_breakers.insert(dependency.as_str(), state);
            }
            MetricEvent::TradingState(mode) => s.trading_state = Some(mode),
            MetricEvent::Halted => s.halts += 1,
        }
    }
}

/// Sends every event to each of several sinks (e.g. Prometheus and the in-process totals).
pub struct FanOutMetrics {
    sinks: Vec<std::sync::Arc<dyn MetricsSink>>,
}

impl FanOutMetrics {
    /// A fan-out over `sinks`.
    #[must_use]
    pub fn new(sinks: Vec<std::sync::Arc<dyn MetricsSink>>) -> Self {
        Self { sinks }
    }
}

impl MetricsSink for FanOutMetrics {
    fn record(&self, event: MetricEvent) {
        for sink in &self.sinks {
            sink.record(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_exits_split_into_first_attempt_and_retry() {
        let m = CountingMetrics::new();
        for attempts in [1, 2, 3] {
            m.record(MetricEvent::ExitFinished {
                kind: ExitKind::StopLoss,
                result: ExitResult::Closed,
                attempts,
                elapsed: Duration::from_secs(1),
                slippage_bps: Some(10.0),
            });
        }
        m.record(MetricEvent::ExitFinished {
            kind: ExitKind::StopLoss,
            result: ExitResult::Failed,
            attempts: 2,
            elapsed: Duration::from_secs(20),
            slippage_bps: None,
        });
        let s = m.summary();
        assert_eq!(s.exits_first_attempt, 1);
        assert_eq!(s.exits_required_retry, 2);
        assert_eq!(s.exits_failed, 1);
        assert_eq!(s.exits_closed_by_kind.get("stop_loss"), Some(&3));
        assert_eq!(s.exit_slippage_bps.len(), 3);
    }
}
