//! The simulated chain's ground truth: slots and block heights (with skipped slots),
//! blockhashes and how long they stay valid, the transactions built, the copies on their
//! way to a leader, the landings on the main fork (and on abandoned forks), and the one
//! wallet they move.
//!
//! Nothing here knows about RPC nodes: a node's answer is this truth seen from its view
//! slot (see `cluster`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kyzlo_application::ports::{Balances, Blockhash, Commitment, Fill, NonceAccount, Side};
use kyzlo_domain::{Lamports, TokenAmount, TxSignature};

use crate::rng::SimRng;
use crate::wallet::{LedgerStatus, SimWallet};

/// Blocks a blockhash stays valid for (Solana's `MAX_PROCESSING_AGE`).
pub const BLOCKHASH_LIFE: u64 = 150;
/// Slots after which a landing is rooted.
pub const FINALIZE_SLOTS: u64 = 32;
/// The least lamports a fee payer must keep (rent exemption of a bare account).
pub const RENT_EXEMPT_MINIMUM: u64 = 890_880;

const STREAM_SKIP: u64 = 101;
const STREAM_FORK: u64 = 102;
const STREAM_CONFIRM: u64 = 103;
const STREAM_FILL: u64 = 104;
const NONCE_MAGIC: &[u8; 4] = b"KNC1";

/// What the wallet holds. With a native base token (SOL), the base holding *is* the
/// lamports that also pay fees and rent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Holdings {
    pub lamports: u64,
    pub token: u64,
    pub quote: u64,
}

impl Holdings {
    pub(crate) fn from_wallet(w: SimWallet, native: bool) -> Self {
        if native {
            Self {
                lamports: w.base.get().saturating_add(w.fee_lamports.get()),
                token: 0,
                quote: w.quote.get(),
            }
        } else {
            Self {
                lamports: w.fee_lamports.get(),
                token: w.base.get(),
                quote: w.quote.get(),
            }
        }
    }

    /// As a wallet: with a native base the one balance is the base, and no separate fee
    /// lamports ([`Holdings::from_wallet`] of it gives these holdings back).
    pub(crate) fn to_wallet(self, native: bool) -> SimWallet {
        if native {
            SimWallet {
                base: TokenAmount::new(self.lamports),
                quote: TokenAmount::new(self.quote),
                fee_lamports: Lamports::new(0),
            }
        } else {
            SimWallet {
                base: TokenAmount::new(self.token),
                quote: TokenAmount::new(self.quote),
                fee_lamports: Lamports::new(self.lamports),
            }
        }
    }

    /// As the chain port reports them: the base and the lamports for fees (with a native
    /// base, the same lamports in both).
    pub(crate) fn to_balances(self, native: bool) -> Balances {
        Balances {
            base: TokenAmount::new(if native { self.lamports } else { self.token }),
            quote: TokenAmount::new(self.quote),
            fee_lamports: Lamports::new(self.lamports),
        }
    }

    fn base(&self, native: bool) -> u64 {
        if native { self.lamports } else { self.token }
    }
}

/// A signed change of holdings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Delta {
    lamports: i128,
    token: i128,
    quote: i128,
}

impl Delta {
    fn apply(self, h: &mut Holdings) {
        let add = |v: &mut u64, d: i128| {
            *v = u64::try_from((i128::from(*v) + d).max(0)).unwrap_or(u64::MAX);
        };
        add(&mut h.lamports, self.lamports);
        add(&mut h.token, self.token);
        add(&mut h.quote, self.quote);
    }
}

/// A transaction as the router built it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Built {
    pub side: Side,
    pub amount_in: TokenAmount,
    pub min_out: TokenAmount,
    pub priority_fee: Lamports,
    /// The slot whose blockhash it carries.
    pub blockhash_slot: u64,
    /// The last block height at which it can land (from its real blockhash, whatever
    /// the router reported); unbounded on a durable nonce.
    pub last_valid: u64,
    /// The durable nonce it is built on, if any.
    pub nonce: Option<BuiltNonce>,
}

