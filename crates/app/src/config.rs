//! Configuration: built-in defaults < TOML file < `KYZLO_*` environment variables
//! (nested keys with `__`, e.g. `KYZLO_EXIT_PLAN__STOP_LOSS_BPS=400`), with profiles
//! `paper` (default), `devnet` and `mainnet`. Validation at start refuses a bad value
//! with a message naming the key, the value and what is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kyzlo_application::execute::ExecutionSettings;
use kyzlo_application::ports::{Commitment, Pair};
use kyzlo_domain::exit_plan::{ExitPlanConfig, TakeProfitRung};
use kyzlo_domain::ladder::{EscalationLadder, OrderStyle, Rung};
use kyzlo_domain::latency_breaker::LatencyBreakerConfig;
use kyzlo_domain::retry::RetryPolicy;
use kyzlo_domain::strategy::MeanReversionConfig;
use kyzlo_domain::{Bps, DomainError, Fraction, Lamports, Slippage, TokenAmount};
use serde::{Deserialize, Serialize};

/// The largest fee reserve accepted: 10 SOL.
const MAX_FEE_RESERVE: u64 = 10_000_000_000;

/// Wrapped SOL's mint: a pair with it as the base trades the lamports that pay fees.
const NATIVE_MINT: &str = "So11111111111111111111111111111111111111112";

/// Which venue the bot trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Simulated market, chain and router: no network, no wallet.
    #[default]
    Paper,
    /// The real Solana adapter against devnet; swaps stood in for by memo transactions.
    Devnet,
    /// Real Jupiter swaps from a real wallet.
    Mainnet,
}

impl Profile {
    /// The profile's name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Paper => "paper",
            Profile::Devnet => "devnet",
            Profile::Mainnet => "mainnet",
        }
    }
}

/// The whole configuration file. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// paper, devnet or mainnet.
    pub profile: Profile,
    /// Must be true for the mainnet profile to start.
    pub confirm_mainnet: bool,
    /// The traded pair.
    pub pair: PairConfig,
    /// Position sizing and the tick.
    pub trading: TradingConfig,
    /// Mean-reversion strategy.
    pub strategy: StrategyConfig,
    /// Per-position exit plan.
    pub exit_plan: ExitPlanFile,
    /// How exits are executed.
    pub exit: ExitConfig,
    /// Default retry policy (entries).
    pub retry: RetryConfig,
    /// Exit retry policy.
    pub exit_retry: RetryConfig,
    /// Consecutive failed exits before trading halts.
    pub exit_breaker: ExitBreakerConfig,
    /// Latency circuit breaker.
    pub latency_breaker: LatencyBreakerFile,
    /// Solana RPC.
    pub rpc: RpcConfig,
    /// Jupiter.
    pub jupiter: JupiterFile,
    /// Wallet.
    pub wallet: WalletConfig,
    /// Operator HTTP API.
    pub api: ApiFile,
    /// Alert webhooks.
    pub alerts: AlertsConfig,
    /// Durable journal and paper state.
    pub journal: JournalConfig,
    /// Paper mode.
    pub paper: PaperConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Paper,
            confirm_mainnet: false,
            pair: PairConfig::default(),
            trading: TradingConfig::default(),
            strategy: StrategyConfig::default(),
            exit_plan: ExitPlanFile::default(),
            exit: ExitConfig::default(),
            retry: RetryConfig::from_policy(RetryPolicy::default_policy()),
            exit_retry: RetryConfig::from_policy(RetryPolicy::exit_policy()),
            exit_breaker: ExitBreakerConfig { threshold: 2 },
            latency_breaker: LatencyBreakerFile::default(),
            rpc: RpcConfig::default(),
            jupiter: JupiterFile::default(),
            wallet: WalletConfig::default(),
            api: ApiFile::default(),
            alerts: AlertsConfig::default(),
            journal: JournalConfig::default(),
            paper: PaperConfig::default(),
        }
    }
}

