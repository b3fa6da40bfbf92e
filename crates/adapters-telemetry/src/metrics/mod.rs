//! The Prometheus implementation of the application's [`MetricsSink`] port: every
//! [`MetricEvent`] lands in a `prometheus-client` registry, and gauges that describe the
//! present (breaker latency quantiles, per-dependency quantiles, the exit breaker's count)
//! are refreshed from the live services on each scrape.
//!
//! The exposition is OpenMetrics text, as `prometheus-client` writes it: counters get the
//! `_total` suffix (`kyzlo_exits_attempted_total`). Every name is listed in
//! `deploy/OPERATIONS.md`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use kyzlo_application::exit::ExitExecutor;
use kyzlo_application::guard::{GUARDED, LatencyGuard};
use kyzlo_application::metrics::{Dependency, ExitModule, ExitResult, MetricEvent, MetricsSink};
use kyzlo_domain::latency_breaker::BreakerState;
use kyzlo_domain::trading_state::TradingMode;
use kyzlo_domain::{ExitKind, LatencySnapshot, RollingLatency};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::alerts::AlertCounters;
use crate::error::TelemetryError;

mod labels;
mod register;

use labels::*;
use register::register_all;

/// The content type of [`PrometheusMetrics::render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Samples per dependency in the rolling window behind the per-dependency quantile gauges.
pub const DEPENDENCY_LATENCY_WINDOW: usize = 1_000;

/// The live services whose state the scrape-time gauges read. Weak, so the metrics sink
/// (which those services hold) does not keep them alive.
struct Sources {
    guard: Weak<LatencyGuard>,
    exits: Weak<ExitExecutor>,
}

/// Every metric handle. Handles are cheap clones sharing the registered values.
struct Handles {
    ticks: Counter,
    tick_errors: Counter,
    exits_attempted: Family<KindLabels, Counter>,
    exits_first_attempt: Family<KindLabels, Counter>,
    exits_required_retry: Family<KindLabels, Counter>,
    exits_failed: Family<KindLabels, Counter>,
    exits_deadline_exceeded: Family<KindLabels, Counter>,
    exit_transactions_sent: Family<KindStyleLabels, Counter>,
    circuit_breaker_trips: Counter,
    exit_duration: HistogramFamily<ResultLabels>,
    exit_slippage: Histogram,
    exit_priority_fees_bid: Family<KindLabels, Counter>,
    exit_fees_paid: Family<KindLabels, Counter>,
    gateway_orders: Family<ModuleKindLabels, Counter>,
    gateway_conflicts: Family<ModuleKindLabels, Counter>,
    entries: Family<ResultLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    call_duration: HistogramFamily<DependencyLabels>,
    dependency_quantiles: Family<DependencyPercentileLabels, FloatGauge>,
    breaker_state: Family<DependencyStateLabels, Gauge>,
    breaker_transitions: Family<DependencyStateLabels, Counter>,
    breaker_latency: Family<DependencyPercentileLabels, FloatGauge>,
    breaker_error_rate: Family<DependencyLabels, FloatGauge>,
    breaker_consecutive_failures: Family<DependencyLabels, Gauge>,
    exit_breaker_consecutive_failures: Gauge,
    trading_state: Family<StateLabels, Gauge>,
}

