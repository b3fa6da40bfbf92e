//! The journal on PostgreSQL end to end, on a throwaway cluster: `kyzlo paper` with
//! `journal.url` journals its run there and releases its wallet's lease; a wallet whose
//! lease another live instance holds is refused at start, naming the holder; and
//! `config check` masks the URL's password and refuses a URL that is not PostgreSQL's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use kyzlo_adapters_postgres::PgDatabase;
use kyzlo_application::journal::Journal as _;
use kyzlo_test_postgres::{Durability, PgCluster};
use kyzlo_tests::common::{Finished, NO_API, kyzlo, run, write_file};

const LIMIT: Duration = Duration::from_secs(120);

/// The paper wallet id of a data folder configured as `kyzlo-data`.
const WALLET: &str = "paper:kyzlo-data";

/// The default pair's market key (its two mints).
const MARKET: &str =
    "So11111111111111111111111111111111111111112/EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| PgCluster::start(Durability::Fast).unwrap())
}

fn config(url: &str) -> String {
    format!("[journal]\ndata_dir = \"kyzlo-data\"\nurl = \"{url}\"\n{NO_API}")
}

fn kyzlo_in(dir: &Path, toml: &str, args: &[&str]) -> Finished {
    let file = write_file(dir, "kyzlo.toml", toml);
    let mut command = kyzlo(dir);
    command.args(args).arg("--config").arg(&file);
    run(&mut command, LIMIT)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_paper_run_journals_in_postgres_and_releases_its_lease() {
    let url = cluster().create_database("paper").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let finished = kyzlo_in(dir.path(), &config(&url), &["paper"]);
    finished.assert_success("kyzlo paper on PostgreSQL");
    assert!(
        !finished.stderr.contains(cluster().password()),
        "{}",
        finished.stderr
    );
    runtime().block_on(async {
        let db = PgDatabase::connect(&url, 1).await.unwrap();
        let leases = db.leases().await.unwrap();
        assert_eq!(leases.len(), 1, "{leases:?}");
        assert_eq!(leases[0].lease.wallet, WALLET);
        assert!(leases[0].expires_in_ms <= 0, "released: {leases:?}");
        // Released, so it can be taken at once; its journal holds the run.
        let lease = db
            .acquire(WALLET, "test", Duration::from_secs(60))
            .await
            .unwrap()
            .expect("a released lease is free");
        assert_eq!(lease.epoch, 2);
        let journal = db.journal(&lease, MARKET);
        let exits = journal.exit_history(usize::MAX).await.unwrap();
        let snapshot = journal.load().await.unwrap();
        assert!(snapshot.trading_state.is_some(), "{snapshot:?}");
        assert!(
            !exits.is_empty(),
            "the run journaled no exit:\n{}",
            finished.stdout
        );
    });
}

#[test]
fn a_wallet_another_live_instance_holds_is_refused_at_start_naming_it() {
    let url = cluster().create_database("held").unwrap();
    runtime().block_on(async {
        let db = PgDatabase::connect(&url, 1).await.unwrap();
        db.acquire(WALLET, "other-host:4242:cafe0001", Duration::from_secs(600))
            .await
            .unwrap()
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let finished = kyzlo_in(dir.path(), &config(&url), &["paper", "--duration", "1h"]);
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("is held by other-host:4242:cafe0001"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains(cluster().password()),
        "{}",
        finished.stderr
    );
}

#[test]
fn config_check_masks_the_journal_url_and_refuses_one_that_is_not_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://kyzlo:pg-s3cret-pw@db.internal:5432/fleet";
    let checked = kyzlo_in(dir.path(), &config(url), &["config", "check"]);
    checked.assert_success("config check");
    let all = format!("{}{}", checked.stdout, checked.stderr);
    assert!(!all.contains("pg-s3cret-pw"), "{all}");
    assert!(
        checked.stdout.contains("url = \"***\""),
        "{}",
        checked.stdout
    );

    let refused = kyzlo_in(
        dir.path(),
        &config("mysql://kyzlo:pg-s3cret-pw@db.internal/fleet"),
        &["config", "check"],
    );
    assert_ne!(refused.code(), Some(0));
    let all = format!("{}{}", refused.stdout, refused.stderr);
    assert!(all.contains("journal.url"), "{all}");
    assert!(!all.contains("pg-s3cret-pw"), "{all}");
}
