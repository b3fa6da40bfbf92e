//! Hostile input, table-driven, on the built binary: bad configurations, price files and
//! keypair files are refused without a panic, with a message naming the key (or the file
//! and line), and `kyzlo config check` refuses exactly what the run refuses. (The journal
//! cases are in `data_dir.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kyzlo_tests::common::{Finished, NO_API, kyzlo, run, write_file};

const LIMIT: Duration = Duration::from_secs(60);

/// The problems with one refused run, if any: a panic, an exit code other than 1, a
/// secret or a raw control byte in the message, or a part of the message missing.
fn refused(what: &str, finished: &Finished, expect: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let stderr = &finished.stderr;
    if stderr.contains("panicked at") || finished.code() == Some(101) {
        problems.push(format!("{what}: panicked:\n{stderr}"));
    }
    if finished.code() != Some(1) {
        problems.push(format!(
            "{what}: exit code {:?}, expected 1; stderr {stderr:?}",
            finished.code()
        ));
    }
    if stderr.contains("s3cr3t") {
        problems.push(format!("{what}: a secret was echoed: {stderr:?}"));
    }
    if stderr.chars().any(|c| c.is_control() && c != '\n') {
        problems.push(format!("{what}: a raw control character: {stderr:?}"));
    }
    if looks_like_a_debug_dump(stderr) {
        problems.push(format!("{what}: a debug dump: {stderr:?}"));
    }
    for part in expect {
        if !stderr.contains(part) {
            problems.push(format!("{what}: no {part:?} in {stderr:?}"));
        }
    }
    problems
}

