//! `[exit]`, `[retry]` and `[exit_retry]`: how exits and entries are executed.

use std::time::Duration;

use kyzlo_application::execute::ExecutionSettings;
use kyzlo_application::ports::Commitment;
use kyzlo_domain::ladder::{EscalationLadder, OrderStyle, Rung};
use kyzlo_domain::retry::RetryPolicy;
use kyzlo_domain::{Lamports, Slippage};
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, domain, invalid, millis, positive_ms, positive_secs};

/// The largest fee reserve accepted: 10 SOL.
const MAX_FEE_RESERVE: u64 = 10_000_000_000;

/// How a rung's swap is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StyleFile {
    /// A tight swap with a short blockhash life.
    Limit,
    /// A wide swap.
    Market,
}

impl From<OrderStyle> for StyleFile {
    fn from(style: OrderStyle) -> Self {
        match style {
            OrderStyle::LimitLike => Self::Limit,
            OrderStyle::Market => Self::Market,
        }
    }
}

impl From<StyleFile> for OrderStyle {
    fn from(style: StyleFile) -> Self {
        match style {
            StyleFile::Limit => Self::LimitLike,
            StyleFile::Market => Self::Market,
        }
    }
}

/// One escalation rung as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungFile {
    /// Slippage tolerance.
    pub slippage_bps: u16,
    /// Priority fee bid.
    pub priority_fee_lamports: u64,
    /// `limit` or `market`.
    pub style: StyleFile,
}

/// `[exit]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExitFile {
    /// From the signal to the exit's end, at most.
    pub deadline_s: f64,
    /// Blockhash life asked of the router for market-style rungs.
    pub expiry_slots: u32,
    /// Blockhash life for limit-style rungs.
    pub limit_expiry_slots: u32,
    /// The cluster's expected slot time.
    pub slot_time_ms: u64,
    /// How often a live attempt's status is read.
    pub poll_interval_ms: u64,
    /// How often a live attempt's bytes are sent again.
    pub rebroadcast_interval_ms: u64,
    /// How long one send may take before the engine moves on (the transaction may still
    /// have been forwarded; the rebroadcast gives it another chance); overridden by
    /// `latency_breaker.rpc_sends.call_timeout_ms`.
    pub send_timeout_ms: u64,
    /// After this long unconfirmed an attempt is marked timed out (it stays live).
    pub confirm_timeout_ms: u64,
    /// The timeout of a price read, a quote, a swap build and a chain read; overridden per
    /// dependency by `latency_breaker.<jupiter|rpc_reads>.call_timeout_ms`.
    pub call_timeout_ms: u64,
    /// The escalation ladder, tightest first.
    pub ladder: Vec<RungFile>,
    /// No rung may ask for more slippage.
    pub max_slippage_bps: u16,
    /// Entries' slippage.
    pub entry_slippage_bps: u16,
    /// Entries' priority fee.
    pub entry_priority_fee_lamports: u64,
    /// Lamports a full exit of SOL leaves for fees and rent.
    pub fee_reserve_lamports: u64,
    /// How long a landed transaction's fill is looked for before the quote's minimum
    /// stands in for it.
    pub fill_wait_ms: u64,
}

impl Default for ExitFile {
    fn default() -> Self {
        let s = ExecutionSettings::exit_defaults();
        Self {
            deadline_s: s.deadline.as_secs_f64(),
            expiry_slots: s.expiry_slots,
            limit_expiry_slots: s.limit_expiry_slots,
            slot_time_ms: millis(s.slot_time),
            poll_interval_ms: millis(s.poll_interval),
            rebroadcast_interval_ms: millis(s.rebroadcast_interval),
            send_timeout_ms: crate::breakers::SEND_TIMEOUT_MS,
            confirm_timeout_ms: millis(s.confirm_timeout),
            call_timeout_ms: crate::breakers::CALL_TIMEOUT_MS,
            fee_reserve_lamports: s.fee_reserve.get(),
            fill_wait_ms: millis(s.fill_wait),
            ladder: s
                .ladder
                .rungs()
                .iter()
                .map(|r| RungFile {
                    slippage_bps: r.slippage.bps().get(),
                    priority_fee_lamports: r.priority_fee.get(),
                    style: r.style.into(),
                })
                .collect(),
            max_slippage_bps: 500,
            entry_slippage_bps: 50,
            entry_priority_fee_lamports: 20_000,
        }
    }
}

/// `[retry]` (entries) or `[exit_retry]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Transactions sent at most.
    pub max_attempts: u32,
    /// Every attempt ends within this budget.
    pub total_s: f64,
    /// The first backoff's ceiling.
    pub initial_backoff_ms: u64,
    /// How the ceiling grows per retry.
    pub multiplier: f64,
    /// The backoff's cap.
    pub max_backoff_ms: u64,
}

