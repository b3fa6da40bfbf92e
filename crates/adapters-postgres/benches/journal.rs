//! The journal writes a trading loop makes most, on PostgreSQL and on SQLite side by side:
//! `record_attempt` (written before every send, so on the path to the chain) and
//! `settle_intent` with the position it leaves (an intent's fill and the position in one
//! transaction), one write at a time as the loop makes them.
//!
//! - PostgreSQL: a throwaway cluster with its durable defaults (`fsync`,
//!   `synchronous_commit`), the [`PgJournal`] of a held lease, over loopback.
//! - SQLite: the journal file in a temporary directory, WAL with `synchronous=FULL` as
//!   the adapter opens it.
//!
//! Both on the same file system. Criterion reports each write's time and writes per
//! second; every timed write's latency is also kept (warm-up included) and its p50 and p99
//! printed per backend, with the ratio PostgreSQL / SQLite.
//!
//! Run: `cargo bench -p kyzlo-adapters-postgres --bench journal`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kyzlo_adapters_journal::SqliteJournal;
use kyzlo_adapters_postgres::{PgDatabase, PgJournal};
use kyzlo_application::journal::{
    AttemptRecord, IntentAction, IntentOutcome, IntentRecord, Journal, PositionRecord,
};
use kyzlo_application::ports::{Blockhash, Fill, Side};
use kyzlo_domain::{
    IntentId, Lamports, PositionId, Price, Size, Slippage, Timestamp, TokenAmount, TxSignature,
};
use kyzlo_test_postgres::{Durability, PgCluster};
use tokio::runtime::Runtime;

const MARKET: &str = "SOL/USDC";

/// The journals under test, and what must outlive them.
struct Backends {
    runtime: Runtime,
    journals: [(&'static str, Arc<dyn Journal>); 2],
    _cluster: PgCluster,
    _dir: tempfile::TempDir,
}

fn backends() -> Backends {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cluster = PgCluster::start(Durability::Durable).expect("a PostgreSQL cluster");
    let url = cluster.create_database("bench").expect("a database");
    let postgres: PgJournal = runtime.block_on(async {
        let db = PgDatabase::connect(&url, 2).await.expect("connected");
        let lease = db
            .acquire("bench-wallet", "bench", Duration::from_secs(3_600))
            .await
            .expect("acquired")
            .expect("a free wallet");
        db.journal(&lease, MARKET)
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = SqliteJournal::open(dir.path().join("kyzlo.db")).expect("a SQLite journal");
    Backends {
        runtime,
        journals: [
            ("postgres", Arc::new(postgres)),
            ("sqlite", Arc::new(sqlite)),
        ],
        _cluster: cluster,
        _dir: dir,
    }
}

fn intent(id: u64) -> IntentRecord {
    IntentRecord {
        intent: IntentId(id),
        position: PositionId(id),
        action: IntentAction::Enter,
        side: Side::Buy,
        amount_in: TokenAmount::new(1_000_000),
        created_at: Timestamp::from_micros(id),
    }
}

fn attempt(intent: u64, attempt: u32) -> AttemptRecord {
    let mut signature = [0u8; 64];
    signature[..8].copy_from_slice(&intent.to_le_bytes());
    signature[8..12].copy_from_slice(&attempt.to_le_bytes());
    AttemptRecord {
        intent: IntentId(intent),
        attempt,
        signature: TxSignature(signature),
        blockhash: Blockhash([7; 32]),
        valid_at_slot: 300_000_000,
        last_valid_block_height: 280_000_150,
        slippage: Slippage::from_bps(50).expect("valid slippage"),
        priority_fee: Lamports::new(5_000),
        amount_in: TokenAmount::new(1_000_000),
        min_out: TokenAmount::new(6_600),
        sent_at: Timestamp::from_micros(u64::from(attempt)),
        nonce: None,
    }
}

fn filled() -> IntentOutcome {
    IntentOutcome::Filled(Fill {
        amount_in: TokenAmount::new(1_000_000),
        amount_out: TokenAmount::new(6_650),
        fee: Lamports::new(10_000),
    })
}

fn position(id: u64) -> PositionRecord {
    PositionRecord {
        position: PositionId(id),
        entry_price: Price::new(150.37).expect("a price"),
        size: Size::new(TokenAmount::new(6_650)).expect("a size"),
        remaining: TokenAmount::new(6_650),
    }
}

/// The latencies of one backend's writes; sorted once, when read.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    /// The nearest-rank `p`-quantile, `p` in (0, 1].
    fn quantile(sorted: &[Duration], p: f64) -> Duration {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )] // a rank within the sample count
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// (p50, p99) of the writes, once all are in.
    fn p50_p99(mut self) -> (usize, Duration, Duration) {
        self.0.sort_unstable();
        let n = self.0.len();
        (
            n,
            Self::quantile(&self.0, 0.50),
            Self::quantile(&self.0, 0.99),
        )
    }
}

/// Benchmarks one write on every backend: `prepare` (untimed) readies write number `n`,
/// `write` makes it.
fn compare<P, W>(c: &mut Criterion, backends: &Backends, name: &str, prepare: P, write: W)
where
    P: AsyncFn(&dyn Journal, u64),
    W: AsyncFn(&dyn Journal, u64),
{
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    let mut percentiles = Vec::new();
    for (backend, journal) in &backends.journals {
        let mut latencies = Latencies::default();
        let mut n = 0_u64;
        group.bench_function(*backend, |b| {
            b.iter_custom(|iters| {
                backends.runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        n += 1;
                        prepare(journal.as_ref(), n).await;
                        let start = Instant::now();
                        write(black_box(journal.as_ref()), n).await;
                        let took = start.elapsed();
                        latencies.0.push(took);
                        total += took;
                    }
                    total
                })
            });
        });
        let (count, p50, p99) = latencies.p50_p99();
        eprintln!("{name}/{backend}: {count} writes timed, p50 {p50:.2?}, p99 {p99:.2?}");
        percentiles.push((p50, p99));
    }
    group.finish();
    if let [(pg50, pg99), (sq50, sq99)] = percentiles[..] {
        eprintln!(
            "{name}: postgres / sqlite: p50 x{:.2}, p99 x{:.2}",
            pg50.as_secs_f64() / sq50.as_secs_f64(),
            pg99.as_secs_f64() / sq99.as_secs_f64()
        );
    }
}

fn journal_writes(c: &mut Criterion) {
    let backends = backends();

    // Every attempt of one intent: each write inserts a new row, as every send does.
    for (_, journal) in &backends.journals {
        backends
            .runtime
            .block_on(journal.record_intent(&intent(1)))
            .expect("the intent journaled");
    }
    compare(
        c,
        &backends,
        "record_attempt",
        async |_, _| {},
        async |journal, n| {
            let number = u32::try_from(n).expect("fewer than 2^32 attempts");
            journal
                .record_attempt(&attempt(1, number))
                .await
                .expect("the attempt journaled");
        },
    );

    // A fresh intent per write (journaled untimed), settled filled with the position it
    // opens: an update and an insert in one transaction.
    compare(
        c,
        &backends,
        "settle_intent",
        async |journal, n| {
            journal
                .record_intent(&intent(1_000 + n))
                .await
                .expect("the intent journaled");
        },
        async |journal, n| {
            journal
                .settle_intent(IntentId(1_000 + n), &filled(), Some(&position(1_000 + n)))
                .await
                .expect("the intent settled");
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = journal_writes
}
criterion_main!(benches);
