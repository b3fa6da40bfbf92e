//! The mean-reversion strategy: a rolling z-score of the price decides long-only entries
//! and the strategy's own exits. An entry also needs an edge: the expected reversion to
//! the mean, as a fraction of the price, must exceed the estimated cost of a round trip
//! ([`RoundTripCost`]) by a margin, so that the strategy does not trade away the wallet in
//! slippage and fees on moves too small to pay for themselves.

use crate::error::DomainError;
use crate::types::{ExitIntent, ExitKind, Fraction, PositionState, Price, TradeIntent};

/// Settings of the mean-reversion strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanReversionConfig {
    /// How many of the latest prices the rolling mean and standard deviation cover.
    pub window: usize,
    /// Enter when the z-score falls to `-entry_z` or below (a dip of that many sigmas).
    pub entry_z: f64,
    /// Exit a long position when the z-score rises to `exit_z` or above (0: back at the mean).
    pub exit_z: f64,
    /// What a round trip is estimated to cost.
    pub cost: RoundTripCost,
    /// How much the expected reversion must exceed the cost, as a fraction of the price.
    pub min_edge: f64,
}

/// The estimated cost of a round trip (an entry and its exit), as a fraction of the
/// position's value at `price`: slippage on both legs plus the fees paid in the base token
/// (network and priority fees, when the base is the chain's native token).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RoundTripCost {
    /// Slippage of both legs, as a fraction (0.015: 1.5%).
    pub slippage: f64,
    /// Fees of both legs, in whole base tokens (0.0001 SOL).
    pub fees_base: f64,
    /// The position's value in quote tokens (what the fees are a fraction of).
    pub notional_quote: f64,
}

impl RoundTripCost {
    /// The cost at `price` as a fraction of the position's value.
    #[must_use]
    pub fn at(&self, price: f64) -> f64 {
        let fees = if self.notional_quote > 0.0 {
            self.fees_base * price / self.notional_quote
        } else {
            0.0
        };
        self.slippage + fees
    }
}

impl Default for MeanReversionConfig {
    /// A 20-price window, entries at -2 sigma, exits at the mean, no cost hurdle.
    fn default() -> Self {
        Self {
            window: 20,
            entry_z: 2.0,
            exit_z: 0.0,
            cost: RoundTripCost::default(),
            min_edge: 0.0,
        }
    }
}

impl MeanReversionConfig {
    /// The smallest window: a standard deviation needs two prices.
    pub const MIN_WINDOW: usize = 2;
    /// The largest window, which bounds the strategy's memory.
    pub const MAX_WINDOW: usize = 100_000;

    /// Checks the settings.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] naming `strategy.window` (outside 2..=100000),
    /// `strategy.entry_z` (not finite or not above zero) or `strategy.exit_z` (not finite,
    /// or not above `-entry_z`, which would exit at or below the entry threshold).
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(Self::MIN_WINDOW..=Self::MAX_WINDOW).contains(&self.window) {
            return Err(DomainError::InvalidConfig {
                field: "strategy.window",
                expected: "an integer from 2 to 100000",
            });
        }
        if !(self.entry_z.is_finite() && self.entry_z > 0.0) {
            return Err(DomainError::InvalidConfig {
                field: "strategy.entry_z",
                expected: "a finite number above 0",
            });
        }
        if !(self.exit_z.is_finite() && self.exit_z > -self.entry_z) {
            return Err(DomainError::InvalidConfig {
                field: "strategy.exit_z",
                expected: "a finite number above -strategy.entry_z",
            });
        }
        let c = self.cost;
        let fraction = |v: f64| v.is_finite() && (0.0..1.0).contains(&v);
        if !(fraction(c.slippage)
            && c.fees_base.is_finite()
            && c.fees_base >= 0.0
            && c.notional_quote.is_finite()
            && c.notional_quote >= 0.0)
        {
            return Err(DomainError::InvalidConfig {
                field: "strategy.cost",
                expected: "a slippage fraction below 1, fees and a notional of 0 or more",
            });
        }
        if !fraction(self.min_edge) {
            return Err(DomainError::InvalidConfig {
                field: "strategy.min_edge_bps",
                expected: "0 to 9999 bps",
            });
        }
        Ok(())
    }
}

