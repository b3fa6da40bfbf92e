//! The pages an operator looks at, in a real headless Chromium: the paper report, the
//! chaos report, and the live status page of a running paper bot (it shows a halt made
//! with `kyzlo halt` within two seconds, and its force-exit button sends the
//! authenticated request). Each test saves a screenshot in `target/screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kyzlo_tests::browser::Browser;
use kyzlo_tests::common::{
    ChildGuard, flat_then_dip, http, kyzlo, price_csv, run, wait_until, write_file,
};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "status-page-token-0123456789";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_paper_report_opens_offline_with_its_charts_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let config = write_file(dir.path(), "kyzlo.toml", "[api]\nlisten = \"\"\n");
    let mut command = kyzlo(dir.path());
    command
        .args(["paper", "--config"])
        .arg(&config)
        .arg("--report")
        .arg(&report);
    run(&mut command, WAIT).assert_success("kyzlo paper --report");

    let mut browser = Browser::start(1000, 1400);
    browser.open(&format!("file://{}", report.display()));
    let text = browser.text();
    for part in [
        "kyzlo paper report",
        "Summary",
        "Gross (before costs)",
        "Max drawdown",
        "Equity",
        "Drawdown",
        "slippage asked (bps)",
        "Configuration",
    ] {
        assert!(text.contains(part), "{part} not on the page:\n{text}");
    }
    // Every exit has a row naming its reason and outcome (not the configuration's text).
    let exits = browser.eval(
        "[...document.querySelectorAll('#exits tbody tr')].filter(r => r.cells.length >= 5).map(r => [r.cells[3].textContent, r.cells[4].textContent])",
    );
    let exits = exits.as_array().unwrap();
    let kinds = [
        "stop_loss",
        "trailing_stop",
        "breakeven",
        "partial_take_profit",
        "take_profit",
        "strategy",
        "emergency",
        "operator",
    ];
    let mut closed = 0;
    for row in exits {
        let (reason, outcome) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        assert!(kinds.contains(&reason) || reason == "entry", "{row}");
        assert!(!outcome.is_empty(), "{row}");
        closed += usize::from(kinds.contains(&reason) && outcome == "filled");
    }
    assert!(closed >= 1, "no filled exit: {exits:?}");
    // The equity curve is drawn inside its chart.
    let points = browser.eval(
        "document.querySelector('#equity polyline').getAttribute('points').split(' ').length",
    );
    assert!(points.as_u64().unwrap() >= 500, "{points}");
    let inside = browser.eval(
        "(() => { const s = document.querySelector('#equity'); const b = s.getBoundingClientRect(); \
         return [...s.querySelectorAll('text')].every(t => { const r = t.getBoundingClientRect(); \
         return r.left >= b.left - 1 && r.right <= b.right + 1 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1; }); })()",
    );
    assert_eq!(inside, serde_json::Value::Bool(true), "no label clipped");
    let shot = browser.screenshot("paper-report");
    assert!(std::fs::metadata(shot).unwrap().len() > 10_000);
}

#[test]
fn the_chaos_report_shows_the_table_and_the_minute_around_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("chaos.html");
    let mut command = kyzlo(dir.path());
    command
        .args([
            "chaos",
            "--scenario",
            "rpc-blackout",
            "--runs",
            "200",
            "--report",
        ])
        .arg(&report);
    run(&mut command, WAIT).assert_success("kyzlo chaos --report");

    let mut browser = Browser::start(1100, 1600);
    browser.open(&format!("file://{}", report.display()));
    let text = browser.text();
    for part in ["rpc-blackout", "naive", "kyzlo", "oracle"] {
        assert!(text.contains(part), "{part} not on the page:\n{text}");
    }
    let rows = browser.eval("document.querySelectorAll('table tr').length");
    assert!(
        rows.as_u64().unwrap() >= 4,
        "a table with a row per policy: {rows}"
    );
    let inside = browser.eval(
        "[...document.querySelectorAll('svg')].every(s => { const b = s.getBoundingClientRect(); \
         return [...s.querySelectorAll('text')].every(t => { const r = t.getBoundingClientRect(); \
         return r.left >= b.left - 1 && r.right <= b.right + 1 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1; }); })",
    );
    assert_eq!(inside, serde_json::Value::Bool(true), "no label clipped");
    // The minute around one run's stop: its price line, where the stop fired, and each
    // policy's sends marked on it.
    let points = browser.eval(
        "document.querySelector('#example polyline').getAttribute('points').split(' ').length",
    );
    assert!(points.as_u64().unwrap() >= 10, "{points}");
    let marks = browser.eval(
        "(() => { const t = [...document.querySelectorAll('#example text')].map(t => t.textContent);          return [t.includes('stop fires'), t.filter(x => x === '●').length]; })()",
    );
    assert_eq!(marks[0], serde_json::Value::Bool(true), "{marks}");
    assert!(
        marks[1].as_u64().unwrap() >= 2,
        "first sends marked: {marks}"
    );
    browser.screenshot("chaos-report");
}

