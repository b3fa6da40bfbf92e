//! The per-position exit plan (the "exit brain"): hard stop-loss, trailing stop, breakeven
//! stop and a partial take-profit ladder, evaluated on each price, yielding at most one exit
//! intent per position at a time.

use std::sync::Arc;

use crate::error::DomainError;
use crate::types::{Bps, ExitIntent, ExitKind, Fraction, Price, Size, TokenAmount};

/// Basis points in one whole.
const WHOLE_BPS: u32 = 10_000;

/// `base * factor_bps / 10_000`: integer factors keep round levels exact (100 at -5% is 95).
fn scaled(base: f64, factor_bps: u32) -> f64 {
    base * f64::from(factor_bps) / f64::from(WHOLE_BPS)
}

/// One rung of the take-profit ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeProfitRung {
    /// The gain over the entry price at which the rung fires.
    pub gain: Bps,
    /// How much of the ORIGINAL position size the rung sells.
    pub fraction: Fraction,
}

/// The legs of an exit plan; every threshold is relative to the entry price.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitPlanConfig {
    /// Hard stop-loss: exit everything once the price is this far below entry.
    pub stop_loss: Bps,
    /// Trailing stop: active once the peak since entry is this far above entry; `None`
    /// disables the leg.
    pub trailing_activation: Option<Bps>,
    /// Trailing stop: once active, exit everything when the price falls this far below the
    /// peak.
    pub trailing_distance: Bps,
    /// Breakeven stop: armed once the price has been this far above entry; `None` disables
    /// the leg.
    pub breakeven_trigger: Option<Bps>,
    /// Breakeven stop: once armed, exit everything when the price falls back to this far
    /// above entry (the margin covers fees).
    pub breakeven_offset: Bps,
    /// The take-profit ladder, in ascending gains.
    pub take_profit: Vec<TakeProfitRung>,
}

impl Default for ExitPlanConfig {
    /// 5% stop; trailing 2% once +3%; breakeven (+0.2%) once +2%; half at +4%, the rest at +8%.
    fn default() -> Self {
        Self {
            stop_loss: Bps::new(500).unwrap_or_default(),
            trailing_activation: Bps::new(300).ok(),
            trailing_distance: Bps::new(200).unwrap_or_default(),
            breakeven_trigger: Bps::new(200).ok(),
            breakeven_offset: Bps::new(20).unwrap_or_default(),
            take_profit: vec![
                TakeProfitRung {
                    gain: Bps::new(400).unwrap_or_default(),
                    fraction: Fraction::from_bps(5_000).unwrap_or(Fraction::ALL),
                },
                TakeProfitRung {
                    gain: Bps::new(800).unwrap_or_default(),
                    fraction: Fraction::ALL,
                },
            ],
        }
    }
}

impl ExitPlanConfig {
    /// Checks the legs.
    ///
    /// Rung fractions are of the original size and must sum to at most 10000 bps, except
    /// that a LAST rung of 10000 bps means "the rest" (as in the default ladder); the rungs
    /// before it must then leave something for it (sum below 10000).
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] naming `exit_plan.stop_loss_bps` (outside 1..=9999:
    /// a stop at or beyond 100% is refused), `exit_plan.trailing_distance_bps` (outside
    /// 1..=9999), `exit_plan.breakeven_offset_bps` (not below the breakeven trigger) or
    /// `exit_plan.take_profit` (gains not above zero and strictly ascending, or fractions
    /// over the whole position).
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(1..WHOLE_BPS).contains(&u32::from(self.stop_loss.get())) {
            return Err(DomainError::InvalidConfig {
                field: "exit_plan.stop_loss_bps",
                expected: "1 to 9999 bps (a stop at or beyond 100% is refused)",
            });
        }
        if !(1..WHOLE_BPS).contains(&u32::from(self.trailing_distance.get())) {
            return Err(DomainError::InvalidConfig {
                field: "exit_plan.trailing_distance_bps",
                expected: "1 to 9999 bps",
            });
        }
        if let Some(trigger) = self.breakeven_trigger
            && self.breakeven_offset >= trigger
        {
            return Err(DomainError::InvalidConfig {
                field: "exit_plan.breakeven_offset_bps",
                expected: "fewer bps than exit_plan.breakeven_trigger_bps",
            });
        }
        let mut previous_gain = 0u16;
        for rung in &self.take_profit {
            if rung.gain.get() <= previous_gain {
                return Err(DomainError::InvalidConfig {
                    field: "exit_plan.take_profit",
                    expected: "rungs with gains above 0 bps in strictly ascending order",
                });
            }
            previous_gain = rung.gain.get();
        }
        let (fixed, takes_rest) = match self.take_profit.split_last() {
            Some((last, before)) if last.fraction.is_all() => (before, true),
            _ => (self.take_profit.as_slice(), false),
        };
        let sum: u32 = fixed
            .iter()
            .map(|r| u32::from(r.fraction.bps().get()))
            .sum();
        if sum > WHOLE_BPS || (takes_rest && sum == WHOLE_BPS) {
            return Err(DomainError::InvalidConfig {
                field: "exit_plan.take_profit",
                expected: "rung fractions summing to at most 10000 bps \
                           (a last rung of 10000 takes the rest)",
            });
        }
        Ok(())
    }
}

