//! `[trading]`, `[strategy]` and `[exit_plan]`: what is traded, when, and how each
//! position is protected.

use std::time::Duration;

use kyzlo_application::ports::Pair;
use kyzlo_domain::exit_plan::{ExitPlanConfig, TakeProfitRung};
use kyzlo_domain::strategy::MeanReversionConfig;
use kyzlo_domain::{Bps, Fraction, TokenAmount};
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, bps, domain, invalid, positive_ms};

/// `[trading]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TradingFile {
    /// Quote tokens spent per entry (e.g. 100.0 USDC).
    pub entry_size: f64,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Milliseconds between ticks.
    pub tick_interval_ms: u64,
}

impl Default for TradingFile {
    fn default() -> Self {
        Self {
            entry_size: 100.0,
            max_positions: 1,
            tick_interval_ms: 1_000,
        }
    }
}

/// `[strategy]` as written: the mean-reversion strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyFile {
    /// Rolling window, in ticks.
    pub window: usize,
    /// Enter long when the z-score is at or below `-entry_z`.
    pub entry_z: f64,
    /// Exit when the z-score is at or above `exit_z`.
    pub exit_z: f64,
}

impl Default for StrategyFile {
    fn default() -> Self {
        let d = MeanReversionConfig::default();
        Self {
            window: d.window,
            entry_z: d.entry_z,
            exit_z: d.exit_z,
        }
    }
}

/// One take-profit rung as written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeProfitFile {
    /// Gain over entry, in bps.
    pub gain_bps: u16,
    /// Share of the original size sold, in bps.
    pub fraction_bps: u16,
}

/// `[exit_plan]` as written: every new position's exit plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExitPlanFile {
    /// Hard stop below entry, in bps.
    pub stop_loss_bps: u32,
    /// The trailing stop arms at this gain (0: no trailing stop).
    pub trailing_activation_bps: u16,
    /// The trailing stop's distance below the peak.
    pub trailing_distance_bps: u16,
    /// The breakeven stop arms at this gain (0: no breakeven stop).
    pub breakeven_trigger_bps: u16,
    /// The breakeven stop's level above entry.
    pub breakeven_offset_bps: u16,
    /// The take-profit ladder.
    pub take_profit: Vec<TakeProfitFile>,
}

impl Default for ExitPlanFile {
    fn default() -> Self {
        let d = ExitPlanConfig::default();
        Self {
            stop_loss_bps: u32::from(d.stop_loss.get()),
            trailing_activation_bps: d.trailing_activation.map_or(0, Bps::get),
            trailing_distance_bps: d.trailing_distance.get(),
            breakeven_trigger_bps: d.breakeven_trigger.map_or(0, Bps::get),
            breakeven_offset_bps: d.breakeven_offset.get(),
            take_profit: d
                .take_profit
                .iter()
                .map(|r| TakeProfitFile {
                    gain_bps: r.gain.get(),
                    fraction_bps: r.fraction.bps().get(),
                })
                .collect(),
        }
    }
}

/// What is traded and when, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Trading {
    /// Quote units spent per entry.
    pub entry_quote_amount: TokenAmount,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Between ticks.
    pub tick_interval: Duration,
    /// The strategy.
    pub strategy: MeanReversionConfig,
    /// Every new position's exit plan.
    pub exit_plan: ExitPlanConfig,
}

pub(crate) fn validate(
    t: &TradingFile,
    s: &StrategyFile,
    p: &ExitPlanFile,
    pair: Pair,
) -> Result<Trading, ConfigError> {
    if !(t.entry_size.is_finite() && t.entry_size > 0.0) {
        return Err(invalid(
            "trading.entry_size",
            t.entry_size,
            "a positive amount of the quote token",
        ));
    }
    let units = t.entry_size * 10f64.powi(i32::from(pair.quote_decimals));
    if units >= u64::MAX as f64 || units < 1.0 {
        return Err(invalid(
            "trading.entry_size",
            t.entry_size,
            "an amount of at least one base unit that fits in 64 bits",
        ));
    }
    if t.max_positions == 0 || t.max_positions > 10_000 {
        return Err(invalid(
            "trading.max_positions",
            t.max_positions,
            "1 to 10000",
        ));
    }
    let strategy = MeanReversionConfig {
        window: s.window,
        entry_z: s.entry_z,
        exit_z: s.exit_z,
    };
    strategy.validate().map_err(|e| domain(e, "strategy", s))?;
    Ok(Trading {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
        entry_quote_amount: TokenAmount::new(units as u64),
        max_positions: t.max_positions,
        tick_interval: positive_ms("trading.tick_interval_ms", t.tick_interval_ms)?,
        strategy,
        exit_plan: exit_plan(p)?,
    })
}

fn exit_plan(p: &ExitPlanFile) -> Result<ExitPlanConfig, ConfigError> {
    let stop_loss = u16::try_from(p.stop_loss_bps)
        .ok()
        .filter(|v| *v > 0 && *v < 10_000)
        .ok_or_else(|| {
            invalid(
                "exit_plan.stop_loss_bps",
                p.stop_loss_bps,
                "1 to 9999 bps (a stop at or above 100% is no stop)",
            )
        })?;
    let mut take_profit = Vec::new();
    for (i, r) in p.take_profit.iter().enumerate() {
        take_profit.push(TakeProfitRung {
            gain: bps(&format!("exit_plan.take_profit[{i}].gain_bps"), r.gain_bps)?,
            fraction: Fraction::from_bps(r.fraction_bps).map_err(|_| {
                invalid(
                    format!("exit_plan.take_profit[{i}].fraction_bps"),
                    r.fraction_bps,
                    "1 to 10000",
                )
            })?,
        });
    }
    let optional = |key: &str, v: u16| (v > 0).then(|| bps(key, v)).transpose();
    let plan = ExitPlanConfig {
        stop_loss: bps("exit_plan.stop_loss_bps", stop_loss)?,
        trailing_activation: optional(
            "exit_plan.trailing_activation_bps",
            p.trailing_activation_bps,
        )?,
        trailing_distance: bps("exit_plan.trailing_distance_bps", p.trailing_distance_bps)?,
        breakeven_trigger: optional("exit_plan.breakeven_trigger_bps", p.breakeven_trigger_bps)?,
        breakeven_offset: bps("exit_plan.breakeven_offset_bps", p.breakeven_offset_bps)?,
        take_profit,
    };
    plan.validate().map_err(|e| domain(e, "exit_plan", p))?;
    Ok(plan)
}
