//! `kyzlo paper` end to end: a run prints its summary, a second run in the same data folder continues from the first one's wallet and `--fresh` starts over, a replayed `--prices` CSV (`ts_ms,price` or OHLCV) drives the bot through a dip and a crash, and malformed CSVs or fault profiles are refused with the file, line and column or the allowed names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kyzlo_tests::common;

use std::path::Path;
use std::time::Duration;

use common::{Finished, NO_API, kyzlo, noise, ohlcv_csv, price_csv, run, write_file};

const LIMIT: Duration = Duration::from_secs(60);

/// `kyzlo paper --config <dir>/kyzlo.toml ARGS` in `dir` (the API off, so parallel runs
/// never share a port), to its end.
fn paper(dir: &Path, config: &str, args: &[&str]) -> Finished {
    let config = write_file(dir, "kyzlo.toml", &format!("{config}\n{NO_API}"));
    let mut command = kyzlo(dir);
    command.arg("paper").arg("--config").arg(&config).args(args);
    run(&mut command, LIMIT)
}

/// The summary line that starts with `prefix`.
fn line<'a>(summary: &'a str, prefix: &str) -> &'a str {
    summary
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in the summary:\n{summary}"))
}

/// The wallet before and after, as printed: ("0.0000 SOL + 1000.00 USDC", "...").
fn wallets(summary: &str) -> (String, String) {
    let wallet = line(summary, "wallet: ").trim_start_matches("wallet: ");
    let (start, rest) = wallet.split_once(" -> ").expect("wallet: A -> B");
    let end = rest.split(';').next().unwrap();
    (start.to_owned(), end.to_owned())
}

/// The first number after `prefix` on the line that starts with it.
fn number_after(summary: &str, line_prefix: &str, prefix: &str) -> f64 {
    let l = line(summary, line_prefix);
    let rest = &l[l
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} in {l:?}"))
        + prefix.len()..];
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?} in {l:?}"))
}

const NEW_WALLET: &str = "1.0000 SOL + 1000.00 USDC";

#[test]
fn a_paper_run_on_the_defaults_trades_a_few_times_an_hour_and_splits_gross_from_costs() {
    let dir = tempfile::tempdir().unwrap();
    let finished = paper(dir.path(), "", &[]);
    finished.assert_success("kyzlo paper");
    let out = &finished.stdout;
    for prefix in [
        "paper run: 6.0 h of market, price ",
        "trades: ",
        "exits by reason: ",
        "attempts: ",
        "halts: ",
        "wallet: ",
        "PnL: ",
        "report: ",
    ] {
        line(out, prefix);
    }
    assert!(
        dir.path().join("kyzlo-data/paper-report.html").exists(),
        "the report by default"
    );
    // The embedded market trades, but only on dips deep enough to pay for the round trip:
    // a few an hour at most (the strategy of old made 412 round trips here).
    let entries = number_after(out, "trades: ", "trades: ");
    assert!((1.0..=18.0).contains(&entries), "{out}");
    assert!(number_after(out, "trades: ", "), ") >= 1.0, "{out}");
    assert!(
        number_after(out, "attempts: ", "ticks ") >= 21_600.0,
        "{out}"
    );
    // PnL = gross - costs, costs = fees + slippage, all printed.
    let pnl = number_after(out, "PnL: ", "PnL: ");
    let gross = number_after(out, "PnL: ", "gross ");
    let costs = number_after(out, "PnL: ", "costs ");
    let fees = number_after(out, "PnL: ", "(fees ");
    let slippage = number_after(out, "PnL: ", "slippage ");
    assert!(costs > 0.0 && fees > 0.0, "{out}");
    assert!((costs - fees - slippage).abs() <= 0.011, "{out}");
    assert!((pnl - (gross - costs)).abs() <= 0.011, "{out}");
    assert_eq!(wallets(out).0, NEW_WALLET);
    assert!(dir.path().join("kyzlo-data/journal.db").exists());
    assert!(dir.path().join("kyzlo-data/paper-wallet.json").exists());
}

#[test]
fn a_second_run_continues_from_the_first_runs_wallet_and_fresh_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let first = paper(dir.path(), BUSY, &["--duration", "10m"]);
    first.assert_success("first run");
    let (start1, end1) = wallets(&first.stdout);
    assert_eq!(start1, NEW_WALLET);
    assert_ne!(end1, start1, "the first run must trade:\n{}", first.stdout);

    let second = paper(dir.path(), BUSY, &["--duration", "10m"]);
    second.assert_success("second run");
    let (start2, end2) = wallets(&second.stdout);
    assert_eq!(start2, end1, "the second run starts where the first ended");

    let fresh = paper(dir.path(), BUSY, &["--duration", "10m", "--fresh"]);
    fresh.assert_success("fresh run");
    let (start3, _) = wallets(&fresh.stdout);
    assert_eq!(
        start3, NEW_WALLET,
        "--fresh starts a new wallet (was {end2})"
    );
    let data = dir.path().join("kyzlo-data");
    for aside in ["journal.db.old-1", "paper-wallet.json.old-1"] {
        assert!(data.join(aside).exists(), "{aside} kept aside");
        assert!(fresh.stderr.contains(aside), "{}", fresh.stderr);
    }
}

