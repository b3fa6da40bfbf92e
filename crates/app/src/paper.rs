//! `kyzlo paper`: the full bot, with the same services as live, on a simulated market,
//! chain and router, on virtual time. The paper wallet and the journal persist in the
//! data folder between runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kyzlo_adapters_sim::faults::{FaultProfile, FaultSchedule, ProfileName};
use kyzlo_adapters_sim::market::{PricePath, SimMarket, embedded, load_csv};
use kyzlo_adapters_sim::venue::{PaperWallet, SimVenue, SimWallet};
use kyzlo_application::metrics::MetricsSummary;
use kyzlo_domain::{Lamports, Price, TokenAmount};

use kyzlo_config::Config;

use crate::cli::PaperArgs;
use crate::error::AppError;
use crate::wiring::{Adapters, launch};

/// What a paper run did.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperSummary {
    /// Market time simulated.
    pub simulated: Duration,
    /// Prices at the start and end.
    pub first_price: f64,
    /// Last price.
    pub last_price: f64,
    /// Wallet before.
    pub start: SimWallet,
    /// Wallet after.
    pub end: SimWallet,
    /// Service totals.
    pub totals: MetricsSummary,
    /// Positions still open at the end.
    pub open_positions: usize,
    /// Trading state at the end.
    pub trading_state: String,
    /// Network and priority fees paid by every landed transaction.
    pub fees: Lamports,
}

impl PaperSummary {
    fn value(&self, wallet: &SimWallet, price: f64) -> f64 {
        wallet.quote.get() as f64 / 1e6 + wallet.base.get() as f64 / 1e9 * price
    }

    /// Profit and loss in quote units, holdings marked at the last price.
    #[must_use]
    pub fn pnl(&self) -> f64 {
        self.value(&self.end, self.last_price) - self.value(&self.start, self.last_price)
    }

    /// The summary as text.
    #[must_use]
    pub fn render(&self) -> String {
        let t = &self.totals;
        let mut out = String::new();
        out.push_str(&format!(
            "paper run: {:.1} h of market, price {:.3} -> {:.3}\n",
            self.simulated.as_secs_f64() / 3_600.0,
            self.first_price,
            self.last_price
        ));
        out.push_str(&format!(
            "trades: {} entries filled ({} failed, {} refused), {} exits closed ({} on the first attempt, {} after a retry), {} failed, {} past the deadline\n",
            t.entries_filled,
            t.entries_failed,
            t.entries_refused,
            t.exits_first_attempt + t.exits_required_retry,
            t.exits_first_attempt,
            t.exits_required_retry,
            t.exits_failed,
            t.exits_deadline_exceeded
        ));
        let by_reason: Vec<String> = t
            .exits_closed_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push_str(&format!(
            "exits by reason: {}\n",
            if by_reason.is_empty() {
                "none".to_owned()
            } else {
                by_reason.join(", ")
            }
        ));
        out.push_str(&format!(
            "attempts: {} exit transactions sent; ticks {} ({} failed)\n",
            t.exit_attempts_sent, t.ticks, t.tick_errors
        ));
        out.push_str(&format!(
            "halts: {} (exit breaker trips {}); trading now {}\n",
            t.halts, t.circuit_breaker_trips, self.trading_state
        ));
        out.push_str(&format!(
            "wallet: {:.4} SOL + {:.2} USDC -> {:.4} SOL + {:.2} USDC; fees {:.6} SOL; open positions {}\n",
            self.start.base.get() as f64 / 1e9,
            self.start.quote.get() as f64 / 1e6,
            self.end.base.get() as f64 / 1e9,
            self.end.quote.get() as f64 / 1e6,
            self.fees.get() as f64 / 1e9,
            self.open_positions
        ));
        out.push_str(&format!(
            "PnL: {:+.2} USDC (holdings at the last price)\n",
            self.pnl()
        ));
        out
    }
}

fn move_aside(path: &Path) -> Result<(), AppError> {
    if path.exists() {
        let mut n = 1;
        let aside = loop {
            let candidate = PathBuf::from(format!("{}.old-{n}", path.display()));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        std::fs::rename(path, &aside).map_err(|source| AppError::Io {
            path: path.to_owned(),
            source,
        })?;
        eprintln!("moved {} aside to {}", path.display(), aside.display());
    }
    Ok(())
}

/// Runs `kyzlo paper`.
///
/// # Errors
/// [`AppError`] for bad arguments, unreadable files, or a failed start-up.
pub fn run(config: &Config, args: &PaperArgs) -> Result<PaperSummary, AppError> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        return Err(AppError::Usage(format!(
            "--speed {}: expected 0 (as fast as possible) or a positive factor",
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
        Some(file) => load_csv(file).map_err(|e| AppError::Usage(e.to_string()))?,
        None => embedded(config.paper.duration, seed),
    };
    let duration = args
        .duration
        .map_or(path.duration(), |d| d.min(path.duration()));
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| AppError::Io {
        path: data_dir.clone(),
        source,
    })?;
    let journal_path = data_dir.join("journal.db");
    let wallet_path = data_dir.join("paper-wallet.json");
    if args.fresh {
        move_aside(&journal_path)?;
        move_aside(&wallet_path)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| AppError::Startup(format!("runtime: {e}")))?;
    runtime.block_on(paper(
        config,
        args,
        seed,
        faults,
        Arc::new(path),
        duration,
        &journal_path,
        &wallet_path,
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
    journal_path: &Path,
    wallet_path: &Path,
) -> Result<PaperSummary, AppError> {
    let initial = SimWallet {
        base: TokenAmount::ZERO,
        quote: config.paper.initial_quote,
        fee_lamports: Lamports::new(1_000_000_000),
    };
    let wallet = PaperWallet::open(wallet_path, initial)
        .map_err(|e| AppError::Startup(format!("paper wallet: {e}")))?;
    let clock = crate::wiring::unix_clock();
    let market = Arc::new(SimMarket::new(Arc::clone(&path), clock, clock.now()));
    let schedule = Arc::new(FaultSchedule::new(faults, seed));
    let venue = Arc::new(
        SimVenue::paper(market.clone(), schedule, wallet, clock, config.pair.pair)
            .map_err(|e| AppError::Startup(format!("paper venue: {e}")))?,
    );
    // With SOL as the base, the venue keeps the SOL for fees in the same balance.
    let start_wallet = venue.wallet();
    let fees_before = venue.fees_paid();
    let journal = Arc::new(
        kyzlo_adapters_journal::SqliteJournal::open(journal_path)
            .map_err(|e| AppError::Startup(format!("journal: {e}")))?,
    );
    let adapters = Adapters {
        feed: market.clone(),
        router: venue.clone(),
        chain: venue.clone(),
        signer: venue.clone(),
        probe: venue.clone(),
        journal,
        clock,
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
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
    let ticker = {
        let progress = progress.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let step = (duration / 200).max(Duration::from_secs(1));
            let started = clock.now();
            loop {
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
            eprintln!("interrupted: stopping entries, letting running exits finish");
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
    Ok(PaperSummary {
        simulated,
        first_price: path.price_at(Duration::ZERO).get(),
        last_price: last,
        start: start_wallet,
        end: venue.wallet(),
        totals: totals.summary(),
        open_positions: orchestrator.positions().len(),
        trading_state: control.state().as_str().to_owned(),
        fees: Lamports::new(venue.fees_paid().get().saturating_sub(fees_before.get())),
    })
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
async fn pace(speed: f64) {
    let real = Duration::from_millis(20);
    loop {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(real)).await;
        tokio::time::sleep(real.mul_f64(speed)).await;
    }
}
