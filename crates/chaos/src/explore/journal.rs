//! The explorer's journal: each instance of the bot writes through a [`TracedJournal`]
//! over the world's durable store (which outlives every crash of the bot), with seeded
//! write failures (disk full, database busy: the write does not happen and the bot is
//! told); every instance shares one [`JournalLog`] recording what the invariant checker
//! needs: every attempt journaled (into the run's trace, so it is ordered against the
//! sends), when each intent was settled, when each exit intent was journaled, and every
//! trading state written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use kyzlo_adapters_sim::rng::SimRng;
use kyzlo_adapters_sim::trace::{Trace, TraceEvent};
use kyzlo_application::clock::Clock;
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentHistory, IntentOutcome, IntentRecord,
    Journal, JournalSnapshot, PositionRecord,
};
use kyzlo_application::ports::PortError;
use kyzlo_domain::TokenAmount;
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{ErrorClass, IntentId, PositionId, Timestamp};

const STREAM_WRITE: u64 = 0x6a6f_7572;

#[derive(Debug, Default)]
struct Log {
    /// Intents the store holds (journaled successfully at least once).
    known: BTreeSet<IntentId>,
    settled_at: BTreeMap<IntentId, Timestamp>,
    exits_journaled: Vec<Timestamp>,
    states: Vec<(Timestamp, TradingState)>,
    failed_writes: u64,
}

/// What the journal's writes left for the checker, over every instance of the bot in a
/// run, and the seeded write failures' sequence (one for the whole run, so a seed fails
/// the same writes whichever instance makes them).
pub struct JournalLog {
    trace: Arc<Trace>,
    clock: Clock,
    seed: u64,
    failure_rate: f64,
    writes: AtomicU64,
    log: Mutex<Log>,
}

impl JournalLog {
    /// A log failing a write with probability `failure_rate`.
    #[must_use]
    pub fn new(trace: Arc<Trace>, clock: Clock, seed: u64, failure_rate: f64) -> Self {
        Self {
            trace,
            clock,
            seed,
            failure_rate,
            writes: AtomicU64::new(0),
            log: Mutex::new(Log::default()),
        }
    }

    fn log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// When each intent was settled (its outcome journaled).
    #[must_use]
    pub fn settled_at(&self) -> BTreeMap<IntentId, Timestamp> {
        self.log(|l| l.settled_at.clone())
    }

    /// When each exit intent was journaled, in order.
    #[must_use]
    pub fn exits_journaled(&self) -> Vec<Timestamp> {
        self.log(|l| l.exits_journaled.clone())
    }

    /// Every trading state written, with when.
    #[must_use]
    pub fn states(&self) -> Vec<(Timestamp, TradingState)> {
        self.log(|l| l.states.clone())
    }

    /// Writes refused by the injected faults.
    #[must_use]
    pub fn failed_writes(&self) -> u64 {
        self.log(|l| l.failed_writes)
    }

    /// Whether the next write fails.
    fn fails(&self, operation: &'static str) -> Result<(), PortError> {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        if self.failure_rate > 0.0
            && SimRng::keyed(self.seed, STREAM_WRITE, n).uniform() < self.failure_rate
        {
            self.log(|l| l.failed_writes += 1);
            return Err(PortError::new(
                operation,
                ErrorClass::Unknown,
                "injected journal write failure (disk full)",
            ));
        }
        Ok(())
    }
}

/// One instance's journal: its handle on the durable store, traced into the run's
/// [`JournalLog`] (see the module docs).
pub struct TracedJournal {
    inner: Arc<dyn Journal>,
    log: Arc<JournalLog>,
}

impl TracedJournal {
    /// A journal over `inner` recording into `log`.
    #[must_use]
    pub fn new(inner: Arc<dyn Journal>, log: Arc<JournalLog>) -> Self {
        Self { inner, log }
    }
}

#[async_trait]
impl Journal for TracedJournal {
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError> {
        self.log.fails("journal.record_intent")?;
        self.inner.record_intent(intent).await?;
        let now = self.log.clock.now();
        self.log.log(|l| {
            l.known.insert(intent.intent);
            // An id handed out before a crash but never journaled may be handed out again.
            l.settled_at.remove(&intent.intent);
            if matches!(intent.action, IntentAction::Exit(_)) {
                l.exits_journaled.push(now);
            }
        });
        Ok(())
    }

    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError> {
        self.log.fails("journal.record_attempt")?;
        self.inner.record_attempt(attempt).await?;
        self.log.trace.record(TraceEvent::Journaled {
            signature: attempt.signature,
        });
        Ok(())
    }

    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        self.log.fails("journal.record_attempt_outcome")?;
        self.inner
            .record_attempt_outcome(intent, attempt, outcome)
            .await
    }

    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError> {
        self.log.fails("journal.record_transition")?;
        self.inner.record_transition(intent, transition).await
    }

    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        self.log.fails("journal.settle_intent")?;
        self.inner.settle_intent(intent, outcome, position).await?;
        // The journal leaves an intent it never recorded alone: so does the log.
        let now = self.log.clock.now();
        self.log.log(|l| {
            if l.known.contains(&intent) {
                l.settled_at.entry(intent).or_insert(now);
            }
        });
        Ok(())
    }

    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        self.log.fails("journal.record_trading_state")?;
        self.inner.record_trading_state(state).await?;
        let now = self.log.clock.now();
        self.log.log(|l| l.states.push((now, state.clone())));
        Ok(())
    }

    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        self.log.fails("journal.record_exit_failures")?;
        self.inner.record_exit_failures(consecutive).await
    }

    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        self.log.fails("journal.record_free_base")?;
        self.inner.record_free_base(free).await
    }

    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        self.inner.position(id).await
    }

    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        self.inner.load().await
    }

    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        self.inner.exit_history(limit).await
    }
}
