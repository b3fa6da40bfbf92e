//! The adapter's configuration: endpoints, timeouts, commitment, preflight, cool-down,
//! send lanes (and the tips they ask for), and the pair of mints it trades.

use std::time::Duration;

use kyzlo_application::ports::Commitment;
use reqwest::Url;
use solana_commitment_config::CommitmentConfig;
use solana_pubkey::Pubkey;

use crate::error::SolanaError;
use crate::lanes::{self, SendLane, Tip};

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
    /// Skip the node's preflight simulation when sending to the endpoints (default false);
    /// each send lane has its own.
    pub skip_preflight: bool,
    /// How long a failing endpoint is passed over (default 30 s).
    pub endpoint_cooldown: Duration,
    /// Where sends go (default none): every send posts the same signed bytes to all of
    /// them at once (see [`crate::lanes`]). None: sends go to the first healthy endpoint,
    /// failing over like reads.
    pub send_lanes: Vec<SendLane>,
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
            send_lanes: Vec::new(),
        }
    }

    /// The tips the send lanes ask for, one per lane that asks, in lane order: the
    /// transfers every transaction must carry (see [`crate::lanes::tip_instructions`]).
    #[must_use]
    pub fn tips(&self) -> Vec<Tip> {
        self.send_lanes.iter().filter_map(|lane| lane.tip).collect()
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
        lanes::validate(&self.send_lanes)
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
        assert!(config.send_lanes.is_empty());
        assert!(config.tips().is_empty());
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
                    send_lanes: vec![SendLane {
                        tip: Some(Tip {
                            account: Pubkey::new_unique(),
                            lamports: 0,
                        }),
                        ..SendLane::new(url("https://lane.example/"))
                    }],
                    ..base.clone()
                },
                "send_lanes.tip.lamports",
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
    fn tips_are_one_per_lane_that_asks_in_lane_order() {
        let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
        let lane = |host: &str, tip: Option<Tip>| SendLane {
            tip,
            ..SendLane::new(url(host))
        };
        let config = SolanaConfig {
            send_lanes: vec![
                lane(
                    "https://one.example/",
                    Some(Tip {
                        account: a,
                        lamports: 1_000,
                    }),
                ),
                lane("https://two.example/", None),
                lane(
                    "https://three.example/",
                    Some(Tip {
                        account: b,
                        lamports: 2_000,
                    }),
                ),
            ],
            ..SolanaConfig::new(vec![url("http://127.0.0.1:8899")])
        };
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.tips(),
            vec![
                Tip {
                    account: a,
                    lamports: 1_000
                },
                Tip {
                    account: b,
                    lamports: 2_000
                }
            ]
        );
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
