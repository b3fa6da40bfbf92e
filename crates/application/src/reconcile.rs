//! Reconciliation: before any new trade (and the last word after any ambiguous outcome),
//! settle every intent the journal left unresolved from the chain, with the same proof
//! the engine uses ([`crate::proof`]): an attempt is landed when a status at the required
//! commitment says so, dead only when proven dead from one consistent view, and otherwise
//! waited for (a status seen processed is never taken as death). Attempts built on a
//! durable nonce are settled by the nonce's rule ([`crate::proof::prove_round`]): while
//! the value has not moved, a cancel on it is journaled and sent (once), so that the
//! wait ends with one of them landing. Fills that could not be
//! read are read and their positions corrected; the wallet is compared with the open
//! positions both ways (less than they claim halts trading; more than the journal
//! accounts for is reported).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{Lamports, PositionId, Size, TokenAmount, TxSignature};

use crate::clock::Clock;
use crate::execute::{Venue, read_fill};
use crate::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentOutcome, IntentRecord, Journal,
    JournalSnapshot, PositionRecord, UnresolvedIntent,
};
use crate::ports::{Chain, Commitment, DurableNonce, Fill, Pair, PortError, SignedTransaction};
use crate::proof::{Fate, RoundFate, prove, prove_round};
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
    /// Intents found dead (every attempt failed or was proven dead).
    pub failed: u32,
    /// Provisional fills read and their positions corrected.
    pub fills_corrected: u32,
    /// Provisional fills still unreadable (tried again at the next start).
    pub fills_unread: u32,
    /// The trading state to start in.
    pub trading_state: Option<TradingState>,
    /// Consecutive failed exits the exit breaker had counted.
    pub consecutive_failed_exits: u32,
    /// The lowest unused id.
    pub next_id: u64,
    /// The wallet holds less of the base token than the open positions claim.
    pub balance_shortfall: Option<TokenAmount>,
    /// The wallet holds more of the base token beyond the open positions than it did at
    /// the last reconciliation (fees only ever lower that): tokens the journal does not
    /// know, from a landing it missed or a deposit.
    pub unknown_tokens: Option<TokenAmount>,
}

/// How reconciliation reads the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// The pair.
    pub pair: Pair,
    /// How often an attempt that may still land is looked at again.
    pub poll_interval: Duration,
    /// The commitment at which a landing counts.
    pub commitment: Commitment,
    /// How long a landed transaction's fill is looked for.
    pub fill_wait: Duration,
    /// The priority fee of a cancel sent on a durable nonce whose attempts may still land.
    pub cancel_fee: Lamports,
}

/// Settles the journal against the chain.
pub struct Reconciler {
    venue: Venue,
    settings: ReconcileSettings,
    jitter: Jitter,
}

impl Reconciler {
    /// A reconciler over `venue`'s chain and journal.
    #[must_use]
    pub fn new(venue: Venue, settings: ReconcileSettings) -> Self {
        Self {
            venue,
            settings,
            jitter: Jitter::new(0x7265_636f_6e63_696c),
        }
    }

    fn chain(&self) -> &Arc<dyn Chain> {
        &self.venue.chain
    }

    fn journal(&self) -> &Arc<dyn Journal> {
        &self.venue.journal
    }

    fn clock(&self) -> Clock {
        self.venue.clock
    }

