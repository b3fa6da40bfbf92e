//! Start-up reconciliation: an intent that landed while nobody applied it (a crash
//! between the landing and the journal's settlement) is settled once, with its effect on
//! the position, in one step.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_application::gateway::ExitOrder;
use kyzlo_application::journal::{IntentOutcome, Journal, PositionRecord};
use kyzlo_application::metrics::ExitModule;
use kyzlo_application::ports::{Balances, Commitment, Fill};
use kyzlo_application::reconcile::{ReconcileSettings, Reconciler};
use kyzlo_application::testing::Harness;
use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::{ExitKind, Fraction, IntentId, Lamports, PositionId, Price, Size, TokenAmount};

const SOL: u64 = 1_000_000_000;

#[tokio::test(start_paused = true)]
async fn a_landed_but_unsettled_exit_is_applied_to_its_position_exactly_once() {
    let h = Harness::new(
        95.0,
        Balances {
            base: TokenAmount::new(4 * SOL),
            quote: TokenAmount::ZERO,
            fee_lamports: Lamports::new(SOL),
        },
    );
    let size = Size::new(TokenAmount::new(4 * SOL)).unwrap();
    let position = PositionRecord {
        position: PositionId(1),
        entry_price: Price::new(100.0).unwrap(),
        size,
        remaining: size.amount(),
    };
    h.journal
        .settle_intent(
            IntentId(3),
            &IntentOutcome::Filled(Fill {
                amount_in: TokenAmount::new(400_000_000),
                amount_out: size.amount(),
                fee: Lamports::new(5_000),
            }),
            Some(&position),
        )
        .await
        .unwrap();
    // A half exit runs to its landing; the process "dies" before anyone settles it.
    let order = ExitOrder {
        module: ExitModule::ExitPlan,
        position: PositionId(1),
        kind: ExitKind::PartialTakeProfit,
        fraction: Fraction::from_bps(5_000).unwrap(),
        style: OrderStyle::LimitLike,
        trigger_price: Price::new(95.0).unwrap(),
        explanation: "test".into(),
    };
    let ticket = h.gateway.submit(order, IntentId(7)).unwrap();
    h.exits.run(ticket, size.amount()).await.unwrap();
    assert_eq!(h.journal.load().await.unwrap().unresolved.len(), 1);

    let reconciler = Reconciler::new(
        h.engine.venue().clone(),
        ReconcileSettings {
            pair: kyzlo_application::testing::FAKE_PAIR,
            poll_interval: Duration::from_millis(400),
            commitment: Commitment::Confirmed,
            fill_wait: Duration::from_secs(5),
            cancel_fee: Lamports::new(100_000),
        },
    );
    let first = reconciler.run().await.unwrap();
    assert_eq!((first.landed, first.failed), (1, 0));
    assert_eq!(first.positions.len(), 1);
    assert_eq!(first.positions[0].remaining, TokenAmount::new(2 * SOL));
    assert_eq!(first.positions[0].size, size, "the original size is kept");
    assert_eq!(first.balance_shortfall, None);
    let intents = h.journal.intents();
    assert!(matches!(intents[0].1, Some(IntentOutcome::Filled(_))));

    // A second start finds nothing left to settle and applies nothing twice.
    let second = reconciler.run().await.unwrap();
    assert_eq!((second.landed, second.failed), (0, 0));
    assert_eq!(second.positions[0].remaining, TokenAmount::new(2 * SOL));
}
