//! The journal port: the durable record of positions, intents, attempts, exit-state
//! transitions and the trading state, written before every send so that a crash at any
//! point loses nothing; and an in-memory journal for simulations.

pub mod flat;
pub mod text;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{
    ErrorClass, ExitKind, IntentId, Lamports, PositionId, Price, Size, Slippage, Timestamp,
    TokenAmount, TxSignature,
};

use crate::ports::{
    Blockhash, DurableNonce, Fill, NonceAccount, PortError, Side, SignedTransaction,
};
use crate::proof::AttemptKey;

/// The [`PortError::code`] a durable journal reports when its database refused a write
/// because this instance no longer holds the wallet's lease (its fencing epoch is stale):
/// class [`ErrorClass::Unknown`], so nothing retries it, and the wallet's markets must stop.
pub const FENCED_CODE: i64 = 4_090_001;

/// What an intent is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentAction {
    /// Open the position.
    Enter,
    /// Leave (part of) it.
    Exit(ExitKind),
}

/// One intent: at most one of its transactions may land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentRecord {
    /// Its id.
    pub intent: IntentId,
    /// The position it concerns.
    pub position: PositionId,
    /// Entry or exit.
    pub action: IntentAction,
    /// Swap direction.
    pub side: Side,
    /// Input amount asked for.
    pub amount_in: TokenAmount,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One transaction of an intent, journaled before it is sent: everything needed to prove,
/// after a crash, whether it landed or can never land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The intent.
    pub intent: IntentId,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The transaction's signature.
    pub signature: TxSignature,
    /// The blockhash its message carries.
    pub blockhash: Blockhash,
    /// A context slot at which a node saw that blockhash valid, read before the send.
    pub valid_at_slot: u64,
    /// The last valid block height the router reported (a hint, not a proof).
    pub last_valid_block_height: u64,
    /// Slippage asked for.
    pub slippage: Slippage,
    /// Priority fee bid.
    pub priority_fee: Lamports,
    /// Exact input amount.
    pub amount_in: TokenAmount,
    /// The least output the swap accepts.
    pub min_out: TokenAmount,
    /// When it was (about to be) sent.
    pub sent_at: Timestamp,
    /// The durable nonce it is built on (then `blockhash` is the nonce's value), and
    /// whether it is the intent's cancel; `None` for an attempt on a recent blockhash.
    pub nonce: Option<NonceUse>,
}

/// How an attempt uses a durable nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceUse {
    /// The nonce account and the value the attempt carries.
    pub nonce: DurableNonce,
    /// Whether the attempt is a cancel: the nonce's advance alone, sent so that nothing
    /// else on the same value can land (it swaps nothing: no amount, no minimum).
    pub cancel: bool,
}

impl AttemptRecord {
    /// The record of a cancel: `signed`, the advance of `nonce` alone (read at context
    /// slot `read_at_slot`), attempt number `attempt` of `intent`, bidding `priority_fee`
    /// and swapping nothing.
    #[must_use]
    pub fn cancel(
        intent: IntentId,
        attempt: u32,
        signed: &SignedTransaction,
        nonce: DurableNonce,
        read_at_slot: u64,
        priority_fee: Lamports,
        sent_at: Timestamp,
    ) -> Self {
        Self {
            intent,
            attempt,
            signature: signed.signature,
            blockhash: signed.blockhash,
            valid_at_slot: read_at_slot,
            last_valid_block_height: signed.last_valid_block_height,
            slippage: Slippage::TIGHTEST,
            priority_fee,
            amount_in: TokenAmount::ZERO,
            min_out: TokenAmount::ZERO,
            sent_at,
            nonce: Some(NonceUse {
                nonce,
                cancel: true,
            }),
        }
    }

    /// What the proof of its fate needs.
    #[must_use]
    pub fn key(&self) -> AttemptKey {
        AttemptKey {
            signature: self.signature,
            blockhash: self.blockhash,
            valid_at_slot: self.valid_at_slot,
        }
    }
}

/// How an attempt was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It landed and succeeded.
    Landed,
    /// It landed with an on-chain error, or was refused before it could be forwarded.
    Failed(ErrorClass),
    /// It was proven unable to land.
    Expired,
}

/// How an intent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentOutcome {
    /// One transaction landed with this fill, read from the ledger.
    Filled(Fill),
    /// One transaction landed but its fill could not be read yet: the input and the
    /// quote's minimum output stand in (a lower bound) until reconciliation reads it.
    Landed {
        /// The transaction that landed.
        signature: TxSignature,
        /// The provisional fill.
        provisional: Fill,
    },
    /// No transaction landed and none can.
    Failed,
}

