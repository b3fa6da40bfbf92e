//! Fleet failover on PostgreSQL: the explorer's adversarial worlds run with their journal
//! on a real throwaway cluster, every start of the bot a new instance that must take the
//! wallet's lease. The schedules kill the bot in the middle of exits (just after an exit
//! intent is journaled); the killed instance never releases its lease, so the next one
//! waits for it to expire by the database's clock, takes the wallet with a higher epoch,
//! reconciles, and settles the exit. The invariant checker judges what PostgreSQL holds:
//! no intent executed twice, no position lost or phantom, and every other rule of
//! `kyzlo_chaos::invariants`, over at least `KYZLO_FAILOVER_KILLS` (100) kills.
//!
//! `KYZLO_FAILOVER_SEED` moves the sample; a violation prints its seed.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

mod fleet_failover {
    pub mod blocking;
    pub mod read;
    pub mod store;
}

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_failover::blocking::block;
use fleet_failover::store::PgStore;
use kyzlo_adapters_postgres::PgDatabase;
use kyzlo_application::journal::{IntentAction, IntentHistory};
use kyzlo_chaos::explore::schedule::Schedule;
use kyzlo_chaos::explore::store::Ending;
use kyzlo_chaos::explore::world;
use kyzlo_chaos::invariants::check;
use kyzlo_test_postgres::{Durability, PgCluster};

/// How long a lease lasts: a killed instance's wallet is free again this long after its
/// last renewal.
const LEASE: Duration = Duration::from_millis(300);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The exits read from the store's tables, listed as the port's exit history lists them.
fn exits_of(store: &PgStore) -> Vec<IntentHistory> {
    use kyzlo_chaos::explore::store::DurableStore as _;
    let attempts = store.attempts();
    let mut exits: Vec<IntentHistory> = store
        .intents()
        .into_iter()
        .filter(|(i, _)| matches!(i.action, IntentAction::Exit(_)))
        .map(|(intent, outcome)| IntentHistory {
            attempts: attempts
                .iter()
                .filter(|(a, _)| a.intent == intent.intent)
                .copied()
                .collect(),
            intent,
            outcome,
        })
        .collect();
    exits.reverse();
    exits
}

#[derive(Debug, Default)]
struct Totals {
    runs: u64,
    kills: u64,
    mid_exit: u64,
    in_flight: u64,
    stale_refused: u64,
    waited: Duration,
    intents: u64,
    landings: u64,
}

#[test]
fn killed_instances_exits_are_taken_over_and_settled_once_on_postgres() {
    let want_kills = env_u64("KYZLO_FAILOVER_KILLS", 100);
    let first_seed = env_u64("KYZLO_FAILOVER_SEED", 1);
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = PgCluster::start(Durability::Fast).unwrap();
    let url = cluster.create_database("failover").unwrap();
    let db = block(runtime.handle(), {
        let url = url.clone();
        async move { PgDatabase::connect(&url, 4).await }
    })
    .unwrap();
    let reader = block(runtime.handle(), async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok::<_, tokio_postgres::Error>(Arc::new(client))
    })
    .unwrap();

    let mut totals = Totals::default();
    let mut failures = String::new();
    let mut seed = first_seed;
    while totals.kills < want_kills {
        let schedule = Schedule::failover(seed);
        let store = PgStore::new(
            db.clone(),
            reader.clone(),
            runtime.handle().clone(),
            format!("wallet-{seed}"),
            LEASE,
        );
        let run_started = Instant::now();
        let (evidence, stats) = world::run_on(&schedule, &store);
        let violations = check(&evidence);
        let takeovers = store.takeovers();

        // Every instance after the first took the wallet with a higher epoch; every kill
        // left a lease behind that only expiry freed, and its epoch's writes are refused.
        let epochs: Vec<i64> = takeovers.iter().map(|t| t.epoch).collect();
        assert!(
            epochs.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: epochs {epochs:?}"
        );
        let kills: Vec<_> = takeovers
            .iter()
            .filter(|t| matches!(t.after, Some((_, Ending::Killed))))
            .collect();
        assert_eq!(kills.len() as u64, u64::from(stats.crashes), "seed {seed}");
        for t in &kills {
            let (killed, _) = t.after.unwrap();
            assert!(t.epoch > killed, "seed {seed}: {t:?}");
            assert!(
                t.refused_claims > 0,
                "seed {seed}: the killed epoch {killed}'s lease was free at once: {t:?}"
            );
            assert!(
                t.stale_writes > 0 && t.stale_refused == t.stale_writes,
                "seed {seed}: a write of the killed epoch {killed} was not refused: {t:?}"
            );
        }
        assert_eq!(
            store.leases_lost(),
            0,
            "seed {seed}: a live instance lost its lease"
        );

        // The port reads the exits back as the tables the checker read hold them.
        assert_eq!(store.exit_history(), exits_of(&store), "seed {seed}");

        // Every exit a kill left unsettled was settled by a later instance.
        let unsettled: BTreeSet<_> = kills
            .iter()
            .flat_map(|t| t.unsettled_exits.iter().copied())
            .collect();
        let never_settled: Vec<_> = evidence
            .intents
            .iter()
            .filter(|(i, o)| unsettled.contains(&i.intent) && o.is_none())
            .map(|(i, _)| i.intent)
            .collect();
        if !never_settled.is_empty() {
            let _ = writeln!(
                failures,
                "seed {seed}: exits left by a killed instance never settled: {never_settled:?}"
            );
        }
        for v in &violations {
            let _ = writeln!(failures, "seed {seed}: {}: {v}", v.name());
        }

        let mid_exit = kills
            .iter()
            .filter(|t| !t.unsettled_exits.is_empty())
            .count() as u64;
        let in_flight = kills.iter().filter(|t| t.exits_with_attempts > 0).count() as u64;
        println!(
            "seed {seed}: {} kills ({mid_exit} mid-exit, {in_flight} with a signed exit), \
             epochs {epochs:?}, {} intents, {} landings, {} violations, {:.1} s",
            kills.len(),
            stats.intents,
            stats.landings,
            violations.len(),
            run_started.elapsed().as_secs_f64()
        );
        totals.runs += 1;
        totals.kills += kills.len() as u64;
        totals.mid_exit += mid_exit;
        totals.in_flight += in_flight;
        totals.stale_refused += kills
            .iter()
            .map(|t| u64::from(t.stale_refused))
            .sum::<u64>();
        totals.waited += kills.iter().map(|t| t.waited).sum::<Duration>();
        totals.intents += u64::from(stats.intents);
        totals.landings += u64::from(stats.landings);
        seed += 1;
    }
    println!(
        "seeds {first_seed}..{}: {} runs, {} kills, {} mid-exit ({} with a signed exit in \
         flight), {} stale-epoch writes refused, {} intents, {} landings, {:.1} s waiting for \
         expired leases, {:.1} s in all",
        seed - 1,
        totals.runs,
        totals.kills,
        totals.mid_exit,
        totals.in_flight,
        totals.stale_refused,
        totals.intents,
        totals.landings,
        totals.waited.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "violations on PostgreSQL:\n{failures}");
    assert!(
        totals.mid_exit * 2 >= totals.kills,
        "only {} of {} kills were in the middle of an exit",
        totals.mid_exit,
        totals.kills
    );
}
