//! `[paper]`: the simulated venue of paper mode.

use std::time::Duration;

use kyzlo_adapters_sim::faults::{FaultProfile, ProfileName};
use kyzlo_adapters_sim::market::CsvRules;
use kyzlo_application::ports::Pair;
use kyzlo_domain::TokenAmount;
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, invalid, positive_secs};

/// `[paper]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaperFile {
    /// Seed of the generated market and of the fault schedule.
    pub seed: u64,
    /// Hours of generated market when no CSV is given.
    pub hours: f64,
    /// The simulated network's fault profile.
    pub faults: ProfileName,
    /// USDC a new paper (or devnet stand-in) wallet starts with.
    pub initial_quote: f64,
    /// The largest move, in percent either way, from one row of a `--prices` CSV to the
    /// next; a larger one is refused as implausible.
    pub max_price_jump_pct: f64,
}

impl Default for PaperFile {
    fn default() -> Self {
        Self {
            seed: 20_210_519,
            hours: 6.0,
            faults: ProfileName::Flaky,
            initial_quote: 1_000.0,
            max_price_jump_pct: 50.0,
        }
    }
}

/// Paper mode, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Paper {
    /// Seed of the generated market and of the fault schedule.
    pub seed: u64,
    /// Market time generated when no CSV is given.
    pub duration: Duration,
    /// The simulated network's faults.
    pub faults: FaultProfile,
    /// Quote units a new wallet starts with.
    pub initial_quote: TokenAmount,
    /// What a replayed price CSV must satisfy.
    pub csv: CsvRules,
}

impl PaperFile {
    pub(crate) fn validate(&self, pair: Pair) -> Result<Paper, ConfigError> {
        if !(self.initial_quote.is_finite() && self.initial_quote >= 0.0) {
            return Err(invalid(
                "paper.initial_quote",
                self.initial_quote,
                "an amount of the quote token, 0 or more",
            ));
        }
        let units = self.initial_quote * 10f64.powi(i32::from(pair.quote_decimals));
        if units >= u64::MAX as f64 {
            return Err(invalid(
                "paper.initial_quote",
                self.initial_quote,
                "an amount that fits in 64 bits of base units",
            ));
        }
        if !(self.max_price_jump_pct.is_finite()
            && self.max_price_jump_pct > 0.0
            && self.max_price_jump_pct <= 1_000.0)
        {
            return Err(invalid(
                "paper.max_price_jump_pct",
                self.max_price_jump_pct,
                "a percentage above 0 and at most 1000",
            ));
        }
        Ok(Paper {
            seed: self.seed,
            csv: CsvRules {
                max_jump: self.max_price_jump_pct / 100.0,
            },
            duration: positive_secs("paper.hours", self.hours * 3_600.0).map_err(|_| {
                invalid(
                    "paper.hours",
                    self.hours,
                    "a number of hours above 0 and below 2777",
                )
            })?,
            faults: self.faults.profile(),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
            initial_quote: TokenAmount::new(units as u64),
        })
    }
}