    /// Runs reconciliation. Attempts that may still land are waited for until they land
    /// or are proven dead.
    ///
    /// # Errors
    /// The journal cannot be read or written, or the chain cannot be read; the caller
    /// must not trade then.
    pub async fn run(&self) -> Result<ReconcileReport, PortError> {
        let snapshot: JournalSnapshot = self.journal().load().await?;
        let mut positions: BTreeMap<PositionId, PositionRecord> = snapshot
            .open_positions
            .iter()
            .map(|p| (p.position, *p))
            .collect();
        let mut report = ReconcileReport {
            trading_state: snapshot.trading_state.clone(),
            consecutive_failed_exits: snapshot.consecutive_failed_exits,
            next_id: snapshot.next_id,
            ..ReconcileReport::default()
        };
        for unresolved in &snapshot.unresolved {
            let intent = unresolved.intent;
            match self.settle(unresolved).await? {
                Some((fill, exact, signature)) => {
                    report.landed += 1;
                    let record = match intent.action {
                        // An entry whose position was written since (the process applied
                        // it in memory and journaled later changes of it, but its own
                        // settlement was lost): the position already carries it.
                        IntentAction::Enter
                            if self.journal().position(intent.position).await?.is_some() =>
                        {
                            None
                        }
                        _ => position_after(self.settings.pair, &intent, fill, &positions),
                    };
                    let outcome = if exact {
                        IntentOutcome::Filled(fill)
                    } else {
                        report.fills_unread += 1;
                        IntentOutcome::Landed {
                            signature,
                            provisional: fill,
                        }
                    };
                    self.journal()
                        .settle_intent(intent.intent, &outcome, record.as_ref())
                        .await?;
                    apply(&mut positions, record);
                }
                None => {
                    report.failed += 1;
                    self.journal()
                        .settle_intent(intent.intent, &IntentOutcome::Failed, None)
                        .await?;
                }
            }
        }
        for unread in &snapshot.unread_fills {
            let Some(fill) = read_fill(
                &self.venue,
                unread.signature,
                unread.intent.side,
                self.settings.fill_wait,
            )
            .await
            else {
                report.fills_unread += 1;
                continue;
            };
            let record = corrected(
                self.settings.pair,
                &unread.intent,
                unread.provisional,
                fill,
                &positions,
            );
            self.journal()
                .settle_intent(
                    unread.intent.intent,
                    &IntentOutcome::Filled(fill),
                    record.as_ref(),
                )
                .await?;
            apply(&mut positions, record);
            report.fills_corrected += 1;
        }
        let claimed = positions
            .values()
            .fold(0u64, |sum, p| sum.saturating_add(p.remaining.get()));
        let balances = self.read(|| self.chain().balances()).await?;
        let held = balances.base.get();
        if held < claimed {
            report.balance_shortfall = Some(TokenAmount::new(claimed - held));
        }
        // What the wallet holds beyond the positions (the fee reserve, the owner's own
        // tokens) only shrinks between two reconciliations: fees are paid from it.
        let free = TokenAmount::new(held.saturating_sub(claimed));
        if let Some(before) = snapshot.free_base
            && free > before
        {
            report.unknown_tokens = free.checked_sub(before);
        }
        self.journal().record_free_base(free).await?;
        report.positions = positions.into_values().collect();
        Ok(report)
    }

