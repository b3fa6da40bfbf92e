//! `kyzlo run` (devnet or mainnet) and `kyzlo quote`: the live adapters. Devnet sends real
//! stand-in transactions priced from Jupiter's mainnet quotes; mainnet trades through
//! Jupiter from the configured wallet.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_devnet::DevnetVenue;
use kyzlo_adapters_journal::DataDir;
use kyzlo_adapters_jupiter::JupiterClient;
use kyzlo_adapters_solana::{KeypairSigner, SolanaChain};
use kyzlo_application::ports::{Balances, Signer as _, WalletAddress};
use kyzlo_domain::{Lamports, TokenAmount};
use kyzlo_live::journal::OpenJournal;

use crate::cli::{NonceCommand, QuoteArgs, RunArgs};
use crate::error::AppError;
use crate::wiring::{Adapters, launch};
use kyzlo_config::{Config, Profile};

fn jupiter(
    config: &Config,
    wallet: WalletAddress,
    base_url: Option<&reqwest::Url>,
) -> Result<JupiterClient, AppError> {
    let (client, note) =
        kyzlo_live::jupiter(config, wallet, base_url).map_err(AppError::Startup)?;
    if let Some(note) = note {
        say!("{note}");
    }
    Ok(client)
}

fn solana(config: &Config, wallet: WalletAddress, sol_only: bool) -> Result<SolanaChain, AppError> {
    kyzlo_live::solana(config, wallet, sol_only).map_err(AppError::Startup)
}

fn signer(config: &Config) -> Result<Arc<KeypairSigner>, AppError> {
    Ok(kyzlo_live::signer(config)?)
}

