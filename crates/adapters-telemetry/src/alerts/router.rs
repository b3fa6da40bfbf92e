//! The alert router: `send` puts the alert on a bounded queue and returns at once; one
//! worker task owns the de-duplication and rate-limit state (on tokio's clock) and fans
//! each admitted alert out to every sink concurrently, each bounded by a timeout. A full
//! queue drops the alert and counts it; a slow or failing webhook delays only other
//! alerts, never trading.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::ports::{Alert, AlertKind, AlertSink, PortError, Severity};
use kyzlo_domain::ErrorClass;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::counters::{AlertCounters, AlertOutcome};

/// Pause before a second delivery attempt when the sink did not say how long to wait.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause before a second attempt, whatever the sink asked.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Above this many remembered messages, expired ones are forgotten.
const DEDUP_MEMORY: usize = 1_024;

/// How the router limits and delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRouterConfig {
    /// Alerts waiting for the worker; more are dropped and counted (at least 1).
    pub queue_capacity: usize,
    /// The same kind and message delivered within this window is suppressed (zero: no
    /// de-duplication).
    pub dedup_window: Duration,
    /// At most this many alerts of one kind are delivered per `rate_window` (at least 1).
    pub rate_limit: u32,
    /// The rate-limit window; when it ends with alerts suppressed, one summary is sent.
    pub rate_window: Duration,
    /// Each delivery attempt to one sink is cut off after this long.
    pub delivery_timeout: Duration,
    /// Attempts per sink for a retryable failure (at least 1).
    pub delivery_attempts: u32,
}

impl Default for AlertRouterConfig {
    /// 256 queued, repeats within 60 s dropped, 5 per kind per 60 s, 10 s per attempt,
    /// 2 attempts.
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            dedup_window: Duration::from_secs(60),
            rate_limit: 5,
            rate_window: Duration::from_secs(60),
            delivery_timeout: Duration::from_secs(10),
            delivery_attempts: 2,
        }
    }
}

/// The trading side of the router: an [`AlertSink`] whose `send` only enqueues.
#[derive(Debug, Clone)]
pub struct AlertRouter {
    queue: mpsc::Sender<Alert>,
    counters: AlertCounters,
}

/// The delivery side: run it as a task (`tokio::spawn(worker.run())`). It ends once every
/// [`AlertRouter`] clone is dropped and the queue is drained, after sending the summaries
/// still due.
pub struct AlertWorker {
    queue: mpsc::Receiver<Alert>,
    sinks: Vec<Arc<dyn AlertSink>>,
    config: AlertRouterConfig,
    counters: AlertCounters,
    windows: HashMap<AlertKind, KindWindow>,
    delivered_at: HashMap<(AlertKind, String), Instant>,
}

/// One kind's current rate-limit window.
#[derive(Debug, Clone, Copy)]
struct KindWindow {
    started: Instant,
    sent: u32,
    suppressed: u64,
    worst: Severity,
}

impl AlertRouter {
    /// A router over `sinks` and the worker that delivers for it.
    #[must_use]
    pub fn new(
        sinks: Vec<Arc<dyn AlertSink>>,
        config: AlertRouterConfig,
        counters: AlertCounters,
    ) -> (Self, AlertWorker) {
        let config = AlertRouterConfig {
            queue_capacity: config.queue_capacity.max(1),
            rate_limit: config.rate_limit.max(1),
            delivery_attempts: config.delivery_attempts.max(1),
            ..config
        };
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let router = Self {
            queue: tx,
            counters: counters.clone(),
        };
        let worker = AlertWorker {
            queue: rx,
            sinks,
            config,
            counters,
            windows: HashMap::new(),
            delivered_at: HashMap::new(),
        };
        (router, worker)
    }

    /// The counters this router and its worker update.
    #[must_use]
    pub fn counters(&self) -> &AlertCounters {
        &self.counters
    }
}

#[async_trait]
impl AlertSink for AlertRouter {
    /// Enqueues the alert and returns at once.
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        match self.queue.try_send(alert.clone()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(dropped)) => {
                self.counters.inc(dropped.kind, AlertOutcome::Dropped);
                Err(PortError::new(
                    "alerts.enqueue",
                    ErrorClass::RateLimited,
                    format!("alert queue full: {} alert dropped", dropped.kind.as_str()),
                ))
            }
            Err(mpsc::error::TrySendError::Closed(dropped)) => {
                self.counters.inc(dropped.kind, AlertOutcome::Dropped);
                Err(PortError::new(
                    "alerts.enqueue",
                    ErrorClass::Unknown,
                    "the alert worker has stopped",
                ))
            }
        }
    }
}

