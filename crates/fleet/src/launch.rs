//! How an instance starts one market's bot: [`PaperLauncher`] on the simulated venue,
//! [`LiveLauncher`] on devnet (the stand-in) or mainnet. Each builds the market's own
//! adapters from its configuration ([`Config::for_market`]) and starts the bot on the
//! journal it is given, sharing the process's latency breakers and request budgets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_adapters_devnet::DevnetVenue;
use kyzlo_adapters_sim::faults::{FaultProfile, FaultSchedule};
use kyzlo_adapters_sim::market::{SimMarket, embedded};
use kyzlo_adapters_sim::venue::{PaperWallet, SimVenue, SimWallet};
use kyzlo_application::bot::{Bot, BotPorts, BotSettings, SharedDependencies};
use kyzlo_application::clock::Clock;
use kyzlo_application::journal::Journal;
use kyzlo_application::metrics::MetricsSink;
use kyzlo_application::ports::{AlertSink, Balances, Signer as _};
use kyzlo_config::{Config, Profile};
use kyzlo_domain::{Lamports, TokenAmount};

use crate::runner::MarketPlan;

/// Starts one market's bot.
#[async_trait]
pub trait Launcher: Send + Sync + 'static {
    /// Builds `plan`'s adapters and starts its bot on `journal` (reconciled, not yet
    /// ticking), sharing `shared` when another market of the process runs.
    ///
    /// # Errors
    /// What could not be built or started, as text.
    async fn start(
        &self,
        plan: &MarketPlan,
        journal: Arc<dyn Journal>,
        shared: Option<&SharedDependencies>,
    ) -> Result<Bot, String>;
}

/// What every market of a process shares besides its breakers and budgets.
#[derive(Clone)]
pub struct Common {
    /// The configuration (every market's).
    pub config: Config,
    /// Where alerts go.
    pub alerts: Arc<dyn AlertSink>,
    /// Metric sinks besides each bot's own totals.
    pub metrics: Vec<Arc<dyn MetricsSink>>,
    /// The services' clock.
    pub clock: Clock,
    /// The folder each market keeps its files under (`<dir>/markets/<name>/`).
    pub dir: PathBuf,
}