    /// Resolves one intent: `Some((fill, exact))` when one of its attempts landed.
    async fn settle(
        &self,
        unresolved: &UnresolvedIntent,
    ) -> Result<Option<(Fill, bool, TxSignature)>, PortError> {
        if unresolved.attempts.iter().any(|(a, _)| a.nonce.is_some()) {
            return self.settle_on_nonce(unresolved).await;
        }
        let intent = unresolved.intent.intent;
        let mut dead: Vec<u32> = unresolved
            .attempts
            .iter()
            .filter(|(_, o)| matches!(o, Some(AttemptOutcome::Failed(_) | AttemptOutcome::Expired)))
            .map(|(a, _)| a.attempt)
            .collect();
        let started = self.clock().now();
        let mut waited_alert = false;
        loop {
            let live: Vec<_> = unresolved
                .attempts
                .iter()
                .filter(|(a, _)| !dead.contains(&a.attempt))
                .map(|(a, _)| *a)
                .collect();
            if live.is_empty() {
                tracing::warn!(%intent, "reconciled: no attempt landed and none can");
                return Ok(None);
            }
            for attempt in &live {
                match prove(
                    self.chain().as_ref(),
                    &attempt.key(),
                    self.settings.commitment,
                )
                .await
                {
                    Fate::Landed => return self.landed(unresolved, attempt).await.map(Some),
                    Fate::LandedFailed(class) => {
                        self.journal()
                            .record_attempt_outcome(
                                intent,
                                attempt.attempt,
                                AttemptOutcome::Failed(class),
                            )
                            .await?;
                        dead.push(attempt.attempt);
                    }
                    Fate::Dead => {
                        self.journal()
                            .record_attempt_outcome(
                                intent,
                                attempt.attempt,
                                AttemptOutcome::Expired,
                            )
                            .await?;
                        dead.push(attempt.attempt);
                    }
                    Fate::Pending | Fate::Unknown => {}
                }
            }
            let waited = self.clock().now().saturating_since(started);
            if !waited_alert && waited > Duration::from_secs(120) {
                waited_alert = true;
                tracing::error!(%intent, ?waited, "reconciling: an attempt can be neither seen landed nor proven dead; trading waits (an RPC endpoint with transaction history settles it)");
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// Resolves an intent whose attempts were built on a durable nonce: round by round
    /// (the attempts sharing one value), by the nonce's rule; a round whose value has not
    /// moved gets a cancel (journaled before it is sent, resent at every look) unless it
    /// has one, so that the wait ends.
    async fn settle_on_nonce(
        &self,
        unresolved: &UnresolvedIntent,
    ) -> Result<Option<(Fill, bool, TxSignature)>, PortError> {
        let intent = unresolved.intent.intent;
        let mut values: Vec<DurableNonce> = Vec::new();
        for (a, _) in &unresolved.attempts {
            if let Some(n) = a.nonce
                && !values.contains(&n.nonce)
            {
                values.push(n.nonce);
            }
        }
        let mut next_attempt = unresolved
            .attempts
            .iter()
            .map(|(a, _)| a.attempt)
            .max()
            .unwrap_or(0);
        for nonce in values {
            let mut round: Vec<AttemptRecord> = unresolved
                .attempts
                .iter()
                .filter(|(a, o)| {
                    a.nonce.is_some_and(|n| n.nonce == nonce)
                        && !matches!(o, Some(AttemptOutcome::Failed(_) | AttemptOutcome::Expired))
                })
                .map(|(a, _)| *a)
                .collect();
            let mut cancel: Option<SignedTransaction> = None;
            let started = self.clock().now();
            let mut waited_alert = false;
            loop {
                if round.is_empty() {
                    break;
                }
                let signatures: Vec<TxSignature> = round.iter().map(|a| a.signature).collect();
                let read_at_slot = round.iter().map(|a| a.valid_at_slot).max().unwrap_or(0);
                let fate = prove_round(
                    self.chain().as_ref(),
                    nonce,
                    read_at_slot,
                    &signatures,
                    self.settings.commitment,
                )
                .await;
                let outcome = |i: usize| round[i];
                match fate {
                    RoundFate::Landed(i) if !outcome(i).nonce.is_some_and(|n| n.cancel) => {
                        let attempt = outcome(i);
                        for other in round.iter().filter(|a| a.attempt != attempt.attempt) {
                            self.journal()
                                .record_attempt_outcome(
                                    intent,
                                    other.attempt,
                                    AttemptOutcome::Expired,
                                )
                                .await?;
                        }
                        return self.landed(unresolved, &attempt).await.map(Some);
                    }
                    RoundFate::Landed(_) | RoundFate::LandedFailed(..) | RoundFate::Dead => {
                        let (winner, class) = match fate {
                            RoundFate::Landed(i) => (Some(i), None),
                            RoundFate::LandedFailed(i, class) => (Some(i), Some(class)),
                            _ => (None, None),
                        };
                        for (i, a) in round.iter().enumerate() {
                            let o = match (Some(i) == winner, class) {
                                (true, Some(class)) => AttemptOutcome::Failed(class),
                                (true, None) => AttemptOutcome::Landed,
                                (false, _) => AttemptOutcome::Expired,
                            };
                            self.journal()
                                .record_attempt_outcome(intent, a.attempt, o)
                                .await?;
                        }
                        tracing::warn!(%intent, value = ?nonce.value, "reconciled: the nonce moved on without a swap of this intent landing");
                        break;
                    }
                    RoundFate::Unknown => {}
                }
                // A cancel journaled by the life before has its bytes gone with it: a
                // new one ends the wait even if that one never went out.
                if cancel.is_none() {
                    match self
                        .new_cancel(intent, nonce, next_attempt + 1, read_at_slot)
                        .await
                    {
                        Ok((record, signed)) => {
                            next_attempt += 1;
                            round.push(record);
                            cancel = Some(signed);
                        }
                        Err(e) => {
                            tracing::warn!(%intent, error = %e, "reconciling: no cancel built yet; trying again");
                        }
                    }
                }
                if let Some(signed) = &cancel
                    && let Err(e) = self.chain().send(signed).await
                {
                    tracing::debug!(%intent, error = %e, "reconciling: the cancel's send failed; resent at the next look");
                }
                let waited = self.clock().now().saturating_since(started);
                if !waited_alert && waited > Duration::from_secs(120) {
                    waited_alert = true;
                    tracing::error!(%intent, ?waited, "reconciling: a round on a durable nonce is unsettled; trading waits");
                }
                tokio::time::sleep(self.settings.poll_interval).await;
            }
        }
        tracing::warn!(%intent, "reconciled: no attempt on the nonce landed and none can");
        Ok(None)
    }

    /// Builds, signs and journals a cancel on `nonce`.
    async fn new_cancel(
        &self,
        intent: kyzlo_domain::IntentId,
        nonce: DurableNonce,
        attempt: u32,
        read_at_slot: u64,
    ) -> Result<(AttemptRecord, SignedTransaction), PortError> {
        let v = &self.venue;
        let unsigned = v
            .router
            .build_cancel(nonce, self.settings.cancel_fee)
            .await?;
        let signed = v.signer.sign(&unsigned)?;
        let record = AttemptRecord::cancel(
            intent,
            attempt,
            &signed,
            nonce,
            read_at_slot,
            unsigned.priority_fee.unwrap_or(self.settings.cancel_fee),
            self.clock().now(),
        );
        v.journal.record_attempt(&record).await?;
        tracing::warn!(%intent, attempt, signature = %signed.signature, "reconciling: cancel sent on the nonce");
        Ok((record, signed))
    }

    /// A landed attempt's fill (read, or the quote's minimum standing in).
    async fn landed(
        &self,
        unresolved: &UnresolvedIntent,
        attempt: &AttemptRecord,
    ) -> Result<(Fill, bool, TxSignature), PortError> {
        let intent = unresolved.intent.intent;
        self.journal()
            .record_attempt_outcome(intent, attempt.attempt, AttemptOutcome::Landed)
            .await?;
        tracing::warn!(%intent, attempt = attempt.attempt, signature = %attempt.signature, "reconciled: attempt landed");
        let fill = read_fill(
            &self.venue,
            attempt.signature,
            unresolved.intent.side,
            self.settings.fill_wait,
        )
        .await;
        Ok(match fill {
            Some(fill) => (fill, true, attempt.signature),
            None => (
                Fill {
                    amount_in: attempt.amount_in,
                    amount_out: attempt.min_out,
                    fee: Lamports::new(0),
                },
                false,
                attempt.signature,
            ),
        })
    }

    /// A chain read, retried patiently: nothing trades until reconciliation ends, so a
    /// transient error (a 429, a node behind) is waited out for a minute rather than
    /// stopping the bot.
    async fn read<T, F, Fut>(&self, op: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, PortError>>,
    {
        retry_call(
            &self.clock(),
            &self.jitter,
            RetryPolicy {
                max_attempts: 12,
                total_budget: Duration::from_secs(60),
                initial_backoff: Duration::from_millis(500),
                multiplier: 2.0,
                max_backoff: Duration::from_secs(5),
            },
            Duration::from_secs(5),
            "reconcile.read",
            op,
        )
        .await
    }
}

fn apply(positions: &mut BTreeMap<PositionId, PositionRecord>, record: Option<PositionRecord>) {
    if let Some(record) = record {
        if record.remaining.is_zero() {
            positions.remove(&record.position);
        } else {
            positions.insert(record.position, record);
        }
    }
}

/// The position a landed intent leaves (`None` when it concerns no known position).
fn position_after(
    pair: Pair,
    intent: &IntentRecord,
    fill: Fill,
    positions: &BTreeMap<PositionId, PositionRecord>,
) -> Option<PositionRecord> {
    match intent.action {
        IntentAction::Enter => {
            let size = Size::new(fill.amount_out).ok()?;
            let entry_price = pair.price_of(fill.amount_out, fill.amount_in)?;
            Some(PositionRecord {
                position: intent.position,
                entry_price,
                size,
                remaining: size.amount(),
            })
        }
        IntentAction::Exit(_) => {
            let mut p = positions.get(&intent.position).copied()?;
            p.remaining = p
                .remaining
                .checked_sub(fill.amount_in)
                .unwrap_or(TokenAmount::ZERO);
            Some(p)
        }
    }
}

/// The position after an entry's provisional fill is replaced by the one read (an exit's
/// input was exact, so its position does not change).
fn corrected(
    pair: Pair,
    intent: &IntentRecord,
    provisional: Fill,
    fill: Fill,
    positions: &BTreeMap<PositionId, PositionRecord>,
) -> Option<PositionRecord> {
    if !matches!(intent.action, IntentAction::Enter) {
        return None;
    }
    let size = Size::new(fill.amount_out).ok()?;
    let entry_price = pair.price_of(fill.amount_out, fill.amount_in)?;
    let extra = fill
        .amount_out
        .get()
        .saturating_sub(provisional.amount_out.get());
    let short = provisional
        .amount_out
        .get()
        .saturating_sub(fill.amount_out.get());
    let remaining = positions
        .get(&intent.position)
        .map_or(0, |p| p.remaining.get())
        .saturating_add(extra)
        .saturating_sub(short);
    Some(PositionRecord {
        position: intent.position,
        entry_price,
        size,
        remaining: TokenAmount::new(remaining),
    })
}
