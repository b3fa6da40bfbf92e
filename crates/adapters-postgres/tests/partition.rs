//! A former owner cut off by a partition that drops its packets (neither end sees the
//! connection close): its lease expires by the database's clock, another instance takes
//! the wallet over, and once the partition heals every write of the former owner, the one
//! in flight included, is refused and leaves nothing behind. A partition in the middle of
//! a write transaction, after its fence locked the lease row, delays the takeover by at
//! most the sessions' idle-in-transaction timeout.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

mod support;

use std::time::{Duration, Instant};

use kyzlo_adapters_postgres::{IDLE_IN_TRANSACTION_TIMEOUT, PgDatabase};
use kyzlo_application::journal::{AttemptRecord, IntentAction, IntentRecord, Journal as _};
use kyzlo_application::ports::{Blockhash, Side};
use kyzlo_domain::{
    ErrorClass, IntentId, Lamports, PositionId, Slippage, Timestamp, TokenAmount, TxSignature,
};
use support::proxy::Proxy;
use support::{assert_fenced, until_expired};

/// Short enough that a test waits for expiry, long enough that a loaded machine does not
/// expire it between two statements.
const SHORT: Duration = Duration::from_millis(600);

/// What a loaded machine may add to a bound the database keeps.
const SLACK: Duration = Duration::from_secs(1);

const MARKET: &str = "SOL/USDC";

/// Who signed an attempt: its signature's last byte.
#[derive(Debug, Clone, Copy)]
enum Owner {
    A = 0xA,
    B = 0xB,
}

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

fn attempt(intent: u64, attempt: u32, by: Owner) -> AttemptRecord {
    let mut signature = [0u8; 64];
    signature[..8].copy_from_slice(&intent.to_le_bytes());
    signature[8..12].copy_from_slice(&attempt.to_le_bytes());
    signature[63] = by as u8;
    AttemptRecord {
        intent: IntentId(intent),
        attempt,
        signature: TxSignature(signature),
        blockhash: Blockhash([7; 32]),
        valid_at_slot: 900,
        last_valid_block_height: 1_000,
        slippage: Slippage::from_bps(100).unwrap(),
        priority_fee: Lamports::new(5_000),
        amount_in: TokenAmount::new(1_000),
        min_out: TokenAmount::new(9),
        sent_at: Timestamp::from_micros(10),
        nonce: None,
    }
}

/// Instance A behind a proxy that can freeze, instance B connected directly, one database;
/// and a direct URL for looking behind both.
async fn partitioned(prefix: &str) -> (Proxy, PgDatabase, PgDatabase, String) {
    let (b, url) = support::database(prefix).await;
    let proxy = Proxy::start(support::cluster_addr()).await;
    let a = PgDatabase::connect(
        &format!("{}?application_name=instance-a", proxy.url(&url)),
        2,
    )
    .await
    .unwrap();
    (proxy, a, b, url)
}

