//! The operator's use cases: status, halt, resume, force-exit and exit history, as one
//! handle that the HTTP API and the command line drive.

use std::sync::Arc;

use kyzlo_domain::latency_breaker::BreakerSnapshot;
use kyzlo_domain::trading_state::{HaltCause, HaltOutcome, TradingState};
use kyzlo_domain::{IntentId, PositionId};
use tokio::sync::{mpsc, oneshot};

use crate::control::{ResumeError, TradingControl};
use crate::exit::ExitExecutor;
use crate::guard::LatencyGuard;
use crate::journal::{IntentHistory, Journal};
use crate::metrics::{CountingMetrics, Dependency, MetricsSummary};
use crate::orchestrator::{Command, ForceExitError, PositionView};
use crate::ports::PortError;

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
        }
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
        })
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
