//! The defensive exit executor: runs an exit accepted by the gateway through the attempt
//! engine with the exit policy, the 30 s deadline and the escalation ladder; counts
//! failed exits in the exit breaker, halts trading when it trips, alerts, and reports
//! metrics. Automatic exits need a trading state that allows them; an operator's
//! force-exit always runs, and so does a protective exit (a stop retried while halted),
//! on the ladder's widest rung alone.

use std::sync::{Arc, Mutex, PoisonError};

use kyzlo_domain::exit_breaker::{ExitBreaker, ExitBreakerDecision};
use kyzlo_domain::trading_state::{HaltCause, TradingMode};
use kyzlo_domain::{Price, TokenAmount};
use tokio::sync::oneshot;

use crate::control::TradingControl;
use crate::execute::{
    Amount, DeadlineNotice, Engine, ExecutionOutcome, ExecutionReport, ExecutionSettings, SwapJob,
};
use crate::gateway::ExitTicket;
use crate::journal::IntentAction;
use crate::metrics::{ExitModule, ExitResult, MetricEvent};
use crate::ports::{Alert, AlertKind, Pair, Severity, Side};

/// Why an exit did not run at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExitRefusal {
    /// Trading is halted (or otherwise forbids automatic exits); only an operator's
    /// force-exit runs now.
    #[error("automatic exits are not allowed while trading is {}", state.as_str())]
    NotAllowed {
        /// The trading state.
        state: TradingMode,
    },
    /// The position has nothing left to sell.
    #[error("nothing left to sell")]
    NothingToSell,
}

/// Runs exits.
pub struct ExitExecutor {
    engine: Arc<Engine>,
    settings: ExecutionSettings,
    /// `settings` on the widest rung alone, for protective exits.
    protective: ExecutionSettings,
    breaker: Mutex<ExitBreaker>,
    control: Arc<TradingControl>,
    pair: Pair,
}

impl ExitExecutor {
    /// An executor with `settings` (see [`ExecutionSettings::exit_defaults`]).
    pub fn new(
        engine: Arc<Engine>,
        settings: ExecutionSettings,
        breaker: ExitBreaker,
        control: Arc<TradingControl>,
        pair: Pair,
    ) -> Self {
        let protective = ExecutionSettings {
            ladder: settings.ladder.widest(),
            ..settings.clone()
        };
        Self {
            engine,
            protective,
            settings,
            breaker: Mutex::new(breaker),
            control,
            pair,
        }
    }

