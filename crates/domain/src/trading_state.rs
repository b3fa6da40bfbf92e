//! Whether the bot may trade: Active, ReduceOnly (exits only) or Halted (nothing automatic).

use core::fmt;

use crate::types::Timestamp;

/// Why trading was halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaltCause {
    /// The exit circuit breaker tripped after consecutive failed exits.
    ExitBreaker,
    /// An exit ran past its deadline.
    ExitDeadline,
    /// An operator asked for it.
    Operator,
    /// Reconciliation found positions or balances it could not settle.
    Reconciliation,
    /// The process is shutting down.
    Shutdown,
    /// The fleet halted: another market of this process, another instance, or an
    /// operator's `kyzlo fleet halt`.
    Fleet,
}

impl HaltCause {
    /// Every cause, for decoding a journaled name.
    pub const ALL: [HaltCause; 6] = [
        HaltCause::ExitBreaker,
        HaltCause::ExitDeadline,
        HaltCause::Operator,
        HaltCause::Reconciliation,
        HaltCause::Shutdown,
        HaltCause::Fleet,
    ];

    /// A stable snake_case name for logs, metrics, alerts and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            HaltCause::ExitBreaker => "exit_breaker",
            HaltCause::ExitDeadline => "exit_deadline",
            HaltCause::Operator => "operator",
            HaltCause::Reconciliation => "reconciliation",
            HaltCause::Shutdown => "shutdown",
            HaltCause::Fleet => "fleet",
        }
    }
}

impl fmt::Display for HaltCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why trading was halted, with the detail an operator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltReason {
    /// The class of reason.
    pub cause: HaltCause,
    /// Free text for the operator (which position, which error).
    pub detail: String,
}

impl HaltReason {
    /// A reason of `cause` with `detail`.
    #[must_use]
    pub fn new(cause: HaltCause, detail: impl Into<String>) -> Self {
        Self {
            cause,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for HaltReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause, self.detail)
    }
}

/// Why new entries are paused while exits continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOnlyCause {
    /// The latency circuit breaker is open.
    LatencyBreakerOpen,
    /// An operator asked for it.
    Operator,
    /// The fleet's database, where a fleet-wide halt would be announced, cannot be
    /// reached: no entry may start that a halt elsewhere would have stopped.
    FleetUnreachable,
}

impl ReduceOnlyCause {
    /// Every cause, for decoding a journaled name.
    pub const ALL: [ReduceOnlyCause; 3] = [
        ReduceOnlyCause::LatencyBreakerOpen,
        ReduceOnlyCause::Operator,
        ReduceOnlyCause::FleetUnreachable,
    ];

    /// A stable snake_case name for logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ReduceOnlyCause::LatencyBreakerOpen => "latency_breaker_open",
            ReduceOnlyCause::Operator => "operator",
            ReduceOnlyCause::FleetUnreachable => "fleet_unreachable",
        }
    }
}

/// The kind of a [`TradingState`], without its cause and time: what metrics and status
/// pages show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TradingMode {
    /// Entries and exits proceed.
    Active,
    /// Exits only.
    ReduceOnly,
    /// Nothing automatic.
    Halted,
}

impl TradingMode {
    /// Every mode, for metric labels.
    pub const ALL: [TradingMode; 3] = [
        TradingMode::Active,
        TradingMode::ReduceOnly,
        TradingMode::Halted,
    ];

    /// A stable snake_case name: `active`, `reduce_only` or `halted`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TradingMode::Active => "active",
            TradingMode::ReduceOnly => "reduce_only",
            TradingMode::Halted => "halted",
        }
    }
}

/// The bot's trading state. `Default` is [`TradingState::Active`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TradingState {
    /// Entries and exits proceed.
    #[default]
    Active,
    /// No new entries; exits of open positions still proceed (a stop-loss must fire even when
    /// latency is bad).
    ReduceOnly {
        cause: ReduceOnlyCause,
        /// Since when.
        since: Timestamp,
    },
    /// Nothing automatic proceeds; an operator's force-exit still does.
    Halted {
        /// Why: the first reason given.
        reason: HaltReason,
        /// Since when: the first halt.
        since: Timestamp,
    },
}

/// What [`TradingState::halt`] did.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltOutcome {
    /// Trading was not halted and now is: alert the operator.
    Halted,
    /// Trading was already halted; the first reason and time were kept.
    AlreadyHalted,
}

/// [`TradingState::resume`] was asked while trading was not halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotHalted;

impl fmt::Display for NotHalted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("trading is not halted: nothing to resume")
    }
}

impl std::error::Error for NotHalted {}

impl TradingState {
    /// Whether a new position may be opened: only when Active.
    #[must_use]
    pub fn allows_entry(&self) -> bool {
        matches!(self, TradingState::Active)
    }

