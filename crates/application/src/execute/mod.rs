//! The attempt engine shared by exits and entries: it turns one intent into at most one
//! landed transaction.
//!
//! Each attempt is quoted on its ladder rung ([`prepare`]), journaled, then sent and
//! followed ([`track`]): the same signed bytes are rebroadcast while the attempt lives and
//! its status is polled. A new attempt is built only once the previous one landed with an
//! error, was refused by every node before any copy of it was forwarded, or was proven
//! dead from one consistent view of the chain ([`crate::proof`]). At the deadline no new
//! attempt starts, but a live one is tracked, with everything known of it, until it
//! resolves.

mod nonce;
mod prepare;
mod settings;
mod track;

pub use settings::{ExecutionSettings, NonceSettings};

use std::sync::Arc;
use std::time::Duration;

use kyzlo_domain::deadline::ExitDeadline;
use kyzlo_domain::exit_state::{ExitEvent, ExitFailure, ExitState, ExitStateMachine};
use kyzlo_domain::ladder::{EscalationLadder, OrderStyle, Rung};
use kyzlo_domain::retry::{GiveUpReason, RetryBudget, RetryDecision, RetryPolicy};
use kyzlo_domain::{
    ClassifiedError, ErrorClass, ErrorDecision, ExitKind, IntentId, Lamports, PositionId,
    Timestamp, TokenAmount, TxSignature,
};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentRecord, Journal, NonceUse,
};
use crate::metrics::{MetricEvent, MetricsSink};
use crate::ports::{Chain, Commitment, DurableNonce, Fill, Pair, Side, Signer, SwapRouter};
use crate::rng::Jitter;
use prepare::Prepared;
use track::{AttemptEnd, Live};

/// How much to swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Exactly this input.
    Exact(TokenAmount),
    /// The wallet's whole balance of the input token, at most `cap` (less the fee
    /// reserve when the input is SOL): a full exit quoted on the on-chain balance, so a
    /// second landing would fail for lack of funds.
    WholeBalance {
        /// The position's remaining size.
        cap: TokenAmount,
    },
}

/// One intent to execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapJob {
    /// Its id.
    pub intent: IntentId,
    /// The position.
    pub position: PositionId,
    /// Entry or exit.
    pub action: IntentAction,
    pub side: Side,
    /// Input amount.
    pub amount: Amount,
    /// How the order is placed: a market-style order (a stop-loss) starts at the
    /// ladder's first market rung.
    pub style: OrderStyle,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExecutionOutcome {
    /// One transaction landed.
    Filled {
        /// The attempt that landed.
        attempt: u32,
        /// Its signature.
        signature: TxSignature,
        /// What it moved: read from the ledger when `exact`; otherwise the input and the
        /// quote's minimum output (a lower bound), to be corrected once readable.
        fill: Fill,
        /// Whether `fill` was read from the ledger.
        exact: bool,
    },
    /// Nothing landed and nothing can.
    Failed {
        /// Why it stopped.
        failure: ExitFailure,
        /// The last error class seen.
        last_error: Option<ErrorClass>,
    },
}

/// The result of one execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecutionReport {
    /// The intent.
    pub intent: IntentId,
    /// The outcome.
    pub outcome: ExecutionOutcome,
    /// Transactions sent.
    pub attempts: u32,
    /// When it started.
    pub started: Timestamp,
    /// When it was resolved.
    pub finished: Timestamp,
    /// Whether it was still unresolved at its deadline.
    pub deadline_exceeded: bool,
    /// Priority fees bid across attempts.
    pub priority_fees: Lamports,
}

/// Sent when the deadline passes with an attempt still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineNotice {
    /// The intent.
    pub intent: IntentId,
    /// The attempt still live.
    pub attempt: u32,
    /// How long since the start.
    pub elapsed: Duration,
}

/// The ports an execution needs (router and chain already timed by the latency guard).
#[derive(Clone)]
pub struct Venue {
    /// Quotes and builds swaps.
    pub router: Arc<dyn SwapRouter>,
    /// Sends and reads the chain.
    pub chain: Arc<dyn Chain>,
    pub signer: Arc<dyn Signer>,
    /// Records everything before it happens.
    pub journal: Arc<dyn Journal>,
    pub metrics: Arc<dyn MetricsSink>,
    /// Tokio's clock.
    pub clock: Clock,
    /// Jitter for backoff.
    pub jitter: Arc<Jitter>,
    /// The pair (whether the base token is SOL, which pays fees too).
    pub pair: Pair,
}

