//! The exit state machine of one exit intent: which events are valid in which state, a
//! timestamped audit trail, and the attempt that may still land, so that a new
//! transaction is never built while an earlier one can still land.

use core::fmt;

use crate::error::ErrorClass;
use crate::types::{ExitKind, Timestamp, TxSignature};

/// Where the exit of a position stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitState {
    /// The position is open; no exit is wanted yet.
    PositionOpen,
    /// An exit is wanted; nothing is sent yet.
    ExitSignalReceived { kind: ExitKind },
    /// Attempt `attempt` was sent and awaits confirmation.
    Submitted {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Its transaction.
        signature: TxSignature,
    },
    /// The confirmation wait elapsed; the transaction MAY STILL LAND.
    TimedOut {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Its transaction, still live.
        signature: TxSignature,
    },
    /// The transaction is proven unable to land (block height past its last valid
    /// height, no status).
    Expired {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Its transaction.
        signature: TxSignature,
    },
    /// The transaction landed with an error: resolved, nothing moved.
    LandedFailed {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Its transaction.
        signature: TxSignature,
        /// The on-chain failure's class.
        class: ErrorClass,
    },
    /// Switching to a wider rung for the next attempt.
    EmergencyEscalation {
        /// The number the next attempt must carry.
        next_attempt: u32,
    },
    /// The exit landed: the position is closed. Terminal.
    PositionClosed {
        /// The attempt that landed.
        attempt: u32,
        /// Its transaction.
        signature: TxSignature,
    },
    /// The exit gave up; a live attempt, if any, is still tracked and may close the
    /// position by landing late.
    ExitFailed {
        /// Why it gave up.
        reason: ExitFailure,
    },
}

impl ExitState {
    /// A stable snake_case name for logs, metrics and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitState::PositionOpen => "position_open",
            ExitState::ExitSignalReceived { .. } => "exit_signal_received",
            ExitState::Submitted { .. } => "submitted",
            ExitState::TimedOut { .. } => "timed_out",
            ExitState::Expired { .. } => "expired",
            ExitState::LandedFailed { .. } => "landed_failed",
            ExitState::EmergencyEscalation { .. } => "emergency_escalation",
            ExitState::PositionClosed { .. } => "position_closed",
            ExitState::ExitFailed { .. } => "exit_failed",
        }
    }
}

impl fmt::Display for ExitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an exit gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitFailure {
    /// The exit window closed.
    DeadlineExceeded,
    /// Every allowed attempt failed.
    AttemptsExhausted,
    /// A failure no attempt can fix.
    Permanent(ErrorClass),
    /// Trading was halted.
    Halted,
}

impl ExitFailure {
    /// A stable snake_case name for logs, metrics and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitFailure::DeadlineExceeded => "deadline_exceeded",
            ExitFailure::AttemptsExhausted => "attempts_exhausted",
            ExitFailure::Permanent(_) => "permanent",
            ExitFailure::Halted => "halted",
        }
    }
}

impl fmt::Display for ExitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitFailure::Permanent(class) => write!(f, "permanent ({class})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Something that happened to an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitEvent {
    /// An exit was asked for.
    Signal { kind: ExitKind },
    /// Attempt `attempt` is being sent.
    Submit {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Its transaction.
        signature: TxSignature,
        /// The block height after which it can no longer land.
        last_valid_height: u64,
    },
    /// Attempt `attempt` is being sent beside the live ones, on the same durable nonce
    /// value: the chain lets at most one of them land, so they may all be in flight.
    /// Accepted only by a machine on a durable nonce ([`ExitStateMachine::on_durable_nonce`]).
    SubmitBeside {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Its transaction.
        signature: TxSignature,
    },
    /// The confirmation wait of the current attempt elapsed without an answer.
    ConfirmTimedOut,
    /// The transaction is proven unable to land.
    ProvenExpired {
        /// The transaction.
        signature: TxSignature,
    },
    /// The transaction landed with an error.
    LandedFailed {
        /// The transaction.
        signature: TxSignature,
        /// The on-chain failure's class.
        class: ErrorClass,
    },
    /// The transaction landed and succeeded.
    Landed {
        /// The transaction.
        signature: TxSignature,
    },
    /// Move to a wider rung for the next attempt.
    Escalate,
    /// Give up.
    Fail { reason: ExitFailure },
}

impl ExitEvent {
    /// A stable snake_case name for logs, metrics and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitEvent::Signal { .. } => "signal",
            ExitEvent::Submit { .. } => "submit",
            ExitEvent::SubmitBeside { .. } => "submit_beside",
            ExitEvent::ConfirmTimedOut => "confirm_timed_out",
            ExitEvent::ProvenExpired { .. } => "proven_expired",
            ExitEvent::LandedFailed { .. } => "landed_failed",
            ExitEvent::Landed { .. } => "landed",
            ExitEvent::Escalate => "escalate",
            ExitEvent::Fail { .. } => "fail",
        }
    }
}