impl Common {
    fn market(&self, plan: &MarketPlan) -> Result<(Config, PathBuf), String> {
        let config = self
            .config
            .for_market(plan.index)
            .ok_or_else(|| format!("market {} is not configured", plan.name))?;
        let dir = self.dir.join("markets").join(&plan.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok((config, dir))
    }

    async fn start(
        &self,
        ports: (Arc<dyn Journal>, Adapters),
        settings: BotSettings,
        shared: Option<&SharedDependencies>,
    ) -> Result<Bot, String> {
        let (journal, a) = ports;
        Bot::start_sharing(
            BotPorts {
                feed: a.feed,
                router: a.router,
                chain: a.chain,
                signer: a.signer,
                probe: a.probe,
                send_probe: a.send_probe,
                journal,
                alerts: self.alerts.clone(),
                metrics: self.metrics.clone(),
                clock: self.clock,
            },
            settings,
            shared,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

struct Adapters {
    feed: Arc<dyn kyzlo_application::ports::PriceFeed>,
    router: Arc<dyn kyzlo_application::ports::SwapRouter>,
    chain: Arc<dyn kyzlo_application::ports::Chain>,
    signer: Arc<dyn kyzlo_application::ports::Signer>,
    probe: Arc<dyn kyzlo_application::ports::HealthProbe>,
    send_probe: Arc<dyn kyzlo_application::ports::HealthProbe>,
}

/// Paper markets: each its own generated market (the paper seed plus its index), fault
/// schedule and paper wallet file (`<dir>/markets/<name>/paper-wallet.json`).
pub struct PaperLauncher {
    /// What the markets share.
    pub common: Common,
    /// The paper run's seed.
    pub seed: u64,
    /// The faults of the simulated venue.
    pub faults: FaultProfile,
    /// How much market each generates.
    pub duration: Duration,
}

#[async_trait]
impl Launcher for PaperLauncher {
    async fn start(
        &self,
        plan: &MarketPlan,
        journal: Arc<dyn Journal>,
        shared: Option<&SharedDependencies>,
    ) -> Result<Bot, String> {
        let (config, dir) = self.common.market(plan)?;
        let seed = self.seed.wrapping_add(plan.index as u64);
        let clock = self.common.clock;
        let market = Arc::new(SimMarket::new(
            Arc::new(embedded(self.duration, seed)),
            clock,
            clock.now(),
        ));
        let wallet = PaperWallet::open(
            &paper_wallet_file(&dir),
            SimWallet {
                base: TokenAmount::ZERO,
                quote: config.paper.initial_quote,
                fee_lamports: Lamports::new(1_000_000_000),
            },
        )
        .map_err(|e| format!("paper wallet: {e}"))?;
        let venue = Arc::new(
            SimVenue::paper(
                market.clone(),
                Arc::new(FaultSchedule::new(self.faults.clone(), seed)),
                wallet,
                clock,
                config.pair.pair,
            )
            .map_err(|e| format!("paper venue: {e}"))?,
        );
        let adapters = Adapters {
            feed: market,
            router: venue.clone(),
            chain: venue.clone(),
            signer: venue.clone(),
            probe: venue.clone(),
            send_probe: venue,
        };
        self.common
            .start((journal, adapters), config.bot_settings(seed), shared)
            .await
    }
}

/// A paper market's wallet file in its folder.
#[must_use]
pub fn paper_wallet_file(dir: &Path) -> PathBuf {
    dir.join("paper-wallet.json")
}

/// Devnet and mainnet markets: each its own signer (its keypair file), Solana client and
/// Jupiter client; on devnet its stand-in's balances in
/// `<dir>/markets/<name>/devnet-wallet.json`.
pub struct LiveLauncher {
    /// What the markets share.
    pub common: Common,
}

#[async_trait]
impl Launcher for LiveLauncher {
    async fn start(
        &self,
        plan: &MarketPlan,
        journal: Arc<dyn Journal>,
        shared: Option<&SharedDependencies>,
    ) -> Result<Bot, String> {
        let (config, dir) = self.common.market(plan)?;
        let signer = kyzlo_live::signer(&config).map_err(|e| e.to_string())?;
        let wallet = signer.address();
        let devnet = config.profile == Profile::Devnet;
        let chain = Arc::new(kyzlo_live::solana(&config, wallet, devnet)?);
        let (jupiter, _) = kyzlo_live::jupiter(&config, wallet, None)?;
        let jupiter = Arc::new(jupiter);
        let adapters = if devnet {
            let venue = Arc::new(
                DevnetVenue::open(
                    chain.clone(),
                    kyzlo_live::assembler(&config, chain.clone(), wallet),
                    chain.clone(),
                    chain,
                    signer,
                    jupiter.clone(),
                    &dir.join("devnet-wallet.json"),
                    Balances {
                        base: TokenAmount::ZERO,
                        quote: config.paper.initial_quote,
                        fee_lamports: Lamports::new(0),
                    },
                )
                .map_err(|e| format!("devnet venue: {e}"))?,
            );
            venue
                .prepare_table()
                .await
                .map_err(|e| format!("devnet venue: {e}"))?;
            Adapters {
                feed: jupiter,
                router: venue.clone(),
                chain: venue.clone(),
                signer: venue.clone(),
                probe: venue.clone(),
                send_probe: venue,
            }
        } else {
            kyzlo_live::doctor::check_mints(&config).await?;
            Adapters {
                feed: jupiter.clone(),
                router: kyzlo_live::router(&config, (*jupiter).clone(), chain.clone(), wallet),
                chain: chain.clone(),
                signer,
                probe: chain.clone(),
                send_probe: kyzlo_live::send_probe(&config, chain),
            }
        };
        let mut settings = config.bot_settings(kyzlo_live::seed_now());
        settings.router_budget = config.jupiter.budget.clone();
        settings.rpc_budget = config.rpc.budget.clone();
        if devnet {
            // The stand-in keeps the pair's balances itself: no fee reserve out of them.
            settings.pair.native_base = false;
        }
        self.common
            .start((journal, adapters), settings, shared)
            .await
    }
}
