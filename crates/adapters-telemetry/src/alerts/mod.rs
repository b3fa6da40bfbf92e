//! Alert sinks: Slack, Discord and generic JSON webhooks, the log, and a router that fans
//! an alert out to several of them through a bounded queue, de-duplicated and
//! rate-limited, so a flapping breaker cannot flood a channel and a failing webhook never
//! blocks trading.

mod counters;
mod log;
mod router;
mod webhook;

pub use counters::{AlertCounters, AlertOutcome};
pub use log::LogAlerts;
pub use router::{AlertRouter, AlertRouterConfig, AlertWorker};
pub use webhook::{WebhookAlerts, WebhookKind};

use kyzlo_application::ports::Severity;

/// A stable lower-case name for a severity.
#[must_use]
pub const fn severity_str(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}