/// `[pair]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairConfig {
    /// Base token mint (SOL).
    pub base_mint: String,
    /// Quote token mint (USDC).
    pub quote_mint: String,
    /// Base decimals.
    pub base_decimals: u8,
    /// Quote decimals.
    pub quote_decimals: u8,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            base_mint: NATIVE_MINT.into(),
            quote_mint: "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v".into(),
            base_decimals: 9,
            quote_decimals: 6,
        }
    }
}

/// `[trading]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TradingConfig {
    /// Quote tokens spent per entry (e.g. 100.0 USDC).
    pub entry_size: f64,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Milliseconds between ticks.
    pub tick_interval_ms: u64,
}

impl Default for TradingConfig {
    fn default() -> Self {
        Self {
            entry_size: 100.0,
            max_positions: 1,
            tick_interval_ms: 1_000,
        }
    }
}

/// `[strategy]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    /// Rolling window in ticks.
    pub window: usize,
    /// Enter long when z <= -entry_z.
    pub entry_z: f64,
    /// Exit when z >= exit_z.
    pub exit_z: f64,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        let d = MeanReversionConfig::default();
        Self {
            window: d.window,
            entry_z: d.entry_z,
            exit_z: d.exit_z,
        }
    }
}

/// One take-profit rung.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeProfitFile {
    /// Gain over entry in bps.
    pub gain_bps: u16,
    /// Share of the original size in bps.
    pub fraction_bps: u16,
}

/// `[exit_plan]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExitPlanFile {
    /// Hard stop below entry, bps.
    pub stop_loss_bps: u32,
    /// Trailing stop arms at this gain (0 = off).
    pub trailing_activation_bps: u16,
    /// Trailing distance below the peak.
    pub trailing_distance_bps: u16,
    /// Breakeven stop arms at this gain (0 = off).
    pub breakeven_trigger_bps: u16,
    /// Breakeven stop level above entry.
    pub breakeven_offset_bps: u16,
    /// Take-profit ladder.
    pub take_profit: Vec<TakeProfitFile>,
}

impl Default for ExitPlanFile {
    fn default() -> Self {
        let d = ExitPlanConfig::default();
        Self {
            stop_loss_bps: u32::from(d.stop_loss.get()),
            trailing_activation_bps: d.trailing_activation.map_or(0, Bps::get),
            trailing_distance_bps: d.trailing_distance.get(),
            breakeven_trigger_bps: d.breakeven_trigger.map_or(0, Bps::get),
            breakeven_offset_bps: d.breakeven_offset.get(),
            take_profit: d
                .take_profit
                .iter()
                .map(|r| TakeProfitFile {
                    gain_bps: r.gain.get(),
                    fraction_bps: r.fraction.bps().get(),
                })
                .collect(),
        }
    }
}

/// One escalation rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungFile {
    /// Slippage tolerance.
    pub slippage_bps: u16,
    /// Priority fee.
    pub priority_fee_lamports: u64,
    /// `limit` or `market`.
    pub style: String,
}

/// `[exit]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExitConfig {
    /// Signal-to-closure deadline.
    pub deadline_s: f64,
    /// Blockhash life asked of the router for market-style rungs.
    pub expiry_slots: u32,
    /// Blockhash life for limit-style rungs.
    pub limit_expiry_slots: u32,
    /// Expected slot time.
    pub slot_time_ms: u64,
    /// Status poll interval.
    pub poll_interval_ms: u64,
    /// Rebroadcast interval of a live attempt.
    pub rebroadcast_interval_ms: u64,
    /// Time one send may take before the engine moves on.
    pub send_timeout_ms: u64,
    /// Confirmation timeout (the attempt stays live after it).
    pub confirm_timeout_ms: u64,
    /// Timeout of every router and chain call.
    pub call_timeout_ms: u64,
    /// The escalation ladder.
    pub ladder: Vec<RungFile>,
    /// No rung may ask for more.
    pub max_slippage_bps: u16,
    /// Entry slippage.
    pub entry_slippage_bps: u16,
    /// Entry priority fee.
    pub entry_priority_fee_lamports: u64,
    /// Lamports a full exit of SOL leaves for fees and rent.
    pub fee_reserve_lamports: u64,
    /// How long a landed transaction's fill is looked for before the quote's minimum
    /// stands in for it.
    pub fill_wait_ms: u64,
}

