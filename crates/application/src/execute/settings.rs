//! How the engine executes: the retry policy, the ladder, the deadline, the blockhash
//! lives asked for, the timeouts, the commitment, the fee reserve and the fill wait (how
//! long one call or send may take is the latency guard's, per dependency).

use super::*;
use crate::ports::NonceAccount;

/// How an intent is executed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionSettings {
    /// Bounds the number of transactions and the time in which new ones may start.
    pub policy: RetryPolicy,
    /// Slippage, priority fee and style per attempt.
    pub ladder: EscalationLadder,
    /// From signal to closure (30 s for exits).
    pub deadline: Duration,
    /// Blockhash life asked of the router for market-style rungs, in slots, so attempts
    /// die quickly.
    pub expiry_slots: u32,
    /// Blockhash life for limit-style (tight slippage) rungs: a tight quote goes stale
    /// fast in a moving market, so such an attempt is let die sooner.
    pub limit_expiry_slots: u32,
    /// Expected time per slot, to estimate when an attempt expires.
    pub slot_time: Duration,
    /// How often a live attempt's status is polled.
    pub poll_interval: Duration,
    /// How often a live attempt's same bytes are sent again.
    pub rebroadcast_interval: Duration,
    /// After this long without confirmation an attempt is marked timed out (it stays live).
    pub confirm_timeout: Duration,
    /// How long one preparation (balance, quote, build, sign, blockhash check) may take.
    /// A failed preparation sent nothing: it is tried again, with backoff, for as long as
    /// the retry budget leaves room for the attempt it prepares.
    pub prepare_call_timeout: Duration,
    /// The commitment at which a landing counts.
    pub commitment: Commitment,
    /// Lamports a full exit of SOL leaves in the wallet for fees and rent (SOL pays both).
    pub fee_reserve: Lamports,
    /// How long a landed transaction's fill is looked for before the quote's minimum is
    /// used as a provisional fill (corrected once the fill can be read).
    pub fill_wait: Duration,
    /// Build every attempt on the wallet's durable nonce instead of a recent blockhash
    /// (see the `nonce` module); `None` keeps the blockhash path.
    pub nonce: Option<NonceSettings>,
}

/// Nonce mode: the account, and how long an attempt is in flight alone before the next
/// rung is sent beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceSettings {
    /// The wallet's nonce account (its authority is the wallet).
    pub account: NonceAccount,
    /// How long an attempt is in flight before the next rung is sent beside it (at once
    /// when every node refused it).
    pub escalate_after: Duration,
    /// The priority fee the cancel bids.
    pub cancel_fee: Lamports,
}

impl NonceSettings {
    /// The defaults on `account`: the next rung 1 s after the previous one, a cancel
    /// bidding 100,000 lamports.
    #[must_use]
    pub fn on(account: NonceAccount) -> Self {
        Self {
            account,
            escalate_after: Duration::from_millis(1000),
            cancel_fee: Lamports::new(100_000),
        }
    }
}

impl ExecutionSettings {
    /// The exit defaults: exit retry policy (2 attempts, 20 s), 1% then 5% ladder, 30 s
    /// deadline, 20-slot blockhash life, 0.01 SOL fee reserve.
    #[must_use]
    pub fn exit_defaults() -> Self {
        Self {
            policy: RetryPolicy::exit_policy(),
            ladder: EscalationLadder::default_ladder(),
            deadline: ExitDeadline::DEFAULT_WINDOW,
            expiry_slots: 20,
            limit_expiry_slots: 10,
            slot_time: Duration::from_millis(400),
            poll_interval: Duration::from_millis(400),
            rebroadcast_interval: Duration::from_millis(400),
            confirm_timeout: Duration::from_secs(2),
            prepare_call_timeout: Duration::from_secs(5),
            commitment: Commitment::Confirmed,
            fee_reserve: Lamports::new(10_000_000),
            fill_wait: Duration::from_secs(10),
            nonce: None,
        }
    }

    /// The entry defaults: default retry policy (3 attempts, 30 s) on the given ladder.
    #[must_use]
    pub fn entry_defaults(ladder: EscalationLadder) -> Self {
        let policy = RetryPolicy::default_policy();
        Self {
            policy,
            ladder,
            deadline: policy.total_budget,
            ..Self::exit_defaults()
        }
    }

    /// The blockhash life asked for an attempt on `rung`.
    #[must_use]
    pub fn expiry_for(&self, rung: &Rung) -> u32 {
        match rung.style {
            OrderStyle::LimitLike => self.limit_expiry_slots.min(self.expiry_slots),
            OrderStyle::Market => self.expiry_slots,
        }
    }

    /// The longest an attempt on `rung` is expected to live: its blockhash life plus the
    /// time to prove it expired.
    #[must_use]
    pub fn attempt_life(&self, rung: &Rung) -> Duration {
        self.slot_time * self.expiry_for(rung) + self.poll_interval * 2
    }
}