    /// Whether an automatic exit (stop-loss, take-profit, strategy) may proceed: Active or
    /// ReduceOnly.
    #[must_use]
    pub fn allows_automatic_exit(&self) -> bool {
        !self.is_halted()
    }

    /// Whether an operator's force-exit may proceed: always, even when halted.
    #[must_use]
    pub fn allows_operator_exit(&self) -> bool {
        true
    }

    /// Whether trading is halted.
    #[must_use]
    pub fn is_halted(&self) -> bool {
        matches!(self, TradingState::Halted { .. })
    }

    /// Halts trading from any state. Idempotent: when already halted, the first reason and time
    /// are kept and [`HaltOutcome::AlreadyHalted`] is returned (so the caller alerts once).
    pub fn halt(&mut self, now: Timestamp, reason: HaltReason) -> HaltOutcome {
        if self.is_halted() {
            return HaltOutcome::AlreadyHalted;
        }
        *self = TradingState::Halted { reason, since: now };
        HaltOutcome::Halted
    }

    /// Pauses entries; only from Active. Returns whether the state changed (a second cause while
    /// already reduce-only keeps the first).
    pub fn enter_reduce_only(&mut self, now: Timestamp, cause: ReduceOnlyCause) -> bool {
        if !self.allows_entry() {
            return false;
        }
        *self = TradingState::ReduceOnly { cause, since: now };
        true
    }

    /// Back to Active from ReduceOnly entered for `cause`; returns whether the state changed.
    /// Never un-halts, and never lifts a reduce-only entered for another cause (the latency
    /// breaker closing does not override an operator's pause).
    pub fn leave_reduce_only(&mut self, cause: ReduceOnlyCause) -> bool {
        match self {
            TradingState::ReduceOnly { cause: current, .. } if *current == cause => {
                *self = TradingState::Active;
                true
            }
            _ => false,
        }
    }

    /// Halted -> Active. The operator's approval key is checked by the caller before this.
    ///
    /// # Errors
    /// [`NotHalted`] when trading is Active or ReduceOnly; the state is unchanged.
    pub fn resume(&mut self) -> Result<(), NotHalted> {
        if !self.is_halted() {
            return Err(NotHalted);
        }
        *self = TradingState::Active;
        Ok(())
    }

    /// Its kind.
    #[must_use]
    pub fn mode(&self) -> TradingMode {
        match self {
            TradingState::Active => TradingMode::Active,
            TradingState::ReduceOnly { .. } => TradingMode::ReduceOnly,
            TradingState::Halted { .. } => TradingMode::Halted,
        }
    }

    /// A stable snake_case name: `active`, `reduce_only` or `halted`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        self.mode().as_str()
    }
}

