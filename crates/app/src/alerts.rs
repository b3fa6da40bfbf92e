//! Alert wiring: the log and the status page always, plus the configured webhooks and
//! Telegram chats, behind the de-duplicating, rate-limiting router (a slow receiver never
//! blocks trading).

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_telemetry::{
    AlertCounters, AlertRouter, AlertRouterConfig, AlertWorker, LogAlerts, RecentAlerts, Telegram,
    WebhookAlerts, WebhookKind,
};
use kyzlo_application::ports::AlertSink;
use kyzlo_config::{Config, Webhook};

use crate::error::AppError;

/// The alert sink for `config` and the worker that delivers for it (spawn
/// `worker.run()` on the runtime).
///
/// # Errors
/// [`AppError::Startup`] when a webhook's HTTP client cannot be built.
pub fn alert_sink(
    config: &Config,
    counters: AlertCounters,
    recent: Arc<RecentAlerts>,
    telegram: Option<Telegram>,
) -> Result<(Arc<dyn AlertSink>, AlertWorker), AppError> {
    let mut sinks: Vec<Arc<dyn AlertSink>> = vec![Arc::new(LogAlerts), recent];
    if let Some(telegram) = telegram {
        sinks.push(Arc::new(telegram));
    }
    for (kind, url) in &config.alerts.webhooks {
        let kind = match kind {
            Webhook::Slack => WebhookKind::Slack,
            Webhook::Discord => WebhookKind::Discord,
            Webhook::Generic => WebhookKind::Generic,
        };
        let hook = WebhookAlerts::new(kind, url.as_str(), Duration::from_secs(5))
            .map_err(|e| AppError::Startup(e.to_string()))?;
        sinks.push(Arc::new(hook));
    }
    let router_config = AlertRouterConfig {
        rate_limit: config.alerts.max_per_window,
        rate_window: config.alerts.window,
        ..AlertRouterConfig::default()
    };
    let (router, worker) = AlertRouter::new(sinks, router_config, counters);
    Ok((Arc::new(router), worker))
}