impl fmt::Display for ExitEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sent transaction that may still land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveAttempt {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// Its transaction.
    pub signature: TxSignature,
    /// The block height after which it can no longer land.
    pub last_valid_height: u64,
}

/// One accepted event: an entry of the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When it was applied, on the caller's clock.
    pub at: Timestamp,
    /// The state before.
    pub from: ExitState,
    /// The state after.
    pub to: ExitState,
    /// The event.
    pub event: ExitEvent,
}

/// An event the machine refused; its state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    /// The state the event was refused in.
    pub from: ExitState,
    /// The refused event.
    pub event: ExitEvent,
    /// Why it was refused.
    pub why: Refusal,
}

/// Why the machine refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An exit signal is accepted only while the position is open.
    SignalWhenNotOpen,
    /// An earlier attempt can still land.
    EarlierAttemptLive,
    /// No attempt may be submitted in this state.
    NothingToSubmit,
    /// Attempt number out of sequence.
    OutOfSequence,
    /// Only a submitted attempt can time out.
    NothingToTimeOut,
    /// No attempt awaits an outcome in this state.
    NoOutcomeAwaited,
    /// Attempt numbers are exhausted.
    AttemptNumbersExhausted,
    /// Only a resolved failed attempt can be escalated.
    NothingToEscalate,
    /// The exit has already ended.
    AlreadyEnded,
    /// The signature is not a live attempt.
    NotLive,
    /// Only a machine on a durable nonce sends an attempt beside a live one.
    NotOnDurableNonce,
}

impl Refusal {
    /// The refusal in words.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::SignalWhenNotOpen => {
                "an exit signal is accepted only while the position is open"
            }
            Refusal::EarlierAttemptLive => "an earlier attempt can still land",
            Refusal::NothingToSubmit => "no attempt may be submitted in this state",
            Refusal::OutOfSequence => "attempt number out of sequence",
            Refusal::NothingToTimeOut => "only a submitted attempt can time out",
            Refusal::NoOutcomeAwaited => "no attempt awaits an outcome in this state",
            Refusal::AttemptNumbersExhausted => "attempt numbers are exhausted",
            Refusal::NothingToEscalate => "only a resolved failed attempt can be escalated",
            Refusal::AlreadyEnded => "the exit has already ended",
            Refusal::NotLive => "the signature is not a live attempt",
            Refusal::NotOnDurableNonce => {
                "an attempt beside a live one needs a durable nonce making them exclusive"
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid exit transition: {} in state {}: {}",
            self.event, self.from, self.why
        )
    }
}

impl std::error::Error for InvalidTransition {}

/// The exit state machine of one exit intent of a position.
///
/// Invariant: at most one transaction that may still land (see
/// [`ExitStateMachine::live`]), and a `Submit` is accepted only when there is none. On a
/// durable nonce ([`ExitStateMachine::on_durable_nonce`]) the caller builds every live
/// attempt on one nonce value, which the chain lets land at most once: then several may
/// be live, the later ones sent with `SubmitBeside`.
///
/// Accepted events (every other one is refused and changes nothing):
/// - `Signal` in `PositionOpen`, to `ExitSignalReceived`.
/// - `Submit { attempt: k }` with no live attempt, in `ExitSignalReceived` (k = 1),
///   `Expired` or `LandedFailed` (k = last + 1) or `EmergencyEscalation` (k = its
///   `next_attempt`), to `Submitted`; the attempt becomes live.
/// - `SubmitBeside { attempt: k }` on a durable nonce, in `Submitted` or `TimedOut` with
///   k = the highest so far + 1, to `Submitted`; the attempt joins the live ones.
/// - `ConfirmTimedOut` in `Submitted`, to `TimedOut` (the attempt stays live).
/// - `ProvenExpired` / `LandedFailed` of the live signature in `Submitted` or `TimedOut`,
///   to `Expired` / `LandedFailed`; in `ExitFailed` the state stays. Either way the
///   attempt is no longer live. While other attempts stay live, the state becomes (or
///   stays) `Submitted` of the newest of them.
/// - `Landed` of a live signature, in any state (a late landing after `ExitFailed`
///   still closes the position), to `PositionClosed`; no attempt is live any more (on a
///   durable nonce the landing used up the value the others carry).
/// - `Escalate` in `Expired` or `LandedFailed`, to `EmergencyEscalation`.
/// - `Fail` in any state but `PositionClosed` and `ExitFailed`, to `ExitFailed`; a live
///   attempt stays live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStateMachine {
    state: ExitState,
    history: Vec<Transition>,
    live: Vec<LiveAttempt>,
    attempts: u32,
    durable_nonce: bool,
}

