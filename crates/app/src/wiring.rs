//! Wiring: from adapters and a validated configuration to a started
//! [`Bot`](kyzlo_application::bot::Bot) with its telemetry. The same code starts the paper
//! bot and the live one; only the adapters differ.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_telemetry::{
    ApiConfig, PrometheusMetrics, RecentAlerts, Telegram, TelegramConfig,
};
use kyzlo_application::bot::{Bot, BotPorts, BotSettings};
use kyzlo_application::clock::Clock;
use kyzlo_application::journal::Journal;
use kyzlo_application::orchestrator::Orchestrator;
use kyzlo_application::ports::{Chain, HealthProbe, PriceFeed, Signer, SwapRouter};

use crate::error::AppError;
use kyzlo_config::Config;

/// The adapters a bot runs on.
pub struct Adapters {
    pub feed: Arc<dyn PriceFeed>,
    /// Quotes and swaps.
    pub router: Arc<dyn SwapRouter>,
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// The wallet's signer.
    pub signer: Arc<dyn Signer>,
    /// The chain's health probe (the RPC reads' breaker recovers by it).
    pub probe: Arc<dyn HealthProbe>,
    /// A probe of the send path that sends nothing (the RPC sends' breaker recovers by
    /// it).
    pub send_probe: Arc<dyn HealthProbe>,
    /// The durable journal.
    pub journal: Arc<dyn Journal>,
    /// The services' clock.
    pub clock: Clock,
}

/// A bot started with its telemetry: alerts routed to the log and webhooks, Prometheus
/// metrics, and the operator API when `api.listen` is set.
pub struct Launched {
    /// The bot, ready to run.
    pub bot: Bot,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Launched {
    /// Runs the bot until `shutdown`, then stops the API and the alert worker.
    pub async fn run(
        self,
        shutdown: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> Orchestrator {
        let orchestrator = self.bot.run(shutdown, grace).await;
        for task in self.tasks {
            task.abort();
        }
        orchestrator
    }
}

/// Starts the bot over `adapters` with alerts, metrics and the operator API.
///
/// # Errors
/// [`AppError`] for a bad webhook URL, an API that cannot bind, or a failed start-up.
pub async fn launch(
    config: &Config,
    settings: BotSettings,
    adapters: Adapters,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Launched, AppError> {
    let prometheus = Arc::new(PrometheusMetrics::new());
    let recent = Arc::new(RecentAlerts::default());
    let telegram = config
        .alerts
        .telegram
        .as_ref()
        .map(|t| {
            Telegram::new(TelegramConfig {
                api_url: t.api_url.to_string(),
                token: t.token.expose().to_owned(),
                chats: t.chats.clone(),
            })
        })
        .transpose()
        .map_err(|e| AppError::Startup(format!("telegram: {e}")))?;
    let (alerts, worker) = crate::alerts::alert_sink(
        config,
        prometheus.alert_counters(),
        recent.clone(),
        telegram.clone(),
    )?;
    let mut tasks = vec![tokio::spawn(worker.run())];
    let bot = Bot::start(
        BotPorts {
            feed: adapters.feed,
            router: adapters.router,
            chain: adapters.chain,
            signer: adapters.signer,
            probe: adapters.probe,
            send_probe: adapters.send_probe,
            journal: adapters.journal,
            alerts,
            metrics: vec![prometheus.clone()],
            clock: adapters.clock,
        },
        settings,
    )
    .await?;
    prometheus.observe(&bot.guard(), &bot.exits());
    if let Some(telegram) = telegram {
        tasks.push(tokio::spawn(
            telegram.run_commands(bot.operator(), shutdown.clone()),
        ));
    }
    if let Some(listen) = config.api.listen {
        let api_config = ApiConfig {
            listen,
            bearer_token: config
                .api
                .bearer_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            recent_alerts: recent,
        };
        let (task, addr) =
            kyzlo_adapters_telemetry::serve(api_config, bot.operator(), prometheus, shutdown)
                .await
                .map_err(|e| AppError::Startup(format!("operator API: {e}")))?;
        tasks.push(tokio::spawn(async move {
            if let Ok(Err(e)) = task.await {
                tracing::error!(error = %e, "operator API stopped");
            }
        }));
        say!("operator API listening on http://{addr}");
    }
    Ok(Launched { bot, tasks })
}
