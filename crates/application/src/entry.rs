//! The entry executor: opens a position through the attempt engine with the default
//! retry policy, only when trading is Active and the latency breaker admits it. The
//! engine's one-live-attempt rule means an entry never executes twice.

use std::sync::Arc;

use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::trading_state::TradingMode;
use kyzlo_domain::{IntentId, PositionId, TokenAmount};

use crate::control::TradingControl;
use crate::execute::{
    Amount, Engine, ExecutionOutcome, ExecutionReport, ExecutionSettings, SwapJob,
};
use crate::guard::LatencyGuard;
use crate::journal::IntentAction;
use crate::metrics::MetricEvent;
use crate::ports::Side;

/// Why an entry did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryRefusal {
    /// Entries need trading to be Active.
    #[error("entries are not allowed while trading is {}", state.as_str())]
    TradingState {
        /// The trading state.
        state: TradingMode,
    },
    /// The latency breaker is open.
    #[error("the latency breaker refused the entry")]
    LatencyBreaker,
    /// The wallet's share for an entry is below a tenth of the most an entry may spend:
    /// not worth its fees, and what an empty wallet would otherwise try every tick.
    #[error(
        "an entry of {amount} quote units is too small (the wallet's share is below a tenth of the cap)"
    )]
    TooSmall { amount: TokenAmount },
    /// The wallet's balance could not be read to size the entry.
    #[error("the wallet's balance could not be read to size the entry")]
    Balance,
}

/// How much an entry spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySize {
    /// The most it spends, in quote units.
    pub cap: TokenAmount,
    /// The share of the wallet's quote balance it spends, when sized by the wallet; `None`
    /// spends the cap.
    pub fraction: Option<kyzlo_domain::Fraction>,
}

impl EntrySize {
    /// A wallet-sized entry below `cap / SMALLEST_SHARE` is not made: its fees would be
    /// out of proportion with what it can earn.
    pub const SMALLEST_SHARE: u64 = 10;

    /// The smallest entry this size makes: the cap itself, or its share when sized by
    /// the wallet. What the strategy's cost gate prices fees against.
    #[must_use]
    pub fn smallest_share(fraction: Option<kyzlo_domain::Fraction>) -> f64 {
        if fraction.is_some() {
            #[allow(clippy::cast_precision_loss)] // 10
            let share = Self::SMALLEST_SHARE as f64;
            1.0 / share
        } else {
            1.0
        }
    }
}

/// Runs entries.
pub struct EntryExecutor {
    engine: Arc<Engine>,
    settings: ExecutionSettings,
    control: Arc<TradingControl>,
    guard: Arc<LatencyGuard>,
}

impl EntryExecutor {
    /// An executor with `settings` (see [`ExecutionSettings::entry_defaults`]).
    pub fn new(
        engine: Arc<Engine>,
        settings: ExecutionSettings,
        control: Arc<TradingControl>,
        guard: Arc<LatencyGuard>,
    ) -> Self {
        Self {
            engine,
            settings,
            control,
            guard,
        }
    }

    /// Buys the base token with exactly `quote_amount` for a new position.
    ///
    /// # Errors
    /// [`EntryRefusal`] when the trading state or the latency breaker forbids it.
    pub async fn run(
        &self,
        intent: IntentId,
        position: PositionId,
        size: EntrySize,
    ) -> Result<ExecutionReport, EntryRefusal> {
        let metrics = &self.engine.venue().metrics;
        let state = self.control.state();
        if !state.allows_entry() {
            metrics.record(MetricEvent::EntryRefused);
            return Err(EntryRefusal::TradingState {
                state: state.mode(),
            });
        }
        if !self.guard.admit_entry().await {
            metrics.record(MetricEvent::EntryRefused);
            return Err(EntryRefusal::LatencyBreaker);
        }
        let quote_amount = match size.fraction {
            None => size.cap,
            Some(fraction) => {
                let balances = self.engine.venue().chain.balances().await.map_err(|e| {
                    tracing::warn!(error = %e, "entry not sized: balance unread");
                    metrics.record(MetricEvent::EntryRefused);
                    EntryRefusal::Balance
                })?;
                let amount = balances.quote.portion(fraction).min(size.cap);
                if amount.get() < size.cap.get() / EntrySize::SMALLEST_SHARE || amount.is_zero() {
                    metrics.record(MetricEvent::EntryRefused);
                    return Err(EntryRefusal::TooSmall { amount });
                }
                amount
            }
        };
        let job = SwapJob {
            intent,
            position,
            action: IntentAction::Enter,
            side: Side::Buy,
            amount: Amount::Exact(quote_amount),
            style: OrderStyle::LimitLike,
        };
        let report = self.engine.execute(job, None, &self.settings, None).await;
        metrics.record(MetricEvent::EntryFinished {
            filled: matches!(report.outcome, ExecutionOutcome::Filled { .. }),
            attempts: report.attempts,
        });
        Ok(report)
    }
}
