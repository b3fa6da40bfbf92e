//! The alert router on paused time: a flapping breaker cannot flood a channel, repeats
//! are dropped, a hung or failing sink never blocks `send`, a full queue drops and counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures by design

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_adapters_telemetry::{AlertCounters, AlertOutcome, AlertRouter, AlertRouterConfig};
use kyzlo_application::ports::{Alert, AlertKind, AlertSink, PortError, Severity};
use kyzlo_application::testing::RecordingAlerts;
use kyzlo_domain::ErrorClass;

fn alert(kind: AlertKind, message: impl Into<String>) -> Alert {
    Alert {
        kind,
        severity: Severity::Warning,
        message: message.into(),
        position: None,
    }
}

fn start(
    sinks: Vec<Arc<dyn AlertSink>>,
    config: AlertRouterConfig,
) -> (AlertRouter, AlertCounters) {
    let counters = AlertCounters::default();
    let (router, worker) = AlertRouter::new(sinks, config, counters.clone());
    tokio::spawn(worker.run());
    (router, counters)
}

/// Lets the worker run what is queued (paused time does not move).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A sink that answers from a script, then succeeds, counting calls.
#[derive(Default)]
struct ScriptedSink {
    script: Mutex<VecDeque<PortError>>,
    calls: AtomicU32,
}

#[async_trait]
impl AlertSink for ScriptedSink {
    async fn send(&self, _alert: &Alert) -> Result<(), PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.script.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A webhook that never answers.
struct HungSink;

#[async_trait]
impl AlertSink for HungSink {
    async fn send(&self, _alert: &Alert) -> Result<(), PortError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hundred_breaker_flaps_in_a_minute_deliver_at_most_the_configured_number() {
    let recorded = Arc::new(RecordingAlerts::default());
    let config = AlertRouterConfig {
        rate_limit: 5,
        rate_window: Duration::from_secs(60),
        ..AlertRouterConfig::default()
    };
    let (router, counters) = start(vec![recorded.clone()], config);
    // 100 flaps in 59 s; every "open" names a different p99, so the rate limit (not
    // only de-duplication) must hold the line.
    for i in 0..100u32 {
        let message = if i % 2 == 0 {
            format!("latency breaker open (p99 {} ms): entries paused", 200 + i)
        } else {
            "latency breaker closed".to_owned()
        };
        router
            .send(&alert(AlertKind::LatencyBreaker, message))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(590)).await;
    }
    settle().await;
    assert_eq!(
        recorded.count(AlertKind::LatencyBreaker),
        5,
        "{:#?}",
        recorded.all()
    );

    // The window ends at 60 s: one summary of the 95 suppressed, nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    let all = recorded.all();
    assert_eq!(all.len(), 6, "{all:#?}");
    assert_eq!(
        all[5].message,
        "suppressed 95 latency_breaker alerts in the last 60 s (at most 5 per 60 s; repeats within 60 s dropped)"
    );
    let suppressed = counters.get(AlertKind::LatencyBreaker, AlertOutcome::RateLimited)
        + counters.get(AlertKind::LatencyBreaker, AlertOutcome::Deduplicated);
    assert_eq!(suppressed, 95);
    assert_eq!(
        counters.get(AlertKind::LatencyBreaker, AlertOutcome::Summary),
        1
    );
    assert_eq!(
        counters.get(AlertKind::LatencyBreaker, AlertOutcome::Delivered),
        6
    );