impl ExitStateMachine {
    /// A machine for an open position, with an empty history.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: ExitState::PositionOpen,
            history: Vec::new(),
            live: Vec::new(),
            attempts: 0,
            durable_nonce: false,
        }
    }

    /// A machine for an open position whose attempts are all built on one durable
    /// nonce value at a time (the caller's promise): it also accepts `SubmitBeside`.
    #[must_use]
    pub fn on_durable_nonce() -> Self {
        Self {
            durable_nonce: true,
            ..Self::new()
        }
    }

    /// Applies `event` at `now`, recording the transition in the history.
    ///
    /// # Errors
    /// [`InvalidTransition`] for an event the current state does not accept (see the
    /// rules on [`ExitStateMachine`]); the state, history and live attempt are then
    /// unchanged.
    #[expect(
        clippy::result_large_err,
        reason = "the refusal carries the state and event by value for the audit log; it is Copy, rare and needs no allocation"
    )]
    pub fn apply(
        &mut self,
        now: Timestamp,
        event: ExitEvent,
    ) -> Result<ExitState, InvalidTransition> {
        let (to, live) = self.next(event).map_err(|why| InvalidTransition {
            from: self.state,
            event,
            why,
        })?;
        self.history.push(Transition {
            at: now,
            from: self.state,
            to,
            event,
        });
        if let ExitEvent::Submit { attempt, .. } | ExitEvent::SubmitBeside { attempt, .. } = event {
            self.attempts = self.attempts.max(attempt);
        }
        self.state = to;
        self.live = live;
        Ok(to)
    }

    /// The state and live attempt `event` leads to, or why it is refused.
    fn next(&self, event: ExitEvent) -> Result<(ExitState, Vec<LiveAttempt>), Refusal> {
        use ExitState as S;
        match event {
            ExitEvent::Signal { kind } => match self.state {
                S::PositionOpen => Ok((S::ExitSignalReceived { kind }, Vec::new())),
                _ => Err(Refusal::SignalWhenNotOpen),
            },
            ExitEvent::Submit {
                attempt,
                signature,
                last_valid_height,
            } => {
                if !self.live.is_empty() {
                    return Err(Refusal::EarlierAttemptLive);
                }
                let Some(expected) = self.next_attempt() else {
                    return Err(Refusal::NothingToSubmit);
                };
                if attempt != expected {
                    return Err(Refusal::OutOfSequence);
                }
                let live = LiveAttempt {
                    attempt,
                    signature,
                    last_valid_height,
                };
                Ok((S::Submitted { attempt, signature }, vec![live]))
            }
            ExitEvent::SubmitBeside { attempt, signature } => {
                if !self.durable_nonce {
                    return Err(Refusal::NotOnDurableNonce);
                }
                let Some(expected) = self.next_beside() else {
                    return Err(Refusal::NothingToSubmit);
                };
                if attempt != expected {
                    return Err(Refusal::OutOfSequence);
                }
                let mut live = self.live.clone();
                live.push(LiveAttempt {
                    attempt,
                    signature,
                    last_valid_height: u64::MAX,
                });
                Ok((S::Submitted { attempt, signature }, live))
            }
            ExitEvent::ConfirmTimedOut => match self.state {
                S::Submitted { attempt, signature } => {
                    Ok((S::TimedOut { attempt, signature }, self.live.clone()))
                }
                _ => Err(Refusal::NothingToTimeOut),
            },
            ExitEvent::ProvenExpired { signature } => {
                let live = self.live_attempt(signature)?;
                self.resolved(
                    live,
                    S::Expired {
                        attempt: live.attempt,
                        signature,
                    },
                )
            }
            ExitEvent::LandedFailed { signature, class } => {
                let live = self.live_attempt(signature)?;
                self.resolved(
                    live,
                    S::LandedFailed {
                        attempt: live.attempt,
                        signature,
                        class,
                    },
                )
            }
            ExitEvent::Landed { signature } => {
                let live = self.live_attempt(signature)?;
                Ok((
                    S::PositionClosed {
                        attempt: live.attempt,
                        signature,
                    },
                    Vec::new(),
                ))
            }
            ExitEvent::Escalate => match self.state {
                S::Expired { attempt, .. } | S::LandedFailed { attempt, .. } => {
                    match attempt.checked_add(1) {
                        Some(next_attempt) => {
                            Ok((S::EmergencyEscalation { next_attempt }, Vec::new()))
                        }
                        None => Err(Refusal::AttemptNumbersExhausted),
                    }
                }
                _ => Err(Refusal::NothingToEscalate),
            },
            ExitEvent::Fail { reason } => match self.state {
                S::PositionClosed { .. } | S::ExitFailed { .. } => Err(Refusal::AlreadyEnded),
                _ => Ok((S::ExitFailed { reason }, self.live.clone())),
            },
        }
    }

    /// Where the resolution of live attempt `live` without a landing leads: `alone`
    /// when it was the only one; `Submitted` of the newest other while others live.
    fn resolved(
        &self,
        live: LiveAttempt,
        alone: ExitState,
    ) -> Result<(ExitState, Vec<LiveAttempt>), Refusal> {
        use ExitState as S;
        let rest: Vec<LiveAttempt> = self
            .live
            .iter()
            .copied()
            .filter(|l| l.signature != live.signature)
            .collect();
        match self.state {
            S::ExitFailed { .. } => Ok((self.state, rest)),
            S::Submitted { .. } | S::TimedOut { .. } => match rest.iter().max_by_key(|l| l.attempt)
            {
                None => Ok((alone, rest)),
                Some(newest) => Ok((
                    S::Submitted {
                        attempt: newest.attempt,
                        signature: newest.signature,
                    },
                    rest,
                )),
            },
            _ => Err(Refusal::NoOutcomeAwaited),
        }
    }

    /// The live attempt whose signature is `signature`.
    fn live_attempt(&self, signature: TxSignature) -> Result<LiveAttempt, Refusal> {
        self.live
            .iter()
            .copied()
            .find(|l| l.signature == signature)
            .ok_or(Refusal::NotLive)
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> ExitState {
        self.state
    }

    /// Every accepted event, oldest first: the audit trail.
    #[must_use]
    pub fn history(&self) -> &[Transition] {
        &self.history
    }

    /// The transactions that may still land (never more than one, but on a durable
    /// nonce, where the chain lets at most one of them land).
    #[must_use]
    pub fn live(&self) -> &[LiveAttempt] {
        &self.live
    }

    /// The attempt number a `Submit` must carry now, or `None` when no `Submit` would be
    /// accepted (an attempt is live, or the state does not allow one).
    #[must_use]
    pub fn next_attempt(&self) -> Option<u32> {
        if !self.live.is_empty() {
            return None;
        }
        match self.state {
            ExitState::ExitSignalReceived { .. } => Some(1),
            ExitState::Expired { attempt, .. } | ExitState::LandedFailed { attempt, .. } => {
                attempt.checked_add(1)
            }
            ExitState::EmergencyEscalation { next_attempt } => Some(next_attempt),
            _ => None,
        }
    }

    /// The attempt number a `SubmitBeside` must carry now, or `None` when none would be
    /// accepted (not on a durable nonce, nothing live to send beside, or ended).
    #[must_use]
    pub fn next_beside(&self) -> Option<u32> {
        if !self.durable_nonce || self.live.is_empty() {
            return None;
        }
        match self.state {
            ExitState::Submitted { .. } | ExitState::TimedOut { .. } => {
                self.attempts.checked_add(1)
            }
            _ => None,
        }
    }

    /// Whether a `Submit` (with [`ExitStateMachine::next_attempt`]) would be accepted now.
    #[must_use]
    pub fn can_submit(&self) -> bool {
        self.next_attempt().is_some()
    }

    /// The highest attempt number submitted so far (0 before the first).
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether nothing more can happen: the position is closed, or the exit failed with
    /// no attempt left that could land.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        match self.state {
            ExitState::PositionClosed { .. } => true,
            ExitState::ExitFailed { .. } => self.live.is_empty(),
            _ => false,
        }
    }
}

