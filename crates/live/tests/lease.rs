//! The wallet lease of the PostgreSQL journal against a throwaway cluster: a lease taken
//! over by another instance, or one that cannot be renewed because the database is gone,
//! stops the run (its shutdown channel) and is reported as lost; the old holder's writes
//! are refused by the database; a clean stop releases the lease.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kyzlo_adapters_journal::DataDir;
use kyzlo_adapters_postgres::PgDatabase;
use kyzlo_application::journal::FENCED_CODE;
use kyzlo_config::{Config, File, Secret};
use kyzlo_domain::trading_state::TradingState;
use kyzlo_live::journal::{JournalError, LeaseLoss, OpenJournal};
use kyzlo_test_postgres::{Durability, PgCluster};
use tokio::sync::watch;

/// The shortest lease allowed: renewed every second.
const LEASE_S: u64 = 3;

fn config(url: &str, data_dir: &std::path::Path) -> Config {
    let mut file = File::default();
    file.journal.url = Some(Secret::new(url));
    file.journal.lease_s = LEASE_S;
    file.journal.data_dir = data_dir.to_owned();
    Config::try_from(file).unwrap()
}

async fn start(prefix: &str) -> (PgCluster, String) {
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || {
        let cluster = PgCluster::start(Durability::Fast).unwrap();
        let url = cluster.create_database(&prefix).unwrap();
        (cluster, url)
    })
    .await
    .unwrap()
}

/// Waits, at most twice the lease, for `stop` to turn true.
async fn stopped(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::time::timeout(Duration::from_secs(2 * LEASE_S), stop.wait_for(|s| *s))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_over_stops_the_run_and_fences_its_writes() {
    let (_cluster, url) = start("taken").await;
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::claim(&dir.path().join("data")).unwrap();
    let opened = OpenJournal::open(&config(&url, data.path()), &data, "wallet-a")
        .await
        .unwrap();
    let (stop_tx, mut stop) = watch::channel(false);
    opened.stop_on_loss(stop_tx);
    opened
        .journal
        .record_trading_state(&TradingState::Active)
        .await
        .unwrap();

    // Another instance takes the wallet (the lease released under the holder's feet,
    // as an operator's forced take-over would).
    let db = PgDatabase::connect(&url, 1).await.unwrap();
    let held = db.leases().await.unwrap().remove(0).lease;
    db.release(&held).await.unwrap();
    let thief = db
        .acquire("wallet-a", "thief", Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thief.epoch, held.epoch + 1);

    assert!(stopped(&mut stop).await, "the run was not stopped");
    let refused = opened
        .journal
        .record_trading_state(&TradingState::Active)
        .await
        .unwrap_err();
    assert_eq!(refused.code, Some(FENCED_CODE), "{refused:?}");
    match opened.finish().await {
        Err(JournalError::LeaseLost { wallet, loss, .. }) => {
            assert_eq!(wallet, "wallet-a");
            assert_eq!(loss, LeaseLoss::Fenced);
        }
        other => panic!("expected the lease lost, got {other:?}"),
    }
    // The thief's lease is untouched.
    let leases = db.leases().await.unwrap();
    assert_eq!(leases[0].lease, thief);
    assert!(leases[0].expires_in_ms > 0, "{leases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_cannot_be_renewed_before_it_expires_stops_the_run() {
    let (cluster, url) = start("gone").await;
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::claim(&dir.path().join("data")).unwrap();
    let opened = OpenJournal::open(&config(&url, data.path()), &data, "wallet-b")
        .await
        .unwrap();
    let (stop_tx, mut stop) = watch::channel(false);
    opened.stop_on_loss(stop_tx);
    // The database goes away.
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();

    assert!(stopped(&mut stop).await, "the run was not stopped");
    match opened.finish().await {
        Err(JournalError::LeaseLost { loss, .. }) => {
            assert!(
                matches!(
                    loss,
                    LeaseLoss::Unreachable {
                        lease_s: LEASE_S,
                        ..
                    }
                ),
                "{loss:?}"
            );
            assert!(!loss.to_string().contains("postgres://"), "{loss}");
        }
        other => panic!("expected the lease lost, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_releases_the_lease_for_the_next_instance() {
    let (_cluster, url) = start("clean").await;
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::claim(&dir.path().join("data")).unwrap();
    let config = config(&url, data.path());
    let first = OpenJournal::open(&config, &data, "wallet-c").await.unwrap();
    match OpenJournal::open(&config, &data, "wallet-c").await {
        Err(JournalError::Held { owner, .. }) => {
            // host:pid:random, this very process (another instance of it, say).
            assert!(
                owner.contains(&format!(":{}:", std::process::id())),
                "{owner}"
            );
        }
        other => panic!("expected the wallet held, got {:?}", other.err()),
    }
    first.finish().await.unwrap();
    let second = OpenJournal::open(&config, &data, "wallet-c").await.unwrap();
    second.finish().await.unwrap();
}