/// The attempts journaled for intent 1, as the new owner loads them.
async fn attempts_of_intent_1(b: &PgDatabase, wallet: &str) -> Vec<AttemptRecord> {
    let lease = b.leases().await.unwrap();
    let lease = &lease
        .iter()
        .find(|v| v.lease.wallet == wallet)
        .unwrap()
        .lease;
    let snapshot = b.journal(lease, MARKET).load().await.unwrap();
    assert_eq!(snapshot.unresolved.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot.unresolved[0].intent, entry(1));
    snapshot.unresolved[0]
        .attempts
        .iter()
        .map(|(a, _)| *a)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_held_in_a_partition_is_refused_once_it_heals_after_a_takeover() {
    let (proxy, a, b, _) = partitioned("frozen").await;
    let wallet = support::wallet();
    let old = a.acquire(&wallet, "a", SHORT).await.unwrap().unwrap();
    let old_journal = a.journal(&old, MARKET);
    old_journal.record_intent(&entry(1)).await.unwrap();

    proxy.freeze();
    let pending = tokio::spawn({
        let journal = old_journal.clone();
        async move { journal.record_attempt(&attempt(1, 1, Owner::A)).await }
    });
    until_expired(&b, &wallet).await;
    assert!(!pending.is_finished(), "a write crossed the frozen link");

    // Nothing of A's reached the database, so nothing holds the takeover up.
    let new = tokio::time::timeout(SLACK, b.acquire(&wallet, "b", support::LONG))
        .await
        .expect("the takeover waited on a partitioned former owner")
        .unwrap()
        .unwrap();
    assert_eq!(new.epoch, old.epoch + 1);
    let new_journal = b.journal(&new, MARKET);
    new_journal
        .record_attempt(&attempt(1, 1, Owner::B))
        .await
        .unwrap();

    // Healed: the write held back reaches the database and is refused, and so is every
    // later one.
    proxy.thaw();
    assert_fenced(pending.await.unwrap());
    assert_fenced(old_journal.record_attempt(&attempt(1, 2, Owner::A)).await);
    assert_fenced(old_journal.record_intent(&entry(2)).await);
    assert!(a.renew(&old, SHORT).await.unwrap_err().is_fenced());
    assert_eq!(
        attempts_of_intent_1(&b, &wallet).await,
        vec![attempt(1, 1, Owner::B)],
        "nothing A tried after the freeze"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_inside_a_write_holds_a_takeover_up_no_longer_than_the_idle_timeout() {
    let (proxy, a, b, url) = partitioned("midway").await;
    let wallet = support::wallet();
    let old = a.acquire(&wallet, "a", SHORT).await.unwrap().unwrap();
    let old_journal = a.journal(&old, MARKET);
    old_journal.record_intent(&entry(1)).await.unwrap();

    // The link freezes as A's attempt is about to be inserted: its transaction has begun,
    // its fence has locked the lease row and the intent was found.
    proxy.freeze_on(b"INSERT INTO attempts");
    let pending = tokio::spawn({
        let journal = old_journal.clone();
        async move { journal.record_attempt(&attempt(1, 1, Owner::A)).await }
    });
    tokio::time::timeout(Duration::from_secs(5), proxy.frozen())
        .await
        .expect("the attempt's insert never reached the proxy");
    let frozen_at = Instant::now();

    // Behind both instances: A's session sits idle in its transaction, the lease row
    // locked by its fence.
    let (observer, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The server reports the session's state a moment after the statement's answer left
    // it: looked for every 10 ms, well inside the 2 s idle limit.
    let mut state = None;
    for _ in 0..50 {
        state = observer
            .query_opt(
                "SELECT state FROM pg_stat_activity WHERE application_name = 'instance-a'
                    AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .map(|row| row.get::<_, String>(0));
        if state.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state.as_deref(), Some("idle in transaction"));
    let locked = observer
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM leases WHERE wallet = '{wallet}' FOR UPDATE NOWAIT"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        locked.code(),
        Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
    );
    observer.batch_execute("ROLLBACK").await.unwrap();

    // The lease expires; the server ends A's stalled session (releasing the lease row)
    // once it has been idle in its transaction for IDLE_IN_TRANSACTION_TIMEOUT, and B
    // takes over no later.
    until_expired(&b, &wallet).await;
    let new = tokio::time::timeout(
        IDLE_IN_TRANSACTION_TIMEOUT + SLACK,
        b.acquire(&wallet, "b", support::LONG),
    )
    .await
    .expect("the takeover waited on the frozen transaction past its idle timeout")
    .unwrap()
    .unwrap();
    let waited = frozen_at.elapsed();
    assert!(
        waited < IDLE_IN_TRANSACTION_TIMEOUT + SLACK,
        "took over {waited:?} after the freeze"
    );
    assert_eq!(new.epoch, old.epoch + 1);
    let new_journal = b.journal(&new, MARKET);
    new_journal
        .record_attempt(&attempt(1, 1, Owner::B))
        .await
        .unwrap();

    // Healed: A's write in flight fails (its session is gone, its transaction rolled
    // back), and every later write of A is refused as fenced.
    proxy.thaw();
    let error = pending.await.unwrap().unwrap_err();
    assert_eq!(error.class, ErrorClass::Unknown, "{error}");
    assert_fenced(old_journal.record_attempt(&attempt(1, 2, Owner::A)).await);
    assert_fenced(old_journal.record_intent(&entry(2)).await);
    assert!(a.renew(&old, SHORT).await.unwrap_err().is_fenced());
    assert_eq!(
        attempts_of_intent_1(&b, &wallet).await,
        vec![attempt(1, 1, Owner::B)],
        "nothing A tried after the freeze"
    );
}
