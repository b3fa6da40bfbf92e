//! `[trading]`, `[strategy]` and `[exit_plan]`: what is traded, when, and how each
//! position is protected.

use std::time::Duration;

use kyzlo_application::execute::ExecutionSettings;
use kyzlo_application::ports::Pair;
use kyzlo_domain::exit_plan::{ExitPlanConfig, TakeProfitRung};
use kyzlo_domain::strategy::{MeanReversionConfig, RoundTripCost};
use kyzlo_domain::{Bps, Fraction, TokenAmount};
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, bps, domain, invalid, positive_ms};

/// `[trading]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TradingFile {
    /// The most quote tokens spent per entry (e.g. 100.0 USDC).
    pub entry_size: f64,
    /// The share of the wallet's quote balance spent per entry, capped at `entry_size`.
    pub entry_fraction: f64,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Milliseconds between ticks.
    pub tick_interval_ms: u64,
}

impl Default for TradingFile {
    fn default() -> Self {
        Self {
            entry_size: 100.0,
            entry_fraction: 0.25,
            max_positions: 1,
            tick_interval_ms: 1_000,
        }
    }
}

/// `[strategy]` as written: the mean-reversion strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyFile {
    /// The rolling window, in seconds of prices (whatever the tick).
    pub window_s: f64,
    /// Enter long when the z-score is at or below `-entry_z`.
    pub entry_z: f64,
    /// Exit when the z-score is at or above `exit_z`.
    pub exit_z: f64,
    /// An entry needs the expected reversion to the mean to exceed the round trip's
    /// estimated cost (the entry rung's and the first exit rung's slippage, the network
    /// and priority fees of both) by this much, in bps of the price.
    pub min_edge_bps: u16,
    /// Whether entries must pay for their round trip (`min_edge_bps` and the cost); off,
    /// every dip of `entry_z` is entered.
    pub cost_aware: bool,
}

impl Default for StrategyFile {
    fn default() -> Self {
        let d = MeanReversionConfig::default();
        Self {
            window_s: 1_800.0,
            entry_z: d.entry_z,
            exit_z: d.exit_z,
            min_edge_bps: 20,
            cost_aware: true,
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
    /// The most quote units spent per entry.
    pub entry_quote_amount: TokenAmount,
    /// The share of the quote balance spent per entry.
    pub entry_fraction: Fraction,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Between ticks.
    pub tick_interval: Duration,
    /// The strategy.
    pub strategy: MeanReversionConfig,
    /// Whether entries must pay for their round trip.
    pub cost_aware: bool,
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
    let fraction =
        (t.entry_fraction.is_finite() && t.entry_fraction > 0.0 && t.entry_fraction <= 1.0)
            .then(|| Fraction::from_bps((t.entry_fraction * 10_000.0).round() as u16).ok())
            .flatten()
            .ok_or_else(|| {
                invalid(
                    "trading.entry_fraction",
                    t.entry_fraction,
                    "a share of the quote balance from 0.0001 to 1",
                )
            })?;
    let tick_interval = positive_ms("trading.tick_interval_ms", t.tick_interval_ms)?;
    let ticks = s.window_s * 1_000.0 / tick_interval.as_millis() as f64;
    if !(s.window_s.is_finite() && (2.0..=100_000.0).contains(&ticks.round())) {
        return Err(invalid(
            "strategy.window_s",
            s.window_s,
            format!(
                "seconds covering 2 to 100000 ticks of {} ms",
                tick_interval.as_millis()
            ),
        ));
    }
    if s.min_edge_bps >= 10_000 {
        return Err(invalid(
            "strategy.min_edge_bps",
            s.min_edge_bps,
            "0 to 9999 bps",
        ));
    }
    let strategy = MeanReversionConfig {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
        window: ticks.round() as usize,
        entry_z: s.entry_z,
        exit_z: s.exit_z,
        // The cost is set once the execution settings are known (`Config::try_from`).
        cost: RoundTripCost::default(),
        min_edge: if s.cost_aware {
            f64::from(s.min_edge_bps) / 10_000.0
        } else {
            0.0
        },
    };
    strategy.validate().map_err(|e| domain(e, "strategy", s))?;
    Ok(Trading {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
        entry_quote_amount: TokenAmount::new(units as u64),
        entry_fraction: fraction,
        max_positions: t.max_positions,
        tick_interval,
        strategy,
        cost_aware: s.cost_aware,
        exit_plan: exit_plan(p)?,
    })
}

/// The estimated cost of a round trip of `notional_quote`: the entry rung's and the
/// first exit rung's slippage tolerance (the most either may cost), and, when the base is
/// the native token that pays fees, two network fees and both priority fees.
#[must_use]
pub fn round_trip_cost(
    entry: &ExecutionSettings,
    exit: &ExecutionSettings,
    native_base: bool,
    notional_quote: f64,
) -> RoundTripCost {
    let (entry, exit) = (entry.ladder.rung(1), exit.ladder.rung(1));
    let slippage = f64::from(entry.slippage.bps().get() + exit.slippage.bps().get()) / 10_000.0;
    let fees_lamports =
        2 * NETWORK_FEE_LAMPORTS + entry.priority_fee.get() + exit.priority_fee.get();
    RoundTripCost {
        slippage,
        fees_base: if native_base {
            fees_lamports as f64 / 1e9
        } else {
            0.0
        },
        notional_quote,
    }
}

/// Solana's base fee per signature.
const NETWORK_FEE_LAMPORTS: u64 = 5_000;

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
