//! The chaos simulator end to end: every built-in scenario loads and runs, kyzlo never
//! executes an intent twice in any of them, defense costs nothing on a calm network,
//! a provider dead or lagging costs kyzlo what its failover and its proofs cost and
//! naive retry the whole outage, and scenario files are parsed with errors that name the
//! key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic by design

use std::path::Path;
use std::time::Duration;

use kyzlo_adapters_sim::faults::{EndpointFault, Topology};
use kyzlo_chaos::run_many;
use kyzlo_chaos::scenario::{
    BUILTIN, FromStop, OutageAroundStop, ScenarioError, builtin, from_toml, load,
};
use kyzlo_chaos::stats::summarize;

#[test]
fn kyzlo_never_executes_an_intent_twice_in_any_built_in_scenario() {
    for name in BUILTIN {
        let scenario = builtin(name).unwrap();
        let (results, trace) = run_many(&scenario, 60, 7, 2);
        let summary = summarize(name, 7, scenario.stop_loss_bps, &results);
        assert!(
            summary.triggered > 50,
            "{name}: the stop fired in {} runs",
            summary.triggered
        );
        assert_eq!(summary.policies.kyzlo.double_executions, 0, "{name}");
        assert!(trace.is_some(), "{name}: an example run is traced");
        // Without price noise at landing the oracle is a lower bound (with noise a fill
        // can be luckier than the oracle's base-slippage fill).
        assert!(
            scenario.faults.confirm_price_noise_bps > 0.0
                || summary.policies.kyzlo.realized_loss_pct.mean
                    >= summary.policies.oracle.realized_loss_pct.mean - 0.05,
            "{name}: kyzlo {:?} oracle {:?}",
            summary.policies.kyzlo.realized_loss_pct,
            summary.policies.oracle.realized_loss_pct
        );
    }
}

#[test]
fn bug_003_bounds_kyzlo_far_below_naive_retry() {
    let scenario = builtin("bug-003").unwrap();
    let (results, _) = run_many(&scenario, 400, 1, 2);
    let s = summarize("bug-003", 1, scenario.stop_loss_bps, &results);
    let (naive, kyzlo) = (s.policies.naive, s.policies.kyzlo);
    assert!(
        naive.realized_loss_pct.mean >= 12.0,
        "naive {:?}",
        naive.realized_loss_pct
    );
    assert!(kyzlo.realized_loss_pct.mean < naive.realized_loss_pct.mean / 2.0);
    assert_eq!(kyzlo.double_executions, 0);
    assert!(kyzlo.exit_time_s.p50 < 30.0);
}

#[test]
fn naive_retry_sells_twice_when_an_outage_hides_its_landings() {
    // Blind to confirmations during the blackout, naive retry sends a new transaction
    // while the first one has landed; kyzlo proves each attempt dead before the next.
    let scenario = builtin("rpc-blackout").unwrap();
    let (results, _) = run_many(&scenario, 400, 1, 2);
    let s = summarize("rpc-blackout", 1, scenario.stop_loss_bps, &results);
    assert!(
        s.policies.naive.double_executions > 0,
        "naive {:?}",
        s.policies.naive
    );
    assert_eq!(s.policies.kyzlo.double_executions, 0);
}

#[test]
fn on_a_calm_network_defense_costs_nothing() {
    let scenario = builtin("calm").unwrap();
    let (results, _) = run_many(&scenario, 100, 3, 2);
    let s = summarize("calm", 3, scenario.stop_loss_bps, &results);
    let (kyzlo, oracle) = (s.policies.kyzlo, s.policies.oracle);
    assert!((kyzlo.realized_loss_pct.mean - oracle.realized_loss_pct.mean).abs() < 0.01);
    assert!(
        (kyzlo.attempts_mean - 1.0).abs() < 1e-9,
        "one transaction per exit"
    );
    assert_eq!(kyzlo.halts, 0);
}

