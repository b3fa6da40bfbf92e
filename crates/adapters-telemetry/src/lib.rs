//! kyzlo's telemetry adapter: Prometheus metrics (the application's `MetricsSink` port),
//! the operator HTTP API over the application's `Operator` handle, and alert sinks
//! (Slack, Discord, generic JSON webhooks, the log) behind a de-duplicating, rate-limiting
//! router.
//!
//! What it must not know: trading rules (it only maps the application's types to metrics
//! and JSON), and any secret's value in a log line (webhook URLs and tokens are masked).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod exposition;
pub mod metrics;
pub mod telegram;

pub use alerts::{
    AlertCounters, AlertOutcome, AlertRouter, AlertRouterConfig, AlertWorker, LogAlerts,
    WebhookAlerts, WebhookKind,
};
pub use api::client::{ClientError, OperatorClient, Request};
pub use api::page::RecentAlerts;
pub use api::{ApiConfig, serve};
pub use error::TelemetryError;
pub use metrics::{OPENMETRICS_CONTENT_TYPE, PrometheusMetrics};
pub use telegram::{Telegram, TelegramConfig};
