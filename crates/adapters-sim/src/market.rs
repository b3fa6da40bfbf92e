//! The simulated market: a price path (a recorded series or a seeded generator's) read on
//! tokio's clock.
//!
//! A [`PricePath`] holds prices at a fixed step: point `i` is the price at `i × step`,
//! and price `i` holds over `[i × step, (i + 1) × step)`, so a path of `n` points spans
//! `n × step` ([`PricePath::duration`]). Between two points [`PricePath::price_at`]
//! interpolates linearly (a recorded 1-minute close series then moves smoothly between
//! closes instead of jumping once a minute); from the last point on it is the last price.
//!
//! Paths come from [`parse_csv`] / [`load_csv`] (a recorded series) or [`generate`] (see
//! the generator's calibration below). [`SimMarket`] is the
//! [`PriceFeed`] over a path.
//!
//! # The generator ([`generate`])
//!
//! Log-price steps of a geometric Brownian motion with drift, plus Poisson jumps, plus an
//! optional crash segment. At each step of `dt`:
//!
//! `ln p(t+dt) = ln p(t) + drift_per_hour × dt_h + σ × √dt_y × Z + Σ ln(1 + J_k / 100)`
//!
//! with `Z ~ N(0, 1)`, `σ = annual_vol` (times `vol_multiplier` inside a crash), the
//! number of jumps `~ Poisson(jump_rate_per_hour × dt_h)` and each jump
//! `J ~ N(jump_mean_pct, jump_std_pct)` percent (floored at −95 %). Inside the crash
//! segment `[at, at + over)` the steps are shifted by a common constant so that they sum
//! to exactly `ln(1 − drop_pct / 100)`: a Brownian bridge to the crash's low, so the drop
//! is exact and the path between is as noisy as the multiplied volatility says.
//!
//! [`GeneratorConfig`] fields (all validated by [`GeneratorConfig::validate`]):
//!
//! | field | meaning | range |
//! |---|---|---|
//! | `start_price` | first price | finite, > 0 |
//! | `step` | time between points (regime default 1 s) | > 0, ≤ `duration` |
//! | `duration` | span of the path; `duration / step` points (at most 10 million) | ≥ `step` |
//! | `annual_vol` | σ: annualised standard deviation of log returns (2.9 = 290 %) | 0 ..= 50 |
//! | `drift_per_hour` | mean log return per hour, as a fraction (−0.0093 = −0.93 %/h) | −1 ..= 1 |
//! | `jump_rate_per_hour` | mean number of jumps per hour | 0 ..= 3600 |
//! | `jump_mean_pct` | mean jump size, percent | −50 ..= 50 |
//! | `jump_std_pct` | jump size standard deviation, percent | 0 ..= 50 |
//! | `crash` | optional [`CrashSpec`]: `at`, `drop_pct` (0 < d < 100), `over` (≥ `step`, ends within `duration`), `vol_multiplier` (0 ..= 100) | |
//!
//! ## Calibration (measured once, by hand, on the real series)
//!
//! Binance SOL/USDT 1-minute candles, 2021-05-17 00:00 to 2021-05-23 23:59 UTC (10,080
//! rows, `shared/data/sol_usdt_1m_binance_2021-05-17_2021-05-24.csv`), close-to-close log
//! returns annualised with √(525,600 minutes per year). A "jump" is a 1-minute return
//! more than 5 robust standard deviations (1.4826 × MAD) from the day's median.
//!
//! | day | realised vol | vol without jumps | drift | jumps/h | jump mean, std |
//! |---|---|---|---|---|---|
//! | 17 May (calm) | 3.14 | 3.02 | −0.03 %/h | 0.25 | −0.65 %, 1.81 % |
//! | 18 May (up-trend) | 2.61 | 2.41 | +0.80 %/h | 0.38 | −0.51 %, 1.69 % |
//! | 19 May (crash) | 7.56 | 5.41 | −1.91 %/h | 1.17 | +0.44 %, 5.27 % |
//! | 22 May (down-trend) | 2.88 | 2.82 | −0.93 %/h | 0.08 | +0.01 %, 2.10 % |
//! | 17 + 22 May pooled (calm) | 3.01 | 2.92 | | 0.17 | −0.49 %, 1.91 % |
//!
//! The 19 May crash: from the 11:58 high of 45.00 to the 12:55 low of 26.50, **41 % in
//! 57 minutes** (32.9 % close to close); realised volatility over those 57 minutes 12.0,
//! **4.1 ×** the calm days' 2.92.
//!
//! ## Regime defaults ([`GeneratorConfig::regime`])
//!
//! | regime | annual_vol | drift_per_hour | jumps/h | jump mean, std | crash |
//! |---|---|---|---|---|---|
//! | `Calm` (17 + 22 May pooled) | 2.9 | 0 | 0.17 | −0.5 %, 1.9 % | none |
//! | `Trending` (22 May's down-trend: the side that tests stops) | 2.8 | −0.0093 | 0.08 | 0 %, 2.1 % | none |
//! | `Crash` (calm background + 19 May) | 2.9 | 0 | 0.17 | −0.5 %, 1.9 % | 41 % over 57 min at a quarter of the duration, vol × 4.1 |
//!
//! All regimes step at 1 s. A `Crash` path shorter than 57 min after its start gets a
//! shorter crash of the same 41 % (it ends at the path's end).

