//! A fleet on a real PostgreSQL: instances running paper markets share the wallets out,
//! one owner per wallet at every moment, take over a killed instance's wallets, follow a
//! fleet halt within a bound, and carry out the operators' commands.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kyzlo_adapters_postgres::PgDatabase;
use kyzlo_application::testing::RecordingAlerts;
use kyzlo_config::{Config, File, MarketFile, Secret};
use kyzlo_fleet::launch::{Common, PaperLauncher};
use kyzlo_fleet::ops::{self, Request};
use kyzlo_fleet::{Instance, InstanceSettings};
use kyzlo_test_postgres::{Durability, PgCluster};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WALLETS: usize = 10;
const LEASE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(500);
const KEY: &str = "fleet-test-approval-key-0123456789";

fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| PgCluster::start(Durability::Fast).unwrap())
}

/// A configuration of `markets` paper markets on a fresh fleet database.
async fn config(prefix: &str, markets: usize, dir: &std::path::Path) -> Config {
    let prefix = prefix.to_owned();
    let url = tokio::task::spawn_blocking(move || cluster().create_database(&prefix).unwrap())
        .await
        .unwrap();
    let mut file = File::default();
    file.journal.url = Some(Secret::new(url));
    file.journal.lease_s = LEASE.as_secs();
    file.journal.fleet_unreachable_s = Some(2);
    file.journal.data_dir = dir.to_owned();
    file.api.approval_key = Some(Secret::new(KEY));
    file.markets = (0..markets)
        .map(|i| MarketFile {
            name: format!("m{i}"),
            keypair_path: None,
            pair: None,
            strategy: None,
            exit_plan: None,
        })
        .collect();
    Config::try_from(file).unwrap()
}

async fn database(config: &Config) -> PgDatabase {
    let kyzlo_config::JournalBackend::Postgres { url, .. } = &config.journal else {
        panic!("not a fleet configuration")
    };
    PgDatabase::connect(url.expose(), 2).await.unwrap()
}

struct Running {
    owner: String,
    held: watch::Receiver<BTreeSet<String>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<kyzlo_fleet::Outcome>,
}

async fn start(config: &Config, owner: &str) -> Running {
    let settings = InstanceSettings {
        owner: owner.to_owned(),
        lease: LEASE,
        poll: POLL,
        unreachable: Duration::from_secs(10),
        grace: Duration::from_secs(5),
        approval_key: config.api.approval_key.clone(),
    };
    let kyzlo_config::JournalBackend::Postgres { url, .. } = &config.journal else {
        panic!("not a fleet configuration")
    };
    let instance = Instance::open(url.expose(), ops::plans(config).unwrap(), settings)
        .await
        .unwrap();
    let held = instance.held();
    let launcher = Arc::new(PaperLauncher {
        common: Common {
            config: config.clone(),
            alerts: Arc::new(RecordingAlerts::default()),
            metrics: Vec::new(),
            clock: kyzlo_live::unix_clock(),
            dir: config.data_dir.clone(),
        },
        seed: 7,
        faults: config.paper.faults.clone(),
        duration: Duration::from_secs(3_600),
    });
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(instance.run(launcher, shutdown));
    Running {
        owner: owner.to_owned(),
        held,
        stop,
        task,
    }
}

/// Who runs each wallet now, by the instances' own account; panics on a wallet run by two.
fn owners(instances: &[&Running]) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    for i in instances {
        for wallet in i.held.borrow().iter() {
            if let Some(other) = owners.insert(wallet.clone(), i.owner.clone()) {
                panic!("wallet {wallet} run by {other} and {} at once", i.owner);
            }
        }
    }
    owners
}

