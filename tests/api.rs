//! The operator HTTP API of the real binary, end to end over loopback: a paced `kyzlo paper` opens a position on a replayed dip; `/metrics` is valid OpenMetrics with the exit metrics; `/status` shows the state and the position; halt needs the bearer token and pages the webhook exactly once; a force-exit while halted closes the position; resume needs the approval key; the `status`, `halt` and `exits` commands talk to the running bot; SIGINT stops it cleanly with its summary; and `status` without a bot reads the journal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kyzlo_tests::common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{
    ChildGuard, Exposition, Finished, HttpResponse, WebhookReceiver, flat_then_dip, http, kyzlo,
    parse_openmetrics, price_csv, run, wait_until, write_file,
};
use serde_json::Value;

const TOKEN: &str = "operator-token-0123456789abcdef";
const APPROVAL_KEY: &str = "approval-key-0123456789abcdef";
const API_HALT: &str = "e2e halt through the API";
const CLI_HALT: &str = "e2e halt through the CLI";
/// Virtual time runs this many times faster than real time: a tick every 100 ms.
const SPEED: &str = "10";
/// Bound of every wait on the bot (it is usually a fraction of a second).
const WAIT: Duration = Duration::from_secs(30);

/// The running bot: the child (killed on drop), its API address and its files.
struct Bot {
    child: ChildGuard,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    config: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Bot {
    fn start(webhook: &WebhookReceiver) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prices = write_file(dir.path(), "prices.csv", &price_csv(0, &flat_then_dip()));
        // Not named kyzlo.toml: the CLI commands below run in the same folder and must
        // not pick up the bearer token from it unless told to.
        let config = write_file(
            dir.path(),
            "bot.toml",
            &format!(
                "[trading]\ntick_interval_ms = 1000\nentry_fraction = 1.0\n\
                 [strategy]\nwindow_s = 10.0\ncost_aware = false\nentry_z = 2.5\nexit_z = 50.0\n\
                 [api]\nlisten = \"127.0.0.1:0\"\nbearer_token = \"{TOKEN}\"\napproval_key = \"{APPROVAL_KEY}\"\n\
                 [alerts]\ngeneric_webhook = \"{}\"\n\
                 [paper]\nfaults = \"none\"\n",
                webhook.url("/hook")
            ),
        );
        let (stdout, stderr) = (dir.path().join("stdout.txt"), dir.path().join("stderr.txt"));
        let mut command = kyzlo(dir.path());
        command
            .args(["paper", "--speed", SPEED, "--config"])
            .arg(&config)
            .arg("--prices")
            .arg(&prices)
            .stdout(Stdio::from(File::create(&stdout).unwrap()))
            .stderr(Stdio::from(File::create(&stderr).unwrap()));
        let mut child = ChildGuard::spawn(&mut command);
        let addr = wait_until(WAIT, "`operator API listening on http://ADDR`", || {
            if let Some(status) = child.wait_for(Duration::ZERO) {
                panic!("kyzlo paper ended early ({status}):\n{}", read(&stderr));
            }
            read(&stderr)
                .lines()
                .find_map(|l| l.strip_prefix("operator API listening on http://"))
                .map(|a| a.trim().parse().expect("a socket address"))
        });
        Self {
            child,
            addr,
            dir,
            config,
            stdout,
            stderr,
        }
    }

    fn get(&self, path: &str) -> HttpResponse {
        http(self.addr, "GET", path, None, None)
    }

    fn post(&self, path: &str, token: Option<&str>, body: Option<&str>) -> HttpResponse {
        http(self.addr, "POST", path, token, body)
    }

    fn status(&self) -> Value {
        let response = self.get("/status");
        assert_eq!(response.status, 200, "{}", response.body);
        response.json()
    }

