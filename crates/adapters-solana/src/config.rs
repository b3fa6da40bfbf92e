//! The adapter's configuration: endpoints, timeouts, commitment, preflight, cool-down,
//! broadcast width, and the pair of mints it trades.

use std::time::Duration;

use kyzlo_application::ports::Commitment;
use reqwest::Url;
use solana_commitment_config::CommitmentConfig;
use solana_pubkey::Pubkey;

use crate::error::SolanaError;

/// The wrapped SOL mint. As the base mint it means "SOL": native lamports and wrapped
/// SOL token accounts both count.
pub const NATIVE_MINT: Pubkey =
    Pubkey::from_str_const("So11111111111111111111111111111111111111112");

/// How the adapter talks to Solana RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolanaConfig {
    /// RPC endpoints, primary first. URLs may hold credentials: they are never logged,
    /// only their scheme, host and port are.
    pub endpoints: Vec<Url>,
    /// Longest wait for one complete answer (default 2 s).
    pub request_timeout: Duration,
    /// Longest wait for a connection (default 1 s).
    pub connect_timeout: Duration,
    /// Commitment for reads, block height and preflight (default confirmed).
    pub commitment: Commitment,
    /// Skip the node's preflight simulation when sending (default false).
    pub skip_preflight: bool,
    /// How long a failing endpoint is passed over (default 30 s).
    pub endpoint_cooldown: Duration,
    /// How many endpoints one send goes to at once (default 1). The same signed bytes go
    /// to each, so a transaction can never execute twice.
    pub broadcast_sends_to: usize,
}

impl SolanaConfig {
    /// The defaults with these endpoints.
    #[must_use]
    pub fn new(endpoints: Vec<Url>) -> Self {
        Self {
            endpoints,
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            commitment: Commitment::Confirmed,
            skip_preflight: false,
            endpoint_cooldown: Duration::from_secs(30),
            broadcast_sends_to: 1,
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`SolanaError::Config`] naming the first invalid field.
    pub fn validate(&self) -> Result<(), SolanaError> {
        if self.endpoints.is_empty() {
            return Err(SolanaError::Config {
                field: "endpoints",
                expected: "at least one URL",
            });
        }
        if self
            .endpoints
            .iter()
            .any(|u| !matches!(u.scheme(), "http" | "https") || u.host().is_none())
        {
            return Err(SolanaError::Config {
                field: "endpoints",
                expected: "http or https URLs with a host",
            });
        }
        if self.request_timeout.is_zero() {
            return Err(SolanaError::Config {
                field: "request_timeout",
                expected: "more than zero",
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(SolanaError::Config {
                field: "connect_timeout",
                expected: "more than zero",
            });
        }
        if self.broadcast_sends_to == 0 || self.broadcast_sends_to > self.endpoints.len() {
            return Err(SolanaError::Config {
                field: "broadcast_sends_to",
                expected: "from 1 to the number of endpoints",
            });
        }
        Ok(())
    }

    /// The commitment as `solana-client` takes it.
    #[must_use]
    pub fn commitment_config(&self) -> CommitmentConfig {
        commitment_config(self.commitment)
    }
}

/// A port commitment as `solana-client` takes it.
#[must_use]
pub fn commitment_config(commitment: Commitment) -> CommitmentConfig {
    match commitment {
        Commitment::Processed => CommitmentConfig::processed(),
        Commitment::Confirmed => CommitmentConfig::confirmed(),
        Commitment::Finalized => CommitmentConfig::finalized(),
    }
}

/// The traded pair's mints: base (e.g. SOL as [`NATIVE_MINT`]) and quote (e.g. USDC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPair {
    /// The base token's mint.
    pub base: Pubkey,
    /// The quote token's mint.
    pub quote: Pubkey,
}

/// An endpoint's name for logs and errors: scheme, host and port, never the path, query
/// or user info, where providers put API keys.
#[must_use]
pub fn endpoint_label(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = SolanaConfig::new(vec![url("http://127.0.0.1:8899")]);
        assert_eq!(config.request_timeout, Duration::from_secs(2));
        assert_eq!(config.commitment, Commitment::Confirmed);
        assert!(!config.skip_preflight);
        assert_eq!(config.endpoint_cooldown, Duration::from_secs(30));
        assert_eq!(config.broadcast_sends_to, 1);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn invalid_values_are_refused_by_field() {
        let base = SolanaConfig::new(vec![url("http://127.0.0.1:8899")]);
        let cases: Vec<(SolanaConfig, &str)> = vec![
            (SolanaConfig::new(vec![]), "endpoints"),
            (SolanaConfig::new(vec![url("ftp://host/")]), "endpoints"),
            (
                SolanaConfig {
                    request_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "request_timeout",
            ),
            (
                SolanaConfig {
                    connect_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "connect_timeout",
            ),
            (
                SolanaConfig {
                    broadcast_sends_to: 0,
                    ..base.clone()
                },
                "broadcast_sends_to",
            ),
            (
                SolanaConfig {
                    broadcast_sends_to: 2,
                    ..base.clone()
                },
                "broadcast_sends_to",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(SolanaError::Config { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn endpoint_labels_drop_paths_queries_and_credentials() {
        let cases = [
            (
                "https://mainnet.helius-rpc.com/?api-key=SECRET",
                "https://mainnet.helius-rpc.com",
            ),
            ("https://x.quiknode.pro/SECRET/", "https://x.quiknode.pro"),
            (
                "http://user:SECRET@127.0.0.1:8899/",
                "http://127.0.0.1:8899",
            ),
        ];
        for (input, label) in cases {
            assert_eq!(endpoint_label(&url(input)), label);
        }
    }

    #[test]
    fn native_mint_is_wrapped_sol() {
        assert_eq!(
            NATIVE_MINT.to_string(),
            "So11111111111111111111111111111111111111112"
        );
    }
}
