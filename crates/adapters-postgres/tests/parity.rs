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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_nonce_that_does_not_read_back_is_a_corrupt_row_naming_its_column() {
    use kyzlo_application::journal::{AttemptRecord, IntentAction, IntentRecord, NonceUse};
    use kyzlo_application::ports::{Blockhash, DurableNonce, NonceAccount, Side};
    use kyzlo_domain::{ExitKind, IntentId, Lamports, Slippage, Timestamp, TxSignature};

    let (db, url) = support::database("nonce-corrupt").await;
    let (_, journal) = support::leased_journal(&db, "instance-a").await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    journal
        .record_intent(&IntentRecord {
            intent: IntentId(1),
            position: PositionId(1),
            action: IntentAction::Exit(ExitKind::StopLoss),
            side: Side::Sell,
            amount_in: TokenAmount::new(10),
            created_at: Timestamp::ZERO,
        })
        .await
        .unwrap();
    let nonce = DurableNonce {
        account: NonceAccount([0x4E; 32]),
        value: Blockhash([0xC0; 32]),
    };
    journal
        .record_attempt(&AttemptRecord {
            intent: IntentId(1),
            attempt: 1,
            signature: TxSignature([1; 64]),
            blockhash: nonce.value,
            valid_at_slot: 5,
            last_valid_block_height: 6,
            slippage: Slippage::from_bps(100).unwrap(),
            priority_fee: Lamports::new(5_000),
            amount_in: TokenAmount::new(0),
            min_out: TokenAmount::new(0),
            sent_at: Timestamp::ZERO,
            nonce: Some(NonceUse {
                nonce,
                cancel: true,
            }),
        })
        .await
        .unwrap();
    assert!(journal.load().await.is_ok());
    // (tampering, the column and value the error names)
    let cases = [
        (
            "UPDATE attempts SET nonce_account = NULL",
            "attempts.nonce_account: <NULL on a cancel>",
        ),
        (
            "UPDATE attempts SET nonce_account = 'not-base58!'",
            "attempts.nonce_account: \"not-base58!\"",
        ),
        (
            "UPDATE attempts SET nonce_account = '2222'",
            "attempts.nonce_account: \"2222\"",
        ),
    ];
    for (tamper, named) in cases {
        // The rows keep the lease's epoch, so the fencing trigger lets the tampering in.
        client.batch_execute(tamper).await.unwrap();
        for read in [
            journal.load().await.err(),
            journal.exit_history(5).await.err(),
        ] {
            let error = read.unwrap_or_else(|| panic!("{tamper}: read back"));
            assert!(
                error
                    .detail
                    .contains(&format!("corrupt journal value in {named}")),
                "{tamper}: {error}"
            );
        }
    }
}