impl Default for ExitConfig {
    fn default() -> Self {
        let s = ExecutionSettings::exit_defaults();
        Self {
            deadline_s: s.deadline.as_secs_f64(),
            expiry_slots: s.expiry_slots,
            limit_expiry_slots: s.limit_expiry_slots,
            slot_time_ms: millis(s.slot_time),
            poll_interval_ms: millis(s.poll_interval),
            rebroadcast_interval_ms: millis(s.rebroadcast_interval),
            send_timeout_ms: millis(s.send_timeout),
            confirm_timeout_ms: millis(s.confirm_timeout),
            call_timeout_ms: 2_000,
            fee_reserve_lamports: s.fee_reserve.get(),
            fill_wait_ms: millis(s.fill_wait),
            ladder: s
                .ladder
                .rungs()
                .iter()
                .map(|r| RungFile {
                    slippage_bps: r.slippage.bps().get(),
                    priority_fee_lamports: r.priority_fee.get(),
                    style: r.style.as_str().to_owned(),
                })
                .collect(),
            max_slippage_bps: 500,
            entry_slippage_bps: 50,
            entry_priority_fee_lamports: 20_000,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `[retry]` / `[exit_retry]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts at most.
    pub max_attempts: u32,
    /// Total budget.
    pub total_s: f64,
    /// First backoff ceiling.
    pub initial_backoff_ms: u64,
    /// Growth per retry.
    pub multiplier: f64,
    /// Backoff cap.
    pub max_backoff_ms: u64,
}

impl RetryConfig {
    fn from_policy(p: RetryPolicy) -> Self {
        Self {
            max_attempts: p.max_attempts,
            total_s: p.total_budget.as_secs_f64(),
            initial_backoff_ms: millis(p.initial_backoff),
            multiplier: p.multiplier,
            max_backoff_ms: millis(p.max_backoff),
        }
    }
}

/// `[exit_breaker]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitBreakerConfig {
    /// Consecutive failed exits that halt trading.
    pub threshold: u32,
}

/// `[latency_breaker]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyBreakerFile {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// Error rate that opens it.
    pub error_rate_threshold: f64,
    /// Outcomes needed before the error rate counts.
    pub min_calls: u32,
    /// Outcomes in the error-rate window.
    pub outcome_window: u32,
    /// P99 latency that opens it.
    pub p99_threshold_ms: u64,
    /// Samples in the latency window.
    pub latency_window: usize,
    /// Samples needed before P99 counts.
    pub min_latency_samples: usize,
    /// Open -> half-open after this.
    pub recovery_timeout_s: f64,
    /// Probes allowed half-open.
    pub half_open_max_probes: u32,
    /// A probe not answered by then failed.
    pub probe_timeout_s: f64,
}

impl Default for LatencyBreakerFile {
    fn default() -> Self {
        let d = LatencyBreakerConfig::default();
        Self {
            failure_threshold: d.failure_threshold,
            error_rate_threshold: d.error_rate_threshold,
            min_calls: d.min_calls,
            outcome_window: d.outcome_window,
            p99_threshold_ms: millis(d.p99_threshold),
            latency_window: d.latency_window,
            min_latency_samples: d.min_latency_samples,
            recovery_timeout_s: d.recovery_timeout.as_secs_f64(),
            half_open_max_probes: d.half_open_max_probes,
            probe_timeout_s: d.probe_timeout.as_secs_f64(),
        }
    }
}

/// `[rpc]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    /// Primary first, then fallbacks. Empty: the profile's public endpoint.
    pub endpoints: Vec<String>,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
    /// `processed`, `confirmed` or `finalized`.
    pub commitment: String,
    /// Skip preflight simulation on send.
    pub skip_preflight: bool,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            request_timeout_ms: 2_000,
            commitment: "confirmed".into(),
            skip_preflight: false,
        }
    }
}

