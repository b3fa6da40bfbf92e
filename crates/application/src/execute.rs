//! The attempt engine shared by exits and entries: it turns one intent into at most one
//! landed transaction.
//!
//! Each attempt is quoted on its ladder rung, built with a short blockhash life, signed,
//! journaled, then sent; while it lives, the same signed bytes are rebroadcast and its
//! status is polled. A new attempt is built only after the previous one landed with an
//! error, was refused before it could be forwarded, or was proven expired (block height
//! past its last valid height and nothing in the ledger history). At the deadline no new
//! attempt starts, but a live one is tracked until it resolves.

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
use crate::guard::LatencyGuard;
use crate::journal::{AttemptOutcome, AttemptRecord, IntentAction, IntentRecord, Journal};
use crate::metrics::{Dependency, MetricEvent, MetricsSink};
use crate::ports::{
    Chain, Commitment, Fill, PortError, QuoteRequest, Side, SignedTransaction, Signer,
    StatusLookup, SwapRequest, SwapRouter, TxStatus,
};
use crate::retry::retry_call;
use crate::rng::Jitter;

/// How an intent is executed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionSettings {
    /// Bounds the number of transactions and the time in which new ones may start.
    pub policy: RetryPolicy,
    /// Slippage, priority fee and style per attempt.
    pub ladder: EscalationLadder,
    /// From signal to closure (30 s for exits).
    pub deadline: Duration,
    /// Blockhash life asked of the router for market-style rungs, in slots, so attempts
    /// die quickly.
    pub expiry_slots: u32,
    /// Blockhash life for limit-style (tight slippage) rungs: a tight quote goes stale
    /// fast in a moving market, so such an attempt is let die sooner.
    pub limit_expiry_slots: u32,
    /// Expected time per slot, to estimate when an attempt expires.
    pub slot_time: Duration,
    /// How often a live attempt's status is polled.
    pub poll_interval: Duration,
    /// How often a live attempt's same bytes are sent again.
    pub rebroadcast_interval: Duration,
    /// How long one send may take before the engine moves on (the transaction may still
    /// have been forwarded; the rebroadcast gives it another chance).
    pub send_timeout: Duration,
    /// After this long without confirmation an attempt is marked timed out (it stays live).
    pub confirm_timeout: Duration,
    /// Calls allowed to prepare one attempt (balance, quote, build).
    pub prepare_calls: u32,
    /// The commitment at which a landing counts.
    pub commitment: Commitment,
}

impl ExecutionSettings {
    /// The exit defaults: exit retry policy (2 attempts, 20 s), 1% then 5% ladder, 30 s
    /// deadline, 20-slot blockhash life.
    #[must_use]
    pub fn exit_defaults() -> Self {
        Self {
            policy: RetryPolicy::exit_policy(),
            ladder: EscalationLadder::default_ladder(),
            deadline: ExitDeadline::DEFAULT_WINDOW,
            expiry_slots: 20,
            limit_expiry_slots: 10,
            slot_time: Duration::from_millis(400),
            poll_interval: Duration::from_millis(400),
            rebroadcast_interval: Duration::from_millis(400),
            send_timeout: Duration::from_millis(200),
            confirm_timeout: Duration::from_secs(2),
            prepare_calls: 3,
            commitment: Commitment::Confirmed,
        }
    }

    /// The entry defaults: default retry policy (3 attempts, 30 s) on the given ladder.
    #[must_use]
    pub fn entry_defaults(ladder: EscalationLadder) -> Self {
        let policy = RetryPolicy::default_policy();
        Self {
            policy,
            ladder,
            deadline: policy.total_budget,
            ..Self::exit_defaults()
        }
    }

    /// The blockhash life asked for an attempt on `rung`.
    #[must_use]
    pub fn expiry_for(&self, rung: &Rung) -> u32 {
        match rung.style {
            OrderStyle::LimitLike => self.limit_expiry_slots.min(self.expiry_slots),
            OrderStyle::Market => self.expiry_slots,
        }
    }

