//! The run's trace: a totally ordered log of what crossed the boundary between the bot
//! and the simulated world (every send call, every journaled attempt, every landing),
//! for the invariant checker. The venue writes its events here; a test or the explorer
//! writes the bot's side (e.g. the journal's writes) into the same trace, so "journaled
//! before sent" is a comparison of two positions in one sequence.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use kyzlo_application::ports::Side;
use kyzlo_domain::{ErrorClass, TokenAmount, TxSignature};

/// One event of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceEvent {
    /// A send call for `signature` reached the venue (whatever then happened to it).
    Sent {
        /// The transaction.
        signature: TxSignature,
        /// Run time of the call.
        at: Duration,
        /// Whether a node accepted it (it may still never reach a leader).
        accepted: bool,
    },
    /// An attempt was durably journaled by the bot.
    Journaled {
        /// The attempt's transaction.
        signature: TxSignature,
    },
    /// A transaction landed on the main fork (it can no longer be undone).
    Landed {
        /// The transaction.
        signature: TxSignature,
        /// Run time of the landing.
        at: Duration,
        /// The slot it landed in.
        slot: u64,
        /// Its direction.
        side: Side,
        /// Input spent (zero when it failed).
        amount_in: TokenAmount,
        /// Output received (zero when it failed).
        amount_out: TokenAmount,
        /// Its on-chain error, `None` when it succeeded.
        error: Option<ErrorClass>,
    },
}

/// The ordered log (see the module docs). Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Trace {
    events: Mutex<Vec<TraceEvent>>,
}

impl Trace {
    /// An empty trace.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `event`; returns its position.
    pub fn record(&self, event: TraceEvent) -> usize {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.push(event);
        events.len() - 1
    }

    /// Every event so far, in order.
    #[must_use]
    pub fn events(&self) -> Vec<TraceEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
