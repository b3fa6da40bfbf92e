//! Rolling latency statistics over the last `window` calls, recorded in O(1).
//!
//! A ring buffer holds the samples of the window; a log-linear histogram, a running sum and
//! two monotonic deques (for the exact minimum and maximum) are updated incrementally on every
//! record: +1 for the new sample, -1 for the evicted one. Nothing is sorted. Quantiles scan a
//! bounded number of histogram buckets and are within [`RollingLatency::RELATIVE_ERROR`] of the
//! exact nearest-rank percentile.

use core::time::Duration;
use std::collections::VecDeque;

use crate::error::DomainError;

/// Sub-bucket bits of the histogram: each power-of-two range above 256 us is split into
/// `2^SUB_BITS` = 128 equal buckets.
const SUB_BITS: u32 = 7;
/// Buckets covering every `u64` microsecond value: 256 exact buckets for 0..256 us, then 128
/// buckets for each of the 56 octaves from 2^8 to 2^64 us.
const BUCKETS: usize = ((64 - SUB_BITS as usize - 1) << SUB_BITS) + (2 << SUB_BITS);

/// The histogram bucket of a value in microseconds.
///
/// Values below 256 get a bucket each. Above, a value whose highest set bit is `m` keeps its
/// top eight bits `sub` (128..=255) and loses `shift = m - 7` low bits; its bucket covers
/// `[sub << shift, (sub + 1) << shift)`, a width of at most 1/128 of its lower bound.
#[inline]
fn bucket_of(micros: u64) -> usize {
    let shift = (63 - (micros | 1).leading_zeros()).saturating_sub(SUB_BITS);
    // `micros >> shift` is below 256, `shift` at most 56: the index is below BUCKETS.
    ((shift as usize) << SUB_BITS) + (micros >> shift) as usize
}

/// The value reported for a bucket: the middle of its range, so the reported value is within
/// half a bucket width (at most 1/256 of the lower bound) of every value the bucket holds.
#[inline]
fn bucket_value(index: usize) -> u64 {
    let (shift, sub) = if index < (2 << SUB_BITS) {
        (0, index as u64)
    } else {
        let shift = (index >> SUB_BITS) - 1;
        (shift as u32, (index - (shift << SUB_BITS)) as u64)
    };
    let lower = sub << shift;
    lower + ((1u64 << shift) >> 1)
}

/// The 1-based nearest rank of quantile `q` among `n` sorted samples: `max(1, ceil(q * n))`.
///
/// `q` is clamped to `[0, 1]` (NaN reads as 1, the pessimistic answer for a latency) and rounded
/// to nine decimals so that `0.99 * 100` is rank 99 and not 100 through binary rounding.
#[must_use]
pub fn nearest_rank(q: f64, n: usize) -> usize {
    const SCALE: u128 = 1_000_000_000;
    let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
    // In 0..=SCALE after the clamp, so the cast is exact.
    let q_scaled = (q * SCALE as f64).round() as u128;
    let n_wide = n as u128;
    let rank = (q_scaled * n_wide).div_ceil(SCALE);
    usize::try_from(rank).unwrap_or(n).clamp(1, n.max(1))
}

/// Count, mean, extremes and quantiles of a latency window at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySnapshot {
    /// Samples in the window.
    pub count: u64,
    /// Exact mean, rounded down to the microsecond.
    pub mean: Duration,
    /// Exact minimum.
    pub min: Duration,
    /// Exact maximum.
    pub max: Duration,
    /// Median (nearest rank), within [`RollingLatency::RELATIVE_ERROR`].
    pub p50: Duration,
    /// 95th percentile (nearest rank), within [`RollingLatency::RELATIVE_ERROR`].
    pub p95: Duration,
    /// 99th percentile (nearest rank), within [`RollingLatency::RELATIVE_ERROR`].
    pub p99: Duration,
}

/// Latency statistics over the last `window` recorded calls.
///
/// Latencies are kept in whole microseconds (a sub-microsecond remainder is dropped; a duration
/// beyond `u64::MAX` microseconds saturates there, in the top bucket). Every operation but
/// [`quantile`](Self::quantile) (a bounded histogram scan) and [`clear`](Self::clear) is O(1)
/// amortised, and nothing allocates after [`new`](Self::new).
#[derive(Debug, Clone)]
pub struct RollingLatency {
    window: usize,
    /// The last `len` samples in microseconds, written round-robin.
    ring: Vec<u64>,
    len: usize,
    /// The slot the next sample goes to: once the window is full, the oldest sample's.
    head: usize,
    sum: u128,
    counts: Vec<u32>,
    /// Ring slots of the window's samples, oldest first, with increasing values: the front
    /// is the minimum. A slot names one sample since the deque only holds live samples.
    min_slots: VecDeque<u32>,
    /// Ring slots, oldest first, with decreasing values: the front is the maximum.
    max_slots: VecDeque<u32>,
}