#[test]
fn the_status_page_shows_a_halt_within_two_seconds_and_force_exits_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let prices = write_file(dir.path(), "prices.csv", &price_csv(0, &flat_then_dip()));
    let config = write_file(
        dir.path(),
        "bot.toml",
        &format!(
            "[trading]\nentry_fraction = 1.0\n\
             [strategy]\nwindow_s = 10.0\ncost_aware = false\nentry_z = 2.5\nexit_z = 50.0\n\
             [api]\nlisten = \"127.0.0.1:0\"\nbearer_token = \"{TOKEN}\"\n\
             [paper]\nfaults = \"none\"\n"
        ),
    );
    let stderr = dir.path().join("stderr.txt");
    let mut command = kyzlo(dir.path());
    command
        .args(["paper", "--speed", "10", "--config"])
        .arg(&config)
        .arg("--prices")
        .arg(&prices)
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&stderr).unwrap()));
    let mut bot = ChildGuard::spawn(&mut command);
    let addr: SocketAddr = wait_until(WAIT, "the operator API's address", || {
        if let Some(status) = bot.wait_for(Duration::ZERO) {
            panic!("kyzlo paper ended early ({status}):\n{}", read(&stderr));
        }
        read(&stderr)
            .lines()
            .find_map(|l| l.strip_prefix("operator API listening on http://"))
            .map(|a| a.trim().parse().unwrap())
    });
    let status = || http(addr, "GET", "/status", None, None).json();
    wait_until(WAIT, "a position", || {
        (status()["positions"].as_array().map_or(0, Vec::len) == 1).then_some(())
    });

    let mut browser = Browser::start(1300, 900);
    browser.open(&format!("http://{addr}/"));
    browser.wait_for(
        "document.getElementById('state').textContent === 'active' && !!document.querySelector('button[data-exit]')",
        Duration::from_secs(10),
    );

    // Each position with its exit plan: the stop, the peak, the next take-profit.
    let plan = browser.text();
    assert!(
        plan.contains("stop ") && plan.contains("peak ") && plan.contains("next take-profit"),
        "{plan}"
    );

    // A halt from the command line shows within two seconds, with its reason.
    let url = format!("http://{addr}");
    let mut halt = kyzlo(dir.path());
    halt.args([
        "halt",
        "--url",
        &url,
        "--token",
        TOKEN,
        "--reason",
        "page test",
    ]);
    run(&mut halt, WAIT).assert_success("kyzlo halt");
    let shown_after = browser.wait_for(
        "document.getElementById('state').textContent === 'halted'",
        Duration::from_secs(2),
    );
    assert!(shown_after <= Duration::from_secs(2), "{shown_after:?}");
    browser.wait_for(
        "document.getElementById('reason').textContent.includes('page test') && document.body.innerText.includes('trading_halted')",
        Duration::from_secs(2),
    );

    // Without the token the button's request is refused; with it, the exit starts.
    browser.eval("document.querySelector('button[data-exit]').click(); true");
    browser.wait_for(
        "document.getElementById('action').textContent.includes('refused (401)')",
        Duration::from_secs(5),
    );
    assert_eq!(status()["positions"][0]["exiting"], false);
    browser.eval(&format!(
        "(() => {{ const t = document.getElementById('token'); t.value = '{TOKEN}'; \
         t.dispatchEvent(new Event('change')); document.querySelector('button[data-exit]').click(); return true; }})()"
    ));
    browser.wait_for(
        "document.getElementById('action').textContent.includes('started: intent')",
        Duration::from_secs(5),
    );
    wait_until(WAIT, "the force-exit to close the position", || {
        status()["positions"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    let history = http(addr, "GET", "/exits/history?limit=1", None, None).json();
    assert_eq!(history["exits"][0]["kind"], "operator", "{history}");
    browser.wait_for(
        "document.body.innerText.includes('operator')",
        Duration::from_secs(5),
    );
    browser.screenshot("status-page");
    bot.interrupt();
    let _ = bot.wait_for(WAIT);
}