/// How a transaction uses the wallet's durable nonce (the router always puts the
/// advance first, as the chain requires of a transaction on a nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BuiltNonce {
    /// The value it carries as its blockhash.
    pub value: Blockhash,
    /// Whether it is a cancel (the advance alone: it swaps nothing).
    pub cancel: bool,
}

/// The wallet's nonce account: its address and the value it held at the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NonceState {
    pub account: NonceAccount,
    pub initial: Blockhash,
}

/// One landing on the main fork: final once made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Landed {
    pub signature: TxSignature,
    pub side: Side,
    pub slot: u64,
    pub confirm_slot: u64,
    pub at: Duration,
    pub status: LedgerStatus,
    pub fill: Fill,
    /// Before this run time, the transaction's details cannot be read.
    pub readable_at: Duration,
    /// The nonce's new value, when the transaction was built on it (landing, even with
    /// an error, advances it).
    pub nonce_after: Option<Blockhash>,
    /// Whether it was a cancel.
    pub cancel: bool,
    delta: Delta,
}

/// A landing on a fork the cluster abandoned: visible as processed on
/// `[slot, until)` and never applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phantom {
    pub slot: u64,
    pub until: u64,
}

#[derive(Debug, Clone)]
struct Tx {
    signature: TxSignature,
    built: Built,
    landed: Option<usize>,
    phantom: Option<Phantom>,
}

/// Where a landing attempt of a forwarded copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyEnd {
    /// It landed on the main fork (index into the landings).
    Landed(usize),
    /// It landed on a fork that was then abandoned.
    Forked,
    /// The transaction had already landed: nothing happens twice.
    Duplicate,
    /// Its blockhash had expired when it reached the leader.
    Expired,
    /// The fee payer could not pay the fee: the leader dropped it.
    Unpayable,
}

/// The chain's settings, fixed for a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainRules {
    pub seed: u64,
    pub slot_time: Duration,
    /// The first slot (and block height) of this chain.
    pub base_slot: u64,
    pub skipped_slots: f64,
    pub forks: f64,
    pub confirm_slots: (u64, u64),
    pub fill_delay: Duration,
    pub native_base: bool,
}

/// The chain's ground truth (see the module docs).
#[derive(Debug)]
pub(crate) struct Ledger {
    rules: ChainRules,
    /// Block height at `base_slot + i`, extended on demand.
    heights: Vec<u64>,
    txs: HashMap<TxSignature, Tx>,
    /// Copies on their way to a leader: (arrival, sequence) -> signature.
    arrivals: BTreeMap<(Duration, u64), TxSignature>,
    arrival_seq: u64,
    landings: Vec<Landed>,
    /// Balances after every landing so far (processed on the main fork).
    tip: Holdings,
    initial: Holdings,
    fees_paid: u64,
    nonce: Option<NonceState>,
}

/// What a swap of `amount_in` on `side` landing at a run time pays out, after the venue's
/// slippage and noise.
pub(crate) type SwapOut<'a> = dyn Fn(Duration, Side, TokenAmount) -> u64 + 'a;

impl Ledger {
    pub(crate) fn new(rules: ChainRules, initial: Holdings) -> Self {
        Self {
            rules,
            heights: vec![rules.base_slot],
            txs: HashMap::new(),
            arrivals: BTreeMap::new(),
            arrival_seq: 0,
            landings: Vec::new(),
            tip: initial,
            initial,
            fees_paid: 0,
            nonce: None,
        }
    }

    /// Opens the wallet's nonce account (its authority the wallet), holding a value
    /// derived from the chain's first slot: values never repeat across sessions whose
    /// slots continue.
    pub(crate) fn open_nonce(&mut self, account: NonceAccount) {
        let initial = self.nonce_value(self.rules.base_slot.saturating_sub(1));
        self.nonce = Some(NonceState { account, initial });
    }

    /// The nonce account, if the wallet has one.
    pub(crate) fn nonce_account(&self) -> Option<NonceAccount> {
        self.nonce.map(|n| n.account)
    }

