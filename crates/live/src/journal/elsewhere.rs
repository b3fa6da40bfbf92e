//! [`Elsewhere`]: the PostgreSQL journal driven from its own runtime, whatever runtime the
//! bot runs on.
//!
//! Paper runs on tokio's paused clock, which jumps to the next timer whenever its runtime
//! is idle, so a connection's timeout measured there would expire while the database is
//! still answering, and the market would run ahead while a write is on its way. Every
//! call therefore runs on the journal's runtime (real time), waited for from a blocking
//! task: tokio does not advance a paused clock while a blocking task runs, so a journal
//! write takes no virtual time, as the SQLite journal's synchronous writes do.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use kyzlo_adapters_postgres::PgJournal;
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentHistory, IntentOutcome, IntentRecord, Journal,
    JournalSnapshot, PositionRecord,
};
use kyzlo_application::ports::PortError;
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{ErrorClass, IntentId, PositionId, TokenAmount};
use tokio::runtime::Handle;

/// A [`PgJournal`] whose every call runs on the runtime of `handle`.
pub struct Elsewhere {
    /// The journal.
    pub journal: Arc<PgJournal>,
    /// The journal's runtime.
    pub handle: Handle,
}

/// Runs `call` on the runtime of `handle`, waited for from a blocking task (so that a
/// paused clock does not move meanwhile).
///
/// # Errors
/// A [`PortError`] of class `Unknown` when the task ended without an answer (the
/// runtime was shut down).
pub async fn bridged<T, Fut>(handle: &Handle, call: Fut) -> Result<T, PortError>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = handle.clone();
    tokio::task::spawn_blocking(move || handle.block_on(call))
        .await
        .map_err(|e| {
            PortError::new(
                "journal.runtime",
                ErrorClass::Unknown,
                format!("the journal's task ended without an answer: {e}"),
            )
        })
}

/// As [`bridged`], given up after `limit` of real time (a connection whose peer
/// vanished must not hold its caller for good).
///
/// # Errors
/// As [`bridged`]; a [`PortError`] of class `Unknown` when `limit` passed.
pub async fn bridged_within<T, Fut>(
    handle: &Handle,
    limit: std::time::Duration,
    call: Fut,
) -> Result<T, PortError>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    // The timer is made inside the block, so on the database's runtime (real time).
    bridged(
        handle,
        async move { tokio::time::timeout(limit, call).await },
    )
    .await?
    .map_err(|_| {
        PortError::new(
            "journal.runtime",
            ErrorClass::Unknown,
            format!("the database did not answer within {limit:?}"),
        )
    })
}

/// How long one journal call may take before it is given up as failed (class
/// `Unknown`: nothing is sent that was not journaled, and a write that did commit is
/// found by reconciliation).
pub const JOURNAL_CALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Elsewhere {
    async fn on<T, F, Fut>(&self, call: F) -> Result<T, PortError>
    where
        F: FnOnce(Arc<PgJournal>) -> Fut,
        Fut: Future<Output = Result<T, PortError>> + Send + 'static,
        T: Send + 'static,
    {
        bridged_within(
            &self.handle,
            JOURNAL_CALL_LIMIT,
            call(Arc::clone(&self.journal)),
        )
        .await?
    }
}

#[async_trait]
impl Journal for Elsewhere {
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError> {
        let intent = *intent;
        self.on(|j| async move { j.record_intent(&intent).await })
            .await
    }

    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError> {
        let attempt = *attempt;
        self.on(|j| async move { j.record_attempt(&attempt).await })
            .await
    }

    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        self.on(|j| async move { j.record_attempt_outcome(intent, attempt, outcome).await })
            .await
    }

    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError> {
        let transition = *transition;
        self.on(|j| async move { j.record_transition(intent, &transition).await })
            .await
    }

    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        let (outcome, position) = (*outcome, position.cloned());
        self.on(|j| async move { j.settle_intent(intent, &outcome, position.as_ref()).await })
            .await
    }

    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        let state = state.clone();
        self.on(|j| async move { j.record_trading_state(&state).await })
            .await
    }

    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        self.on(|j| async move { j.record_exit_failures(consecutive).await })
            .await
    }

    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        self.on(|j| async move { j.record_free_base(free).await })
            .await
    }

    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        self.on(|j| async move { j.position(id).await }).await
    }

    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        self.on(|j| async move { j.load().await }).await
    }

    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        self.on(|j| async move { j.exit_history(limit).await })
            .await
    }
}