/// `[jupiter]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JupiterFile {
    /// Base URL.
    pub base_url: String,
    /// API key (secret). Also read from `JUPITER_API_KEY`.
    pub api_key: Option<String>,
    /// Request timeout.
    pub request_timeout_ms: u64,
}

impl std::fmt::Debug for JupiterFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JupiterFile")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl Default for JupiterFile {
    fn default() -> Self {
        Self {
            base_url: "https://api.jup.ag".into(),
            api_key: None,
            request_timeout_ms: 5_000,
        }
    }
}

/// `[wallet]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Solana CLI keypair file (64-number JSON).
    pub keypair_path: Option<PathBuf>,
}

/// `[api]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiFile {
    /// Listen address (loopback unless configured otherwise); empty: no API.
    pub listen: String,
    /// Bearer token for the control endpoints (secret).
    pub bearer_token: Option<String>,
    /// Approval key for resuming after a halt (secret).
    pub approval_key: Option<String>,
}

impl std::fmt::Debug for ApiFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiFile")
            .field("listen", &self.listen)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("approval_key", &self.approval_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for ApiFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            bearer_token: None,
            approval_key: None,
        }
    }
}

/// `[alerts]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Slack incoming-webhook URL (secret).
    pub slack_webhook: Option<String>,
    /// Discord webhook URL (secret).
    pub discord_webhook: Option<String>,
    /// Generic JSON webhook URL.
    pub generic_webhook: Option<String>,
    /// At most this many alerts of one kind per window.
    pub max_per_window: u32,
    /// The rate-limit window.
    pub window_s: f64,
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("AlertsConfig")
            .field("slack_webhook", &mask(&self.slack_webhook))
            .field("discord_webhook", &mask(&self.discord_webhook))
            .field("generic_webhook", &mask(&self.generic_webhook))
            .field("max_per_window", &self.max_per_window)
            .field("window_s", &self.window_s)
            .finish()
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            slack_webhook: None,
            discord_webhook: None,
            generic_webhook: None,
            max_per_window: 5,
            window_s: 60.0,
        }
    }
}

/// `[journal]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Folder for the journal and the paper wallet.
    pub data_dir: PathBuf,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("kyzlo-data"),
        }
    }
}

/// `[paper]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaperConfig {
    /// Seed of the generated market and the fault schedule.
    pub seed: u64,
    /// Hours of generated market when no CSV is given.
    pub hours: f64,
    /// Fault profile name.
    pub faults: String,
    /// Starting USDC of a new paper wallet.
    pub initial_quote: f64,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            seed: 20_210_519,
            hours: 6.0,
            faults: "flaky".into(),
            initial_quote: 1_000.0,
        }
    }
}

/// A refused configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed (unknown key, wrong type).
    #[error("configuration: {0}")]
    Load(String),
    /// A value outside what is allowed.
    #[error("configuration: {key} = {value}: expected {expected}")]
    Invalid {
        /// The key, as written in the file.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
}

