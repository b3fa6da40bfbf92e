//! Nonce mode: every attempt of a round is built on one durable nonce value, so the
//! chain lets at most one of them land, and the next rung need not wait for the
//! previous attempt's death. It is sent beside it after `escalate_after` (at once when
//! every node refused the previous one). The round is settled by the nonce account
//! ([`prove_round`]): a status at the commitment, or the value moved on and a look-up
//! with history saying which of them (if any) moved it; an unchanged value is never
//! taken as death. A landing with an on-chain error uses the value up too: the next
//! attempt starts a new round on the new value. At the deadline (or when no attempt
//! may start any more and none is in flight) nothing new is tried: a cancel (the
//! advance alone) is sent on the round's value and tracked with the attempts until one
//! of them lands, after which nothing built on that value can land.

use kyzlo_domain::exit_state::{ExitEvent, ExitFailure, ExitState};
use kyzlo_domain::ladder::Rung;
use kyzlo_domain::{ErrorClass, ErrorDecision, Timestamp};

use super::prepare::Prepared;
use super::track::refusal_resolves;
use super::{ExecutionOutcome, NonceSettings, Run, give_up_failure};
use crate::journal::{AttemptOutcome, AttemptRecord};
use crate::metrics::MetricEvent;
use crate::ports::DurableNonce;
use crate::proof::{RoundFate, prove_round};
use kyzlo_domain::deadline::ExitDeadline;
use kyzlo_domain::retry::RetryBudget;

/// One transaction of a round, sent and followed.
struct Flight {
    record: AttemptRecord,
    prepared: Prepared,
    next_send: Timestamp,
    /// Whether any node may have accepted a copy.
    forwarded: bool,
    /// Resolved without landing (refused by every node before any copy was forwarded).
    refused: bool,
}

impl Flight {
    fn cancel(&self) -> bool {
        self.record.nonce.is_some_and(|n| n.cancel)
    }
}

/// The transactions built on one nonce value.
struct Round {
    nonce: DurableNonce,
    read_at_slot: u64,
    flights: Vec<Flight>,
    last_sent: Timestamp,
    /// The newest attempt was refused by every node: the next rung goes at once.
    refused: bool,
}

impl Round {
    fn live(&self) -> impl Iterator<Item = &Flight> {
        self.flights.iter().filter(|f| !f.refused)
    }

    fn live_count(&self) -> usize {
        self.live().count()
    }
}

/// Why no attempt was launched.
enum Launch {
    Sent,
    /// Not now (the nonce or the preparation failed for a while): tried again later.
    Later,
    /// No attempt may start any more.
    Stop(ExitFailure),
}

