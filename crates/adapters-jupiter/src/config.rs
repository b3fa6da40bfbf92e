//! The adapter's configuration: where Jupiter is, how long to wait for it, how much of an
//! answer to read, which pair is traded and how swaps are built.

use std::fmt;
use std::time::Duration;

use kyzlo_application::ports::WalletAddress;

/// Jupiter's public API host.
pub const DEFAULT_BASE_URL: &str = "https://api.jup.ag";
/// Wrapped SOL's mint: the default base token.
pub const SOL_MINT: &str = "So11111111111111111111111111111111111111112";
/// USDC's mint: the default quote token.
pub const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
/// The environment variable the binary reads the API key from.
pub const API_KEY_ENV: &str = "JUPITER_API_KEY";

/// How urgently Jupiter should price the priority fee when it estimates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriorityLevel {
    /// Jupiter's `medium`.
    Medium,
    /// Jupiter's `high`.
    High,
    /// Jupiter's `veryHigh`.
    VeryHigh,
}

impl PriorityLevel {
    /// The name Jupiter expects in `priorityLevel`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            PriorityLevel::Medium => "medium",
            PriorityLevel::High => "high",
            PriorityLevel::VeryHigh => "veryHigh",
        }
    }
}

impl fmt::Display for PriorityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the Jupiter adapter needs. Build it with [`JupiterConfig::new`] and adjust
/// fields; [`crate::JupiterClient::new`] validates it.
#[derive(Clone, PartialEq, Eq)]
pub struct JupiterConfig {
    /// Scheme and host (and optional path prefix) of the API, without the endpoint paths.
    pub base_url: String,
    /// Sent as the `x-api-key` header when set. Never printed: `Debug` masks it.
    pub api_key: Option<String>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on a whole request: connecting, sending and reading the full body.
    pub request_timeout: Duration,
    /// Largest response body read; a larger successful answer is refused unread.
    pub max_body_bytes: usize,
    /// Base58 mint of the traded token (sold on exits).
    pub base_mint: String,
    /// Base58 mint of the token it is priced in (received on exits).
    pub quote_mint: String,
    /// The wallet that pays and signs: `userPublicKey`, and the fee payer every swap
    /// transaction must name.
    pub wallet: WalletAddress,
    /// Route only through liquid intermediate tokens (`restrictIntermediateTokens`).
    pub restrict_intermediate_tokens: bool,
    /// Single-hop routes only (`onlyDirectRoutes`).
    pub only_direct_routes: bool,
    /// Cap on the accounts a route may use (`maxAccounts`); `None` leaves Jupiter's default.
    pub max_accounts: Option<u32>,
    /// DEX labels Jupiter must not route through (`excludeDexes`).
    pub exclude_dexes: Vec<String>,
    /// Let the swap wrap and unwrap native SOL (`wrapAndUnwrapSol`).
    pub wrap_and_unwrap_sol: bool,
    /// Let Jupiter simulate to size the compute-unit limit (`dynamicComputeUnitLimit`).
    pub dynamic_compute_unit_limit: bool,
    /// `Some(level)`: ask for a fee estimated at `level` and capped at the attempt's fee
    /// (`priorityLevelWithMaxLamports`). `None`: pay the attempt's fee exactly.
    pub priority_level: Option<PriorityLevel>,
}

impl JupiterConfig {
    /// The defaults for `wallet`: Jupiter's public host, no API key, 2 s to connect, 5 s per
    /// request, 1 MiB bodies, SOL/USDC, restricted intermediate tokens, multi-hop routes,
    /// SOL wrapping, dynamic compute units and a `veryHigh` fee capped at each attempt's fee.
    #[must_use]
    pub fn new(wallet: WalletAddress) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            base_mint: SOL_MINT.to_owned(),
            quote_mint: USDC_MINT.to_owned(),
            wallet,
            restrict_intermediate_tokens: true,
            only_direct_routes: false,
            max_accounts: None,
            exclude_dexes: Vec::new(),
            wrap_and_unwrap_sol: true,
            dynamic_compute_unit_limit: true,
            priority_level: Some(PriorityLevel::VeryHigh),
        }
    }

    /// The API key from [`API_KEY_ENV`], if it is set and not blank.
    #[must_use]
    pub fn api_key_from_env() -> Option<String> {
        std::env::var(API_KEY_ENV)
            .ok()
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty())
    }
}

impl fmt::Debug for JupiterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JupiterConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("base_mint", &self.base_mint)
            .field("quote_mint", &self.quote_mint)
            .field("wallet", &self.wallet)
            .field(
                "restrict_intermediate_tokens",
                &self.restrict_intermediate_tokens,
            )
            .field("only_direct_routes", &self.only_direct_routes)
            .field("max_accounts", &self.max_accounts)
            .field("exclude_dexes", &self.exclude_dexes)
            .field("wrap_and_unwrap_sol", &self.wrap_and_unwrap_sol)
            .field(
                "dynamic_compute_unit_limit",
                &self.dynamic_compute_unit_limit,
            )
            .field("priority_level", &self.priority_level)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_the_api_key() {
        let mut config = JupiterConfig::new(WalletAddress([1; 32]));
        config.api_key = Some("sk-very-secret-123".to_owned());
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk-very-secret-123"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = JupiterConfig::new(WalletAddress([1; 32]));
        assert_eq!(config.base_url, "https://api.jup.ag");
        assert_eq!(config.api_key, None);
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.max_body_bytes, 1_048_576);
        assert_eq!(config.base_mint, SOL_MINT);
        assert_eq!(config.quote_mint, USDC_MINT);
        assert!(config.restrict_intermediate_tokens);
        assert!(!config.only_direct_routes);
        assert!(config.wrap_and_unwrap_sol);
        assert!(config.dynamic_compute_unit_limit);
        assert_eq!(config.priority_level, Some(PriorityLevel::VeryHigh));
    }
}
