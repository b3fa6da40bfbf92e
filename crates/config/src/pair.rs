//! `[pair]`: the traded pair's mints and decimals.

use kyzlo_application::ports::Pair;
use serde::{Deserialize, Serialize};
use solana_pubkey::Pubkey;

use crate::check::{ConfigError, invalid};

/// Wrapped SOL's mint: a pair with it as the base trades the lamports that pay fees.
pub const NATIVE_MINT: &str = "So11111111111111111111111111111111111111112";
/// USDC's mint.
pub const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

/// `[pair]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairFile {
    /// Base token mint (SOL by default).
    pub base_mint: String,
    /// Quote token mint (USDC by default).
    pub quote_mint: String,
    /// The base token's decimals.
    pub base_decimals: u8,
    /// The quote token's decimals.
    pub quote_decimals: u8,
}

impl Default for PairFile {
    fn default() -> Self {
        Self {
            base_mint: NATIVE_MINT.into(),
            quote_mint: USDC_MINT.into(),
            base_decimals: 9,
            quote_decimals: 6,
        }
    }
}

/// The pair, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairSettings {
    /// Decimals, and whether the base is SOL itself.
    pub pair: Pair,
    /// The base token's mint.
    pub base_mint: Pubkey,
    /// The quote token's mint.
    pub quote_mint: Pubkey,
}

impl PairFile {
    pub(crate) fn validate(&self) -> Result<PairSettings, ConfigError> {
        for (key, decimals) in [
            ("pair.base_decimals", self.base_decimals),
            ("pair.quote_decimals", self.quote_decimals),
        ] {
            if decimals > 18 {
                return Err(invalid(key, decimals, "0 to 18"));
            }
        }
        let mint = |key: &str, text: &str| {
            text.parse::<Pubkey>()
                .map_err(|_| invalid(key, text, "a base58 mint address"))
        };
        let base_mint = mint("pair.base_mint", &self.base_mint)?;
        let quote_mint = mint("pair.quote_mint", &self.quote_mint)?;
        if base_mint == quote_mint {
            return Err(invalid(
                "pair.quote_mint",
                &self.quote_mint,
                "a mint other than pair.base_mint",
            ));
        }
        Ok(PairSettings {
            pair: Pair {
                base_decimals: self.base_decimals,
                quote_decimals: self.quote_decimals,
                native_base: self.base_mint == NATIVE_MINT,
            },
            base_mint,
            quote_mint,
        })
    }
}
