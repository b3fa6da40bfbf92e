//! `kyzlo run` with the devnet profile, end to end: the real binary against a real
//! `solana-test-validator` on loopback and a local stand-in for Jupiter's quote and price
//! endpoints whose scripted market dips (the strategy enters) and then falls through the
//! 5% stop (the stop-loss exits). Every stand-in swap is a real transaction confirmed on
//! the validator; the journal holds every attempt, and the chain, the wallet's lamports
//! and the devnet venue's virtual balances agree with it.
//!
//! The binary has its own runner (`harness = false`): it re-executes itself inside a
//! private network namespace first (see `adapters-solana/tests/support/cluster.rs`),
//! starts one validator, runs its one test and prints libtest's summary line. A missing
//! validator binary fails the run with how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../crates/adapters-solana/tests/support/cluster.rs"]
mod cluster;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use kyzlo_adapters_solana::{Keypair, KeypairSigner};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

const TEST_NAME: &str = "devnet_run_enters_and_stops_out_with_real_transactions";

const SOL_MINT: &str = "So11111111111111111111111111111111111111112";
const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const SOL: u64 = 1_000_000_000;
/// The wallet's real lamports, from the validator's faucet.
const AIRDROP: u64 = 10 * SOL;
/// `paper.initial_quote`: the devnet venue's virtual USDC, in base units.
const INITIAL_QUOTE: u64 = 1_000_000_000;
/// `trading.entry_size`, in USDC base units.
const ENTRY: u64 = 10_000_000;
/// `exit_plan.stop_loss_bps`.
const STOP_LOSS_BPS: u64 = 500;
/// The local validator's fee per signature (the stand-ins carry no compute-budget
/// instruction, so no priority fee is paid).
const FEE: u64 = 5_000;

/// Slots of 16 ticks (100 ms instead of 400 ms): a blockhash expires in about 15 s.
const VALIDATOR_ARGS: &[&str] = &["--ticks-per-slot", "16"];
/// The SPL Token program.
const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
/// Rent-exempt minimum of an 82-byte mint.
const MINT_RENT: u64 = 1_461_600;
const VALIDATOR_READY: Duration = Duration::from_secs(90);
/// The latency breaker's P99 threshold. The default (200 ms) opens the breaker (entries
/// paused, "trading reduce_only") whenever one call of the first twenty takes longer,
/// which a loaded CI machine sometimes does against a local validator; this test is
/// about trading through the chain, not about the breaker.
const P99_THRESHOLD_MS: u64 = 5_000;
/// From start to the position's close.
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// From SIGINT to the process's exit.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The price that makes the strategy enter (a dip of 3 sigmas below the calm window).
const DIP: f64 = 96.0;

/// The scripted SOL price, one per `/price/v3` request (the last one repeats): sixteen
/// calm prices around 100 fill the 10-tick window (with room for a few ticks lost to a
/// slow start), a 4% dip (z = -3) makes the strategy enter, a slow drift below the entry
/// (the newest price is always the window's lowest, so the strategy never wants its own
/// exit), then a fall of 8% whose first price at or below the stop (95% of the entry)
/// makes the stop-loss fire. From the stop onward no price is 2 sigmas below its window
/// (z >= -1.8), so no second entry follows the close.
fn price_script() -> Vec<f64> {
    let calm = [
        0.0, 0.15, -0.1, 0.05, -0.15, 0.1, -0.05, 0.12, -0.08, 0.02, -0.12, 0.08, -0.03, 0.1, -0.1,
        0.05,
    ];
    let mut prices: Vec<f64> = calm.iter().map(|d| 100.0 + d).collect();
    prices.extend([DIP, 95.9, 95.8, 95.7, 95.6]);
    prices.extend([94.0, 92.4, 90.8, 89.4, 88.6, 88.3]);
    prices
}

// ---------------------------------------------------------------------------------------
// The Jupiter stand-in.

/// A quote the stand-in answered.
#[derive(Debug, Clone)]
struct QuoteSeen {
    input_mint: String,
    amount: u64,
    price: f64,
    out: u64,
}

/// The scripted market behind the stand-in.
struct Market {
    script: Vec<f64>,
    /// `/price/v3` requests answered.
    served: AtomicUsize,
    quotes: Mutex<Vec<QuoteSeen>>,
    /// What was answered when, for a failure's diagnosis.
    events: Mutex<Vec<String>>,
    opened: Instant,
}

impl Market {
    fn new(script: Vec<f64>) -> Self {
        Self {
            script,
            served: AtomicUsize::new(0),
            quotes: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            opened: Instant::now(),
        }
    }