impl Default for ExitStateMachine {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sig(n: u8) -> TxSignature {
        TxSignature([n; 64])
    }

    fn at(step: usize) -> Timestamp {
        Timestamp::from_millis(1_000 + 100 * step as u64)
    }

    const SIGNAL: ExitEvent = ExitEvent::Signal {
        kind: ExitKind::StopLoss,
    };

    fn submit(attempt: u32, n: u8) -> ExitEvent {
        ExitEvent::Submit {
            attempt,
            signature: sig(n),
            last_valid_height: 1_000 + u64::from(attempt),
        }
    }

    fn expired(n: u8) -> ExitEvent {
        ExitEvent::ProvenExpired { signature: sig(n) }
    }

    fn landed(n: u8) -> ExitEvent {
        ExitEvent::Landed { signature: sig(n) }
    }

    fn landed_failed(n: u8) -> ExitEvent {
        ExitEvent::LandedFailed {
            signature: sig(n),
            class: ErrorClass::SlippageExceeded,
        }
    }

    fn fail(reason: ExitFailure) -> ExitEvent {
        ExitEvent::Fail { reason }
    }

    /// A machine that accepted every event of `events`, one 100 ms apart.
    fn machine_after(events: &[ExitEvent]) -> ExitStateMachine {
        let mut m = ExitStateMachine::new();
        for (i, e) in events.iter().enumerate() {
            if let Err(err) = m.apply(at(i), *e) {
                panic!("setup event {i} refused: {err}");
            }
        }
        m
    }