    // A quiet minute later, the next flap is delivered again.
    tokio::time::sleep(Duration::from_secs(60)).await;
    router
        .send(&alert(
            AlertKind::LatencyBreaker,
            "latency breaker open (p99 999 ms)",
        ))
        .await
        .unwrap();
    settle().await;
    assert_eq!(recorded.all().len(), 7);
}

#[tokio::test(start_paused = true)]
async fn the_same_alert_repeated_within_the_window_is_delivered_once() {
    let recorded = Arc::new(RecordingAlerts::default());
    let (router, counters) = start(vec![recorded.clone()], AlertRouterConfig::default());
    for _ in 0..10 {
        router
            .send(&alert(AlertKind::ExitFailed, "exit of pos-1 failed"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Another kind is limited separately.
    router
        .send(&alert(AlertKind::TradingHalted, "trading halted"))
        .await
        .unwrap();
    settle().await;
    assert_eq!(recorded.count(AlertKind::ExitFailed), 1);
    assert_eq!(recorded.count(AlertKind::TradingHalted), 1);
    assert_eq!(
        counters.get(AlertKind::ExitFailed, AlertOutcome::Deduplicated),
        9
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_webhook_never_blocks_send_and_a_full_queue_drops_and_counts() {
    let config = AlertRouterConfig {
        queue_capacity: 2,
        rate_limit: 100,
        delivery_timeout: Duration::from_secs(10),
        delivery_attempts: 1,
        ..AlertRouterConfig::default()
    };
    let (router, counters) = start(vec![Arc::new(HungSink)], config);
    let mut refused = 0;
    for i in 0..10 {
        let sent = tokio::time::timeout(
            Duration::from_millis(1),
            router.send(&alert(AlertKind::ExitFailed, format!("exit {i} failed"))),
        )
        .await
        .expect("send returns at once even with a hung webhook");
        if let Err(e) = sent {
            assert_eq!(e.class, ErrorClass::RateLimited);
            refused += 1;
        }
    }
    // The worker had not run yet: two queued, eight dropped.
    assert_eq!(refused, 8);
    assert_eq!(
        counters.get(AlertKind::ExitFailed, AlertOutcome::Dropped),
        8
    );

    // Each queued alert waits out the hung webhook's timeout, then counts as failed.
    tokio::time::sleep(Duration::from_secs(21)).await;
    settle().await;
    assert_eq!(counters.get(AlertKind::ExitFailed, AlertOutcome::Failed), 2);
    // And the queue takes alerts again.
    assert!(
        router
            .send(&alert(AlertKind::ExitFailed, "later"))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_sink_does_not_stop_delivery_to_the_others() {
    let failing = Arc::new(ScriptedSink::default());
    failing.script.lock().unwrap().push_back(PortError::new(
        "alerts.webhook",
        ErrorClass::Unknown,
        "HTTP 404",
    ));
    let recorded = Arc::new(RecordingAlerts::default());
    let (router, counters) = start(
        vec![failing.clone(), recorded.clone()],
        AlertRouterConfig::default(),
    );
    router
        .send(&alert(AlertKind::TradingHalted, "halted"))
        .await
        .unwrap();
    settle().await;
    assert_eq!(recorded.count(AlertKind::TradingHalted), 1);
    // A permanent failure is not retried.
    assert_eq!(failing.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        counters.get(AlertKind::TradingHalted, AlertOutcome::Failed),
        1
    );
    assert_eq!(
        counters.get(AlertKind::TradingHalted, AlertOutcome::Delivered),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_webhook_is_retried_after_its_retry_after() {
    let sink = Arc::new(ScriptedSink::default());
    sink.script.lock().unwrap().push_back(
        PortError::new("alerts.slack", ErrorClass::RateLimited, "HTTP 429")
            .with_code(429)
            .with_retry_after(Duration::from_secs(3)),
    );
    let (router, counters) = start(vec![sink.clone()], AlertRouterConfig::default());
    router
        .send(&alert(
            AlertKind::ExitDeadlineExceeded,
            "pos-2 past its deadline",
        ))
        .await
        .unwrap();
    settle().await;
    assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(2_900)).await;
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        1,
        "waits the retry-after"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(sink.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        counters.get(AlertKind::ExitDeadlineExceeded, AlertOutcome::Delivered),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_router_flushes_pending_summaries_and_ends_the_worker() {
    let recorded = Arc::new(RecordingAlerts::default());
    let counters = AlertCounters::default();
    let config = AlertRouterConfig {
        rate_limit: 1,
        ..AlertRouterConfig::default()
    };
    let (router, worker) = AlertRouter::new(vec![recorded.clone()], config, counters);
    let worker = tokio::spawn(worker.run());
    for i in 0..4 {
        router
            .send(&alert(AlertKind::Reconciliation, format!("mismatch {i}")))
            .await
            .unwrap();
    }
    drop(router);
    worker.await.unwrap();
    let all = recorded.all();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[0].message, "mismatch 0");
    assert_eq!(
        all[1].message,
        "suppressed 3 reconciliation alerts in the last 60 s (at most 1 per 60 s; repeats within 60 s dropped)"
    );
}
