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

/// Three paper markets of the README's fleet form, on two wallets' worth of names.
fn fleet_config(url: &str) -> String {
    format!(
        "{}\nlease_s = 3\nfleet_poll_ms = 500\nfleet_unreachable_s = 2\n[api]\napproval_key = \"fleet-binary-approval-key-0123\"\n\n[[markets]]\nname = \"sol-usdc\"\n\n[[markets]]\nname = \"jup-usdc\"\npair = {{ base_mint = \"JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN\", quote_mint = \"EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v\", base_decimals = 6, quote_decimals = 6 }}\n\n[[markets]]\nname = \"sol-usdc-b\"\n",
        config(url).replace(NO_API, "")
    )
}

#[test]
fn a_paper_fleet_instance_runs_every_market_and_the_fleet_commands_see_and_steer_it() {
    let url = cluster().create_database("fleetbin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let toml = fleet_config(&url);
    let checked = kyzlo_in(dir.path(), &toml, &["config", "check"]);
    checked.assert_success("config check of a fleet");
    assert!(checked.stdout.contains("[[markets]]"), "{}", checked.stdout);
    assert!(!checked.stdout.contains(cluster().password()));

    let halted = kyzlo_in(
        dir.path(),
        &toml,
        &["fleet", "halt", "--reason", "before the start"],
    );
    halted.assert_success("fleet halt");
    assert!(
        halted.stdout.contains("fleet halted (generation 1"),
        "{}",
        halted.stdout
    );
    // An instance starting into a halted fleet trades nothing.
    let finished = kyzlo_in(dir.path(), &toml, &["paper", "--duration", "20m"]);
    finished.assert_success("kyzlo paper as a fleet instance");
    for name in ["sol-usdc:", "jup-usdc:", "sol-usdc-b:"] {
        assert!(
            finished.stdout.contains(&format!("{name} 0 entries")),
            "{}",
            finished.stdout
        );
    }
    let status = kyzlo_in(dir.path(), &toml, &["fleet", "status"]);
    status.assert_success("fleet status");
    assert!(
        status.stdout.contains("fleet: HALTED (generation 1"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("wallets (3)"), "{}", status.stdout);
    assert!(
        status.stdout.contains("halted (fleet)"),
        "{}",
        status.stdout
    );

    let wrong = kyzlo_in(
        dir.path(),
        &toml,
        &[
            "fleet",
            "resume",
            "--approval-key",
            "not-the-approval-key-at-all",
        ],
    );
    assert!(!wrong.status.success(), "{}", wrong.stdout);
    let resumed = kyzlo_in(
        dir.path(),
        &toml,
        &[
            "fleet",
            "resume",
            "--approval-key",
            "fleet-binary-approval-key-0123",
        ],
    );
    resumed.assert_success("fleet resume");
    // Resumed: the next run trades every market.
    let finished = kyzlo_in(dir.path(), &toml, &["paper"]);
    finished.assert_success("kyzlo paper after the resume");
    assert!(
        !finished.stdout.contains("sol-usdc: 0 entries"),
        "{}",
        finished.stdout
    );

    let plain = kyzlo_in(
        dir.path(),
        &format!("{NO_API}\n[[markets]]\nname = \"a\"\n"),
        &["config", "check"],
    );
    assert!(!plain.status.success());
    assert!(plain.stderr.contains("journal.url"), "{}", plain.stderr);
}

#[test]
fn a_paper_fleet_refuses_the_one_market_options_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let toml = fleet_config("postgres://kyzlo:pw@127.0.0.1:1/none");
    for flag in ["--fresh", "--json"] {
        let finished = kyzlo_in(dir.path(), &toml, &["paper", flag]);
        assert!(!finished.status.success());
        assert!(finished.stderr.contains(flag), "{}", finished.stderr);
    }
    // One market on PostgreSQL: --fresh would start over beside a journal it keeps.
    let single = config("postgres://kyzlo:pw@127.0.0.1:1/none");
    let finished = kyzlo_in(dir.path(), &single, &["paper", "--fresh"]);
    assert!(!finished.status.success());
    assert!(finished.stderr.contains("--fresh"), "{}", finished.stderr);
    assert!(!dir.path().join("kyzlo-data").join("journal.db").exists());
}