/// Rolling sums over a ring buffer of the last `window` prices.
///
/// The sums are of deviations from a reference price `shift` (a price of the window), which
/// keeps the variance free of the cancellation that raw sums of squares suffer at prices
/// far from zero. Every `window` updates the sums are recomputed from the buffer, so the
/// rounding error of the running additions and subtractions cannot drift.
#[derive(Debug, Clone)]
struct RollingWindow {
    prices: Vec<f64>,
    capacity: usize,
    /// Where the next price goes once the buffer is full (the oldest price).
    head: usize,
    shift: f64,
    sum: f64,
    sum_sq: f64,
    since_recompute: usize,
    latest: f64,
}

/// The moments of a full window.
#[derive(Debug, Clone, Copy)]
struct Moments {
    mean: f64,
    stddev: f64,
    /// `latest - mean`, computed from the shifted sums for precision.
    latest_deviation: f64,
}

impl RollingWindow {
    fn new(capacity: usize) -> Self {
        Self {
            prices: Vec::with_capacity(capacity),
            capacity,
            head: 0,
            shift: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            since_recompute: 0,
            latest: 0.0,
        }
    }

    fn push(&mut self, price: f64) {
        if self.prices.is_empty() {
            self.shift = price;
        }
        if self.prices.len() < self.capacity {
            self.prices.push(price);
        } else if let Some(slot) = self.prices.get_mut(self.head) {
            let old = core::mem::replace(slot, price) - self.shift;
            self.sum -= old;
            self.sum_sq -= old * old;
            self.head = (self.head + 1) % self.capacity;
        }
        let d = price - self.shift;
        self.sum += d;
        self.sum_sq += d * d;
        self.latest = price;
        self.since_recompute += 1;
        if self.since_recompute >= self.capacity {
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        self.shift = self.latest;
        let (sum, sum_sq) = self.prices.iter().fold((0.0, 0.0), |(s, q), p| {
            let d = p - self.latest;
            (s + d, q + d * d)
        });
        self.sum = sum;
        self.sum_sq = sum_sq;
        self.since_recompute = 0;
    }

    fn is_full(&self) -> bool {
        self.prices.len() == self.capacity
    }

    fn moments(&self) -> Option<Moments> {
        if !self.is_full() {
            return None;
        }
        let n = self.capacity as f64;
        let mean_d = self.sum / n;
        let mean_sq_d = self.sum_sq / n;
        let variance = mean_sq_d - mean_d * mean_d;
        // Below this bound the variance is indistinguishable from the rounding error of
        // `E[d^2] - E[d]^2`: a flat series must not produce a spurious huge z-score.
        let noise = 64.0 * f64::EPSILON * mean_sq_d;
        let stddev = if variance > noise {
            variance.sqrt()
        } else {
            0.0
        };
        Some(Moments {
            mean: self.shift + mean_d,
            stddev,
            latest_deviation: (self.latest - self.shift) - mean_d,
        })
    }
}

/// What the strategy has asked for and not yet heard back about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    Entry,
}

/// The long-only mean-reversion strategy: buys a dip of `entry_z` sigmas below the rolling
/// mean and exits once the price has reverted to `exit_z` sigmas.
///
/// It never emits a second entry while one awaits [`MeanReversion::confirm_trade`]: at
/// most one entry intent is in flight.
#[derive(Debug, Clone)]
pub struct MeanReversion {
    config: MeanReversionConfig,
    window: RollingWindow,
    position: PositionState,
    pending: Pending,
}