/// The intent in flight and the ladder rungs it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PendingExit {
    intent: ExitIntent,
    /// For a take-profit: the highest rung index the intent sells through.
    rungs_through: Option<u32>,
}

/// The exit plan of one open position.
///
/// It tracks the peak price and the remaining size, and on each price returns at most one
/// [`ExitIntent`]; until that intent is resolved ([`ExitPlan::on_exit_filled`] or
/// [`ExitPlan::on_exit_abandoned`]) it returns nothing. Protective legs always sell the
/// whole remainder; a take-profit rung's fraction is expressed of the CURRENT remaining
/// size. Levels are precomputed at construction so an evaluation is a few comparisons.
#[derive(Debug, Clone)]
pub struct ExitPlan {
    config: Arc<ExitPlanConfig>,
    entry: Price,
    size: Size,
    remaining: TokenAmount,
    peak: f64,
    hard_stop: f64,
    /// `f64::INFINITY` when the trailing leg is off.
    trailing_activation: f64,
    /// `10_000 - trailing_distance`.
    trailing_keep_bps: u32,
    /// `f64::INFINITY` when the breakeven leg is off.
    breakeven_trigger: f64,
    breakeven_stop: f64,
    /// The first ladder rung not yet sold.
    next_rung: u32,
    pending: Option<PendingExit>,
}

impl ExitPlan {
    /// A plan for a position of `size` entered at `entry`. The config is expected to have
    /// passed [`ExitPlanConfig::validate`] (an invalid one never panics, but its legs may
    /// never fire).
    #[must_use]
    pub fn new(config: ExitPlanConfig, entry: Price, size: Size) -> Self {
        Self::new_shared(Arc::new(config), entry, size)
    }

    /// Like [`ExitPlan::new`], sharing one config among many positions (no ladder copy per
    /// position).
    #[must_use]
    pub fn new_shared(config: Arc<ExitPlanConfig>, entry: Price, size: Size) -> Self {
        let e = entry.get();
        let up = |bps: Bps| scaled(e, WHOLE_BPS + u32::from(bps.get()));
        let hard_stop = scaled(
            e,
            WHOLE_BPS.saturating_sub(u32::from(config.stop_loss.get())),
        );
        let trailing_activation = config.trailing_activation.map_or(f64::INFINITY, up);
        let trailing_keep_bps = WHOLE_BPS.saturating_sub(u32::from(config.trailing_distance.get()));
        let breakeven_trigger = config.breakeven_trigger.map_or(f64::INFINITY, up);
        let breakeven_stop = up(config.breakeven_offset);
        Self {
            config,
            entry,
            size,
            remaining: size.amount(),
            peak: e,
            hard_stop,
            trailing_activation,
            trailing_keep_bps,
            breakeven_trigger,
            breakeven_stop,
            next_rung: 0,
            pending: None,
        }
    }

    /// Feeds the next price: updates the peak, then returns the exit to take, if any.
    ///
    /// Returns `None` while an intent is pending or once the position is closed. When several
    /// legs fire on one price the priority is stop-loss > trailing > breakeven >
    /// take-profit. A price above several unsold rungs sells them all in one intent.
    #[must_use]
    pub fn evaluate(&mut self, price: Price) -> Option<ExitIntent> {
        let px = price.get();
        if px > self.peak {
            self.peak = px;
        }
        if self.pending.is_some() || self.remaining.is_zero() {
            return None;
        }
        let protective = if self.hard_stop_hit(price) {
            Some(ExitKind::StopLoss)
        } else if self.trailing_active() && px <= self.trailing_stop() {
            Some(ExitKind::TrailingStop)
        } else if self.breakeven_armed() && px <= self.breakeven_stop {
            Some(ExitKind::Breakeven)
        } else {
            None
        };
        let pending = match protective {
            Some(kind) => PendingExit {
                intent: ExitIntent {
                    kind,
                    fraction: Fraction::ALL,
                    trigger_price: price,
                },
                rungs_through: None,
            },
            None => self.take_profit(price)?,
        };
        self.pending = Some(pending);
        Some(pending.intent)
    }

    /// Whether `price` is at or below the hard stop. Reads only: the peak, and the
    /// trailing and breakeven stops that follow it, are not moved.
    #[must_use]
    pub fn hard_stop_hit(&self, price: Price) -> bool {
        price.get() <= self.hard_stop
    }