mod csv;
mod generator;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{PortError, PriceFeed, PriceTick};
use kyzlo_domain::{Price, Timestamp};

pub use crate::error::CsvError;
pub use csv::{CsvRules, MAX_PRICE, MAX_STEP_MS, MIN_PRICE, load_csv, parse_csv};
pub use generator::{CrashSpec, GeneratorConfig, Regime, embedded, generate};

use crate::error::SimError;

/// Prices at a fixed step; never empty, the step never zero.
#[derive(Debug, Clone, PartialEq)]
pub struct PricePath {
    step: Duration,
    prices: Vec<Price>,
    /// The recorded timestamp (unix ms) of point 0; 0 for a generated path.
    first_ts_ms: u64,
}

impl PricePath {
    /// A path of `prices`, one every `step`.
    ///
    /// # Errors
    /// [`SimError::InvalidPath`] when `prices` is empty or `step` is zero.
    pub fn new(step: Duration, prices: Vec<Price>) -> Result<Self, SimError> {
        if prices.is_empty() {
            return Err(SimError::InvalidPath {
                reason: "a path needs at least one price",
            });
        }
        if step.is_zero() {
            return Err(SimError::InvalidPath {
                reason: "the step must be greater than zero",
            });
        }
        Ok(Self {
            step,
            prices,
            first_ts_ms: 0,
        })
    }

    /// The same path, its point 0 recorded at `ts_ms` (unix ms).
    #[must_use]
    pub fn with_first_ts_ms(mut self, ts_ms: u64) -> Self {
        self.first_ts_ms = ts_ms;
        self
    }

    /// The recorded timestamp (unix ms) of point 0: a CSV's first row, 0 for a
    /// generated path; a slice's is its own start.
    #[must_use]
    pub fn first_ts_ms(&self) -> u64 {
        self.first_ts_ms
    }

    /// The price `t` after the path's start: linear between points, the last price from
    /// the last point on.
    #[must_use]
    pub fn price_at(&self, t: Duration) -> Price {
        let step = self.step.as_nanos();
        let t = t.as_nanos();
        let index = usize::try_from(t / step).unwrap_or(usize::MAX);
        let last = self.prices.len() - 1;
        if index >= last {
            return self.prices[last];
        }
        let a = self.prices[index].get();
        let b = self.prices[index + 1].get();
        let frac = (t % step) as f64 / step as f64;
        // Between two positive finite prices the result is positive and finite.
        Price::new(a + (b - a) * frac).unwrap_or(self.prices[index])
    }

    /// The span the path covers: `len × step`.
    #[must_use]
    pub fn duration(&self) -> Duration {
        let n = u32::try_from(self.prices.len()).unwrap_or(u32::MAX);
        self.step.saturating_mul(n)
    }

    /// The time between two points.
    #[must_use]
    pub fn step(&self) -> Duration {
        self.step
    }

    /// The points.
    #[must_use]
    pub fn prices(&self) -> &[Price] {
        &self.prices
    }

    /// The path from `start` on, re-based so that its time 0 is `start`, on the same
    /// step. When `start` is a multiple of the step this is an exact slice of the
    /// points; otherwise the points are the interpolated prices at `start + k × step`.
    /// From the end on it is a one-point path holding the last price.
    #[must_use]
    pub fn slice_from(&self, start: Duration) -> PricePath {
        let step = self.step.as_nanos();
        let t = start.as_nanos();
        let last = self.prices.len() - 1;
        let (offset, prices) = if t.is_multiple_of(step) {
            let index = usize::try_from(t / step).unwrap_or(usize::MAX).min(last);
            (self.step_offset(index), self.prices[index..].to_vec())
        } else if start >= self.duration() {
            (self.step_offset(last), vec![self.prices[last]])
        } else {
            let mut prices = Vec::new();
            let mut at = start;
            while at < self.duration() {
                prices.push(self.price_at(at));
                at = at.saturating_add(self.step);
            }
            (start, prices)
        };
        let offset_ms = u64::try_from(offset.as_millis()).unwrap_or(u64::MAX);
        PricePath {
            step: self.step,
            prices,
            first_ts_ms: self.first_ts_ms.saturating_add(offset_ms),
        }
    }

