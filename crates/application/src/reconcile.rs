//! Start-up reconciliation: before any new trade, settle every intent the journal left
//! unresolved from chain statuses (with history), block height and balances, apply what
//! landed to the positions, and restore the trading state (a halt survives restarts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{PositionId, Size, TokenAmount};

use crate::clock::Clock;
use crate::journal::{
    AttemptOutcome, IntentAction, IntentOutcome, Journal, JournalSnapshot, PositionRecord,
    UnresolvedIntent,
};
use crate::ports::{Chain, Commitment, Fill, Pair, PortError, StatusLookup};
use crate::retry::retry_call;
use crate::rng::Jitter;
use kyzlo_domain::retry::RetryPolicy;

/// What reconciliation settled.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReconcileReport {
    /// Positions open after reconciliation.
    pub positions: Vec<PositionRecord>,
    /// Intents found to have landed.
    pub landed: u32,
    /// Intents found dead (every attempt failed or expired).
    pub failed: u32,
    /// The trading state to start in.
    pub trading_state: Option<TradingState>,
    /// The lowest unused id.
    pub next_id: u64,
    /// The wallet holds less of the base token than the open positions claim.
    pub balance_shortfall: Option<TokenAmount>,
}

/// Settles the journal against the chain.
pub struct Reconciler {
    chain: Arc<dyn Chain>,
    journal: Arc<dyn Journal>,
    pair: Pair,
    poll_interval: Duration,
    commitment: Commitment,
    clock: Clock,
    jitter: Jitter,
}

impl Reconciler {
    /// A reconciler polling live attempts every `poll_interval`.
    pub fn new(
        chain: Arc<dyn Chain>,
        journal: Arc<dyn Journal>,
        pair: Pair,
        poll_interval: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            chain,
            journal,
            pair,
            poll_interval,
            commitment: Commitment::Confirmed,
            clock,
            jitter: Jitter::new(0x7265_636f_6e63_696c),
        }
    }

    /// Runs reconciliation. Attempts that may still land are waited for (polled) until
    /// they land or their blockhash is proven expired.
    ///
    /// # Errors
    /// The journal cannot be read or written, or the chain cannot be read; the caller
    /// must not trade then.
    pub async fn run(&self) -> Result<ReconcileReport, PortError> {
        let snapshot: JournalSnapshot = self.journal.load().await?;
        let mut positions: BTreeMap<PositionId, PositionRecord> = snapshot
            .open_positions
            .iter()
            .map(|p| (p.position, *p))
            .collect();
        let mut report = ReconcileReport {
            trading_state: snapshot.trading_state.clone(),
            next_id: snapshot.next_id,
            ..ReconcileReport::default()
        };
        for unresolved in &snapshot.unresolved {
            let intent = unresolved.intent.intent;
            match self.settle(unresolved).await? {
                Some(fill) => {
                    report.landed += 1;
                    let record = self.position_after(unresolved, fill, &positions);
                    self.journal
                        .settle_intent(intent, &IntentOutcome::Filled(fill), record.as_ref())
                        .await?;
                    if let Some(record) = record {
                        if record.remaining.is_zero() {
                            positions.remove(&record.position);
                        } else {
                            positions.insert(record.position, record);
                        }
                    }
                }
                None => {
                    report.failed += 1;
                    self.journal
                        .settle_intent(intent, &IntentOutcome::Failed, None)
                        .await?;
                }
            }
        }
        let claimed = positions
            .values()
            .fold(0u64, |sum, p| sum.saturating_add(p.remaining.get()));
        let balances = self
            .read("chain.balances", || self.chain.balances())
            .await?;
        if balances.base.get() < claimed {
            report.balance_shortfall = Some(TokenAmount::new(claimed - balances.base.get()));
        }
        report.positions = positions.into_values().collect();
        Ok(report)
    }

    /// Resolves one intent: `Some(fill)` when one of its attempts landed.
    async fn settle(&self, unresolved: &UnresolvedIntent) -> Result<Option<Fill>, PortError> {
        let intent = unresolved.intent.intent;
        loop {
            let live: Vec<_> = unresolved
                .attempts
                .iter()
                .filter(|(_, outcome)| {
                    !matches!(
                        outcome,
                        Some(AttemptOutcome::Failed(_) | AttemptOutcome::Expired)
                    )
                })
                .map(|(a, _)| *a)
                .collect();
            if live.is_empty() {
                return Ok(None);
            }
            let signatures: Vec<_> = live.iter().map(|a| a.signature).collect();
            let statuses = self
                .read("chain.statuses", || {
                    self.chain.statuses(&signatures, StatusLookup::WithHistory)
                })
                .await?;
            for (attempt, status) in live.iter().zip(statuses) {
                if let Some(status) = status {
                    if status.commitment < self.commitment {
                        continue;
                    }
                    if status.error.is_none() {
                        self.journal
                            .record_attempt_outcome(intent, attempt.attempt, AttemptOutcome::Landed)
                            .await?;
                        let fill = self
                            .read("chain.fill", || {
                                self.chain.fill(attempt.signature, unresolved.intent.side)
                            })
                            .await?
                            .unwrap_or(Fill {
                                amount_in: attempt.amount_in,
                                amount_out: TokenAmount::ZERO,
                                fee: kyzlo_domain::Lamports::new(0),
                            });
                        tracing::warn!(%intent, attempt = attempt.attempt, signature = %attempt.signature, "reconciled: attempt landed");
                        return Ok(Some(fill));
                    }
                }
            }
            let height = self
                .read("chain.block_height", || self.chain.block_height())
                .await?;
            let all_dead = live.iter().all(|a| height > a.last_valid_block_height);
            if all_dead {
                // Heights passed and the history look-up above found nothing: dead.
                for a in &live {
                    self.journal
                        .record_attempt_outcome(intent, a.attempt, AttemptOutcome::Expired)
                        .await?;
                }
                tracing::warn!(%intent, "reconciled: no attempt landed; all expired");
                return Ok(None);
            }
            tracing::info!(%intent, height, "reconciling: an attempt may still land; waiting");
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// The position a landed intent leaves (`None` when it concerns no known position).
    fn position_after(
        &self,
        unresolved: &UnresolvedIntent,
        fill: Fill,
        positions: &BTreeMap<PositionId, PositionRecord>,
    ) -> Option<PositionRecord> {
        let id = unresolved.intent.position;
        match unresolved.intent.action {
            IntentAction::Enter => {
                let size = Size::new(fill.amount_out).ok()?;
                let entry_price = self.pair.price_of(fill.amount_out, fill.amount_in)?;
                Some(PositionRecord {
                    position: id,
                    entry_price,
                    size,
                    remaining: size.amount(),
                })
            }
            IntentAction::Exit(_) => {
                let mut p = positions.get(&id).copied()?;
                p.remaining = p
                    .remaining
                    .checked_sub(fill.amount_in)
                    .unwrap_or(TokenAmount::ZERO);
                Some(p)
            }
        }
    }

    /// A chain read, retried with the default policy: a transient error at start-up
    /// (a 429, a node behind) is waited out rather than stopping the bot.
    async fn read<T, F, Fut>(&self, operation: &'static str, op: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, PortError>>,
    {
        retry_call(
            &self.clock,
            &self.jitter,
            RetryPolicy::default_policy(),
            Duration::from_secs(5),
            operation,
            op,
        )
        .await
    }
}
