//! Start-up reconciliation: before any new trade, settle every intent the journal left
//! unresolved from chain statuses (with history), block height and balances, apply what
//! landed to the positions, and restore the trading state (a halt survives restarts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{PositionId, Size, TokenAmount};

use crate::journal::{
    AttemptOutcome, IntentAction, IntentOutcome, Journal, JournalSnapshot, PositionRecord,
    UnresolvedIntent,
};
use crate::ports::{Chain, Commitment, Fill, Pair, PortError, Side, StatusLookup};

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
}

impl Reconciler {
    /// A reconciler polling live attempts every `poll_interval`.
    pub fn new(
        chain: Arc<dyn Chain>,
        journal: Arc<dyn Journal>,
        pair: Pair,
        poll_interval: Duration,
    ) -> Self {
        Self {
            chain,
            journal,
            pair,
            poll_interval,
            commitment: Commitment::Confirmed,
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
            match self.settle(unresolved).await? {
                Some(fill) => {
                    report.landed += 1;
                    self.apply_fill(unresolved, fill, &mut positions).await?;
                    self.journal
                        .record_intent_outcome(
                            unresolved.intent.intent,
                            &IntentOutcome::Filled(fill),
                        )
                        .await?;
                }
                None => {
                    report.failed += 1;
                    self.journal
                        .record_intent_outcome(unresolved.intent.intent, &IntentOutcome::Failed)
                        .await?;
                }
            }
        }
        let claimed = positions
            .values()
            .fold(0u64, |sum, p| sum.saturating_add(p.remaining.get()));
        let balances = self.chain.balances().await?;
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
                .chain
                .statuses(&signatures, StatusLookup::WithHistory)
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
                            .chain
                            .fill(attempt.signature, unresolved.intent.side)
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
            let height = self.chain.block_height().await?;
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

    async fn apply_fill(
        &self,
        unresolved: &UnresolvedIntent,
        fill: Fill,
        positions: &mut BTreeMap<PositionId, PositionRecord>,
    ) -> Result<(), PortError> {
        let id = unresolved.intent.position;
        let record = match unresolved.intent.action {
            IntentAction::Enter => {
                let (Ok(size), Some(entry_price)) = (
                    Size::new(fill.amount_out),
                    self.pair.price_of(fill.amount_out, fill.amount_in),
                ) else {
                    return Ok(());
                };
                PositionRecord {
                    position: id,
                    entry_price,
                    size,
                    remaining: size.amount(),
                }
            }
            IntentAction::Exit(_) => {
                let Some(mut p) = positions.get(&id).copied() else {
                    return Ok(());
                };
                debug_assert_eq!(unresolved.intent.side, Side::Sell);
                p.remaining = p
                    .remaining
                    .checked_sub(fill.amount_in)
                    .unwrap_or(TokenAmount::ZERO);
                p
            }
        };
        self.journal.record_position(&record).await?;
        if record.remaining.is_zero() {
            positions.remove(&id);
        } else {
            positions.insert(id, record);
        }
        Ok(())
    }
}