/// 400 one-second prices: calm at 100, a dip to 98.8 (a mean-reversion entry), calm,
/// then a crash to 80 (through the 5% stop) and calm again.
fn dip_then_crash() -> Vec<f64> {
    (0..400u64)
        .map(|i| {
            let level = match i {
                0..60 => 100.0,
                60..200 => 98.8,
                200..230 => 98.8 - (98.8 - 80.0) * (i - 199) as f64 / 30.0,
                _ => 80.0,
            };
            level + 0.05 * noise(1, i)
        })
        .collect()
}

/// No strategy exit (z never reaches 50) and no faults: the stop-loss is the exit.
/// A 20-second window that enters every 2-sigma dip whatever it costs, and exits only by
/// the exit plan: the strategy of old, to drive the bot through a short series.
const STOP_ONLY: &str = "[strategy]\nwindow_s = 20.0\ncost_aware = false\nexit_z = 50.0\n[trading]\nentry_fraction = 1.0\n[paper]\nfaults = \"none\"\n";

/// The strategy of old on the embedded market: many short round trips.
const BUSY: &str = "[strategy]\nwindow_s = 20.0\ncost_aware = false\n";

fn check_dip_and_crash(finished: &Finished, prices: &[f64]) {
    finished.assert_success("kyzlo paper --prices");
    let out = &finished.stdout;
    let first = line(out, "paper run: ");
    assert!(
        first.starts_with(&format!(
            "paper run: 0.1 h of market, price {:.3} -> ",
            prices[0]
        )),
        "{out}"
    );
    let last = number_after(out, "paper run: ", " -> ");
    assert!((79.5..80.5).contains(&last), "last price {last}:\n{out}");
    assert!(number_after(out, "trades: ", "trades: ") >= 1.0, "{out}");
    assert!(
        line(out, "exits by reason: ").contains("stop_loss"),
        "the crash closes the position at its stop:\n{out}"
    );
}

#[test]
fn replayed_prices_drive_the_bot_through_a_dip_and_a_crash_in_both_csv_forms() {
    let prices = dip_then_crash();
    let ts0 = 1_621_209_600_000;

    let plain = tempfile::tempdir().unwrap();
    let file = write_file(plain.path(), "prices.csv", &price_csv(ts0, &prices));
    let by_price = paper(
        plain.path(),
        STOP_ONLY,
        &["--prices", file.to_str().unwrap()],
    );
    check_dip_and_crash(&by_price, &prices);

    let candles = tempfile::tempdir().unwrap();
    let file = write_file(candles.path(), "candles.csv", &ohlcv_csv(ts0, &prices));
    let by_close = paper(
        candles.path(),
        STOP_ONLY,
        &["--prices", file.to_str().unwrap()],
    );
    check_dip_and_crash(&by_close, &prices);

    // The candles' closes are the same series: the same seeded run trades the same way.
    for prefix in ["paper run: ", "trades: ", "exits by reason: "] {
        assert_eq!(
            line(&by_price.stdout, prefix),
            line(&by_close.stdout, prefix)
        );
    }
}