    /// The next scripted price (a price request).
    fn next_price(&self) -> f64 {
        let n = self.served.fetch_add(1, Ordering::SeqCst);
        let price = self.script[n.min(self.script.len() - 1)];
        self.event(format!("price #{n}: {price}"));
        price
    }

    fn event(&self, what: String) {
        let at = self.opened.elapsed().as_secs_f64();
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{at:8.3} s  {what}"));
    }

    /// The price last served (quotes are priced at it).
    fn current(&self) -> f64 {
        let n = self.served.load(Ordering::SeqCst).saturating_sub(1);
        self.script[n.min(self.script.len() - 1)]
    }

    fn quotes(&self) -> Vec<QuoteSeen> {
        self.quotes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Serves `GET /swap/v1/quote` and `GET /price/v3` on loopback (HTTP/1.1 with keep-alive,
/// a thread per connection) for the rest of the process; returns the base URL.
fn serve_jupiter(market: Arc<Market>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Jupiter stand-in");
    let addr = listener.local_addr().expect("its address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let market = market.clone();
            thread::spawn(move || serve_connection(stream, &market));
        }
    });
    format!("http://{addr}")
}

fn serve_connection(stream: TcpStream, market: &Market) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if !matches!(reader.read_line(&mut request_line), Ok(n) if n > 0) {
            return;
        }
        let mut content_length = 0_usize;
        loop {
            let mut header = String::new();
            if !matches!(reader.read_line(&mut header), Ok(n) if n > 0) {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        if content_length > 0 {
            let mut body = vec![0; content_length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (status, body) = if method == "GET" {
            answer(target, market)
        } else {
            ("405 Method Not Allowed", json!({"error": "GET only"}))
        };
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(body.as_bytes()))
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

fn answer(target: &str, market: &Market) -> (&'static str, Value) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    match path {
        "/price/v3" => {
            let ids = params.get("ids").copied().unwrap_or("");
            if ids != SOL_MINT {
                return ("400 Bad Request", json!({"error": format!("ids={ids}")}));
            }
            let price = market.next_price();
            (
                "200 OK",
                json!({ SOL_MINT: { "usdPrice": price, "decimals": 9, "blockId": 1 } }),
            )
        }
        "/swap/v1/quote" => quote(&params, market),
        _ => (
            "404 Not Found",
            json!({"error": format!("no route {path}")}),
        ),
    }
}

/// An exact-input quote at the current scripted price, shaped like the recorded real one
/// (`adapters-jupiter/tests/fixtures/jupiter_quote_sol_usdc.json`), one hop.
fn quote(params: &HashMap<&str, &str>, market: &Market) -> (&'static str, Value) {
    let get = |key: &str| params.get(key).copied().unwrap_or("");
    let (input, output) = (get("inputMint"), get("outputMint"));
    let (Ok(amount), Ok(slippage_bps)) = (
        get("amount").parse::<u64>(),
        get("slippageBps").parse::<u64>(),
    ) else {
        return (
            "400 Bad Request",
            json!({"error": "amount and slippageBps must be integers"}),
        );
    };
    if get("swapMode") != "ExactIn" || slippage_bps > 10_000 {
        return ("400 Bad Request", json!({"error": "ExactIn only"}));
    }
    let price = market.current();
    #[allow(clippy::cast_precision_loss)]
    let amount_f = amount as f64;
    // SOL has 9 decimals and USDC 6.
    let out = match (input, output) {
        (USDC_MINT, SOL_MINT) => amount_f * 1_000.0 / price,
        (SOL_MINT, USDC_MINT) => amount_f * price / 1_000.0,
        _ => {
            return (
                "400 Bad Request",
                json!({"error": "unexpected pair", "errorCode": "TOKEN_NOT_TRADABLE"}),
            );
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let out = out.floor() as u64;
    let threshold = u64::try_from(u128::from(out) * u128::from(10_000 - slippage_bps) / 10_000)
        .expect("below out");
    market.event(format!(
        "quote {amount} of {input} at {price}: {out} (slippage {slippage_bps} bps)"
    ));
    market
        .quotes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(QuoteSeen {
            input_mint: input.to_owned(),
            amount,
            price,
            out,
        });
    (
        "200 OK",
        json!({
            "inputMint": input,
            "inAmount": amount.to_string(),
            "outputMint": output,
            "outAmount": out.to_string(),
            "otherAmountThreshold": threshold.to_string(),
            "swapMode": "ExactIn",
            "slippageBps": slippage_bps,
            "platformFee": null,
            "priceImpactPct": "0",
            "routePlan": [{
                "swapInfo": {
                    "ammKey": "GUoa6mRgTyoE8NgXEyLnYXMWdS71KrcXG2nnx9u41Fmd",
                    "label": "StandIn",
                    "inputMint": input,
                    "outputMint": output,
                    "inAmount": amount.to_string(),
                    "outAmount": out.to_string(),
                    "updateContextSlot": "1"
                },
                "percent": 100,
                "bps": null
            }],
            "contextSlot": 1,
            "timeTaken": 0.001,
            "swapUsdValue": format!("{:.6}", if input == USDC_MINT { amount_f / 1e6 } else { amount_f / 1e9 * price }),
            "mostReliableAmmsQuoteReport": null,
            "longtailMarketQuoteReport": null,
            "useIncurredSlippageForQuoting": null,
            "useRewards": null,
            "otherRoutePlans": null,
            "loadedLongtailToken": false,
            "instructionVersion": null
        }),
    )
}

// ---------------------------------------------------------------------------------------
// The validator, by raw JSON-RPC.

struct Rpc {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Rpc {
    fn new(url: reqwest::Url) -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            url,
        }
    }

    fn try_call(&self, method: &str, params: &Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer: Value = self
            .runtime
            .block_on(async {
                self.client
                    .post(self.url.clone())
                    .json(&body)
                    .send()
                    .await?
                    .json::<Value>()
                    .await
            })
            .map_err(|e| format!("{method}: {e}"))?;
        match answer.get("error") {
            Some(error) => Err(format!("{method}: {error}")),
            None => Ok(answer["result"].clone()),
        }
    }

    fn call(&self, method: &str, params: &Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn balance(&self, address: &str) -> u64 {
        self.call("getBalance", &json!([address, {"commitment": "confirmed"}]))["value"]
            .as_u64()
            .expect("a lamport balance")
    }

    /// Statuses of `signatures`, searching the whole history.
    fn statuses(&self, signatures: &[&str]) -> Vec<Value> {
        self.call(
            "getSignatureStatuses",
            &json!([signatures, {"searchTransactionHistory": true}]),
        )["value"]
            .as_array()
            .expect("a status list")
            .clone()
    }

    fn transaction(&self, signature: &str) -> Value {
        self.call(
            "getTransaction",
            &json!([signature, {
                "encoding": "json",
                "commitment": "confirmed",
                "maxSupportedTransactionVersion": 0
            }]),
        )
    }

    /// Airdrops `lamports` to `address` from the validator's faucet, once the validator
    /// answers (it is the readiness check), and waits until the balance shows.
    fn airdrop(&self, address: &str, lamports: u64, within: Duration) {
        let deadline = Instant::now() + within;
        let signature = loop {
            let healthy = self
                .try_call("getHealth", &json!([]))
                .is_ok_and(|h| h == "ok");
            if healthy
                && let Ok(signature) = self.try_call("requestAirdrop", &json!([address, lamports]))
            {
                break signature.as_str().expect("a signature").to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "validator not ready (no airdrop) within {within:?}"
            );
            thread::sleep(Duration::from_millis(250));
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = &self.statuses(&[&signature])[0];
            if confirmed(status) {
                assert!(status["err"].is_null(), "airdrop failed: {status}");
                if self.balance(address) == lamports {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "airdrop not confirmed within 30 s"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

fn confirmed(status: &Value) -> bool {
    matches!(
        status["confirmationStatus"].as_str(),
        Some("confirmed" | "finalized")
    )
}

// ---------------------------------------------------------------------------------------
// The binary.

/// `kyzlo` with no `KYZLO_*` or `JUPITER_*` variable inherited, and no stdin.
fn kyzlo(dir: &Path) -> Command {
    let mut command = Command::new(kyzlo_tests::kyzlo_bin());
    command.current_dir(dir).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("KYZLO_") || key.starts_with("JUPITER_") {
            command.env_remove(key.as_ref());
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// A child killed and reaped when dropped, whatever the test did.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A log line's message (`fields.message` of a JSON line); `None` for other lines.
fn message(line: &Value) -> Option<&str> {
    line["fields"]["message"].as_str()
}

/// Where the last run's log and the stand-in's answers are saved.
fn run_log_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("devnet-last-run.log")
}

/// Saves kyzlo's log lines and the stand-in's answers to [`run_log_path`].
fn save_run_log(lines: &[String], market: &Market) {
    let events = market
        .events
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .join("\n");
    let text = format!(
        "# kyzlo's log\n{}\n\n# the Jupiter stand-in's answers\n{events}\n",
        lines.join("\n")
    );
    let _ = std::fs::write(run_log_path(), text);
}

fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Waits for `child`'s exit within `limit`, collecting the log lines meanwhile.
fn wait_exit(
    child: &mut KillOnDrop,
    log: &Receiver<String>,
    lines: &mut Vec<String>,
    limit: Duration,
) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        match log.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(50)),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test.

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One row of `attempts`.
#[derive(Debug)]
struct AttemptRow {
    intent: i64,
    attempt: i64,
    signature: String,
    outcome: Option<String>,
    priority_fee: i64,
}

/// One row of `intents`.
#[derive(Debug)]
struct IntentRow {
    id: i64,
    position: i64,
    action: String,
    exit_kind: Option<String>,
    side: String,
    outcome: Option<String>,
    fill_in: Option<i64>,
    fill_out: Option<i64>,
    fill_fee: Option<i64>,
}

fn read_journal(path: &Path) -> (Vec<IntentRow>, Vec<AttemptRow>) {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the journal");
    let intents = conn
        .prepare(
            "SELECT id, position_id, action, exit_kind, side, outcome, fill_amount_in,
                    fill_amount_out, fill_fee_lamports FROM intents ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(IntentRow {
                id: r.get(0)?,
                position: r.get(1)?,
                action: r.get(2)?,
                exit_kind: r.get(3)?,
                side: r.get(4)?,
                outcome: r.get(5)?,
                fill_in: r.get(6)?,
                fill_out: r.get(7)?,
                fill_fee: r.get(8)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let attempts = conn
        .prepare("SELECT intent_id, attempt, signature, outcome, priority_fee_lamports FROM attempts ORDER BY intent_id, attempt")
        .unwrap()
        .query_map([], |r| {
            Ok(AttemptRow {
                intent: r.get(0)?,
                attempt: r.get(1)?,
                signature: r.get(2)?,
                outcome: r.get(3)?,
                priority_fee: r.get(4)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (intents, attempts)
}

fn write_keypair(dir: &Path) -> (std::path::PathBuf, String) {
    let keypair = Keypair::new();
    let numbers: Vec<String> = keypair.to_bytes().iter().map(u8::to_string).collect();
    let address = KeypairSigner::new(keypair).pubkey().to_string();
    let path = dir.join("id.json");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create the keypair file");
    file.write_all(format!("[{}]", numbers.join(",")).as_bytes())
        .expect("write the keypair file");
    (path, address)
}

fn devnet_run_enters_and_stops_out_with_real_transactions(rpc_url: &reqwest::Url) {
    let dir = tempfile::Builder::new()
        .prefix("kyzlo-devnet-")
        .tempdir()
        .expect("a temp dir");
    let data_dir = dir.path().join("data");
    let rpc = Rpc::new(rpc_url.clone());

    // A wallet with real lamports.
    let (keypair_path, wallet) = write_keypair(dir.path());
    rpc.airdrop(&wallet, AIRDROP, VALIDATOR_READY);
    let lamports_before = rpc.balance(&wallet);

    // The Jupiter stand-in and the configuration.
    let market = Arc::new(Market::new(price_script()));
    let jupiter_url = serve_jupiter(market.clone());
    let config = format!(
        r#"profile = "devnet"

[wallet]
keypair_path = "{keypair}"

[rpc]
endpoints = ["{rpc_url}"]
commitment = "confirmed"

[jupiter]
base_url = "{jupiter_url}"

[strategy]
window_s = 5.0
cost_aware = false

[trading]
entry_size = 10.0
entry_fraction = 1.0
max_positions = 1
tick_interval_ms = 500

[exit_plan]
stop_loss_bps = {STOP_LOSS_BPS}
trailing_activation_bps = 0
breakeven_trigger_bps = 0
take_profit = []

[latency_breaker]
p99_threshold_ms = {P99_THRESHOLD_MS}

[api]
listen = ""

[journal]
data_dir = "{data}"

[paper]
initial_quote = 1000.0
"#,
        keypair = keypair_path.display(),
        data = data_dir.display(),
    );
    let config_path = dir.path().join("kyzlo.toml");
    std::fs::write(&config_path, config).expect("write the config");

    let check = kyzlo(dir.path())
        .arg("config")
        .arg("check")
        .arg("--config")
        .arg(&config_path)
        .output()
        .expect("run kyzlo config check");
    assert!(
        check.status.success(),
        "config check refused the config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let checked = String::from_utf8_lossy(&check.stdout);
    assert!(
        checked.starts_with("# configuration is valid (profile devnet)"),
        "{checked}"
    );

    // The run, until the position is closed.
    let mut child = KillOnDrop(
        kyzlo(dir.path())
            .args(["run", "--config"])
            .arg(&config_path)
            .args(["--log-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kyzlo run"),
    );
    let pid = child.0.id();
    let stderr = child.0.stderr.take().expect("stderr");
    let mut stdout = child.0.stdout.take().expect("stdout");
    let (tx, log) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    let (mut opened_at, mut closed_at) = (None, None);
    while closed_at.is_none() {
        let left = RUN_LIMIT.saturating_sub(started.elapsed());
        match log.recv_timeout(left) {
            Ok(line) => {
                if let Ok(parsed) = serde_json::from_str::<Value>(&line) {
                    match message(&parsed) {
                        Some("position opened") if opened_at.is_none() => {
                            opened_at = Some(started.elapsed());
                        }
                        Some("position closed") if opened_at.is_some() => {
                            closed_at = Some(started.elapsed());
                        }
                        _ => {}
                    }
                }
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) => {
                save_run_log(&lines, &market);
                panic!(
                    "no position opened and closed within {RUN_LIMIT:?} (opened: {opened_at:?}; \
                 {} prices served); log tail:\n{}",
                    market.served.load(Ordering::SeqCst),
                    tail(&lines)
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                save_run_log(&lines, &market);
                let status = child.0.wait().expect("wait");
                panic!("kyzlo ended early ({status}); log tail:\n{}", tail(&lines));
            }
        }
    }
    eprintln!(
        "position opened after {:.1} s and closed after {:.1} s ({} prices served)",
        opened_at.unwrap_or_default().as_secs_f64(),
        closed_at.unwrap_or_default().as_secs_f64(),
        market.served.load(Ordering::SeqCst)
    );

    // SIGINT, and a clean exit.
    let sent = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT {pid} failed");
    let status = wait_exit(&mut child, &log, &mut lines, STOP_LIMIT);
    save_run_log(&lines, &market);
    let status = status.unwrap_or_else(|| {
        panic!(
            "kyzlo still running {STOP_LIMIT:?} after SIGINT; log tail:\n{}",
            tail(&lines)
        )
    });
    while let Ok(line) = log.recv_timeout(Duration::from_secs(2)) {
        lines.push(line);
    }
    save_run_log(&lines, &market);
    let mut summary = String::new();
    stdout.read_to_string(&mut summary).expect("read stdout");
    assert!(
        status.success(),
        "kyzlo exited with {status} after SIGINT; stdout {summary:?}; log tail:\n{}",
        tail(&lines)
    );
    let parsed: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for warning in parsed.iter().filter(|v| v["level"] == "WARN") {
        eprintln!("kyzlo warned: {}", warning["fields"]);
    }
    let errors: Vec<&Value> = parsed.iter().filter(|v| v["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "errors logged: {errors:#?}");

    assert!(
        summary.starts_with("stopped: 1 entries, 1 exits closed, 0 failed, 0 past the deadline; 0 open positions; trading active"),
        "summary: {summary:?}"
    );

    // Every attempt sent is journaled, and the journal holds the entry and the stop.
    let (intents, attempts) = read_journal(&data_dir.join("journal.db"));
    assert_eq!(intents.len(), 2, "intents: {intents:#?}");
    let (entry, exit) = (&intents[0], &intents[1]);
    assert_eq!(
        (
            entry.action.as_str(),
            entry.exit_kind.as_deref(),
            entry.side.as_str()
        ),
        ("enter", None, "buy"),
        "{entry:?}"
    );
    assert_eq!(
        (
            exit.action.as_str(),
            exit.exit_kind.as_deref(),
            exit.side.as_str()
        ),
        ("exit", Some("stop_loss"), "sell"),
        "{exit:?}"
    );
    assert_eq!(entry.position, exit.position);
    for intent in &intents {
        assert_eq!(intent.outcome.as_deref(), Some("filled"), "{intent:?}");
    }
    let sent_lines: Vec<&Value> = parsed
        .iter()
        .filter(|v| message(v) == Some("attempt sent"))
        .collect();
    assert_eq!(
        sent_lines.len(),
        attempts.len(),
        "attempt sent lines vs attempts rows: {attempts:#?}"
    );
    for line in &sent_lines {
        let f = &line["fields"];
        let intent: i64 = f["intent"]
            .as_str()
            .and_then(|s| s.strip_prefix("intent-"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("intent of {line}"));
        let attempt = f["attempt"]
            .as_i64()
            .unwrap_or_else(|| panic!("attempt of {line}"));
        let row = attempts
            .iter()
            .find(|a| a.intent == intent && a.attempt == attempt)
            .unwrap_or_else(|| panic!("no attempts row for {line}: {attempts:#?}"));
        let bytes = bs58::decode(&row.signature).into_vec().expect("base58");
        assert_eq!(
            Some(hex(&bytes[..8]).as_str()),
            f["signature"].as_str(),
            "{row:?} vs {line}"
        );
    }

    // Every attempt that landed is confirmed on the validator without error, carries its
    // stand-in memo, and its fee is the lamports the wallet lost.
    let signatures: Vec<&str> = attempts.iter().map(|a| a.signature.as_str()).collect();
    let statuses = rpc.statuses(&signatures);
    let mut fees = 0;
    let mut landed: BTreeMap<i64, &AttemptRow> = BTreeMap::new();
    for (row, status) in attempts.iter().zip(&statuses) {
        if row.outcome.as_deref() == Some("landed") {
            assert!(confirmed(status), "{row:?} is not confirmed: {status}");
            assert!(status["err"].is_null(), "{row:?} failed on chain: {status}");
            assert!(
                landed.insert(row.intent, row).is_none(),
                "two attempts of intent {} landed",
                row.intent
            );
        }
        if status.is_null() {
            continue;
        }
        let tx = rpc.transaction(&row.signature);
        // kyzlo's own v0 message: compute budget first, the stand-in's pool through its
        // lookup table, and a fee read back equal to the base fee plus what it bid.
        let message = &tx["transaction"]["message"];
        assert_eq!(tx["version"], json!(0), "{row:?}: a v0 transaction");
        assert_eq!(
            message["addressTableLookups"].as_array().map(Vec::len),
            Some(1),
            "{row:?}: one lookup table"
        );
        let keys = message["accountKeys"].as_array().expect("keys");
        let first_program = message["instructions"][0]["programIdIndex"]
            .as_u64()
            .and_then(|i| keys.get(usize::try_from(i).ok()?))
            .and_then(Value::as_str);
        assert_eq!(
            first_program,
            Some("ComputeBudget111111111111111111111111111111"),
            "{row:?}"
        );
        assert!(row.priority_fee > 0, "{row:?}: a priority fee was bid");
        let fee = tx["meta"]["fee"].as_u64().expect("a fee");
        let bid = u64::try_from(row.priority_fee).expect("a bid is not negative");
        assert_eq!(fee, FEE + bid, "{row:?}: base fee plus the bid");
        fees += fee;
        let side = if row.intent == entry.id {
            "buy"
        } else {
            "sell"
        };
        let memo = format!("kyzlo devnet stand-in: {side} ");
        assert!(
            tx["meta"]["logMessages"].as_array().is_some_and(|logs| logs
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.contains(&memo)))),
            "no {memo:?} memo in {}",
            tx["meta"]["logMessages"]
        );
    }
    assert_eq!(
        landed.keys().copied().collect::<Vec<_>>(),
        vec![entry.id, exit.id],
        "one landed attempt per intent: {attempts:#?}"
    );
    // The stand-in's lookup table, created at start-up (recorded in the devnet wallet
    // file), holds its pool; the wallet paid their rent and the creation's base fee.
    let wallet_file: Value = serde_json::from_slice(
        &std::fs::read(data_dir.join("devnet-wallet.json")).expect("the devnet wallet"),
    )
    .expect("devnet wallet JSON");
    let table = wallet_file["lookup_table"]
        .as_str()
        .unwrap_or_else(|| panic!("a lookup table in {wallet_file}"));
    let parsed = rpc.call(
        "getAccountInfo",
        &json!([table, {"encoding": "jsonParsed", "commitment": "confirmed"}]),
    );
    let pools = parsed["value"]["data"]["parsed"]["info"]["addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("a lookup table at {table}: {parsed}"))
        .iter()
        .map(|a| a.as_str().expect("an address").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(pools.len(), 1, "the stand-in's pool: {parsed}");
    let setup = rpc.balance(table) + rpc.balance(&pools[0]) + FEE;
    let lamports_after = rpc.balance(&wallet);
    assert_eq!(
        lamports_before - lamports_after,
        fees + setup,
        "the wallet paid exactly the fees of the transactions that landed, and the table's set-up"
    );
    for intent in &intents {
        let row = landed
            .get(&intent.id)
            .unwrap_or_else(|| panic!("{intent:?} landed"));
        let bid = row.priority_fee;
        assert_eq!(
            intent.fill_fee,
            Some(i64::try_from(FEE).unwrap() + bid),
            "{intent:?}: the fee read back is the base fee plus the bid"
        );
    }

    // The fills are the stand-in's quotes: bought at the dip, sold at the first price
    // through the stop.
    let to_u64 = |v: Option<i64>| u64::try_from(v.expect("a fill amount")).unwrap();
    let (bought_with, bought) = (to_u64(entry.fill_in), to_u64(entry.fill_out));
    let (sold, sold_for) = (to_u64(exit.fill_in), to_u64(exit.fill_out));
    assert_eq!(bought_with, ENTRY);
    assert_eq!(sold, bought, "the whole position is sold");
    #[allow(clippy::cast_precision_loss)]
    let (entry_price, exit_price) = (
        bought_with as f64 * 1_000.0 / bought as f64,
        sold_for as f64 * 1_000.0 / sold as f64,
    );
    assert!((entry_price - DIP).abs() < 0.01, "entry at {entry_price}");
    #[allow(clippy::cast_precision_loss)]
    let stop = entry_price * (1.0 - STOP_LOSS_BPS as f64 / 10_000.0);
    assert!(
        exit_price <= stop && exit_price > entry_price * 0.9,
        "exit at {exit_price}, stop {stop}"
    );
    let quotes = market.quotes();
    assert!(
        quotes
            .iter()
            .any(|q| q.input_mint == USDC_MINT && q.amount == ENTRY && q.out == bought),
        "the entry's fill is a stand-in quote: {quotes:#?}"
    );
    assert!(
        quotes.iter().any(|q| q.input_mint == SOL_MINT
            && q.amount == sold
            && q.out == sold_for
            && q.price <= stop),
        "the exit's fill is a stand-in quote: {quotes:#?}"
    );

    // The devnet venue's virtual wallet: flat again, the USDC back less the loss.
    let quote_left = INITIAL_QUOTE - bought_with + sold_for;
    assert_eq!(wallet_file["base"].as_u64(), Some(0), "{wallet_file}");
    assert_eq!(
        wallet_file["quote"].as_u64(),
        Some(quote_left),
        "{wallet_file}"
    );
    let loss = INITIAL_QUOTE - quote_left;
    assert!(
        (ENTRY * 4 / 100..ENTRY * 9 / 100).contains(&loss),
        "a stop-loss loses 4-9% of the entry, not {loss} units"
    );
    for row in landed.values() {
        let bytes = bs58::decode(&row.signature).into_vec().expect("base58");
        let key = hex(&bytes);
        assert!(
            wallet_file["settled"]
                .as_array()
                .is_some_and(|s| s.iter().any(|k| k.as_str() == Some(key.as_str()))),
            "{} not settled in {wallet_file}",
            row.signature
        );
    }
    eprintln!(
        "{} attempts ({} landed), fees {fees} lamports; entry {entry_price:.4}, exit \
         {exit_price:.4}; USDC {:.6} -> {:.6}",
        attempts.len(),
        landed.len(),
        INITIAL_QUOTE as f64 / 1e6,
        quote_left as f64 / 1e6
    );

    // `kyzlo doctor` on the same configuration: every check passes against the validator
    // and the Jupiter stand-in, and nothing is sent.
    let sends_before = attempts.len();
    let doctor = kyzlo(dir.path())
        .args(["doctor", "--config"])
        .arg(&config_path)
        .output()
        .expect("run kyzlo doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor.status.success(),
        "kyzlo doctor: {report}{}",
        String::from_utf8_lossy(&doctor.stderr)
    );
    for part in [
        "reads only, nothing is sent",
        "ok    rpc http://127.0.0.1",
        "healthy, solana-core",
        "slots of history",
        "ok    wallet",
        "SOL against a fee reserve of 0.010000",
        "ok    jupiter",
        "a budget of 60 requests a minute",
        "swaps: Jupiter Swap API v2 /build, compiled by kyzlo",
        "an RPC budget of 90 requests per 10 s, 40 kept for exits",
        "0 failed",
    ] {
        assert!(
            report.contains(part),
            "{part} not in the doctor's report:\n{report}"
        );
    }
    assert_eq!(
        read_journal(&data_dir.join("journal.db")).1.len(),
        sends_before,
        "the doctor sent nothing"
    );
    eprintln!("{report}");

    // The same validator as mainnet. Its USDC mint (6 decimals, loaded at genesis) and
    // the native mint pass the doctor's mint checks; a configuration that says the quote
    // has 9 decimals is refused by the run before it claims its data dir, and by the
    // doctor.
    let mainnet_data = dir.path().join("mainnet-data");
    let mainnet = |quote_decimals: u8| {
        let path = dir.path().join(format!("mainnet-{quote_decimals}.toml"));
        std::fs::write(
            &path,
            format!(
                "profile = \"mainnet\"\nconfirm_mainnet = true\n[pair]\nquote_decimals = {quote_decimals}\n[wallet]\nkeypair_path = \"{}\"\n[rpc]\nendpoints = [\"{rpc_url}\"]\n[jupiter]\nbase_url = \"{jupiter_url}\"\napi_key = \"stand-in-key\"\n[api]\nlisten = \"\"\n[journal]\ndata_dir = \"{}\"\n",
                keypair_path.display(),
                mainnet_data.display()
            ),
        )
        .expect("write the mainnet config");
        path
    };
    let doctor = kyzlo(dir.path())
        .args(["doctor", "--config"])
        .arg(mainnet(6))
        .output()
        .expect("run kyzlo doctor on mainnet");
    let report = String::from_utf8_lossy(&doctor.stdout);
    for part in [
        format!("ok    base mint {SOL_MINT}: 9 decimals, as configured"),
        format!("ok    quote mint {USDC_MINT}: 6 decimals, as configured"),
    ] {
        assert!(report.contains(&part), "{part} not in:\n{report}");
    }
    let wrong = mainnet(9);
    let run = kyzlo(dir.path())
        .args(["run", "--config"])
        .arg(&wrong)
        .output()
        .expect("run kyzlo run on mainnet");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "quote mint {USDC_MINT}: 6 decimals on chain, 9 in the configuration: fix pair.quote_decimals"
        )),
        "{stderr}"
    );
    assert!(
        !mainnet_data.exists(),
        "refused before the data dir was claimed"
    );
    let doctor = kyzlo(dir.path())
        .args(["doctor", "--config"])
        .arg(&wrong)
        .output()
        .expect("run kyzlo doctor on mainnet");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "FAIL  quote mint {USDC_MINT}: 6 decimals on chain"
        )),
        "{report}"
    );
    eprintln!("{report}");
}

/// Writes, for the validator's `--account`, a 6-decimal SPL mint with no authorities at
/// the configured quote mint's address (USDC's mainnet mint). The stand-in swaps never
/// touch it, but the venue's balance reads ask the RPC for the wallet's token accounts of
/// the pair's mints, and the RPC refuses a mint it cannot find ("Invalid param: could not
/// find mint"), which fails `kyzlo run`'s start-up reconciliation on a fresh ledger.
fn write_quote_mint(dir: &Path) -> std::path::PathBuf {
    let mut data = Vec::with_capacity(82);
    data.extend_from_slice(&[0; 4 + 32]); // mint authority: none
    data.extend_from_slice(&0_u64.to_le_bytes()); // supply
    data.push(6); // decimals
    data.push(1); // initialized
    data.extend_from_slice(&[0; 4 + 32]); // freeze authority: none
    let account = json!({
        "pubkey": USDC_MINT,
        "account": {
            "lamports": MINT_RENT,
            "data": [bs58::encode(&data).into_string(), "base58"],
            "owner": TOKEN_PROGRAM,
            "executable": false,
            "rentEpoch": 0,
            "space": data.len()
        }
    });
    let path = dir.join("quote-mint.json");
    std::fs::write(&path, account.to_string()).expect("write the mint account");
    path
}

// ---------------------------------------------------------------------------------------
// The runner.

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

fn summary(passed: usize, failed: usize, filtered: usize, started: Instant) {
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; \
         {filtered} filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return ExitCode::SUCCESS;
    }
    let selected = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .all(|f| TEST_NAME.contains(f.as_str()));
    if !selected {
        println!("\nrunning 0 tests");
        summary(0, 0, 1, started);
        return ExitCode::SUCCESS;
    }
    match cluster::ensure_isolated(&args) {
        Ok(cluster::Isolation::Here) => {}
        Ok(cluster::Isolation::RanInChild(code)) => return code,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    let genesis = tempfile::Builder::new()
        .prefix("kyzlo-devnet-genesis-")
        .tempdir()
        .expect("a temp dir");
    let mint = write_quote_mint(genesis.path());
    let mut validator_args = VALIDATOR_ARGS.to_vec();
    validator_args.extend(["--account", USDC_MINT, mint.to_str().expect("a UTF-8 path")]);
    let validator = match cluster::Validator::start(&validator_args) {
        Ok(validator) => validator,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    println!("\nrunning 1 test");
    let url = validator.rpc_url.clone();
    let t = Instant::now();
    let outcome = std::panic::catch_unwind(|| {
        devnet_run_enters_and_stops_out_with_real_transactions(&url);
    });
    let failed = match outcome {
        Ok(()) => {
            println!(
                "test {TEST_NAME} ... ok ({:.1} s)",
                t.elapsed().as_secs_f64()
            );
            0
        }
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            println!(
                "test {TEST_NAME} ... FAILED\n    {message}\n    kyzlo's log and the Jupiter \
                 stand-in's answers: {}",
                run_log_path().display()
            );
            if message.contains("validator") {
                println!(
                    "    validator ledger {}; log tail:\n{}",
                    validator.ledger().display(),
                    validator.log_tail()
                );
            }
            1
        }
    };
    validator.stop();
    summary(1 - failed, failed, 0, started);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
