//! Test helpers: a strict parser of the OpenMetrics text exposition (the format, not
//! substrings: every line must be a descriptor, a sample of the family just described,
//! or the final `# EOF`), one of every metric event, and a promtool runner.

#![allow(dead_code)] // each test binary uses a different part of these helpers

use std::time::Duration;

use kyzlo_application::metrics::{Dependency, ExitModule, ExitResult, MetricEvent, MetricsSink};
use kyzlo_domain::ExitKind;
use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::latency_breaker::BreakerState;
use kyzlo_domain::trading_state::TradingMode;

#[allow(unused_imports)] // each test binary uses a different part of these helpers
pub use kyzlo_adapters_telemetry::exposition::{Exposition, parse_openmetrics};

/// One of every metric event, so every family and label set has been seen.
pub fn every_event() -> Vec<MetricEvent> {
    vec![
        MetricEvent::Tick,
        MetricEvent::TickError,
        MetricEvent::ExitStarted {
            kind: ExitKind::StopLoss,
        },
        MetricEvent::ExitAttemptSent {
            kind: ExitKind::StopLoss,
            attempt: 1,
            style: OrderStyle::LimitLike,
        },
        MetricEvent::ExitFinished {
            kind: ExitKind::StopLoss,
            result: ExitResult::Closed,
            attempts: 1,
            elapsed: Duration::from_millis(1_500),
            slippage_bps: Some(12.0),
        },
        MetricEvent::ExitFinished {
            kind: ExitKind::StopLoss,
            result: ExitResult::Closed,
            attempts: 2,
            elapsed: Duration::from_secs(12),
            slippage_bps: Some(80.0),
        },
        MetricEvent::ExitFinished {
            kind: ExitKind::TrailingStop,
            result: ExitResult::Failed,
            attempts: 2,
            elapsed: Duration::from_secs(20),
            slippage_bps: None,
        },
        MetricEvent::ExitDeadlineExceeded {
            kind: ExitKind::StopLoss,
        },
        MetricEvent::ExitBreakerTripped,
        MetricEvent::GatewayAccepted {
            module: ExitModule::ExitPlan,
            kind: ExitKind::StopLoss,
        },
        MetricEvent::GatewayConflict {
            module: ExitModule::Strategy,
            kind: ExitKind::Strategy,
        },
        MetricEvent::EntryFinished {
            filled: true,
            attempts: 1,
        },
        MetricEvent::EntryRefused,
        MetricEvent::Call {
            dependency: Dependency::RpcReads,
            elapsed: Duration::from_millis(120),
            ok: true,
        },
        MetricEvent::Call {
            dependency: Dependency::Router,
            elapsed: Duration::from_millis(900),
            ok: false,
        },
        MetricEvent::LatencyBreakerState {
            dependency: Dependency::RpcSends,
            state: BreakerState::Open,
        },
        MetricEvent::TradingState(TradingMode::Halted),
    ]
}

/// Records [`every_event`] into `sink`.
pub fn record_every_event(sink: &dyn MetricsSink) {
    for event in every_event() {
        sink.record(event);
    }
}

/// Runs `promtool` with `args` and `stdin`, if promtool is installed: `None` when it is not.
pub fn promtool(args: &[&str], stdin: Option<&str>) -> Option<std::process::Output> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or("").as_bytes()).ok()?;
    }
    child.wait_with_output().ok()
}