/// A [`MetricsSink`] that keeps every metric in a Prometheus registry and renders it as
/// OpenMetrics text.
pub struct PrometheusMetrics {
    registry: Registry,
    m: Handles,
    alert_counters: AlertCounters,
    dependency_latency: Mutex<BTreeMap<Dependency, RollingLatency>>,
    sources: Mutex<Option<Sources>>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusMetrics {
    /// A registry with every kyzlo metric registered under the `kyzlo_` prefix, and the
    /// label sets known in advance created at zero (so rate() and alerts see them from
    /// the first scrape).
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kyzlo");
        let m = Handles {
            ticks: Counter::default(),
            tick_errors: Counter::default(),
            exits_attempted: Family::default(),
            exits_first_attempt: Family::default(),
            exit_priority_fees_bid: Family::default(),
            exit_fees_paid: Family::default(),
            exits_required_retry: Family::default(),
            exits_failed: Family::default(),
            exits_deadline_exceeded: Family::default(),
            exit_transactions_sent: Family::default(),
            circuit_breaker_trips: Counter::default(),
            exit_duration: Family::new_with_constructor(
                exit_seconds_histogram as fn() -> Histogram,
            ),
            exit_slippage: Histogram::new(SLIPPAGE_BPS_BUCKETS),
            gateway_orders: Family::default(),
            gateway_conflicts: Family::default(),
            entries: Family::default(),
            calls: Family::default(),
            call_duration: Family::new_with_constructor(
                call_seconds_histogram as fn() -> Histogram,
            ),
            dependency_quantiles: Family::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            breaker_latency: Family::default(),
            breaker_error_rate: Family::default(),
            breaker_consecutive_failures: Family::default(),
            exit_breaker_consecutive_failures: Gauge::default(),
            trading_state: Family::default(),
        };
        let alert_counters = AlertCounters::default();
        alert_counters.precreate();
        register_all(&mut registry, &m, &alert_counters);
        let metrics = Self {
            registry,
            m,
            alert_counters,
            dependency_latency: Mutex::new(BTreeMap::new()),
            sources: Mutex::new(None),
        };
        metrics.precreate();
        metrics
    }

    fn precreate(&self) {
        let m = &self.m;
        for kind in ExitKind::ALL {
            let labels = KindLabels {
                kind: kind.as_str(),
            };
            let _ = m.exits_attempted.get_or_create(&labels);
            let _ = m.exits_first_attempt.get_or_create(&labels);
            let _ = m.exit_priority_fees_bid.get_or_create(&labels);
            let _ = m.exit_fees_paid.get_or_create(&labels);
            let _ = m.exits_required_retry.get_or_create(&labels);
            let _ = m.exits_failed.get_or_create(&labels);
            let _ = m.exits_deadline_exceeded.get_or_create(&labels);
            for module in MODULES {
                let labels = ModuleKindLabels {
                    module: module.as_str(),
                    kind: kind.as_str(),
                };
                let _ = m.gateway_orders.get_or_create(&labels);
                let _ = m.gateway_conflicts.get_or_create(&labels);
            }
        }
        for result in [ExitResult::Closed, ExitResult::Failed] {
            let _ = m.exit_duration.get_or_create(&ResultLabels {
                result: exit_result_str(result),
            });
        }
        for result in ["filled", "failed", "refused"] {
            let _ = m.entries.get_or_create(&ResultLabels { result });
        }
        for dependency in DEPENDENCIES {
            let dependency = dependency.as_str();
            for outcome in ["ok", "error"] {
                let _ = m.calls.get_or_create(&CallLabels {
                    dependency,
                    outcome,
                });
            }
            let _ = m
                .call_duration
                .get_or_create(&DependencyLabels { dependency });
            for (percentile, _) in QUANTILES {
                let _ = m
                    .dependency_quantiles
                    .get_or_create(&DependencyPercentileLabels {
                        dependency,
                        percentile,
                    });
            }
        }
        for dependency in GUARDED {
            let dependency = dependency.as_str();
            for (percentile, _) in QUANTILES {
                let _ = m
                    .breaker_latency
                    .get_or_create(&DependencyPercentileLabels {
                        dependency,
                        percentile,
                    });
            }
            for state in BREAKER_STATES {
                let _ = m.breaker_transitions.get_or_create(&DependencyStateLabels {
                    dependency,
                    state: state.as_str(),
                });
            }
            let _ = m
                .breaker_error_rate
                .get_or_create(&DependencyLabels { dependency });
            let _ = m
                .breaker_consecutive_failures
                .get_or_create(&DependencyLabels { dependency });
            self.set_breaker_state(dependency, BreakerState::Closed);
        }
        for mode in TradingMode::ALL {
            let _ = m.trading_state.get_or_create(&StateLabels {
                state: mode.as_str(),
            });
        }
    }

