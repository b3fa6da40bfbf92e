//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use kyzlo_config::Profile;

/// kyzlo: a Solana trading bot with a defensive exit architecture.
#[derive(Debug, Parser)]
#[command(name = "kyzlo", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: kyzlo.toml when present).
    #[arg(long, global = true, env = "KYZLO_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// What to do (default: paper).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the full bot on a simulated market, chain and router (no network, no wallet).
    Paper(PaperArgs),
    /// Run against devnet or mainnet, by profile.
    Run(RunArgs),
    /// Monte-Carlo of a crash scenario: naive retry vs kyzlo vs an oracle.
    Chaos(ChaosArgs),
    /// Explore seeded adversarial worlds (lagging nodes, forks, crashes, operator
    /// actions) with the real bot and check its invariants; exits 1 on any violation.
    Verify(VerifyArgs),
    /// Show a running bot's state (or the journal's when none runs).
    Status(ApiArgs),
    /// Halt trading.
    Halt(HaltArgs),
    /// Resume trading with the approval key.
    Resume(ResumeArgs),
    /// Force-exit a position.
    Exit(ExitArgs),
    /// Leave a position alone while halted: no protective exit until resume.
    Hold(ExitArgs),
    /// Exit history.
    Exits(ExitsArgs),
    /// Ask Jupiter for an exit quote and show the route and price impact.
    Quote(QuoteArgs),
    /// Check a devnet or mainnet configuration against its endpoints, sending nothing.
    Doctor(DoctorArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The fleet on its PostgreSQL journal: status, halt, resume, force-exit.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// The wallet's durable nonce account (devnet or mainnet configuration).
    #[command(subcommand)]
    Wallet(WalletCommand),
}

/// `wallet` commands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// The durable nonce account every attempt of an intent is built on.
    #[command(subcommand)]
    Nonce(NonceCommand),
}

/// `wallet nonce` commands.
#[derive(Debug, Subcommand)]
pub enum NonceCommand {
    /// Create it (rent-exempt, the wallet its authority) and record it under [nonce].
    Create {
        /// Create without asking (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Show the configured account: its authority, value and lamports.
    Show,
}

/// `fleet` commands (through the database: no instance's API needed).
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Instances, wallets and their leases, markets, open positions, the halt.
    Status,
    /// Halt every market of every instance.
    Halt {
        /// Why (shown to every instance and in its alert).
        #[arg(long, default_value = "operator fleet halt")]
        reason: String,
    },
    /// Resume the fleet with the approval key (each instance checks it).
    Resume {
        /// The approval key (or KYZLO_APPROVAL_KEY).
        #[arg(long, env = "KYZLO_APPROVAL_KEY", hide_env_values = true)]
        approval_key: String,
    },
    /// Force-exit a position by the instance holding its wallet.
    Exit {
        /// The wallet, as `fleet status` shows it.
        #[arg(long)]
        wallet: String,
        /// The market, as `fleet status` shows it.
        #[arg(long)]
        market: String,
        /// The position's id.
        position: u64,
    },
}

/// `paper` options.
#[derive(Debug, Args, Default)]
pub struct PaperArgs {
    /// Replay this CSV (`ts_ms,price` or OHLCV) instead of the embedded market.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Pace virtual time at this many times real time (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Stop after this much market time, e.g. `90m`, `2h`, `1h 30m`, `600s`.
    #[arg(long, value_parser = positive_duration)]
    pub duration: Option<std::time::Duration>,
    /// The simulated network's fault profile (default: the configuration's): none, flaky,
    /// rpc-blackout, late-landing, rate-limited, slippage-storm, node-behind or adversarial.
    #[arg(long)]
    pub faults: Option<String>,
    /// Seed of the generated market and the faults.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Start a new paper wallet and journal (the old ones are moved aside).
    #[arg(long)]
    pub fresh: bool,
    /// Write the HTML report (equity, drawdown, every exit with its attempts, costs) here
    /// instead of `<data_dir>/paper-report.html`.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Profile (overrides the file and KYZLO_PROFILE).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Start a new journal, moving the old one aside. A new journal knows no open
    /// position: check the wallet first.
    #[arg(long)]
    pub fresh: bool,
}

/// `doctor` options.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Profile (overrides the file and KYZLO_PROFILE).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
}

