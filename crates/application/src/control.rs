//! The halt coordinator: the one owner of the trading state (its subscribers are told of
//! real changes only). Halting is idempotent and
//! keeps the first reason, takes effect at once, is journaled (retried until durable)
//! before its one alert goes out, so an alerted halt survives any restart; resuming needs
//! the operator's approval key, compared in constant time, and is journaled before it
//! takes effect. Every change of state is decided and written in one ordered step, so a
//! later write can never overwrite an earlier, stricter one.

use std::sync::Arc;

use kyzlo_domain::trading_state::{
    HaltCause, HaltOutcome, HaltReason, ReduceOnlyCause, TradingMode, TradingState,
};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::journal::Journal;
use crate::metrics::{MetricEvent, MetricsSink};
use crate::ports::{Alert, AlertKind, AlertSink, PortError, Severity};

/// The operator's secret for resuming. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApprovalKey(Arc<[u8]>);

impl ApprovalKey {
    /// Wraps a key.
    ///
    /// # Errors
    /// [`ResumeError::WeakKey`] for a key shorter than 16 bytes.
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self, ResumeError> {
        let key = key.as_ref();
        if key.len() < 16 {
            return Err(ResumeError::WeakKey);
        }
        Ok(Self(Arc::from(key)))
    }

    /// The key itself (to prove it to the fleet, never to show it).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Compares with `candidate` in time that depends only on the lengths.
    #[must_use]
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(&self.0, candidate)
    }
}

impl std::fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalKey(***)")
    }
}

/// Equality whose running time does not depend on where the inputs differ (`subtle`'s
/// constant-time comparison; inputs of different lengths are unequal).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// Why a resume was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The key given does not match.
    #[error("resume refused: the approval key does not match")]
    WrongKey,
    /// Trading is not halted.
    #[error("resume refused: trading is not halted")]
    NotHalted,
    /// No approval key is configured, so nobody can resume.
    #[error("resume refused: no approval key is configured")]
    NoKeyConfigured,
    /// A configured key is too short to be a secret.
    #[error("approval key too short: at least 16 bytes")]
    WeakKey,
    /// The resumed state could not be journaled; trading stays halted.
    #[error("resume not journaled: {0}")]
    Journal(PortError),
}

/// How many times a halt's journal write is tried before the halt is alerted as not
/// journaled (it stays in force in this process either way).
const HALT_WRITE_TRIES: u32 = 10;

/// Owns the trading state and publishes it to every reader.
pub struct TradingControl {
    state: watch::Sender<TradingState>,
    /// Held while a change of state is decided and written: writes reach the journal in
    /// the order the changes were made.
    writer: tokio::sync::Mutex<()>,
    approval_key: Option<ApprovalKey>,
    journal: Arc<dyn Journal>,
    alerts: Arc<dyn AlertSink>,
    metrics: Arc<dyn MetricsSink>,
    clock: Clock,
}