    /// The longest an attempt on `rung` is expected to live: its blockhash life plus the
    /// time to prove it expired.
    #[must_use]
    pub fn attempt_life(&self, rung: &Rung) -> Duration {
        self.slot_time * self.expiry_for(rung) + self.poll_interval * 2
    }

    /// The longest any attempt is expected to live.
    #[must_use]
    pub fn longest_attempt_life(&self) -> Duration {
        self.ladder
            .rungs()
            .iter()
            .map(|r| self.attempt_life(r))
            .max()
            .unwrap_or(self.slot_time * self.expiry_slots)
    }
}

/// How much to swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Exactly this input.
    Exact(TokenAmount),
    /// The wallet's whole balance of the input token, at most `cap`: a full exit quoted
    /// on the on-chain balance, so a second landing would fail for lack of funds.
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
    /// Direction.
    pub side: Side,
    /// Input amount.
    pub amount: Amount,
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
        /// What it moved, when the ledger could tell; else the quoted amounts.
        fill: Fill,
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
    /// Priority fees asked for across attempts.
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

/// The ports an execution needs.
#[derive(Clone)]
pub struct Venue {
    /// Quotes and builds swaps.
    pub router: Arc<dyn SwapRouter>,
    /// Sends and reads the chain.
    pub chain: Arc<dyn Chain>,
    /// Signs.
    pub signer: Arc<dyn Signer>,
    /// Records everything before it happens.
    pub journal: Arc<dyn Journal>,
    /// Times every call.
    pub guard: Arc<LatencyGuard>,
    /// Counts.
    pub metrics: Arc<dyn MetricsSink>,
    /// Tokio's clock.
    pub clock: Clock,
    /// Jitter for backoff.
    pub jitter: Arc<Jitter>,
}

struct Prepared {
    signed: SignedTransaction,
    amount_in: TokenAmount,
    expected_out: TokenAmount,
    expected_expiry: Timestamp,
}

enum AttemptEnd {
    Landed,
    Failed(ErrorClass),
    Expired,
    DeadlinePassed,
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
            sm: ExitStateMachine::new(),
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
        loop {
            let now = v.clock.now();
            if !deadline.is_within(now) {
                return self.fail(ExitFailure::DeadlineExceeded).await;
            }
            // Transactions are numbered by the state machine: a try whose preparation
            // failed sent nothing, so the next try keeps the same number and rung (it
            // still spends the retry budget's attempts and time).
            let Some(attempt) = self.sm.next_attempt() else {
                return self.fail(ExitFailure::Permanent(ErrorClass::Unknown)).await;
            };
            let rung = self.settings.ladder.rung(attempt);
            let grant = match budget.begin_attempt(now, self.settings.attempt_life(&rung)) {
                Ok(grant) => grant,
                Err(reason) => return self.fail(give_up_failure(reason)).await,
            };
            let resolved_failure = matches!(
                self.sm.state(),
                ExitState::Expired { .. } | ExitState::LandedFailed { .. }
            );
            if resolved_failure && rung.style == OrderStyle::Market {
                let _ = self.transition(ExitEvent::Escalate).await;
            }
            let until = grant.call_deadline.min(deadline.expires_at());
            let prepared = match self.prepare(rung, until).await {
                Ok(p) => p,
                Err(e) => {
                    self.last_error = Some(e.class);
                    tracing::warn!(intent = %self.job.intent, attempt, error = %e, "attempt could not be prepared");
                    if e.class.decision() == ErrorDecision::GiveUp {
                        return self.fail(ExitFailure::Permanent(e.class)).await;
                    }
                    match self
                        .plan_retry(&mut budget, e.classified(), &deadline)
                        .await
                    {
                        Some(failure) => return self.fail(failure).await,
                        None => continue,
                    }
                }
            };
            let record = AttemptRecord {
                intent: self.job.intent,
                attempt,
                signature: prepared.signed.signature,
                last_valid_block_height: prepared.signed.last_valid_block_height,
                slippage: rung.slippage,
                priority_fee: rung.priority_fee,
                amount_in: prepared.amount_in,
                sent_at: v.clock.now(),
            };
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
            self.priority_fees = self.priority_fees.saturating_add(rung.priority_fee);
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
                priority_fee = rung.priority_fee.get(),
                amount_in = prepared.amount_in.get(),
                last_valid_height = prepared.signed.last_valid_block_height,
                "attempt sent"
            );

