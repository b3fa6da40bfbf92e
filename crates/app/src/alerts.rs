//! Alert wiring: the log always, plus the webhooks the configuration names, behind the
//! de-duplicating, rate-limiting router (a slow webhook never blocks trading).

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_telemetry::{
    AlertCounters, AlertRouter, AlertRouterConfig, AlertWorker, LogAlerts, WebhookAlerts,
    WebhookKind,
};
use kyzlo_application::ports::AlertSink;

use crate::config::{Config, ConfigError};
use crate::error::AppError;

/// The alert sink for `config` and the worker that delivers for it (spawn
/// `worker.run()` on the runtime).
///
/// # Errors
/// A webhook URL that is not a valid URL (named by its key, never echoed).
pub fn alert_sink(
    config: &Config,
    counters: AlertCounters,
) -> Result<(Arc<dyn AlertSink>, AlertWorker), AppError> {
    let mut sinks: Vec<Arc<dyn AlertSink>> = vec![Arc::new(LogAlerts)];
    let hooks = [
        (
            "alerts.slack_webhook",
            WebhookKind::Slack,
            &config.alerts.slack_webhook,
        ),
        (
            "alerts.discord_webhook",
            WebhookKind::Discord,
            &config.alerts.discord_webhook,
        ),
        (
            "alerts.generic_webhook",
            WebhookKind::Generic,
            &config.alerts.generic_webhook,
        ),
    ];
    for (key, kind, url) in hooks {
        if let Some(url) = url {
            let hook = WebhookAlerts::new(kind, url, Duration::from_secs(5)).map_err(|_| {
                AppError::Config(ConfigError::Invalid {
                    key: key.into(),
                    value: "***".into(),
                    expected: "an http(s) URL".into(),
                })
            })?;
            sinks.push(Arc::new(hook));
        }
    }
    let router_config = AlertRouterConfig {
        rate_limit: config.alerts.max_per_window.max(1),
        rate_window: Duration::from_secs_f64(config.alerts.window_s),
        ..AlertRouterConfig::default()
    };
    let (router, worker) = AlertRouter::new(sinks, router_config, counters);
    Ok((Arc::new(router), worker))
}