impl MeanReversion {
    /// A flat strategy with an empty window.
    ///
    /// # Errors
    /// Whatever [`MeanReversionConfig::validate`] refuses.
    pub fn new(config: MeanReversionConfig) -> Result<Self, DomainError> {
        config.validate()?;
        Ok(Self {
            config,
            window: RollingWindow::new(config.window),
            position: PositionState::Flat,
            pending: Pending::Nothing,
        })
    }

    /// Feeds the next price and returns what the strategy wants.
    ///
    /// Flat: `Enter { price }` when the z-score is at or below `-entry_z`. Long:
    /// `Exit(ExitIntent { kind: Strategy, fraction: ALL, trigger_price: price })` when the
    /// z-score is at or above `exit_z`. Otherwise `Hold`, and always `Hold` while the window
    /// is not full, its standard deviation is zero, or an entry is pending confirmation.
    #[must_use]
    pub fn update(&mut self, price: Price) -> TradeIntent {
        self.window.push(price.get());
        let Some(z) = self.zscore() else {
            return TradeIntent::Hold;
        };
        match (self.position, self.pending) {
            (_, Pending::Entry) => TradeIntent::Hold,
            (PositionState::Flat, Pending::Nothing)
                if z <= -self.config.entry_z && self.pays_for_itself(price) =>
            {
                self.pending = Pending::Entry;
                TradeIntent::Enter { price }
            }
            (PositionState::Long { .. }, Pending::Nothing) if z >= self.config.exit_z => {
                TradeIntent::Exit(ExitIntent {
                    kind: ExitKind::Strategy,
                    fraction: Fraction::ALL,
                    trigger_price: price,
                })
            }
            _ => TradeIntent::Hold,
        }
    }

    /// The expected reversion to the mean from `price`, as a fraction of `price`; `None`
    /// until the window is full.
    #[must_use]
    pub fn expected_reversion(&self, price: Price) -> Option<f64> {
        self.mean().map(|mean| (mean - price.get()) / price.get())
    }

    /// Whether the expected reversion from `price` exceeds the round trip's cost by the
    /// margin.
    #[must_use]
    pub fn pays_for_itself(&self, price: Price) -> bool {
        self.expected_reversion(price)
            .is_some_and(|edge| edge >= self.config.cost.at(price.get()) + self.config.min_edge)
    }

    /// Tells the strategy what the position now is after a trade filled or failed; clears a
    /// pending entry (a failed entry, confirmed `Flat`, allows a new one).
    pub fn confirm_trade(&mut self, position: PositionState) {
        self.position = position;
        self.pending = Pending::Nothing;
    }

    /// The z-score of the latest price against the window; `None` until the window is full
    /// or while its standard deviation is zero.
    #[must_use]
    pub fn zscore(&self) -> Option<f64> {
        let m = self.window.moments()?;
        (m.stddev > 0.0).then(|| m.latest_deviation / m.stddev)
    }

    /// The rolling mean of the last `window` prices; `None` until the window is full.
    #[must_use]
    pub fn mean(&self) -> Option<f64> {
        self.window.moments().map(|m| m.mean)
    }

    /// The rolling population standard deviation; `None` until the window is full.
    #[must_use]
    pub fn stddev(&self) -> Option<f64> {
        self.window.moments().map(|m| m.stddev)
    }

    /// The position as last confirmed.
    #[must_use]
    pub fn position(&self) -> PositionState {
        self.position
    }

    /// Whether an entry was emitted and awaits [`MeanReversion::confirm_trade`].
    #[must_use]
    pub fn entry_pending(&self) -> bool {
        self.pending == Pending::Entry
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &MeanReversionConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Size, TokenAmount};
    use proptest::prelude::*;

    fn p(v: f64) -> Price {
        Price::new(v).unwrap()
    }

    fn long_at(entry: f64) -> PositionState {
        PositionState::Long {
            size: Size::new(TokenAmount::new(1_000)).unwrap(),
            entry_price: p(entry),
        }
    }

