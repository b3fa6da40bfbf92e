//! One owner per wallet, decided by the database: racing instances (each its own pool),
//! lease expiry by the database's clock, and writes of a stale epoch refused by the
//! database however they reach it.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

mod support;

use std::time::Duration;

use kyzlo_adapters_postgres::{FENCED_SQLSTATE, Lease, PgDatabase, PgError};
use kyzlo_application::journal::{IntentAction, IntentRecord, Journal as _};
use kyzlo_application::ports::Side;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{IntentId, PositionId, Timestamp, TokenAmount};
use support::{assert_fenced, until_expired};

/// Short enough that a test waits for expiry, long enough that a loaded machine does not
/// expire it between two statements.
const SHORT: Duration = Duration::from_millis(600);

fn entry(id: u64) -> IntentRecord {
    IntentRecord {
        intent: IntentId(id),
        position: PositionId(id),
        action: IntentAction::Enter,
        side: Side::Buy,
        amount_in: TokenAmount::new(1_000),
        created_at: Timestamp::from_micros(id),
    }
}

/// Two instances: two pools on the same database.
async fn two_instances(prefix: &str) -> (PgDatabase, PgDatabase) {
    let (a, url) = support::database(prefix).await;
    let b = PgDatabase::connect(&url, 8).await.unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_instances_racing_for_each_wallet_exactly_one_wins() {
    let (a, b) = two_instances("race").await;
    let wallets: Vec<String> = (0..20).map(|i| format!("race-{i}")).collect();
    let race = |db: PgDatabase, owner: &'static str| {
        let wallets = wallets.clone();
        tokio::spawn(async move {
            let mut won = Vec::new();
            for wallet in &wallets {
                won.push(db.acquire(wallet, owner, support::LONG).await.unwrap());
            }
            won
        })
    };
    let (won_a, won_b) = (race(a.clone(), "a"), race(b, "b"));
    let (won_a, won_b) = (won_a.await.unwrap(), won_b.await.unwrap());
    for (i, (x, y)) in won_a.iter().zip(&won_b).enumerate() {
        assert!(x.is_some() != y.is_some(), "wallet {i}: {x:?} / {y:?}");
        let lease = x.as_ref().or(y.as_ref()).unwrap();
        assert_eq!(lease.epoch, 1, "{lease:?}");
    }
    let held = a.leases().await.unwrap();
    assert_eq!(held.len(), 20);
    assert!(held.iter().all(|v| v.expires_in_ms > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_losers_writes_are_refused_and_leave_nothing() {
    let (a, b) = two_instances("loser").await;
    let won = a.acquire("w", "a", support::LONG).await.unwrap().unwrap();
    assert_eq!(b.acquire("w", "b", support::LONG).await.unwrap(), None);
    // The loser writes as if it held the lease, at the winner's epoch or any other.
    for epoch in [won.epoch, won.epoch + 1, 0] {
        let forged = Lease {
            wallet: "w".to_owned(),
            owner: "b".to_owned(),
            epoch,
        };
        let journal = b.journal(&forged, "SOL/USDC");
        assert_fenced(journal.record_intent(&entry(1)).await);
        assert_fenced(journal.record_trading_state(&TradingState::Active).await);
        assert_fenced(journal.record_exit_failures(2).await);
    }
    let snapshot = a.journal(&won, "SOL/USDC").load().await.unwrap();
    assert!(snapshot.unresolved.is_empty(), "{snapshot:?}");
    assert_eq!(snapshot.trading_state, None);
    assert_eq!(snapshot.consecutive_failed_exits, 0);
    assert!(
        b.renew(
            &Lease {
                owner: "b".to_owned(),
                ..won.clone()
            },
            support::LONG
        )
        .await
        .unwrap_err()
        .is_fenced()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_a_new_owner_gets_a_higher_epoch_and_the_old_one_is_refused_forever() {
    let (a, b) = two_instances("takeover").await;
    let old = a.acquire("w", "a", SHORT).await.unwrap().unwrap();
    let old_journal = a.journal(&old, "SOL/USDC");
    old_journal.record_intent(&entry(1)).await.unwrap();
    a.renew(&old, SHORT).await.unwrap();
    assert_eq!(b.acquire("w", "b", SHORT).await.unwrap(), None, "held");

    until_expired(&b, "w").await;
    // Expired by the database's clock: the old owner can neither renew nor write.
    assert!(a.renew(&old, SHORT).await.unwrap_err().is_fenced());
    assert_fenced(old_journal.record_intent(&entry(2)).await);

    let new = b.acquire("w", "b", support::LONG).await.unwrap().unwrap();
    assert_eq!(new.epoch, old.epoch + 1);
    let new_journal = b.journal(&new, "SOL/USDC");
    // The new owner sees what the old one wrote before losing the lease: it reconciles it.
    let snapshot = new_journal.load().await.unwrap();
    assert_eq!(snapshot.unresolved.len(), 1);
    assert_eq!(snapshot.unresolved[0].intent, entry(1));
    new_journal.record_intent(&entry(2)).await.unwrap();

    // The old owner "wakes up": its writes stay refused, even after the new owner lets go.
    assert_fenced(old_journal.record_intent(&entry(3)).await);
    b.release(&new).await.unwrap();
    assert_fenced(old_journal.record_intent(&entry(3)).await);
    assert!(a.renew(&old, SHORT).await.unwrap_err().is_fenced());
    // A released wallet is free at once, with the next epoch.
    let again = a.acquire("w", "a", support::LONG).await.unwrap().unwrap();
    assert_eq!(again.epoch, new.epoch + 1);
    let ids: Vec<u64> = a
        .journal(&again, "SOL/USDC")
        .load()
        .await
        .unwrap()
        .unresolved
        .iter()
        .map(|u| u.intent.intent.0)
        .collect();
    assert_eq!(ids, vec![1, 2], "nothing of the stale writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_lease_keeps_its_epoch_and_outlives_its_first_term() {
    let (a, b) = two_instances("renew").await;
    let lease = a.acquire("w", "a", SHORT).await.unwrap().unwrap();
    let journal = a.journal(&lease, "SOL/USDC");
    for i in 1..=4 {
        tokio::time::sleep(SHORT / 3).await;
        a.renew(&lease, SHORT).await.unwrap();
        journal.record_intent(&entry(i)).await.unwrap();
    }
    assert_eq!(b.acquire("w", "b", SHORT).await.unwrap(), None);
    let view = b.leases().await.unwrap();
    assert_eq!(view[0].lease, lease);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_a_stale_row_even_from_raw_sql() {
    // Defense in depth: a statement that skipped the adapter's fence is still refused by
    // each table's trigger.
    let (db, url) = support::database("raw").await;
    let lease = db.acquire("w", "a", support::LONG).await.unwrap().unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let insert = "INSERT INTO control (wallet, market, key, value, epoch)
                  VALUES ('w', 'SOL/USDC', 'exit_failures', 1, $1)";
    let stale = client
        .execute(insert, &[&(lease.epoch + 1)])
        .await
        .unwrap_err();
    assert_eq!(stale.code().map(|c| c.code()), Some(FENCED_SQLSTATE));
    let stale = client.execute(insert, &[&0_i64]).await.unwrap_err();
    assert_eq!(stale.code().map(|c| c.code()), Some(FENCED_SQLSTATE));
    assert_eq!(client.execute(insert, &[&lease.epoch]).await.unwrap(), 1);
    // An update keeping a stale epoch is refused too.
    db.release(&lease).await.unwrap();
    let update = client
        .execute("UPDATE control SET value = 5 WHERE wallet = 'w'", &[])
        .await
        .unwrap_err();
    assert_eq!(update.code().map(|c| c.code()), Some(FENCED_SQLSTATE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_holds_off_a_takeover_until_it_commits() {
    let (a, url) = support::database("inflight").await;
    let b = PgDatabase::connect(&url, 2).await.unwrap();
    let old = a.acquire("w", "a", SHORT).await.unwrap().unwrap();
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The old owner's write transaction checks the lease, then stalls past its expiry.
    let tx = client.transaction().await.unwrap();
    tx.execute("SELECT kyzlo_fence('w', $1, 'a')", &[&old.epoch])
        .await
        .unwrap();
    until_expired(&b, "w").await;
    let takeover = tokio::spawn(async move { b.acquire("w", "b", support::LONG).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !takeover.is_finished(),
        "the takeover did not wait for the write in flight"
    );
    // Its row, written past the expiry, is refused by the table's trigger (which rechecks
    // the database's clock); the takeover goes ahead once the transaction ends.
    let refused = tx
        .execute(
            "INSERT INTO control (wallet, market, key, value, epoch)
             VALUES ('w', 'SOL/USDC', 'free_base', 7, $1)",
            &[&old.epoch],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some(FENCED_SQLSTATE));
    assert!(
        !takeover.is_finished(),
        "the takeover did not wait for the transaction"
    );
    drop(tx);
    let new = takeover.await.unwrap().unwrap().unwrap();
    assert_eq!(new.epoch, old.epoch + 1);
    let fenced = a
        .journal(&old, "SOL/USDC")
        .record_free_base(TokenAmount::new(1))
        .await;
    assert_fenced(fenced);
    assert!(matches!(
        a.renew(&old, SHORT).await,
        Err(PgError::Fenced { .. })
    ));
}
