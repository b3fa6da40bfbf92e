//! Settling what executions report: a fill changes a position and its intent in one
//! journal write, a fill not read yet is settled provisionally and corrected later, and a
//! write the journal refuses is queued and retried before anything new starts.

use super::*;

impl Orchestrator {
    /// Applies finished executions to positions and the strategy (every tick starts
    /// with this; callers that watch positions between ticks call it too).
    pub async fn apply_completions(&mut self) {
        while let Ok(done) = self.done_rx.try_recv() {
            self.apply(done).await;
        }
        while self.tasks.try_join_next().is_some() {}
    }

    pub(super) async fn apply(&mut self, done: Completion) {
        match done {
            Completion::Entry { position, report } => {
                self.pending_entry = None;
                let Ok(report) = report else {
                    // Refused before anything was journaled.
                    self.strategy.confirm_trade(self.strategy_position());
                    return;
                };
                let opened = match report.outcome {
                    ExecutionOutcome::Filled { fill, .. } => self.entry_record(position, fill),
                    ExecutionOutcome::Failed { .. } => None,
                };
                self.settle(report.intent, &report.outcome, opened.as_ref())
                    .await;
                match opened {
                    Some(record) => {
                        tracing::info!(%position, entry = %record.entry_price, size = %record.size, "position opened");
                        self.adopt(record);
                    }
                    None => self.strategy.confirm_trade(self.strategy_position()),
                }
                self.read_late_fill(position, true, &report);
            }
            Completion::Exit { position, report } => {
                let Some(open) = self.positions.get_mut(&position) else {
                    return;
                };
                open.exiting = false;
                let Ok(report) = report else {
                    open.plan.on_exit_abandoned();
                    return;
                };
                let record = match report.outcome {
                    ExecutionOutcome::Filled { fill, .. } => {
                        open.plan.on_exit_filled(fill.amount_in);
                        Some(PositionRecord {
                            position,
                            entry_price: open.plan.entry(),
                            size: open.plan.size(),
                            remaining: open.plan.remaining(),
                        })
                    }
                    ExecutionOutcome::Failed { .. } => {
                        open.plan.on_exit_abandoned();
                        None
                    }
                };
                let closed = open.plan.is_closed();
                self.settle(report.intent, &report.outcome, record.as_ref())
                    .await;
                if closed {
                    self.positions.remove(&position);
                    tracing::info!(%position, "position closed");
                    self.strategy.confirm_trade(self.strategy_position());
                }
                self.read_late_fill(position, false, &report);
            }
            Completion::FillRead {
                intent,
                position,
                entry,
                provisional,
                fill,
            } => {
                self.correct_fill(intent, position, entry, provisional, fill)
                    .await
            }
        }
    }

    /// The position an entry's fill opens.
    pub(super) fn entry_record(&self, position: PositionId, fill: Fill) -> Option<PositionRecord> {
        let size = Size::new(fill.amount_out).ok()?;
        let entry_price = self.config.pair.price_of(fill.amount_out, fill.amount_in)?;
        Some(PositionRecord {
            position,
            entry_price,
            size,
            remaining: size.amount(),
        })
    }

    /// For a landing settled on a provisional fill, reads the real one in the background
    /// (reported back as [`Completion::FillRead`]); reconciliation at the next start
    /// reads what this process could not.
    pub(super) fn read_late_fill(
        &mut self,
        position: PositionId,
        entry: bool,
        report: &ExecutionReport,
    ) {
        let ExecutionOutcome::Filled {
            signature,
            fill: provisional,
            exact: false,
            ..
        } = report.outcome
        else {
            return;
        };
        let intent = report.intent;
        let engine = Arc::clone(&self.services.engine);
        let done = self.done_tx.clone();
        let side = if entry { Side::Buy } else { Side::Sell };
        self.tasks.spawn(async move {
            match read_fill(engine.venue(), signature, side, LATE_FILL_WAIT).await {
                Some(fill) => {
                    let _ = done.send(Completion::FillRead {
                        intent,
                        position,
                        entry,
                        provisional,
                        fill,
                    });
                }
                None => tracing::warn!(%intent, %signature, "fill still unreadable: reconciliation reads it at the next start"),
            }
        });
    }

    /// Replaces a provisional fill by the one read: an entry's position grows (or, if
    /// already sold, what the provisional size left behind becomes a position); an
    /// exit's input was exact, so only its record changes.
    pub(super) async fn correct_fill(
        &mut self,
        intent: IntentId,
        position: PositionId,
        entry: bool,
        provisional: Fill,
        fill: Fill,
    ) {
        let record = if !entry {
            None
        } else if let Some(open) = self.positions.get_mut(&position) {
            let Some(corrected) = Size::new(fill.amount_out)
                .ok()
                .zip(self.config.pair.price_of(fill.amount_out, fill.amount_in))
            else {
                return;
            };
            open.plan.correct_entry(corrected.1, corrected.0);
            Some(PositionRecord {
                position,
                entry_price: open.plan.entry(),
                size: open.plan.size(),
                remaining: open.plan.remaining(),
            })
        } else {
            // Closed on the provisional size: what it did not count is still held.
            let extra = fill.amount_out.checked_sub(provisional.amount_out);
            let left = self
                .entry_record(position, fill)
                .zip(extra.filter(|e| !e.is_zero()))
                .map(|(mut r, extra)| {
                    r.remaining = extra;
                    r
                });
            if let Some(left) = left {
                tracing::warn!(%position, remaining = %left.remaining, "the entry's fill, read late, left more than was sold: the rest is a position again");
                self.adopt(left);
            }
            left
        };
        self.unsettled
            .push_back((intent, IntentOutcome::Filled(fill), record));
        self.flush_settlements().await;
    }

    /// Journals an intent's outcome together with the position it leaves, in one step,
    /// after every settlement still waiting: a position's writes reach the journal in the
    /// order they were made, so reconciliation never applies an intent a later write
    /// already carries.
    pub(super) async fn settle(
        &mut self,
        intent: IntentId,
        outcome: &ExecutionOutcome,
        position: Option<&PositionRecord>,
    ) {
        let outcome = match outcome {
            ExecutionOutcome::Filled {
                fill, exact: true, ..
            } => IntentOutcome::Filled(*fill),
            ExecutionOutcome::Filled {
                fill,
                exact: false,
                signature,
                ..
            } => IntentOutcome::Landed {
                signature: *signature,
                provisional: *fill,
            },
            ExecutionOutcome::Failed { .. } => IntentOutcome::Failed,
        };
        self.unsettled
            .push_back((intent, outcome, position.copied()));
        self.flush_settlements().await;
    }

    /// Writes the settlements waiting, oldest first, stopping at the first the journal
    /// refuses (retried at the next tick; reconciliation settles what a crash leaves).
    /// `true` when none is left waiting.
    pub(super) async fn flush_settlements(&mut self) -> bool {
        while let Some((intent, outcome, position)) = self.unsettled.front().copied() {
            if let Err(e) = self
                .services
                .journal
                .settle_intent(intent, &outcome, position.as_ref())
                .await
            {
                tracing::error!(%intent, error = %e, waiting = self.unsettled.len(), "intent outcome and position not journaled yet; retried at the next tick");
                return false;
            }
            self.unsettled.pop_front();
        }
        true
    }
}