impl IntentOutcome {
    /// The fill the position was settled with, exact or provisional.
    #[must_use]
    pub fn fill(&self) -> Option<Fill> {
        match self {
            IntentOutcome::Filled(fill)
            | IntentOutcome::Landed {
                provisional: fill, ..
            } => Some(*fill),
            IntentOutcome::Failed => None,
        }
    }
}

/// A position as journaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionRecord {
    /// Its id.
    pub position: PositionId,
    /// Average entry price.
    pub entry_price: Price,
    /// Size at entry.
    pub size: Size,
    /// What is still held.
    pub remaining: TokenAmount,
}

/// An intent that was never resolved, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedIntent {
    /// The intent.
    pub intent: IntentRecord,
    /// Its attempts with any outcome known so far, oldest first.
    pub attempts: Vec<(AttemptRecord, Option<AttemptOutcome>)>,
}

/// An intent that landed while its fill could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadFill {
    /// The intent.
    pub intent: IntentRecord,
    /// The transaction that landed.
    pub signature: TxSignature,
    /// The provisional fill it was settled with.
    pub provisional: Fill,
}

/// What the journal holds that start-up must act on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JournalSnapshot {
    /// Positions with something left.
    pub open_positions: Vec<PositionRecord>,
    /// Intents without an outcome.
    pub unresolved: Vec<UnresolvedIntent>,
    /// Intents settled with a provisional fill.
    pub unread_fills: Vec<UnreadFill>,
    /// The last trading state written, if any.
    pub trading_state: Option<TradingState>,
    /// Consecutive failed exits the exit breaker had counted.
    pub consecutive_failed_exits: u32,
    /// The wallet's base holdings beyond the open positions at the last reconciliation.
    pub free_base: Option<TokenAmount>,
    /// The lowest id not yet used by any position or intent.
    pub next_id: u64,
}

/// An intent with everything known of it: for the exit history an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentHistory {
    /// The intent.
    pub intent: IntentRecord,
    /// How it ended, if it has.
    pub outcome: Option<IntentOutcome>,
    /// Its attempts, oldest first, with their outcomes.
    pub attempts: Vec<(AttemptRecord, Option<AttemptOutcome>)>,
}

impl IntentHistory {
    /// One line for an operator: intent, position, kind, attempts (with the durable
    /// nonces they were built on and how many were cancels) and how it ended.
    #[must_use]
    pub fn summary(&self) -> String {
        let kind = match self.intent.action {
            IntentAction::Exit(kind) => kind.as_str(),
            IntentAction::Enter => "entry",
        };
        let outcome = match self.outcome {
            Some(IntentOutcome::Filled(fill)) => format!(
                "filled: {} in -> {} out, fee paid {} lamports",
                fill.amount_in,
                fill.amount_out,
                fill.fee.get()
            ),
            Some(IntentOutcome::Landed {
                provisional: fill, ..
            }) => format!(
                "landed: {} in -> at least {} out (fill not read yet)",
                fill.amount_in, fill.amount_out
            ),
            Some(IntentOutcome::Failed) => "failed".to_owned(),
            None => "unresolved".to_owned(),
        };
        let bid: u64 = self
            .attempts
            .iter()
            .map(|(a, _)| a.priority_fee.get())
            .fold(0, u64::saturating_add);
        format!(
            "{} {} {kind} attempts {}{} (priority fees bid {bid} lamports) {outcome}",
            self.intent.intent,
            self.intent.position,
            self.attempts.len(),
            self.nonce_summary()
        )
    }

    /// ` on durable nonce <account> including <n> cancel(s)`, or nothing for attempts on
    /// recent blockhashes alone.
    fn nonce_summary(&self) -> String {
        let mut accounts: Vec<NonceAccount> = self
            .attempts
            .iter()
            .filter_map(|(a, _)| a.nonce.map(|n| n.nonce.account))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        if accounts.is_empty() {
            return String::new();
        }
        let cancels = self
            .attempts
            .iter()
            .filter(|(a, _)| a.nonce.is_some_and(|n| n.cancel))
            .count();
        let names: Vec<String> = accounts.iter().map(text::nonce_account_text).collect();
        let mut out = format!(
            " on durable nonce{} {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        match cancels {
            0 => {}
            1 => out.push_str(" including 1 cancel"),
            n => out.push_str(&format!(" including {n} cancels")),
        }
        out
    }
}

