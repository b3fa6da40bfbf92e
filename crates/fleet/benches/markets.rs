//! The tick time of one process running many markets: 1, 10 and 100 paper markets (each
//! its own generated market, simulated venue and journal), sharing one latency breaker per
//! dependency and one request budget per provider, as an instance runs them. One
//! iteration advances the market by 10 ms and ticks every market once (the executions a
//! tick starts run as tasks in between); every tick must read a price (a tick past the
//! market's end would be an error, cheap and not what is measured, so it fails the bench).
//!
//! Run: `cargo bench -p kyzlo-fleet --bench markets`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kyzlo_adapters_sim::faults::{FaultProfile, FaultSchedule};
use kyzlo_adapters_sim::market::{SimMarket, embedded};
use kyzlo_adapters_sim::venue::{SimVenue, SimWallet};
use kyzlo_application::bot::{Bot, BotPorts};
use kyzlo_application::clock::Clock;
use kyzlo_application::journal::MemoryJournal;
use kyzlo_application::ports::{Alert, AlertSink, PortError};
use kyzlo_config::{Config, File};
use kyzlo_domain::{Lamports, TokenAmount};

/// How far the market moves between two measured ticks.
const STEP: Duration = Duration::from_millis(10);

struct Quiet;

#[async_trait::async_trait]
impl AlertSink for Quiet {
    async fn send(&self, _: &Alert) -> Result<(), PortError> {
        Ok(())
    }
}

async fn markets(n: usize, config: &Config, clock: Clock) -> Vec<Bot> {
    let mut bots: Vec<Bot> = Vec::with_capacity(n);
    for i in 0..n {
        let seed = 100 + i as u64;
        let market = Arc::new(SimMarket::new(
            Arc::new(embedded(Duration::from_secs(24 * 3_600), seed)),
            clock,
            clock.now(),
        ));
        let venue = Arc::new(SimVenue::new(
            market.clone(),
            Arc::new(FaultSchedule::new(FaultProfile::default(), seed)),
            SimWallet {
                base: TokenAmount::ZERO,
                quote: config.paper.initial_quote,
                fee_lamports: Lamports::new(1_000_000_000),
            },
            clock,
            config.pair.pair,
        ));
        let shared = bots.first().map(Bot::shared);
        let bot = Bot::start_sharing(
            BotPorts {
                feed: market,
                router: venue.clone(),
                chain: venue.clone(),
                signer: venue.clone(),
                probe: venue.clone(),
                send_probe: venue,
                journal: Arc::new(MemoryJournal::new()),
                alerts: Arc::new(Quiet),
                metrics: Vec::new(),
                clock,
            },
            config.bot_settings(seed),
            shared.as_ref(),
        )
        .await
        .expect("a paper market starts");
        bots.push(bot);
    }
    bots
}

fn tick_time(c: &mut Criterion) {
    let config = Config::try_from(File::default()).expect("the default configuration");
    let interval = config.trading.tick_interval;
    let mut group = c.benchmark_group("process_tick");
    group.sample_size(20);
    for n in [1_usize, 10, 100] {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let clock = runtime.block_on(async { Clock::new() });
        let mut bots = runtime.block_on(markets(n, &config, clock));
        // Past the strategy's warm-up, so ticks decide entries and exits.
        runtime.block_on(async {
            for _ in 0..400 {
                tokio::time::advance(interval).await;
                for bot in &mut bots {
                    let _ = bot.tick().await;
                }
            }
        });
        group.bench_function(format!("{n}_markets"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        tokio::time::advance(STEP).await;
                        let started = Instant::now();
                        for bot in &mut bots {
                            let tick = bot.tick().await;
                            assert!(tick.is_ok(), "a tick failed: {tick:?}");
                        }
                        spent += started.elapsed();
                    }
                    spent
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, tick_time);
criterion_main!(benches);
