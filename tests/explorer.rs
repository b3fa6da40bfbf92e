//! The explorer as a safety net on every run of the suite: the seeds that broke an
//! invariant before their fix, pinned with the knobs they were replayed with, and a fresh
//! sample of seeded adversarial worlds (lagging and inconsistent nodes, refused resends,
//! processed before confirmed, forks, crashes at every step, operator actions, failing
//! journal writes) run through the real bot and checked.
//!
//! `KYZLO_EXPLORER_RUNS` and `KYZLO_EXPLORER_SEED` widen or move the sample; a failure
//! prints each violation with the command that replays it.

#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::fmt::Write as _;

use kyzlo_chaos::explore::schedule::{Knob, Schedule};
use kyzlo_chaos::explore::{explore, explore_in, verify};

/// Seeds that broke invariants on the code before their fixes (commit d1fcaa8: `kyzlo
/// verify --runs 5000 --seed 1` there reports 10,662 violations, none here), the knobs
/// turned off when they were replayed, and what that code did with them.
const PINNED: &[(u64, &str, &str)] = &[
    (
        112,
        "router-lies",
        "defect 1: a resend refused after the deadline declared the live attempt failed; \
         journal holds 1017200449 of pos-1, the chain moved 0",
    ),
    (
        30,
        "router-lies,crash0,crash1,crash2,crash3",
        "defect 2: an attempt declared expired from a lagging node landed; intent-23 landed \
         twice",
    ),
    (
        204,
        "router-lies,many-nodes",
        "defect 3: reconciliation skipped a processed landing; journal holds 1078294261 of \
         pos-13, the chain moved 0",
    ),
    (
        30,
        "",
        "intent-23 landed twice; pos-4 journaled 0, the chain moved 2893120",
    ),
    (41, "", "intent-17 landed twice; pos-16 journaled 0"),
    (74, "", "intent-8 landed twice; pos-7 journaled 0"),
    (
        1,
        "",
        "pos-4 sold 1972388 more than it bought; pos-1 journaled 0",
    ),
    (2, "", "pos-1 sold 1397635 more than it bought"),
    (4, "", "pos-13 journaled 1095764586, the chain moved 0"),
    (13, "", "pos-4 journaled 954349483, the chain moved 0"),
    (
        18,
        "",
        "the final reconciliation did not settle every intent",
    ),
    (
        53,
        "",
        "the final reconciliation did not settle every intent",
    ),
    (326, "", "started in active after a halt"),
    (
        340,
        "",
        "started in active after a halt; intent-17 landed twice",
    ),
    (
        327,
        "",
        "intent-5 and intent-15 landed twice; intent-6 failed without an alert",
    ),
    (1451, "", "intent-3 failed without an alert"),
];

/// Seeds of nonce mode (`kyzlo verify --nonce`) that broke invariants on its first
/// version: a round was judged dead from a nonce read of a node behind the one the value
/// was read from (it showed an older value, taken for the value moving on) while an
/// attempt of it landed.
const PINNED_NONCE: &[(u64, &str)] = &[
    (1902, "pos-28 journaled 0, the chain moved 1107357428"),
    (
        1958,
        "pos-13 journaled 1259253433, the chain moved 773293433",
    ),
    (1969, "pos-7 sold 488320000 more than it bought"),
    (2004, "pos-19 journaled 0, the chain moved 1054621977"),
];

fn knobs(list: &str) -> Vec<Knob> {
    list.split(',')
        .filter(|k| !k.is_empty())
        .map(|k| k.parse().unwrap())
        .collect()
}

#[test]
fn every_pinned_seed_stays_fixed() {
    let mut broken = String::new();
    for &(seed, without, what) in PINNED {
        let schedule = Schedule::with_knobs_off(seed, &knobs(without));
        let verdict = verify(&schedule);
        for v in &verdict.violations {
            let _ = writeln!(
                broken,
                "seed {seed} (once: {what}): {}: {v}\n  replay: {}",
                v.name(),
                schedule.replay_command()
            );
        }
        assert!(
            verdict.stats.starts > 0,
            "seed {seed}: the bot never started"
        );
    }
    assert!(broken.is_empty(), "{broken}");
}

#[test]
fn a_sample_of_adversarial_worlds_breaks_no_invariant() {
    let runs = std::env::var("KYZLO_EXPLORER_RUNS").map_or(50_000, |v| {
        v.parse().expect("KYZLO_EXPLORER_RUNS: a number")
    });
    let seed = std::env::var("KYZLO_EXPLORER_SEED").map_or(1_000_000, |v| {
        v.parse().expect("KYZLO_EXPLORER_SEED: a number")
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let found = explore(runs, seed, threads, &[]);
    assert_eq!(found.runs, runs);
    assert!(
        u64::from(found.totals.landings) > runs,
        "the worlds traded: {:?}",
        found.totals
    );
    assert!(found.totals.crashes > 0, "and crashed: {:?}", found.totals);
    assert_eq!(found.violations(), 0, "{}", found.report(0, threads));
}

#[test]
fn every_pinned_nonce_seed_stays_fixed() {
    let mut broken = String::new();
    for &(seed, what) in PINNED_NONCE {
        let schedule = Schedule::with_knobs_off(seed, &[]).on_durable_nonce();
        let verdict = verify(&schedule);
        for v in &verdict.violations {
            let _ = writeln!(
                broken,
                "seed {seed} (once: {what}): {}: {v}\n  replay: {}",
                v.name(),
                schedule.replay_command()
            );
        }
        assert!(verdict.stats.starts > 0, "seed {seed}: never started");
    }
    assert!(broken.is_empty(), "{broken}");
}

#[test]
fn a_sample_of_worlds_in_nonce_mode_breaks_no_invariant_and_crashes_around_cancels() {
    let runs = std::env::var("KYZLO_EXPLORER_NONCE_RUNS").map_or(5_000, |v| {
        v.parse().expect("KYZLO_EXPLORER_NONCE_RUNS: a number")
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let found = explore_in(runs, 2_000_000, threads, &[], true);
    assert!(
        u64::from(found.totals.landings) > runs,
        "the worlds traded: {:?}",
        found.totals
    );
    assert!(
        found.totals.cancels > 0 && found.totals.nonce_crashes > 0,
        "cancels were sent and lives ended with attempts on the nonce unresolved: {:?}",
        found.totals
    );
    assert_eq!(found.violations(), 0, "{}", found.report(0, threads));
}

/// Nonce mode's loop checks the deadline against the microsecond the window ends at: a
/// window of a fraction of a microsecond more (the explorer's tightened deadlines are
/// such durations) was still open there, so a loop that slept until that end would look
/// again without time passing. Worlds on such a deadline must each end (a wall-clock
/// watchdog) and reach their cancels.
#[test]
fn a_nonce_exit_whose_deadline_is_not_whole_microseconds_ends() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cancels = 0;
        for seed in 1..=40 {
            let mut schedule = Schedule::with_knobs_off(seed, &[]).on_durable_nonce();
            schedule.exit_deadline = std::time::Duration::from_nanos(12_000_000_500);
            let verdict = verify(&schedule);
            assert!(verdict.violations.is_empty(), "seed {seed}");
            cancels += verdict.stats.cancels;
        }
        let _ = done.send(cancels);
    });
    let cancels = finished
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("every world ended (a loop that never yields would hang here)");
    assert!(
        cancels > 0,
        "exits reached their deadline with attempts in flight"
    );
}