    /// [`ExitPlan::evaluate`] for the hard stop alone (what a halted position is protected
    /// by): the stop-loss intent when `price` is at or below the hard stop, nothing
    /// pending and something left. Unlike `evaluate` it does not feed the price to the
    /// plan: the peak is not raised, so no trailing or breakeven stop moves, and no
    /// take-profit fires.
    #[must_use]
    pub fn evaluate_hard_stop(&mut self, price: Price) -> Option<ExitIntent> {
        if self.pending.is_some() || self.remaining.is_zero() || !self.hard_stop_hit(price) {
            return None;
        }
        let intent = ExitIntent {
            kind: ExitKind::StopLoss,
            fraction: Fraction::ALL,
            trigger_price: price,
        };
        self.pending = Some(PendingExit {
            intent,
            rungs_through: None,
        });
        Some(intent)
    }

    /// The take-profit intent for `price`, if it reaches the next unsold rung.
    fn take_profit(&mut self, price: Price) -> Option<PendingExit> {
        let (e, px) = (self.entry.get(), price.get());
        let rungs = &self.config.take_profit;
        let mut through = None;
        let mut sold_bps = 0u32;
        for (i, rung) in rungs.iter().enumerate() {
            let reached_or_sold = (i as u64) < u64::from(self.next_rung)
                || px >= scaled(e, WHOLE_BPS + u32::from(rung.gain.get()));
            if !reached_or_sold {
                break;
            }
            sold_bps = sold_bps.saturating_add(u32::from(rung.fraction.bps().get()));
            through = Some(i);
        }
        let through = u32::try_from(through?).ok()?;
        if through < self.next_rung {
            return None;
        }
        // Sell down to what the ladder keeps after this rung, which also corrects for
        // earlier fills that came out a little short or long.
        let keep = u16::try_from(WHOLE_BPS.saturating_sub(sold_bps))
            .ok()
            .and_then(|bps| Fraction::from_bps(bps).ok())
            .map_or(TokenAmount::ZERO, |f| self.size.amount().portion(f));
        let amount = self
            .remaining
            .checked_sub(keep)
            .unwrap_or(TokenAmount::ZERO);
        if amount.is_zero() {
            // Earlier fills already sold what these rungs would.
            self.next_rung = through.saturating_add(1);
            return None;
        }
        let (kind, fraction) = if amount >= self.remaining {
            (ExitKind::TakeProfit, Fraction::ALL)
        } else {
            let (a, r) = (u128::from(amount.get()), u128::from(self.remaining.get()));
            let bps = ((a * u128::from(WHOLE_BPS) + r / 2) / r).clamp(1, 9_999);
            let bps = u16::try_from(bps).ok()?;
            (ExitKind::PartialTakeProfit, Fraction::from_bps(bps).ok()?)
        };
        Some(PendingExit {
            intent: ExitIntent {
                kind,
                fraction,
                trigger_price: price,
            },
            rungs_through: Some(through),
        })
    }

    /// The pending intent was executed and `sold` left the position: reduces the remaining
    /// size and resolves the intent. A zero fill resolves it like
    /// [`ExitPlan::on_exit_abandoned`] (its rungs may fire again); a fill larger than the
    /// remaining size closes the position.
    pub fn on_exit_filled(&mut self, sold: TokenAmount) {
        self.remaining = self
            .remaining
            .checked_sub(sold)
            .unwrap_or(TokenAmount::ZERO);
        if let Some(pending) = self.pending.take()
            && !sold.is_zero()
            && let Some(through) = pending.rungs_through
        {
            self.next_rung = self.next_rung.max(through.saturating_add(1));
        }
    }

    /// A plan for a position of original `size` of which `remaining` is left, as journaled
    /// (after a restart): every take-profit rung whose cumulative share of the original
    /// size has already been sold counts as sold, so it does not fire again. The peak and
    /// the breakeven arming start afresh from the entry.
    #[must_use]
    pub fn restore(
        config: Arc<ExitPlanConfig>,
        entry: Price,
        size: Size,
        remaining: TokenAmount,
    ) -> Self {
        let mut plan = Self::new_shared(config, entry, size);
        let remaining = remaining.min(size.amount());
        let sold = size.amount().get() - remaining.get();
        let mut cumulative: u64 = 0;
        let mut next_rung = 0;
        for rung in &plan.config.take_profit {
            cumulative = cumulative.saturating_add(u64::from(rung.fraction.bps().get()));
            // The rung's target sold share of the original size, in base units.
            let target =
                u128::from(size.amount().get()) * u128::from(cumulative.min(10_000)) / 10_000;
            if u128::from(sold) >= target && target > 0 {
                next_rung += 1;
            } else {
                break;
            }
        }
        plan.next_rung = next_rung;
        plan.remaining = remaining;
        plan
    }

    /// The entry's fill, read after the position was opened on a provisional one: the
    /// position really is `size` bought at `entry`. The stops move with the entry; what
    /// the correction adds to the size is added to what remains (a provisional fill is a
    /// lower bound, so a correction only grows the position; a smaller one shrinks what
    /// remains, never below zero).
    pub fn correct_entry(&mut self, entry: Price, size: Size) {
        let mut corrected = Self::new_shared(Arc::clone(&self.config), entry, size);
        let old = self.size.amount().get();
        let new = size.amount().get();
        corrected.remaining = if new >= old {
            TokenAmount::new(self.remaining.get().saturating_add(new - old))
        } else {
            TokenAmount::new(self.remaining.get().saturating_sub(old - new))
        };
        corrected.peak = self.peak.max(entry.get());
        corrected.next_rung = self.next_rung;
        corrected.pending = self.pending;
        *self = corrected;
    }

