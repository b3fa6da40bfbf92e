//! The label sets of the metric families, and the buckets of the histograms.

use super::*;

/// Exit time buckets, in seconds: fine below the 30 s deadline, coarse beyond it.
pub(super) const EXIT_SECONDS_BUCKETS: [f64; 15] = [
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 120.0,
];

/// Exit slippage buckets, in bps (negative is a better price than the trigger).
pub(super) const SLIPPAGE_BPS_BUCKETS: [f64; 14] = [
    -100.0, -50.0, -10.0, 0.0, 10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0, 750.0, 1000.0,
];

/// Dependency call buckets, in seconds: 1 ms to ~16 s.
pub(super) const CALL_SECONDS_BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0,
];

pub(super) const DEPENDENCIES: [Dependency; 5] = [
    Dependency::PriceFeed,
    Dependency::Router,
    Dependency::RpcReads,
    Dependency::RpcSends,
    Dependency::Health,
];
pub(super) const MODULES: [ExitModule; 3] = [
    ExitModule::ExitPlan,
    ExitModule::Strategy,
    ExitModule::Operator,
];
pub(super) const BREAKER_STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];
/// Picks one quantile out of a latency snapshot.
pub(super) type QuantilePick = fn(&LatencySnapshot) -> Duration;
/// The `percentile` label values and what each reads. (Not `quantile`: that label belongs
/// to summaries, and Prometheus' linter says so.)
pub(super) const QUANTILES: [(&str, QuantilePick); 3] =
    [("p50", |s| s.p50), ("p95", |s| s.p95), ("p99", |s| s.p99)];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabels {
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindStyleLabels {
    pub(super) kind: &'static str,
    pub(super) style: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ModuleKindLabels {
    pub(super) module: &'static str,
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DependencyLabels {
    pub(super) dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallLabels {
    pub(super) dependency: &'static str,
    pub(super) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabels {
    pub(super) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DependencyStateLabels {
    pub(super) dependency: &'static str,
    pub(super) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DependencyPercentileLabels {
    pub(super) dependency: &'static str,
    pub(super) percentile: &'static str,
}

pub(super) type FloatGauge = Gauge<f64, AtomicU64>;
pub(super) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub(super) fn exit_seconds_histogram() -> Histogram {
    Histogram::new(EXIT_SECONDS_BUCKETS)
}

pub(super) fn call_seconds_histogram() -> Histogram {
    Histogram::new(CALL_SECONDS_BUCKETS)
}