    /// The value an advance in `slot` stores: unique per slot of this chain.
    fn nonce_value(&self, slot: u64) -> Blockhash {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(NONCE_MAGIC);
        hash[4..12].copy_from_slice(&self.rules.seed.to_le_bytes());
        hash[12..20].copy_from_slice(&slot.to_le_bytes());
        hash[20..28].copy_from_slice(&crate::rng::mix64(slot ^ self.rules.seed).to_le_bytes());
        Blockhash(hash)
    }

    /// The nonce's value as a node at `view` sees it at `commitment` (`None` without a
    /// nonce account).
    pub(crate) fn nonce_at(&self, view: u64, commitment: Commitment) -> Option<Blockhash> {
        let state = self.nonce?;
        let mut value = state.initial;
        for l in &self.landings {
            let seen = match commitment {
                Commitment::Processed => l.slot <= view,
                Commitment::Confirmed | Commitment::Finalized => l.confirm_slot <= view,
            };
            if seen && let Some(after) = l.nonce_after {
                value = after;
            }
        }
        Some(value)
    }

    /// The nonce's value after every landing so far.
    pub(crate) fn nonce_tip(&self) -> Option<Blockhash> {
        let state = self.nonce?;
        Some(
            self.landings
                .iter()
                .rev()
                .find_map(|l| l.nonce_after)
                .unwrap_or(state.initial),
        )
    }

