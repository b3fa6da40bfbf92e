//! The world's durable store: what outlives every crash of the bot. Each start of the
//! bot is a new instance that asks the store for its own journal; how an instance ends
//! (killed, or stopped cleanly) is told to the store; and at the end of the run the
//! checker reads every intent and attempt back from the store itself, so it judges what
//! was stored. [`MemoryStore`] is the explorer's default; a store on a real database
//! (a fleet's, with a lease per instance) plugs in through the same trait.

use std::sync::Arc;

use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentOutcome, IntentRecord, Journal, MemoryJournal,
};

/// How an instance of the bot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Killed: nothing after the kill ran (a held lease is never released).
    Killed,
    /// Stopped cleanly (a held lease is released).
    Stopped,
}

/// A durable store for the explorer's world (see the module docs).
///
/// The world runs on a paused clock: every call must complete before it returns (block
/// the calling thread if it must wait), so that it takes no time on the world's clock.
pub trait DurableStore {
    /// The journal of a new instance of the bot. The previous instance, if any, has
    /// ended (see [`DurableStore::ended`]). A store that cannot give one panics: the
    /// world cannot go on without its journal.
    fn instance(&self) -> Arc<dyn Journal>;

    /// The latest instance ended this way.
    fn ended(&self, how: Ending);

    /// Every intent stored, with its outcome, in id order.
    fn intents(&self) -> Vec<(IntentRecord, Option<IntentOutcome>)>;

    /// Every attempt stored, with its outcome, in (intent, attempt) order.
    fn attempts(&self) -> Vec<(AttemptRecord, Option<AttemptOutcome>)>;
}

/// The in-memory store: one journal every instance shares, as one file on one machine.
#[derive(Debug, Default)]
pub struct MemoryStore {
    journal: Arc<MemoryJournal>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl DurableStore for MemoryStore {
    fn instance(&self) -> Arc<dyn Journal> {
        self.journal.clone()
    }

    fn ended(&self, _how: Ending) {}

    fn intents(&self) -> Vec<(IntentRecord, Option<IntentOutcome>)> {
        self.journal.intents()
    }

    fn attempts(&self) -> Vec<(AttemptRecord, Option<AttemptOutcome>)> {
        self.journal.attempts()
    }
}