            let mut end = self.track(&prepared, Some(deadline.expires_at())).await;
            if matches!(end, AttemptEnd::DeadlinePassed) {
                self.on_deadline_passed(attempt).await;
                end = self.track(&prepared, None).await;
            }
            let signature = prepared.signed.signature;
            let latency = v.clock.now().saturating_since(record.sent_at);
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
                %signature,
                outcome,
                error_class = class,
                slippage_bps = rung.slippage.bps().get(),
                priority_fee = rung.priority_fee.get(),
                latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                "attempt resolved"
            );
            match end {
                AttemptEnd::Landed => {
                    self.record_outcome(attempt, AttemptOutcome::Landed).await;
                    let _ = self.transition(ExitEvent::Landed { signature }).await;
                    let fill = self.fill(&prepared).await;
                    return ExecutionOutcome::Filled {
                        attempt,
                        signature,
                        fill,
                    };
                }
                AttemptEnd::Failed(class) => {
                    self.last_error = Some(class);
                    self.record_outcome(attempt, AttemptOutcome::Failed(class))
                        .await;
                    let _ = self
                        .transition(ExitEvent::LandedFailed { signature, class })
                        .await;
                    if self.deadline_exceeded {
                        return self.failed(ExitFailure::DeadlineExceeded);
                    }
                    if class.decision() == ErrorDecision::GiveUp {
                        return self.fail(ExitFailure::Permanent(class)).await;
                    }
                    if let Some(failure) = self
                        .plan_retry(&mut budget, ClassifiedError::new(class), &deadline)
                        .await
                    {
                        return self.fail(failure).await;
                    }
                }
                AttemptEnd::Expired => {
                    self.last_error = Some(ErrorClass::BlockhashExpired);
                    self.record_outcome(attempt, AttemptOutcome::Expired).await;
                    let _ = self
                        .transition(ExitEvent::ProvenExpired { signature })
                        .await;
                    if self.deadline_exceeded {
                        return self.failed(ExitFailure::DeadlineExceeded);
                    }
                    if let Some(failure) = self
                        .plan_retry(
                            &mut budget,
                            ClassifiedError::new(ErrorClass::BlockhashExpired),
                            &deadline,
                        )
                        .await
                    {
                        return self.fail(failure).await;
                    }
                }
                AttemptEnd::DeadlinePassed => {
                    // `track(.., None)` never returns this; treat as failed to stay total.
                    return self.failed(ExitFailure::DeadlineExceeded);
                }
            }
        }
    }

    /// Waits out the backoff before the next attempt. `Some` when there is no next one.
    async fn plan_retry(
        &mut self,
        budget: &mut RetryBudget,
        error: ClassifiedError,
        deadline: &ExitDeadline,
    ) -> Option<ExitFailure> {
        let v = self.venue;
        let now = v.clock.now();
        let next = self
            .settings
            .ladder
            .rung(self.sm.next_attempt().unwrap_or(self.sm.attempts() + 1));
        match budget.after_failure(
            now,
            error,
            self.settings.attempt_life(&next),
            v.jitter.next_u64(),
        ) {
            RetryDecision::RetryAfter(delay) => {
                if now.saturating_add(delay) >= deadline.expires_at() {
                    return Some(ExitFailure::DeadlineExceeded);
                }
                tokio::time::sleep(delay).await;
                None
            }
            RetryDecision::GiveUp(reason) => Some(give_up_failure(reason)),
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

    /// Balance (for whole-balance exits), block height, quote, build and sign: retried as
    /// one unit until `until`.
    async fn prepare(&self, rung: Rung, until: Timestamp) -> Result<Prepared, PortError> {
        let v = self.venue;
        let now = v.clock.now();
        let window = until.saturating_since(now);
        let policy = RetryPolicy {
            max_attempts: self.settings.prepare_calls.max(1),
            total_budget: window,
            initial_backoff: Duration::from_millis(200),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(2),
        };
        let max_call_time =
            Duration::from_millis(1).max(window / self.settings.prepare_calls.max(1));
        let max_call_time = max_call_time.min(window);
        retry_call(
            &v.clock,
            &v.jitter,
            policy,
            max_call_time,
            "prepare",
            || self.prepare_once(rung),
        )
        .await
    }

    async fn prepare_once(&self, rung: Rung) -> Result<Prepared, PortError> {
        let v = self.venue;
        let amount_in = match self.job.amount {
            Amount::Exact(amount) => amount,
            Amount::WholeBalance { cap } => {
                let balances = v
                    .guard
                    .call(Dependency::Chain, "chain.balances", v.chain.balances())
                    .await?;
                let held = match self.job.side {
                    Side::Sell => balances.base,
                    Side::Buy => balances.quote,
                };
                held.min(cap)
            }
        };
        if amount_in.is_zero() {
            return Err(PortError::new(
                "prepare",
                ErrorClass::InsufficientFunds,
                "nothing left to swap in the wallet",
            ));
        }
        let request = QuoteRequest {
            side: self.job.side,
            amount_in,
            slippage: rung.slippage,
        };
        let quote = v
            .guard
            .call(Dependency::Router, "router.quote", v.router.quote(&request))
            .await?;
        let expected_out = quote.expected_out;
        let expiry_slots = self.settings.expiry_for(&rung);
        let swap = SwapRequest {
            quote,
            priority_fee: rung.priority_fee,
            expiry_slots: Some(expiry_slots),
        };
        let unsigned = v
            .guard
            .call(
                Dependency::Router,
                "router.build_swap",
                v.router.build_swap(&swap),
            )
            .await?;
        let height = v
            .guard
            .call(
                Dependency::Chain,
                "chain.block_height",
                v.chain.block_height(),
            )
            .await?;
        let life_blocks = unsigned.last_valid_block_height.saturating_sub(height);
        if life_blocks > u64::from(expiry_slots) + 10 {
            tracing::warn!(
                intent = %self.job.intent,
                life_blocks,
                asked = expiry_slots,
                "router ignored the requested blockhash life; the attempt lives longer"
            );
        }
        let signed = v.signer.sign(&unsigned)?;
        let life = self.settings.slot_time * u32::try_from(life_blocks).unwrap_or(u32::MAX);
        Ok(Prepared {
            signed,
            amount_in,
            expected_out,
            expected_expiry: v.clock.now().saturating_add(life),
        })
    }

    /// Sends the attempt and follows it until it resolves or `until` passes.
    async fn track(&mut self, prepared: &Prepared, until: Option<Timestamp>) -> AttemptEnd {
        let v = self.venue;
        let s = self.settings;
        let signature = prepared.signed.signature;
        let lvh = prepared.signed.last_valid_block_height;
        let sent_at = v.clock.now();
        let confirm_at = sent_at.saturating_add(s.confirm_timeout);
        let mut next_send = sent_at;
        let mut first_send = true;
        let mut marked_timeout = !matches!(self.sm.state(), ExitState::Submitted { .. });
        loop {
            let now = v.clock.now();
            if now >= next_send {
                let result = v
                    .guard
                    .call_within(
                        Dependency::Chain,
                        "chain.send",
                        s.send_timeout,
                        v.chain.send(&prepared.signed),
                    )
                    .await;
                next_send = v.clock.now().saturating_add(s.rebroadcast_interval);
                if let Err(e) = result {
                    if first_send && !e.class.may_still_land() {
                        // Refused before it was forwarded: nobody else holds these bytes.
                        tracing::warn!(intent = %self.job.intent, %signature, error = %e, "send refused");
                        return AttemptEnd::Failed(e.class);
                    }
                    if let Some(wait) = e.retry_after {
                        next_send = v.clock.now().saturating_add(wait);
                    }
                    tracing::debug!(intent = %self.job.intent, %signature, error = %e, "send failed; the attempt may still land");
                }
                first_send = false;
            }
            let mut wake = v.clock.now().saturating_add(s.poll_interval);
            if let Some(until) = until {
                wake = wake.min(until);
            }
            v.clock.sleep_until(wake).await;
            let now = v.clock.now();

            if let Ok(statuses) = v
                .guard
                .call(
                    Dependency::Chain,
                    "chain.statuses",
                    v.chain.statuses(&[signature], StatusLookup::Recent),
                )
                .await
                && let Some(end) = landed(statuses.first().copied().flatten(), s.commitment)
            {
                return end;
            }
            if !marked_timeout && now >= confirm_at {
                marked_timeout = true;
                let _ = self.transition(ExitEvent::ConfirmTimedOut).await;
            }
            if now >= prepared.expected_expiry
                && let Some(end) = self.check_expired(signature, lvh).await
            {
                return end;
            }
            if until.is_some_and(|until| v.clock.now() >= until) {
                return AttemptEnd::DeadlinePassed;
            }
        }
    }

    /// Proves expiry: block height past the last valid height, then a status look-up
    /// with history that finds nothing.
    async fn check_expired(&self, signature: TxSignature, lvh: u64) -> Option<AttemptEnd> {
        let v = self.venue;
        let height = v
            .guard
            .call(
                Dependency::Chain,
                "chain.block_height",
                v.chain.block_height(),
            )
            .await
            .ok()?;
        if height <= lvh {
            return None;
        }
        let statuses = v
            .guard
            .call(
                Dependency::Chain,
                "chain.statuses",
                v.chain.statuses(&[signature], StatusLookup::WithHistory),
            )
            .await
            .ok()?;
        match statuses.first().copied().flatten() {
            None => Some(AttemptEnd::Expired),
            Some(status) => landed(Some(status), self.settings.commitment),
        }
    }

    async fn fill(&self, prepared: &Prepared) -> Fill {
        let v = self.venue;
        let fetched = retry_call(
            &v.clock,
            &v.jitter,
            RetryPolicy {
                max_attempts: 3,
                total_budget: Duration::from_secs(6),
                initial_backoff: Duration::from_millis(300),
                multiplier: 2.0,
                max_backoff: Duration::from_secs(1),
            },
            Duration::from_secs(2),
            "chain.fill",
            || {
                v.guard.call(
                    Dependency::Chain,
                    "chain.fill",
                    v.chain.fill(prepared.signed.signature, self.job.side),
                )
            },
        )
        .await;
        match fetched {
            Ok(Some(fill)) => fill,
            other => {
                tracing::warn!(intent = %self.job.intent, result = ?other.map(|_| ()), "fill not readable; using the quoted amounts");
                Fill {
                    amount_in: prepared.amount_in,
                    amount_out: prepared.expected_out,
                    fee: Lamports::new(0),
                }
            }
        }
    }
}

fn landed(status: Option<TxStatus>, commitment: Commitment) -> Option<AttemptEnd> {
    let status = status?;
    if status.commitment < commitment {
        return None;
    }
    Some(match status.error {
        None => AttemptEnd::Landed,
        Some(class) => AttemptEnd::Failed(class),
    })
}

fn give_up_failure(reason: GiveUpReason) -> ExitFailure {
    match reason {
        GiveUpReason::NotRetryable(class) => ExitFailure::Permanent(class),
        GiveUpReason::AttemptsExhausted { .. } => ExitFailure::AttemptsExhausted,
        // The retry budget ran out before the deadline: no time for another attempt.
        GiveUpReason::BudgetExhausted { .. } => ExitFailure::AttemptsExhausted,
    }
}
