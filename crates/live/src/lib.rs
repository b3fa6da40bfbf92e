//! The live adapters, built from a validated configuration: the wallet's signer from its
//! keypair file, Jupiter's client (its key sent to Jupiter's own origin only) and the
//! Solana RPC client; and [`doctor`], the checks of a live configuration against the real
//! endpoints that send nothing.
#![forbid(unsafe_code)]

use std::sync::Arc;

use kyzlo_adapters_jupiter::{JupiterClient, JupiterConfig};
use kyzlo_adapters_solana::{
    AssembleSettings, Assembler, KeypairSigner, LaneHeader, LanesProbe, NATIVE_MINT, Pubkey,
    SendLane, SolanaChain, SolanaConfig, Tip, TokenPair, tip_instructions,
};
use kyzlo_application::ports::{HealthProbe, SwapRouter, WalletAddress};
use kyzlo_config::{Config, ConfigError, JupiterApi};

pub mod doctor;
pub mod journal;
pub mod operator;
pub mod quote;
pub mod router;
pub mod signals;
pub mod wallet;

/// Jupiter's client for `config`, at `base_url` when given (`kyzlo quote --jupiter-url`).
/// The API key goes to the configured Jupiter origin only; the second value says so when
/// `base_url` is another one.
///
/// # Errors
/// What [`JupiterClient::new`] refuses, as text.
pub fn jupiter(
    config: &Config,
    wallet: WalletAddress,
    base_url: Option<&url::Url>,
) -> Result<(JupiterClient, Option<String>), String> {
    let mut jc = JupiterConfig::new(wallet);
    let url = base_url.unwrap_or(&config.jupiter.base_url);
    jc.base_url = url.as_str().trim_end_matches('/').to_owned();
    let home = url.origin() == config.jupiter.base_url.origin();
    let note = (!home && config.jupiter.api_key.is_some()).then(|| {
        format!(
            "note: the Jupiter API key is sent only to jupiter.base_url's host, not to {}",
            url.origin().ascii_serialization()
        )
    });
    jc.api_key = config
        .jupiter
        .api_key
        .as_ref()
        .filter(|_| home)
        .map(|k| k.expose().to_owned());
    jc.request_timeout = config.jupiter.request_timeout;
    jc.base_mint = config.pair.base_mint.to_string();
    jc.quote_mint = config.pair.quote_mint.to_string();
    JupiterClient::new(jc)
        .map(|client| (client, note))
        .map_err(|e| format!("jupiter: {e}"))
}

/// The swap router of a mainnet run: Jupiter's Swap API v2 `/build` compiled by kyzlo's
/// own [`Assembler`] (`jupiter.api = "v2"`, the default), or Jupiter's v1 quote and swap.
#[must_use]
pub fn router(
    config: &Config,
    jupiter: JupiterClient,
    chain: Arc<SolanaChain>,
    wallet: WalletAddress,
) -> Arc<dyn SwapRouter> {
    match config.jupiter.api {
        JupiterApi::V1 => Arc::new(jupiter),
        JupiterApi::V2 => Arc::new(router::BuildRouter::new(
            jupiter,
            assembler(config, chain, wallet),
        )),
    }
}

/// kyzlo's transaction assembler for `wallet`: `[fees]` and the send lanes' tips.
#[must_use]
pub fn assembler(config: &Config, chain: Arc<SolanaChain>, wallet: WalletAddress) -> Assembler {
    let fees = &config.fees;
    let settings = AssembleSettings {
        compute_unit_margin_pct: fees.compute_unit_margin_pct,
        max_compute_units: fees.max_compute_units,
        fee_percentile: fees.percentile,
        fee_floor_micro_lamports: fees.floor_micro_lamports,
    };
    let payer = Pubkey::new_from_array(wallet.0);
    // One transfer per lane that asks for a tip, inside the one signed transaction every
    // lane receives (see `kyzlo_adapters_solana::lanes`).
    let tips = tip_instructions(&payer, &solana_config(config).tips());
    Assembler::new(chain, payer, tips, settings)
}

/// The send path's health probe: the send lanes' `getHealth` when lanes are configured
/// (sends go to them alone), else the RPC endpoints' own probe. Neither sends anything.
#[must_use]
pub fn send_probe(config: &Config, chain: Arc<SolanaChain>) -> Arc<dyn HealthProbe> {
    let solana = solana_config(config);
    if solana.send_lanes.is_empty() {
        chain
    } else {
        Arc::new(LanesProbe::new(solana))
    }
}

/// The Solana RPC client for `config`. With `sol_only` (the devnet stand-in, which keeps
/// the pair's balances itself) it reads only SOL: the pair's mainnet mints need not exist.
///
/// # Errors
/// What [`SolanaChain::new`] refuses, as text.
pub fn solana(
    config: &Config,
    wallet: WalletAddress,
    sol_only: bool,
) -> Result<SolanaChain, String> {
    let pair = if sol_only {
        TokenPair {
            base: NATIVE_MINT,
            quote: NATIVE_MINT,
        }
    } else {
        TokenPair {
            base: config.pair.base_mint,
            quote: config.pair.quote_mint,
        }
    };
    SolanaChain::new(&solana_config(config), wallet, pair).map_err(|e| format!("solana: {e}"))
}

/// The Solana adapter's configuration: the endpoints, and the send lanes with their
/// header values (read from the environment when the configuration was validated).
fn solana_config(config: &Config) -> SolanaConfig {
    let mut sc = SolanaConfig::new(config.rpc.endpoints.clone());
    sc.request_timeout = config.rpc.request_timeout;
    sc.commitment = config.rpc.commitment;
    sc.skip_preflight = config.rpc.skip_preflight;
    sc.send_lanes = config
        .rpc
        .send_lanes
        .iter()
        .map(|lane| SendLane {
            label: lane.label.clone(),
            url: lane.url.clone(),
            // The one place a lane's header value leaves its `Secret`: into the adapter,
            // which sends it to that lane's URL only.
            headers: lane
                .headers
                .iter()
                .map(|h| LaneHeader::new(h.name.clone(), h.value.expose()))
                .collect(),
            skip_preflight: lane.skip_preflight,
            tip: lane.tip.map(|t| Tip {
                account: t.account,
                lamports: t.lamports,
            }),
        })
        .collect();
    sc
}

/// The wallet's signer from `wallet.keypair_path`.
///
/// # Errors
/// [`ConfigError::Invalid`] on `wallet.keypair_path`: missing, or not a usable keypair.
pub fn signer(config: &Config) -> Result<Arc<KeypairSigner>, ConfigError> {
    let path = config
        .keypair_path
        .as_ref()
        .ok_or_else(|| ConfigError::Invalid {
            key: "wallet.keypair_path".into(),
            value: "(none)".into(),
            expected: "a Solana CLI keypair file".into(),
        })?;
    KeypairSigner::from_file(path)
        .map(Arc::new)
        .map_err(|e| ConfigError::Invalid {
            key: "wallet.keypair_path".into(),
            value: path.display().to_string(),
            expected: e.to_string(),
        })
}

/// A retry-jitter seed for a live run: the wall clock's nanoseconds.
#[must_use]
pub fn seed_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| {
            u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
        })
}

/// A clock counting from the Unix epoch: what a live or paper bot journals stays
/// meaningful across restarts.
#[must_use]
pub fn unix_clock() -> kyzlo_application::clock::Clock {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    kyzlo_application::clock::Clock::starting_at(kyzlo_domain::Timestamp::from_micros(micros))
}