/// Samples the owners every 20 ms until `done` says so or `within` passes; every sample
/// must show one owner per wallet at most.
async fn watch_until(
    instances: &[&Running],
    within: Duration,
    mut done: impl FnMut(&BTreeMap<String, String>) -> bool,
) -> (usize, Duration) {
    let started = Instant::now();
    let mut samples = 0;
    loop {
        let owners = owners(instances);
        samples += 1;
        if done(&owners) {
            return (samples, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "not done within {within:?}: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_over_ten_wallets_one_owner_each_at_every_moment_and_a_killed_ones_taken_over()
 {
    let dir = tempfile::tempdir().unwrap();
    let config = config("three", WALLETS, dir.path()).await;
    let db = database(&config).await;
    let (a, b, c) = (
        start(&config, "instance-a").await,
        start(&config, "instance-b").await,
        start(&config, "instance-c").await,
    );
    let all = [&a, &b, &c];
    let (samples, took) = watch_until(&all, Duration::from_secs(30), |o| o.len() == WALLETS).await;
    eprintln!("all {WALLETS} wallets running after {took:?} ({samples} samples)");
    // Steady: every wallet by exactly one instance, as the database says, for a while.
    let (samples, _) = watch_until(&all, Duration::from_secs(30), {
        let until = Instant::now() + Duration::from_secs(4);
        move |o| {
            assert_eq!(o.len(), WALLETS, "a wallet went unowned: {o:?}");
            Instant::now() >= until
        }
    })
    .await;
    let leases = db.leases().await.unwrap();
    let before = owners(&all);
    for l in &leases {
        assert_eq!(before.get(&l.lease.wallet), Some(&l.lease.owner), "{l:?}");
        assert!(l.expires_in_ms > 0);
    }
    eprintln!("{samples} samples steady");
    let status = ops::run(&config, Request::Status, "test").await.unwrap();
    assert!(status.contains("instances (3)"), "{status}");
    assert!(status.contains(&format!("wallets ({WALLETS})")), "{status}");

    // Kill the instance holding the most wallets: nothing of it runs on, nothing released.
    let victim = *all.iter().max_by_key(|i| i.held.borrow().len()).unwrap();
    let orphaned: BTreeSet<String> = victim.held.borrow().clone();
    assert!(!orphaned.is_empty());
    let epochs: BTreeMap<String, i64> = leases
        .iter()
        .map(|l| (l.lease.wallet.clone(), l.lease.epoch))
        .collect();
    victim.task.abort();
    let survivors: Vec<&Running> = all
        .iter()
        .copied()
        .filter(|i| i.owner != victim.owner)
        .collect();
    let killed = Instant::now();
    let (samples, took) =
        watch_until(&survivors, Duration::from_secs(30), |o| o.len() == WALLETS).await;
    eprintln!(
        "{} wallets of the killed instance taken over after {took:?} ({samples} samples)",
        orphaned.len()
    );
    assert!(
        killed.elapsed() >= LEASE - Duration::from_millis(500),
        "taken over before the lease could expire: {:?}",
        killed.elapsed()
    );
    for l in db.leases().await.unwrap() {
        if orphaned.contains(&l.lease.wallet) {
            assert_ne!(l.lease.owner, victim.owner);
            assert!(l.lease.epoch > epochs[&l.lease.wallet], "{l:?}");
        }
    }
    for i in survivors {
        let _ = i.stop.send(true);
    }
    let _ = b.task.await;
    let _ = c.task.await;
    // A clean stop releases the leases.
    assert!(
        db.leases()
            .await
            .unwrap()
            .iter()
            .all(|l| l.expires_in_ms <= 0),
        "leases left held after a clean stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_halt_reaches_every_market_of_every_instance_within_a_bound_and_a_resume_lifts_it()
{
    let dir = tempfile::tempdir().unwrap();
    let config = config("halt", 6, dir.path()).await;
    let db = database(&config).await;
    let instances = [
        start(&config, "halt-a").await,
        start(&config, "halt-b").await,
        start(&config, "halt-c").await,
    ];
    let all: Vec<&Running> = instances.iter().collect();
    watch_until(&all, Duration::from_secs(30), |o| o.len() == 6).await;
    let halted = ops::run(
        &config,
        Request::Halt {
            reason: "test halt".to_owned(),
        },
        "ops",
    )
    .await
    .unwrap();
    assert!(halted.contains("fleet halted"), "{halted}");
    let started = Instant::now();
    loop {
        let markets = db.markets().await.unwrap();
        if markets.len() == 6 && markets.iter().all(|m| m.state.starts_with("halted")) {
            break;
        }
        assert!(
            started.elapsed() < POLL * 4,
            "not every market halted within {:?}: {markets:?}",
            POLL * 4
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "every market of 3 instances halted {:?} after the fleet halt",
        started.elapsed()
    );

    let wrong = ops::run(
        &config,
        Request::Resume {
            key: "a-wrong-key-that-is-long-enough".to_owned(),
        },
        "ops",
    )
    .await;
    assert!(wrong.is_err(), "{wrong:?}");
    assert!(db.fleet_halt().await.unwrap().halted);
    ops::run(
        &config,
        Request::Resume {
            key: KEY.to_owned(),
        },
        "ops",
    )
    .await
    .unwrap();
    let started = Instant::now();
    loop {
        let markets = db.markets().await.unwrap();
        if markets.iter().all(|m| m.state.starts_with("active")) {
            break;
        }
        assert!(started.elapsed() < POLL * 4, "{markets:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in &instances {
        let _ = i.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_exit_is_answered_by_the_instance_holding_the_wallet_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("exit", 2, dir.path()).await;
    let running = start(&config, "exit-a").await;
    watch_until(&[&running], Duration::from_secs(30), |o| o.len() == 2).await;
    let plans = ops::plans(&config).unwrap();
    let answer = ops::run(
        &config,
        Request::Exit {
            wallet: plans[0].wallet.clone(),
            market: plans[0].market.clone(),
            position: 4_242,
        },
        "ops",
    )
    .await
    .unwrap_err()
    .to_string();
    // Taken and carried out by the holder, whose operator knows no such position.
    assert!(answer.starts_with("exit-a: refused"), "{answer}");
    assert!(
        answer.contains("4242") || answer.contains("pos-4242"),
        "{answer}"
    );
    let nobody = ops::run(
        &config,
        Request::Exit {
            wallet: "no-such-wallet".to_owned(),
            market: plans[0].market.clone(),
            position: 1,
        },
        "ops",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(nobody.contains("no instance holds"), "{nobody}");
    let _ = running.stop.send(true);
    let outcome = running.task.await.unwrap();
    assert_eq!(outcome.totals.len(), 2, "{outcome:?}");
}