    /// The pending intent failed without selling: it may fire again on a later price.
    pub fn on_exit_abandoned(&mut self) {
        self.pending = None;
    }

    /// The intent in flight, if any.
    #[must_use]
    pub fn pending(&self) -> Option<ExitIntent> {
        self.pending.map(|p| p.intent)
    }

    /// What is left of the position.
    #[must_use]
    pub fn remaining(&self) -> TokenAmount {
        self.remaining
    }

    /// Whether nothing is left.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.remaining.is_zero()
    }

    /// The highest active stop: the hard stop, the trailing stop once active, the breakeven
    /// stop once armed.
    #[must_use]
    pub fn stop_level(&self) -> Price {
        let mut level = self.hard_stop;
        if self.trailing_active() {
            level = level.max(self.trailing_stop());
        }
        if self.breakeven_armed() {
            level = level.max(self.breakeven_stop);
        }
        // Only an entry near f64's smallest values could round the level to zero.
        Price::new(level.max(f64::MIN_POSITIVE)).unwrap_or(self.entry)
    }

    /// The entry price.
    #[must_use]
    pub fn entry(&self) -> Price {
        self.entry
    }

    /// The highest price seen since entry (the entry price at first).
    #[must_use]
    pub fn peak(&self) -> Price {
        Price::new(self.peak).unwrap_or(self.entry)
    }

    /// The original position size.
    #[must_use]
    pub fn size(&self) -> Size {
        self.size
    }

    /// The price at which the next take-profit rung sells, if one is left.
    #[must_use]
    pub fn next_take_profit(&self) -> Option<Price> {
        let rung = self.config.take_profit.get(self.rungs_sold())?;
        Price::new(self.entry.get() * (1.0 + f64::from(rung.gain.get()) / 10_000.0)).ok()
    }

    /// How many ladder rungs have been sold.
    #[must_use]
    pub fn rungs_sold(&self) -> usize {
        usize::try_from(self.next_rung).unwrap_or(usize::MAX)
    }

    /// The plan's legs.
    #[must_use]
    pub fn config(&self) -> &Arc<ExitPlanConfig> {
        &self.config
    }

    fn trailing_active(&self) -> bool {
        self.peak >= self.trailing_activation
    }

    fn trailing_stop(&self) -> f64 {
        scaled(self.peak, self.trailing_keep_bps)
    }

    fn breakeven_armed(&self) -> bool {
        self.peak >= self.breakeven_trigger
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExitKind::{Breakeven, PartialTakeProfit, StopLoss, TakeProfit, TrailingStop};
    use proptest::prelude::*;

    fn p(v: f64) -> Price {
        Price::new(v).unwrap()
    }

    fn bps(v: u16) -> Bps {
        Bps::new(v).unwrap()
    }

    fn rung(gain: u16, fraction: u16) -> TakeProfitRung {
        TakeProfitRung {
            gain: bps(gain),
            fraction: Fraction::from_bps(fraction).unwrap(),
        }
    }

    fn no_take_profit() -> ExitPlanConfig {
        ExitPlanConfig {
            take_profit: vec![],
            ..ExitPlanConfig::default()
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Evaluate a price; expect no intent or one of (kind, fraction bps).
        Px(f64, Option<(ExitKind, u16)>),
        /// The pending intent filled exactly.
        Fill,
        /// The pending intent filled this share (bps) of what it asked for.
        FillPart(u16),
        /// The pending intent failed.
        Abandon,
    }
    use Step::{Abandon, Fill, FillPart, Px};

    /// Runs `steps` on a plan entered at 100 with `size`, and returns the plan.
    fn check(config: ExitPlanConfig, size: u64, steps: &[Step]) -> ExitPlan {
        let size = Size::new(TokenAmount::new(size)).unwrap();
        let mut plan = ExitPlan::new(config, p(100.0), size);
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Px(price, expect) => {
                    let got = plan.evaluate(p(price));
                    if let Some(intent) = got {
                        assert_eq!(intent.trigger_price, p(price), "step {i}");
                    }
                    let got = got.map(|x| (x.kind, x.fraction.bps().get()));
                    assert_eq!(got, expect, "step {i}: price {price}");
                }
                Fill | FillPart(_) => {
                    let intent = plan.pending().expect("a pending intent to fill");
                    let asked = plan.remaining().portion(intent.fraction);
                    let sold = match *step {
                        FillPart(share) => asked.portion(Fraction::from_bps(share).unwrap()),
                        _ => asked,
                    };
                    plan.on_exit_filled(sold);
                    assert_eq!(plan.pending(), None, "step {i}");
                }
                Abandon => {
                    assert!(plan.pending().is_some(), "step {i}: nothing to abandon");
                    plan.on_exit_abandoned();
                }
            }
        }
        plan
    }

    #[test]
    fn default_config_is_valid_and_as_documented() {
        let c = ExitPlanConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.stop_loss, bps(500));
        assert_eq!(c.trailing_activation, Some(bps(300)));
        assert_eq!(c.trailing_distance, bps(200));
        assert_eq!(c.breakeven_trigger, Some(bps(200)));
        assert_eq!(c.breakeven_offset, bps(20));
        assert_eq!(c.take_profit, vec![rung(400, 5_000), rung(800, 10_000)]);
    }

    #[test]
    fn validation_names_the_offending_key() {
        let d = ExitPlanConfig::default;
        let table: Vec<(ExitPlanConfig, &str)> = vec![
            (
                ExitPlanConfig {
                    stop_loss: bps(0),
                    ..d()
                },
                "exit_plan.stop_loss_bps",
            ),
            (
                ExitPlanConfig {
                    stop_loss: bps(10_000),
                    ..d()
                },
                "exit_plan.stop_loss_bps",
            ),
            (
                ExitPlanConfig {
                    trailing_distance: bps(0),
                    ..d()
                },
                "exit_plan.trailing_distance_bps",
            ),
            (
                ExitPlanConfig {
                    trailing_distance: bps(10_000),
                    ..d()
                },
                "exit_plan.trailing_distance_bps",
            ),
            (
                ExitPlanConfig {
                    breakeven_offset: bps(200),
                    ..d()
                },
                "exit_plan.breakeven_offset_bps",
            ),
            (
                ExitPlanConfig {
                    breakeven_offset: bps(300),
                    ..d()
                },
                "exit_plan.breakeven_offset_bps",
            ),
            (
                ExitPlanConfig {
                    take_profit: vec![rung(800, 5_000), rung(400, 5_000)],
                    ..d()
                },
                "exit_plan.take_profit",
            ),
            (
                ExitPlanConfig {
                    take_profit: vec![rung(400, 5_000), rung(400, 5_000)],
                    ..d()
                },
                "exit_plan.take_profit",
            ),
            (
                ExitPlanConfig {
                    take_profit: vec![rung(0, 5_000)],
                    ..d()
                },
                "exit_plan.take_profit",
            ),
            (
                ExitPlanConfig {
                    take_profit: vec![rung(400, 6_000), rung(800, 5_000)],
                    ..d()
                },
                "exit_plan.take_profit",
            ),
            (
                ExitPlanConfig {
                    take_profit: vec![rung(400, 10_000), rung(800, 10_000)],
                    ..d()
                },
                "exit_plan.take_profit",
            ),
            (
                ExitPlanConfig {
                    take_profit: vec![rung(100, 5_000), rung(200, 5_000), rung(300, 10_000)],
                    ..d()
                },
                "exit_plan.take_profit",
            ),
        ];
        for (config, key) in table {
            match config.validate() {
                Err(DomainError::InvalidConfig { field, .. }) => assert_eq!(field, key),
                other => panic!("{config:?}: expected {key} refused, got {other:?}"),
            }
        }
        let accepted = [
            ExitPlanConfig {
                stop_loss: bps(9_999),
                ..d()
            },
            ExitPlanConfig {
                breakeven_trigger: None,
                breakeven_offset: bps(5_000),
                ..d()
            },
            ExitPlanConfig {
                trailing_activation: None,
                ..d()
            },
            no_take_profit(),
            ExitPlanConfig {
                take_profit: vec![rung(100, 5_000), rung(200, 5_000)],
                ..d()
            },
            ExitPlanConfig {
                take_profit: vec![rung(100, 10_000)],
                ..d()
            },
            ExitPlanConfig {
                take_profit: vec![rung(100, 2_500)],
                ..d()
            },
        ];
        for config in accepted {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }

    #[test]
    fn five_percent_stop_fires_at_95_and_not_at_95_01() {
        check(
            ExitPlanConfig::default(),
            1_000,
            &[Px(95.01, None), Px(95.0, Some((StopLoss, 10_000)))],
        );
        check(
            ExitPlanConfig::default(),
            1_000,
            &[Px(60.0, Some((StopLoss, 10_000)))],
        );
    }

    #[test]
    fn trailing_stop_activates_at_the_peak_threshold_and_fires_below_it() {
        check(
            ExitPlanConfig::default(),
            1_000,
            &[
                // Peak 102.9 < 103: not active, so 100.9 does nothing (breakeven stop is 100.2).
                Px(102.9, None),
                Px(100.9, None),
                // Peak 103.5: active, stop at 103.5 * 0.98 = 101.43.
                Px(103.5, None),
                Px(101.44, None),
                Px(101.43, Some((TrailingStop, 10_000))),
            ],
        );
    }

    #[test]
    fn trailing_stop_follows_the_peak_up() {
        let plan = check(
            no_take_profit(),
            1_000,
            &[
                Px(110.0, None),
                Px(120.0, None),
                Px(117.7, None),
                Px(117.6, Some((TrailingStop, 10_000))),
            ],
        );
        assert_eq!(plan.peak(), p(120.0));
    }

    #[test]
    fn the_hard_stop_alone_is_checked_without_moving_the_peak() {
        let size = Size::new(TokenAmount::new(1_000)).unwrap();
        let mut plan = ExitPlan::new(ExitPlanConfig::default(), p(100.0), size);
        // Above every take-profit rung and the trailing activation: nothing fires, and
        // the peak (so the trailing and breakeven stops) stays where it was.
        assert!(!plan.hard_stop_hit(p(150.0)));
        assert_eq!(plan.evaluate_hard_stop(p(150.0)), None);
        assert_eq!(plan.peak(), p(100.0));
        assert_eq!(plan.stop_level(), p(95.0));
        assert_eq!(plan.pending(), None);
        // At the hard stop: the stop-loss of everything left, pending until resolved.
        assert!(plan.hard_stop_hit(p(95.0)));
        let intent = plan
            .evaluate_hard_stop(p(95.0))
            .expect("the hard stop fires");
        assert_eq!(
            (intent.kind, intent.fraction, intent.trigger_price),
            (StopLoss, Fraction::ALL, p(95.0))
        );
        assert_eq!(plan.pending(), Some(intent));
        assert_eq!(plan.evaluate_hard_stop(p(90.0)), None, "one at a time");
        plan.on_exit_abandoned();
        assert_eq!(
            plan.evaluate_hard_stop(p(90.0)).map(|i| i.kind),
            Some(StopLoss)
        );
        // The normal evaluation still feeds the peak.
        plan.on_exit_abandoned();
        let _ = plan.evaluate(p(150.0));
        assert_eq!(plan.peak(), p(150.0));
    }

    #[test]
    fn disabled_trailing_and_breakeven_legs_never_fire() {
        let config = ExitPlanConfig {
            trailing_activation: None,
            breakeven_trigger: None,
            ..no_take_profit()
        };
        check(
            config,
            1_000,
            &[
                Px(150.0, None),
                Px(100.0, None),
                Px(95.01, None),
                Px(95.0, Some((StopLoss, 10_000))),
            ],
        );
    }

    #[test]
    fn breakeven_arms_at_the_trigger_and_fires_at_the_offset() {
        check(
            ExitPlanConfig::default(),
            1_000,
            &[
                // Not armed below +2%: a fall to 100.1 does nothing.
                Px(101.9, None),
                Px(100.1, None),
                // Armed at 102; stop at 100.2.
                Px(102.0, None),
                Px(100.21, None),
                Px(100.2, Some((Breakeven, 10_000))),
            ],
        );
    }

    #[test]
    fn ladder_fires_default_rungs_in_order() {
        let plan = check(
            ExitPlanConfig::default(),
            1_000,
            &[
                Px(103.99, None),
                Px(104.0, Some((PartialTakeProfit, 5_000))),
                Fill,
                Px(105.0, None),
                Px(107.99, None),
                Px(108.0, Some((TakeProfit, 10_000))),
                Fill,
            ],
        );
        assert!(plan.is_closed());
        assert_eq!(plan.rungs_sold(), 2);
    }

    #[test]
    fn ladder_fractions_are_of_the_remaining_size_and_correct_for_rounding() {
        let config = ExitPlanConfig {
            trailing_activation: None,
            take_profit: vec![rung(100, 2_500), rung(200, 2_500), rung(300, 2_500)],
            ..ExitPlanConfig::default()
        };
        // 1000 -> sell 250 (2500 of 1000) -> 750; sell 250 (3333 of 750, fills 249) -> 501;
        // sell 251 to reach the ladder's 250 (5010 of 501) -> 250 kept.
        let plan = check(
            config,
            1_000,
            &[
                Px(101.0, Some((PartialTakeProfit, 2_500))),
                Fill,
                Px(101.0, None),
                Px(102.0, Some((PartialTakeProfit, 3_333))),
                Fill,
                Px(103.0, Some((PartialTakeProfit, 5_010))),
                Fill,
                Px(150.0, None),
            ],
        );
        assert_eq!(plan.remaining(), TokenAmount::new(250));
        assert!(!plan.is_closed());
    }

    #[test]
    fn a_gap_up_over_several_rungs_sells_them_in_one_intent() {
        let config = ExitPlanConfig {
            take_profit: vec![rung(100, 2_500), rung(200, 2_500), rung(300, 2_500)],
            ..ExitPlanConfig::default()
        };
        let plan = check(
            config,
            1_000,
            &[
                Px(102.5, Some((PartialTakeProfit, 5_000))),
                Fill,
                Px(102.5, None),
                Px(103.0, Some((PartialTakeProfit, 5_000))),
                Fill,
            ],
        );
        assert_eq!(plan.remaining(), TokenAmount::new(250));
        assert_eq!(plan.rungs_sold(), 3);
        let plan = check(
            ExitPlanConfig::default(),
            1_000,
            &[Px(110.0, Some((TakeProfit, 10_000))), Fill],
        );
        assert!(plan.is_closed());
    }

    #[test]
    fn priority_among_legs_on_one_price() {
        let wide_trail = ExitPlanConfig {
            trailing_distance: bps(1_500),
            ..no_take_profit()
        };
        let early_tp = ExitPlanConfig {
            trailing_activation: None,
            take_profit: vec![rung(10, 10_000)],
            ..ExitPlanConfig::default()
        };
        let tp_under_trail = ExitPlanConfig {
            take_profit: vec![rung(500, 10_000)],
            ..ExitPlanConfig::default()
        };
        let table: [(&str, ExitPlanConfig, &[Step]); 4] = [
            // Peak 110 arms everything; a gap to 90 crosses all three stops.
            (
                "gap below all stops",
                no_take_profit(),
                &[Px(110.0, None), Px(90.0, Some((StopLoss, 10_000)))],
            ),
            // Trailing stop 107.8 and breakeven stop 100.2 both crossed at 100.
            (
                "trailing over breakeven",
                no_take_profit(),
                &[Px(110.0, None), Px(100.0, Some((TrailingStop, 10_000)))],
            ),
            // A 15% trail (93.5) is not crossed; breakeven is.
            (
                "breakeven alone",
                wide_trail,
                &[Px(110.0, None), Px(100.0, Some((Breakeven, 10_000)))],
            ),
            // At 100.15 breakeven (100.2) and the unsold +0.1% rung both fire.
            (
                "breakeven over take-profit",
                early_tp,
                &[
                    Px(102.0, Some((TakeProfit, 10_000))),
                    Abandon,
                    Px(100.15, Some((Breakeven, 10_000))),
                ],
            ),
        ];
        for (name, config, steps) in table {
            println!("case: {name}");
            check(config, 1_000, steps);
        }
        // Trailing stop 107.8 and the +5% rung both fire at 105.5.
        check(
            tp_under_trail,
            1_000,
            &[
                Px(110.0, Some((TakeProfit, 10_000))),
                Abandon,
                Px(105.5, Some((TrailingStop, 10_000))),
            ],
        );
    }

    #[test]
    fn at_most_one_intent_at_a_time() {
        let plan = check(
            ExitPlanConfig::default(),
            1_000,
            &[
                Px(104.0, Some((PartialTakeProfit, 5_000))),
                Px(108.0, None),
                Px(94.0, None),
                Px(90.0, None),
            ],
        );
        assert_eq!(plan.pending().map(|i| i.kind), Some(PartialTakeProfit));
    }

    #[test]
    fn an_abandoned_intent_fires_again_on_a_later_price() {
        check(
            ExitPlanConfig::default(),
            1_000,
            &[
                Px(95.0, Some((StopLoss, 10_000))),
                Px(94.0, None),
                Abandon,
                Px(96.0, None),
                Px(93.0, Some((StopLoss, 10_000))),
            ],
        );
        check(
            ExitPlanConfig::default(),
            1_000,
            &[
                Px(104.0, Some((PartialTakeProfit, 5_000))),
                Abandon,
                Px(103.9, None),
                Px(104.5, Some((PartialTakeProfit, 5_000))),
            ],
        );
    }

    #[test]
    fn a_zero_fill_resolves_the_intent_without_selling_its_rung() {
        let plan = check(
            ExitPlanConfig::default(),
            1_000,
            &[
                Px(104.0, Some((PartialTakeProfit, 5_000))),
                FillPart(1),
                Px(104.0, Some((PartialTakeProfit, 5_000))),
            ],
        );
        assert_eq!(plan.remaining(), TokenAmount::new(1_000));
        assert_eq!(plan.rungs_sold(), 0);
    }

    #[test]
    fn a_partly_filled_stop_fires_again_for_the_rest() {
        let plan = check(
            ExitPlanConfig::default(),
            1_000,
            &[
                Px(94.0, Some((StopLoss, 10_000))),
                FillPart(6_000),
                Px(94.0, Some((StopLoss, 10_000))),
                Fill,
                Px(90.0, None),
            ],
        );
        assert!(plan.is_closed());
    }

    #[test]
    fn after_the_final_fill_the_plan_is_closed_and_silent() {
        let mut plan = check(
            ExitPlanConfig::default(),
            1_000,
            &[Px(95.0, Some((StopLoss, 10_000))), Fill],
        );
        assert!(plan.is_closed());
        assert_eq!(plan.remaining(), TokenAmount::ZERO);
        for v in [50.0, 100.0, 200.0] {
            assert_eq!(plan.evaluate(p(v)), None);
        }
        // An over-report of the fill cannot underflow.
        plan.on_exit_filled(TokenAmount::new(5));
        assert!(plan.is_closed());
    }

    #[test]
    fn stop_level_is_the_highest_active_stop() {
        let table: [(&[f64], f64); 4] = [
            (&[], 95.0),
            (&[101.0], 95.0),
            (&[102.0], 100.2),
            (&[110.0, 99.0], 107.8),
        ];
        for (prices, expect) in table {
            let mut plan = ExitPlan::new(
                no_take_profit(),
                p(100.0),
                Size::new(TokenAmount::new(7)).unwrap(),
            );
            for &v in prices {
                let _ = plan.evaluate(p(v));
            }
            assert!(
                (plan.stop_level().get() - expect).abs() < 1e-9,
                "{prices:?}"
            );
        }
    }

    #[test]
    fn shared_and_owned_configs_behave_the_same() {
        let shared = Arc::new(ExitPlanConfig::default());
        let size = Size::new(TokenAmount::new(100)).unwrap();
        let mut a = ExitPlan::new_shared(Arc::clone(&shared), p(100.0), size);
        let mut b = ExitPlan::new(ExitPlanConfig::default(), p(100.0), size);
        assert!(Arc::ptr_eq(a.config(), &shared));
        for v in [101.0, 104.0, 99.0, 94.0] {
            assert_eq!(a.evaluate(p(v)), b.evaluate(p(v)), "at {v}");
        }
        assert_eq!((a.entry(), a.peak(), a.size()), (p(100.0), p(104.0), size));
    }

    #[test]
    fn a_plan_is_small() {
        assert!(
            core::mem::size_of::<ExitPlan>() <= 128,
            "{}",
            core::mem::size_of::<ExitPlan>()
        );
    }

    proptest! {
        #[test]
        fn one_intent_at_a_time_and_never_more_sold_than_held(
            three_rungs in any::<bool>(),
            size in 1u64..10_000_000,
            steps in proptest::collection::vec((-400i32..400, 0u8..3, 0u16..=10_000), 1..200),
        ) {
            let config = if three_rungs {
                ExitPlanConfig {
                    take_profit: vec![rung(100, 2_500), rung(200, 2_500), rung(300, 2_500)],
                    ..ExitPlanConfig::default()
                }
            } else {
                ExitPlanConfig::default()
            };
            let size = Size::new(TokenAmount::new(size)).unwrap();
            let mut plan = ExitPlan::new(config, p(100.0), size);
            let mut price = 100.0f64;
            let mut sold_total = 0u64;
            for (move_bps, action, fill_bps) in steps {
                price *= 1.0 + f64::from(move_bps) / 10_000.0;
                let was_pending = plan.pending();
                let was_closed = plan.is_closed();
                let got = plan.evaluate(p(price));
                if was_pending.is_some() || was_closed {
                    prop_assert_eq!(got, None);
                    prop_assert_eq!(plan.pending(), was_pending);
                }
                if let Some(intent) = got {
                    prop_assert_eq!(plan.pending(), Some(intent));
                    if intent.kind.is_protective() || intent.kind == TakeProfit {
                        prop_assert!(intent.fraction.is_all(), "{:?}", intent);
                    } else {
                        prop_assert!(!intent.fraction.is_all(), "{:?}", intent);
                    }
                }
                match (plan.pending(), action) {
                    (Some(intent), 1) => {
                        let asked = plan.remaining().portion(intent.fraction);
                        let sold = Fraction::from_bps(fill_bps)
                            .map_or(TokenAmount::ZERO, |f| asked.portion(f));
                        sold_total += sold.get();
                        plan.on_exit_filled(sold);
                    }
                    (Some(_), 2) => plan.on_exit_abandoned(),
                    _ => {}
                }
                prop_assert!(sold_total <= size.amount().get());
                prop_assert_eq!(plan.remaining().get(), size.amount().get() - sold_total);
                prop_assert!(plan.stop_level() < plan.peak());
            }
        }
    }

    #[test]
    fn a_restored_plan_keeps_its_size_and_does_not_resell_filled_rungs() {
        let config = Arc::new(ExitPlanConfig::default());
        let entry = Price::new(100.0).unwrap();
        let size = Size::new(TokenAmount::new(1_000)).unwrap();
        // The default ladder sold its first rung (half) before the restart.
        let mut plan = ExitPlan::restore(config.clone(), entry, size, TokenAmount::new(500));
        assert_eq!(
            (plan.size(), plan.remaining()),
            (size, TokenAmount::new(500))
        );
        // +4% again: the half-exit rung must not fire a second time.
        assert_eq!(plan.evaluate(Price::new(104.5).unwrap()), None);
        // +8%: the last rung takes the rest.
        let last = plan.evaluate(Price::new(108.5).unwrap()).unwrap();
        assert_eq!(last.kind, ExitKind::TakeProfit);
        assert!(last.fraction.is_all());
        // Nothing sold yet: every rung is still to come.
        let mut fresh = ExitPlan::restore(config, entry, size, TokenAmount::new(1_000));
        assert_eq!(
            fresh.evaluate(Price::new(104.5).unwrap()).map(|i| i.kind),
            Some(ExitKind::PartialTakeProfit)
        );
    }
}