impl TradingControl {
    /// Starts in `initial` (the journaled state at start-up, else `Active`).
    pub fn new(
        initial: TradingState,
        approval_key: Option<ApprovalKey>,
        journal: Arc<dyn Journal>,
        alerts: Arc<dyn AlertSink>,
        metrics: Arc<dyn MetricsSink>,
        clock: Clock,
    ) -> Self {
        metrics.record(MetricEvent::TradingState(initial.mode()));
        let (state, _) = watch::channel(initial);
        Self {
            state,
            writer: tokio::sync::Mutex::new(()),
            approval_key,
            journal,
            alerts,
            metrics,
            clock,
        }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> TradingState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<TradingState> {
        self.state.subscribe()
    }

    /// Halts trading. Idempotent: a second halt keeps the first reason and sends no
    /// second alert, except on a market halted only for its fleet, whose own reason
    /// replaces the fleet's (so that a fleet resume does not lift it). The halt is in force at once; it is journaled (retried until the
    /// write succeeds) before its alert goes out, so an operator paged about a halt can
    /// count on it surviving a restart. If the journal refuses every try, the halt stays
    /// in force in this process and the alert says it was not journaled.
    pub async fn halt(&self, cause: HaltCause, detail: impl Into<String>) -> HaltOutcome {
        let reason = HaltReason {
            cause,
            detail: detail.into(),
        };
        let journaled = {
            let _writer = self.writer.lock().await;
            let now = self.clock.now();
            let mut outcome = HaltOutcome::AlreadyHalted;
            self.state.send_if_modified(|s| {
                outcome = s.halt(now, reason.clone());
                if outcome == HaltOutcome::Halted {
                    return true;
                }
                // A market halted only because its fleet is gets its own reason recorded
                // (and alerted): a fleet resume must not lift it.
                if let TradingState::Halted { reason: held, .. } = s
                    && held.cause == HaltCause::Fleet
                    && cause != HaltCause::Fleet
                {
                    *held = reason.clone();
                    outcome = HaltOutcome::Halted;
                    return true;
                }
                false
            });
            if outcome != HaltOutcome::Halted {
                return outcome;
            }
            tracing::error!(cause = cause.as_str(), detail = %reason.detail, "TRADING HALTED");
            self.metrics
                .record(MetricEvent::TradingState(TradingMode::Halted));
            self.metrics.record(MetricEvent::Halted);
            self.persist_durably().await
        };
        let suffix = if journaled {
            ""
        } else {
            " (NOT journaled: a restart would not know of this halt)"
        };
        self.alert(Alert {
            kind: AlertKind::TradingHalted,
            severity: Severity::Critical,
            message: format!(
                "trading halted ({}): {}{suffix}",
                cause.as_str(),
                reason.detail
            ),
            position: None,
        })
        .await;
        HaltOutcome::Halted
    }

    /// Resumes trading if `key` is the approval key.
    ///
    /// # Errors
    /// [`ResumeError`] when no key is configured, the key is wrong, trading is not
    /// halted, or the resumed state cannot be journaled.
    pub async fn resume(&self, key: &[u8]) -> Result<(), ResumeError> {
        let approval = self
            .approval_key
            .as_ref()
            .ok_or(ResumeError::NoKeyConfigured)?;
        if !approval.matches(key) {
            tracing::warn!("resume refused: wrong approval key");
            return Err(ResumeError::WrongKey);
        }
        {
            let _writer = self.writer.lock().await;
            if !self.state.borrow().is_halted() {
                return Err(ResumeError::NotHalted);
            }
            self.journal
                .record_trading_state(&TradingState::Active)
                .await
                .map_err(ResumeError::Journal)?;
            let mut resumed = false;
            self.state.send_if_modified(|s| {
                resumed = s.resume().is_ok();
                resumed
            });
            if !resumed {
                return Err(ResumeError::NotHalted);
            }
        }
        tracing::warn!("trading resumed by operator");
        self.metrics
            .record(MetricEvent::TradingState(TradingMode::Active));
        self.alert(Alert {
            kind: AlertKind::TradingResumed,
            severity: Severity::Warning,
            message: "trading resumed by operator".to_owned(),
            position: None,
        })
        .await;
        Ok(())
    }

    /// Moves from Active to ReduceOnly (entries stop, exits go on). No effect otherwise.
    pub async fn enter_reduce_only(&self, cause: ReduceOnlyCause) -> bool {
        let _writer = self.writer.lock().await;
        let now = self.clock.now();
        let mut changed = false;
        self.state.send_if_modified(|s| {
            changed = s.enter_reduce_only(now, cause);
            changed
        });
        if changed {
            tracing::warn!(cause = ?cause, "trading reduce-only");
            self.metrics
                .record(MetricEvent::TradingState(TradingMode::ReduceOnly));
            self.persist().await;
        }
        changed
    }

    /// Leaves ReduceOnly of `cause` for Active. Never lifts a halt.
    pub async fn leave_reduce_only(&self, cause: ReduceOnlyCause) -> bool {
        let _writer = self.writer.lock().await;
        let mut changed = false;
        self.state.send_if_modified(|s| {
            changed = s.leave_reduce_only(cause);
            changed
        });
        if changed {
            tracing::info!(cause = ?cause, "trading active again");
            self.metrics
                .record(MetricEvent::TradingState(TradingMode::Active));
            self.persist().await;
        }
        changed
    }

    /// Sends an alert, logging (not propagating) a delivery failure: alerting must never
    /// stop trading decisions.
    pub async fn alert(&self, alert: Alert) {
        tracing::warn!(kind = alert.kind.as_str(), message = %alert.message, "alert");
        if let Err(e) = self.alerts.send(&alert).await {
            tracing::error!(error = %e, "alert delivery failed");
        }
    }

    /// Writes the current state (the caller holds the writer lock).
    async fn persist(&self) {
        let state = self.state();
        if let Err(e) = self.journal.record_trading_state(&state).await {
            tracing::error!(error = %e, "trading state not journaled");
        }
    }

    /// Writes the current state until the journal takes it (the caller holds the writer
    /// lock); `false` when every try failed.
    async fn persist_durably(&self) -> bool {
        let mut delay = std::time::Duration::from_millis(50);
        for attempt in 1..=HALT_WRITE_TRIES {
            let state = self.state();
            match self.journal.record_trading_state(&state).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::error!(attempt, error = %e, "halt not journaled yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::MemoryJournal;
    use crate::metrics::CountingMetrics;
    use crate::testing::RecordingAlerts;

    fn control(key: Option<&str>) -> (TradingControl, Arc<RecordingAlerts>, Arc<MemoryJournal>) {
        let alerts = Arc::new(RecordingAlerts::default());
        let journal = Arc::new(MemoryJournal::new());
        let c = TradingControl::new(
            TradingState::Active,
            key.map(|k| ApprovalKey::new(k).unwrap()),
            journal.clone(),
            alerts.clone(),
            Arc::new(CountingMetrics::new()),
            Clock::new(),
        );
        (c, alerts, journal)
    }

    #[tokio::test(start_paused = true)]
    async fn halt_is_idempotent_keeps_first_reason_and_alerts_once() {
        let (c, alerts, journal) = control(None);
        assert_eq!(
            c.halt(HaltCause::ExitBreaker, "two failed exits").await,
            HaltOutcome::Halted
        );
        assert_eq!(
            c.halt(HaltCause::Operator, "again").await,
            HaltOutcome::AlreadyHalted
        );
        match c.state() {
            TradingState::Halted { reason, .. } => {
                assert_eq!(reason.cause, HaltCause::ExitBreaker);
                assert_eq!(reason.detail, "two failed exits");
            }
            other => panic!("not halted: {other:?}"),
        }
        assert_eq!(alerts.count(AlertKind::TradingHalted), 1);
        let snap = journal.load().await.unwrap();
        assert!(snap.trading_state.is_some_and(|s| s.is_halted()));
    }

    #[tokio::test(start_paused = true)]
    async fn resume_needs_the_right_key() {
        let (c, _, journal) = control(Some("correct horse battery staple"));
        assert_eq!(
            c.resume(b"correct horse battery staple").await,
            Err(ResumeError::NotHalted)
        );
        let _ = c.halt(HaltCause::Operator, "maintenance").await;
        assert_eq!(
            c.resume(b"wrong key wrong key").await,
            Err(ResumeError::WrongKey)
        );
        assert_eq!(c.resume(b"").await, Err(ResumeError::WrongKey));
        assert!(c.state().is_halted());
        assert_eq!(c.resume(b"correct horse battery staple").await, Ok(()));
        assert_eq!(c.state(), TradingState::Active);
        assert_eq!(
            journal.load().await.unwrap().trading_state,
            Some(TradingState::Active)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn resume_without_a_configured_key_is_refused() {
        let (c, _, _) = control(None);
        let _ = c.halt(HaltCause::Operator, "x").await;
        assert_eq!(
            c.resume(b"anything at all here").await,
            Err(ResumeError::NoKeyConfigured)
        );
    }

    #[test]
    fn approval_keys_are_masked_and_must_be_long() {
        assert_eq!(ApprovalKey::new("short").unwrap_err(), ResumeError::WeakKey);
        let k = ApprovalKey::new("0123456789abcdef").unwrap();
        assert_eq!(format!("{k:?}"), "ApprovalKey(***)");
    }

    #[test]
    fn constant_time_eq_agrees_with_eq() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"abc", b"abc"),
            (b"abc", b"abd"),
            (b"abc", b"ab"),
            (b"", b""),
            (b"", b"a"),
        ];
        for (a, b) in cases {
            assert_eq!(constant_time_eq(a, b), a == b, "{a:?} {b:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reduce_only_comes_and_goes_but_never_lifts_a_halt() {
        let (c, _, _) = control(None);
        assert!(
            c.enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                .await
        );
        assert!(!c.state().allows_entry());
        assert!(c.state().allows_automatic_exit());
        assert!(
            c.leave_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                .await
        );
        assert_eq!(c.state(), TradingState::Active);
        let _ = c.halt(HaltCause::Operator, "x").await;
        assert!(
            !c.enter_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                .await
        );
        assert!(
            !c.leave_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
                .await
        );
        assert!(c.state().is_halted());
    }
}