    /// Applies `event` after `setup`; on refusal, checks nothing changed.
    fn check(setup: &[ExitEvent], event: ExitEvent) -> Result<ExitState, &'static str> {
        let mut m = machine_after(setup);
        let before = m.clone();
        let result = m.apply(at(setup.len()), event);
        match result {
            Ok(state) => {
                assert_eq!(m.history().len(), setup.len() + 1);
                Ok(state)
            }
            Err(err) => {
                assert_eq!(m, before, "a refused event changed the machine");
                assert_eq!(err.from, before.state());
                assert_eq!(err.event, event);
                Err(err.why.as_str())
            }
        }
    }

    const LIVE: &str = "an earlier attempt can still land";

    /// A case of the transition table: name, accepted setup events, event, outcome.
    type Case = (
        &'static str,
        Vec<ExitEvent>,
        ExitEvent,
        Result<ExitState, &'static str>,
    );

    #[test]
    fn transition_table() {
        use ExitState as S;
        let failed = |reason| S::ExitFailed { reason };
        let cases: Vec<Case> = vec![
            (
                "signal from open",
                vec![],
                SIGNAL,
                Ok(S::ExitSignalReceived {
                    kind: ExitKind::StopLoss,
                }),
            ),
            (
                "second signal",
                vec![SIGNAL],
                SIGNAL,
                Err("an exit signal is accepted only while the position is open"),
            ),
            (
                "submit before signal",
                vec![],
                submit(1, 1),
                Err("no attempt may be submitted in this state"),
            ),
            (
                "first submit",
                vec![SIGNAL],
                submit(1, 1),
                Ok(S::Submitted {
                    attempt: 1,
                    signature: sig(1),
                }),
            ),
            (
                "first submit numbered 2",
                vec![SIGNAL],
                submit(2, 1),
                Err("attempt number out of sequence"),
            ),
            (
                "first submit numbered 0",
                vec![SIGNAL],
                submit(0, 1),
                Err("attempt number out of sequence"),
            ),
            (
                "submit while submitted",
                vec![SIGNAL, submit(1, 1)],
                submit(2, 2),
                Err(LIVE),
            ),
            (
                "submit while timed out",
                vec![SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut],
                submit(2, 2),
                Err(LIVE),
            ),
            (
                "timeout keeps the attempt",
                vec![SIGNAL, submit(1, 1)],
                ExitEvent::ConfirmTimedOut,
                Ok(S::TimedOut {
                    attempt: 1,
                    signature: sig(1),
                }),
            ),
            (
                "second timeout",
                vec![SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut],
                ExitEvent::ConfirmTimedOut,
                Err("only a submitted attempt can time out"),
            ),
            (
                "expiry of another signature",
                vec![SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut],
                expired(9),
                Err("the signature is not a live attempt"),
            ),
            (
                "expiry after timeout",
                vec![SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut],
                expired(1),
                Ok(S::Expired {
                    attempt: 1,
                    signature: sig(1),
                }),
            ),
            (
                "submit after proven expiry",
                vec![SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut, expired(1)],
                submit(2, 2),
                Ok(S::Submitted {
                    attempt: 2,
                    signature: sig(2),
                }),
            ),
            (
                "submit skipping a number after expiry",
                vec![SIGNAL, submit(1, 1), expired(1)],
                submit(3, 2),
                Err("attempt number out of sequence"),
            ),
            (
                "landed failed",
                vec![SIGNAL, submit(1, 1)],
                landed_failed(1),
                Ok(S::LandedFailed {
                    attempt: 1,
                    signature: sig(1),
                    class: ErrorClass::SlippageExceeded,
                }),
            ),
            (
                "escalate after landed failed",
                vec![SIGNAL, submit(1, 1), landed_failed(1)],
                ExitEvent::Escalate,
                Ok(S::EmergencyEscalation { next_attempt: 2 }),
            ),
            (
                "escalate while submitted",
                vec![SIGNAL, submit(1, 1)],
                ExitEvent::Escalate,
                Err("only a resolved failed attempt can be escalated"),
            ),
            (
                "submit off-number after escalation",
                vec![SIGNAL, submit(1, 1), expired(1), ExitEvent::Escalate],
                submit(3, 2),
                Err("attempt number out of sequence"),
            ),
            (
                "landed while submitted",
                vec![SIGNAL, submit(1, 1)],
                landed(1),
                Ok(S::PositionClosed {
                    attempt: 1,
                    signature: sig(1),
                }),
            ),
            (
                "landing of an expired attempt",
                vec![SIGNAL, submit(1, 1), expired(1)],
                landed(1),
                Err("the signature is not a live attempt"),
            ),
            (
                "closed to submitted",
                vec![SIGNAL, submit(1, 1), landed(1)],
                submit(2, 2),
                Err("no attempt may be submitted in this state"),
            ),
            (
                "fail after close",
                vec![SIGNAL, submit(1, 1), landed(1)],
                fail(ExitFailure::Halted),
                Err("the exit has already ended"),
            ),
            (
                "fail before signal",
                vec![],
                fail(ExitFailure::Halted),
                Ok(failed(ExitFailure::Halted)),
            ),
            (
                "fail twice",
                vec![SIGNAL, fail(ExitFailure::AttemptsExhausted)],
                fail(ExitFailure::Halted),
                Err("the exit has already ended"),
            ),
            (
                "submit after halt",
                vec![SIGNAL, fail(ExitFailure::Halted)],
                submit(1, 1),
                Err("no attempt may be submitted in this state"),
            ),
            (
                "expiry of a live attempt after failure",
                vec![SIGNAL, submit(1, 1), fail(ExitFailure::DeadlineExceeded)],
                expired(1),
                Ok(failed(ExitFailure::DeadlineExceeded)),
            ),
            (
                "failed landing of a live attempt after failure",
                vec![SIGNAL, submit(1, 1), fail(ExitFailure::Halted)],
                landed_failed(1),
                Ok(failed(ExitFailure::Halted)),
            ),
            (
                "expiry after failure without a live attempt",
                vec![
                    SIGNAL,
                    submit(1, 1),
                    expired(1),
                    fail(ExitFailure::AttemptsExhausted),
                ],
                expired(1),
                Err("the signature is not a live attempt"),
            ),
        ];
        for (name, setup, event, want) in cases {
            assert_eq!(check(&setup, event), want, "{name}");
        }
    }

    /// Seed 5.2: the first attempt is recorded and does not halt anything.
    #[test]
    fn first_attempt_is_recorded_as_live() {
        let m = machine_after(&[SIGNAL, submit(1, 1)]);
        assert_eq!(m.attempts(), 1);
        assert_eq!(
            m.live(),
            [LiveAttempt {
                attempt: 1,
                signature: sig(1),
                last_valid_height: 1_001
            }]
        );
        assert!(!m.can_submit());
        assert!(!m.is_terminal());
    }

    /// Seed 5.2, made safe: a second attempt only once the first is proven expired.
    #[test]
    fn second_attempt_allowed_only_after_the_first_is_proven_expired() {
        let mut m = machine_after(&[SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut]);
        assert_eq!(m.next_attempt(), None);
        assert!(m.apply(at(3), submit(2, 2)).is_err());
        m.apply(at(4), expired(1)).unwrap();
        assert!(m.live().is_empty());
        assert_eq!(m.next_attempt(), Some(2));
        assert!(m.can_submit());
        assert_eq!(
            m.apply(at(5), submit(2, 2)),
            Ok(ExitState::Submitted {
                attempt: 2,
                signature: sig(2)
            })
        );
        assert_eq!(m.attempts(), 2);
    }

    /// Seed 5.2: after the last attempt fails the exit halts and accepts no more attempts.
    #[test]
    fn no_attempts_after_emergency_halt() {
        let mut m = machine_after(&[
            SIGNAL,
            submit(1, 1),
            expired(1),
            ExitEvent::Escalate,
            submit(2, 2),
            landed_failed(2),
            fail(ExitFailure::AttemptsExhausted),
        ]);
        assert_eq!(
            m.state(),
            ExitState::ExitFailed {
                reason: ExitFailure::AttemptsExhausted
            }
        );
        assert!(m.is_terminal());
        assert!(!m.can_submit());
        for attempt in 0..5 {
            assert!(
                m.apply(at(9), submit(attempt, 3)).is_err(),
                "attempt {attempt}"
            );
        }
    }

    /// Seed 5.3: history records every accepted event with its time, and only those.
    #[test]
    fn history_records_each_accepted_transition_with_its_time() {
        let mut m = ExitStateMachine::default();
        assert!(m.history().is_empty());
        m.apply(Timestamp::from_millis(5), SIGNAL).unwrap();
        assert!(m.apply(Timestamp::from_millis(6), SIGNAL).is_err());
        m.apply(Timestamp::from_millis(7), submit(1, 1)).unwrap();
        let signalled = ExitState::ExitSignalReceived {
            kind: ExitKind::StopLoss,
        };
        assert_eq!(
            m.history(),
            [
                Transition {
                    at: Timestamp::from_millis(5),
                    from: ExitState::PositionOpen,
                    to: signalled,
                    event: SIGNAL
                },
                Transition {
                    at: Timestamp::from_millis(7),
                    from: signalled,
                    to: ExitState::Submitted {
                        attempt: 1,
                        signature: sig(1)
                    },
                    event: submit(1, 1),
                },
            ]
        );
    }

    /// Seed 5.3's deadline test, done right: the caller fails the exit at the deadline,
    /// the live attempt stays tracked, and its late landing still closes the position.
    #[test]
    fn late_landing_after_deadline_failure_closes_the_position() {
        let mut m = machine_after(&[SIGNAL, submit(1, 1), ExitEvent::ConfirmTimedOut]);
        let state = m.apply(at(3), fail(ExitFailure::DeadlineExceeded)).unwrap();
        assert_eq!(
            state,
            ExitState::ExitFailed {
                reason: ExitFailure::DeadlineExceeded
            }
        );
        assert_eq!(m.live().len(), 1);
        assert!(!m.is_terminal(), "a live attempt may still land");
        assert!(!m.can_submit());
        assert_eq!(
            m.apply(at(4), landed(1)),
            Ok(ExitState::PositionClosed {
                attempt: 1,
                signature: sig(1)
            })
        );
        assert!(m.live().is_empty());
        assert!(m.is_terminal());
    }

    #[test]
    fn five_attempt_run_numbers_attempts_in_sequence_and_closes_on_the_fifth() {
        let mut events = vec![SIGNAL];
        for k in 1..=4u8 {
            events.push(submit(u32::from(k), k));
            events.push(ExitEvent::ConfirmTimedOut);
            events.push(if k % 2 == 0 {
                landed_failed(k)
            } else {
                expired(k)
            });
            events.push(ExitEvent::Escalate);
        }
        events.push(submit(5, 5));
        let mut m = machine_after(&events);
        assert_eq!(
            m.state(),
            ExitState::Submitted {
                attempt: 5,
                signature: sig(5)
            }
        );
        assert_eq!(m.attempts(), 5);
        assert_eq!(
            m.apply(at(99), landed(5)),
            Ok(ExitState::PositionClosed {
                attempt: 5,
                signature: sig(5)
            })
        );
        assert_eq!(m.history().len(), events.len() + 1);
        let submits: Vec<u32> = m
            .history()
            .iter()
            .filter_map(|t| match t.event {
                ExitEvent::Submit { attempt, .. } => Some(attempt),
                _ => None,
            })
            .collect();
        assert_eq!(submits, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn position_closed_refuses_every_event() {
        let mut m = machine_after(&[SIGNAL, submit(1, 1), landed(1)]);
        let before = m.clone();
        let events = [
            SIGNAL,
            submit(1, 2),
            submit(2, 2),
            ExitEvent::ConfirmTimedOut,
            expired(1),
            landed_failed(1),
            landed(1),
            ExitEvent::Escalate,
            fail(ExitFailure::Halted),
        ];
        for e in events {
            assert!(m.apply(at(9), e).is_err(), "{e:?} accepted after close");
        }
        assert_eq!(m, before);
    }

    #[test]
    fn refusal_explains_itself() {
        let err = ExitStateMachine::new().apply(at(0), landed(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid exit transition: landed in state position_open: the signature is not a live attempt"
        );
    }

    /// Random events, weighted so that runs get deep (rarely a `Fail` or a `Signal`).
    fn arb_event() -> impl Strategy<Value = ExitEvent> {
        let s = (0u8..3).prop_map(sig);
        let class = proptest::sample::select(ErrorClass::ALL.to_vec());
        let reason = prop_oneof![
            Just(ExitFailure::DeadlineExceeded),
            Just(ExitFailure::AttemptsExhausted),
            Just(ExitFailure::Halted),
            class.clone().prop_map(ExitFailure::Permanent),
        ];
        prop_oneof![
            4 => proptest::sample::select(ExitKind::ALL.to_vec())
                .prop_map(|kind| ExitEvent::Signal { kind }),
            6 => (0u32..7, s.clone(), any::<u64>()).prop_map(
                |(attempt, signature, last_valid_height)| {
                    ExitEvent::Submit {
                        attempt,
                        signature,
                        last_valid_height,
                    }
                }
            ),
            2 => Just(ExitEvent::ConfirmTimedOut),
            3 => s.clone()
                .prop_map(|signature| ExitEvent::ProvenExpired { signature }),
            2 => (s.clone(), class)
                .prop_map(|(signature, class)| ExitEvent::LandedFailed { signature, class }),
            1 => s.prop_map(|signature| ExitEvent::Landed { signature }),
            3 => Just(ExitEvent::Escalate),
            1 => reason.prop_map(|reason| ExitEvent::Fail { reason }),
        ]
    }

    /// Points a random event at the machine's own sequence (the attempt after the
    /// highest submitted, the live signature), so that it is more often accepted.
    fn aimed(m: &ExitStateMachine, event: ExitEvent) -> ExitEvent {
        let live = |signature| m.live().first().map_or(signature, |l| l.signature);
        match event {
            ExitEvent::Submit {
                signature,
                last_valid_height,
                ..
            } => ExitEvent::Submit {
                attempt: m.attempts().saturating_add(1),
                signature,
                last_valid_height,
            },
            ExitEvent::ProvenExpired { signature } => ExitEvent::ProvenExpired {
                signature: live(signature),
            },
            ExitEvent::LandedFailed { signature, class } => ExitEvent::LandedFailed {
                signature: live(signature),
                class,
            },
            ExitEvent::Landed { signature } => ExitEvent::Landed {
                signature: live(signature),
            },
            other => other,
        }
    }

    proptest! {
        #[test]
        fn random_event_sequences_keep_every_invariant(
            events in proptest::collection::vec((arb_event(), proptest::bool::weighted(0.7)), 0..60)
        ) {
            let mut m = ExitStateMachine::new();
            for (i, (event, aim)) in events.into_iter().enumerate() {
                let event = if aim { aimed(&m, event) } else { event };
                let before = m.clone();
                match m.apply(at(i), event) {
                    Ok(state) => {
                        prop_assert_eq!(m.state(), state);
                        prop_assert_eq!(m.history().len(), before.history().len() + 1);
                        prop_assert_eq!(m.history().last().map(|t| (t.from, t.to, t.event)), Some((before.state(), state, event)));
                        if let ExitEvent::Submit { .. } = event {
                            prop_assert!(before.live().is_empty(), "submit accepted with a live attempt");
                            prop_assert_eq!(m.live().len(), 1);
                        }
                        if let ExitEvent::Landed { .. } = event {
                            let closed = matches!(state, ExitState::PositionClosed { .. });
                            prop_assert!(closed);
                        }
                    }
                    Err(err) => {
                        prop_assert_eq!(&m, &before);
                        prop_assert_eq!(err.from, before.state());
                    }
                }
                prop_assert!(m.live().len() <= 1);
                prop_assert_eq!(m.can_submit(), m.live().is_empty() && m.next_attempt().is_some());
                if before.is_terminal() {
                    prop_assert_eq!(&m, &before, "a terminal machine changed");
                }
            }
        }
    }

    fn beside(n: u8) -> ExitEvent {
        ExitEvent::SubmitBeside {
            attempt: u32::from(n),
            signature: sig(n),
        }
    }

    fn nonce_machine(events: &[ExitEvent]) -> ExitStateMachine {
        let mut m = ExitStateMachine::on_durable_nonce();
        for (i, e) in events.iter().enumerate() {
            if let Err(err) = m.apply(at(i), *e) {
                panic!("setup event {i} refused: {err}");
            }
        }
        m
    }

    #[test]
    fn only_a_machine_on_a_durable_nonce_sends_beside_a_live_attempt() {
        let mut plain = machine_after(&[SIGNAL, submit(1, 1)]);
        let refused = plain.apply(at(2), beside(2)).unwrap_err();
        assert_eq!(refused.why, Refusal::NotOnDurableNonce);
        assert_eq!(plain.next_beside(), None);
        // On a nonce: beside the live one, numbered in sequence, never before a first.
        let mut m = nonce_machine(&[SIGNAL]);
        assert_eq!(m.next_beside(), None);
        assert_eq!(
            m.apply(at(1), beside(1)).unwrap_err().why,
            Refusal::NothingToSubmit
        );
        m.apply(at(1), submit(1, 1)).unwrap();
        assert_eq!(m.next_beside(), Some(2));
        assert_eq!(
            m.apply(at(2), beside(3)).unwrap_err().why,
            Refusal::OutOfSequence
        );
        m.apply(at(2), ExitEvent::ConfirmTimedOut).unwrap();
        m.apply(at(3), beside(2)).unwrap();
        m.apply(at(4), beside(3)).unwrap();
        assert_eq!(m.live().len(), 3);
        assert_eq!(m.next_attempt(), None, "a plain Submit waits for none live");
        assert_eq!(
            m.state(),
            ExitState::Submitted {
                attempt: 3,
                signature: sig(3)
            }
        );
    }

    #[test]
    fn on_a_durable_nonce_resolving_one_keeps_the_others_live_and_a_landing_ends_them_all() {
        // The newest resolved: the state moves to the newest still live.
        let mut m = nonce_machine(&[SIGNAL, submit(1, 1), beside(2)]);
        m.apply(at(3), landed_failed(2)).unwrap();
        assert_eq!(
            m.state(),
            ExitState::Submitted {
                attempt: 1,
                signature: sig(1)
            }
        );
        assert_eq!(m.live().len(), 1);
        // The last one resolved: as without a nonce.
        m.apply(at(4), expired(1)).unwrap();
        assert!(matches!(m.state(), ExitState::Expired { attempt: 1, .. }));
        assert!(m.live().is_empty());
        assert_eq!(m.next_attempt(), Some(2));
        // A landing of any live one closes the position; nothing stays live.
        let mut m = nonce_machine(&[SIGNAL, submit(1, 1), beside(2), beside(3)]);
        m.apply(at(4), landed(2)).unwrap();
        assert!(matches!(
            m.state(),
            ExitState::PositionClosed { attempt: 2, .. }
        ));
        assert!(m.live().is_empty());
        assert!(m.is_terminal());
        // Failed with several live: not terminal until each is resolved.
        let mut m = nonce_machine(&[SIGNAL, submit(1, 1), beside(2)]);
        m.apply(at(3), fail(ExitFailure::DeadlineExceeded)).unwrap();
        assert!(!m.is_terminal());
        m.apply(at(4), expired(1)).unwrap();
        assert!(!m.is_terminal());
        m.apply(at(5), expired(2)).unwrap();
        assert!(m.is_terminal());
    }
}