#[test]
fn a_dead_primary_provider_costs_kyzlo_little_and_naive_the_whole_outage() {
    let scenario = builtin("provider-outage").unwrap();
    let (results, _) = run_many(&scenario, 300, 1, 2);
    let s = summarize("provider-outage", 1, scenario.stop_loss_bps, &results);
    let (naive, kyzlo, oracle) = (s.policies.naive, s.policies.kyzlo, s.policies.oracle);
    // kyzlo's client probes every provider in the background and hedges its reads, so the
    // dead one is passed over; naive's only RPC is the dead one, so nothing it sends lands
    // before the outage ends, 80 s after the stop.
    assert!(kyzlo.exit_time_s.p50 < 5.0, "{kyzlo:?}");
    for r in results.iter().filter(|r| r.stop_at.is_some()) {
        assert!(r.naive.exit_time >= Duration::from_secs(79), "{r:?}");
    }
    assert!(kyzlo.excess_loss_pct.mean < naive.excess_loss_pct.mean / 5.0);
    assert!(kyzlo.excess_loss_pct.mean >= oracle.excess_loss_pct.mean);
    assert_eq!(kyzlo.double_executions, 0);
    // Where kyzlo's excess goes: still mostly preparing its first attempt (a read that
    // waits its hedge delay, or the timeout before the first probe found the provider dead).
    let b = s.loss_breakdown;
    assert!(b.preparation > 0.6 * b.total, "{b:?}");
    assert!(b.residual.abs() < 1e-9);
}

#[test]
fn a_lagging_provider_is_tried_last_by_kyzlo_and_refuses_naive_s_fresh_blockhashes() {
    let scenario = builtin("lagging-provider").unwrap();
    let (results, _) = run_many(&scenario, 300, 1, 2);
    let s = summarize("lagging-provider", 1, scenario.stop_loss_bps, &results);
    let (kyzlo, oracle) = (s.policies.kyzlo, s.policies.oracle);
    // Naive builds on the newest blockhash, which the lagging primary has not seen: every
    // send is refused at its preflight until the lag ends.
    for r in results.iter().filter(|r| r.stop_at.is_some()) {
        assert!(r.naive.exit_time >= Duration::from_secs(79), "{r:?}");
    }
    // kyzlo's client probes every provider and tries the one 60 slots behind the others
    // last: no attempt waits for the lagging view to see its expiry (which cost up to 25 s
    // when it was asked first).
    assert!(kyzlo.exit_time_s.p50 < 2.0, "{kyzlo:?}");
    assert!(kyzlo.exit_time_s.p99 < 10.0, "{kyzlo:?}");
    assert!(kyzlo.excess_loss_pct.mean >= oracle.excess_loss_pct.mean);
    assert_eq!(kyzlo.double_executions, 0);
    let b = s.loss_breakdown;
    assert!(b.death_wait < 0.1 * b.total.max(f64::EPSILON), "{b:?}");
}

#[test]
fn provider_outages_in_a_scenario_file_are_placed_around_the_stop_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = |outage: &str| {
        format!(
            "name = \"x\"\n[market]\nkind = \"generated\"\n[faults]\ncluster = \"adversarial\"\n[[faults.provider_outages]]\n{outage}"
        )
    };
    let s = from_toml(
        &text(
            "endpoint = 1\nkind = \"lagging\"\nlag_slots = 30\nfrom_stop_s = -5\nto_stop_s = 40\n",
        ),
        &dir.path().join("good.toml"),
    )
    .unwrap();
    assert_eq!(s.faults.cluster.topology, Topology::Endpoints);
    assert_eq!(
        s.outages_around_stop,
        vec![OutageAroundStop {
            endpoint: 1,
            from: FromStop::Before(Duration::from_secs(5)),
            until: FromStop::After(Duration::from_secs(40)),
            fault: EndpointFault::Lagging { slots: 30 },
        }]
    );
    let cases = [
        (
            "endpoint = 3\nkind = \"down\"\nfrom_stop_s = 0\nto_stop_s = 9\n",
            "faults.provider_outages.endpoint",
        ),
        (
            "endpoint = 0\nkind = \"lagging\"\nfrom_stop_s = 0\nto_stop_s = 9\n",
            "faults.provider_outages.lag_slots",
        ),
        (
            "endpoint = 0\nkind = \"down\"\nfrom_stop_s = 9\nto_stop_s = 3\n",
            "faults.provider_outages",
        ),
        (
            "endpoint = 0\nkind = \"asleep\"\nfrom_stop_s = 0\nto_stop_s = 9\n",
            "asleep",
        ),
    ];
    for (outage, key) in cases {
        let err = from_toml(&text(outage), &dir.path().join("bad.toml")).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let scenario = builtin("late-landing").unwrap();
    let (one, _) = run_many(&scenario, 12, 5, 1);
    let (two, _) = run_many(&scenario, 12, 5, 2);
    assert_eq!(one, two);
}