    fn step_offset(&self, index: usize) -> Duration {
        let nanos = self.step.as_nanos().saturating_mul(index as u128);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The price feed of a simulated run: the path's price at `clock.now() - start`.
#[derive(Debug, Clone)]
pub struct SimMarket {
    /// The prices.
    pub path: Arc<PricePath>,
    /// Tokio's clock, shared with the services.
    pub clock: Clock,
    /// The clock time at which the path begins (before it: the first price).
    pub start: Timestamp,
}

impl SimMarket {
    /// A market reading `path` from `start` on `clock`.
    #[must_use]
    pub fn new(path: Arc<PricePath>, clock: Clock, start: Timestamp) -> Self {
        Self { path, clock, start }
    }

    /// A market whose path begins now.
    #[must_use]
    pub fn starting_now(path: Arc<PricePath>, clock: Clock) -> Self {
        Self::new(path, clock, clock.now())
    }

    /// Time since the path began.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.clock.now().saturating_since(self.start)
    }

    /// The price `t` after the path began.
    #[must_use]
    pub fn price_at(&self, t: Duration) -> Price {
        self.path.price_at(t)
    }

    /// The price now.
    #[must_use]
    pub fn price_now(&self) -> Price {
        self.price_at(self.elapsed())
    }
}

#[async_trait]
impl PriceFeed for SimMarket {
    async fn price(&self) -> Result<PriceTick, PortError> {
        Ok(PriceTick {
            price: self.price_now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: f64) -> Price {
        Price::new(v).unwrap()
    }

    fn path() -> PricePath {
        PricePath::new(Duration::from_secs(60), vec![p(100.0), p(110.0), p(90.0)]).unwrap()
    }

    #[test]
    fn empty_paths_and_zero_steps_are_refused() {
        assert!(matches!(
            PricePath::new(Duration::from_secs(1), vec![]),
            Err(SimError::InvalidPath { .. })
        ));
        assert!(matches!(
            PricePath::new(Duration::ZERO, vec![p(1.0)]),
            Err(SimError::InvalidPath { .. })
        ));
    }

    #[test]
    fn price_at_interpolates_between_points_and_holds_the_last_price() {
        let path = path();
        let cases = [
            (0, 100.0),
            (30, 105.0),
            (60, 110.0),
            (90, 100.0),
            (120, 90.0),
            (150, 90.0),
            (100_000, 90.0),
        ];
        for (secs, want) in cases {
            let got = path.price_at(Duration::from_secs(secs)).get();
            assert!((got - want).abs() < 1e-9, "at {secs}s: {got} != {want}");
        }
        assert_eq!(path.duration(), Duration::from_secs(180));
        assert_eq!(path.step(), Duration::from_secs(60));
        assert_eq!(path.prices().len(), 3);
        assert_eq!(path.price_at(Duration::MAX).get(), 90.0);
    }

    #[test]
    fn slice_from_rebases_the_path_on_and_off_the_grid() {
        let path = path();
        let on = path.slice_from(Duration::from_secs(60));
        assert_eq!(on.prices(), &[p(110.0), p(90.0)]);
        let off = path.slice_from(Duration::from_secs(30));
        assert_eq!(off.prices().len(), 3);
        assert!((off.price_at(Duration::ZERO).get() - 105.0).abs() < 1e-9);
        assert!((off.price_at(Duration::from_secs(60)).get() - 100.0).abs() < 1e-9);
        let past = path.slice_from(Duration::from_secs(10_000));
        assert_eq!(past.prices(), &[p(90.0)]);
        let past_off_grid = path.slice_from(Duration::from_secs(10_001));
        assert_eq!(past_off_grid.prices(), &[p(90.0)]);
        let recorded = path.with_first_ts_ms(1_000_000);
        assert_eq!(recorded.first_ts_ms(), 1_000_000);
        assert_eq!(
            recorded.slice_from(Duration::from_secs(60)).first_ts_ms(),
            1_060_000
        );
        assert_eq!(
            recorded.slice_from(Duration::from_secs(30)).first_ts_ms(),
            1_030_000
        );
        assert_eq!(
            recorded.slice_from(Duration::from_secs(999)).first_ts_ms(),
            1_120_000
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_market_reads_the_path_on_tokio_time_from_its_start() {
        let clock = Clock::new();
        let market = SimMarket::new(
            Arc::new(path()),
            clock,
            Timestamp::ZERO.saturating_add(Duration::from_secs(60)),
        );
        assert_eq!(market.price().await.unwrap().price, p(100.0));
        tokio::time::advance(Duration::from_secs(90)).await;
        assert!((market.price().await.unwrap().price.get() - 105.0).abs() < 1e-9);
        assert_eq!(market.price_at(Duration::from_secs(120)), p(90.0));
    }
}