/// Runs intents to completion.
pub struct Engine {
    venue: Venue,
}

impl Engine {
    /// An engine over `venue`.
    #[must_use]
    pub fn new(venue: Venue) -> Self {
        Self { venue }
    }

    /// The ports.
    #[must_use]
    pub fn venue(&self) -> &Venue {
        &self.venue
    }

    /// Executes `job`. `kind` labels exit metrics; `on_deadline` is told once if the
    /// deadline passes with an attempt still live (the run then goes on tracking it).
    pub async fn execute(
        &self,
        job: SwapJob,
        kind: Option<ExitKind>,
        settings: &ExecutionSettings,
        on_deadline: Option<oneshot::Sender<DeadlineNotice>>,
    ) -> ExecutionReport {
        let mut run = Run {
            venue: &self.venue,
            job,
            kind,
            settings,
            sm: if settings.nonce.is_some() {
                ExitStateMachine::on_durable_nonce()
            } else {
                ExitStateMachine::new()
            },
            started: self.venue.clock.now(),
            priority_fees: Lamports::new(0),
            last_error: None,
            deadline_exceeded: false,
            on_deadline,
        };
        // The intent's outcome is journaled by whoever applies it to the position, in
        // one step with the position (see `Journal::settle_intent`).
        let outcome = run.go().await;
        let finished = self.venue.clock.now();
        ExecutionReport {
            intent: job.intent,
            outcome,
            attempts: run.sm.attempts(),
            started: run.started,
            finished,
            deadline_exceeded: run.deadline_exceeded,
            priority_fees: run.priority_fees,
        }
    }
}

struct Run<'a> {
    venue: &'a Venue,
    job: SwapJob,
    kind: Option<ExitKind>,
    settings: &'a ExecutionSettings,
    sm: ExitStateMachine,
    started: Timestamp,
    priority_fees: Lamports,
    last_error: Option<ErrorClass>,
    deadline_exceeded: bool,
    on_deadline: Option<oneshot::Sender<DeadlineNotice>>,
}

/// What to do after an attempt ended without landing.
enum Next {
    Retry,
    Stop(ExitFailure),
}

