//! The operator's use cases: status, halt, resume, force-exit and exit history, as one
//! handle that the HTTP API and the command line drive.

use std::sync::Arc;

use kyzlo_domain::latency_breaker::BreakerSnapshot;
use kyzlo_domain::trading_state::{HaltCause, HaltOutcome, HaltReason, TradingState};
use kyzlo_domain::{IntentId, PositionId, TokenAmount};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::control::{ApprovalKey, ResumeError, TradingControl};
use crate::exit::ExitExecutor;
use crate::guard::LatencyGuard;
use crate::journal::{IntentHistory, Journal, PositionRecord};
use crate::metrics::{CountingMetrics, Dependency, MetricsSummary};
use crate::orchestrator::{Command, ForceExitError, PositionView};
use crate::ports::PortError;
use crate::ports::{Alert, AlertKind, Severity};

/// What `/status` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Trading state with its reason and time.
    pub trading: TradingState,
    /// Each dependency's latency breaker.
    pub latency_breakers: Vec<(Dependency, BreakerSnapshot)>,
    /// Consecutive failed exits (the exit breaker's count).
    pub consecutive_failed_exits: u32,
    /// Open positions, with whether an exit is running.
    pub positions: Vec<PositionView>,
    /// Base units start-up reconciliation found in the wallet beyond what the journal
    /// accounts for (a landing it missed, or a deposit): no stop protects them.
    pub unknown_tokens: Option<TokenAmount>,
}

/// Why an operator request failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The bot's loop is not running.
    #[error("the trading loop is not running")]
    NotRunning,
    /// Resume refused.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// Force-exit refused.
    #[error(transparent)]
    ForceExit(#[from] ForceExitError),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] PortError),
}

/// The operator's handle on a running bot. Cheap to clone.
#[derive(Clone)]
pub struct Operator {
    control: Arc<TradingControl>,
    commands: mpsc::Sender<Command>,
    journal: Arc<dyn Journal>,
    guard: Arc<LatencyGuard>,
    exits: Arc<ExitExecutor>,
    totals: Arc<CountingMetrics>,
    unknown_tokens: Option<TokenAmount>,
}

impl Operator {
    /// A handle over the running services; `commands` reaches the orchestrator's loop.
    pub fn new(
        control: Arc<TradingControl>,
        commands: mpsc::Sender<Command>,
        journal: Arc<dyn Journal>,
        guard: Arc<LatencyGuard>,
        exits: Arc<ExitExecutor>,
        totals: Arc<CountingMetrics>,
    ) -> Self {
        Self {
            control,
            commands,
            journal,
            guard,
            exits,
            totals,
            unknown_tokens: None,
        }
    }

    /// Reports `tokens` in every status: what reconciliation found beyond the journal.
    #[must_use]
    pub fn with_unknown_tokens(mut self, tokens: Option<TokenAmount>) -> Self {
        self.unknown_tokens = tokens;
        self
    }

    /// The bot's state.
    ///
    /// # Errors
    /// [`OperatorError::NotRunning`] when the loop does not answer.
    pub async fn status(&self) -> Result<Status, OperatorError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Positions { reply })
            .await
            .map_err(|_| OperatorError::NotRunning)?;
        let positions = answer.await.map_err(|_| OperatorError::NotRunning)?;
        Ok(Status {
            trading: self.control.state(),
            latency_breakers: self.guard.snapshots(),
            consecutive_failed_exits: self.exits.consecutive_failures(),
            positions,
            unknown_tokens: self.unknown_tokens,
        })
    }

    /// Pages the operator: the API keeps receiving wrong credentials.
    pub async fn alert_wrong_credentials(&self, message: String) {
        self.control
            .alert(Alert {
                kind: AlertKind::WrongCredentials,
                severity: Severity::Warning,
                message,
                position: None,
            })
            .await;
    }

    /// Halts trading (idempotent; the first reason stays).
    pub async fn halt(&self, reason: &str) -> HaltOutcome {
        self.control.halt(HaltCause::Operator, reason).await
    }

    /// Resumes trading with the approval key and clears the exit breaker's count.
    ///
    /// # Errors
    /// [`OperatorError::Resume`] when refused.
    pub async fn resume(&self, key: &[u8]) -> Result<(), OperatorError> {
        self.control.resume(key).await?;
        self.exits.reset_breaker().await;
        Ok(())
    }

    /// Force-exits a position; runs while halted.
    ///
    /// # Errors
    /// [`OperatorError`] when the loop is not running or the exit is refused.
    pub async fn force_exit(&self, position: PositionId) -> Result<IntentId, OperatorError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ForceExit { position, reply })
            .await
            .map_err(|_| OperatorError::NotRunning)?;
        Ok(answer.await.map_err(|_| OperatorError::NotRunning)??)
    }

    /// Holds a position: no protective exit for it while halted, until resume or restart.
    ///
    /// # Errors
    /// [`OperatorError`] when the loop is not running or the position is not open.
    pub async fn hold(&self, position: PositionId) -> Result<(), OperatorError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Hold { position, reply })
            .await
            .map_err(|_| OperatorError::NotRunning)?;
        Ok(answer.await.map_err(|_| OperatorError::NotRunning)??)
    }

    /// The latest exits, newest first.
    ///
    /// # Errors
    /// [`OperatorError::Journal`] when the journal cannot be read.
    pub async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, OperatorError> {
        Ok(self.journal.exit_history(limit).await?)
    }

    /// Exit totals since start (the seeds' exit metrics).
    #[must_use]
    pub fn exit_metrics(&self) -> MetricsSummary {
        self.totals.summary()
    }
}