#[test]
fn malformed_csvs_are_refused_naming_the_file_line_and_column() {
    let good = "ts_ms,price\n1000,10.5\n2000,10.6\n";
    // (what, text, line, column, message)
    let cases = [
        (
            "a price that is not a number",
            format!("{good}3000,10.7\n4000,abc\n"),
            5,
            2,
            "price is not a number (\"abc\")",
        ),
        (
            "an extra column",
            format!("{good}3000,10.7,7\n"),
            4,
            3,
            "extra column (\"7\")",
        ),
        (
            "a missing column",
            format!("{good}3000\n"),
            4,
            2,
            "missing column `price`",
        ),
        (
            "a missing candle column",
            "ts_ms,open,high,low,close,volume\n1000,1,1,1,1,1\n2000,1,1,1\n".to_owned(),
            3,
            5,
            "missing column `close`",
        ),
        (
            "a timestamp that does not increase",
            format!("{good}2000,10.7\n"),
            4,
            1,
            "timestamp 2000 is not after the previous one (2000)",
        ),
    ];
    let mut problems = Vec::new();
    for (what, text, line, column, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "bad.csv", &text);
        let finished = paper(dir.path(), "", &["--prices", file.to_str().unwrap()]);
        finished.assert_no_panic(what);
        let expected = format!("{}:{line}:{column}: {message}", file.display());
        if finished.code() != Some(1) || !finished.stderr.contains(&expected) {
            problems.push(format!(
                "{what}: expected exit 1 and {expected:?}, got {:?} and {:?}",
                finished.code(),
                finished.stderr
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn an_unknown_fault_profile_is_refused_naming_the_allowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let finished = paper(
        dir.path(),
        "",
        &["--faults", "nonsense", "--duration", "1m"],
    );
    finished.assert_no_panic("--faults nonsense");
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    let message = finished
        .stderr
        .lines()
        .find(|l| l.contains("--faults"))
        .unwrap_or_else(|| panic!("no --faults message: {}", finished.stderr));
    for name in [
        "\"nonsense\"",
        "none",
        "flaky",
        "rpc-blackout",
        "late-landing",
        "rate-limited",
        "slippage-storm",
        "node-behind",
    ] {
        assert!(message.contains(name), "{name} in {message:?}");
    }
    assert!(
        !dir.path().join("kyzlo-data/journal.db").exists(),
        "nothing is started on a refused argument"
    );
}

#[test]
fn a_paper_report_is_written_as_html_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let finished = paper(dir.path(), "", &["--report", report.to_str().unwrap()]);
    finished.assert_success("kyzlo paper --report");
    assert!(
        finished
            .stdout
            .contains(&format!("report: {}", report.display())),
        "{}",
        finished.stdout
    );
    let html = std::fs::read_to_string(&report).unwrap();
    for part in [
        "<h1>kyzlo paper report</h1>",
        "<svg id=\"equity\"",
        "<svg id=\"drawdown\"",
        "Gross (before costs)",
        "Max drawdown",
        "Sharpe / Sortino",
        ">stop_loss</td>",
        "window_s = 1800.0",
    ] {
        assert!(html.contains(part), "{part} missing from the report");
    }
    for fetch in ["src=", "<link", "@import", "url("] {
        assert!(
            !html.contains(fetch),
            "{fetch}: the page must open without a network"
        );
    }

    let json = paper(dir.path(), "", &["--fresh", "--json"]);
    json.assert_success("kyzlo paper --json");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(v["equity"].as_array().unwrap().len() >= 500);
    let exits = v["exits"].as_array().unwrap();
    let closed: u64 = v["exits_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(exits.len() as u64, closed);
    for exit in exits {
        let attempts = exit["attempts"].as_array().unwrap();
        assert!(!attempts.is_empty(), "{exit}");
        let landed = attempts.iter().find(|a| a["outcome"] == "landed").unwrap();
        assert!(landed["time_to_land_s"].as_f64().unwrap() >= 0.0, "{exit}");
        assert!(
            landed["fee_paid_lamports"].as_u64().unwrap() >= 5_000,
            "{exit}"
        );
    }
    let drawdown = v["max_drawdown"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&drawdown), "{drawdown}");
    assert_eq!(v["seed"], 20_210_519);
    let pnl = v["pnl"].as_f64().unwrap();
    let gross = v["gross"].as_f64().unwrap();
    let costs = v["fees"].as_f64().unwrap() + v["slippage"].as_f64().unwrap();
    assert!((pnl - (gross - costs)).abs() < 1e-6);
}

#[test]
fn a_paper_run_on_a_durable_nonce_builds_every_attempt_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let account = "SysvarRent111111111111111111111111111111111";
    let finished = paper(
        dir.path(),
        &format!("[nonce]\naccount = \"{account}\"\n"),
        &["--json"],
    );
    finished.assert_success("kyzlo paper on a nonce");
    let v: serde_json::Value = serde_json::from_str(&finished.stdout).unwrap();
    assert!(
        !v["exits"].as_array().unwrap().is_empty(),
        "{}",
        finished.stdout
    );
    // Every attempt the journal holds was built on the simulated account: the nonce's
    // value as its blockhash, the account named.
    let db = rusqlite::Connection::open(dir.path().join("kyzlo-data/journal.db")).unwrap();
    let (all, on_nonce, unsettled): (i64, i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(nonce_account),
                    (SELECT COUNT(*) FROM intents WHERE outcome IS NULL)
             FROM attempts WHERE nonce_account = ?1 OR nonce_account IS NULL",
            [account],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(all > 0);
    assert_eq!(on_nonce, all, "every attempt on the nonce");
    assert_eq!(unsettled, 0, "every intent settled");
}