impl Run<'_> {
    fn failed(&self, failure: ExitFailure) -> ExecutionOutcome {
        ExecutionOutcome::Failed {
            failure,
            last_error: self.last_error,
        }
    }

    async fn go(&mut self) -> ExecutionOutcome {
        let v = self.venue;
        let intent_record = IntentRecord {
            intent: self.job.intent,
            position: self.job.position,
            action: self.job.action,
            side: self.job.side,
            amount_in: match self.job.amount {
                Amount::Exact(a) => a,
                Amount::WholeBalance { cap } => cap,
            },
            created_at: self.started,
        };
        if let Err(e) = v.journal.record_intent(&intent_record).await {
            tracing::error!(intent = %self.job.intent, error = %e, "intent not journaled: nothing sent");
            self.last_error = Some(e.class);
            return self.failed(ExitFailure::Permanent(ErrorClass::Unknown));
        }
        let signal_kind = self.kind.unwrap_or(ExitKind::Strategy);
        let _ = self
            .transition(ExitEvent::Signal { kind: signal_kind })
            .await;

        let deadline = ExitDeadline::new(self.started, self.settings.deadline);
        let mut budget = RetryBudget::new(self.settings.policy, self.started);
        if let Some(nonce) = self.settings.nonce {
            return self.go_nonce(nonce, deadline, budget).await;
        }
        loop {
            let now = v.clock.now();
            if !deadline.is_within(now) {
                return self.fail(ExitFailure::DeadlineExceeded).await;
            }
            // Transactions are numbered by the state machine; only a transaction that is
            // sent spends one of the retry budget's attempts. Preparing sends nothing, so
            // a failed preparation is tried again (with backoff) for as long as the
            // budget leaves room for the attempt it prepares: a router on a lagging node
            // or a refused quote costs time, never an attempt.
            let Some(attempt) = self.sm.next_attempt() else {
                return self.fail(ExitFailure::Permanent(ErrorClass::Unknown)).await;
            };
            let rung = self.settings.ladder.rung_for(self.job.style, attempt);
            let life = self.settings.attempt_life(&rung);
            if let Err(reason) = budget.could_begin(now, life) {
                return self.fail(give_up_failure(reason)).await;
            }
            let resolved_failure = matches!(
                self.sm.state(),
                ExitState::Expired { .. } | ExitState::LandedFailed { .. }
            );
            if resolved_failure && rung.style == OrderStyle::Market {
                let _ = self.transition(ExitEvent::Escalate).await;
            }
            // The prepared transaction must still fit its whole life in the budget.
            let until = budget
                .budget_end()
                .saturating_sub(life)
                .min(deadline.expires_at());
            let prepared = match self.prepare(rung, attempt, until, None).await {
                Ok(p) => p,
                Err(e) => {
                    self.last_error = Some(e.class);
                    tracing::warn!(intent = %self.job.intent, attempt, error = %e, "attempt could not be prepared");
                    if e.class.decision() == ErrorDecision::GiveUp {
                        return self.fail(ExitFailure::Permanent(e.class)).await;
                    }
                    return self
                        .fail(give_up_failure(GiveUpReason::BudgetExhausted {
                            elapsed: v.clock.now().saturating_since(self.started),
                        }))
                        .await;
                }
            };
            // Preparing took time: a transaction that could no longer live out its life
            // inside the budget is discarded unsent (safe: nobody has its bytes).
            if let Err(reason) = budget.begin_attempt(v.clock.now(), life) {
                tracing::warn!(intent = %self.job.intent, attempt, "preparation ran past the attempt's window: discarded unsent");
                return self.fail(give_up_failure(reason)).await;
            }
            let record = self.record_of(attempt, &rung, &prepared, None);
            if let Err(e) = v.journal.record_attempt(&record).await {
                tracing::error!(intent = %self.job.intent, attempt, error = %e, "attempt not journaled: not sent");
                self.last_error = Some(e.class);
                return self.fail(ExitFailure::Permanent(ErrorClass::Unknown)).await;
            }
            let accepted = self
                .transition(ExitEvent::Submit {
                    attempt,
                    signature: prepared.signed.signature,
                    last_valid_height: prepared.signed.last_valid_block_height,
                })
                .await;
            if !accepted {
                // The state machine is the last word on "one live attempt": never send
                // what it refuses.
                return self.fail(ExitFailure::Permanent(ErrorClass::Unknown)).await;
            }
            self.priority_fees = self.priority_fees.saturating_add(prepared.priority_fee);
            if let Some(kind) = self.kind {
                v.metrics.record(MetricEvent::ExitAttemptSent {
                    kind,
                    attempt,
                    style: rung.style,
                });
            }
            tracing::info!(
                intent = %self.job.intent,
                position = %self.job.position,
                attempt,
                signature = %prepared.signed.signature,
                slippage_bps = rung.slippage.bps().get(),
                priority_fee_bid = prepared.priority_fee.get(),
                priority_fee_cap = rung.priority_fee.get(),
                amount_in = prepared.amount_in.get(),
                last_valid_height = prepared.signed.last_valid_block_height,
                "attempt sent"
            );

            // One `Live` for the attempt's whole life: what was sent and seen carries
            // across the deadline.
            let mut live = Live::new(&prepared, self.settings, v.clock.now());
            let mut end = self.track(&mut live, Some(deadline.expires_at())).await;
            if matches!(end, AttemptEnd::DeadlinePassed) {
                self.on_deadline_passed(attempt).await;
                end = self.track(&mut live, None).await;
            }
            let signature = prepared.signed.signature;
            self.log_resolved(attempt, &rung, &record, &end);
            let class = match end {
                AttemptEnd::Landed => {
                    self.record_outcome(attempt, AttemptOutcome::Landed).await;
                    let _ = self.transition(ExitEvent::Landed { signature }).await;
                    let (fill, exact) = self.fill(&prepared).await;
                    return ExecutionOutcome::Filled {
                        attempt,
                        signature,
                        fill,
                        exact,
                    };
                }
                AttemptEnd::Failed(class) => {
                    self.record_outcome(attempt, AttemptOutcome::Failed(class))
                        .await;
                    let _ = self
                        .transition(ExitEvent::LandedFailed { signature, class })
                        .await;
                    class
                }
                AttemptEnd::Expired => {
                    self.record_outcome(attempt, AttemptOutcome::Expired).await;
                    let _ = self
                        .transition(ExitEvent::ProvenExpired { signature })
                        .await;
                    ErrorClass::BlockhashExpired
                }
                AttemptEnd::DeadlinePassed => {
                    // `track(.., None)` never returns this; treat as failed to stay total.
                    return self.failed(ExitFailure::DeadlineExceeded);
                }
            };
            self.last_error = Some(class);
            if self.deadline_exceeded {
                return self.failed(ExitFailure::DeadlineExceeded);
            }
            if class.decision() == ErrorDecision::GiveUp {
                return self.fail(ExitFailure::Permanent(class)).await;
            }
            if let Next::Stop(failure) = self
                .plan_retry(&mut budget, ClassifiedError::new(class), &deadline)
                .await
            {
                return self.fail(failure).await;
            }
        }
    }

    /// The journal record of attempt `attempt`, prepared on `rung` (on `nonce` if any),
    /// about to be sent now.
    fn record_of(
        &self,
        attempt: u32,
        rung: &Rung,
        prepared: &Prepared,
        nonce: Option<DurableNonce>,
    ) -> AttemptRecord {
        AttemptRecord {
            intent: self.job.intent,
            attempt,
            signature: prepared.signed.signature,
            blockhash: prepared.signed.blockhash,
            valid_at_slot: prepared.valid_at_slot,
            last_valid_block_height: prepared.signed.last_valid_block_height,
            slippage: rung.slippage,
            priority_fee: prepared.priority_fee,
            amount_in: prepared.amount_in,
            min_out: prepared.min_out,
            sent_at: self.venue.clock.now(),
            nonce: nonce.map(|nonce| NonceUse {
                nonce,
                cancel: false,
            }),
        }
    }

    fn log_resolved(&self, attempt: u32, rung: &Rung, record: &AttemptRecord, end: &AttemptEnd) {
        let latency = self.venue.clock.now().saturating_since(record.sent_at);
        let (outcome, class) = match end {
            AttemptEnd::Landed => ("landed", None),
            AttemptEnd::Failed(class) => ("failed", Some(class.as_str())),
            AttemptEnd::Expired => ("expired", Some(ErrorClass::BlockhashExpired.as_str())),
            AttemptEnd::DeadlinePassed => ("unresolved", None),
        };
        tracing::info!(
            intent = %self.job.intent,
            position = %self.job.position,
            attempt,
            signature = %record.signature,
            outcome,
            error_class = class,
            slippage_bps = rung.slippage.bps().get(),
            priority_fee_bid = record.priority_fee.get(),
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            "attempt resolved"
        );
    }

    /// Waits out the backoff before the next attempt.
    async fn plan_retry(
        &mut self,
        budget: &mut RetryBudget,
        error: ClassifiedError,
        deadline: &ExitDeadline,
    ) -> Next {
        let v = self.venue;
        let now = v.clock.now();
        let next = self.settings.ladder.rung_for(
            self.job.style,
            self.sm.next_attempt().unwrap_or(self.sm.attempts() + 1),
        );
        match budget.after_failure(
            now,
            error,
            self.settings.attempt_life(&next),
            v.jitter.next_u64(),
        ) {
            RetryDecision::RetryAfter(delay) => {
                if now.saturating_add(delay) >= deadline.expires_at() {
                    return Next::Stop(ExitFailure::DeadlineExceeded);
                }
                tokio::time::sleep(delay).await;
                Next::Retry
            }
            RetryDecision::GiveUp(reason) => Next::Stop(give_up_failure(reason)),
        }
    }

    async fn fail(&mut self, failure: ExitFailure) -> ExecutionOutcome {
        if !matches!(self.sm.state(), ExitState::ExitFailed { .. }) {
            let _ = self.transition(ExitEvent::Fail { reason: failure }).await;
        }
        tracing::warn!(intent = %self.job.intent, ?failure, last_error = ?self.last_error, "execution gave up");
        self.failed(failure)
    }

    async fn on_deadline_passed(&mut self, attempt: u32) {
        self.deadline_exceeded = true;
        let _ = self
            .transition(ExitEvent::Fail {
                reason: ExitFailure::DeadlineExceeded,
            })
            .await;
        let elapsed = self.venue.clock.now().saturating_since(self.started);
        tracing::error!(intent = %self.job.intent, attempt, ?elapsed, "deadline passed with an attempt still live: tracking it, no new attempts");
        if let Some(tx) = self.on_deadline.take() {
            let _ = tx.send(DeadlineNotice {
                intent: self.job.intent,
                attempt,
                elapsed,
            });
        }
    }

    /// Applies and journals a transition; `false` when the state machine refuses it.
    async fn transition(&mut self, event: ExitEvent) -> bool {
        let now = self.venue.clock.now();
        match self.sm.apply(now, event) {
            Ok(_) => {
                if let Some(t) = self.sm.history().last() {
                    let t = *t;
                    if let Err(e) = self
                        .venue
                        .journal
                        .record_transition(self.job.intent, &t)
                        .await
                    {
                        tracing::error!(intent = %self.job.intent, error = %e, "transition not journaled");
                    }
                }
                true
            }
            Err(e) => {
                // The engine only asks for valid transitions; a refusal is a bug worth a log,
                // and never a reason to send anything.
                tracing::error!(intent = %self.job.intent, error = %e, "exit state machine refused a transition");
                false
            }
        }
    }

    async fn record_outcome(&self, attempt: u32, outcome: AttemptOutcome) {
        if let Err(e) = self
            .venue
            .journal
            .record_attempt_outcome(self.job.intent, attempt, outcome)
            .await
        {
            tracing::error!(intent = %self.job.intent, attempt, error = %e, "attempt outcome not journaled");
        }
    }

    /// The landed attempt's fill, read from the ledger (retried for `fill_wait`: a node
    /// may not serve it yet); past that, the input and the quote's minimum output, a
    /// lower bound the caller corrects once the fill can be read. Never zero.
    async fn fill(&self, prepared: &Prepared) -> (Fill, bool) {
        match read_fill(
            self.venue,
            prepared.signed.signature,
            self.job.side,
            self.settings.fill_wait,
        )
        .await
        {
            Some(fill) => (fill, true),
            None => {
                tracing::warn!(intent = %self.job.intent, signature = %prepared.signed.signature, "fill not readable yet: the quote's minimum stands in until it is");
                (
                    Fill {
                        amount_in: prepared.amount_in,
                        amount_out: prepared.min_out,
                        fee: Lamports::new(0),
                    },
                    false,
                )
            }
        }
    }
}