impl RetryFile {
    pub(crate) fn from_policy(p: RetryPolicy) -> Self {
        Self {
            max_attempts: p.max_attempts,
            total_s: p.total_budget.as_secs_f64(),
            initial_backoff_ms: millis(p.initial_backoff),
            multiplier: p.multiplier,
            max_backoff_ms: millis(p.max_backoff),
        }
    }

    fn validate(&self, section: &'static str) -> Result<RetryPolicy, ConfigError> {
        let policy = RetryPolicy {
            max_attempts: self.max_attempts,
            total_budget: positive_secs(&format!("{section}.total_s"), self.total_s)?,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            multiplier: self.multiplier,
            max_backoff: Duration::from_millis(self.max_backoff_ms),
        };
        policy
            .validate(section)
            .map_err(|e| domain(e, section, self))?;
        Ok(policy)
    }
}

/// How exits and entries are executed, validated.
#[derive(Debug, Clone)]
pub struct Execution {
    pub exit: ExecutionSettings,
    /// Entries: the entry policy and one rung, the rest as exits.
    pub entry: ExecutionSettings,
}

pub(crate) fn validate(
    e: &ExitFile,
    exit_retry: &RetryFile,
    retry: &RetryFile,
) -> Result<Execution, ConfigError> {
    let max_slippage = Slippage::from_bps(e.max_slippage_bps)
        .map_err(|_| invalid("exit.max_slippage_bps", e.max_slippage_bps, "1 to 10000"))?;
    let mut rungs = Vec::new();
    for (i, r) in e.ladder.iter().enumerate() {
        rungs.push(Rung {
            slippage: Slippage::from_bps(r.slippage_bps).map_err(|_| {
                invalid(
                    format!("exit.ladder[{i}].slippage_bps"),
                    r.slippage_bps,
                    "1 to 10000",
                )
            })?,
            priority_fee: Lamports::new(r.priority_fee_lamports),
            style: r.style.into(),
        });
    }
    let ladder =
        EscalationLadder::new(rungs, max_slippage).map_err(|err| domain(err, "exit", e))?;
    if e.expiry_slots == 0 || e.expiry_slots > 150 {
        return Err(invalid(
            "exit.expiry_slots",
            e.expiry_slots,
            "1 to 150 slots",
        ));
    }
    if e.limit_expiry_slots == 0 || e.limit_expiry_slots > e.expiry_slots {
        return Err(invalid(
            "exit.limit_expiry_slots",
            e.limit_expiry_slots,
            "1 to exit.expiry_slots",
        ));
    }
    if e.fee_reserve_lamports > MAX_FEE_RESERVE {
        return Err(invalid(
            "exit.fee_reserve_lamports",
            e.fee_reserve_lamports,
            "0 to 10000000000 lamports (10 SOL)",
        ));
    }
    let exit = ExecutionSettings {
        policy: exit_retry.validate("exit_retry")?,
        ladder,
        deadline: positive_secs("exit.deadline_s", e.deadline_s)?,
        expiry_slots: e.expiry_slots,
        limit_expiry_slots: e.limit_expiry_slots,
        slot_time: positive_ms("exit.slot_time_ms", e.slot_time_ms)?,
        poll_interval: positive_ms("exit.poll_interval_ms", e.poll_interval_ms)?,
        rebroadcast_interval: positive_ms(
            "exit.rebroadcast_interval_ms",
            e.rebroadcast_interval_ms,
        )?,
        confirm_timeout: positive_ms("exit.confirm_timeout_ms", e.confirm_timeout_ms)?,
        prepare_call_timeout: ExecutionSettings::exit_defaults().prepare_call_timeout,
        commitment: Commitment::Confirmed,
        fee_reserve: Lamports::new(e.fee_reserve_lamports),
        fill_wait: positive_ms("exit.fill_wait_ms", e.fill_wait_ms)?,
        nonce: None,
    };
    let entry_ladder = EscalationLadder::new(
        vec![Rung {
            slippage: Slippage::from_bps(e.entry_slippage_bps).map_err(|_| {
                invalid(
                    "exit.entry_slippage_bps",
                    e.entry_slippage_bps,
                    "1 to the max slippage",
                )
            })?,
            priority_fee: Lamports::new(e.entry_priority_fee_lamports),
            style: OrderStyle::LimitLike,
        }],
        max_slippage,
    )
    .map_err(|err| {
        invalid(
            "exit.entry_slippage_bps",
            e.entry_slippage_bps,
            err.to_string(),
        )
    })?;
    let entry = ExecutionSettings {
        policy: retry.validate("retry")?,
        ladder: entry_ladder,
        deadline: positive_secs("retry.total_s", retry.total_s)?,
        ..exit.clone()
    };
    Ok(Execution { exit, entry })
}
