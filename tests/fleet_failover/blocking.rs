//! A journal on the database's own runtime, each call blocking the world's thread until
//! it completes.
//!
//! The explorer's world runs on a paused current-thread runtime whose clock jumps to the
//! next timer whenever every task waits: a query awaited there would let the market run
//! ahead while the database answers, and the pool's timeouts would fire at once. Blocking
//! the thread keeps the runtime busy, so its clock stands still: a write takes no time on
//! the world's clock, as the in-memory journal's do, and the run stays deterministic.

use std::future::Future;
use std::sync::mpsc;

use async_trait::async_trait;
use kyzlo_adapters_postgres::PgJournal;
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentHistory, IntentOutcome, IntentRecord, Journal,
    JournalSnapshot, PositionRecord,
};
use kyzlo_application::ports::PortError;
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{IntentId, PositionId, TokenAmount};
use tokio::runtime::Handle;

/// Runs `call` on `runtime` and blocks the calling thread until it completes.
///
/// # Panics
/// When the runtime drops the call unfinished (it was shut down): the world cannot go on
/// without its store.
pub fn block<T, F>(runtime: &Handle, call: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(call.await);
    });
    rx.recv()
        .unwrap_or_else(|_| panic!("the database's runtime dropped a call unfinished"))
}

/// One instance's [`PgJournal`], driven on the database's runtime.
pub struct Blocking {
    pub journal: PgJournal,
    pub runtime: Handle,
}

impl Blocking {
    fn on<T, F, Fut>(&self, call: F) -> T
    where
        F: FnOnce(PgJournal) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        block(&self.runtime, call(self.journal.clone()))
    }
}

#[async_trait]
impl Journal for Blocking {
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError> {
        let intent = *intent;
        self.on(|j| async move { j.record_intent(&intent).await })
    }

    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError> {
        let attempt = *attempt;
        self.on(|j| async move { j.record_attempt(&attempt).await })
    }

    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        self.on(|j| async move { j.record_attempt_outcome(intent, attempt, outcome).await })
    }

    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError> {
        let transition = *transition;
        self.on(|j| async move { j.record_transition(intent, &transition).await })
    }

    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        let (outcome, position) = (*outcome, position.copied());
        self.on(|j| async move { j.settle_intent(intent, &outcome, position.as_ref()).await })
    }

    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        let state = state.clone();
        self.on(|j| async move { j.record_trading_state(&state).await })
    }

    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        self.on(|j| async move { j.record_exit_failures(consecutive).await })
    }

    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        self.on(|j| async move { j.record_free_base(free).await })
    }

    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        self.on(|j| async move { j.position(id).await })
    }

    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        self.on(|j| async move { j.load().await })
    }

    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        self.on(|j| async move { j.exit_history(limit).await })
    }
}
