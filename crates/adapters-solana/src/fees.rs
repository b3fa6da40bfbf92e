//! Priority fees from `getRecentPrioritizationFees`: a percentile (the 75th by default,
//! `[fees] percentile`) of the fees recently paid to write the swap's accounts.
//!
//! The node answers one value per recent slot (up to 150): the lowest priority fee of a
//! transaction that landed in that slot writing any of the given accounts, zero when none
//! paid. The 75th percentile (nearest rank, zeros included) outbids most of those recent
//! landers without chasing a single outlier.

use kyzlo_domain::Lamports;

/// At most this many accounts are accepted by `getRecentPrioritizationFees`.
pub const MAX_FEE_ACCOUNTS: usize = 128;

/// The percentile of recent per-slot fees proposed by default (`[fees] percentile`).
pub const FEE_PERCENTILE: u32 = 75;

/// A proposed compute-unit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityFee {
    /// Price of one compute unit, in micro-lamports.
    pub micro_lamports_per_cu: u64,
    /// How many recent slots it was computed from (zero: no data, price zero).
    pub slots_sampled: usize,
}

impl PriorityFee {
    /// The priority fee of a transaction with this compute-unit limit, rounded up.
    #[must_use]
    pub fn total_for(&self, compute_unit_limit: u32) -> Lamports {
        total_fee(compute_unit_limit, self.micro_lamports_per_cu)
    }
}

/// The nearest-rank `percentile` (0 to 100) of `values`; zero for no values.
#[must_use]
pub fn percentile(values: &[u64], percentile: u32) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let rank = (u128::from(percentile.min(100)) * n as u128).div_ceil(100);
    let index = usize::try_from(rank).unwrap_or(n).clamp(1, n) - 1;
    sorted[index]
}

/// The priority fee of `limit` compute units at `price` micro-lamports each, rounded up
/// (as the runtime charges it).
#[must_use]
pub fn total_fee(limit: u32, price: u64) -> Lamports {
    let micro = u128::from(limit) * u128::from(price);
    Lamports::new(u64::try_from(micro.div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// The proposed fee for these recent per-slot fees, at `at` (0 to 100).
#[must_use]
pub fn propose(recent: &[u64], at: u32) -> PriorityFee {
    PriorityFee {
        micro_lamports_per_cu: percentile(recent, at),
        slots_sampled: recent.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let cases: [(&[u64], u32, u64); 7] = [
            (&[], 75, 0),
            (&[5], 75, 5),
            (&[1, 2, 3, 4], 75, 3),
            (&[4, 3, 2, 1], 75, 3),
            (&[0, 0, 0, 1000], 75, 0),
            (&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 75, 80),
            (&[1, 2, 3], 100, 3),
        ];
        for (values, p, expected) in cases {
            assert_eq!(percentile(values, p), expected, "{values:?} p{p}");
        }
    }

    #[test]
    fn total_fee_rounds_up_and_never_overflows() {
        let fee = PriorityFee {
            micro_lamports_per_cu: 1_500,
            slots_sampled: 1,
        };
        assert_eq!(fee.total_for(200_000), Lamports::new(300));
        assert_eq!(fee.total_for(1), Lamports::new(1));
        let absurd = PriorityFee {
            micro_lamports_per_cu: u64::MAX,
            slots_sampled: 1,
        };
        assert!(absurd.total_for(u32::MAX).get() > 0);
    }
}