    #[test]
    fn a_dip_that_cannot_pay_for_its_round_trip_is_not_entered() {
        let cost = RoundTripCost {
            slippage: 0.015,
            fees_base: 0.0011,
            notional_quote: 100.0,
        };
        // Fees of 0.0011 SOL at 100 on a 100 USDC position: 0.11% more.
        assert!((cost.at(100.0) - 0.0161).abs() < 1e-12);
        let config = MeanReversionConfig {
            window: 20,
            cost,
            min_edge: 0.002,
            ..MeanReversionConfig::default()
        };
        // Twenty prices around 100, then a dip: -2 sigma either way, but only the deep one
        // reverts far enough (1.81% needed).
        for (dip, enters) in [(99.0, false), (97.0, true)] {
            let mut s = MeanReversion::new(config).unwrap();
            for i in 0..20 {
                let _ = s.update(p(if i % 2 == 0 { 100.05 } else { 99.95 }));
            }
            let intent = s.update(p(dip));
            assert!(s.zscore().unwrap() <= -2.0, "a dip of 2 sigma at {dip}");
            assert_eq!(matches!(intent, TradeIntent::Enter { .. }), enters, "{dip}");
            assert_eq!(s.pays_for_itself(p(dip)), enters);
        }
        // Without a cost, the shallow dip is entered.
        let mut s = strategy(20);
        for i in 0..20 {
            let _ = s.update(p(if i % 2 == 0 { 100.05 } else { 99.95 }));
        }
        assert!(matches!(s.update(p(99.0)), TradeIntent::Enter { .. }));
    }

    #[test]
    fn costs_and_margins_out_of_range_are_refused() {
        let bad = [
            RoundTripCost {
                slippage: 1.0,
                ..RoundTripCost::default()
            },
            RoundTripCost {
                slippage: f64::NAN,
                ..RoundTripCost::default()
            },
            RoundTripCost {
                fees_base: -1.0,
                ..RoundTripCost::default()
            },
            RoundTripCost {
                notional_quote: f64::INFINITY,
                ..RoundTripCost::default()
            },
        ];
        for cost in bad {
            let config = MeanReversionConfig {
                cost,
                ..MeanReversionConfig::default()
            };
            assert!(config.validate().is_err(), "{cost:?}");
        }
        let config = MeanReversionConfig {
            min_edge: -0.1,
            ..MeanReversionConfig::default()
        };
        assert!(config.validate().is_err());
    }

    fn strategy(window: usize) -> MeanReversion {
        MeanReversion::new(MeanReversionConfig {
            window,
            ..MeanReversionConfig::default()
        })
        .unwrap()
    }

    /// Fills the window with prices alternating 99 and 101 (mean 100, sigma 1), ending on 101.
    fn warm(s: &mut MeanReversion) {
        for i in 0..s.config().window {
            let v = if i % 2 == 0 { 99.0 } else { 101.0 };
            assert_eq!(s.update(p(v)), TradeIntent::Hold);
        }
    }