#[test]
fn scenario_files_are_parsed_and_bad_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"
name = "mine"
stop_loss_bps = 400
[market]
kind = "generated"
regime = "crash"
crash_drop_pct = 15.0
crash_over_s = 60.0
[faults]
profile = "flaky"
send_timeout = 0.4
blackouts_s = [[10, 20]]
"#;
    let s = from_toml(good, &dir.path().join("mine.toml")).unwrap();
    assert_eq!((s.name.as_str(), s.stop_loss_bps), ("mine", 400));
    assert!((s.faults.send_timeout - 0.4).abs() < 1e-12);
    assert_eq!(s.faults.blackouts.len(), 1);

    let cases = [
        (
            "name = \"x\"\nstop_los_bps = 3\n[market]\nkind = \"generated\"\n",
            "stop_los_bps",
        ),
        (
            "name = \"x\"\nstop_loss_bps = 10000\n[market]\nkind = \"generated\"\n",
            "stop_loss_bps",
        ),
        (
            "name = \"x\"\n[market]\nkind = \"generated\"\nregime = \"boom\"\n",
            "market.regime",
        ),
        (
            "name = \"x\"\n[market]\nkind = \"generated\"\n[faults]\nsend_timeout = 1.5\n",
            "faults.send_timeout",
        ),
        (
            "name = \"x\"\n[market]\nkind = \"generated\"\n[faults]\nprofile = \"nope\"\n",
            "profile = \"nope\"",
        ),
        (
            "name = \"x\"\n[market]\nkind = \"generated\"\n[faults]\nprofile = \"nope\"\n",
            "`rpc-blackout`",
        ),
        (
            "name = \"x\"\n[market]\nkind = \"generated\"\n[faults]\nblackouts_s = [[20, 10]]\n",
            "faults.blackouts_s",
        ),
        (
            "name = \"x\"\n[market]\nkind = \"replay\"\ncsv = \"missing.csv\"\n",
            "missing.csv",
        ),
    ];
    for (text, key) in cases {
        let err = from_toml(text, &dir.path().join("bad.toml")).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn a_replayed_csv_is_sliced_from_the_given_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("ts_ms,price\n");
    for i in 0..600u64 {
        let price = if i < 300 {
            100.0
        } else {
            100.0 - (i - 300) as f64 * 0.1
        };
        csv.push_str(&format!("{},{price}\n", 1_000_000 + i * 1_000));
    }
    std::fs::write(dir.path().join("day.csv"), csv).unwrap();
    let text =
        "name = \"replay\"\n[market]\nkind = \"replay\"\ncsv = \"day.csv\"\nfrom_ts_ms = 1250000\n";
    let path = dir.path().join("replay.toml");
    std::fs::write(&path, text).unwrap();
    let s = load(path.to_str().unwrap()).unwrap();
    let (results, _) = run_many(&s, 5, 1, 1);
    // From 250 s in, the price falls 0.1 per second from 300 s: the 5% stop fires
    // after about 50 s of fall, i.e. about 100 s after the slice starts.
    let stop = results[0].stop_at.unwrap().as_secs();
    assert!((95..=106).contains(&stop), "{stop}");
    assert!(matches!(
        load("no-such-scenario"),
        Err(ScenarioError::Unknown { .. })
    ));
    assert!(Path::new(dir.path()).exists());
}

/// A replayed day: flat at 100 for 300 s, then falling 0.1 a second (the 5% stop fires
/// about 50 s into the fall).
fn falling_day(dir: &Path) {
    let mut csv = String::from("ts_ms,price\n");
    for i in 0..900u64 {
        let price = if i < 300 {
            100.0
        } else {
            (100.0 - (i - 300) as f64 * 0.1).max(20.0)
        };
        csv.push_str(&format!("{},{price}\n", 1_000_000 + i * 1_000));
    }
    std::fs::write(dir.join("day.csv"), csv).unwrap();
}

