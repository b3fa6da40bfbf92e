//! `[rpc]`, `[jupiter]` and `[wallet]`: where the bot reads the chain, routes swaps, and
//! signs.

use std::env::VarError;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kyzlo_application::ports::Commitment;
use kyzlo_domain::budget::RequestBudget;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Profile;
use crate::check::{ConfigError, http_url, invalid, positive_ms};
use crate::lanes::{self, SendLane, SendLaneFile};
use crate::rpc_budget::RpcBudgetFile;
use crate::secret::Secret;

/// The profiles' public RPC endpoints, used when `rpc.endpoints` is empty.
const DEVNET_RPC: &str = "https://api.devnet.solana.com";
const MAINNET_RPC: &str = "https://api.mainnet-beta.solana.com";

/// The commitment at which the RPC is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitmentFile {
    /// Seen by the node.
    Processed,
    /// Voted on by a supermajority.
    Confirmed,
    /// Rooted.
    Finalized,
}

impl From<CommitmentFile> for Commitment {
    fn from(c: CommitmentFile) -> Self {
        match c {
            CommitmentFile::Processed => Self::Processed,
            CommitmentFile::Confirmed => Self::Confirmed,
            CommitmentFile::Finalized => Self::Finalized,
        }
    }
}

/// `[rpc]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcFile {
    /// Primary first, then fallbacks. Empty: the profile's public endpoint.
    pub endpoints: Vec<String>,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
    /// `processed`, `confirmed` or `finalized`.
    pub commitment: CommitmentFile,
    /// Skip the node's preflight simulation on send (each send lane may say otherwise).
    pub skip_preflight: bool,
    /// Where transactions are sent, all at once (see [`crate::lanes`]). Empty: to the
    /// endpoints, the first healthy one.
    pub send_lanes: Vec<SendLaneFile>,
    /// `[rpc.budget]`: the provider's request budget.
    pub budget: RpcBudgetFile,
}

impl Default for RpcFile {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            request_timeout_ms: 1_000,
            commitment: CommitmentFile::Confirmed,
            skip_preflight: false,
            send_lanes: Vec::new(),
            budget: RpcBudgetFile::default(),
        }
    }
}

/// `[jupiter]` as written.
/// Which Jupiter swap API builds the transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JupiterApi {
    /// Swap API v2 `/build` (the default): Jupiter answers the route's instructions and
    /// kyzlo compiles its own v0 message with its own blockhash, compute budget and
    /// priority fee (`[fees]`), and the send lanes' tips.
    V2,
    /// The Metis `/swap/v1` quote and swap (no longer actively maintained by Jupiter):
    /// Jupiter builds the transaction and only caps the priority fee.
    V1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JupiterFile {
    /// Which swap API: `v2` (default) or `v1`.
    pub api: JupiterApi,
    /// Base URL.
    pub base_url: String,
    /// API key (secret). Also read from `JUPITER_API_KEY`.
    pub api_key: Option<Secret>,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
    /// The plan's requests per minute, shared by price reads, quotes and swaps (Jupiter
    /// counts every endpoint in one 60 s window: keyless 30, Free 60, Developer 600,
    /// Launch 3,000, Pro 9,000); 0 turns the budget off.
    pub requests_per_minute: u32,
    /// Of those, how many are kept for exits: price reads and entries stop short of them.
    pub reserved_for_exits: u32,
}

impl Default for JupiterFile {
    fn default() -> Self {
        Self {
            api: JupiterApi::V2,
            base_url: "https://api.jup.ag".into(),
            api_key: None,
            request_timeout_ms: 5_000,
            requests_per_minute: 60,
            reserved_for_exits: 6,
        }
    }
}

/// `[wallet]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WalletFile {
    /// A Solana CLI keypair file (a JSON array of 64 numbers), readable by its owner only.
    pub keypair_path: Option<PathBuf>,
}

/// The RPC, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rpc {
    /// Primary first, then fallbacks (the profile's public endpoint when none is set).
    /// They may carry an API key in their path: never log them whole.
    pub endpoints: Vec<Url>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// The commitment reads are made at.
    pub commitment: Commitment,
    /// Skip the node's preflight simulation on send.
    pub skip_preflight: bool,
    /// The send lanes, their header values read from the environment.
    pub send_lanes: Vec<SendLane>,
    /// The provider's request budget, if any.
    pub budget: Option<RequestBudget>,
}

/// Jupiter, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Jupiter {
    /// Which swap API builds the transactions.
    pub api: JupiterApi,
    /// Base URL.
    pub base_url: Url,
    /// API key, sent to Jupiter only.
    pub api_key: Option<Secret>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// The plan's request budget, if any.
    pub budget: Option<RequestBudget>,
}