impl RollingLatency {
    /// The largest relative error of a quantile: `|reported - exact| <= RELATIVE_ERROR * exact`
    /// for the exact nearest-rank percentile of the window's microsecond values.
    ///
    /// Why 1/256: a bucket above 256 us covers `[sub * 2^s, (sub + 1) * 2^s)` with `sub >= 128`,
    /// and the reported value is its middle, at most `2^(s-1)` from any value in it, which is
    /// at least `128 * 2^s`: a ratio of at most 1/256. Buckets below 256 us are exact. Clamping
    /// the result into `[min, max]`, an interval holding the exact value, only moves it closer.
    pub const RELATIVE_ERROR: f64 = 1.0 / 256.0;

    /// The largest window allowed.
    pub const MAX_WINDOW: usize = 1_000_000;

    /// Statistics over the last `window` samples.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] for `latency.window` unless `window` is in
    /// `1..=1_000_000`.
    pub fn new(window: usize) -> Result<Self, DomainError> {
        if window == 0 || window > Self::MAX_WINDOW {
            return Err(DomainError::InvalidConfig {
                field: "latency.window",
                expected: "an integer from 1 to 1000000",
            });
        }
        Ok(Self {
            window,
            ring: vec![0; window],
            len: 0,
            head: 0,
            sum: 0,
            counts: vec![0; BUCKETS],
            min_slots: VecDeque::with_capacity(window),
            max_slots: VecDeque::with_capacity(window),
        })
    }

    #[inline]
    fn value_at(&self, slot: u32) -> u64 {
        self.ring[slot as usize]
    }

    /// Records one call's latency, evicting the oldest sample once the window is full.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let slot = self.head;
        // The window is at most 1_000_000 slots: a slot fits a u32.
        let tag = slot as u32;

        if self.len == self.window {
            // The slot holds the oldest sample: evict it.
            let old = self.ring[slot];
            self.sum -= u128::from(old);
            self.counts[bucket_of(old)] -= 1;
            if self.min_slots.front() == Some(&tag) {
                self.min_slots.pop_front();
            }
            if self.max_slots.front() == Some(&tag) {
                self.max_slots.pop_front();
            }
        } else {
            self.len += 1;
        }

