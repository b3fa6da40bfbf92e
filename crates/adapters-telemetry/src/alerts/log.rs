//! The log as an alert sink: every alert becomes a `tracing` event at a level matching its
//! severity, so an operator without webhooks still finds alerts in the journal.

use async_trait::async_trait;
use kyzlo_application::ports::{Alert, AlertSink, PortError, Severity};

/// Writes alerts to the log. Never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAlerts;

#[async_trait]
impl AlertSink for LogAlerts {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        let kind = alert.kind.as_str();
        let position = alert.position.map(|p| p.0);
        match alert.severity {
            Severity::Critical => {
                tracing::error!(target: "kyzlo::alert", kind, ?position, message = %alert.message, "ALERT");
            }
            Severity::Warning => {
                tracing::warn!(target: "kyzlo::alert", kind, ?position, message = %alert.message, "ALERT");
            }
            Severity::Info => {
                tracing::info!(target: "kyzlo::alert", kind, ?position, message = %alert.message, "ALERT");
            }
        }
        Ok(())
    }
}