    fn naive(prices: &[f64]) -> (f64, f64) {
        let n = prices.len() as f64;
        let mean = prices.iter().sum::<f64>() / n;
        let var = prices.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn config_validation_names_the_offending_key() {
        let ok = MeanReversionConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let table: [(MeanReversionConfig, &str); 8] = [
            (MeanReversionConfig { window: 1, ..ok }, "strategy.window"),
            (
                MeanReversionConfig {
                    window: 100_001,
                    ..ok
                },
                "strategy.window",
            ),
            (
                MeanReversionConfig { entry_z: 0.0, ..ok },
                "strategy.entry_z",
            ),
            (
                MeanReversionConfig {
                    entry_z: f64::NAN,
                    ..ok
                },
                "strategy.entry_z",
            ),
            (
                MeanReversionConfig {
                    entry_z: f64::INFINITY,
                    ..ok
                },
                "strategy.entry_z",
            ),
            (
                MeanReversionConfig { exit_z: -2.0, ..ok },
                "strategy.exit_z",
            ),
            (
                MeanReversionConfig {
                    exit_z: f64::NAN,
                    ..ok
                },
                "strategy.exit_z",
            ),
            (
                MeanReversionConfig {
                    exit_z: f64::NEG_INFINITY,
                    ..ok
                },
                "strategy.exit_z",
            ),
        ];
        for (config, key) in table {
            match config.validate() {
                Err(DomainError::InvalidConfig { field, .. }) => assert_eq!(field, key),
                other => panic!("{config:?}: expected {key} refused, got {other:?}"),
            }
            assert!(MeanReversion::new(config).is_err());
        }
        let edges = [
            MeanReversionConfig { window: 2, ..ok },
            MeanReversionConfig {
                window: 100_000,
                ..ok
            },
            MeanReversionConfig {
                exit_z: -1.99,
                ..ok
            },
        ];
        for config in edges {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }

    #[test]
    fn warm_up_holds_and_reports_nothing_until_the_window_is_full() {
        let mut s = strategy(5);
        for v in [100.0, 50.0, 200.0, 10.0] {
            assert_eq!(s.update(p(v)), TradeIntent::Hold);
            assert_eq!(s.zscore(), None);
            assert_eq!(s.mean(), None);
        }
        assert_eq!(s.update(p(1.0)), TradeIntent::Hold);
        assert!(s.zscore().is_some());
        assert!((s.mean().unwrap() - 72.2).abs() < 1e-9);
    }

    #[test]
    fn a_flat_series_has_no_zscore_and_holds() {
        let mut s = strategy(4);
        for _ in 0..50 {
            assert_eq!(s.update(p(0.1)), TradeIntent::Hold);
        }
        assert_eq!(s.zscore(), None);
        assert_eq!(s.stddev(), Some(0.0));
    }

    #[test]
    fn a_dip_of_more_than_two_sigma_enters() {
        let mut s = strategy(20);
        warm(&mut s);
        // 19 prices near 100 plus one at 95: z is about -4.
        assert_eq!(s.update(p(95.0)), TradeIntent::Enter { price: p(95.0) });
        assert!(s.zscore().unwrap() < -2.0);
        assert!(s.entry_pending());
    }

    #[test]
    fn a_small_dip_holds() {
        let mut s = strategy(20);
        warm(&mut s);
        assert_eq!(s.update(p(98.5)), TradeIntent::Hold);
        assert!(s.zscore().unwrap() > -2.0);
    }

    #[test]
    fn no_second_enter_while_pending() {
        let mut s = strategy(20);
        warm(&mut s);
        assert!(matches!(s.update(p(95.0)), TradeIntent::Enter { .. }));
        for v in [90.0, 85.0, 80.0] {
            assert_eq!(s.update(p(v)), TradeIntent::Hold, "at {v}");
        }
    }

    #[test]
    fn no_enter_while_long() {
        let mut s = strategy(20);
        warm(&mut s);
        assert!(matches!(s.update(p(95.0)), TradeIntent::Enter { .. }));
        s.confirm_trade(long_at(95.0));
        assert!(!s.entry_pending());
        for v in [90.0, 85.0, 80.0] {
            assert_eq!(s.update(p(v)), TradeIntent::Hold, "at {v}");
        }
        assert_eq!(s.position(), long_at(95.0));
    }

    #[test]
    fn reversion_to_the_mean_exits_when_long() {
        let mut s = strategy(20);
        warm(&mut s);
        assert!(matches!(s.update(p(95.0)), TradeIntent::Enter { .. }));
        s.confirm_trade(long_at(95.0));
        // Below the mean: hold; back above it: exit everything.
        assert_eq!(s.update(p(96.0)), TradeIntent::Hold);
        let expected = TradeIntent::Exit(ExitIntent {
            kind: ExitKind::Strategy,
            fraction: Fraction::ALL,
            trigger_price: p(101.0),
        });
        assert_eq!(s.update(p(101.0)), expected);
        assert!(s.zscore().unwrap() >= 0.0);
    }

    #[test]
    fn reversion_while_flat_holds() {
        let mut s = strategy(20);
        warm(&mut s);
        assert_eq!(s.update(p(103.0)), TradeIntent::Hold);
        assert!(s.zscore().unwrap() > 0.0);
    }

    #[test]
    fn confirming_flat_after_a_failed_entry_allows_a_new_enter() {
        let mut s = strategy(20);
        warm(&mut s);
        assert!(matches!(s.update(p(95.0)), TradeIntent::Enter { .. }));
        assert_eq!(s.update(p(90.0)), TradeIntent::Hold);
        s.confirm_trade(PositionState::Flat);
        assert_eq!(s.update(p(85.0)), TradeIntent::Enter { price: p(85.0) });
    }

    #[test]
    fn confirming_flat_after_an_exit_allows_a_new_enter() {
        let mut s = strategy(20);
        warm(&mut s);
        assert!(matches!(s.update(p(95.0)), TradeIntent::Enter { .. }));
        s.confirm_trade(long_at(95.0));
        assert!(matches!(s.update(p(101.0)), TradeIntent::Exit(_)));
        s.confirm_trade(PositionState::Flat);
        assert_eq!(s.position(), PositionState::Flat);
        assert!(matches!(s.update(p(80.0)), TradeIntent::Enter { .. }));
    }

    #[test]
    fn sums_are_recomputed_so_a_large_level_shift_leaves_no_residue() {
        // Huge prices, then small ones: running sums alone would keep rounding residue.
        let mut s = strategy(3);
        for v in [1.1e12 + 0.37, 3.3e12 + 0.11, 2.7e12 + 0.93, 1.0, 2.0, 3.0] {
            let _ = s.update(p(v));
        }
        assert!((s.mean().unwrap() - 2.0).abs() < 1e-9);
        assert!((s.stddev().unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn a_high_price_level_with_tiny_moves_keeps_its_precision() {
        // Raw sums of squares of 1e8 lose everything below about 1e-1: shifted sums do not.
        let mut s = strategy(100);
        for i in 0..150 {
            let _ = s.update(p(1e8 + if i % 2 == 0 { 0.0 } else { 0.01 }));
        }
        assert!(
            (s.stddev().unwrap() - 0.005).abs() < 1e-6,
            "{:?}",
            s.stddev()
        );
        assert!((s.zscore().unwrap() - 1.0).abs() < 1e-3, "{:?}", s.zscore());
    }

    proptest! {
        #[test]
        fn rolling_values_match_a_naive_recomputation(
            window in 2usize..40,
            prices in proptest::collection::vec(1.0f64..1_000.0, 1..300),
        ) {
            let mut s = strategy(window);
            for (i, &v) in prices.iter().enumerate() {
                let _ = s.update(p(v));
                let seen = &prices[..=i];
                if seen.len() < window {
                    prop_assert_eq!(s.mean(), None);
                    prop_assert_eq!(s.zscore(), None);
                    continue;
                }
                let last = &seen[seen.len() - window..];
                let (mean, sd) = naive(last);
                let got_mean = s.mean().unwrap();
                let got_sd = s.stddev().unwrap();
                prop_assert!((got_mean - mean).abs() <= 1e-9 * mean.abs().max(1.0),
                    "mean {} vs naive {}", got_mean, mean);
                prop_assert!((got_sd - sd).abs() <= 1e-6 * sd.max(1.0),
                    "stddev {} vs naive {}", got_sd, sd);
                if sd > 1.0 {
                    let z = (v - mean) / sd;
                    let got_z = s.zscore().unwrap();
                    prop_assert!((got_z - z).abs() <= 1e-6 * z.abs().max(1.0),
                        "z {} vs naive {}", got_z, z);
                }
            }
        }
    }
}
