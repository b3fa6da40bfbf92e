//! Random failures over many seeds: whatever the chain does, no intent lands twice, every
//! exit is bounded in attempts and time (or paged at its deadline), and the wallet's
//! balance matches what the executor reported.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_application::execute::ExecutionOutcome;
use kyzlo_application::gateway::ExitOrder;
use kyzlo_application::metrics::ExitModule;
use kyzlo_application::ports::{AlertKind, Balances};
use kyzlo_application::testing::{Harness, SendScript};
use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::{
    ErrorClass, ExitKind, Fraction, IntentId, Lamports, PositionId, Price, TokenAmount,
};

const SOL: u64 = 1_000_000_000;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(100 + self.below(max))
    }
}

fn random_script(rng: &mut Lcg) -> SendScript {
    match rng.below(7) {
        0 | 1 => SendScript::Land {
            after: rng.millis(3_000),
        },
        2 => SendScript::LandFailed {
            class: ErrorClass::SlippageExceeded,
            after: rng.millis(3_000),
        },
        3 => SendScript::TimeoutThenLand {
            lands_after: (rng.below(2) == 0).then(|| rng.millis(12_000)),
        },
        4 => SendScript::Drop,
        5 => SendScript::Refuse {
            class: if rng.below(2) == 0 {
                ErrorClass::NodeUnhealthy
            } else {
                ErrorClass::BlockhashExpired
            },
        },
        _ => SendScript::Refuse {
            class: ErrorClass::SlippageExceeded,
        },
    }
}

#[tokio::test(start_paused = true)]
async fn random_failures_over_many_seeds_never_execute_an_intent_twice() {
    let mut closed = 0;
    let mut failed = 0;
    for seed in 0..300u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let h = Harness::new(
            95.0,
            Balances {
                base: TokenAmount::new(3 * SOL),
                quote: TokenAmount::ZERO,
                fee_lamports: Lamports::new(SOL),
            },
        );
        h.venue.script((0..12).map(|_| random_script(&mut rng)));
        h.venue.set_default(random_script(&mut rng));
        if rng.below(4) == 0 {
            h.venue.ignore_expiry();
        }
        let mut tasks = Vec::new();
        for position in 1..=3u64 {
            let order = ExitOrder {
                module: ExitModule::ExitPlan,
                position: PositionId(position),
                kind: ExitKind::StopLoss,
                fraction: Fraction::ALL,
                style: OrderStyle::Market,
                trigger_price: Price::new(95.0).unwrap(),
                explanation: format!("seed {seed}"),
            };
            let ticket = h.gateway.submit(order, IntentId(position)).unwrap();
            let exits = h.exits.clone();
            tasks.push(tokio::spawn(async move {
                exits.run(ticket, TokenAmount::new(SOL)).await
            }));
        }
        let mut sold = 0;
        let mut deadline_misses = 0;
        for task in tasks {
            let report = match task.await.unwrap() {
                Ok(report) => report,
                // The exit breaker halted trading before this exit began.
                Err(_) => continue,
            };
            assert!(
                report.attempts <= 2,
                "seed {seed}: {} attempts",
                report.attempts
            );
            let elapsed = report.finished.saturating_since(report.started);
            if report.deadline_exceeded {
                deadline_misses += 1;
            } else {
                assert!(
                    elapsed <= Duration::from_secs(30),
                    "seed {seed}: {elapsed:?}"
                );
            }
            match report.outcome {
                ExecutionOutcome::Filled { fill, .. } => {
                    closed += 1;
                    sold += fill.amount_in.get();
                }
                ExecutionOutcome::Failed { .. } => failed += 1,
            }
        }
        for (intent, n) in h.landed_per_intent() {
            assert_eq!(n, 1, "seed {seed}: {intent} landed {n} times");
        }
        assert_eq!(
            h.venue.balances().base.get(),
            3 * SOL - sold,
            "seed {seed}: the wallet disagrees with the reports"
        );
        assert_eq!(
            h.alerts.count(AlertKind::ExitDeadlineExceeded),
            deadline_misses,
            "seed {seed}"
        );
    }
    // The schedule exercises both outcomes.
    assert!(
        closed > 100 && failed > 20,
        "closed {closed}, failed {failed}"
    );
}