    /// Makes each scrape read the latency breaker's snapshot and the exit breaker's count
    /// from these services. Held weakly; a later call replaces the earlier sources.
    pub fn observe(&self, guard: &Arc<LatencyGuard>, exits: &Arc<ExitExecutor>) {
        *self.sources.lock().unwrap_or_else(PoisonError::into_inner) = Some(Sources {
            guard: Arc::downgrade(guard),
            exits: Arc::downgrade(exits),
        });
    }

    /// The alert router's counters, registered in this registry as
    /// `kyzlo_alerts_total{kind,outcome}`: give them to [`crate::alerts::AlertRouter::new`].
    #[must_use]
    pub fn alert_counters(&self) -> AlertCounters {
        self.alert_counters.clone()
    }

    /// Refreshes the scrape-time gauges and renders the registry as OpenMetrics text
    /// (content type [`OPENMETRICS_CONTENT_TYPE`]).
    ///
    /// # Errors
    /// [`TelemetryError::Encode`] if the encoder fails (it writes to a `String`, so only a
    /// broken label encoder could).
    pub fn render(&self) -> Result<String, TelemetryError> {
        self.refresh();
        let mut out = String::with_capacity(32 * 1024);
        encode(&mut out, &self.registry).map_err(|_| TelemetryError::Encode)?;
        Ok(out)
    }