    fn metrics(&self) -> Exposition {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "{}", response.body);
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        parse_openmetrics(&response.body)
            .unwrap_or_else(|e| panic!("/metrics is not OpenMetrics: {e}\n{}", response.body))
    }

    /// `kyzlo ARGS` in the bot's folder, to its end.
    fn cli(&self, args: &[&str]) -> Finished {
        let mut command = kyzlo(self.dir.path());
        command.args(args);
        run(&mut command, WAIT)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn alerts(webhook: &WebhookReceiver) -> Vec<Value> {
    webhook
        .received()
        .iter()
        .map(|r| {
            assert!(
                r.request_line.starts_with("POST /hook "),
                "{}",
                r.request_line
            );
            serde_json::from_str(&r.body).expect("a JSON alert")
        })
        .collect()
}

fn wait_for_alerts(webhook: &WebhookReceiver, n: usize) -> Vec<Value> {
    wait_until(WAIT, &format!("{n} alert(s) at the webhook"), || {
        let got = alerts(webhook);
        (got.len() >= n).then_some(got)
    })
}

/// The exit families of deploy/OPERATIONS.md, with their types, present from the start
/// (`kyzlo_exit_transactions_sent`, labelled by kind and style, appears with the first
/// exit transaction: it is checked after the force-exit).
const EXIT_FAMILIES: [(&str, &str); 13] = [
    ("kyzlo_exits_attempted", "counter"),
    ("kyzlo_exits_first_attempt", "counter"),
    ("kyzlo_exits_required_retry", "counter"),
    ("kyzlo_exits_failed", "counter"),
    ("kyzlo_exits_deadline_exceeded", "counter"),
    ("kyzlo_circuit_breaker_trips", "counter"),
    ("kyzlo_exit_breaker_consecutive_failures", "gauge"),
    ("kyzlo_exit_duration_seconds", "histogram"),
    ("kyzlo_exit_slippage_bps", "histogram"),
    ("kyzlo_trading_state", "gauge"),
    ("kyzlo_gateway_orders", "counter"),
    ("kyzlo_exit_priority_fees_bid_lamports", "counter"),
    ("kyzlo_exit_fees_paid_lamports", "counter"),
];

#[test]
fn an_operator_drives_a_running_paper_bot_through_its_http_api_and_cli() {
    let webhook = WebhookReceiver::start();
    let bot = Bot::start(&webhook);

    // The dip opens one position.
    let position = wait_until(WAIT, "a position opened on the dip", || {
        bot.status()["positions"][0]["id"].as_u64()
    });
    let status = bot.status();
    assert_eq!(status["trading"]["state"], "active", "{status}");
    let positions = status["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 1, "{status}");
    let p = &positions[0];
    let entry = p["entry_price"].as_f64().unwrap();
    assert!((98.9..99.1).contains(&entry), "{status}");
    assert!(p["stop_level"].as_f64().unwrap() < entry, "{status}");
    assert!(p["remaining_base_units"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(p["exiting"], false, "{status}");

    // /metrics: strict OpenMetrics, with every exit family, before any exit.
    let metrics = bot.metrics();
    for (family, kind) in EXIT_FAMILIES {
        let found = metrics
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no {family} in /metrics"));
        assert_eq!(found.kind, kind, "{family}");
    }
    assert_eq!(metrics.sum("kyzlo_exits_attempted_total"), 0.0);
    assert_eq!(
        metrics.value("kyzlo_trading_state", &[("state", "active")]),
        1.0
    );
    assert_eq!(
        metrics.value("kyzlo_entries_total", &[("result", "filled")]),
        1.0
    );
    assert!(metrics.value("kyzlo_ticks_total", &[]) >= 10.0);

    // The control routes need the bearer token.
    let body = format!("{{\"reason\": \"{API_HALT}\"}}");
    for token in [None, Some("not-the-token-0123456789")] {
        let refused = bot.post("/halt", token, Some(&body));
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(refused.json()["error"], "unauthorized");
    }
    let refused = bot.post(&format!("/positions/{position}/exit"), None, None);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(bot.status()["trading"]["state"], "active");
    assert!(
        webhook.received().is_empty(),
        "no alert for refused requests"
    );

    // Halt with the token: halted, and the webhook gets exactly one alert.
    let halted = bot.post("/halt", Some(TOKEN), Some(&body));
    assert_eq!(halted.status, 200, "{}", halted.body);
    let halted = halted.json();
    assert_eq!(halted["outcome"], "halted", "{halted}");
    assert_eq!(halted["trading"]["state"], "halted", "{halted}");
    assert_eq!(halted["trading"]["halt_reason"]["cause"], "operator");
    assert_eq!(halted["trading"]["halt_reason"]["detail"], API_HALT);
    let first = wait_for_alerts(&webhook, 1);
    assert_eq!(first[0]["kind"], "trading_halted", "{}", first[0]);
    assert_eq!(first[0]["severity"], "critical", "{}", first[0]);
    assert!(
        first[0]["message"].as_str().unwrap().contains(API_HALT),
        "{}",
        first[0]
    );
    // A second halt keeps the first reason and pages nobody.
    let again = bot.post("/halt", Some(TOKEN), Some("{\"reason\": \"another\"}"));
    assert_eq!(again.json()["outcome"], "already_halted", "{}", again.body);
    std::thread::sleep(Duration::from_millis(500)); // 5 s of the bot's time
    assert_eq!(alerts(&webhook).len(), 1, "{:?}", webhook.received());
    let status = bot.status();
    assert_eq!(status["trading"]["state"], "halted", "{status}");
    assert_eq!(status["trading"]["halt_reason"]["detail"], API_HALT);

    // A force-exit runs while halted and closes the position.
    let unknown = bot.post("/positions/999999/exit", Some(TOKEN), None);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()["error"], "unknown_position");
    let accepted = bot.post(&format!("/positions/{position}/exit"), Some(TOKEN), None);
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let accepted = accepted.json();
    assert_eq!(accepted["position"].as_u64(), Some(position), "{accepted}");
    let intent = accepted["intent"].as_u64().unwrap();
    wait_until(WAIT, "the force-exited position to close", || {
        bot.status()["positions"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    assert_eq!(bot.status()["trading"]["state"], "halted");
    let metrics = bot.metrics();
    let operator = [("kind", "operator")];
    assert_eq!(metrics.value("kyzlo_exits_attempted_total", &operator), 1.0);
    assert_eq!(
        metrics.value("kyzlo_exits_first_attempt_total", &operator),
        1.0
    );
    assert_eq!(metrics.value("kyzlo_exits_failed_total", &operator), 0.0);
    assert_eq!(
        metrics.families["kyzlo_exit_transactions_sent"].kind,
        "counter"
    );
    assert_eq!(
        metrics.value("kyzlo_exit_transactions_sent_total", &operator),
        1.0
    );
    // What the exit's transaction bid, and what the landed one paid (base fee included).
    let bid = metrics.value("kyzlo_exit_priority_fees_bid_lamports_total", &operator);
    let paid = metrics.value("kyzlo_exit_fees_paid_lamports_total", &operator);
    assert!(bid > 0.0 && paid >= bid, "bid {bid}, paid {paid}");
    assert_eq!(
        metrics.value("kyzlo_exit_duration_seconds_count", &[("result", "closed")]),
        1.0
    );
    assert_eq!(
        metrics.value(
            "kyzlo_gateway_orders_total",
            &[("module", "operator"), ("kind", "operator")]
        ),
        1.0
    );
    assert_eq!(
        metrics.value("kyzlo_trading_state", &[("state", "halted")]),
        1.0
    );
    let history = bot.get("/exits/history?limit=5");
    assert_eq!(history.status, 200, "{}", history.body);
    let history = history.json();
    let exit = &history["exits"][0];
    assert_eq!(exit["intent"].as_u64(), Some(intent), "{history}");
    assert_eq!(exit["kind"], "operator", "{history}");
    assert_eq!(exit["outcome"]["result"], "filled", "{history}");
    assert_eq!(exit["attempts"][0]["outcome"], "landed", "{history}");

    // Resume needs the approval key.
    let wrong = bot.post(
        "/resume",
        Some(TOKEN),
        Some("{\"approval_key\": \"not-the-approval-key-0123\"}"),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(wrong.json()["error"], "wrong_approval_key");
    assert_eq!(bot.status()["trading"]["state"], "halted");
    let resumed = bot.post(
        "/resume",
        Some(TOKEN),
        Some(&format!("{{\"approval_key\": \"{APPROVAL_KEY}\"}}")),
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.json()["trading"]["state"], "active");
    assert_eq!(bot.status()["trading"]["state"], "active");
    let two = wait_for_alerts(&webhook, 2);
    assert_eq!(two[1]["kind"], "trading_resumed", "{}", two[1]);

    // The operator commands against the running bot.
    let url = bot.url();
    let status = bot.cli(&["status", "--url", &url]);
    status.assert_success("kyzlo status");
    let shown: Value = serde_json::from_str(&status.stdout).expect("status prints JSON");
    assert_eq!(shown["trading"]["state"], "active", "{shown}");
    assert_eq!(shown["positions"], Value::Array(vec![]), "{shown}");
    let exits = bot.cli(&["exits", "--url", &url, "--limit", "3"]);
    exits.assert_success("kyzlo exits");
    let shown: Value = serde_json::from_str(&exits.stdout).expect("exits prints JSON");
    assert_eq!(shown["exits"][0]["kind"], "operator", "{shown}");
    assert_eq!(
        shown["exits"][0]["intent"].as_u64(),
        Some(intent),
        "{shown}"
    );
    // The fee the landed transaction paid, read back, next to what its attempt bid.
    let paid = shown["exits"][0]["outcome"]["fee_lamports"].as_u64();
    let bid = shown["exits"][0]["attempts"][0]["priority_fee_lamports"].as_u64();
    assert!(
        matches!((paid, bid), (Some(paid), Some(bid)) if bid > 0 && paid >= bid),
        "{shown}"
    );
    let no_token = bot.cli(&["halt", "--url", &url, "--reason", CLI_HALT]);
    no_token.assert_no_panic("kyzlo halt without a token");
    assert_eq!(no_token.code(), Some(1), "{}", no_token.stderr);
    assert!(no_token.stderr.contains("401"), "{}", no_token.stderr);
    assert_eq!(bot.status()["trading"]["state"], "active");
    let halt = bot.cli(&[
        "halt", "--url", &url, "--token", TOKEN, "--reason", CLI_HALT,
    ]);
    halt.assert_success("kyzlo halt");
    let shown: Value = serde_json::from_str(&halt.stdout).expect("halt prints JSON");
    assert_eq!(shown["outcome"], "halted", "{shown}");
    assert_eq!(
        shown["trading"]["halt_reason"]["detail"], CLI_HALT,
        "{shown}"
    );

    // SIGINT: a clean stop with the summary.
    let mut bot = bot;
    bot.child.interrupt();
    let code = bot
        .child
        .wait_for(WAIT)
        .unwrap_or_else(|| panic!("kyzlo paper ignored SIGINT:\n{}", read(&bot.stderr)));
    let (stdout, stderr) = (read(&bot.stdout), read(&bot.stderr));
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert_eq!(code.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    for expected in [
        "paper run: ",
        "trades: 1 entries filled",
        "exits by reason: operator 1\n",
        "halts: 2 ",
        "trading now halted\n",
        "open positions 0\n",
        "PnL: ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }

    // With no bot running, `status` reads the journal in the same data folder.
    let config = bot.config.to_str().unwrap().to_owned();
    let offline = bot.cli(&["status", "--config", &config]);
    offline.assert_success("kyzlo status without a bot");
    for expected in [
        "from the journal",
        &format!("trading: halted (operator: {CLI_HALT})"),
        "open positions: 0",
    ] {
        assert!(
            offline.stdout.contains(expected),
            "{expected:?} in:\n{}",
            offline.stdout
        );
    }
}

#[test]
fn status_without_a_bot_or_a_journal_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "bot.toml", "[api]\nlisten = \"127.0.0.1:0\"\n");
    let mut command = kyzlo(dir.path());
    command.args(["status", "--config", config.to_str().unwrap()]);
    let finished = run(&mut command, WAIT);
    finished.assert_no_panic("kyzlo status with nothing");
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("no bot answers") && finished.stderr.contains("no journal"),
        "{}",
        finished.stderr
    );
}