/// A profile on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The simulated venue (no network, no wallet).
    Paper,
    /// Devnet: real stand-in transactions priced from Jupiter's mainnet quotes.
    Devnet,
    /// Mainnet: real Jupiter swaps from a real wallet.
    Mainnet,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Paper => Profile::Paper,
            ProfileArg::Devnet => Profile::Devnet,
            ProfileArg::Mainnet => Profile::Mainnet,
        }
    }
}

/// `verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Number of seeded runs.
    #[arg(long, default_value_t = 1_000)]
    pub runs: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Knobs to turn off in every run, comma-separated (e.g. `crash0,forks,router-lies`):
    /// how a shrunk failure is replayed.
    #[arg(long, value_delimiter = ',')]
    pub without: Vec<String>,
    /// Do not shrink failing schedules.
    #[arg(long)]
    pub no_shrink: bool,
    /// With one run: print its timeline (lives, intents, attempts, landings, alerts).
    #[arg(long)]
    pub explain: bool,
    /// Shrink at most this many failures (each shrink reruns its world a few dozen times).
    #[arg(long, default_value_t = 3)]
    pub shrink_max: usize,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Nonce mode: the wallet has a durable nonce account and every attempt is built on
    /// it (with one more kill per world, around an exit's deadline and its cancel).
    #[arg(long)]
    pub nonce: bool,
}

/// `chaos` options.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Built-in scenario name or a scenario TOML file.
    #[arg(long, default_value = "bug-003")]
    pub scenario: String,
    /// Number of seeded runs.
    #[arg(long, default_value_t = 1_000)]
    pub runs: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write an HTML report with plots here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// kyzlo's wallet has a durable nonce account and builds every attempt on it.
    #[arg(long)]
    pub nonce: bool,
}

/// Where a running bot's API is.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The bot's API base URL (default: from the config's api.listen).
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for control endpoints (default: api.bearer_token, or KYZLO_API_TOKEN).
    #[arg(long, env = "KYZLO_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `halt` options.
#[derive(Debug, Args)]
pub struct HaltArgs {
    /// Where the running bot's API is.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Why trading is halted (journaled with the halt and sent in the alert).
    #[arg(long, default_value = "operator halt")]
    pub reason: String,
}

/// `resume` options.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Where the running bot's API is.
    #[command(flatten)]
    pub api: ApiArgs,
    /// The approval key (or KYZLO_APPROVAL_KEY).
    #[arg(long, env = "KYZLO_APPROVAL_KEY", hide_env_values = true)]
    pub approval_key: String,
}

/// `exit` options.
#[derive(Debug, Args)]
pub struct ExitArgs {
    /// Where the running bot's API is.
    #[command(flatten)]
    pub api: ApiArgs,
    /// The position's id (as `/status` shows it).
    pub position: u64,
}

/// `exits` options.
#[derive(Debug, Args)]
pub struct ExitsArgs {
    /// Where the running bot's API is.
    #[command(flatten)]
    pub api: ApiArgs,
    /// How many exits, newest first (1 to 1000).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `quote` options.
#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// Jupiter base URL (overrides the config).
    #[arg(long)]
    pub jupiter_url: Option<reqwest::Url>,
    /// Amount of the base token to sell, e.g. 1.5 (SOL), at most its decimal places.
    #[arg(long, default_value = "1")]
    pub amount: String,
    /// Slippage in bps.
    #[arg(long, default_value_t = 100)]
    pub slippage_bps: u16,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate and print the resolved configuration with secrets masked.
    Check(ConfigCheckArgs),
}

/// `config check` options.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Profile (overrides the file and KYZLO_PROFILE).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
}

/// A duration above zero in humantime's syntax (`90m`, `2h`, `1h 30m`, `600s`).
///
/// # Errors
/// humantime's message, or "must be above zero" / "at most 87600h".
pub fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    const TEN_YEARS: std::time::Duration = std::time::Duration::from_secs(87_600 * 3_600);
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be above zero".to_owned());
    }
    if d > TEN_YEARS {
        return Err("must be at most 87600h (ten years)".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        let table = [
            ("600s", Some(600.0)),
            ("90m", Some(5_400.0)),
            ("2h", Some(7_200.0)),
            ("1d", Some(86_400.0)),
            ("1h 30m", Some(5_400.0)),
            ("0s", None),
            ("-5m", None),
            ("abc", None),
            ("5q", None),
            ("NaNs", None),
        ];
        for (text, expect) in table {
            assert_eq!(
                positive_duration(text).ok().map(|d| d.as_secs_f64()),
                expect,
                "{text}"
            );
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