/// The durable journal. Every write returns only once it is durable; a failed write
/// before a send means the send does not happen.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Records a new intent.
    ///
    /// # Errors
    /// The write failed (class `Unknown`).
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError>;

    /// Records an attempt; called before its transaction is sent.
    ///
    /// # Errors
    /// The write failed.
    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError>;

    /// Records how an attempt was resolved.
    ///
    /// # Errors
    /// The write failed.
    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError>;

    /// Records one exit-state transition (the audit trail).
    ///
    /// # Errors
    /// The write failed.
    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError>;

    /// Records how an intent ended and the position it leaves (if it changed one) in
    /// one durable step: after a crash, both are there or neither is, so a fill is never
    /// journaled without its effect on the position (or applied twice).
    ///
    /// # Errors
    /// The write failed; nothing was written.
    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError>;

    /// Records the trading state (so a halt survives a restart).
    ///
    /// # Errors
    /// The write failed.
    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError>;

    /// Records the exit breaker's count of consecutive failed exits (so a restart does
    /// not forget failures toward a halt).
    ///
    /// # Errors
    /// The write failed.
    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError>;

    /// Records the wallet's base holdings beyond the open positions, as reconciliation
    /// found them (the next one compares).
    ///
    /// # Errors
    /// The write failed.
    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError>;

    /// A position as last written, open or closed; `None` when none was ever written.
    ///
    /// # Errors
    /// The read failed or the stored row is invalid.
    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError>;

    /// Reads what start-up needs.
    ///
    /// # Errors
    /// The read failed or the stored data is invalid.
    async fn load(&self) -> Result<JournalSnapshot, PortError>;

    /// The latest `limit` exit intents, newest first.
    ///
    /// # Errors
    /// The read failed or the stored data is invalid.
    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError>;
}

#[derive(Debug, Default)]
struct MemoryState {
    positions: BTreeMap<PositionId, PositionRecord>,
    intents: BTreeMap<IntentId, (IntentRecord, Option<IntentOutcome>)>,
    attempts: BTreeMap<(IntentId, u32), (AttemptRecord, Option<AttemptOutcome>)>,
    transitions: Vec<(IntentId, Transition)>,
    trading_state: Option<TradingState>,
    exit_failures: u32,
    free_base: Option<TokenAmount>,
}

/// A journal in memory: for simulations (thousands of runs) and tests. It survives
/// nothing; the durable journal is an adapter.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    state: Mutex<MemoryState>,
}

impl MemoryJournal {
    /// An empty journal.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Every attempt recorded, in (intent, attempt) order.
    #[must_use]
    pub fn attempts(&self) -> Vec<(AttemptRecord, Option<AttemptOutcome>)> {
        self.with(|s| s.attempts.values().copied().collect())
    }

    /// Every transition recorded for `intent`, oldest first.
    #[must_use]
    pub fn transitions(&self, intent: IntentId) -> Vec<Transition> {
        self.with(|s| {
            s.transitions
                .iter()
                .filter(|(i, _)| *i == intent)
                .map(|(_, t)| *t)
                .collect()
        })
    }

