//! The Prometheus sink: what each event becomes in the exposition, the scrape-time gauges
//! read from live services, and the exposition's validity (strict parser, and promtool
//! when installed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{parse_openmetrics, promtool, record_every_event};
use kyzlo_adapters_telemetry::PrometheusMetrics;
use kyzlo_application::metrics::{Dependency, ExitResult, MetricEvent, MetricsSink};
use kyzlo_application::ports::{Balances, PortError};
use kyzlo_application::testing::Harness;
use kyzlo_domain::latency_breaker::BreakerState;
use kyzlo_domain::trading_state::TradingMode;
use kyzlo_domain::{ErrorClass, ExitKind};

/// The issue's metrics, as the exposition names them.
const ISSUE_METRICS: [&str; 18] = [
    "kyzlo_exits_attempted_total",
    "kyzlo_exits_first_attempt_total",
    "kyzlo_exits_required_retry_total",
    "kyzlo_exits_deadline_exceeded_total",
    "kyzlo_circuit_breaker_trips_total",
    "kyzlo_exit_duration_seconds_bucket",
    "kyzlo_exit_slippage_bps_bucket",
    "kyzlo_latency_breaker_state",
    "kyzlo_exit_breaker_consecutive_failures",
    "kyzlo_trading_state",
    "kyzlo_latency_breaker_latency_seconds",
    "kyzlo_dependency_latency_quantile_seconds",
    "kyzlo_dependency_call_duration_seconds_bucket",
    "kyzlo_gateway_orders_total",
    "kyzlo_gateway_ownership_conflicts_total",
    "kyzlo_ticks_total",
    "kyzlo_tick_errors_total",
    "kyzlo_alerts_total",
];

#[test]
fn every_metric_of_the_issue_is_exposed_and_the_exposition_is_valid() {
    let m = PrometheusMetrics::new();
    record_every_event(&m);
    let text = m.render().unwrap();
    let exposition = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names = exposition.sample_names();
    for metric in ISSUE_METRICS {
        assert!(names.contains(metric), "{metric} missing from:\n{text}");
    }
    assert_eq!(exposition.families["kyzlo_exits_attempted"].kind, "counter");
    assert_eq!(
        exposition.families["kyzlo_exit_duration_seconds"].kind,
        "histogram"
    );
    assert_eq!(exposition.families["kyzlo_trading_state"].kind, "gauge");
}

#[test]
fn a_fresh_registry_already_shows_zeroed_series_for_known_labels() {
    let text = PrometheusMetrics::new().render().unwrap();
    let e = parse_openmetrics(&text).unwrap();
    assert_eq!(
        e.value("kyzlo_exits_attempted_total", &[("kind", "stop_loss")]),
        0.0
    );
    assert_eq!(
        e.value(
            "kyzlo_gateway_ownership_conflicts_total",
            &[("module", "operator"), ("kind", "operator")]
        ),
        0.0
    );
    for dependency in ["price_feed", "router", "rpc_reads", "rpc_sends"] {
        assert_eq!(
            e.value(
                "kyzlo_latency_breaker_state",
                &[("dependency", dependency), ("state", "closed")]
            ),
            1.0,
            "{dependency}"
        );
    }
    assert_eq!(e.value("kyzlo_circuit_breaker_trips_total", &[]), 0.0);
}

#[test]
fn closed_exits_split_into_first_attempt_and_retry_with_time_and_slippage() {
    let m = PrometheusMetrics::new();
    for (attempts, secs, bps) in [(1, 2, 10.0), (2, 14, 120.0), (3, 25, 400.0)] {
        m.record(MetricEvent::ExitFinished {
            kind: ExitKind::StopLoss,
            result: ExitResult::Closed,
            attempts,
            elapsed: Duration::from_secs(secs),
            slippage_bps: Some(bps),
        });
    }
    // A non-finite slippage is not observed (and does not poison the sum).
    m.record(MetricEvent::ExitFinished {
        kind: ExitKind::StopLoss,
        result: ExitResult::Closed,
        attempts: 1,
        elapsed: Duration::from_secs(1),
        slippage_bps: Some(f64::NAN),
    });
    let e = parse_openmetrics(&m.render().unwrap()).unwrap();
    let stop = [("kind", "stop_loss")];
    assert_eq!(e.value("kyzlo_exits_first_attempt_total", &stop), 2.0);
    assert_eq!(e.value("kyzlo_exits_required_retry_total", &stop), 2.0);
    assert_eq!(
        e.value("kyzlo_exit_duration_seconds_count", &[("result", "closed")]),
        4.0
    );
    assert_eq!(
        e.value("kyzlo_exit_duration_seconds_sum", &[("result", "closed")]),
        42.0
    );
    assert_eq!(
        e.value(
            "kyzlo_exit_duration_seconds_bucket",
            &[("result", "closed"), ("le", "15.0")]
        ),
        3.0
    );
    assert_eq!(e.value("kyzlo_exit_slippage_bps_count", &[]), 3.0);
    assert_eq!(e.value("kyzlo_exit_slippage_bps_sum", &[]), 530.0);
}