impl fmt::Display for TradingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TradingState::Active => f.write_str("active"),
            TradingState::ReduceOnly { cause, .. } => write!(f, "reduce_only ({})", cause.as_str()),
            TradingState::Halted { reason, .. } => write!(f, "halted ({reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1);
    const T1: Timestamp = Timestamp::from_millis(2);

    fn active() -> TradingState {
        TradingState::Active
    }

    fn reduce_only(cause: ReduceOnlyCause) -> TradingState {
        TradingState::ReduceOnly { cause, since: T0 }
    }

    fn halted() -> TradingState {
        TradingState::Halted {
            reason: HaltReason::new(HaltCause::ExitBreaker, "two failed exits"),
            since: T0,
        }
    }

    fn latency_pause() -> TradingState {
        reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
    }

    #[test]
    fn permissions_by_state() {
        // (state, entry, automatic exit, operator exit, halted, name)
        let table = [
            (active(), true, true, true, false, "active"),
            (latency_pause(), false, true, true, false, "reduce_only"),
            (
                reduce_only(ReduceOnlyCause::Operator),
                false,
                true,
                true,
                false,
                "reduce_only",
            ),
            (halted(), false, false, true, true, "halted"),
        ];
        for (state, entry, auto_exit, operator_exit, is_halted, name) in table {
            assert_eq!(state.allows_entry(), entry, "{state:?}");
            assert_eq!(state.allows_automatic_exit(), auto_exit, "{state:?}");
            assert_eq!(state.allows_operator_exit(), operator_exit, "{state:?}");
            assert_eq!(state.is_halted(), is_halted, "{state:?}");
            assert_eq!(state.as_str(), name, "{state:?}");
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Action {
        Halt,
        EnterLatencyPause,
        EnterOperatorPause,
        LeaveLatencyPause,
        LeaveOperatorPause,
        Resume,
    }

    /// Applies `action` at `T1`; returns whether it reported a change.
    fn apply(state: &mut TradingState, action: Action) -> bool {
        let reason = HaltReason::new(HaltCause::Operator, "second halt");
        match action {
            Action::Halt => state.halt(T1, reason) == HaltOutcome::Halted,
            Action::EnterLatencyPause => {
                state.enter_reduce_only(T1, ReduceOnlyCause::LatencyBreakerOpen)
            }
            Action::EnterOperatorPause => state.enter_reduce_only(T1, ReduceOnlyCause::Operator),
            Action::LeaveLatencyPause => {
                state.leave_reduce_only(ReduceOnlyCause::LatencyBreakerOpen)
            }
            Action::LeaveOperatorPause => state.leave_reduce_only(ReduceOnlyCause::Operator),
            Action::Resume => state.resume().is_ok(),
        }
    }

    #[test]
    fn transitions_by_state_and_action() {
        use Action::*;
        let halted_at_t1 = TradingState::Halted {
            reason: HaltReason::new(HaltCause::Operator, "second halt"),
            since: T1,
        };
        let latency_pause_at_t1 = TradingState::ReduceOnly {
            cause: ReduceOnlyCause::LatencyBreakerOpen,
            since: T1,
        };
        let operator_pause_at_t1 = TradingState::ReduceOnly {
            cause: ReduceOnlyCause::Operator,
            since: T1,
        };
        let operator_pause = reduce_only(ReduceOnlyCause::Operator);
        // (before, action, reported change, after)
        let table = [
            (active(), Halt, true, halted_at_t1.clone()),
            (
                active(),
                EnterLatencyPause,
                true,
                latency_pause_at_t1.clone(),
            ),
            (active(), EnterOperatorPause, true, operator_pause_at_t1),
            (active(), LeaveLatencyPause, false, active()),
            (active(), LeaveOperatorPause, false, active()),
            (active(), Resume, false, active()),
            (latency_pause(), Halt, true, halted_at_t1.clone()),
            (latency_pause(), EnterLatencyPause, false, latency_pause()),
            (latency_pause(), EnterOperatorPause, false, latency_pause()),
            (latency_pause(), LeaveLatencyPause, true, active()),
            (latency_pause(), LeaveOperatorPause, false, latency_pause()),
            (latency_pause(), Resume, false, latency_pause()),
            (operator_pause.clone(), Halt, true, halted_at_t1),
            (
                operator_pause.clone(),
                LeaveLatencyPause,
                false,
                operator_pause.clone(),
            ),
            (operator_pause.clone(), LeaveOperatorPause, true, active()),
            (operator_pause.clone(), Resume, false, operator_pause),
            // Halted keeps its first reason and time, and only resume leaves it.
            (halted(), Halt, false, halted()),
            (halted(), EnterLatencyPause, false, halted()),
            (halted(), EnterOperatorPause, false, halted()),
            (halted(), LeaveLatencyPause, false, halted()),
            (halted(), LeaveOperatorPause, false, halted()),
            (halted(), Resume, true, active()),
        ];
        for (before, action, changed, after) in table {
            let mut state = before.clone();
            assert_eq!(apply(&mut state, action), changed, "{before:?} {action:?}");
            assert_eq!(state, after, "{before:?} {action:?}");
        }
    }

    #[test]
    fn halt_is_idempotent_and_keeps_the_first_reason_and_time() {
        let mut state = TradingState::default();
        let first = HaltReason::new(HaltCause::ExitDeadline, "pos-7 exit past 30 s");
        assert_eq!(state.halt(T0, first.clone()), HaltOutcome::Halted);
        assert_eq!(
            state.halt(T1, HaltReason::new(HaltCause::Shutdown, "ctrl-c")),
            HaltOutcome::AlreadyHalted
        );
        assert_eq!(
            state,
            TradingState::Halted {
                reason: first,
                since: T0
            }
        );
    }

    #[test]
    fn resume_when_not_halted_is_an_error_and_changes_nothing() {
        let mut state = latency_pause();
        assert_eq!(state.resume(), Err(NotHalted));
        assert_eq!(state, latency_pause());
        assert_eq!(
            NotHalted.to_string(),
            "trading is not halted: nothing to resume"
        );
    }

    #[test]
    fn names_are_stable_snake_case() {
        let causes = [
            (HaltCause::ExitBreaker, "exit_breaker"),
            (HaltCause::ExitDeadline, "exit_deadline"),
            (HaltCause::Operator, "operator"),
            (HaltCause::Reconciliation, "reconciliation"),
            (HaltCause::Shutdown, "shutdown"),
        ];
        for (cause, name) in causes {
            assert_eq!(cause.as_str(), name);
        }
        assert_eq!(
            ReduceOnlyCause::LatencyBreakerOpen.as_str(),
            "latency_breaker_open"
        );
        assert_eq!(ReduceOnlyCause::Operator.as_str(), "operator");
        assert_eq!(
            halted().to_string(),
            "halted (exit_breaker: two failed exits)"
        );
    }
}