fn invalid(
    key: impl Into<String>,
    value: impl ToString,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// `KYZLO_*` variables that are not configuration keys: command-line options, the log
/// filter, and the test tooling's. Any other unknown `KYZLO_*` key is refused.
pub const NOT_CONFIG_VARIABLES: &[&str] = &[
    "CONFIG",
    "LOG",
    "API_TOKEN",
    "APPROVAL_KEY",
    "VALIDATOR_BIN",
    "VALIDATOR_NETNS",
    "TOOLS",
];

/// Loads the configuration: defaults < `path` (if given, it must exist; else
/// `kyzlo.toml` when present) < `KYZLO_*` environment < `profile_override`.
///
/// # Errors
/// [`ConfigError::Load`] naming the key or file that is wrong.
pub fn load(path: Option<&Path>, profile_override: Option<Profile>) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match path {
        Some(p) => {
            if !p.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(p));
        }
        None => {
            if Path::new("kyzlo.toml").exists() {
                figment = figment.merge(Toml::file_exact("kyzlo.toml"));
            }
        }
    }
    figment = figment.merge(
        Env::prefixed("KYZLO_")
            .ignore(NOT_CONFIG_VARIABLES)
            .split("__"),
    );
    // Extracted before the override, so a bad profile in the file or environment is still
    // refused rather than silently replaced.
    let mut config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Load(flatten_figment(e)))?;
    if let Some(profile) = profile_override {
        config.profile = profile;
    }
    if config.jupiter.api_key.is_none()
        && let Ok(key) = std::env::var("JUPITER_API_KEY")
        && !key.is_empty()
    {
        config.jupiter.api_key = Some(key);
    }
    Ok(config)
}