        self.ring[slot] = micros;
        self.sum += u128::from(micros);
        self.counts[bucket_of(micros)] += 1;
        while self
            .min_slots
            .back()
            .is_some_and(|&s| self.value_at(s) >= micros)
        {
            self.min_slots.pop_back();
        }
        self.min_slots.push_back(tag);
        while self
            .max_slots
            .back()
            .is_some_and(|&s| self.value_at(s) <= micros)
        {
            self.max_slots.pop_back();
        }
        self.max_slots.push_back(tag);
        self.head = if slot + 1 == self.window { 0 } else { slot + 1 };
    }

    /// Samples in the window.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been recorded since creation or the last clear.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The window size.
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    fn min_micros(&self) -> Option<u64> {
        self.min_slots.front().map(|&s| self.value_at(s))
    }

    fn max_micros(&self) -> Option<u64> {
        self.max_slots.front().map(|&s| self.value_at(s))
    }

    /// The exact minimum of the window.
    #[must_use]
    pub fn min(&self) -> Option<Duration> {
        self.min_micros().map(Duration::from_micros)
    }

    /// The exact maximum of the window.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        self.max_micros().map(Duration::from_micros)
    }

    /// The exact mean of the window, rounded down to the microsecond.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let mean = self.sum / self.len as u128;
        // The mean of u64 values fits a u64.
        Some(Duration::from_micros(
            u64::try_from(mean).unwrap_or(u64::MAX),
        ))
    }

    /// The `q` quantile of the window by nearest rank: the sample of 1-based rank
    /// `max(1, ceil(q * len))` in ascending order (see [`nearest_rank`]), within
    /// [`RELATIVE_ERROR`](Self::RELATIVE_ERROR) of it and always inside `[min, max]`.
    ///
    /// `q` is clamped to `[0, 1]`; NaN reads as 1. `None` when the window is empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let (min, max) = (self.min_micros()?, self.max_micros()?);
        let rank = nearest_rank(q, self.len);
        let (lo, hi) = (bucket_of(min), bucket_of(max));
        // Walk from whichever end is nearer the rank; only buckets between min and max can
        // hold samples.
        let found = if rank <= self.len / 2 {
            let mut seen = 0usize;
            (lo..=hi).find(|&b| {
                seen += self.counts[b] as usize;
                seen >= rank
            })
        } else {
            let from_top = self.len - rank + 1;
            let mut seen = 0usize;
            (lo..=hi).rev().find(|&b| {
                seen += self.counts[b] as usize;
                seen >= from_top
            })
        };
        let micros = found.map_or(max, bucket_value).clamp(min, max);
        Some(Duration::from_micros(micros))
    }

    /// The 99th percentile (see [`quantile`](Self::quantile)).
    #[must_use]
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// Count, mean, min, max, p50, p95 and p99 now; all zero when empty.
    #[must_use]
    pub fn snapshot(&self) -> LatencySnapshot {
        let (Some(min), Some(max), Some(mean)) = (self.min(), self.max(), self.mean()) else {
            return LatencySnapshot::default();
        };
        LatencySnapshot {
            count: self.len as u64,
            mean,
            min,
            max,
            p50: self.quantile(0.5).unwrap_or_default(),
            p95: self.quantile(0.95).unwrap_or_default(),
            p99: self.quantile(0.99).unwrap_or_default(),
        }
    }

    /// Forgets every sample, keeping the window size and the memory.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.len = 0;
        self.head = 0;
        self.sum = 0;
        self.min_slots.clear();
        self.max_slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn within_error(reported: Duration, exact: Duration) -> bool {
        let (r, e) = (reported.as_micros() as f64, exact.as_micros() as f64);
        (r - e).abs() <= RollingLatency::RELATIVE_ERROR * e
    }

    /// Exact nearest-rank percentile by sorting, with `q` as an integer per mille.
    fn exact_percentile(samples: &[u64], q_permille: usize) -> u64 {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = (q_permille * sorted.len()).div_ceil(1000).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn window_outside_one_to_a_million_is_refused_naming_the_key() {
        for window in [0, 1_000_001, usize::MAX] {
            assert_eq!(
                RollingLatency::new(window).err(),
                Some(DomainError::InvalidConfig {
                    field: "latency.window",
                    expected: "an integer from 1 to 1000000",
                })
            );
        }
        assert!(RollingLatency::new(1).is_ok());
        assert!(RollingLatency::new(1_000_000).is_ok());
    }

    #[test]
    fn seed_latency_monitoring_hundred_samples_from_2_to_200_ms() {
        let mut stats = RollingLatency::new(100).unwrap();
        for i in 1..=100 {
            stats.record(ms(i * 2));
        }
        let s = stats.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.min, ms(2));
        assert_eq!(s.max, ms(200));
        assert_eq!(s.mean, ms(101));
        assert!(within_error(s.p99, ms(198)), "p99 {:?}", s.p99);
        assert!(within_error(s.p95, ms(190)), "p95 {:?}", s.p95);
        assert!(within_error(s.p50, ms(100)), "p50 {:?}", s.p50);
        assert_eq!(stats.p99(), Some(s.p99));
    }

    #[test]
    fn empty_window_has_no_quantile_and_a_zero_snapshot() {
        let stats = RollingLatency::new(10).unwrap();
        assert!(stats.is_empty());
        assert_eq!(stats.quantile(0.5), None);
        assert_eq!(stats.p99(), None);
        assert_eq!(stats.mean(), None);
        assert_eq!(stats.snapshot(), LatencySnapshot::default());
    }

    #[test]
    fn eviction_forgets_old_samples_including_min_and_max() {
        let mut stats = RollingLatency::new(3).unwrap();
        for v in [1, 1_000, 5, 6, 7] {
            stats.record(ms(v));
        }
        let s = stats.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!((s.min, s.max, s.mean), (ms(5), ms(7), ms(6)));
        assert_eq!(stats.len(), 3);
        assert_eq!(stats.window(), 3);
        // The 1 s outlier is gone from the quantiles too.
        assert!(stats.quantile(1.0).unwrap() <= ms(7));
    }

    #[test]
    fn mean_is_exact_to_the_microsecond() {
        let mut stats = RollingLatency::new(4).unwrap();
        for us in [1, 2, 4, 1_000_003] {
            stats.record(Duration::from_micros(us));
        }
        assert_eq!(stats.mean(), Some(Duration::from_micros(1_000_010 / 4)));
    }

    #[test]
    fn quantile_clamps_q_and_reads_nan_as_the_maximum() {
        let mut stats = RollingLatency::new(10).unwrap();
        for v in 1..=10 {
            stats.record(Duration::from_micros(v));
        }
        let table = [
            (-1.0, 1),
            (0.0, 1),
            (0.1, 1),
            (0.11, 2),
            (0.5, 5),
            (1.0, 10),
            (7.0, 10),
            (f64::NAN, 10),
        ];
        for (q, expected) in table {
            assert_eq!(
                stats.quantile(q),
                Some(Duration::from_micros(expected)),
                "q = {q}"
            );
        }
    }

    #[test]
    fn nearest_rank_is_ceil_of_q_times_n_without_binary_rounding_surprises() {
        let table = [
            (0.99, 100, 99),
            (0.95, 100, 95),
            (0.5, 100, 50),
            (0.5, 101, 51),
            (0.99, 1000, 990),
            (0.0, 5, 1),
            (1.0, 5, 5),
            (0.5, 0, 1),
        ];
        for (q, n, rank) in table {
            assert_eq!(nearest_rank(q, n), rank, "q = {q}, n = {n}");
        }
    }

    #[test]
    fn huge_durations_saturate_without_panicking() {
        let mut stats = RollingLatency::new(2).unwrap();
        stats.record(Duration::MAX);
        stats.record(Duration::ZERO);
        assert_eq!(stats.max(), Some(Duration::from_micros(u64::MAX)));
        assert_eq!(stats.min(), Some(Duration::ZERO));
        assert!(within_error(
            stats.quantile(1.0).unwrap(),
            Duration::from_micros(u64::MAX)
        ));
    }

    #[test]
    fn clear_forgets_everything_and_recording_starts_afresh() {
        let mut stats = RollingLatency::new(3).unwrap();
        for v in [9, 8, 7, 6] {
            stats.record(ms(v));
        }
        stats.clear();
        assert!(stats.is_empty());
        assert_eq!(stats.snapshot(), LatencySnapshot::default());
        stats.record(ms(3));
        assert_eq!((stats.min(), stats.max()), (Some(ms(3)), Some(ms(3))));
        assert_eq!(stats.snapshot().count, 1);
    }

    #[test]
    fn buckets_are_contiguous_and_their_middle_lies_inside() {
        let mut previous = bucket_of(0);
        for v in 0u64..70_000 {
            let b = bucket_of(v);
            assert!(b == previous || b == previous + 1, "gap before {v}");
            previous = b;
        }
        for v in (0u64..70_000).chain([1 << 40, (1 << 40) + 12_345, u64::MAX - 1, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
            let mid = bucket_value(b);
            assert_eq!(bucket_of(mid), b, "middle of the bucket of {v}");
            assert!(
                mid.abs_diff(v) as f64 <= RollingLatency::RELATIVE_ERROR * v as f64,
                "{v}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_relative_error_and_extremes_are_exact(
            (window, samples) in (1usize..300).prop_flat_map(|window| {
                let latency = prop_oneof![1u64..=1_000, 1u64..=10_000_000];
                // More samples than the window, so eviction is exercised.
                (Just(window), proptest::collection::vec(latency, window + 1..2 * window + 50))
            }),
        ) {
            let samples = &samples[..];
            let mut stats = RollingLatency::new(window).unwrap();
            for &us in samples {
                stats.record(Duration::from_micros(us));
            }
            let last = &samples[samples.len().saturating_sub(window)..];
            let s = stats.snapshot();
            prop_assert_eq!(s.count, last.len() as u64);
            prop_assert_eq!(s.min.as_micros(), u128::from(*last.iter().min().unwrap()));
            prop_assert_eq!(s.max.as_micros(), u128::from(*last.iter().max().unwrap()));
            let sum: u128 = last.iter().map(|&v| u128::from(v)).sum();
            prop_assert_eq!(s.mean.as_micros(), sum / last.len() as u128);
            for (q, permille) in [(0.5, 500), (0.95, 950), (0.99, 990)] {
                let exact = Duration::from_micros(exact_percentile(last, permille));
                let got = stats.quantile(q).unwrap();
                prop_assert!(within_error(got, exact), "q {} got {:?} exact {:?}", q, got, exact);
            }
        }
    }
}