    fn refresh(&self) {
        let (guard, exits) = {
            let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            match sources.as_ref() {
                Some(s) => (s.guard.upgrade(), s.exits.upgrade()),
                None => (None, None),
            }
        };
        if let Some(guard) = guard {
            for (dependency, snapshot) in guard.snapshots() {
                let dependency = dependency.as_str();
                self.set_breaker_state(dependency, snapshot.state);
                for (percentile, pick) in QUANTILES {
                    let _ = self
                        .m
                        .breaker_latency
                        .get_or_create(&DependencyPercentileLabels {
                            dependency,
                            percentile,
                        })
                        .set(pick(&snapshot.latency).as_secs_f64());
                }
                let _ = self
                    .m
                    .breaker_error_rate
                    .get_or_create(&DependencyLabels { dependency })
                    .set(finite_or_zero(snapshot.error_rate));
                let _ = self
                    .m
                    .breaker_consecutive_failures
                    .get_or_create(&DependencyLabels { dependency })
                    .set(i64::from(snapshot.consecutive_failures));
            }
        }
        if let Some(exits) = exits {
            let _ = self
                .m
                .exit_breaker_consecutive_failures
                .set(i64::from(exits.consecutive_failures()));
        }
        let snapshots: Vec<(Dependency, LatencySnapshot)> = self
            .dependency_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(dependency, window)| (*dependency, window.snapshot()))
            .collect();
        for (dependency, snapshot) in snapshots {
            for (percentile, pick) in QUANTILES {
                let _ = self
                    .m
                    .dependency_quantiles
                    .get_or_create(&DependencyPercentileLabels {
                        dependency: dependency.as_str(),
                        percentile,
                    })
                    .set(pick(&snapshot).as_secs_f64());
            }
        }
    }

    fn set_breaker_state(&self, dependency: &'static str, current: BreakerState) {
        for state in BREAKER_STATES {
            let _ = self
                .m
                .breaker_state
                .get_or_create(&DependencyStateLabels {
                    dependency,
                    state: state.as_str(),
                })
                .set(i64::from(state == current));
        }
    }

    fn set_trading_state(&self, current: TradingMode) {
        for mode in TradingMode::ALL {
            let _ = self
                .m
                .trading_state
                .get_or_create(&StateLabels {
                    state: mode.as_str(),
                })
                .set(i64::from(mode == current));
        }
    }

    fn record_call(&self, dependency: Dependency, elapsed: Duration, ok: bool) {
        let name = dependency.as_str();
        self.m
            .calls
            .get_or_create(&CallLabels {
                dependency: name,
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        self.m
            .call_duration
            .get_or_create(&DependencyLabels { dependency: name })
            .observe(elapsed.as_secs_f64());
        let mut windows = self
            .dependency_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = windows.get_mut(&dependency) {
            window.record(elapsed);
        } else if let Ok(mut window) = RollingLatency::new(DEPENDENCY_LATENCY_WINDOW) {
            window.record(elapsed);
            windows.insert(dependency, window);
        }
    }
}

impl MetricsSink for PrometheusMetrics {
    fn record(&self, event: MetricEvent) {
        let m = &self.m;
        match event {
            MetricEvent::Tick => {
                m.ticks.inc();
            }
            MetricEvent::TickError => {
                m.tick_errors.inc();
            }
            MetricEvent::ExitStarted { kind } => {
                m.exits_attempted.get_or_create(&kind_labels(kind)).inc();
            }
            MetricEvent::ExitAttemptSent { kind, style, .. } => {
                m.exit_transactions_sent
                    .get_or_create(&KindStyleLabels {
                        kind: kind.as_str(),
                        style: style.as_str(),
                    })
                    .inc();
            }
            MetricEvent::ExitFees { kind, bid, paid } => {
                m.exit_priority_fees_bid
                    .get_or_create(&kind_labels(kind))
                    .inc_by(bid.get());
                if let Some(paid) = paid {
                    m.exit_fees_paid
                        .get_or_create(&kind_labels(kind))
                        .inc_by(paid.get());
                }
            }
            MetricEvent::ExitFinished {
                kind,
                result,
                attempts,
                elapsed,
                slippage_bps,
            } => {
                m.exit_duration
                    .get_or_create(&ResultLabels {
                        result: exit_result_str(result),
                    })
                    .observe(elapsed.as_secs_f64());
                match result {
                    ExitResult::Closed => {
                        let family = if attempts <= 1 {
                            &m.exits_first_attempt
                        } else {
                            &m.exits_required_retry
                        };
                        family.get_or_create(&kind_labels(kind)).inc();
                        if let Some(bps) = slippage_bps.filter(|b| b.is_finite()) {
                            m.exit_slippage.observe(bps);
                        }
                    }
                    ExitResult::Failed => {
                        m.exits_failed.get_or_create(&kind_labels(kind)).inc();
                    }
                }
            }
            MetricEvent::ExitDeadlineExceeded { kind } => {
                m.exits_deadline_exceeded
                    .get_or_create(&kind_labels(kind))
                    .inc();
            }
            MetricEvent::ExitBreakerTripped => {
                m.circuit_breaker_trips.inc();
            }
            MetricEvent::GatewayAccepted { module, kind } => {
                m.gateway_orders
                    .get_or_create(&module_kind(module, kind))
                    .inc();
            }
            MetricEvent::GatewayConflict { module, kind } => {
                m.gateway_conflicts
                    .get_or_create(&module_kind(module, kind))
                    .inc();
            }
            MetricEvent::EntryFinished { filled, .. } => {
                let result = if filled { "filled" } else { "failed" };
                m.entries.get_or_create(&ResultLabels { result }).inc();
            }
            MetricEvent::EntryRefused => {
                m.entries
                    .get_or_create(&ResultLabels { result: "refused" })
                    .inc();
            }
            MetricEvent::Call {
                dependency,
                elapsed,
                ok,
            } => self.record_call(dependency, elapsed, ok),
            MetricEvent::LatencyBreakerState { dependency, state } => {
                m.breaker_transitions
                    .get_or_create(&DependencyStateLabels {
                        dependency: dependency.as_str(),
                        state: state.as_str(),
                    })
                    .inc();
                self.set_breaker_state(dependency.as_str(), state);
            }
            MetricEvent::TradingState(mode) => self.set_trading_state(mode),
            MetricEvent::Halted => {}
        }
    }
}

fn kind_labels(kind: ExitKind) -> KindLabels {
    KindLabels {
        kind: kind.as_str(),
    }
}

fn module_kind(module: ExitModule, kind: ExitKind) -> ModuleKindLabels {
    ModuleKindLabels {
        module: module.as_str(),
        kind: kind.as_str(),
    }
}

fn exit_result_str(result: ExitResult) -> &'static str {
    match result {
        ExitResult::Closed => "closed",
        ExitResult::Failed => "failed",
    }
}

fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}