impl RpcFile {
    /// Validates `[rpc]`, reading the send lanes' header values from the environment.
    pub(crate) fn validate(&self, profile: Profile) -> Result<Rpc, ConfigError> {
        self.validate_with(profile, &|name| std::env::var(name))
    }

    /// Validates `[rpc]`, reading the send lanes' header values with `env`.
    pub(crate) fn validate_with(
        &self,
        profile: Profile,
        env: &dyn Fn(&str) -> Result<String, VarError>,
    ) -> Result<Rpc, ConfigError> {
        let scheme = profile.url_scheme();
        let endpoints = if self.endpoints.is_empty() {
            let public = match profile {
                Profile::Mainnet => MAINNET_RPC,
                Profile::Devnet | Profile::Paper => DEVNET_RPC,
            };
            vec![http_url("rpc.endpoints", public, false, scheme)?]
        } else {
            self.endpoints
                .iter()
                .enumerate()
                .map(|(i, u)| http_url(&format!("rpc.endpoints[{i}]"), u, true, scheme))
                .collect::<Result<_, _>>()?
        };
        Ok(Rpc {
            endpoints,
            request_timeout: positive_ms("rpc.request_timeout_ms", self.request_timeout_ms)?,
            commitment: self.commitment.into(),
            skip_preflight: self.skip_preflight,
            send_lanes: lanes::validate(&self.send_lanes, self.skip_preflight, scheme, env)?,
            budget: self.budget.validate()?,
        })
    }
}

impl JupiterFile {
    pub(crate) fn validate(&self, profile: Profile) -> Result<Jupiter, ConfigError> {
        if profile == Profile::Mainnet && self.api_key.is_none() {
            return Err(invalid(
                "jupiter.api_key",
                "(none)",
                "a Jupiter API key (or JUPITER_API_KEY) for mainnet",
            ));
        }
        if url::Url::parse(&self.base_url)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            return Err(invalid(
                "jupiter.base_url",
                "***",
                "a URL without a user or password (the key goes in jupiter.api_key)",
            ));
        }
        Ok(Jupiter {
            api: self.api,
            base_url: http_url(
                "jupiter.base_url",
                &self.base_url,
                false,
                profile.url_scheme(),
            )?,
            api_key: self.api_key.clone(),
            request_timeout: positive_ms("jupiter.request_timeout_ms", self.request_timeout_ms)?,
            budget: self.budget()?,
        })
    }

    fn budget(&self) -> Result<Option<RequestBudget>, ConfigError> {
        if self.requests_per_minute == 0 {
            return Ok(None);
        }
        if self.reserved_for_exits >= self.requests_per_minute {
            return Err(invalid(
                "jupiter.reserved_for_exits",
                self.reserved_for_exits,
                format!(
                    "fewer than jupiter.requests_per_minute ({}): price reads need some room",
                    self.requests_per_minute
                ),
            ));
        }
        // An exit's attempt needs a quote and a swap; two attempts and a requote.
        if self.reserved_for_exits < 4 {
            return Err(invalid(
                "jupiter.reserved_for_exits",
                self.reserved_for_exits,
                "at least 4: an exit's two attempts each need a quote and a swap",
            ));
        }
        RequestBudget::new(
            self.requests_per_minute,
            Duration::from_secs(60),
            self.reserved_for_exits,
        )
        .map(Some)
        .map_err(|e| {
            invalid(
                "jupiter.requests_per_minute",
                self.requests_per_minute,
                e.to_string(),
            )
        })
    }
}

impl WalletFile {
    /// The keypair file the live profiles need: it exists, is a file, and only its owner
    /// may read it. The secret itself is read by the signer, never here.
    pub(crate) fn validate(&self, profile: Profile) -> Result<Option<PathBuf>, ConfigError> {
        if profile == Profile::Paper {
            return Ok(self.keypair_path.clone());
        }
        let path = self.keypair_path.as_ref().ok_or_else(|| {
            invalid(
                "wallet.keypair_path",
                "(none)",
                format!(
                    "a Solana CLI keypair file for the {} profile",
                    profile.as_str()
                ),
            )
        })?;
        check_keypair_file(path)?;
        Ok(Some(path.clone()))
    }
}

fn check_keypair_file(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|_| {
        invalid(
            "wallet.keypair_path",
            path.display(),
            "an existing keypair file",
        )
    })?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a keypair file, not a folder"
        } else {
            "a regular keypair file, not a device, pipe or socket"
        };
        return Err(invalid("wallet.keypair_path", path.display(), what));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(invalid(
                "wallet.keypair_path",
                format!("{} (mode {mode:o})", path.display()),
                "a file only its owner can read (chmod 600)",
            ));
        }
    }
    Ok(())
}