impl Run<'_> {
    /// Executes the intent on the durable nonce of `nonce` (see the module docs).
    pub(super) async fn go_nonce(
        &mut self,
        nonce: NonceSettings,
        deadline: ExitDeadline,
        mut budget: RetryBudget,
    ) -> ExecutionOutcome {
        let v = self.venue;
        let mut round: Option<Round> = None;
        let mut stopped: Option<ExitFailure> = None;
        loop {
            let now = v.clock.now();
            let live = round.as_ref().map_or(0, Round::live_count);
            // The window's end is kept to the microsecond: a deadline of a fraction of one
            // counts as closed from the clock's reading of that end (else a sleep until it
            // would return at once, forever).
            if !deadline.is_within(now) || now >= deadline.expires_at() {
                return self
                    .finish_round(round, nonce, ExitFailure::DeadlineExceeded)
                    .await;
            }
            if let Some(failure) = stopped
                && live == 0
            {
                return self.finish_round(round, nonce, failure).await;
            }
            if stopped.is_none() {
                let due = round.as_ref().is_none_or(|r| {
                    live == 0
                        || r.refused
                        || now >= r.last_sent.saturating_add(nonce.escalate_after)
                });
                if due {
                    match self.launch(nonce, &mut round, &mut budget, &deadline).await {
                        Launch::Sent | Launch::Later => {}
                        Launch::Stop(failure) => stopped = Some(failure),
                    }
                }
            }
            if let Some(r) = round.as_mut() {
                self.send_due(r).await;
            }
            let mut wake = v
                .clock
                .now()
                .saturating_add(self.settings.poll_interval)
                .min(deadline.expires_at());
            // The next rung's time, unless it has passed already (its launch did not
            // happen now: it is tried again at the next look, never in a busy loop).
            if stopped.is_none()
                && let Some(r) = &round
                && r.live_count() > 0
            {
                let next = r.last_sent.saturating_add(nonce.escalate_after);
                if next > v.clock.now() {
                    wake = wake.min(next);
                }
            }
            v.clock.sleep_until(wake).await;
            let Some(r) = round.as_mut() else { continue };
            if r.live_count() == 0 {
                continue;
            }
            self.mark_timeout(r.last_sent).await;
            match self.look(r).await {
                None => {}
                Some(Ok(index)) => return self.landed(r, index).await,
                Some(Err(class)) => {
                    // The value is used up: the next attempt is a new round.
                    round = None;
                    if let Some(class) = class {
                        self.last_error = Some(class);
                        if class.decision() == ErrorDecision::GiveUp {
                            stopped = Some(ExitFailure::Permanent(class));
                        }
                    }
                }
            }
        }
    }

    /// Reads the nonce (for a new round), prepares the next attempt on it, journals it
    /// and makes it live beside the round's others.
    async fn launch(
        &mut self,
        nonce_settings: NonceSettings,
        round: &mut Option<Round>,
        budget: &mut RetryBudget,
        deadline: &ExitDeadline,
    ) -> Launch {
        let v = self.venue;
        let live = round.as_ref().map_or(0, Round::live_count);
        let attempt = if live == 0 {
            self.sm.next_attempt()
        } else {
            self.sm.next_beside()
        };
        let Some(attempt) = attempt else {
            return Launch::Stop(ExitFailure::AttemptsExhausted);
        };
        let now = v.clock.now();
        if let Err(reason) = budget.could_begin(now, self.settings.poll_interval) {
            return Launch::Stop(give_up_failure(reason));
        }
        if round
            .as_ref()
            .is_none_or(|r| live == 0 && r.flights.is_empty())
        {
            match v
                .chain
                .nonce(nonce_settings.account, self.settings.commitment)
                .await
            {
                Ok(read) => match read.value {
                    Some(value) => {
                        *round = Some(Round {
                            nonce: DurableNonce {
                                account: nonce_settings.account,
                                value,
                            },
                            read_at_slot: read.context_slot,
                            flights: Vec::new(),
                            last_sent: now,
                            refused: false,
                        });
                    }
                    None => {
                        tracing::error!(intent = %self.job.intent, "the nonce account holds no nonce: nothing can be built on it");
                        self.last_error = Some(ErrorClass::InvalidAccount);
                        return Launch::Stop(ExitFailure::Permanent(ErrorClass::InvalidAccount));
                    }
                },
                Err(e) => {
                    tracing::warn!(intent = %self.job.intent, error = %e, "nonce not read; reading again");
                    self.last_error = Some(e.class);
                    return Launch::Later;
                }
            }
        }
        let Some(r) = round.as_mut() else {
            return Launch::Later;
        };
        let rung = self.settings.ladder.rung_for(self.job.style, attempt);
        // While others are in flight a preparation may hold up their following only
        // until the next rung would be due anyway.
        let until = if live == 0 {
            deadline.expires_at()
        } else {
            now.saturating_add(nonce_settings.escalate_after)
                .min(deadline.expires_at())
        };
        let prepared = match self
            .prepare(rung, attempt, until, Some((r.nonce, r.read_at_slot)))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                self.last_error = Some(e.class);
                tracing::warn!(intent = %self.job.intent, attempt, error = %e, "attempt could not be prepared on the nonce");
                if e.class.decision() == ErrorDecision::GiveUp {
                    return Launch::Stop(ExitFailure::Permanent(e.class));
                }
                return Launch::Later;
            }
        };
        if let Err(reason) = budget.begin_attempt(v.clock.now(), self.settings.poll_interval) {
            return Launch::Stop(give_up_failure(reason));
        }
        let record = self.record_of(attempt, &rung, &prepared, Some(r.nonce));
        if let Err(e) = v.journal.record_attempt(&record).await {
            tracing::error!(intent = %self.job.intent, attempt, error = %e, "attempt not journaled: not sent");
            self.last_error = Some(e.class);
            return Launch::Stop(ExitFailure::Permanent(ErrorClass::Unknown));
        }
        let signature = prepared.signed.signature;
        let event = if live == 0 {
            ExitEvent::Submit {
                attempt,
                signature,
                last_valid_height: prepared.signed.last_valid_block_height,
            }
        } else {
            ExitEvent::SubmitBeside { attempt, signature }
        };
        if !self.transition(event).await {
            return Launch::Stop(ExitFailure::Permanent(ErrorClass::Unknown));
        }
        self.priority_fees = self.priority_fees.saturating_add(prepared.priority_fee);
        if let Some(kind) = self.kind {
            v.metrics.record(MetricEvent::ExitAttemptSent {
                kind,
                attempt,
                style: rung.style,
            });
        }
        log_sent(self, &record, &rung, live);
        let now = v.clock.now();
        r.flights.push(Flight {
            record,
            prepared,
            next_send: now,
            forwarded: false,
            refused: false,
        });
        r.last_sent = now;
        r.refused = false;
        Launch::Sent
    }

    /// Sends the copies that are due: every live attempt while new ones may start; only
    /// the cancel once it exists.
    async fn send_due(&mut self, r: &mut Round) {
        let v = self.venue;
        let cancelling = r.flights.iter().any(Flight::cancel);
        for i in 0..r.flights.len() {
            let f = &r.flights[i];
            if f.refused || v.clock.now() < f.next_send || (cancelling && !f.cancel()) {
                continue;
            }
            let result = v.chain.send(&f.prepared.signed).await;
            let f = &mut r.flights[i];
            f.next_send = v
                .clock
                .now()
                .saturating_add(self.settings.rebroadcast_interval);
            match result {
                Ok(()) => f.forwarded = true,
                Err(e) if !f.forwarded && refusal_resolves(e.class) => {
                    // No node holds these bytes: this one is over, the value is not.
                    tracing::warn!(intent = %self.job.intent, attempt = f.record.attempt, signature = %f.record.signature, error = %e, "send refused before any copy was forwarded");
                    f.refused = true;
                    r.refused = true;
                    let (attempt, signature, cancel) =
                        (f.record.attempt, f.record.signature, f.cancel());
                    self.last_error = Some(e.class);
                    self.record_outcome(attempt, AttemptOutcome::Failed(e.class))
                        .await;
                    if !cancel {
                        let _ = self
                            .transition(ExitEvent::LandedFailed {
                                signature,
                                class: e.class,
                            })
                            .await;
                    }
                }
                Err(e) => {
                    if e.class.may_still_land() {
                        f.forwarded = true;
                    }
                    if let Some(wait) = e.retry_after {
                        f.next_send = v.clock.now().saturating_add(wait);
                    }
                    tracing::debug!(intent = %self.job.intent, signature = %f.record.signature, error = %e, "send failed; the attempt may still land");
                }
            }
        }
    }

    /// Looks at the round: `Some(Ok(i))` when flight `i` landed, `Some(Err(class))` when
    /// the value is used up without a swap landing (the class of a failed landing), and
    /// `None` while any may still land. The used-up flights are journaled resolved.
    async fn look(&mut self, r: &mut Round) -> Option<Result<usize, Option<ErrorClass>>> {
        let v = self.venue;
        let live: Vec<usize> = (0..r.flights.len())
            .filter(|&i| !r.flights[i].refused)
            .collect();
        let signatures: Vec<_> = live
            .iter()
            .map(|&i| r.flights[i].record.signature)
            .collect();
        let fate = prove_round(
            v.chain.as_ref(),
            r.nonce,
            r.read_at_slot,
            &signatures,
            self.settings.commitment,
        )
        .await;
        let (winner, class) = match fate {
            RoundFate::Unknown => return None,
            RoundFate::Landed(i) => (Some(live[i]), None),
            RoundFate::LandedFailed(i, class) => (Some(live[i]), Some(class)),
            RoundFate::Dead => (None, None),
        };
        if let Some(w) = winner
            && class.is_none()
            && !r.flights[w].cancel()
        {
            self.bury(r, Some(w)).await;
            return Some(Ok(w));
        }
        // A failed landing or the cancel used the value up; or something else did.
        if let Some(w) = winner {
            let f = &mut r.flights[w];
            f.refused = true;
            let (attempt, signature, cancel) = (f.record.attempt, f.record.signature, f.cancel());
            match class {
                Some(class) => {
                    self.record_outcome(attempt, AttemptOutcome::Failed(class))
                        .await;
                    if !cancel {
                        let _ = self
                            .transition(ExitEvent::LandedFailed { signature, class })
                            .await;
                    }
                }
                None => self.record_outcome(attempt, AttemptOutcome::Landed).await,
            }
        }
        self.bury(r, winner).await;
        Some(Err(class))
    }

    /// Journals every live flight but `except` as dead: the value they carry is used up.
    async fn bury(&mut self, r: &mut Round, except: Option<usize>) {
        for i in 0..r.flights.len() {
            if Some(i) == except || r.flights[i].refused {
                continue;
            }
            let f = &mut r.flights[i];
            f.refused = true;
            let (attempt, signature, cancel) = (f.record.attempt, f.record.signature, f.cancel());
            self.record_outcome(attempt, AttemptOutcome::Expired).await;
            if !cancel {
                let _ = self
                    .transition(ExitEvent::ProvenExpired { signature })
                    .await;
            }
        }
    }

    /// The landed flight `index`: journaled, the state machine closed, the fill read.
    async fn landed(&mut self, r: &Round, index: usize) -> ExecutionOutcome {
        let f = &r.flights[index];
        let (attempt, signature) = (f.record.attempt, f.record.signature);
        self.record_outcome(attempt, AttemptOutcome::Landed).await;
        let _ = self.transition(ExitEvent::Landed { signature }).await;
        let (fill, exact) = self.fill(&f.prepared).await;
        ExecutionOutcome::Filled {
            attempt,
            signature,
            fill,
            exact,
        }
    }

    /// Marks the newest attempt timed out once its confirmation wait has passed.
    async fn mark_timeout(&mut self, last_sent: Timestamp) {
        if matches!(self.sm.state(), ExitState::Submitted { .. })
            && self.venue.clock.now() >= last_sent.saturating_add(self.settings.confirm_timeout)
        {
            let _ = self.transition(ExitEvent::ConfirmTimedOut).await;
        }
    }

    /// No attempt starts any more (`failure` says why): with nothing in flight that is
    /// the end; otherwise a cancel is sent on the round's value and followed with the
    /// attempts until one of them lands. A swap landing first still closes the position.
    async fn finish_round(
        &mut self,
        round: Option<Round>,
        nonce: NonceSettings,
        failure: ExitFailure,
    ) -> ExecutionOutcome {
        let v = self.venue;
        let Some(mut r) = round.filter(|r| r.live_count() > 0) else {
            return self.fail(failure).await;
        };
        let newest = r.live().map(|f| f.record.attempt).max().unwrap_or(0);
        if failure == ExitFailure::DeadlineExceeded {
            self.on_deadline_passed(newest).await;
        } else if !matches!(self.sm.state(), ExitState::ExitFailed { .. }) {
            let _ = self.transition(ExitEvent::Fail { reason: failure }).await;
        }
        tracing::warn!(intent = %self.job.intent, ?failure, "no new attempt: cancelling the nonce under the ones in flight");
        loop {
            if !r.flights.iter().any(Flight::cancel) {
                self.build_cancel(&mut r, nonce).await;
            }
            self.send_due(&mut r).await;
            let wake = v.clock.now().saturating_add(self.settings.poll_interval);
            v.clock.sleep_until(wake).await;
            match self.look(&mut r).await {
                None => {}
                Some(Ok(index)) => return self.landed(&r, index).await,
                Some(Err(class)) => {
                    if class.is_some() {
                        self.last_error = class;
                    }
                    return self.failed(failure);
                }
            }
        }
    }

    /// Builds, signs and journals the round's cancel (tried again at the next look when
    /// the router or the journal fails).
    async fn build_cancel(&mut self, r: &mut Round, nonce: NonceSettings) {
        let v = self.venue;
        let unsigned = match v.router.build_cancel(r.nonce, nonce.cancel_fee).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(intent = %self.job.intent, error = %e, "cancel not built; trying again");
                return;
            }
        };
        let signed = match v.signer.sign(&unsigned) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(intent = %self.job.intent, error = %e, "cancel not signed; trying again");
                return;
            }
        };
        let attempt = r
            .flights
            .iter()
            .map(|f| f.record.attempt)
            .max()
            .unwrap_or(0)
            .max(self.sm.attempts())
            .saturating_add(1);
        let fee = unsigned.priority_fee.unwrap_or(nonce.cancel_fee);
        let record = AttemptRecord::cancel(
            self.job.intent,
            attempt,
            &signed,
            r.nonce,
            r.read_at_slot,
            fee,
            v.clock.now(),
        );
        if let Err(e) = v.journal.record_attempt(&record).await {
            tracing::error!(intent = %self.job.intent, error = %e, "cancel not journaled: not sent");
            return;
        }
        tracing::warn!(intent = %self.job.intent, attempt, signature = %signed.signature, "cancel sent on the nonce");
        self.priority_fees = self.priority_fees.saturating_add(fee);
        let now = v.clock.now();
        r.flights.push(Flight {
            record,
            prepared: Prepared {
                signed,
                amount_in: kyzlo_domain::TokenAmount::ZERO,
                min_out: kyzlo_domain::TokenAmount::ZERO,
                valid_at_slot: r.read_at_slot,
                expected_expiry: Timestamp::from_micros(u64::MAX),
                priority_fee: fee,
            },
            next_send: now,
            forwarded: false,
            refused: false,
        });
    }
}

fn log_sent(run: &Run<'_>, record: &AttemptRecord, rung: &Rung, beside: usize) {
    tracing::info!(
        intent = %run.job.intent,
        position = %run.job.position,
        attempt = record.attempt,
        signature = %record.signature,
        slippage_bps = rung.slippage.bps().get(),
        priority_fee_bid = record.priority_fee.get(),
        amount_in = record.amount_in.get(),
        in_flight_beside = beside,
        "attempt sent on the durable nonce"
    );
}
