//! Hot-path benchmarks of the domain: latency recording (the seed's sort-per-record monitor
//! side by side with [`RollingLatency`]), latency-breaker admission, and one exit-plan tick.
//!
//! Run: `cargo bench -p kyzlo-domain --bench hot_path`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kyzlo_domain::{
    ExitKind, ExitPlan, ExitPlanConfig, LatencyBreaker, LatencyBreakerConfig, Price,
    RollingLatency, Size, Timestamp, TokenAmount,
};

const WINDOW: usize = 1_000;
/// Pre-generated inputs, cycled through so every record sees a different value.
const INPUTS: usize = 4_096;

/// Seed 004's `LatencyMonitor`, as written there: a `VecDeque` window, and on every record a
/// copy into a fresh `Vec`, a full sort and a read of the P99.
struct SeedLatencyMonitor {
    window_size: usize,
    samples: VecDeque<u64>,
}

impl SeedLatencyMonitor {
    fn new(window_size: usize) -> Self {
        Self {
            window_size,
            samples: VecDeque::with_capacity(window_size),
        }
    }

    fn record_latency(&mut self, latency_ms: u64) -> u64 {
        if self.samples.len() >= self.window_size {
            self.samples.pop_front();
        }
        self.samples.push_back(latency_ms);
        self.calculate_p99()
    }

    fn calculate_p99(&self) -> u64 {
        if self.samples.is_empty() {
            return 0;
        }
        let mut sorted: Vec<u64> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        let index = ((sorted.len() - 1) as f64 * 0.99) as usize;
        sorted[index]
    }
}

/// Deterministic latencies in microseconds, roughly log-uniform from 1 ms to 1 s
/// (xorshift64*, fixed seed: the same inputs on every run).
fn latencies_micros() -> Vec<u64> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..INPUTS)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            // 1_000 us times 2^(0..10): 1 ms to ~1 s.
            let octave = (r >> 60) % 10;
            let within = (r & 0x3FF) + 1_024;
            within * (1 << octave) * 1_000 / 1_024
        })
        .collect()
}

fn latency_record(c: &mut Criterion) {
    let micros = latencies_micros();
    let millis: Vec<u64> = micros.iter().map(|us| us / 1_000).collect();
    let durations: Vec<Duration> = micros.iter().map(|&us| Duration::from_micros(us)).collect();

    let mut group = c.benchmark_group("latency_record");

    let mut seed = SeedLatencyMonitor::new(WINDOW);
    for &ms in millis.iter().cycle().take(WINDOW) {
        seed.record_latency(ms);
    }
    let mut i = 0usize;
    group.bench_function("seed_sort_per_record", |b| {
        b.iter(|| {
            i = (i + 1) % INPUTS;
            black_box(seed.record_latency(black_box(millis[i])))
        });
    });

    let mut rolling = RollingLatency::new(WINDOW).expect("valid window");
    for &d in durations.iter().cycle().take(WINDOW) {
        rolling.record(d);
    }
    let mut i = 0usize;
    group.bench_function("rolling_record", |b| {
        b.iter(|| {
            i = (i + 1) % INPUTS;
            rolling.record(black_box(durations[i]));
        });
    });

    group.bench_function("rolling_p99", |b| {
        b.iter(|| black_box(&rolling).p99());
    });

    group.finish();
}

fn breaker_admit(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_admit");
    let mut breaker = LatencyBreaker::new(LatencyBreakerConfig::default()).expect("valid config");
    let mut now = 0u64;
    group.bench_function("closed", |b| {
        b.iter(|| {
            now += 1;
            black_box(breaker.admit(black_box(Timestamp::from_micros(now))))
        });
    });
    group.finish();
}

fn exit_plan_evaluate(c: &mut Criterion) {
    let price = |v: f64| Price::new(v).expect("valid price");
    let entry = price(100.0);
    let size = Size::new(TokenAmount::new(1_000_000_000)).expect("nonzero size");
    let plan = ExitPlan::new(ExitPlanConfig::default(), entry, size);
    // Between the 5% stop and every profit leg: nothing fires.
    let quiet = price(100.5);
    let crash = price(94.0);
    {
        let mut check = plan.clone();
        assert_eq!(check.evaluate(quiet), None);
        assert_eq!(
            check.evaluate(crash).map(|i| i.kind),
            Some(ExitKind::StopLoss)
        );
    }

    let mut group = c.benchmark_group("exit_plan_evaluate");
    let mut ticking = plan.clone();
    group.bench_function("no_trigger", |b| {
        b.iter(|| black_box(ticking.evaluate(black_box(quiet))));
    });
    // A triggered stop leaves the plan pending, so each run gets a fresh copy (made untimed).
    group.bench_function("stop_loss", |b| {
        b.iter_batched_ref(
            || plan.clone(),
            |p| black_box(p.evaluate(black_box(crash))),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, latency_record, breaker_admit, exit_plan_evaluate);
criterion_main!(benches);
