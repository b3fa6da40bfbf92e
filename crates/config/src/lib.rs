//! kyzlo's configuration: built-in defaults < a TOML file < `KYZLO_*` environment variables
//! (nested keys joined with `__`, e.g. `KYZLO_EXIT_PLAN__STOP_LOSS_BPS=400`), for the
//! profiles `paper` (default), `devnet` and `mainnet`.
//!
//! [`load`] reads the [`File`] as written (unknown keys and closed sets are refused by
//! serde, naming the key); [`Config::try_from`] validates it once into typed settings
//! (durations, URLs, mints, the approval key, the domain's configurations), refusing a bad
//! value with a message naming the key, the value and what is allowed. `kyzlo config
//! check` and every start go through the same two steps. Secrets are [`Secret`]s: masked
//! in `Debug` and in [`File::masked_toml`].

mod breakers;
mod check;
mod exit;
mod fees;
mod journal;
mod lanes;
mod markets;
mod masking;
mod network;
mod nonce;
mod operator;
mod pair;
mod paper;
mod rpc_budget;
mod secret;
mod trading;

#[cfg(test)]
use masking::{ENDPOINTS_KEY, MASK, is_or_under};
use masking::{describe, mask_path};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kyzlo_application::bot::BotSettings;
use kyzlo_application::gateway::GatewayMode;
use kyzlo_application::guard::GuardLimits;
use kyzlo_application::orchestrator::ProtectiveExits;
use kyzlo_domain::retry::RetryPolicy;
use serde::{Deserialize, Serialize};

pub use breakers::{
    DependencyBreakerFile, ExitBreakerFile, HaltFile, LatencyBreakerFile, ProtectiveExitsFile,
};
pub use check::ConfigError;
pub use exit::{Execution, ExitFile, RetryFile, RungFile, StyleFile};
pub use fees::{Fees, FeesFile};
pub use journal::{DEFAULT_LEASE_S, JournalBackend, JournalFile, MAX_LEASE_S, MIN_LEASE_S};
pub use lanes::{
    LaneHeader, LaneTip, MAX_LANES, MAX_TIP_LAMPORTS, SendLane, SendLaneFile, TipFile,
};
pub use markets::{MAIN_MARKET, MAX_MARKETS, Market, MarketFile};
pub use network::{CommitmentFile, Jupiter, JupiterApi, JupiterFile, Rpc, RpcFile, WalletFile};
pub use nonce::{ESCALATE_AFTER_MS, MAX_CANCEL_FEE_LAMPORTS, NonceFile, NonceMode};
pub use operator::{Alerts, AlertsFile, Api, ApiFile, Telegram, Webhook};
pub use pair::{NATIVE_MINT, PairFile, PairSettings, USDC_MINT};
pub use paper::{Paper, PaperFile};
pub use rpc_budget::RpcBudgetFile;
pub use secret::Secret;
pub use trading::{ExitPlanFile, StrategyFile, TakeProfitFile, Trading, TradingFile};

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

    /// Which URLs its RPC and Jupiter keys accept: https only on mainnet.
    pub(crate) const fn url_scheme(self) -> check::Scheme {
        match self {
            Profile::Mainnet => check::Scheme::Https,
            Profile::Paper | Profile::Devnet => check::Scheme::Any,
        }
    }
}

/// The configuration file as written. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    /// `paper`, `devnet` or `mainnet`.
    pub profile: Profile,
    /// Must be true for the mainnet profile to start.
    pub confirm_mainnet: bool,
    /// The traded pair.
    pub pair: PairFile,
    /// Position sizing and the tick.
    pub trading: TradingFile,
    /// The mean-reversion strategy.
    pub strategy: StrategyFile,
    /// Every new position's exit plan.
    pub exit_plan: ExitPlanFile,
    /// How exits are executed.
    pub exit: ExitFile,
    /// The entries' retry policy.
    pub retry: RetryFile,
    /// The exits' retry policy.
    pub exit_retry: RetryFile,
    /// Consecutive failed exits before trading halts.
    pub exit_breaker: ExitBreakerFile,
    /// What a halt does to positions whose stop fires.
    pub halt: HaltFile,
    /// The latency circuit breakers.
    pub latency_breaker: LatencyBreakerFile,
    /// Solana RPC.
    pub rpc: RpcFile,
    pub jupiter: JupiterFile,
    /// How kyzlo's own transactions are sized and priced.
    pub fees: FeesFile,
    /// The wallet.
    pub wallet: WalletFile,
    /// The operator HTTP API.
    pub api: ApiFile,
    /// Alert webhooks.
    pub alerts: AlertsFile,
    /// Where state is kept.
    pub journal: JournalFile,
    /// Paper mode.
    pub paper: PaperFile,
    /// Durable-nonce mode.
    pub nonce: NonceFile,
    /// The markets this process trades; none: the one market of `[pair]`,
    /// `[strategy]`, `[exit_plan]` and `[wallet]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub markets: Vec<MarketFile>,
}

