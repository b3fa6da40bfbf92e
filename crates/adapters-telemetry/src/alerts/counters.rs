//! Counts of what the alert router did with each alert, as a Prometheus family that the
//! metrics registry exposes as `kyzlo_alerts_total{kind,outcome}`.

use kyzlo_application::ports::AlertKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// What happened to an alert (or to one sink's delivery of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertOutcome {
    /// A sink accepted it (counted per sink).
    Delivered,
    /// A sink failed to take it after its attempts (counted per sink).
    Failed,
    /// Suppressed: the same kind and message was delivered within the de-duplication window.
    Deduplicated,
    /// Suppressed: its kind had reached the rate limit in the current window.
    RateLimited,
    /// Dropped because the router's queue was full.
    Dropped,
    /// A "suppressed K alerts" summary was sent at the end of a window.
    Summary,
}

impl AlertOutcome {
    /// Every outcome.
    pub const ALL: [AlertOutcome; 6] = [
        AlertOutcome::Delivered,
        AlertOutcome::Failed,
        AlertOutcome::Deduplicated,
        AlertOutcome::RateLimited,
        AlertOutcome::Dropped,
        AlertOutcome::Summary,
    ];

    /// A stable snake_case name, the `outcome` label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Delivered => "delivered",
            AlertOutcome::Failed => "failed",
            AlertOutcome::Deduplicated => "deduplicated",
            AlertOutcome::RateLimited => "rate_limited",
            AlertOutcome::Dropped => "dropped",
            AlertOutcome::Summary => "summary",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AlertLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// The router's counters. Cheap to clone; clones share the counts. Take them from
/// [`crate::PrometheusMetrics::alert_counters`] to have them exported, or use
/// `AlertCounters::default()` for counts nobody scrapes.
#[derive(Clone, Debug, Default)]
pub struct AlertCounters {
    family: Family<AlertLabels, Counter>,
}

impl AlertCounters {
    pub(crate) fn family(&self) -> Family<AlertLabels, Counter> {
        self.family.clone()
    }

    /// Creates every known (kind, outcome) series at zero, so dashboards and alert rules
    /// see them before the first alert.
    pub(crate) fn precreate(&self) {
        const KINDS: [AlertKind; 8] = [
            AlertKind::TradingHalted,
            AlertKind::TradingResumed,
            AlertKind::ExitDeadlineExceeded,
            AlertKind::ExitFailed,
            AlertKind::LatencyBreaker,
            AlertKind::Reconciliation,
            AlertKind::WrongCredentials,
            AlertKind::ProtectiveExit,
        ];
        for kind in KINDS {
            for outcome in AlertOutcome::ALL {
                self.add(kind, outcome, 0);
            }
        }
    }

    pub(crate) fn inc(&self, kind: AlertKind, outcome: AlertOutcome) {
        self.add(kind, outcome, 1);
    }

    pub(crate) fn add(&self, kind: AlertKind, outcome: AlertOutcome, n: u64) {
        self.family
            .get_or_create(&AlertLabels {
                kind: kind.as_str(),
                outcome: outcome.as_str(),
            })
            .inc_by(n);
    }

    /// How many alerts of `kind` had `outcome` so far.
    #[must_use]
    pub fn get(&self, kind: AlertKind, outcome: AlertOutcome) -> u64 {
        self.family
            .get(&AlertLabels {
                kind: kind.as_str(),
                outcome: outcome.as_str(),
            })
            .map_or(0, |c| c.get())
    }
}
