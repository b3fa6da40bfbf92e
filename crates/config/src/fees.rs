//! `[fees]`: how kyzlo sizes and prices its own transactions (Jupiter's Swap API v2
//! `/build`, compiled by kyzlo): the compute-unit limit from a simulation, the
//! compute-unit price from recent fees on the swap's accounts. Each exit rung's
//! `priority_fee_lamports` stays the hard cap of what an attempt may bid.

use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, invalid};

/// The most compute units a transaction may ask for.
const MAX_COMPUTE_UNITS: u32 = 1_400_000;

/// `[fees]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeesFile {
    /// The percentile (0 to 100) of recent per-slot priority fees on the swap's writable
    /// accounts that the first attempt bids; attempt `n` bids `n` times as much, each
    /// capped by its rung's `priority_fee_lamports`.
    pub percentile: u32,
    /// The least compute-unit price bid, in micro-lamports.
    pub floor_micro_lamports: u64,
    /// The compute-unit limit is the simulated units times this percentage.
    pub compute_unit_margin_pct: u32,
    /// The compute-unit limit never exceeds this.
    pub max_compute_units: u32,
}

impl Default for FeesFile {
    /// The 75th percentile, a floor of 1,000 micro-lamports per unit, 120% of the
    /// simulated units (the margin of Jupiter's own `/build` guide), at most 1,400,000.
    fn default() -> Self {
        Self {
            percentile: 75,
            floor_micro_lamports: 1_000,
            compute_unit_margin_pct: 120,
            max_compute_units: MAX_COMPUTE_UNITS,
        }
    }
}

/// `[fees]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// See [`FeesFile::percentile`].
    pub percentile: u32,
    /// See [`FeesFile::floor_micro_lamports`].
    pub floor_micro_lamports: u64,
    /// See [`FeesFile::compute_unit_margin_pct`].
    pub compute_unit_margin_pct: u32,
    /// See [`FeesFile::max_compute_units`].
    pub max_compute_units: u32,
}

impl FeesFile {
    pub(crate) fn validate(&self) -> Result<Fees, ConfigError> {
        if self.percentile > 100 {
            return Err(invalid("fees.percentile", self.percentile, "0 to 100"));
        }
        // 10 lamports per compute unit is far above any fee market seen; a floor above
        // it is a unit mistake (lamports for micro-lamports).
        if self.floor_micro_lamports > 10_000_000 {
            return Err(invalid(
                "fees.floor_micro_lamports",
                self.floor_micro_lamports,
                "at most 10000000 micro-lamports per compute unit",
            ));
        }
        if !(100..=300).contains(&self.compute_unit_margin_pct) {
            return Err(invalid(
                "fees.compute_unit_margin_pct",
                self.compute_unit_margin_pct,
                "100 to 300 (percent of the simulated units)",
            ));
        }
        if !(1..=MAX_COMPUTE_UNITS).contains(&self.max_compute_units) {
            return Err(invalid(
                "fees.max_compute_units",
                self.max_compute_units,
                "1 to 1400000",
            ));
        }
        Ok(Fees {
            percentile: self.percentile,
            floor_micro_lamports: self.floor_micro_lamports,
            compute_unit_margin_pct: self.compute_unit_margin_pct,
            max_compute_units: self.max_compute_units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        assert!(FeesFile::default().validate().is_ok());
        type Edit = fn(&mut FeesFile);
        let cases: [(&str, Edit); 5] = [
            ("fees.percentile", |f| f.percentile = 101),
            ("fees.floor_micro_lamports", |f| {
                f.floor_micro_lamports = 50_000_000
            }),
            ("fees.compute_unit_margin_pct", |f| {
                f.compute_unit_margin_pct = 90
            }),
            ("fees.max_compute_units", |f| f.max_compute_units = 0),
            ("fees.max_compute_units", |f| {
                f.max_compute_units = 2_000_000
            }),
        ];
        for (key, edit) in cases {
            let mut file = FeesFile::default();
            edit(&mut file);
            match file.validate() {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