fn flatten_figment(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Refuses a keypair path that does not exist or that group or others may read; the
/// secret itself is not read here (the signer loads it and checks its contents).
fn check_keypair_file(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|_| {
        invalid(
            "wallet.keypair_path",
            path.display(),
            "an existing keypair file",
        )
    })?;
    if !meta.is_file() {
        return Err(invalid(
            "wallet.keypair_path",
            path.display(),
            "a keypair file, not a folder",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
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

/// The configuration turned into the domain's and services' values.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The pair.
    pub pair: Pair,
    /// Strategy.
    pub strategy: MeanReversionConfig,
    /// Exit plan.
    pub exit_plan: ExitPlanConfig,
    /// Exit execution.
    pub exit: ExecutionSettings,
    /// Entry execution.
    pub entry: ExecutionSettings,
    /// Latency breaker.
    pub latency_breaker: LatencyBreakerConfig,
    /// Consecutive failed exits before a halt.
    pub exit_breaker_threshold: u32,
    /// Quote units per entry.
    pub entry_quote_amount: TokenAmount,
    /// At most this many open positions.
    pub max_positions: usize,
    /// Tick interval.
    pub tick_interval: Duration,
    /// Every router and chain call's timeout.
    pub call_timeout: Duration,
    /// The API's listen address, if any.
    pub listen: Option<SocketAddr>,
    /// RPC commitment.
    pub commitment: Commitment,
}

fn domain(e: DomainError, value: impl ToString) -> ConfigError {
    match e {
        DomainError::InvalidConfig { field, expected } => invalid(field, value, expected),
        other => invalid("value", value, other.to_string()),
    }
}

fn positive_secs(key: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v < 1e7 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(invalid(key, v, "a number of seconds above 0"))
    }
}

fn positive_ms(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        Err(invalid(key, v, "milliseconds above 0"))
    } else {
        Ok(Duration::from_millis(v))
    }
}

fn bps(key: &str, v: u16) -> Result<Bps, ConfigError> {
    Bps::new(v).map_err(|_| invalid(key, v, "0 to 10000 bps"))
}

fn retry(key: &'static str, r: &RetryConfig) -> Result<RetryPolicy, ConfigError> {
    let policy = RetryPolicy {
        max_attempts: r.max_attempts,
        total_budget: positive_secs(&format!("{key}.total_s"), r.total_s)?,
        initial_backoff: Duration::from_millis(r.initial_backoff_ms),
        multiplier: r.multiplier,
        max_backoff: Duration::from_millis(r.max_backoff_ms),
    };
    policy
        .validate(key)
        .map_err(|e| domain(e, format!("{r:?}")))?;
    Ok(policy)
}

impl Config {
    /// Checks every value and builds the domain configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let pair = Pair {
            base_decimals: self.pair.base_decimals,
            quote_decimals: self.pair.quote_decimals,
            native_base: self.pair.base_mint == NATIVE_MINT,
        };
        if self.pair.base_decimals > 18 {
            return Err(invalid(
                "pair.base_decimals",
                self.pair.base_decimals,
                "0 to 18",
            ));
        }
        if self.pair.quote_decimals > 18 {
            return Err(invalid(
                "pair.quote_decimals",
                self.pair.quote_decimals,
                "0 to 18",
            ));
        }
        let t = &self.trading;
        if !(t.entry_size.is_finite() && t.entry_size > 0.0) {
            return Err(invalid(
                "trading.entry_size",
                t.entry_size,
                "a positive amount of the quote token",
            ));
        }
        let units = t.entry_size * 10f64.powi(i32::from(pair.quote_decimals));
        if units >= u64::MAX as f64 || units < 1.0 {
            return Err(invalid(
                "trading.entry_size",
                t.entry_size,
                "an amount of at least one base unit that fits in 64 bits",
            ));
        }
        if t.max_positions == 0 || t.max_positions > 10_000 {
            return Err(invalid(
                "trading.max_positions",
                t.max_positions,
                "1 to 10000",
            ));
        }
        let tick_interval = positive_ms("trading.tick_interval_ms", t.tick_interval_ms)?;

        let strategy = MeanReversionConfig {
            window: self.strategy.window,
            entry_z: self.strategy.entry_z,
            exit_z: self.strategy.exit_z,
        };
        strategy
            .validate()
            .map_err(|e| domain(e, format!("{:?}", self.strategy)))?;

        let p = &self.exit_plan;
        let stop_loss = u16::try_from(p.stop_loss_bps)
            .ok()
            .filter(|v| *v > 0 && *v < 10_000)
            .ok_or_else(|| {
                invalid(
                    "exit_plan.stop_loss_bps",
                    p.stop_loss_bps,
                    "1 to 9999 bps (a stop at or above 100% is no stop)",
                )
            })?;
        let mut take_profit = Vec::new();
        for (i, r) in p.take_profit.iter().enumerate() {
            take_profit.push(TakeProfitRung {
                gain: bps(&format!("exit_plan.take_profit[{i}].gain_bps"), r.gain_bps)?,
                fraction: Fraction::from_bps(r.fraction_bps).map_err(|_| {
                    invalid(
                        format!("exit_plan.take_profit[{i}].fraction_bps"),
                        r.fraction_bps,
                        "1 to 10000",
                    )
                })?,
            });
        }
        let exit_plan = ExitPlanConfig {
            stop_loss: bps("exit_plan.stop_loss_bps", stop_loss)?,
            trailing_activation: (p.trailing_activation_bps > 0)
                .then(|| {
                    bps(
                        "exit_plan.trailing_activation_bps",
                        p.trailing_activation_bps,
                    )
                })
                .transpose()?,
            trailing_distance: bps("exit_plan.trailing_distance_bps", p.trailing_distance_bps)?,
            breakeven_trigger: (p.breakeven_trigger_bps > 0)
                .then(|| bps("exit_plan.breakeven_trigger_bps", p.breakeven_trigger_bps))
                .transpose()?,
            breakeven_offset: bps("exit_plan.breakeven_offset_bps", p.breakeven_offset_bps)?,
            take_profit,
        };
        exit_plan
            .validate()
            .map_err(|e| domain(e, format!("{p:?}")))?;

        let e = &self.exit;
        let max_slippage = Slippage::from_bps(e.max_slippage_bps)
            .map_err(|_| invalid("exit.max_slippage_bps", e.max_slippage_bps, "1 to 10000"))?;
        let mut rungs = Vec::new();
        for (i, r) in e.ladder.iter().enumerate() {
            let style = match r.style.as_str() {
                "limit" => OrderStyle::LimitLike,
                "market" => OrderStyle::Market,
                other => {
                    return Err(invalid(
                        format!("exit.ladder[{i}].style"),
                        other,
                        "limit or market",
                    ));
                }
            };
            rungs.push(Rung {
                slippage: Slippage::from_bps(r.slippage_bps).map_err(|_| {
                    invalid(
                        format!("exit.ladder[{i}].slippage_bps"),
                        r.slippage_bps,
                        "1 to 10000",
                    )
                })?,
                priority_fee: Lamports::new(r.priority_fee_lamports),
                style,
            });
        }
        let ladder = EscalationLadder::new(rungs, max_slippage)
            .map_err(|err| domain(err, format!("{:?}", e.ladder)))?;
        let exit_policy = retry("exit_retry", &self.exit_retry)?;
        let deadline = positive_secs("exit.deadline_s", e.deadline_s)?;
        if e.expiry_slots == 0 || e.expiry_slots > 150 {
            return Err(invalid(
                "exit.expiry_slots",
                e.expiry_slots,
                "1 to 150 slots",
            ));
        }
        if e.limit_expiry_slots == 0 || e.limit_expiry_slots > e.expiry_slots {
            return Err(invalid(
                "exit.limit_expiry_slots",
                e.limit_expiry_slots,
                "1 to exit.expiry_slots",
            ));
        }
        let exit = ExecutionSettings {
            policy: exit_policy,
            ladder,
            deadline,
            expiry_slots: e.expiry_slots,
            limit_expiry_slots: e.limit_expiry_slots,
            slot_time: positive_ms("exit.slot_time_ms", e.slot_time_ms)?,
            poll_interval: positive_ms("exit.poll_interval_ms", e.poll_interval_ms)?,
            rebroadcast_interval: positive_ms(
                "exit.rebroadcast_interval_ms",
                e.rebroadcast_interval_ms,
            )?,
            send_timeout: positive_ms("exit.send_timeout_ms", e.send_timeout_ms)?,
            confirm_timeout: positive_ms("exit.confirm_timeout_ms", e.confirm_timeout_ms)?,
            prepare_call_timeout: Duration::from_secs(5),
            commitment: Commitment::Confirmed,
            fee_reserve: if e.fee_reserve_lamports <= MAX_FEE_RESERVE {
                Lamports::new(e.fee_reserve_lamports)
            } else {
                return Err(invalid(
                    "exit.fee_reserve_lamports",
                    e.fee_reserve_lamports,
                    "0 to 10000000000 lamports (10 SOL)",
                ));
            },
            fill_wait: positive_ms("exit.fill_wait_ms", e.fill_wait_ms)?,
        };
        let entry_ladder = EscalationLadder::new(
            vec![Rung {
                slippage: Slippage::from_bps(e.entry_slippage_bps).map_err(|_| {
                    invalid(
                        "exit.entry_slippage_bps",
                        e.entry_slippage_bps,
                        "1 to the max slippage",
                    )
                })?,
                priority_fee: Lamports::new(e.entry_priority_fee_lamports),
                style: OrderStyle::LimitLike,
            }],
            max_slippage,
        )
        .map_err(|err| domain(err, e.entry_slippage_bps))?;
        let entry = ExecutionSettings {
            policy: retry("retry", &self.retry)?,
            ladder: entry_ladder,
            deadline: positive_secs("retry.total_s", self.retry.total_s)?,
            ..exit.clone()
        };

        let l = &self.latency_breaker;
        let latency_breaker = LatencyBreakerConfig {
            failure_threshold: l.failure_threshold,
            error_rate_threshold: l.error_rate_threshold,
            min_calls: l.min_calls,
            outcome_window: l.outcome_window,
            p99_threshold: positive_ms("latency_breaker.p99_threshold_ms", l.p99_threshold_ms)?,
            latency_window: l.latency_window,
            min_latency_samples: l.min_latency_samples,
            recovery_timeout: positive_secs(
                "latency_breaker.recovery_timeout_s",
                l.recovery_timeout_s,
            )?,
            half_open_max_probes: l.half_open_max_probes,
            probe_timeout: positive_secs("latency_breaker.probe_timeout_s", l.probe_timeout_s)?,
            ..LatencyBreakerConfig::default()
        };
        latency_breaker
            .validate()
            .map_err(|err| domain(err, format!("{l:?}")))?;
        if self.exit_breaker.threshold == 0 {
            return Err(invalid("exit_breaker.threshold", 0, "at least 1"));
        }
        let listen = if self.api.listen.is_empty() {
            None
        } else {
            let addr: SocketAddr = self.api.listen.parse().map_err(|_| {
                invalid(
                    "api.listen",
                    &self.api.listen,
                    "an address like 127.0.0.1:9464, or empty for no API",
                )
            })?;
            if !addr.ip().is_loopback() && self.api.bearer_token.is_none() {
                return Err(invalid(
                    "api.listen",
                    addr,
                    "a loopback address, or set api.bearer_token to listen elsewhere",
                ));
            }
            Some(addr)
        };
        if let Some(key) = &self.api.approval_key
            && key.len() < 16
        {
            return Err(invalid("api.approval_key", "***", "at least 16 characters"));
        }
        let commitment = match self.rpc.commitment.as_str() {
            "processed" => Commitment::Processed,
            "confirmed" => Commitment::Confirmed,
            "finalized" => Commitment::Finalized,
            other => {
                return Err(invalid(
                    "rpc.commitment",
                    other,
                    "processed, confirmed or finalized",
                ));
            }
        };
        if !(self.alerts.window_s.is_finite() && self.alerts.window_s > 0.0) {
            return Err(invalid(
                "alerts.window_s",
                self.alerts.window_s,
                "a number of seconds above 0",
            ));
        }
        if self.profile == Profile::Mainnet {
            if !self.confirm_mainnet {
                return Err(invalid(
                    "confirm_mainnet",
                    false,
                    "true: the mainnet profile trades real money and must be confirmed explicitly",
                ));
            }
            if self.jupiter.api_key.is_none() {
                return Err(invalid(
                    "jupiter.api_key",
                    "(none)",
                    "a Jupiter API key (or JUPITER_API_KEY) for mainnet",
                ));
            }
        }
        if self.profile != Profile::Paper {
            match &self.wallet.keypair_path {
                None => {
                    return Err(invalid(
                        "wallet.keypair_path",
                        "(none)",
                        format!(
                            "a Solana CLI keypair file for the {} profile",
                            self.profile.as_str()
                        ),
                    ));
                }
                Some(path) => check_keypair_file(path)?,
            }
        }
        Ok(Validated {
            pair,
            strategy,
            exit_plan,
            exit,
            entry,
            latency_breaker,
            exit_breaker_threshold: self.exit_breaker.threshold,
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            entry_quote_amount: TokenAmount::new(units as u64),
            max_positions: t.max_positions,
            tick_interval,
            call_timeout: positive_ms("exit.call_timeout_ms", self.exit.call_timeout_ms)?,
            listen,
            commitment,
        })
    }

    /// The configuration as TOML with every secret masked (for `config check`).
    ///
    /// # Errors
    /// Never in practice: the structure always serializes.
    pub fn masked_toml(&self) -> Result<String, ConfigError> {
        let mut masked = self.clone();
        let mask = |v: &mut Option<String>| {
            if v.is_some() {
                *v = Some("***".into());
            }
        };
        mask(&mut masked.jupiter.api_key);
        mask(&mut masked.api.bearer_token);
        mask(&mut masked.api.approval_key);
        mask(&mut masked.alerts.slack_webhook);
        mask(&mut masked.alerts.discord_webhook);
        mask(&mut masked.alerts.generic_webhook);
        toml::to_string_pretty(&masked).map_err(|e| ConfigError::Load(e.to_string()))
    }
}