impl AlertWorker {
    /// Delivers until the queue closes.
    pub async fn run(mut self) {
        loop {
            let next_summary = self.next_summary_due();
            tokio::select! {
                biased;
                () = sleep_until_some(next_summary) => self.flush_due(Instant::now()).await,
                received = self.queue.recv() => match received {
                    Some(alert) => self.admit(alert).await,
                    None => break,
                },
            }
        }
        self.flush_all().await;
    }

    fn next_summary_due(&self) -> Option<Instant> {
        self.windows
            .values()
            .filter(|w| w.suppressed > 0)
            .map(|w| w.started + self.config.rate_window)
            .min()
    }

    async fn admit(&mut self, alert: Alert) {
        let now = Instant::now();
        self.flush_due(now).await;
        let window = self.windows.entry(alert.kind).or_insert(KindWindow {
            started: now,
            sent: 0,
            suppressed: 0,
            worst: Severity::Info,
        });
        let key = (alert.kind, alert.message.clone());
        let duplicate = self
            .delivered_at
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < self.config.dedup_window);
        let outcome = if duplicate {
            Some(AlertOutcome::Deduplicated)
        } else if window.sent >= self.config.rate_limit {
            Some(AlertOutcome::RateLimited)
        } else {
            None
        };
        if let Some(outcome) = outcome {
            window.suppressed += 1;
            window.worst = window.worst.max(alert.severity);
            self.counters.inc(alert.kind, outcome);
            tracing::debug!(
                kind = alert.kind.as_str(),
                outcome = outcome.as_str(),
                "alert suppressed"
            );
            return;
        }
        window.sent += 1;
        self.delivered_at.insert(key, now);
        if self.delivered_at.len() > DEDUP_MEMORY {
            let keep = self.config.dedup_window;
            self.delivered_at
                .retain(|_, at| now.duration_since(*at) < keep);
        }
        self.deliver(alert).await;
    }

    /// Ends every window whose time is up, sending a summary where alerts were suppressed.
    async fn flush_due(&mut self, now: Instant) {
        let window = self.config.rate_window;
        let due: Vec<AlertKind> = self
            .windows
            .iter()
            .filter(|(_, w)| now >= w.started + window)
            .map(|(kind, _)| *kind)
            .collect();
        for kind in due {
            if let Some(ended) = self.windows.remove(&kind) {
                self.summarise(kind, ended).await;
            }
        }
    }

    async fn flush_all(&mut self) {
        let windows: Vec<(AlertKind, KindWindow)> = self.windows.drain().collect();
        for (kind, ended) in windows {
            self.summarise(kind, ended).await;
        }
    }

    async fn summarise(&mut self, kind: AlertKind, ended: KindWindow) {
        if ended.suppressed == 0 {
            return;
        }
        self.counters.inc(kind, AlertOutcome::Summary);
        let summary = Alert {
            kind,
            severity: ended.worst,
            message: format!(
                "suppressed {} {} alerts in the last {} s (at most {} per {} s; repeats within {} s dropped)",
                ended.suppressed,
                kind.as_str(),
                self.config.rate_window.as_secs(),
                self.config.rate_limit,
                self.config.rate_window.as_secs(),
                self.config.dedup_window.as_secs(),
            ),
            position: None,
        };
        self.deliver(summary).await;
    }

    async fn deliver(&self, alert: Alert) {
        let alert = Arc::new(alert);
        let mut deliveries = JoinSet::new();
        for sink in &self.sinks {
            let sink = Arc::clone(sink);
            let alert = Arc::clone(&alert);
            let timeout = self.config.delivery_timeout;
            let attempts = self.config.delivery_attempts;
            deliveries
                .spawn(async move { deliver_one(sink.as_ref(), &alert, timeout, attempts).await });
        }
        while let Some(done) = deliveries.join_next().await {
            let outcome = match done {
                Ok(true) => AlertOutcome::Delivered,
                Ok(false) | Err(_) => AlertOutcome::Failed,
            };
            self.counters.inc(alert.kind, outcome);
        }
    }
}

/// One sink, up to `attempts` times for retryable failures, each cut at `timeout`.
async fn deliver_one(
    sink: &dyn AlertSink,
    alert: &Alert,
    timeout: Duration,
    attempts: u32,
) -> bool {
    for attempt in 1..=attempts {
        let error = match tokio::time::timeout(timeout, sink.send(alert)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e,
            Err(_) => PortError::new(
                "alerts.deliver",
                ErrorClass::RpcTimeout,
                format!("no answer within {timeout:?}"),
            ),
        };
        let last = attempt >= attempts || !error.class.is_retryable();
        tracing::warn!(kind = alert.kind.as_str(), attempt, last, error = %error, "alert delivery failed");
        if last {
            return false;
        }
        tokio::time::sleep(
            error
                .retry_after
                .unwrap_or(RETRY_PAUSE)
                .min(MAX_RETRY_PAUSE),
        )
        .await;
    }
    false
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