#[test]
fn trading_and_breaker_states_are_one_hot() {
    let m = PrometheusMetrics::new();
    m.record(MetricEvent::TradingState(TradingMode::ReduceOnly));
    m.record(MetricEvent::LatencyBreakerState {
        dependency: Dependency::Router,
        state: BreakerState::HalfOpen,
    });
    let e = parse_openmetrics(&m.render().unwrap()).unwrap();
    for (state, want) in [("active", 0.0), ("reduce_only", 1.0), ("halted", 0.0)] {
        assert_eq!(
            e.value("kyzlo_trading_state", &[("state", state)]),
            want,
            "{state}"
        );
    }
    for (state, want) in [("closed", 0.0), ("open", 0.0), ("half_open", 1.0)] {
        assert_eq!(
            e.value(
                "kyzlo_latency_breaker_state",
                &[("dependency", "router"), ("state", state)]
            ),
            want,
            "{state}"
        );
    }
    // Each dependency has a breaker of its own: the chain's reads' and sends' are still
    // closed.
    for dependency in ["rpc_reads", "rpc_sends"] {
        assert_eq!(
            e.value(
                "kyzlo_latency_breaker_state",
                &[("dependency", dependency), ("state", "closed")]
            ),
            1.0,
            "{dependency}"
        );
    }
    assert_eq!(
        e.value(
            "kyzlo_latency_breaker_transitions_total",
            &[("dependency", "router"), ("state", "half_open")]
        ),
        1.0
    );
}

#[test]
fn per_dependency_quantiles_come_from_each_dependencys_own_calls() {
    let m = PrometheusMetrics::new();
    for ms in 1..=100u64 {
        m.record(MetricEvent::Call {
            dependency: Dependency::RpcReads,
            elapsed: Duration::from_millis(ms),
            ok: true,
        });
    }
    m.record(MetricEvent::Call {
        dependency: Dependency::Router,
        elapsed: Duration::from_millis(700),
        ok: false,
    });
    let e = parse_openmetrics(&m.render().unwrap()).unwrap();
    let q = |dep, quantile| {
        e.value(
            "kyzlo_dependency_latency_quantile_seconds",
            &[("dependency", dep), ("percentile", quantile)],
        )
    };
    assert!(
        (q("rpc_reads", "p50") - 0.050).abs() < 0.001,
        "{}",
        q("rpc_reads", "p50")
    );
    assert!(
        (q("rpc_reads", "p99") - 0.099).abs() < 0.001,
        "{}",
        q("rpc_reads", "p99")
    );
    assert!((q("router", "p99") - 0.700).abs() < 0.003);
    assert_eq!(q("rpc_sends", "p99"), 0.0, "sends are counted apart");
    assert_eq!(q("health", "p99"), 0.0);
    assert_eq!(
        e.value(
            "kyzlo_dependency_calls_total",
            &[("dependency", "router"), ("outcome", "error")]
        ),
        1.0
    );
    assert_eq!(
        e.value(
            "kyzlo_dependency_call_duration_seconds_count",
            &[("dependency", "rpc_reads")]
        ),
        100.0
    );
}

#[tokio::test(start_paused = true)]
async fn each_scrape_reads_the_latency_breaker_and_exit_breaker_from_the_services() {
    let h = Harness::new(100.0, Balances::default());
    let m = PrometheusMetrics::new();
    m.observe(&h.guard, &h.exits);
    for _ in 0..3 {
        let _ = h
            .guard
            .call(Dependency::RpcReads, "test.slow", async {
                tokio::time::sleep(Duration::from_millis(250)).await;
                Ok::<_, PortError>(())
            })
            .await;
    }
    let _ = h
        .guard
        .call(Dependency::RpcReads, "test.fail", async {
            Err::<(), _>(PortError::new("test.fail", ErrorClass::Network, "down"))
        })
        .await;
    let e = parse_openmetrics(&m.render().unwrap()).unwrap();
    let chain = ("dependency", "rpc_reads");
    let p99 = e.value(
        "kyzlo_latency_breaker_latency_seconds",
        &[chain, ("percentile", "p99")],
    );
    assert!((p99 - 0.25).abs() < 0.002, "p99 {p99}");
    assert_eq!(
        e.value("kyzlo_latency_breaker_consecutive_failures", &[chain]),
        1.0
    );
    assert!(e.value("kyzlo_latency_breaker_error_rate", &[chain]) > 0.0);
    assert_eq!(
        e.value(
            "kyzlo_latency_breaker_consecutive_failures",
            &[("dependency", "router")]
        ),
        0.0,
        "the router's breaker saw none of the chain's calls"
    );
    assert_eq!(
        e.value(
            "kyzlo_latency_breaker_consecutive_failures",
            &[("dependency", "rpc_sends")]
        ),
        0.0,
        "the sends' breaker saw none of the reads'"
    );
    assert_eq!(e.value("kyzlo_exit_breaker_consecutive_failures", &[]), 0.0);

    // Once the services are gone, scraping still works and keeps the last values.
    let guard = Arc::downgrade(&h.guard);
    drop(h);
    assert!(
        guard.upgrade().is_none(),
        "the sink does not keep the guard alive"
    );
    assert!(parse_openmetrics(&m.render().unwrap()).is_ok());
}

#[test]
fn promtool_accepts_the_exposition_when_installed() {
    let m = PrometheusMetrics::new();
    record_every_event(&m);
    let text = m.render().unwrap();
    let Some(out) = promtool(&["check", "metrics"], Some(&text)) else {
        eprintln!("promtool not installed: exposition checked by the strict parser only");
        return;
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 1 is a parse failure; 3 is lint findings, which must all be the one artifact of
    // promtool reading OpenMetrics as the older text format: a counter's HELP is on its
    // family name (`kyzlo_ticks`), so promtool finds none on the sample (`kyzlo_ticks_total`).
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 3)),
        "promtool exit {code:?}:\n{report}"
    );
    let exposition = parse_openmetrics(&text).unwrap();
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let (sample, finding) = line.split_once(' ').unwrap_or((line, ""));
        let family = sample
            .strip_suffix("_total")
            .and_then(|f| exposition.families.get(f));
        assert!(
            finding == "no help text"
                && family.is_some_and(|f| f.kind == "counter" && f.help.is_some()),
            "unexpected promtool finding: {line}\n{report}"
        );
    }
}