    /// Consecutive failed exits so far.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .consecutive_failures()
    }

    /// Resets the exit breaker (an operator resumed trading), in the journal too.
    pub async fn reset_breaker(&self) {
        self.breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
        self.persist_count().await;
    }

    /// Journals the breaker's count, so a restart does not forget failures toward a halt.
    async fn persist_count(&self) {
        let count = self.consecutive_failures();
        if let Err(e) = self
            .engine
            .venue()
            .journal
            .record_exit_failures(count)
            .await
        {
            tracing::error!(error = %e, count, "exit breaker count not journaled");
        }
    }

    /// Runs the exit of `ticket` on a position holding `remaining`. The ticket (the
    /// position's ownership) is held until the exit is resolved, including any live
    /// attempt tracked past the deadline.
    ///
    /// # Errors
    /// [`ExitRefusal`] when the exit may not run at all.
    pub async fn run(
        &self,
        ticket: ExitTicket,
        remaining: TokenAmount,
    ) -> Result<ExecutionReport, ExitRefusal> {
        let order = &ticket.order;
        let state = self.control.state();
        let always = matches!(order.module, ExitModule::Operator | ExitModule::Protective);
        if !always && !state.allows_automatic_exit() {
            tracing::warn!(position = %order.position, kind = order.kind.as_str(), state = state.as_str(), "automatic exit refused");
            return Err(ExitRefusal::NotAllowed {
                state: state.mode(),
            });
        }
        let amount = if order.fraction.is_all() {
            Amount::WholeBalance { cap: remaining }
        } else {
            Amount::Exact(remaining.portion(order.fraction))
        };
        if remaining.is_zero() || matches!(amount, Amount::Exact(a) if a.is_zero()) {
            return Err(ExitRefusal::NothingToSell);
        }
        let venue = self.engine.venue();
        let kind = order.kind;
        venue.metrics.record(MetricEvent::ExitStarted { kind });
        let job = SwapJob {
            intent: ticket.intent,
            position: order.position,
            action: IntentAction::Exit(kind),
            side: Side::Sell,
            amount,
            style: order.style,
        };
        let (tx, rx) = oneshot::channel();
        let settings = if order.module == ExitModule::Protective {
            &self.protective
        } else {
            &self.settings
        };
        // Every call of an exit comes first in the providers' request budgets.
        let execution =
            crate::budget::protecting(self.engine.execute(job, Some(kind), settings, Some(tx)));
        let on_deadline = async {
            if let Ok(notice) = rx.await {
                self.deadline_passed(&ticket, notice).await;
            }
        };
        let (report, ()) = tokio::join!(execution, on_deadline);
        self.finish(&ticket, order.trigger_price, &report).await;
        drop(ticket);
        Ok(report)
    }

    async fn deadline_passed(&self, ticket: &ExitTicket, notice: DeadlineNotice) {
        let venue = self.engine.venue();
        venue.metrics.record(MetricEvent::ExitDeadlineExceeded {
            kind: ticket.order.kind,
        });
        self.control
            .alert(Alert {
                kind: AlertKind::ExitDeadlineExceeded,
                severity: Severity::Critical,
                message: format!(
                    "{} exit of {} unresolved after {:?}: attempt {} still live, tracking it; no new attempts",
                    ticket.order.kind, ticket.order.position, notice.elapsed, notice.attempt
                ),
                position: Some(ticket.order.position),
            })
            .await;
        // A deadline miss is a failed exit for the breaker, whatever happens later.
        self.count_failure().await;
    }

    async fn count_failure(&self) {
        let decision = self
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record_failure();
        self.persist_count().await;
        if let ExitBreakerDecision::HaltTrading { consecutive } = decision {
            self.engine
                .venue()
                .metrics
                .record(MetricEvent::ExitBreakerTripped);
            let _ = self
                .control
                .halt(
                    HaltCause::ExitBreaker,
                    format!("{consecutive} consecutive failed exits"),
                )
                .await;
        }
    }

    async fn finish(&self, ticket: &ExitTicket, trigger: Price, report: &ExecutionReport) {
        let venue = self.engine.venue();
        let elapsed = report.finished.saturating_since(report.started);
        match report.outcome {
            ExecutionOutcome::Filled { fill, .. } => {
                if !report.deadline_exceeded {
                    self.breaker
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record_success();
                    self.persist_count().await;
                }
                let slippage_bps = self
                    .pair
                    .price_of(fill.amount_in, fill.amount_out)
                    .map(|realised| (1.0 - realised.get() / trigger.get()) * 10_000.0);
                venue.metrics.record(MetricEvent::ExitFinished {
                    kind: ticket.order.kind,
                    result: ExitResult::Closed,
                    attempts: report.attempts,
                    elapsed,
                    slippage_bps,
                });
                venue.metrics.record(MetricEvent::ExitFees {
                    kind: ticket.order.kind,
                    bid: report.priority_fees,
                    paid: Some(fill.fee),
                });
                tracing::info!(position = %ticket.order.position, intent = %report.intent, attempts = report.attempts, ?elapsed, ?slippage_bps, priority_fees_bid = report.priority_fees.get(), fee_paid = fill.fee.get(), "exit closed");
            }
            ExecutionOutcome::Failed {
                failure,
                last_error,
            } => {
                venue.metrics.record(MetricEvent::ExitFinished {
                    kind: ticket.order.kind,
                    result: ExitResult::Failed,
                    attempts: report.attempts,
                    elapsed,
                    slippage_bps: None,
                });
                venue.metrics.record(MetricEvent::ExitFees {
                    kind: ticket.order.kind,
                    bid: report.priority_fees,
                    paid: None,
                });
                self.control
                    .alert(Alert {
                        kind: AlertKind::ExitFailed,
                        severity: Severity::Critical,
                        message: format!(
                            "{} exit of {} failed after {} attempts in {:?}: {:?} (last error {:?})",
                            ticket.order.kind,
                            ticket.order.position,
                            report.attempts,
                            elapsed,
                            failure,
                            last_error.map(|c| c.as_str())
                        ),
                        position: Some(ticket.order.position),
                    })
                    .await;
                if !report.deadline_exceeded {
                    self.count_failure().await;
                }
            }
        }
    }
}
