//! The PostgreSQL journal returns what the port's reference `MemoryJournal` returns (and
//! so what the SQLite journal returns, which passes the same suite), and refuses what every
//! durable journal refuses, against a real PostgreSQL.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

mod support;

use kyzlo_adapters_postgres::PgJournal;
use kyzlo_application::journal::Journal as _;
use kyzlo_application::testing::journal_suite;
use kyzlo_domain::{PositionId, Price, Size, TokenAmount};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_memory_journals_agree_on_every_scenario() {
    let (db, _) = support::database("parity").await;
    // Each scenario on a wallet of its own: the journals of one database do not mix.
    journal_suite::check_against_memory(
        async || support::leased_journal(&db, "instance-a").await.1,
        async |journal: &PgJournal, intent| journal.transitions(intent).await.unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_what_every_durable_journal_refuses() {
    let (db, _) = support::database("refusals").await;
    let (_, journal) = support::leased_journal(&db, "instance-a").await;
    journal_suite::check_durable_refusals(&journal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markets_of_one_wallet_keep_separate_journals() {
    let (db, _) = support::database("markets").await;
    let lease = db
        .acquire("wallet-m", "instance-a", support::LONG)
        .await
        .unwrap()
        .unwrap();
    let sol = db.journal(&lease, "SOL/USDC");
    let jup = db.journal(&lease, "JUP/USDC");
    let position = kyzlo_application::journal::PositionRecord {
        position: PositionId(1),
        entry_price: Price::new(150.0).unwrap(),
        size: Size::new(TokenAmount::new(10)).unwrap(),
        remaining: TokenAmount::new(10),
    };
    sol.settle_intent(
        kyzlo_domain::IntentId(1),
        &kyzlo_application::journal::IntentOutcome::Failed,
        Some(&position),
    )
    .await
    .unwrap();
    assert_eq!(sol.load().await.unwrap().open_positions, vec![position]);
    assert!(jup.load().await.unwrap().open_positions.is_empty());
    assert_eq!(jup.load().await.unwrap().next_id, 1);
}