/// What a stopped bot will start with, read from its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct StoppedStatus {
    /// The trading state it will start in.
    pub trading: TradingState,
    /// Its open positions.
    pub positions: Vec<PositionRecord>,
    /// Intents without an outcome: start-up reconciliation settles them first.
    pub unresolved: usize,
    /// The exit breaker's journaled count.
    pub consecutive_failed_exits: u32,
}

/// The operator's use cases on a bot that is not running, over its journal: what it will
/// start with, and a halt or resume it will start in. Force-exits need the running bot
/// (the journal alone cannot trade).
pub struct StoppedBot {
    journal: Arc<dyn Journal>,
    approval_key: Option<ApprovalKey>,
    clock: Clock,
}

impl StoppedBot {
    /// Over `journal`; `approval_key` is the configured one; `clock` dates a halt (a
    /// live bot's clock counts from the Unix epoch).
    pub fn new(journal: Arc<dyn Journal>, approval_key: Option<ApprovalKey>, clock: Clock) -> Self {
        Self {
            journal,
            approval_key,
            clock,
        }
    }

    /// What the bot will start with.
    ///
    /// # Errors
    /// [`PortError`] when the journal cannot be read.
    pub async fn status(&self) -> Result<StoppedStatus, PortError> {
        let snapshot = self.journal.load().await?;
        Ok(StoppedStatus {
            trading: snapshot.trading_state.unwrap_or_default(),
            positions: snapshot.open_positions,
            unresolved: snapshot.unresolved.len(),
            consecutive_failed_exits: snapshot.consecutive_failed_exits,
        })
    }

    /// Journals a halt the bot will start in (idempotent: a halt already journaled keeps
    /// its first reason and time). Returns the state now journaled.
    ///
    /// # Errors
    /// [`PortError`] when the journal cannot be read or written.
    pub async fn halt(&self, reason: &str) -> Result<TradingState, PortError> {
        let mut state = self.journal.load().await?.trading_state.unwrap_or_default();
        if state.halt(
            self.clock.now(),
            HaltReason::new(HaltCause::Operator, reason),
        ) == HaltOutcome::Halted
        {
            self.journal.record_trading_state(&state).await?;
        }
        Ok(state)
    }

    /// Journals a resume, checked as a running bot checks it (the configured approval
    /// key, compared in constant time; only a halt is resumed), and clears the exit
    /// breaker's journaled count as a running bot's resume does.
    ///
    /// # Errors
    /// [`OperatorError::Resume`] when refused; [`OperatorError::Journal`] when the
    /// journal cannot be read or written.
    pub async fn resume(&self, key: &[u8]) -> Result<(), OperatorError> {
        let approval = self
            .approval_key
            .as_ref()
            .ok_or(ResumeError::NoKeyConfigured)?;
        if !approval.matches(key) {
            return Err(ResumeError::WrongKey.into());
        }
        let state = self.journal.load().await?.trading_state.unwrap_or_default();
        if !state.is_halted() {
            return Err(ResumeError::NotHalted.into());
        }
        self.journal
            .record_trading_state(&TradingState::Active)
            .await?;
        self.journal.record_exit_failures(0).await?;
        Ok(())
    }

    /// The latest exits, newest first.
    ///
    /// # Errors
    /// [`PortError`] when the journal cannot be read.
    pub async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        self.journal.exit_history(limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::MemoryJournal;
    use kyzlo_domain::Timestamp;

    const KEY: &str = "a-long-enough-approval-key";

    fn stopped(journal: &Arc<MemoryJournal>) -> StoppedBot {
        StoppedBot::new(
            journal.clone(),
            Some(ApprovalKey::new(KEY).unwrap()),
            Clock::starting_at(Timestamp::from_millis(1_700_000_000_000)),
        )
    }

    #[tokio::test]
    async fn a_stopped_bot_is_halted_with_the_time_and_resumed_with_the_key() {
        let journal = Arc::new(MemoryJournal::new());
        journal.record_exit_failures(1).await.unwrap();
        let bot = stopped(&journal);
        let state = bot.halt("maintenance").await.unwrap();
        let TradingState::Halted { reason, since } = &state else {
            panic!("{state:?}");
        };
        assert_eq!(reason.detail, "maintenance");
        assert!(
            *since >= Timestamp::from_millis(1_700_000_000_000),
            "{since:?}"
        );
        // A second halt keeps the first reason.
        assert_eq!(bot.halt("other").await.unwrap(), state);
        assert_eq!(bot.status().await.unwrap().trading, state);
        assert!(matches!(
            bot.resume(b"wrong-key-wrong-key").await,
            Err(OperatorError::Resume(ResumeError::WrongKey))
        ));
        bot.resume(KEY.as_bytes()).await.unwrap();
        let status = bot.status().await.unwrap();
        assert_eq!(status.trading, TradingState::Active);
        assert_eq!(
            status.consecutive_failed_exits, 0,
            "resume clears the breaker"
        );
        assert!(matches!(
            bot.resume(KEY.as_bytes()).await,
            Err(OperatorError::Resume(ResumeError::NotHalted))
        ));
    }

    #[tokio::test]
    async fn without_a_configured_key_nobody_resumes_a_stopped_bot() {
        let journal = Arc::new(MemoryJournal::new());
        let bot = StoppedBot::new(journal.clone(), None, Clock::new());
        bot.halt("x").await.unwrap();
        assert!(matches!(
            bot.resume(KEY.as_bytes()).await,
            Err(OperatorError::Resume(ResumeError::NoKeyConfigured))
        ));
    }
}