/// Reads what a landed transaction moved, retrying with backoff for up to `wait` while
/// no node serves it. `None` when it still cannot be read.
pub async fn read_fill(
    venue: &Venue,
    signature: TxSignature,
    side: Side,
    wait: Duration,
) -> Option<Fill> {
    let give_up = venue.clock.now().saturating_add(wait);
    let mut delay = Duration::from_millis(200);
    loop {
        match venue.chain.fill(signature, side).await {
            Ok(Some(fill)) => return Some(fill),
            Ok(None) => {}
            Err(e) => tracing::debug!(%signature, error = %e, "fill not read"),
        }
        let now = venue.clock.now();
        if now.saturating_add(delay) > give_up {
            return None;
        }
        let jittered =
            delay.mul_f64(0.5 + 0.5 * kyzlo_domain::unit_interval(venue.jitter.next_u64()));
        tokio::time::sleep(jittered).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn give_up_failure(reason: GiveUpReason) -> ExitFailure {
    match reason {
        GiveUpReason::NotRetryable(class) => ExitFailure::Permanent(class),
        GiveUpReason::AttemptsExhausted { .. } => ExitFailure::AttemptsExhausted,
        // The retry budget ran out before the deadline: no time for another attempt.
        GiveUpReason::BudgetExhausted { .. } => ExitFailure::AttemptsExhausted,
    }
}