/// Runs `kyzlo doctor`: the live configuration's checks against the real endpoints.
///
/// # Errors
/// [`AppError::Usage`] for the paper profile; [`AppError::Failed`] with the report when
/// any check failed.
pub fn doctor(config: &Config) -> Result<String, AppError> {
    if config.profile == Profile::Paper {
        return Err(AppError::Usage(
            "`doctor` checks a devnet or mainnet configuration: pass --profile devnet|mainnet"
                .into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    let report = runtime.block_on(kyzlo_live::doctor::run(config));
    let text = report.text(config.profile);
    if report.failures() > 0 {
        Err(AppError::Failed(text))
    } else {
        Ok(text)
    }
}

/// What `run` builds from the configuration before its first network call (the signer
/// from its keypair file, the Jupiter and Solana clients), built and dropped: `config
/// check` runs it so that it accepts exactly what `run` accepts.
///
/// # Errors
/// [`AppError`] naming what `run` would refuse.
pub fn check(config: &Config) -> Result<(), AppError> {
    if config.profile == Profile::Paper {
        return Ok(());
    }
    kyzlo_live::wallet::check_supported(config)?;
    let wallet = signer(config)?.address();
    jupiter(config, wallet, None)?;
    solana(config, wallet, config.profile == Profile::Devnet)?;
    Ok(())
}

/// Runs `kyzlo run` until Ctrl-C or SIGTERM.
///
/// # Errors
/// [`AppError`] for a bad configuration, a refused keypair, or a failed start-up.
pub fn run(config: &Config, args: &RunArgs) -> Result<String, AppError> {
    if config.profile == Profile::Paper {
        return Err(AppError::Usage(
            "`run` trades on devnet or mainnet: pass --profile devnet|mainnet (paper mode is `kyzlo paper`)".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    kyzlo_live::wallet::check_supported(config)?;
    runtime.block_on(async {
        kyzlo_live::signals::catch();
        let signer = signer(config)?;
        let wallet = signer.address();
        let chain = Arc::new(solana(config, wallet, config.profile == Profile::Devnet)?);
        if config.profile == Profile::Mainnet {
            kyzlo_live::doctor::check_mints(config).await.map_err(AppError::Startup)?;
        }
        let jup = Arc::new(jupiter(config, wallet, None)?);
        let mut dir = DataDir::claim(&config.data_dir)?;
        if args.fresh && matches!(config.journal, kyzlo_config::JournalBackend::Postgres { .. }) {
            return Err(AppError::Usage(
                "--fresh starts a new SQLite journal; the PostgreSQL journal (journal.url) is kept: close the wallet's positions first, or use another wallet".into(),
            ));
        }
        if args.fresh {
            for (from, to) in dir.start_over(&[DEVNET_WALLET])? {
                say!("moved {} aside to {}", from.display(), to.display());
            }
        }
        let opened = OpenJournal::open(config, &dir, &kyzlo_live::journal::live_wallet(wallet)).await?;
        let journal = opened.journal.clone();
        let adapters = match config.profile {
            Profile::Devnet => {
                let initial = Balances {
                    base: TokenAmount::ZERO,
                    quote: config.paper.initial_quote,
                    fee_lamports: Lamports::new(0),
                };
                let assembler = kyzlo_live::assembler(config, chain.clone(), wallet);
                let venue = Arc::new(
                    DevnetVenue::open(
                        chain.clone(),
                        assembler,
                        chain.clone(),
                        chain,
                        signer,
                        jup.clone(),
                        &dir.path().join(DEVNET_WALLET),
                        initial,
                    )
                    .map_err(|e| AppError::Startup(format!("devnet venue: {e}")))?,
                );
                venue
                    .prepare_table()
                    .await
                    .map_err(|e| AppError::Startup(format!("devnet venue: {e}")))?;
                Adapters {
                    feed: jup,
                    router: venue.clone(),
                    chain: venue.clone(),
                    signer: venue.clone(),
                    probe: venue.clone(),
                    send_probe: venue,
                    journal,
                    clock: kyzlo_live::unix_clock(),
                }
            }
            Profile::Mainnet | Profile::Paper => Adapters {
                feed: jup.clone(),
                router: kyzlo_live::router(config, (*jup).clone(), chain.clone(), wallet),
                chain: chain.clone(),
                signer,
                probe: chain.clone(),
                send_probe: kyzlo_live::send_probe(config, chain),
                journal,
                clock: kyzlo_live::unix_clock(),
            },
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        opened.stop_on_loss(stop.clone());
        let mut settings = config.bot_settings(kyzlo_live::seed_now());
        settings.router_budget = config.jupiter.budget.clone();
        settings.rpc_budget = config.rpc.budget.clone();
        // The devnet stand-in keeps the pair's balances itself: its base is not the SOL
        // that pays the fees, so a full exit keeps no fee reserve out of it.
        if config.profile == Profile::Devnet {
            settings.pair.native_base = false;
        }
        let launched = launch(config, settings, adapters, shutdown.clone()).await?;
        let control = launched.bot.control();
        let totals = launched.bot.totals();
        tokio::spawn(async move {
            wait_for_signal().await;
            say!("stopping: no new trades; letting running exits finish");
            let _ = stop.send(true);
        });
        say!("kyzlo running on {} (Ctrl-C to stop)", config.profile.as_str());
        let orchestrator = launched.run(shutdown, Duration::from_secs(90)).await;
        opened.finish().await?;
        let t = totals.summary();
        Ok(format!(
            "stopped: {} entries, {} exits closed, {} failed, {} past the deadline; {} open positions; trading {}\n",
            t.entries_filled,
            t.exits_first_attempt + t.exits_required_retry,
            t.exits_failed,
            t.exits_deadline_exceeded,
            orchestrator.positions().len(),
            control.state().as_str()
        ))
    })
}

/// The devnet stand-in's virtual balances in the data directory.
const DEVNET_WALLET: &str = "devnet-wallet.json";

/// Waits for Ctrl-C, SIGTERM or SIGHUP (caught since [`kyzlo_live::signals::catch`]):
/// each stops the bot gracefully. kyzlo reloads nothing on SIGHUP.
pub async fn wait_for_signal() {
    if kyzlo_live::signals::wait().await == kyzlo_live::signals::Stop::Hangup {
        say!(
            "SIGHUP: stopping gracefully (kyzlo reloads nothing on SIGHUP; restart it to apply a new configuration)"
        );
    }
}

/// Runs `kyzlo wallet nonce create|show` ([`kyzlo_live::wallet::run`]).
///
/// # Errors
/// [`AppError`] for a refused configuration or command, or a chain failure.
pub fn nonce(path: Option<&std::path::Path>, command: NonceCommand) -> Result<String, AppError> {
    use kyzlo_live::wallet::{Confirmation, NonceAction, WalletError};
    let action = match command {
        NonceCommand::Create { yes } if yes => NonceAction::Create(Confirmation::Given),
        NonceCommand::Create { .. } => NonceAction::Create(Confirmation::Ask),
        NonceCommand::Show => NonceAction::Show,
    };
    let config = kyzlo_config::load_valid(path, None)?;
    kyzlo_live::wallet::run(&config, path, action).map_err(|e| match e {
        WalletError::Config(e) => AppError::Config(e),
        WalletError::Usage(text) => AppError::Usage(text),
        other => AppError::Remote(other.to_string()),
    })
}

/// Runs `kyzlo quote` ([`kyzlo_live::quote::run`]).
///
/// # Errors
/// [`AppError`] for bad arguments or a failed quote (with its class).
pub fn quote(config: &Config, args: &QuoteArgs) -> Result<String, AppError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    runtime
        .block_on(kyzlo_live::quote::run(
            config,
            &args.amount,
            args.slippage_bps,
            args.jupiter_url.as_ref(),
        ))
        .map_err(|e| match e {
            kyzlo_live::quote::QuoteError::Usage(text) => AppError::Usage(text),
            kyzlo_live::quote::QuoteError::Remote(text) => AppError::Remote(text),
        })
}
