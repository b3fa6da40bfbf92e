//! `kyzlo paper`: the full bot, with the same services as live, on a simulated market,
//! chain and router, on virtual time. The paper wallet and the journal persist in the
//! data folder between runs.

use std::io::IsTerminal;
use std::path::Path;

use kyzlo_adapters_journal::DataDir;
use kyzlo_live::journal::{OpenJournal, paper_wallet};
use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_sim::faults::{FaultProfile, FaultSchedule, ProfileName};
use kyzlo_adapters_sim::market::{PricePath, SimMarket, embedded, load_csv};
use kyzlo_adapters_sim::report::{EquityPoint, PaperReport, ReportInputs};
use kyzlo_adapters_sim::summary::PaperSummary;
use kyzlo_adapters_sim::venue::{PaperWallet, SimVenue, SimWallet};
use kyzlo_domain::{Lamports, Price, TokenAmount};

use kyzlo_config::Config;

use crate::cli::PaperArgs;
use crate::error::AppError;
use crate::wiring::{Adapters, launch};

/// The paper wallet's file in the data directory.
const WALLET_FILE: &str = "paper-wallet.json";

/// Runs `kyzlo paper`.
///
/// # Errors
/// [`AppError`] for bad arguments, unreadable files, or a failed start-up.
pub fn run(config: &Config, args: &PaperArgs) -> Result<String, AppError> {
    if !(args.speed == 0.0 || (0.01..=1e6).contains(&args.speed)) {
        return Err(AppError::Usage(format!(
            "--speed {}: expected 0 (as fast as possible) or a factor from 0.01 to 1000000",
            args.speed
        )));
    }
    let seed = args.seed.unwrap_or(config.paper.seed);
    let faults = match &args.faults {
        Some(name) => name
            .parse::<ProfileName>()
            .map_err(|e| AppError::Usage(format!("--faults {e}")))?
            .profile(),
        None => config.paper.faults.clone(),
    };
    let path = match &args.prices {
        Some(file) => {
            load_csv(file, config.paper.csv).map_err(|e| AppError::Usage(e.to_string()))?
        }
        None => embedded(config.paper.duration, seed),
    };
    let duration = args
        .duration
        .map_or(path.duration(), |d| d.min(path.duration()));
    if args.duration.is_some_and(|d| d > duration) {
        say!(
            "note: the market covers {:.1} h: the run stops there",
            duration.as_secs_f64() / 3_600.0
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    // Caught before the data dir is claimed: a stop that early is still a graceful one.
    runtime.block_on(async { kyzlo_live::signals::catch() });
    let mut dir = DataDir::claim(&config.data_dir)?;
    if args.fresh
        && matches!(
            config.journal,
            kyzlo_config::JournalBackend::Postgres { .. }
        )
    {
        return Err(AppError::Usage(
            "--fresh starts a new SQLite journal; the PostgreSQL journal (journal.url) is kept: close the wallet's positions first, or use another wallet".into(),
        ));
    }
    if args.fresh {
        for (from, to) in dir.start_over(&[WALLET_FILE])? {
            say!("moved {} aside to {}", from.display(), to.display());
        }
    }
    let opened = runtime.block_on(OpenJournal::open(config, &dir, &paper_wallet(config)))?;
    let wallet_path = dir.path().join(WALLET_FILE);
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| dir.path().join("paper-report.html"));
    runtime.block_on(paper(
        config,
        args,
        seed,
        faults,
        Arc::new(path),
        duration,
        opened,
        &wallet_path,
        &report_path,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn paper(
    config: &Config,
    args: &PaperArgs,
    seed: u64,
    faults: FaultProfile,
    path: Arc<PricePath>,
    duration: Duration,
    opened: OpenJournal,
    wallet_path: &Path,
    report_path: &Path,
) -> Result<String, AppError> {
    let initial = SimWallet {
        base: TokenAmount::ZERO,
        quote: config.paper.initial_quote,
        fee_lamports: Lamports::new(1_000_000_000),
    };
    let wallet = PaperWallet::open(wallet_path, initial)
        .map_err(|e| AppError::Startup(format!("paper wallet: {e}")))?;
    let clock = kyzlo_live::unix_clock();
    let market = Arc::new(SimMarket::new(Arc::clone(&path), clock, clock.now()));
    let schedule = Arc::new(FaultSchedule::new(faults, seed));
    let mut venue = SimVenue::paper(market.clone(), schedule, wallet, clock, config.pair.pair)
        .map_err(|e| AppError::Startup(format!("paper venue: {e}")))?;
    // Paper mode simulates the configured nonce account (its authority the wallet).
    if let Some(nonce) = config.execution.exit.nonce {
        venue = venue.with_nonce_account(nonce.account);
    }
    let venue = Arc::new(venue);
    // With SOL as the base, the venue keeps the SOL for fees in the same balance.
    let start_wallet = venue.wallet();
    let fees_before = venue.fees_paid();
    let (journal, history) = (opened.journal.clone(), opened.journal.clone());
    let adapters = Adapters {
        feed: market.clone(),
        router: venue.clone(),
        chain: venue.clone(),
        signer: venue.clone(),
        probe: venue.clone(),
        send_probe: venue.clone(),
        journal,
        clock,
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    opened.stop_on_loss(stop.clone());
    let launched = launch(
        config,
        config.bot_settings(seed),
        adapters,
        shutdown.clone(),
    )
    .await?;
    let totals = launched.bot.totals();
    let control = launched.bot.control();
    let progress = progress_bar(duration);
    let equity = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ticker = {
        let progress = progress.clone();
        let stop = stop.clone();
        let (venue, market, equity) = (venue.clone(), market.clone(), equity.clone());
        tokio::spawn(async move {
            let step = (duration / 1_000).max(Duration::from_secs(1));
            let started = clock.now();
            loop {
                let elapsed = clock.now().saturating_since(started);
                let (w, price) = (venue.wallet(), market.price_now().get());
                if let Ok(mut e) = equity.lock() {
                    e.push(EquityPoint {
                        at_s: elapsed.as_secs_f64(),
                        price,
                        value: w.quote.get() as f64 / 1e6 + w.base.get() as f64 / 1e9 * price,
                    });
                }
                tokio::time::sleep(step).await;
                let elapsed = clock.now().saturating_since(started);
                progress.set_position(elapsed.as_secs().min(duration.as_secs()));
                if elapsed >= duration {
                    let _ = stop.send(true);
                    return;
                }
            }
        })
    };
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::live::wait_for_signal().await;
            say!("interrupted: stopping entries, letting running exits finish");
            let _ = stop.send(true);
        })
    };
    let pacer = (args.speed > 0.0).then(|| tokio::spawn(pace(args.speed)));
    let run_started = clock.now();
    let orchestrator = launched.run(shutdown, Duration::from_secs(120)).await;
    let simulated = clock.now().saturating_since(run_started).min(duration);
    ticker.abort();
    ctrl_c.abort();
    if let Some(p) = pacer {
        p.abort();
    }
    progress.finish_and_clear();
    let last = orchestrator
        .last_price()
        .map_or_else(|| market.price_now().get(), Price::get);
    let summary = PaperSummary {
        simulated,
        first_price: path.price_at(Duration::ZERO).get(),
        last_price: last,
        start: start_wallet,
        end: venue.wallet(),
        totals: totals.summary(),
        open_positions: orchestrator.positions().len(),
        trading_state: control.state(),
        fees: Lamports::new(venue.fees_paid().get().saturating_sub(fees_before.get())),
        slippage_quote: venue.slippage_paid(),
    };
    let exits = history
        .exit_history(usize::MAX)
        .await
        .map_err(|e| AppError::Startup(format!("journal: {e}")))?;
    opened.finish().await?;
    let report = PaperReport::new(ReportInputs {
        summary: &summary,
        seed,
        config: config.file.masked_toml()?,
        equity: equity.lock().map(|e| e.clone()).unwrap_or_default(),
        exits,
        landings: venue.landings(),
        start: market.start,
        price_at: &|at| market.price_at(at).get(),
    });
    let mut out = summary.render();
    std::fs::write(report_path, report.to_html()).map_err(|source| AppError::Io {
        path: report_path.to_owned(),
        source,
    })?;
    out.push_str(&format!("report: {}\n", report_path.display()));
    if args.json {
        out = report
            .to_json()
            .map_err(|e| AppError::Startup(format!("report: {e}")))?;
        out.push('\n');
    }
    Ok(out)
}

fn progress_bar(duration: Duration) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(duration.as_secs());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} paper [{bar:40}] {pos}/{len} s of market {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Paces virtual time at `speed` times real time: a real sleep (which holds tokio's
/// paused clock still) then the same span times `speed` of virtual time.
pub async fn pace(speed: f64) {
    let real = Duration::from_millis(20);
    loop {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(real)).await;
        tokio::time::sleep(real.mul_f64(speed)).await;
    }
}