    /// Every intent with its outcome.
    #[must_use]
    pub fn intents(&self) -> Vec<(IntentRecord, Option<IntentOutcome>)> {
        self.with(|s| s.intents.values().copied().collect())
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError> {
        self.with(|s| s.intents.insert(intent.intent, (*intent, None)));
        Ok(())
    }

    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError> {
        self.with(|s| {
            s.attempts
                .insert((attempt.intent, attempt.attempt), (*attempt, None))
        });
        Ok(())
    }

    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        self.with(|s| {
            if let Some(entry) = s.attempts.get_mut(&(intent, attempt)) {
                entry.1 = Some(outcome);
            }
        });
        Ok(())
    }

    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError> {
        self.with(|s| s.transitions.push((intent, *transition)));
        Ok(())
    }

    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        self.with(|s| {
            if let Some(entry) = s.intents.get_mut(&intent) {
                entry.1 = Some(*outcome);
            }
            if let Some(position) = position {
                s.positions.insert(position.position, *position);
            }
        });
        Ok(())
    }

    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        self.with(|s| s.trading_state = Some(state.clone()));
        Ok(())
    }

    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        self.with(|s| s.exit_failures = consecutive);
        Ok(())
    }

    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        self.with(|s| s.free_base = Some(free));
        Ok(())
    }

    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        Ok(self.with(|s| s.positions.get(&id).copied()))
    }

    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        Ok(self.with(|s| {
            let unresolved = s
                .intents
                .values()
                .filter(|(_, outcome)| outcome.is_none())
                .map(|(intent, _)| UnresolvedIntent {
                    intent: *intent,
                    attempts: s
                        .attempts
                        .range((intent.intent, 0)..=(intent.intent, u32::MAX))
                        .map(|(_, a)| *a)
                        .collect(),
                })
                .collect();
            let unread_fills = s
                .intents
                .values()
                .filter_map(|(intent, outcome)| match outcome {
                    Some(IntentOutcome::Landed {
                        signature,
                        provisional,
                    }) => Some(UnreadFill {
                        intent: *intent,
                        signature: *signature,
                        provisional: *provisional,
                    }),
                    _ => None,
                })
                .collect();
            let max_position = s.positions.keys().map(|p| p.0).max().unwrap_or(0);
            let max_intent = s.intents.keys().map(|i| i.0).max().unwrap_or(0);
            JournalSnapshot {
                open_positions: s
                    .positions
                    .values()
                    .filter(|p| !p.remaining.is_zero())
                    .copied()
                    .collect(),
                unresolved,
                unread_fills,
                trading_state: s.trading_state.clone(),
                consecutive_failed_exits: s.exit_failures,
                free_base: s.free_base,
                next_id: max_position.max(max_intent) + 1,
            }
        }))
    }

    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        Ok(self.with(|s| {
            s.intents
                .values()
                .rev()
                .filter(|(i, _)| matches!(i.action, IntentAction::Exit(_)))
                .take(limit)
                .map(|(intent, outcome)| IntentHistory {
                    intent: *intent,
                    outcome: *outcome,
                    attempts: s
                        .attempts
                        .range((intent.intent, 0)..=(intent.intent, u32::MAX))
                        .map(|(_, a)| *a)
                        .collect(),
                })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(attempts: &[Option<NonceUse>]) -> IntentHistory {
        IntentHistory {
            intent: IntentRecord {
                intent: IntentId(4),
                position: PositionId(2),
                action: IntentAction::Exit(ExitKind::StopLoss),
                side: Side::Sell,
                amount_in: TokenAmount::new(1_000),
                created_at: Timestamp::ZERO,
            },
            outcome: None,
            attempts: (1..)
                .zip(attempts)
                .map(|(attempt, &nonce)| {
                    let record = AttemptRecord {
                        intent: IntentId(4),
                        attempt,
                        signature: TxSignature([7; 64]),
                        blockhash: nonce.map_or(Blockhash([1; 32]), |n| n.nonce.value),
                        valid_at_slot: 10,
                        last_valid_block_height: 20,
                        slippage: Slippage::from_bps(100).unwrap(),
                        priority_fee: Lamports::new(5_000),
                        amount_in: TokenAmount::new(1_000),
                        min_out: TokenAmount::new(9),
                        sent_at: Timestamp::ZERO,
                        nonce,
                    };
                    (record, None)
                })
                .collect(),
        }
    }

    #[test]
    fn the_summary_names_the_nonce_and_counts_the_cancels() {
        let nonce = |account: u8, cancel: bool| {
            Some(NonceUse {
                nonce: DurableNonce {
                    account: NonceAccount([account; 32]),
                    value: Blockhash([9; 32]),
                },
                cancel,
            })
        };
        let a = text::nonce_account_text(&NonceAccount([0xAA; 32]));
        let b = text::nonce_account_text(&NonceAccount([0xBB; 32]));
        let cases = [
            (vec![None, None], "attempts 2 (".to_owned()),
            (
                vec![nonce(0xAA, false), nonce(0xAA, false)],
                format!("attempts 2 on durable nonce {a} ("),
            ),
            (
                vec![nonce(0xAA, false), nonce(0xAA, true)],
                format!("attempts 2 on durable nonce {a} including 1 cancel ("),
            ),
            (
                vec![
                    None,
                    nonce(0xBB, true),
                    nonce(0xAA, false),
                    nonce(0xAA, true),
                ],
                format!("attempts 4 on durable nonces {a}, {b} including 2 cancels ("),
            ),
        ];
        for (attempts, expected) in cases {
            let summary = history(&attempts).summary();
            assert!(
                summary.starts_with(&format!("intent-4 pos-2 stop_loss {expected}")),
                "{summary}"
            );
            assert!(summary.ends_with("lamports) unresolved"), "{summary}");
        }
    }
}