    /// The tip slot at run time `t`.
    pub(crate) fn slot_at(&self, t: Duration) -> u64 {
        let n = t.as_nanos() / self.rules.slot_time.as_nanos().max(1);
        self.rules
            .base_slot
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// The run time at which `slot` begins.
    pub(crate) fn time_of(&self, slot: u64) -> Duration {
        let n = slot.saturating_sub(self.rules.base_slot);
        let nanos = self
            .rules
            .slot_time
            .as_nanos()
            .saturating_mul(u128::from(n));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Whether `slot` produced no block.
    pub(crate) fn skipped(&self, slot: u64) -> bool {
        slot > self.rules.base_slot
            && self.rules.skipped_slots > 0.0
            && SimRng::keyed(self.rules.seed, STREAM_SKIP, slot).uniform()
                < self.rules.skipped_slots
    }

    /// The block height at `slot` (the number of blocks up to it). Before the run's
    /// first slot the chain had a block in every slot.
    pub(crate) fn height(&mut self, slot: u64) -> u64 {
        if slot < self.rules.base_slot {
            return slot;
        }
        if self.rules.skipped_slots <= 0.0 {
            return slot;
        }
        let index = usize::try_from(slot - self.rules.base_slot).unwrap_or(usize::MAX);
        while self.heights.len() <= index {
            let next_slot = self.rules.base_slot + self.heights.len() as u64;
            let last = *self.heights.last().unwrap_or(&self.rules.base_slot);
            let h = if self.skipped(next_slot) {
                last
            } else {
                last + 1
            };
            self.heights.push(h);
        }
        self.heights[index]
    }

    /// The latest slot with a block at or before `slot` whose height is at most
    /// `height` (never more than a blockhash's life before the run's first slot).
    pub(crate) fn block_at_height(&mut self, slot: u64, height: u64) -> u64 {
        let floor = self.rules.base_slot.saturating_sub(2 * BLOCKHASH_LIFE);
        let mut s = slot;
        while s > floor && (self.skipped(s) || self.height(s) > height) {
            s -= 1;
        }
        s
    }

    /// The first slot with a block at or after `slot`.
    fn next_block(&self, slot: u64) -> u64 {
        let mut s = slot;
        while self.skipped(s) {
            s += 1;
        }
        s
    }

    /// Registers a built transaction.
    pub(crate) fn insert(&mut self, signature: TxSignature, built: Built) {
        self.txs.insert(
            signature,
            Tx {
                signature,
                built,
                landed: None,
                phantom: None,
            },
        );
    }

    pub(crate) fn built(&self, signature: &TxSignature) -> Option<Built> {
        self.txs.get(signature).map(|t| t.built)
    }

    /// The main-fork landing of `signature`, if any.
    pub(crate) fn landing(&self, signature: &TxSignature) -> Option<&Landed> {
        self.txs
            .get(signature)
            .and_then(|t| t.landed)
            .and_then(|i| self.landings.get(i))
    }

    /// The abandoned-fork landing of `signature`, if any.
    pub(crate) fn phantom(&self, signature: &TxSignature) -> Option<Phantom> {
        self.txs.get(signature).and_then(|t| t.phantom)
    }

    /// Every main-fork landing, in landing order.
    pub(crate) fn landings(&self) -> &[Landed] {
        &self.landings
    }

    pub(crate) fn fees_paid(&self) -> u64 {
        self.fees_paid
    }

    /// The balances after every landing so far.
    pub(crate) fn tip(&self) -> Holdings {
        self.tip
    }

    /// The balances as a node at `view` sees them at `commitment`: the landings up to
    /// the view (processed) or confirmed by it.
    pub(crate) fn holdings_at(&self, view: u64, commitment: Commitment) -> Holdings {
        let mut h = self.initial;
        for l in &self.landings {
            let seen = match commitment {
                Commitment::Processed => l.slot <= view,
                Commitment::Confirmed | Commitment::Finalized => l.confirm_slot <= view,
            };
            if seen {
                l.delta.apply(&mut h);
            }
        }
        h
    }

    /// Schedules a copy of `signature` to reach a leader at `arrival`.
    pub(crate) fn forward(&mut self, signature: TxSignature, arrival: Duration) {
        self.arrival_seq += 1;
        self.arrivals.insert((arrival, self.arrival_seq), signature);
    }

    /// Lands, in arrival order, every copy that has reached a leader by `now`. Returns
    /// the new main-fork landings' indices.
    pub(crate) fn settle(&mut self, now: Duration, swap_out: &SwapOut<'_>) -> Vec<usize> {
        let mut new = Vec::new();
        while let Some((&(arrival, seq), _)) = self.arrivals.first_key_value() {
            if arrival > now {
                break;
            }
            let Some(signature) = self.arrivals.remove(&(arrival, seq)) else {
                break;
            };
            if let CopyEnd::Landed(i) = self.land(signature, arrival, swap_out) {
                new.push(i);
            }
        }
        new
    }

    /// One copy reaches a leader at `arrival`.
    fn land(
        &mut self,
        signature: TxSignature,
        arrival: Duration,
        swap_out: &SwapOut<'_>,
    ) -> CopyEnd {
        let Some(tx) = self.txs.get(&signature).cloned() else {
            return CopyEnd::Duplicate;
        };
        if tx.landed.is_some() {
            return CopyEnd::Duplicate;
        }
        let slot = self.next_block(self.slot_at(arrival));
        if let Some(p) = tx.phantom
            && slot < p.until
        {
            // The leader of an abandoned fork holds it; this copy met the same fate.
            return CopyEnd::Forked;
        }
        let b = tx.built;
        let nonce_after = match b.nonce {
            // A durable nonce's value is no recent blockhash: once the account holds
            // another value, the transaction is refused unpaid (as an unknown
            // blockhash). The advance stores one value per slot: a second advance in the
            // slot of the first is refused too.
            Some(n) => {
                let next = self.nonce_value(slot);
                if self.nonce_tip() != Some(n.value) || n.value == next {
                    return CopyEnd::Expired;
                }
                Some(next)
            }
            None if self.height(slot) > b.last_valid => return CopyEnd::Expired,
            None => None,
        };
        let at = arrival.max(self.time_of(slot));
        let fee = 5_000 + b.priority_fee.get();
        // The leader drops a transaction whose fee payer cannot pay and stay rent-exempt.
        if self.tip.lamports < fee.saturating_add(RENT_EXEMPT_MINIMUM) {
            return CopyEnd::Unpayable;
        }
        if self.rules.forks > 0.0
            && SimRng::keyed(self.rules.seed, STREAM_FORK, slot).uniform() < self.rules.forks
        {
            let mut rng = SimRng::keyed(self.rules.seed, STREAM_FORK, slot ^ 0x5eed);
            let until = slot + 2 + rng.next_u64() % 5;
            if let Some(t) = self.txs.get_mut(&signature) {
                t.phantom = Some(Phantom { slot, until });
            }
            return CopyEnd::Forked;
        }
        let native = self.rules.native_base;
        let cancel = b.nonce.is_some_and(|n| n.cancel);
        let out = if cancel {
            0
        } else {
            swap_out(at, b.side, b.amount_in)
        };
        let mut delta = Delta {
            lamports: -i128::from(fee),
            ..Delta::default()
        };
        let held = match b.side {
            Side::Sell => self.tip.base(native),
            Side::Buy => self.tip.quote,
        };
        // Lamports the fee payer keeps if the swap goes through.
        let lamports_after = match (b.side, native) {
            (Side::Sell, true) => self.tip.lamports.checked_sub(fee + b.amount_in.get()),
            _ => self.tip.lamports.checked_sub(fee),
        };
        let status = if cancel {
            LedgerStatus::Ok
        } else if held < b.amount_in.get() || lamports_after.is_none_or(|l| l < RENT_EXEMPT_MINIMUM)
        {
            LedgerStatus::InsufficientFunds
        } else if out < b.min_out.get() {
            LedgerStatus::SlippageExceeded
        } else {
            LedgerStatus::Ok
        };
        let ok = status == LedgerStatus::Ok;
        if ok && !cancel {
            let amount_in = i128::from(b.amount_in.get());
            let out = i128::from(out);
            match (b.side, native) {
                (Side::Sell, true) => {
                    delta.lamports -= amount_in;
                    delta.quote += out;
                }
                (Side::Sell, false) => {
                    delta.token -= amount_in;
                    delta.quote += out;
                }
                (Side::Buy, true) => {
                    delta.quote -= amount_in;
                    delta.lamports += out;
                }
                (Side::Buy, false) => {
                    delta.quote -= amount_in;
                    delta.token += out;
                }
            }
        }
        delta.apply(&mut self.tip);
        self.fees_paid = self.fees_paid.saturating_add(fee);
        let mut rng = SimRng::keyed(self.rules.seed, STREAM_CONFIRM, slot);
        let (lo, hi) = self.rules.confirm_slots;
        let confirm_slot = slot + lo + rng.next_u64() % (hi - lo + 1);
        let fill_delay = if self.rules.fill_delay.is_zero() {
            Duration::ZERO
        } else {
            self.rules
                .fill_delay
                .mul_f64(SimRng::keyed(self.rules.seed, STREAM_FILL, slot).uniform())
        };
        let fill = Fill {
            amount_in: if ok { b.amount_in } else { TokenAmount::ZERO },
            amount_out: TokenAmount::new(if ok { out } else { 0 }),
            fee: Lamports::new(fee),
        };
        let index = self.landings.len();
        self.landings.push(Landed {
            signature,
            side: b.side,
            slot,
            confirm_slot,
            at,
            status,
            fill,
            readable_at: at.saturating_add(fill_delay),
            nonce_after,
            cancel,
            delta,
        });
        if let Some(t) = self.txs.get_mut(&signature) {
            t.landed = Some(index);
            t.phantom = None;
        }
        tracing::debug!(signature = %tx.signature, slot, ?status, "simulated landing");
        CopyEnd::Landed(index)
    }

    /// Restores a landing recorded by an earlier session (paper mode): visible and
    /// final, its effect already in the balances the wallet file holds.
    pub(crate) fn restore(
        &mut self,
        signature: TxSignature,
        side: Side,
        slot: u64,
        status: LedgerStatus,
        fill: Fill,
    ) {
        let index = self.landings.len();
        self.landings.push(Landed {
            signature,
            side,
            slot,
            confirm_slot: slot,
            at: Duration::ZERO,
            status,
            fill,
            readable_at: Duration::ZERO,
            nonce_after: None,
            cancel: false,
            delta: Delta::default(),
        });
        self.txs.insert(
            signature,
            Tx {
                signature,
                built: Built {
                    side,
                    amount_in: fill.amount_in,
                    min_out: TokenAmount::ZERO,
                    priority_fee: Lamports::new(0),
                    blockhash_slot: slot,
                    last_valid: slot,
                    nonce: None,
                },
                landed: Some(index),
                phantom: None,
            },
        );
    }
}