#[test]
fn a_blackout_placed_after_the_stop_holds_every_exit_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    falling_day(dir.path());
    let scenario = |faults: &str| {
        let text = format!(
            "name = \"day\"\nhorizon_s = 600.0\n[market]\nkind = \"replay\"\ncsv = \"day.csv\"\n[faults]\nprofile = \"none\"\n{faults}"
        );
        let path = dir.path().join("day.toml");
        std::fs::write(&path, text).unwrap();
        load(path.to_str().unwrap()).unwrap()
    };
    let quiet = scenario("");
    let dark = scenario("blackouts_after_stop_s = [[0, 30]]\n");
    assert_eq!(dark.blackouts_after_stop.len(), 1);
    let (quiet_runs, _) = run_many(&quiet, 4, 3, 1);
    let (dark_runs, _) = run_many(&dark, 4, 3, 1);
    for (q, d) in quiet_runs.iter().zip(&dark_runs) {
        assert_eq!(q.stop_at, d.stop_at, "the same path, the same stop");
        assert!(
            q.kyzlo.exit_time < std::time::Duration::from_secs(5),
            "{q:?}"
        );
        // Nothing lands while the RPC is dark: the exit closes after the 30 s window.
        assert!(
            d.kyzlo.exit_time >= std::time::Duration::from_secs(30),
            "{d:?}"
        );
    }
    // A window that ends before it starts is refused, naming the key.
    let bad = "name = \"x\"\n[market]\nkind = \"generated\"\n[faults]\nblackouts_after_stop_s = [[9, 3]]\n";
    let err = from_toml(bad, &dir.path().join("bad.toml")).unwrap_err();
    assert!(
        err.to_string().contains("faults.blackouts_after_stop_s"),
        "{err}"
    );
}

#[test]
fn a_scenario_whose_stop_is_never_hit_exits_2_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("ts_ms,price\n");
    for i in 0..900u64 {
        csv.push_str(&format!(
            "{},{}\n",
            1_000_000 + i * 1_000,
            100.0 + (i % 7) as f64 * 0.01
        ));
    }
    std::fs::write(dir.path().join("flat.csv"), csv).unwrap();
    let path = dir.path().join("flat.toml");
    std::fs::write(
        &path,
        "name = \"flat\"\n[market]\nkind = \"replay\"\ncsv = \"flat.csv\"\n",
    )
    .unwrap();
    let mut command = kyzlo_tests::common::kyzlo(dir.path());
    command.args(["chaos", "--scenario", path.to_str().unwrap(), "--runs", "5"]);
    let finished = kyzlo_tests::common::run(&mut command, std::time::Duration::from_secs(60));
    finished.assert_no_panic("chaos on a flat day");
    assert_eq!(finished.code(), Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("was hit in none of the 5 runs"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains("stop_loss_bps"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stdout.contains("naive"),
        "no table of zeros: {}",
        finished.stdout
    );
}

#[test]
fn on_a_durable_nonce_kyzlo_escalates_without_waiting_for_deaths_and_never_sells_twice() {
    let blockhash = builtin("bug-003").unwrap();
    let mut nonce = blockhash.clone();
    nonce.durable_nonce = true;
    let (on_blockhash, _) = run_many(&blockhash, 300, 1, 2);
    let (on_nonce, _) = run_many(&nonce, 300, 1, 2);
    let b = summarize("bug-003", 1, blockhash.stop_loss_bps, &on_blockhash);
    let n = summarize("bug-003", 1, nonce.stop_loss_bps, &on_nonce);
    assert_eq!(n.policies.kyzlo.double_executions, 0);
    // The same worlds: the oracle and naive do not change with kyzlo's mode.
    assert_eq!(
        n.policies.oracle.excess_loss_pct.mean,
        b.policies.oracle.excess_loss_pct.mean
    );
    // The next rung goes out beside the previous: the wait for a hung attempt's death
    // mostly goes, and with it most of the gap to the oracle.
    assert!(
        n.loss_breakdown.death_wait < 0.6 * b.loss_breakdown.death_wait,
        "{:?} {:?}",
        n.loss_breakdown,
        b.loss_breakdown
    );
    assert!(
        n.policies.kyzlo.excess_loss_pct.mean < b.policies.kyzlo.excess_loss_pct.mean,
        "{:?} {:?}",
        n.policies.kyzlo,
        b.policies.kyzlo
    );
    assert!(n.policies.kyzlo.attempts_mean > b.policies.kyzlo.attempts_mean);
}