/// `Name { field: ...` anywhere: a Rust `Debug` rendering of a struct.
fn looks_like_a_debug_dump(text: &str) -> bool {
    text.match_indices(" { ").any(|(at, _)| {
        let before = text[..at]
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("");
        let after = &text[at + 3..];
        before.starts_with(|c: char| c.is_ascii_uppercase())
            && after.split(':').next().is_some_and(|f| {
                !f.is_empty() && f.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
    })
}

fn kyzlo_in(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Finished {
    let mut command = kyzlo(dir);
    command.args(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    run(&mut command, LIMIT)
}

/// Runs `cases` four at a time and gathers every problem.
fn in_parallel<T: Sync>(cases: &[T], one: impl Fn(&T) -> Vec<String> + Sync) -> Vec<String> {
    let chunk = cases.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        let one = &one;
        let workers: Vec<_> = cases
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().flat_map(one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// Which start-up must refuse a configuration besides `config check`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// `kyzlo paper`: the value is wrong whatever the profile.
    Paper,
    /// `kyzlo run`: the value is wrong for the file's devnet or mainnet profile.
    Run,
}

/// A devnet or mainnet file whose every remote is a closed loopback port: were
/// validation ever to let it through, `run` could not reach a real network.
fn live(profile: &str, extra: &str) -> String {
    format!(
        "profile = \"{profile}\"\nconfirm_mainnet = true\n{extra}\n[wallet]\nkeypair_path = \"wallet.json\"\n"
    )
}

/// (what, file body, start-up, parts of the message): sixty and more bad configurations.
#[allow(clippy::too_many_lines)]
fn bad_configs() -> Vec<(&'static str, String, Start, Vec<&'static str>)> {
    use Start::{Paper, Run};
    let p = |body: &str| body.to_owned();
    let rpc_loop = "[rpc]\nendpoints = [\"http://127.0.0.1:9\"]\n[jupiter]\nbase_url = \"http://127.0.0.1:9\"\napi_key = \"s3cr3t-jupiter\"";
    vec![
        (
            "hours negative",
            p("[paper]\nhours = -1.0"),
            Paper,
            vec!["paper.hours", "-1"],
        ),
        (
            "hours nan",
            p("[paper]\nhours = nan"),
            Paper,
            vec!["paper.hours", "NaN"],
        ),
        (
            "hours inf",
            p("[paper]\nhours = inf"),
            Paper,
            vec!["paper.hours", "inf"],
        ),
        (
            "hours 1e300",
            p("[paper]\nhours = 1e300"),
            Paper,
            vec!["paper.hours", "2777"],
        ),
        (
            "hours 5000",
            p("[paper]\nhours = 5000.0"),
            Paper,
            vec!["paper.hours", "2777"],
        ),
        (
            "hours zero",
            p("[paper]\nhours = 0.0"),
            Paper,
            vec!["paper.hours"],
        ),
        (
            "alert window 1e300",
            p("[alerts]\nwindow_s = 1e300"),
            Paper,
            vec!["alerts.window_s", "10000000"],
        ),
        (
            "alert window zero",
            p("[alerts]\nwindow_s = 0.0"),
            Paper,
            vec!["alerts.window_s"],
        ),
        (
            "alert window nan",
            p("[alerts]\nwindow_s = nan"),
            Paper,
            vec!["alerts.window_s"],
        ),
        (
            "alerts per window zero",
            p("[alerts]\nmax_per_window = 0"),
            Paper,
            vec!["alerts.max_per_window"],
        ),
        (
            "javascript webhook",
            p("[alerts]\ngeneric_webhook = \"javascript:alert(1)//s3cr3t\""),
            Paper,
            vec!["alerts.generic_webhook", "http(s) URL"],
        ),
        (
            "unclosed IPv6 webhook",
            p("[alerts]\ndiscord_webhook = \"http://[::1/s3cr3t\""),
            Paper,
            vec!["alerts.discord_webhook"],
        ),
        (
            "plain-http webhook off this host",
            p("[alerts]\nslack_webhook = \"http://hooks.example.com/s3cr3t\""),
            Paper,
            vec!["alerts.slack_webhook", "https"],
        ),
        (
            "ftp Jupiter",
            p("[jupiter]\nbase_url = \"ftp://x\""),
            Paper,
            vec!["jupiter.base_url", "ftp://x"],
        ),
        (
            "Jupiter URL not a URL",
            p("[jupiter]\nbase_url = \"not a url\""),
            Paper,
            vec!["jupiter.base_url"],
        ),
        (
            "Jupiter timeout zero",
            p("[jupiter]\nrequest_timeout_ms = 0"),
            Paper,
            vec!["jupiter.request_timeout_ms", "120000"],
        ),
        (
            "Jupiter timeout i64::MAX",
            p("[jupiter]\nrequest_timeout_ms = 9223372036854775807"),
            Paper,
            vec!["jupiter.request_timeout_ms", "120000"],
        ),
        (
            "Jupiter timeout negative",
            p("[jupiter]\nrequest_timeout_ms = -1"),
            Paper,
            vec!["jupiter.request_timeout_ms"],
        ),
        (
            "RPC timeout zero",
            p("[rpc]\nrequest_timeout_ms = 0"),
            Paper,
            vec!["rpc.request_timeout_ms"],
        ),
        (
            "RPC timeout huge",
            p("[rpc]\nrequest_timeout_ms = 999999999"),
            Paper,
            vec!["rpc.request_timeout_ms", "120000"],
        ),
        (
            "RPC commitment a number",
            p("[rpc]\ncommitment = 5"),
            Paper,
            vec!["rpc.commitment"],
        ),
        (
            "data dir is a file",
            p("[journal]\ndata_dir = \"/etc/passwd\""),
            Paper,
            vec!["journal.data_dir", "/etc/passwd", "folder"],
        ),
        (
            "data dir empty",
            p("[journal]\ndata_dir = \"\""),
            Paper,
            vec!["journal.data_dir"],
        ),
        (
            "data dir with a NUL",
            p("[journal]\ndata_dir = \"a\\u0000b\""),
            Paper,
            vec!["journal.data_dir", "control characters"],
        ),
        (
            "data dir with an escape",
            p("[journal]\ndata_dir = \"a\\u001b[2Jb\""),
            Paper,
            vec!["journal.data_dir"],
        ),
        (
            "Jupiter reserve above the plan",
            p("[jupiter]\nrequests_per_minute = 60\nreserved_for_exits = 60"),
            Paper,
            vec!["jupiter.reserved_for_exits", "60"],
        ),
        (
            "Jupiter reserve too small for an exit",
            p("[jupiter]\nreserved_for_exits = 2"),
            Paper,
            vec!["jupiter.reserved_for_exits", "at least 4"],
        ),
        (
            "Jupiter budget negative",
            p("[jupiter]\nrequests_per_minute = -1"),
            Paper,
            vec!["jupiter.requests_per_minute"],
        ),
        (
            "protective exits sometimes",
            p("[halt]\nprotective_exits = \"sometimes\""),
            Paper,
            vec!["halt.protective_exits", "sometimes", "on_recovery"],
        ),
        (
            "fault profile meteor",
            p("[paper]\nfaults = \"meteor\""),
            Paper,
            vec!["paper.faults", "meteor", "rpc-blackout"],
        ),
        (
            "bearer token empty",
            p("[api]\nlisten = \"\"\nbearer_token = \"\""),
            Paper,
            vec!["api.bearer_token", "16"],
        ),
        (
            "bearer token short",
            p("[api]\nlisten = \"\"\nbearer_token = \"abc\""),
            Paper,
            vec!["api.bearer_token", "16"],
        ),
        (
            "bearer token of spaces",
            p("[api]\nlisten = \"\"\nbearer_token = \"                \""),
            Paper,
            vec!["api.bearer_token"],
        ),
        (
            "approval key short",
            p("[api]\nlisten = \"\"\napproval_key = \"s3cr3t\""),
            Paper,
            vec!["api.approval_key"],
        ),
        (
            "listen port out of range",
            p("[api]\nlisten = \"127.0.0.1:99999\""),
            Paper,
            vec!["api.listen", "99999"],
        ),
        (
            "initial quote negative",
            p("[paper]\ninitial_quote = -1000.0"),
            Paper,
            vec!["paper.initial_quote", "-1000"],
        ),
        (
            "initial quote nan",
            p("[paper]\ninitial_quote = nan"),
            Paper,
            vec!["paper.initial_quote"],
        ),
        (
            "initial quote 1e300",
            p("[paper]\ninitial_quote = 1e300"),
            Paper,
            vec!["paper.initial_quote", "64 bits"],
        ),
        (
            "price jump zero",
            p("[paper]\nmax_price_jump_pct = 0.0"),
            Paper,
            vec!["paper.max_price_jump_pct"],
        ),
        (
            "price jump nan",
            p("[paper]\nmax_price_jump_pct = nan"),
            Paper,
            vec!["paper.max_price_jump_pct"],
        ),
        (
            "paper seed negative",
            p("[paper]\nseed = -1"),
            Paper,
            vec!["paper.seed"],
        ),
        ("unknown section", p("[foo]\nbar = 1"), Paper, vec!["foo"]),
        (
            "unknown key, a near miss",
            p("[exit]\nmax_slippage = 5"),
            Paper,
            vec!["exit.max_slippage", "max_slippage_bps"],
        ),
        (
            "escape bytes in a key",
            p("[trading]\n\"\\u001b[2J\\u0007evil\" = 1"),
            Paper,
            vec!["trading.", "\\u{1b}"],
        ),
        (
            "profile moon",
            p("profile = \"moon\""),
            Paper,
            vec!["profile", "moon"],
        ),
        (
            "TOML syntax error",
            p("[trading\nentry_size = 1"),
            Paper,
            vec!["kyzlo.toml"],
        ),
        (
            "max positions zero",
            p("[trading]\nmax_positions = 0"),
            Paper,
            vec!["trading.max_positions"],
        ),
        (
            "max positions fractional",
            p("[trading]\nmax_positions = 1.5"),
            Paper,
            vec!["trading.max_positions"],
        ),
        (
            "entry size zero",
            p("[trading]\nentry_size = 0.0"),
            Paper,
            vec!["trading.entry_size"],
        ),
        (
            "entry size nan",
            p("[trading]\nentry_size = nan"),
            Paper,
            vec!["trading.entry_size"],
        ),
        (
            "entry size a word",
            p("[trading]\nentry_size = \"ten\""),
            Paper,
            vec!["trading.entry_size", "ten"],
        ),
        (
            "tick interval zero",
            p("[trading]\ntick_interval_ms = 0"),
            Paper,
            vec!["trading.tick_interval_ms"],
        ),
        (
            "strategy window zero",
            p("[strategy]\nwindow_s = 0.5"),
            Paper,
            vec!["strategy.window_s", "2 to 100000 ticks"],
        ),
        (
            "stop loss zero",
            p("[exit_plan]\nstop_loss_bps = 0"),
            Paper,
            vec!["exit_plan.stop_loss_bps"],
        ),
        (
            "stop loss above 100%",
            p("[exit_plan]\nstop_loss_bps = 12000"),
            Paper,
            vec!["exit_plan.stop_loss_bps"],
        ),
        (
            "exit deadline negative",
            p("[exit]\ndeadline_s = -30.0"),
            Paper,
            vec!["exit.deadline_s"],
        ),
        (
            "exit deadline 1e300",
            p("[exit]\ndeadline_s = 1e300"),
            Paper,
            vec!["exit.deadline_s"],
        ),
        (
            "exit ladder empty",
            p("[exit]\nladder = []"),
            Paper,
            vec!["exit.ladder"],
        ),
        (
            "exit ladder rung without slippage",
            p("[[exit.ladder]]\nslippage_bps = 0\npriority_fee_lamports = 1\nstyle = \"limit\""),
            Paper,
            vec!["exit.ladder"],
        ),
        (
            "exit attempts zero",
            p("[exit_retry]\nmax_attempts = 0"),
            Paper,
            vec!["exit_retry.max_attempts"],
        ),
        (
            "retry total negative",
            p("[retry]\ntotal_s = -1.0"),
            Paper,
            vec!["retry.total_s"],
        ),
        (
            "latency p99 zero",
            p("[latency_breaker]\np99_threshold_ms = 0"),
            Paper,
            vec!["latency_breaker.p99_threshold_ms"],
        ),
        (
            "latency error rate 2",
            p("[latency_breaker]\nerror_rate_threshold = 2.0"),
            Paper,
            vec!["latency_breaker.error_rate_threshold"],
        ),
        (
            "exit breaker zero",
            p("[exit_breaker]\nthreshold = 0"),
            Paper,
            vec!["exit_breaker.threshold"],
        ),
        (
            "base decimals 30",
            p("[pair]\nbase_decimals = 30"),
            Paper,
            vec!["pair.base_decimals"],
        ),
        (
            "a mint that is not an address",
            p("[pair]\nquote_mint = \"not-a-mint\""),
            Paper,
            vec!["pair.quote_mint", "not-a-mint"],
        ),
        (
            "a malformed Telegram token",
            p("[alerts]\ntelegram_bot_token = \"s3cr3t\"\ntelegram_chat_ids = [1]"),
            Paper,
            vec!["alerts.telegram_bot_token", "BotFather"],
        ),
        (
            "Telegram chats without a token",
            p("[alerts]\ntelegram_chat_ids = [1]"),
            Paper,
            vec!["alerts.telegram_bot_token"],
        ),
        (
            "a Telegram token without chats",
            p("[alerts]\ntelegram_bot_token = \"123:s3cr3tAAAAAAAAAAAAAAAAAAAA\""),
            Paper,
            vec!["alerts.telegram_chat_ids"],
        ),
        (
            "Telegram over plain http off this host",
            p(
                "[alerts]\ntelegram_bot_token = \"123:s3cr3tAAAAAAAAAAAAAAAAAAAA\"\ntelegram_chat_ids = [1]\ntelegram_api_url = \"http://api.example.com\"",
            ),
            Paper,
            vec!["alerts.telegram_api_url", "https"],
        ),
        (
            "strategy window nan",
            p("[strategy]\nwindow_s = nan"),
            Paper,
            vec!["strategy.window_s"],
        ),
        (
            "strategy edge of 100%",
            p("[strategy]\nmin_edge_bps = 10000"),
            Paper,
            vec!["strategy.min_edge_bps"],
        ),
        (
            "entry fraction zero",
            p("[trading]\nentry_fraction = 0.0"),
            Paper,
            vec!["trading.entry_fraction"],
        ),
        (
            "entry fraction above one",
            p("[trading]\nentry_fraction = 2.0"),
            Paper,
            vec!["trading.entry_fraction"],
        ),
        (
            "two RPC endpoints slower than the call timeout",
            p(
                "[rpc]\nendpoints = [\"http://127.0.0.1:9\", \"http://127.0.0.1:10\"]\nrequest_timeout_ms = 2500",
            ),
            Paper,
            vec!["rpc.request_timeout_ms", "exit.call_timeout_ms"],
        ),
        (
            "a Jupiter URL with a password",
            p("[jupiter]\nbase_url = \"https://user:s3cr3t@jup.example.com\""),
            Paper,
            vec!["jupiter.base_url", "api_key"],
        ),
        (
            "a bearer token with an escape byte",
            p("[api]\nlisten = \"\"\nbearer_token = \"abcdefghijklmnop\\u001b[2J\""),
            Paper,
            vec!["api.bearer_token", "printable"],
        ),
        (
            "a bearer token too long for a header",
            format!(
                "[api]\nlisten = \"\"\nbearer_token = \"{}\"",
                "a".repeat(4096)
            ),
            Paper,
            vec!["api.bearer_token", "512"],
        ),
        (
            "devnet, RPC not a URL",
            live("devnet", "[rpc]\nendpoints = [\"not a url/s3cr3t\"]"),
            Run,
            vec!["rpc.endpoints[0]"],
        ),
        (
            "devnet, ftp RPC",
            live(
                "devnet",
                "[rpc]\nendpoints = [\"ftp://127.0.0.1:9/s3cr3t\"]",
            ),
            Run,
            vec!["rpc.endpoints[0]"],
        ),
        (
            "devnet, no keypair file",
            format!("profile = \"devnet\"\n{rpc_loop}"),
            Run,
            vec!["wallet.keypair_path"],
        ),
        (
            "mainnet unconfirmed",
            format!("profile = \"mainnet\"\n{rpc_loop}"),
            Run,
            vec!["confirm_mainnet"],
        ),
        (
            "mainnet, plain-http RPC off this host",
            live(
                "mainnet",
                "[rpc]\nendpoints = [\"http://rpc.example.com/s3cr3t\"]",
            ),
            Run,
            vec!["rpc.endpoints[0]", "https"],
        ),
        (
            "mainnet, plain-http Jupiter off this host",
            live(
                "mainnet",
                "[jupiter]\nbase_url = \"http://jup.example.com\"\napi_key = \"s3cr3t-jupiter\"",
            ),
            Run,
            vec!["jupiter.base_url", "https"],
        ),
        (
            "mainnet without a Jupiter key",
            live("mainnet", "[rpc]\nendpoints = [\"http://127.0.0.1:9\"]"),
            Run,
            vec!["jupiter.api_key"],
        ),
        (
            "a send lane whose header variable is not set",
            p(
                "[[rpc.send_lanes]]\nurl = \"http://127.0.0.1:9/?api-key=s3cr3t\"\nheaders = { \"x-api-key\" = \"HOSTILE_LANE_KEY_NEVER_SET\" }",
            ),
            Paper,
            vec![
                "rpc.send_lanes[0].headers.x-api-key",
                "HOSTILE_LANE_KEY_NEVER_SET",
                "not set",
            ],
        ),
        (
            "a secret pasted where a send lane's header variable goes",
            p(
                "[[rpc.send_lanes]]\nurl = \"http://127.0.0.1:9/\"\nheaders = { \"x-api-key\" = \"s3cr3t-pasted-key\" }",
            ),
            Paper,
            vec!["rpc.send_lanes[0].headers.x-api-key", "NAME"],
        ),
        (
            "a send lane tip to no account",
            p(
                "[[rpc.send_lanes]]\nurl = \"http://127.0.0.1:9/\"\ntip = { account = \"nope\", lamports = 1000 }",
            ),
            Paper,
            vec!["rpc.send_lanes[0].tip.account", "nope"],
        ),
        (
            "a send lane tip over 0.01 SOL",
            p(
                "[[rpc.send_lanes]]\nurl = \"http://127.0.0.1:9/\"\ntip = { account = \"96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5\", lamports = 20000000 }",
            ),
            Paper,
            vec!["rpc.send_lanes[0].tip.lamports", "10000000"],
        ),
        (
            "mainnet, a plain-http send lane off this host",
            live(
                "mainnet",
                "[rpc]\nendpoints = [\"http://127.0.0.1:9\"]\n[[rpc.send_lanes]]\nurl = \"http://lane.example.com/s3cr3t\"",
            ),
            Run,
            vec!["rpc.send_lanes[0].url", "https"],
        ),
    ]
}

#[test]
fn sixty_and_more_bad_configurations_are_refused_alike_by_check_and_by_the_run() {
    let cases = bad_configs();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let problems = in_parallel(&cases, |(what, body, start, expect)| {
        let dir = tempfile::tempdir().unwrap();
        // Unless a case is about [api], no API: a configuration wrongly let through must
        // not bind the default port.
        let body = if body.contains("[api]") {
            body.clone()
        } else {
            format!("{body}\n{NO_API}")
        };
        let file = write_file(dir.path(), "kyzlo.toml", &body);
        let file = file.to_str().unwrap();
        let second: &[&str] = match start {
            Start::Paper => &["paper", "--config", file, "--duration", "1m"],
            Start::Run => &["run", "--config", file],
        };
        let mut problems = Vec::new();
        for args in [&["config", "check", "--config", file][..], second] {
            let finished = kyzlo_in(dir.path(), args, &[]);
            let what = format!("{what} (`kyzlo {}`)", args[0]);
            problems.extend(refused(&what, &finished, expect));
        }
        problems
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// (what, file bytes, the line the message must name): forty and more bad price files.
#[allow(clippy::too_many_lines)]
fn bad_price_files() -> Vec<(&'static str, Vec<u8>, usize)> {
    let h = |rows: &str| format!("ts_ms,price\n{rows}").into_bytes();
    let c = |rows: &str| format!("ts_ms,open,high,low,close,volume\n{rows}").into_bytes();
    let t0 = 1_700_000_000_000u64;
    let two = |a: &str, b: &str| h(&format!("{t0},{a}\n{},{b}\n", t0 + 1_000));
    vec![
        ("empty", Vec::new(), 1),
        ("blank lines only", b" \n\n".to_vec(), 1),
        ("header only", h(""), 2),
        ("one row", h(&format!("{t0},100\n")), 3),
        ("unknown header", b"time,price\n1,2\n".to_vec(), 1),
        ("semicolons", b"ts_ms;price\n1;2\n".to_vec(), 1),
        ("missing column", h(&format!("{t0}\n")), 2),
        ("extra column", h(&format!("{t0},100,7\n")), 2),
        ("price a word", two("abc", "100"), 2),
        ("price NaN", two("NaN", "100"), 2),
        ("price inf", two("100", "inf"), 3),
        ("price -inf", two("-inf", "100"), 2),
        ("price +inf", two("+inf", "100"), 2),
        ("price zero", two("0", "100"), 2),
        ("price negative", two("-3", "100"), 2),
        ("price 1e308", two("100", "1e308"), 3),
        ("price 1e-300", two("1e-300", "1e-300"), 2),
        ("a spike in range", two("100", "1000000"), 3),
        ("a crash in one row", two("100", "10"), 3),
        ("price hex", two("0x10", "16"), 2),
        ("price with a space inside", two("1 5", "15"), 2),
        ("price with a NUL", two("1\u{0}5", "15"), 2),
        (
            "price 100k characters long",
            two(&"9".repeat(100_000), "15"),
            2,
        ),
        ("timestamp a word", h("soon,100\nlater,100\n"), 2),
        ("timestamp negative", h("-1000,100\n0,100\n"), 2),
        (
            "timestamp fractional",
            h(&format!("{t0}.5,100\n{},100\n", t0 + 1_000)),
            2,
        ),
        (
            "timestamp past u64",
            h("99999999999999999999999,100\n1,100\n"),
            2,
        ),
        ("unsorted", h(&format!("{},100\n{t0},100\n", t0 + 1_000)), 3),
        (
            "duplicate timestamp",
            h(&format!("{t0},100\n{t0},100\n")),
            3,
        ),
        (
            "uneven step",
            h(&format!(
                "{t0},100\n{},100\n{},100\n",
                t0 + 1_000,
                t0 + 3_500
            )),
            4,
        ),
        (
            "a step over a day",
            h(&format!("{t0},100\n{},100\n", t0 + 90_000_000)),
            3,
        ),
        (
            "a step of 10^15 ms",
            h(&format!(
                "1000,100\n{},100\n",
                1_000 + 1_000_000_000_000_000u64
            )),
            3,
        ),
        (
            "seconds, not milliseconds",
            h("1700000000,100\n1700000001,100\n"),
            2,
        ),
        (
            "microseconds, not milliseconds",
            h("1700000000000000,100\n1700000000001000,100\n"),
            2,
        ),
        ("candles without volume", c(&format!("{t0},1,1,1,1\n")), 2),
        (
            "candles with a negative volume",
            c(&format!("{t0},1,1,1,1,-5\n{},1,1,1,1,5\n", t0 + 60_000)),
            2,
        ),
        (
            "candles with a NaN volume",
            c(&format!("{t0},1,1,1,1,NaN\n{},1,1,1,1,5\n", t0 + 60_000)),
            2,
        ),
        (
            "candles with a word for close",
            c(&format!("{t0},1,1,1,x,5\n{},1,1,1,1,5\n", t0 + 60_000)),
            2,
        ),
        (
            "candles with a NaN high",
            c(&format!("{t0},1,NaN,1,1,5\n{},1,1,1,1,5\n", t0 + 60_000)),
            2,
        ),
        (
            "not UTF-8",
            b"ts_ms,price\n1700000000000,\xff\xfe\n".to_vec(),
            0,
        ),
        (
            "escape bytes in the header",
            b"ts_ms,\x1b[2Jprice\n1,2\n".to_vec(),
            1,
        ),
        ("escape bytes in a price", two("\u{1b}[2J", "15"), 2),
    ]
}

#[test]
fn a_secret_of_the_wrong_type_is_named_and_never_echoed() {
    // Numbers: what `s3cr3t` cannot catch, since the refusal would print the number.
    let n = "5303303530330353";
    let file = |key: &str| format!("{NO_API}{key} = {n}\n");
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (file("approval_key"), vec![], "api.approval_key"),
        (file("bearer_token"), vec![], "api.bearer_token"),
        (
            format!("{NO_API}[jupiter]\napi_key = {n}\n"),
            vec![],
            "jupiter.api_key",
        ),
        (
            format!("{NO_API}[alerts]\ntelegram_bot_token = {n}\n"),
            vec![],
            "alerts.telegram_bot_token",
        ),
        (
            format!("{NO_API}[alerts]\nslack_webhook = {n}\n"),
            vec![],
            "alerts.slack_webhook",
        ),
        (
            NO_API.to_owned(),
            vec![("KYZLO_API__APPROVAL_KEY", n)],
            "api.approval_key",
        ),
        (
            NO_API.to_owned(),
            vec![("KYZLO_ALERTS__TELEGRAM_BOT_TOKEN", n)],
            "alerts.telegram_bot_token",
        ),
        (
            NO_API.to_owned(),
            vec![("KYZLO_JUPITER__API_KEY", n)],
            "jupiter.api_key",
        ),
    ];
    let problems = in_parallel(&cases, |(body, envs, key)| {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "kyzlo.toml", body);
        let path = path.to_str().unwrap();
        let mut problems = Vec::new();
        for args in [
            &["config", "check", "--config", path][..],
            &["paper", "--config", path, "--duration", "1m"],
        ] {
            let finished = kyzlo_in(dir.path(), args, envs);
            let what = format!("{key} a number (`kyzlo {}`)", args[0]);
            problems.extend(refused(&what, &finished, &[key, "not shown"]));
            if finished.stderr.contains(n) || finished.stdout.contains(n) {
                problems.push(format!(
                    "{what}: the number was echoed: {:?}",
                    finished.stderr
                ));
            }
        }
        problems
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_device_or_an_oversized_file_is_refused_as_configuration_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    for (what, path, part) in [
        ("a device", "/dev/zero", "not a regular file"),
        ("two megabytes", big.to_str().unwrap(), "more than the"),
    ] {
        for args in [
            &["config", "check", "--config", path][..],
            &["paper", "--config", path],
        ] {
            let finished = kyzlo_in(dir.path(), args, &[]);
            let problems = refused(&format!("{what} (`kyzlo {}`)", args[0]), &finished, &[part]);
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }
    }
}

#[test]
fn forty_and_more_bad_price_files_are_refused_naming_the_file_and_line() {
    let cases = bad_price_files();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let problems = in_parallel(&cases, |(what, bytes, line)| {
        let dir = tempfile::tempdir().unwrap();
        let prices = dir.path().join("prices.csv");
        std::fs::write(&prices, bytes).unwrap();
        let config = write_file(dir.path(), "kyzlo.toml", NO_API);
        let args = [
            "paper",
            "--config",
            config.to_str().unwrap(),
            "--prices",
            prices.to_str().unwrap(),
            "--duration",
            "10m",
        ];
        let finished = kyzlo_in(dir.path(), &args, &[]);
        let at = format!("prices.csv:{line}:");
        let mut problems = refused(what, &finished, &[&at]);
        if dir.path().join("kyzlo-data").exists() {
            problems.push(format!(
                "{what}: a data dir was made before the file was read"
            ));
        }
        problems
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // A missing file and a folder are named too.
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "kyzlo.toml", NO_API);
    for (what, path) in [
        ("missing", "nope.csv"),
        ("a folder", "."),
        ("a device", "/dev/zero"),
    ] {
        let finished = kyzlo_in(
            dir.path(),
            &[
                "paper",
                "--config",
                config.to_str().unwrap(),
                "--prices",
                path,
            ],
            &[],
        );
        let problems = refused(what, &finished, &[path]);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

/// 64 byte values whose public half does not match the secret half.
fn mismatched_keypair() -> String {
    let bytes: Vec<String> = (0..64u32)
        .map(|i| ((i * 37 + 11) % 256).to_string())
        .collect();
    format!("[{}]", bytes.join(","))
}

/// How a bad keypair case is set up.
enum Keypair {
    /// A file with these bytes and this mode.
    File(Vec<u8>, u32),
    /// Another kind of path.
    Path(&'static str),
    /// A folder.
    Folder,
    /// A named pipe.
    Fifo,
}

#[test]
fn fifteen_and_more_bad_keypair_files_are_refused_alike_by_check_and_by_the_run() {
    let numbers = |n: usize, v: &str| format!("[{}]", vec![v; n].join(",")).into_bytes();
    let cases: Vec<(&str, Keypair, &str)> = vec![
        (
            "empty",
            Keypair::File(Vec::new(), 0o600),
            "wallet.keypair_path",
        ),
        (
            "three numbers",
            Keypair::File(b"[1,2,3]".to_vec(), 0o600),
            "wallet.keypair_path",
        ),
        (
            "63 numbers",
            Keypair::File(numbers(63, "7"), 0o600),
            "wallet.keypair_path",
        ),
        (
            "65 numbers",
            Keypair::File(numbers(65, "7"), 0o600),
            "wallet.keypair_path",
        ),
        (
            "numbers past 255",
            Keypair::File(numbers(64, "300"), 0o600),
            "wallet.keypair_path",
        ),
        (
            "negative numbers",
            Keypair::File(numbers(64, "-1"), 0o600),
            "wallet.keypair_path",
        ),
        (
            "fractional numbers",
            Keypair::File(numbers(64, "1.5"), 0o600),
            "wallet.keypair_path",
        ),
        (
            "text",
            Keypair::File(b"my seed phrase is s3cr3t".to_vec(), 0o600),
            "wallet.keypair_path",
        ),
        (
            "a JSON object",
            Keypair::File(b"{\"secret\":\"s3cr3t\"}".to_vec(), 0o600),
            "wallet.keypair_path",
        ),
        (
            "not UTF-8",
            Keypair::File(vec![0xff, 0xfe, 0x00, 0x5b], 0o600),
            "wallet.keypair_path",
        ),
        (
            "ten megabytes",
            Keypair::File(vec![b' '; 10 << 20], 0o600),
            "wallet.keypair_path",
        ),
        (
            "mismatched halves",
            Keypair::File(mismatched_keypair().into_bytes(), 0o600),
            "public key does not match",
        ),
        (
            "readable by others",
            Keypair::File(mismatched_keypair().into_bytes(), 0o644),
            "chmod 600",
        ),
        (
            "missing",
            Keypair::Path("nope.json"),
            "existing keypair file",
        ),
        ("/dev/null", Keypair::Path("/dev/null"), "not a device"),
        ("/dev/zero", Keypair::Path("/dev/zero"), "not a device"),
        ("a folder", Keypair::Folder, "not a folder"),
        ("a named pipe", Keypair::Fifo, "not a device"),
    ];
    assert!(cases.len() >= 15);
    let problems = in_parallel(&cases, |(what, keypair, part)| {
        let dir = tempfile::tempdir().unwrap();
        let path = match keypair {
            Keypair::File(bytes, mode) => {
                let path = dir.path().join("id.json");
                std::fs::write(&path, bytes).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
                path.display().to_string()
            }
            Keypair::Path(path) => (*path).to_owned(),
            Keypair::Folder => dir.path().display().to_string(),
            Keypair::Fifo => {
                let path = dir.path().join("fifo");
                let made = std::process::Command::new("mkfifo")
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(made.success());
                path.display().to_string()
            }
        };
        let config = write_file(
            dir.path(),
            "kyzlo.toml",
            &format!(
                "profile = \"devnet\"\n[wallet]\nkeypair_path = \"{path}\"\n{NO_API}[rpc]\nendpoints = [\"http://127.0.0.1:9\"]\n"
            ),
        );
        let config = config.to_str().unwrap();
        let mut problems = Vec::new();
        for args in [
            &["config", "check", "--config", config][..],
            &["run", "--config", config],
        ] {
            let finished = kyzlo_in(dir.path(), args, &[]);
            let what = format!("{what} (`kyzlo {}`)", args[0]);
            problems.extend(refused(&what, &finished, &["wallet.keypair_path", part]));
        }
        problems
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