impl Default for File {
    fn default() -> Self {
        Self {
            profile: Profile::Paper,
            confirm_mainnet: false,
            pair: PairFile::default(),
            trading: TradingFile::default(),
            strategy: StrategyFile::default(),
            exit_plan: ExitPlanFile::default(),
            exit: ExitFile::default(),
            retry: RetryFile::from_policy(RetryPolicy::default_policy()),
            exit_retry: RetryFile::from_policy(RetryPolicy::exit_policy()),
            exit_breaker: ExitBreakerFile { threshold: 2 },
            halt: HaltFile::default(),
            latency_breaker: LatencyBreakerFile::default(),
            rpc: RpcFile::default(),
            jupiter: JupiterFile::default(),
            fees: FeesFile::default(),
            wallet: WalletFile::default(),
            api: ApiFile::default(),
            alerts: AlertsFile::default(),
            journal: JournalFile::default(),
            paper: PaperFile::default(),
            nonce: NonceFile::default(),
            markets: Vec::new(),
        }
    }
}

impl File {
    /// The file as TOML with every secret masked (what `config check` prints).
    ///
    /// # Errors
    /// Never in practice: the structure always serializes.
    pub fn masked_toml(&self) -> Result<String, ConfigError> {
        let mut masked = self.clone();
        for secret in [
            &mut masked.jupiter.api_key,
            &mut masked.api.bearer_token,
            &mut masked.api.approval_key,
            &mut masked.alerts.slack_webhook,
            &mut masked.alerts.discord_webhook,
            &mut masked.alerts.generic_webhook,
            &mut masked.alerts.telegram_bot_token,
            &mut masked.journal.url,
        ] {
            if secret.is_some() {
                *secret = Some(Secret::masked());
            }
        }
        masked.rpc.endpoints = masked.rpc.endpoints.iter().map(|e| mask_path(e)).collect();
        // A lane's headers are the names of the variables holding them: shown as written.
        for lane in &mut masked.rpc.send_lanes {
            lane.url = mask_path(&lane.url);
        }
        toml::to_string_pretty(&masked).map_err(|e| ConfigError::Load(e.to_string()))
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
    "CRASH_SEED",
    "CRASH_KILLS",
    "EXPLORER_RUNS",
    "EXPLORER_SEED",
];

/// Loads the file: defaults < `path` (if given, it must exist; else `kyzlo.toml` when
/// present) < `KYZLO_*` environment < `profile` (a command's own profile). A Jupiter API
/// key missing from both is read from `JUPITER_API_KEY`.
///
/// # Errors
/// [`ConfigError::Load`] naming the file or key that is wrong.
pub fn load(path: Option<&Path>, profile: Option<Profile>) -> Result<File, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(File::default()));
    match path {
        Some(p) => {
            if !p.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            readable(p)?;
            figment = figment.merge(Toml::file_exact(p));
        }
        None => {
            if Path::new("kyzlo.toml").exists() {
                readable(Path::new("kyzlo.toml"))?;
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
    let mut file: File = figment.extract().map_err(|e| {
        ConfigError::Load(
            e.into_iter()
                .map(|e| describe(&e))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    if let Some(profile) = profile {
        file.profile = profile;
    }
    if file.jupiter.api_key.is_none()
        && let Ok(key) = std::env::var("JUPITER_API_KEY")
        && !key.is_empty()
    {
        file.jupiter.api_key = Some(Secret::new(key));
    }
    Ok(file)
}

/// The largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A configuration file must be a regular file of at most [`MAX_CONFIG_BYTES`]: a device
/// or a pipe (`/dev/zero`) would be read without end.
fn readable(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::Load(format!(
            "config file {}: {e}",
            check::printable(&path.display().to_string())
        ))
    })?;
    if !meta.is_file() {
        return Err(ConfigError::Load(format!(
            "config file {}: not a regular file",
            check::printable(&path.display().to_string())
        )));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::Load(format!(
            "config file {}: {} bytes, more than the {MAX_CONFIG_BYTES} a configuration may have",
            check::printable(&path.display().to_string()),
            meta.len()
        )));
    }
    Ok(())
}

/// Loads and validates: what every command starts from.
///
/// # Errors
/// [`ConfigError`] naming the first bad key.
pub fn load_valid(path: Option<&Path>, profile: Option<Profile>) -> Result<Config, ConfigError> {
    Config::try_from(load(path, profile)?)
}

/// The configuration, validated: every value typed and within its range.
#[derive(Debug, Clone)]
pub struct Config {
    /// The profile.
    pub profile: Profile,
    /// The pair.
    pub pair: PairSettings,
    /// What is traded and when.
    pub trading: Trading,
    /// How exits and entries are executed.
    pub execution: Execution,
    /// Each guarded dependency's latency breaker and call timeout.
    pub guard: GuardLimits,
    /// Consecutive failed exits before trading halts.
    pub exit_breaker_threshold: u32,
    /// What a halt does to a position whose stop has fired.
    pub protective_exits: ProtectiveExits,
    /// Solana RPC.
    pub rpc: Rpc,
    pub jupiter: Jupiter,
    /// How kyzlo's own transactions are sized and priced.
    pub fees: Fees,
    /// The keypair file (required, and checked, for devnet and mainnet).
    pub keypair_path: Option<PathBuf>,
    /// The markets this process trades (at least one); `pair`, `trading` and
    /// `keypair_path` above are the first's ([`Config::for_market`] gives each its own).
    pub markets: Vec<Market>,
    /// The operator API.
    pub api: Api,
    pub alerts: Alerts,
    /// Where the paper and devnet wallets (and the SQLite journal) are kept.
    pub data_dir: PathBuf,
    /// The journal: the data folder's SQLite file, or PostgreSQL under a wallet lease.
    pub journal: JournalBackend,
    /// Paper mode.
    pub paper: Paper,
    /// The file it was validated from (for `config check` to print, masked).
    pub file: File,
}

impl TryFrom<File> for Config {
    type Error = ConfigError;

    fn try_from(file: File) -> Result<Self, ConfigError> {
        let profile = file.profile;
        if profile == Profile::Mainnet && !file.confirm_mainnet {
            return Err(check::invalid(
                "confirm_mainnet",
                false,
                "true: the mainnet profile trades real money and must be confirmed explicitly",
            ));
        }
        let mut execution = exit::validate(&file.exit, &file.exit_retry, &file.retry)?;
        let nonce = file.nonce.validate(nonce::Context {
            api: file.jupiter.api,
            markets: file.markets.len(),
        })?;
        execution.exit.nonce = nonce;
        execution.entry.nonce = nonce;
        let (pair, trading) = market(
            &file,
            &file.pair,
            &file.strategy,
            &file.exit_plan,
            &execution,
        )?;
        let rpc = file.rpc.validate(profile)?;
        let timeouts = breakers::DefaultTimeouts {
            call_ms: file.exit.call_timeout_ms,
            send_ms: file.exit.send_timeout_ms,
        };
        let guard = file.latency_breaker.validate(timeouts)?;
        if rpc.endpoints.len() > 1 && rpc.request_timeout >= guard.rpc_reads.call_timeout {
            let (key, ms) = file.latency_breaker.rpc_reads_timeout(timeouts);
            return Err(check::invalid(
                "rpc.request_timeout_ms",
                file.rpc.request_timeout_ms,
                format!(
                    "less than {key} ({ms}) with several endpoints: a request must give up in time for the next endpoint to be tried within the call"
                ),
            ));
        }
        let (data_dir, journal) = file.journal.validate()?;
        if !file.markets.is_empty() && journal == JournalBackend::Sqlite {
            return Err(check::invalid(
                "markets",
                format!("{} markets", file.markets.len()),
                "journal.url set too: [[markets]] runs on the fleet's PostgreSQL journal (without the list, [pair], [strategy] and [exit_plan] are the one market, on SQLite)",
            ));
        }
        let exit_breaker_threshold = file.exit_breaker.validate()?;
        let api = file.api.validate()?;
        let alerts = file.alerts.validate()?;
        let jupiter = file.jupiter.validate(profile)?;
        let fees = file.fees.validate()?;
        // The default keypair is needed (and checked) only for a market without its own.
        let keypair_path =
            if file.markets.iter().all(|m| m.keypair_path.is_some()) && !file.markets.is_empty() {
                None
            } else {
                file.wallet.validate(profile)?
            };
        let mut markets = Vec::with_capacity(file.markets.len().max(1));
        for (i, m) in file.markets.iter().enumerate() {
            let (pair, trading) = market(
                &file,
                m.pair.as_ref().unwrap_or(&file.pair),
                m.strategy.as_ref().unwrap_or(&file.strategy),
                m.exit_plan.as_ref().unwrap_or(&file.exit_plan),
                &execution,
            )
            .map_err(|e| markets::within(i, e))?;
            let keypair_path = match &m.keypair_path {
                Some(path) => network::WalletFile {
                    keypair_path: Some(path.clone()),
                }
                .validate(profile)
                .map_err(|e| markets::within(i, markets::keypair_key(e)))?,
                None => keypair_path.clone(),
            };
            markets.push(Market {
                name: m.name.clone(),
                listed: true,
                pair,
                trading,
                keypair_path,
            });
        }
        markets::check(&file.markets, &markets)?;
        if markets.is_empty() {
            markets.push(Market {
                name: MAIN_MARKET.to_owned(),
                listed: false,
                pair,
                trading,
                keypair_path,
            });
        }
        let first = markets[0].clone();
        Ok(Self {
            profile,
            pair: first.pair,
            trading: first.trading,
            execution,
            guard,
            exit_breaker_threshold,
            protective_exits: file.halt.protective_exits.validate(),
            api,
            rpc,
            alerts,
            jupiter,
            fees,
            keypair_path: first.keypair_path,
            markets,
            data_dir,
            journal,
            paper: file.paper.validate(pair.pair)?,
            file,
        })
    }
}

/// A market's pair and trading rules from its tables, fees priced for its sizing.
fn market(
    file: &File,
    pair: &PairFile,
    strategy: &StrategyFile,
    exit_plan: &ExitPlanFile,
    execution: &Execution,
) -> Result<(PairSettings, Trading), ConfigError> {
    let pair = pair.validate()?;
    let mut trading = trading::validate(&file.trading, strategy, exit_plan, pair.pair)?;
    if trading.cost_aware {
        // Fees are priced against the smallest entry the sizing makes, so a small
        // wallet-sized entry is not let through on the cap's cheaper fee share.
        trading.strategy.cost = trading::round_trip_cost(
            &execution.entry,
            &execution.exit,
            pair.pair.native_base,
            file.trading.entry_size
                * kyzlo_application::entry::EntrySize::smallest_share(Some(trading.entry_fraction)),
        );
        trading
            .strategy
            .validate()
            .map_err(|e| check::domain(e, "strategy", strategy))?;
    }
    Ok((pair, trading))
}

impl Config {
    /// The configuration of market `i` on its own: its pair, trading rules and keypair in
    /// place of the first market's, everything else shared. `None` past the last.
    #[must_use]
    pub fn for_market(&self, i: usize) -> Option<Config> {
        let market = self.markets.get(i)?;
        let mut config = self.clone();
        config.pair = market.pair;
        config.trading = market.trading.clone();
        config.keypair_path = market.keypair_path.clone();
        config.markets = vec![market.clone()];
        Some(config)
    }

    /// The bot's settings; `jitter_seed` seeds its retry jitter.
    #[must_use]
    pub fn bot_settings(&self, jitter_seed: u64) -> BotSettings {
        BotSettings {
            pair: self.pair.pair,
            strategy: self.trading.strategy,
            exit_plan: self.trading.exit_plan.clone(),
            exit: self.execution.exit.clone(),
            entry: self.execution.entry.clone(),
            guard: self.guard.clone(),
            exit_breaker_threshold: self.exit_breaker_threshold,
            entry_quote_amount: self.trading.entry_quote_amount,
            entry_fraction: Some(self.trading.entry_fraction),
            max_positions: self.trading.max_positions,
            strategy_exits: true,
            protective_exits: self.protective_exits,
            // Jupiter's plan: set by the live bot, whose feed and router are Jupiter's.
            router_budget: None,
            // The RPC provider's plan: set by the live bot (paper's chain is simulated).
            rpc_budget: None,
            tick_interval: self.trading.tick_interval,
            approval_key: self.api.approval_key.clone(),
            gateway_mode: GatewayMode::Enforce,
            jitter_seed,
        }
    }

    /// The operator API's address, if it listens.
    #[must_use]
    pub fn listen(&self) -> Option<SocketAddr> {
        self.api.listen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyzlo_domain::strategy::RoundTripCost;

    #[test]
    fn the_defaults_are_valid_and_round_trip_through_toml() {
        let file = File::default();
        let text = toml::to_string_pretty(&file).unwrap();
        let back: File = toml::from_str(&text).unwrap();
        assert_eq!(back, file);
        let config = Config::try_from(file).unwrap();
        assert_eq!(config.rpc.endpoints.len(), 1);
        assert!(config.api.listen.is_some());
        assert_eq!(config.exit_breaker_threshold, 2);
    }

    #[test]
    fn fees_are_priced_against_the_smallest_entry_the_sizing_makes() {
        let file = File::default();
        let config = Config::try_from(file.clone()).unwrap();
        let cost = config.trading.strategy.cost;
        // Wallet-sized entries go down to a tenth of the cap: the fee share is priced on
        // that, not on the cap.
        assert!((cost.notional_quote - file.trading.entry_size / 10.0).abs() < 1e-9);
        assert!(cost.fees_base > 0.0, "SOL is the fee token: {cost:?}");
        let mut silent = file;
        silent.strategy.cost_aware = false;
        let config = Config::try_from(silent).unwrap();
        assert_eq!(config.trading.strategy.cost, RoundTripCost::default());
    }

    #[test]
    fn protective_exits_are_on_by_default_and_can_be_left_to_an_operator() {
        let config = Config::try_from(File::default()).unwrap();
        assert_eq!(config.protective_exits, ProtectiveExits::OnRecovery);
        let file: File = toml::from_str("[halt]\nprotective_exits = \"operator_only\"\n").unwrap();
        let config = Config::try_from(file).unwrap();
        assert_eq!(
            config.bot_settings(1).protective_exits,
            ProtectiveExits::OperatorOnly
        );
    }

    #[test]
    fn a_nonce_account_reaches_both_executions_and_a_bad_one_is_refused_by_key() {
        let account = "SysvarRent111111111111111111111111111111111";
        let text = format!("profile = \"devnet\"\n[nonce]\naccount = \"{account}\"\n");
        let mut file: File = toml::from_str(&text).unwrap();
        let keypair = tempfile::NamedTempFile::new().unwrap();
        file.wallet.keypair_path = Some(keypair.path().display().to_string().into());
        let config = Config::try_from(file.clone()).unwrap();
        let settings = config.bot_settings(1);
        let nonce = settings.exit.nonce.expect("nonce mode on");
        assert_eq!(settings.entry.nonce, Some(nonce));
        assert_eq!(nonce.escalate_after, std::time::Duration::from_secs(1));
        assert_eq!(nonce.cancel_fee.get(), 100_000);
        let back: File = toml::from_str(&toml::to_string_pretty(&file).unwrap()).unwrap();
        assert_eq!(back, file, "round-trips");
        let off: File = toml::from_str(&format!("{text}mode = \"off\"\n")).unwrap();
        let off = Config::try_from(File {
            wallet: file.wallet.clone(),
            ..off
        })
        .unwrap();
        assert_eq!(off.bot_settings(1).exit.nonce, None);
        assert_eq!(
            Config::try_from(File::default())
                .unwrap()
                .execution
                .exit
                .nonce,
            None
        );
        let err = toml::from_str::<File>("[nonce]\nmode = \"sometimes\"\n").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        file.nonce.escalate_after_ms = 50;
        let err = Config::try_from(file).unwrap_err().to_string();
        assert!(
            err.contains("nonce.escalate_after_ms") && err.contains("50"),
            "{err}"
        );
    }

    #[test]
    fn secrets_and_endpoint_paths_are_masked() {
        let mut file = File::default();
        file.jupiter.api_key = Some(Secret::new("jup-secret-key"));
        file.api.approval_key = Some(Secret::new("approval-key-0123456789"));
        file.rpc.endpoints = vec!["https://rpc.example.com/v2/secret-token".into()];
        let text = file.masked_toml().unwrap();
        assert!(!text.contains("jup-secret-key"), "{text}");
        assert!(!text.contains("approval-key-0123456789"), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
        assert!(text.contains("https://rpc.example.com/***"), "{text}");
        assert!(!format!("{file:?}").contains("jup-secret-key"));
    }

    /// The load errors `describe` words for `toml`, joined as [`load`] joins them.
    fn described(toml: &str) -> String {
        let err = Figment::from(Serialized::defaults(File::default()))
            .merge(Toml::string(toml))
            .extract::<File>()
            .expect_err("the file is refused");
        err.into_iter()
            .map(|e| describe(&e))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn an_endpoint_of_the_wrong_type_is_shown_by_scheme_and_host_only() {
        let text = described("[rpc]\nendpoints = \"https://rpc.example.com/?api-key=SEKRET\"\n");
        assert!(text.contains("rpc.endpoints"), "{text}");
        assert!(text.contains("https://rpc.example.com/***"), "{text}");
        assert!(!text.contains("SEKRET"), "{text}");
        // An element of the list is matched by the list's prefix.
        assert!(is_or_under("rpc.endpoints.0", ENDPOINTS_KEY));
        assert!(is_or_under("default.rpc.endpoints.1", ENDPOINTS_KEY));
        assert!(!is_or_under("rpc.endpoints_extra", ENDPOINTS_KEY));
        assert!(!is_or_under("rpc.request_timeout", ENDPOINTS_KEY));
    }

    #[test]
    fn a_parse_error_masks_the_secrets_on_the_line_it_quotes() {
        let cases = [
            ("[jupiter]\napi_key = \"SEKRET\" oops\n", "api_key ="),
            ("jupiter.api_key = \"SEKRET\" oops\n", "jupiter.api_key ="),
            (
                "[alerts]\nslack_webhook=\"https://hooks.slack.com/SEKRET\" oops\n",
                "slack_webhook=",
            ),
            (
                "[rpc]\nendpoints = [\"https://rpc.example.com/?api-key=SEKRET\" oops]\n",
                "https://rpc.example.com/***",
            ),
        ];
        for (toml, kept) in cases {
            let text = described(toml);
            assert!(
                text.contains("oops") || text.contains(MASK),
                "quotes the line: {text}"
            );
            assert!(text.contains(kept), "{toml}: {text}");
            assert!(!text.contains("SEKRET"), "{toml}: {text}");
        }
        // A line that names no secret is quoted as written.
        let text = described("[pair]\nbase_mint = \"So111\" oops\n");
        assert!(text.contains(r#"base_mint = "So111" oops"#), "{text}");
    }

    #[test]
    fn closed_sets_are_refused_by_name() {
        let err = toml::from_str::<File>("[rpc]\ncommitment = \"eventually\"\n").unwrap_err();
        assert!(err.to_string().contains("eventually"), "{err}");
        let err = toml::from_str::<File>(
            "[[exit.ladder]]\nslippage_bps = 50\npriority_fee_lamports = 1\nstyle = \"wild\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("wild"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut file = File::default();
        file.pair.quote_mint = "not-a-mint".into();
        let err = Config::try_from(file).unwrap_err().to_string();
        assert!(
            err.contains("pair.quote_mint") && err.contains("not-a-mint"),
            "{err}"
        );
        let mut file = File::default();
        file.api.approval_key = Some(Secret::new("short"));
        let err = Config::try_from(file).unwrap_err().to_string();
        assert!(
            err.contains("api.approval_key") && !err.contains("short"),
            "{err}"
        );
        let mut file = File::default();
        file.alerts.slack_webhook = Some(Secret::new("not a url with-secret"));
        let err = Config::try_from(file).unwrap_err().to_string();
        assert!(
            err.contains("alerts.slack_webhook") && !err.contains("with-secret"),
            "{err}"
        );
    }
}
