//! Crash safety of the real binary: `kyzlo paper` SIGKILLed at seeded points while
//! entries and exits are in flight, restarted each time on the same journal and paper
//! wallet, settles every position: no intent lands twice, nothing lands unjournaled, no
//! position is forgotten, and an operator's halt survives restarts and crashes.
//!
//! The suite runs 250 kill points; the full run is 1,000:
//! `KYZLO_CRASH_KILLS=1000 cargo test -p kyzlo-tests --test crash sigkill -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// SIGKILLs, each right after an "attempt sent" line (or, one in [`EXIT_CLOSED_ONE_IN`],
/// an "exit closed" line): a bounded subset of the full 1,000 in the suite;
/// `KYZLO_CRASH_KILLS` runs another number.
const KILLS: usize = 250;
/// After kill number 25, and every 250 kills after it, the operator halts the stopped
/// bot, checks the halt holds across a run and a crash, then resumes it.
const HALT_AFTER_KILL: usize = 25;
const HALT_EVERY: usize = 250;
/// Each run is killed after 1 ..= this many attempts were sent.
const MAX_ATTEMPTS_BEFORE_KILL: u64 = 6;
/// One kill in this many waits for the next "exit closed" line after its attempts.
const EXIT_CLOSED_ONE_IN: u64 = 3;
/// The last run's market time: it settles what the last kill left, then enters at the
/// market's first dip (12 s) and stops before that position's exit, so the check of the
/// wallet against the open positions compares more than zeros.
const FINAL_RUN: &str = "13s";
/// The kill lands up to this long (real time) after the line: up to 2 s of virtual time.
const MAX_KILL_DELAY_US: u64 = 4_000;
/// Virtual time runs this many times faster than real time in the killed runs.
const SPEED: &str = "500";
/// A killed run that has not sent its attempts by then is stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
const APPROVAL_KEY: &str = "crash-test-approval-key-7f3a91";
const HALT_REASON: &str = "crash-test operator halt";
/// The kill points' seed; `KYZLO_CRASH_SEED` replays another.
const DEFAULT_SEED: u64 = 0x6b79_7a6c_6f63_7261;
/// The generated market's seed (fixed: the market is part of the fixture).
const MARKET_SEED: u64 = 20_210_519;

/// A tiny seeded generator (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo ..= hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A child process killed (and reaped) when dropped, whatever the test did.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A market of one-second prices that dips every 20 s or so (a mean-reversion entry),
/// then either crashes through the 5% stop or rebounds through the take-profits and back
/// to the mean: exits are frequent, of every kind.
fn market_csv(seed: u64, seconds: usize) -> String {
    let mut rng = SplitMix64(seed);
    let mut prices = Vec::with_capacity(seconds);
    let mut p = 100.0_f64;
    while prices.len() < seconds {
        for _ in 0..12 {
            p *= 1.0 + (rng.unit() - 0.5) * 0.001;
            prices.push(p);
        }
        let crash = rng.unit() < 0.5;
        let (falls, rises) = if crash { (4, 8) } else { (0, 6) };
        for step in 0..2 + falls {
            p *= if step < 2 { 0.985 } else { 0.98 };
            prices.push(p);
        }
        for _ in 0..rises {
            p *= 1.012;
            prices.push(p);
        }
        for _ in 0..4 {
            p += (100.0 - p) * 0.3;
            prices.push(p);
        }
    }
    let mut csv = String::from("ts_ms,price\n");
    for (i, p) in prices.iter().take(seconds).enumerate() {
        let _ = writeln!(csv, "{},{p:.6}", i * 1_000);
    }
    csv
}

fn config_toml() -> String {
    format!(
        r#"# Frequent entries and exits on a flaky simulated network; no HTTP API.
[trading]
tick_interval_ms = 1000
max_positions = 3
entry_fraction = 1.0
entry_size = 100.0

[strategy]
window_s = 10.0
cost_aware = false

[exit_breaker]
# Failed exits must not halt the bot on their own: the only halt is the operator's.
threshold = 1000000

[api]
listen = ""
approval_key = "{APPROVAL_KEY}"

[paper]
faults = "flaky"
initial_quote = 1000000.0
"#
    )
}

/// `kyzlo --config kyzlo-crash.toml --log-format json <args>` in `dir`, with no `KYZLO_*`
/// variable of the test's environment leaking in.
fn kyzlo(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(kyzlo_tests::kyzlo_bin());
    cmd.current_dir(dir)
        .args(["--config", "kyzlo-crash.toml", "--log-format", "json"])
        .args(args)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("KYZLO_") || key == "JUPITER_API_KEY" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// An operator command against the stopped bot. `--url` names a loopback port nothing
/// listens on, so the command falls back to the journal without any network look-up.
fn operator(dir: &Path, args: &[&str]) -> Output {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut all = args.to_vec();
    all.extend(["--url", url.as_str()]);
    kyzlo(dir, &all).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One stderr line, parsed when it is a JSON log line.
struct LogLine {
    raw: String,
    json: Option<Value>,
}

impl LogLine {
    fn new(raw: String) -> Self {
        let json = serde_json::from_str(&raw).ok();
        Self { raw, json }
    }

    fn message(&self) -> &str {
        self.field("message").and_then(Value::as_str).unwrap_or("")
    }

    fn field(&self, name: &str) -> Option<&Value> {
        self.json.as_ref()?.get("fields")?.get(name)
    }

    fn level(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j.get("level"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// An "attempt sent" line: the intent, the attempt number and the signature's first
/// eight bytes in hex.
#[derive(Debug, Clone)]
struct SentAttempt {
    intent: i64,
    attempt: i64,
    signature_prefix: String,
}

impl SentAttempt {
    fn from_line(line: &LogLine) -> Option<Self> {
        if line.message() != "attempt sent" {
            return None;
        }
        let intent = line.field("intent")?.as_str()?;
        Some(Self {
            intent: intent.strip_prefix("intent-")?.parse().ok()?,
            attempt: line.field("attempt")?.as_i64()?,
            signature_prefix: line.field("signature")?.as_str()?.to_owned(),
        })
    }
}

/// The intents of the protective exits (a hard stop retried while halted) in a log.
fn protective_intents(lines: &[LogLine]) -> std::collections::BTreeSet<i64> {
    lines
        .iter()
        .filter(|l| {
            l.message() == "[EXIT_GATEWAY] exit order accepted"
                && l.field("module").and_then(Value::as_str) == Some("protective")
                && l.field("kind").and_then(Value::as_str) == Some("stop_loss")
        })
        .filter_map(|l| {
            l.field("intent")?
                .as_str()?
                .strip_prefix("intent-")?
                .parse()
                .ok()
        })
        .collect()
}

fn tail(lines: &[LogLine]) -> String {
    let from = lines.len().saturating_sub(25);
    lines[from..]
        .iter()
        .map(|l| l.raw.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The child's stderr, line by line, through a channel (closed when the pipe is).
fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Where a run is SIGKILLed.
#[derive(Debug, Clone, Copy)]
struct KillPoint {
    /// After this many "attempt sent" lines...
    attempts: usize,
    /// ...or, when set, at the first "exit closed" line after them: the exit's fill is
    /// journaled and its position is about to be updated.
    at_exit_closed: bool,
    /// Then this long (real time; a few ms are a second or two of market time).
    delay: Duration,
}

/// What a killed run logged.
struct Killed {
    /// Every attempt it logged as sent.
    sent: Vec<SentAttempt>,
    /// The intent whose line triggered the kill, and whether that was an "exit closed".
    trigger: (i64, bool),
    /// Its whole stderr.
    log: Vec<LogLine>,
}

/// Why a run did not do what was asked of it.
enum RunError {
    /// The bot exited at start because start-up reconciliation failed (a transient fault
    /// of the simulated network at start-up): its stderr.
    Refused(Vec<LogLine>),
}

/// A start refused by a transient fault at start-up is retried, as a supervisor would,
/// once the network changed (another fault seed); the refusals are kept.
fn supervise<T>(
    refused: &mut Vec<String>,
    fault_seed: u64,
    mut run: impl FnMut(u64) -> Result<T, RunError>,
) -> T {
    for retry in 0..5_u64 {
        match run(fault_seed.wrapping_add(retry * 7_919)) {
            Ok(done) => return done,
            Err(RunError::Refused(log)) => refused.push(
                log.iter()
                    .find(|l| l.raw.contains("start-up reconciliation failed"))
                    .map_or_else(|| tail(&log), |l| l.raw.clone()),
            ),
        }
    }
    panic!("the bot refused to start 5 times in a row: {:?}", refused);
}

/// Starts the paper bot paced at [`SPEED`] with stderr piped.
fn spawn_paced(dir: &Path, fault_seed: u64) -> (KillOnDrop, mpsc::Receiver<String>) {
    let seed = fault_seed.to_string();
    let mut child = KillOnDrop(
        kyzlo(
            dir,
            &[
                "paper",
                "--prices",
                "market.csv",
                "--speed",
                SPEED,
                "--seed",
                &seed,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let lines = read_lines(&mut child.0);
    (child, lines)
}

/// Reads the paced bot's stderr until `stop` says so for a line, then SIGKILLs it
/// after `delay`; returns its whole stderr and the index of that line.
fn kill_when(
    dir: &Path,
    fault_seed: u64,
    delay: Duration,
    mut stop: impl FnMut(&LogLine) -> bool,
) -> Result<(Vec<LogLine>, usize), RunError> {
    let (mut child, lines) = spawn_paced(dir, fault_seed);
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut log = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(raw) => {
                let line = LogLine::new(raw);
                let fire = stop(&line);
                log.push(line);
                if fire {
                    std::thread::sleep(delay);
                    child.0.kill().unwrap();
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "the bot did not reach its kill point in {RUN_TIMEOUT:?}; stderr tail:\n{}",
                tail(&log)
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().unwrap();
                if log
                    .iter()
                    .any(|l| l.raw.contains("start-up reconciliation failed"))
                {
                    assert!(!status.success(), "a refused start exits with failure");
                    return Err(RunError::Refused(log));
                }
                panic!(
                    "the bot exited ({status:?}) before its kill point; stderr tail:\n{}",
                    tail(&log)
                );
            }
        }
    }
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "SIGKILL ended the bot: {status:?}"
    );
    let trigger = log.len() - 1;
    log.extend(lines.into_iter().map(LogLine::new));
    Ok((log, trigger))
}

/// The bot under test in its data folder, and the starts it refused so far.
struct Bot<'a> {
    dir: &'a Path,
    refused: Vec<String>,
    /// What the last kill left in the journal for the next start to reconcile.
    left: String,
}

impl Bot<'_> {
    /// Runs the paced bot and SIGKILLs it at `point`.
    fn run_and_kill(&mut self, fault_seed: u64, point: KillPoint) -> Killed {
        let dir = self.dir;
        let left = &self.left;
        let (log, trigger) = supervise(&mut self.refused, fault_seed, |seed| {
            let mut sent = 0;
            kill_when(dir, seed, point.delay, |line| {
                assert_ne!(
                    line.message(),
                    "TRADING HALTED",
                    "the restarted bot did not reconcile what the last kill left ({left}): it halted itself: {}",
                    line.raw
                );
                if SentAttempt::from_line(line).is_some() {
                    sent += 1;
                    return sent == point.attempts && !point.at_exit_closed;
                }
                sent >= point.attempts && point.at_exit_closed && line.message() == "exit closed"
            })
        });
        let sent: Vec<_> = log.iter().filter_map(SentAttempt::from_line).collect();
        let intent = log[trigger]
            .field("intent")
            .and_then(Value::as_str)
            .and_then(|i| i.strip_prefix("intent-")?.parse().ok())
            .unwrap();
        Killed {
            sent,
            trigger: (intent, point.at_exit_closed),
            log,
        }
    }

    /// Runs the bot unpaced for `duration` of market time, to its end.
    fn run_to_end(&mut self, fault_seed: u64, duration: &str) -> Output {
        let dir = self.dir;
        supervise(&mut self.refused, fault_seed, |seed| {
            let seed = seed.to_string();
            let child = KillOnDrop(
                kyzlo(
                    dir,
                    &[
                        "paper",
                        "--prices",
                        "market.csv",
                        "--seed",
                        &seed,
                        "--duration",
                        duration,
                    ],
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            );
            let output = wait_with_timeout(child, Duration::from_secs(60));
            let stderr = text(&output.stderr);
            if !output.status.success() && stderr.contains("start-up reconciliation failed") {
                return Err(RunError::Refused(
                    stderr.lines().map(|l| LogLine::new(l.to_owned())).collect(),
                ));
            }
            Ok(output)
        })
    }
}

/// The child's output once it exits; it is killed (and the test fails) past `timeout`.
fn wait_with_timeout(mut child: KillOnDrop, timeout: Duration) -> Output {
    let mut stdout = child.0.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut s);
        s
    });
    let lines = read_lines(&mut child.0);
    let deadline = Instant::now() + timeout;
    let mut stderr = String::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                stderr.push_str(&line);
                stderr.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!("the run did not end in {timeout:?}:\n{stderr}")
            }
        }
    }
    Output {
        status: child.0.wait().unwrap(),
        stdout: out.join().unwrap(),
        stderr: stderr.into_bytes(),
    }
}

#[derive(Debug)]
struct IntentRow {
    position: i64,
    action: String,
    outcome: Option<String>,
    fill_in: Option<i64>,
    fill_out: Option<i64>,
}

#[derive(Debug)]
struct AttemptRow {
    intent: i64,
    attempt: i64,
    /// base58.
    signature: String,
}

#[derive(Debug)]
struct PositionRow {
    size: i64,
    remaining: i64,
}

/// The journal, read with a read-only connection (nothing in the file changes).
struct JournalView {
    intents: BTreeMap<i64, IntentRow>,
    attempts: Vec<AttemptRow>,
    positions: BTreeMap<i64, PositionRow>,
    /// The latest trading-state row: state, cause, detail.
    trading_state: Option<(String, Option<String>, Option<String>)>,
}

impl JournalView {
    fn read(dir: &Path) -> Self {
        let conn = Connection::open_with_flags(
            dir.join("kyzlo-data/journal.db"),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        let intents = conn
            .prepare(
                "select id, position_id, action, outcome, fill_amount_in, fill_amount_out from intents",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    IntentRow {
                        position: r.get(1)?,
                        action: r.get(2)?,
                        outcome: r.get(3)?,
                        fill_in: r.get(4)?,
                        fill_out: r.get(5)?,
                    },
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let attempts = conn
            .prepare("select intent_id, attempt, signature from attempts")
            .unwrap()
            .query_map([], |r| {
                Ok(AttemptRow {
                    intent: r.get(0)?,
                    attempt: r.get(1)?,
                    signature: r.get(2)?,
                })
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let positions = conn
            .prepare("select id, size, remaining from positions")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    PositionRow {
                        size: r.get(1)?,
                        remaining: r.get(2)?,
                    },
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let trading_state = conn
            .query_row(
                "select state, cause, detail from trading_state order by id desc limit 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        Self {
            intents,
            attempts,
            positions,
            trading_state,
        }
    }

    fn attempt(&self, intent: i64, attempt: i64) -> Option<&AttemptRow> {
        self.attempts
            .iter()
            .find(|a| a.intent == intent && a.attempt == attempt)
    }
}

/// One landed transaction of the paper wallet's ledger.
#[derive(Debug)]
struct Landing {
    /// base58, as the journal writes it.
    signature: String,
    status: String,
    amount_in: u64,
    amount_out: u64,
}

/// The paper wallet file.
struct WalletView {
    base: u64,
    /// Fees paid by every landing (from the same SOL: SOL is the base).
    fees: u64,
    ledger: Vec<Landing>,
}

/// The SOL the paper wallet starts with besides the positions' (it pays the fees).
const FEE_SOL: u64 = 1_000_000_000;

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len(), 128, "a signature is 64 bytes: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

impl WalletView {
    /// The paper wallet file as the venue will read it at the next start: a header line
    /// holding the whole state, then one line per change since; a last line without its
    /// newline (a write the kill cut short) does not count.
    fn read(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join("kyzlo-data/paper-wallet.json")).unwrap();
        let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        let mut base = header["wallet"]["base"].as_u64().unwrap();
        let mut entries: Vec<Value> = header["ledger"].as_array().unwrap().clone();
        for line in lines {
            let change: Value = serde_json::from_str(line).unwrap();
            if let Some(landing) = change.get("landing") {
                entries.push(landing["entry"].clone());
                base = landing["wallet"]["base"].as_u64().unwrap();
            }
        }
        let ledger = entries
            .iter()
            .map(|e| Landing {
                signature: bs58::encode(hex_to_bytes(e["signature"].as_str().unwrap()))
                    .into_string(),
                status: e["status"].as_str().unwrap().to_owned(),
                amount_in: e["amount_in"].as_u64().unwrap(),
                amount_out: e["amount_out"].as_u64().unwrap(),
            })
            .collect();
        let fees = entries
            .iter()
            .map(|e| e["fee_lamports"].as_u64().unwrap())
            .sum();
        Self { base, fees, ledger }
    }
}

/// What the ledger says of each intent: its successful landings.
#[derive(Default)]
struct Landings<'a> {
    ok: HashMap<i64, Vec<&'a Landing>>,
    failed: usize,
}

/// Holds at every moment, crash or not: every landed transaction is a journaled attempt
/// (nothing was sent before it was journaled), and no intent landed successfully twice.
fn check_no_double_execution<'a>(
    journal: &JournalView,
    wallet: &'a WalletView,
    context: &str,
) -> Landings<'a> {
    let by_signature: HashMap<&str, &AttemptRow> = journal
        .attempts
        .iter()
        .map(|a| (a.signature.as_str(), a))
        .collect();
    let mut landings = Landings::default();
    for landing in &wallet.ledger {
        let attempt = by_signature
            .get(landing.signature.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{context}: landed transaction {} ({}) is no journaled attempt: it was sent unjournaled",
                    landing.signature, landing.status
                )
            });
        if landing.status == "ok" {
            landings.ok.entry(attempt.intent).or_default().push(landing);
        } else {
            landings.failed += 1;
        }
    }
    for (intent, ok) in &landings.ok {
        assert_eq!(
            ok.len(),
            1,
            "{context}: intent {intent} executed {} times: {ok:?}",
            ok.len()
        );
    }
    landings
}

/// Every attempt a run logged as sent is in the journal, with the same signature.
fn check_sent_were_journaled(journal: &JournalView, sent: &[SentAttempt], context: &str) {
    for s in sent {
        let row = journal.attempt(s.intent, s.attempt).unwrap_or_else(|| {
            panic!("{context}: sent attempt {s:?} is not in the journal");
        });
        let bytes = bs58::decode(&row.signature).into_vec().unwrap();
        let prefix: String = bytes[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            prefix, s.signature_prefix,
            "{context}: attempt {s:?} was journaled with another signature"
        );
    }
}

/// A position as its filled intents tell it: what its entry bought, what its exits sold.
#[derive(Debug, Default)]
struct FromFills {
    bought: Option<i64>,
    sold: i64,
}

impl FromFills {
    fn remaining(&self) -> i64 {
        (self.bought.unwrap_or(0) - self.sold).max(0)
    }
}

fn positions_from_fills(journal: &JournalView) -> BTreeMap<i64, FromFills> {
    let mut positions: BTreeMap<i64, FromFills> = BTreeMap::new();
    for intent in journal.intents.values() {
        if intent.outcome.as_deref() != Some("filled") {
            continue;
        }
        let p = positions.entry(intent.position).or_default();
        if intent.action == "enter" {
            p.bought = intent.fill_out;
        } else {
            p.sold += intent.fill_in.unwrap_or(0);
        }
    }
    positions
}

/// After a reconciling run: every intent is resolved and agrees with the chain, every
/// filled entry has its position, every position's remaining is what its entry bought
/// less what its exits sold, the wallet holds exactly what the open positions claim, and
/// each position keeps its entry's size.
fn check_reconciled(journal: &JournalView, wallet: &WalletView, context: &str) -> (usize, u64) {
    let landings = check_no_double_execution(journal, wallet, context);
    let unresolved: Vec<_> = journal
        .intents
        .iter()
        .filter(|(_, i)| i.outcome.is_none())
        .map(|(id, _)| *id)
        .collect();
    assert!(
        unresolved.is_empty(),
        "{context}: intents left unresolved: {unresolved:?}"
    );
    for (id, intent) in &journal.intents {
        let ok = landings.ok.get(id).map_or(&[][..], Vec::as_slice);
        match intent.outcome.as_deref() {
            Some("filled") => {
                assert_eq!(
                    ok.len(),
                    1,
                    "{context}: intent {id} is filled but landed {ok:?}"
                );
                assert_eq!(
                    (intent.fill_in, intent.fill_out),
                    (
                        Some(i64::try_from(ok[0].amount_in).unwrap()),
                        Some(i64::try_from(ok[0].amount_out).unwrap())
                    ),
                    "{context}: intent {id}'s journaled fill differs from its landing"
                );
            }
            Some("failed") => assert!(
                ok.is_empty(),
                "{context}: intent {id} failed but landed {ok:?}"
            ),
            other => panic!("{context}: intent {id} has outcome {other:?}"),
        }
    }
    let from_fills = positions_from_fills(journal);
    for (id, fills) in &from_fills {
        assert!(
            fills.bought.is_some(),
            "{context}: position {id} sold {} without a filled entry",
            fills.sold
        );
        let row = journal.positions.get(id).unwrap_or_else(|| {
            panic!(
                "{context}: position {id} forgotten: its entry filled {:?} base units but the journal has no position",
                fills.bought
            )
        });
        assert_eq!(
            row.remaining,
            fills.remaining(),
            "{context}: position {id} has remaining {} but its entry bought {:?} and its exits sold {}",
            row.remaining,
            fills.bought,
            fills.sold
        );
    }
    for id in journal.positions.keys() {
        assert!(
            from_fills.contains_key(id),
            "{context}: position {id} has no filled entry"
        );
    }
    let claimed: i64 = journal.positions.values().map(|p| p.remaining).sum();
    assert_eq!(
        u64::try_from(claimed).unwrap() + FEE_SOL - wallet.fees,
        wallet.base,
        "{context}: the wallet's SOL differs from the open positions' remaining plus what is left of the fee SOL"
    );
    let resized: Vec<String> = journal
        .positions
        .iter()
        .filter(|(id, p)| Some(p.size) != from_fills[*id].bought)
        .map(|(id, p)| {
            format!(
                "position {id}: size {} but its entry bought {:?}",
                p.size, from_fills[id].bought
            )
        })
        .collect();
    assert!(
        resized.is_empty(),
        "{context}: the journal lost positions' sizes (rewritten after a restart): {resized:?}"
    );
    let open = journal
        .positions
        .values()
        .filter(|p| p.remaining > 0)
        .count();
    (open, wallet.base)
}

/// What a kill left for the next start: how many intents have no outcome, and the filled
/// intents not yet applied to their position (a filled entry without its position, or a
/// position whose remaining is not what its entry bought less what its exits sold),
/// described.
fn pending_at_kill(journal: &JournalView) -> (usize, Vec<String>) {
    let unresolved = journal
        .intents
        .values()
        .filter(|i| i.outcome.is_none())
        .count();
    let mut unapplied = Vec::new();
    for (id, fills) in positions_from_fills(journal) {
        match journal.positions.get(&id) {
            None => unapplied.push(format!(
                "position {id}: its entry filled {:?} base units, but it is not journaled",
                fills.bought
            )),
            Some(row) if row.remaining != fills.remaining() => unapplied.push(format!(
                "position {id} has remaining {} but its entry bought {:?} and its exits sold {}",
                row.remaining, fills.bought, fills.sold
            )),
            Some(_) => {}
        }
    }
    (unresolved, unapplied)
}

/// The operator halts the stopped bot; it starts halted, trades nothing but protective
/// stop-loss exits, stays halted through a SIGKILL, refuses a wrong key, and resumes with
/// the right one.
fn check_halt_survives_restarts(bot: &mut Bot<'_>, fault_seed: u64) {
    let dir = bot.dir;
    let halt = operator(dir, &["halt", "--reason", HALT_REASON]);
    assert!(
        halt.status.success(),
        "kyzlo halt on a stopped bot: {}",
        text(&halt.stderr)
    );
    assert!(
        text(&halt.stdout).contains("trading: halted"),
        "{}",
        text(&halt.stdout)
    );
    let before = (JournalView::read(dir), WalletView::read(dir));

    // A whole run while halted: nothing is traded, and it ends still halted.
    let run = bot.run_to_end(fault_seed, "5m");
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "halted run failed: {stderr}");
    assert!(
        stdout.contains("trading now halted"),
        "the halted run's summary: {stdout}"
    );
    assert!(
        stdout.contains("trades: 0 entries filled"),
        "the halted run's summary: {stdout}"
    );
    assert!(
        stderr.contains("trading is halted (journaled)"),
        "the halted run did not report its halt: {stderr}"
    );
    // Nothing but a protective exit: a hard stop below the price is retried while halted.
    let lines: Vec<LogLine> = stderr.lines().map(|l| LogLine::new(l.to_owned())).collect();
    let protective = protective_intents(&lines);
    let sent: Vec<SentAttempt> = lines.iter().filter_map(SentAttempt::from_line).collect();
    assert!(
        sent.iter().all(|a| protective.contains(&a.intent)),
        "the halted run sent a transaction other than a protective stop-loss exit: {stderr}"
    );
    let after = (JournalView::read(dir), WalletView::read(dir));
    // The halted run reconciled what the kill left and traded nothing: all is settled.
    let context = format!("after the halted run (the kill before it: {})", bot.left);
    let (open, base) = check_reconciled(&after.0, &after.1, &context);
    println!("halted run: {open} positions open holding {base} base units, reconciled");
    let new_intents: Vec<i64> = after
        .0
        .intents
        .keys()
        .filter(|id| !before.0.intents.contains_key(id))
        .copied()
        .collect();
    assert!(
        new_intents.iter().all(|id| protective.contains(id)),
        "the halted run journaled intents {new_intents:?} besides its protective exits {protective:?} (its start-up reconciliation may only settle old ones)"
    );
    assert!(
        after.1.ledger.len() - before.1.ledger.len() <= sent.len(),
        "a transaction landed while halted that no protective exit sent"
    );
    if !protective.is_empty() {
        println!("halted run: protective stop-loss exits {protective:?}");
    }

    // A crash while halted does not lift the halt.
    let (log, _) = supervise(&mut bot.refused, fault_seed ^ 1, |seed| {
        let mut halted = false;
        kill_when(dir, seed, Duration::from_millis(50), |line| {
            halted |= line.message().starts_with("trading is halted");
            halted
        })
    });
    let protective = protective_intents(&log);
    assert!(
        log.iter()
            .filter_map(SentAttempt::from_line)
            .all(|a| protective.contains(&a.intent)),
        "the halted bot sent a transaction other than a protective stop-loss exit:\n{}",
        tail(&log)
    );
    let status = operator(dir, &["status"]);
    let status_text = text(&status.stdout);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(
        status_text.contains(&format!("trading: halted (operator: {HALT_REASON})")),
        "kyzlo status after a crash while halted: {status_text}"
    );

    // Resume needs the approval key.
    let wrong = operator(dir, &["resume", "--approval-key", "not-the-approval-key"]);
    assert!(!wrong.status.success(), "a wrong approval key resumed");
    assert!(
        text(&wrong.stderr).contains("does not match"),
        "{}",
        text(&wrong.stderr)
    );
    let journal = JournalView::read(dir);
    assert_eq!(
        journal.trading_state.as_ref().map(|s| s.0.as_str()),
        Some("halted"),
        "a refused resume changed the state: {:?}",
        journal.trading_state
    );
    let resume = operator(dir, &["resume", "--approval-key", APPROVAL_KEY]);
    assert!(resume.status.success(), "{}", text(&resume.stderr));
    assert!(
        text(&resume.stdout).contains("trading: active"),
        "{}",
        text(&resume.stdout)
    );
}

#[test]
fn sigkill_during_exits_loses_nothing_and_executes_nothing_twice() {
    let started = Instant::now();
    let seed = std::env::var("KYZLO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("crash test seed {seed} (replay with KYZLO_CRASH_SEED={seed})");
    let mut rng = SplitMix64(seed);
    let dir = tempfile::TempDir::new().unwrap();
    let root = dir.path();
    std::fs::write(root.join("kyzlo-crash.toml"), config_toml()).unwrap();
    std::fs::write(root.join("market.csv"), market_csv(MARKET_SEED, 1_800)).unwrap();
    let mut bot = Bot {
        dir: root,
        refused: Vec::new(),
        left: String::new(),
    };

    let mut killed_in = BTreeMap::<&str, usize>::new();
    let (mut reconciled_landed, mut reconciled_failed) = (0, 0);
    let (mut left_unresolved, mut left_unapplied) = (0, 0);
    let mut killed_intents = Vec::new();
    let mut left_before: Vec<String> = Vec::new();
    let mut unresolved_before: Option<u64> = None;
    let kills = std::env::var("KYZLO_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS);
    for kill in 1..=kills {
        let halt_check = kill % HALT_EVERY == HALT_AFTER_KILL;
        let context = format!("seed {seed}, kill {kill}");
        let point = KillPoint {
            attempts: usize::try_from(rng.range(1, MAX_ATTEMPTS_BEFORE_KILL)).unwrap(),
            at_exit_closed: rng.range(1, EXIT_CLOSED_ONE_IN) == 1,
            delay: Duration::from_micros(rng.range(0, MAX_KILL_DELAY_US)),
        };
        let killed = bot.run_and_kill(rng.next_u64() % 1_000_000, point);
        let mut settled = 0;
        for line in &killed.log {
            match line.message() {
                "start-up reconciliation settled pending intents" => {
                    let landed = line.field("landed").and_then(Value::as_u64).unwrap();
                    let failed = line.field("failed").and_then(Value::as_u64).unwrap();
                    reconciled_landed += landed;
                    reconciled_failed += failed;
                    settled += landed + failed;
                }
                m if m.starts_with("trading is halted") || m == "TRADING HALTED" => {
                    panic!("{context}: the bot halted on its own: {}", line.raw);
                }
                _ => {}
            }
            assert_ne!(
                line.level(),
                "ERROR",
                "{context}: the bot logged an error: {}",
                line.raw
            );
        }
        if let Some(expected) = unresolved_before.take() {
            assert_eq!(
                settled, expected,
                "{context}: start-up reconciliation settled {settled} of the {expected} intents the last kill left unresolved ({})",
                bot.left
            );
        }
        let journal = JournalView::read(root);
        let wallet = WalletView::read(root);
        check_sent_were_journaled(&journal, &killed.sent, &context);
        check_no_double_execution(&journal, &wallet, &context);
        let (unresolved, unapplied) = pending_at_kill(&journal);
        let persisting: Vec<_> = unapplied
            .iter()
            .filter(|u| left_before.contains(u))
            .collect();
        assert!(
            persisting.is_empty(),
            "{context}: the restart after the last kill ({}) did not reconcile {persisting:?}",
            bot.left
        );
        left_unresolved += unresolved;
        // The next run's start-up settles exactly these (unless the halt check runs first).
        unresolved_before = (!halt_check).then_some(unresolved as u64);
        left_unapplied += unapplied.len();
        let (intent, at_exit_closed) = killed.trigger;
        let during = match (journal.intents[&intent].action.as_str(), at_exit_closed) {
            (_, true) => "exit closed",
            ("exit", false) => "exit attempt",
            _ => "entry attempt",
        };
        bot.left = format!(
            "{context}, killed at {during} of intent {intent}: {unresolved} intents unresolved; fills not applied to positions: {unapplied:?}"
        );
        *killed_in.entry(during).or_default() += 1;
        killed_intents.push(intent);
        left_before = unapplied;

        if halt_check {
            check_halt_survives_restarts(&mut bot, rng.next_u64() % 1_000_000);
        }
    }

    // One last run to the end of its duration settles everything.
    let last = bot.run_to_end(rng.next_u64() % 1_000_000, FINAL_RUN);
    let (stdout, stderr) = (text(&last.stdout), text(&last.stderr));
    assert!(last.status.success(), "the final run failed:\n{stderr}");
    assert!(
        stdout.contains("trading now active"),
        "the final run did not reconcile what the last kill left ({}): {stdout}\n{stderr}",
        bot.left
    );
    let journal = JournalView::read(root);
    let wallet = WalletView::read(root);
    let context = format!("after the final run (the kill before it: {})", bot.left);
    let (open, base) = check_reconciled(&journal, &wallet, &context);
    for intent in &killed_intents {
        assert!(
            journal.intents[intent].outcome.is_some(),
            "killed intent {intent} unresolved"
        );
    }
    assert!(
        killed_in.get("exit attempt").copied().unwrap_or(0) >= kills / 8,
        "too few kills landed during exit attempts: {killed_in:?}"
    );
    let filled = journal
        .intents
        .values()
        .filter(|i| i.outcome.as_deref() == Some("filled"))
        .count();
    println!(
        "{kills} kills ({killed_in:?}); {} starts refused by start-up reconciliation ({:?}); \
         kills left {left_unresolved} intents unresolved and {left_unapplied} fills unapplied to positions; \
         start-up reconciliation settled {reconciled_landed} landed and {reconciled_failed} dead intents; \
         {} intents ({filled} filled), {} attempts, {} landings; {open} positions open holding {base} base units; {:.1} s",
        bot.refused.len(),
        bot.refused,
        journal.intents.len(),
        journal.attempts.len(),
        wallet.ledger.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Found by the crash test: a restart must not depend on the network's mood at that
/// instant. With seed 1 of the `rate-limited` profile the very first chain read (the
/// wallet's balances, at start-up reconciliation) is answered 429, and the bot exits
/// instead of waiting out the retry-after and reconciling.
#[test]
fn start_up_reconciliation_rides_out_a_transient_rate_limit() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join("kyzlo-crash.toml"), config_toml()).unwrap();
    std::fs::write(dir.path().join("market.csv"), market_csv(MARKET_SEED, 120)).unwrap();
    let child = KillOnDrop(
        kyzlo(
            dir.path(),
            &[
                "paper",
                "--prices",
                "market.csv",
                "--faults",
                "rate-limited",
                "--seed",
                "1",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let run = wait_with_timeout(child, Duration::from_secs(30));
    assert!(
        run.status.success(),
        "a 429 at start-up stopped the bot: {}",
        text(&run.stderr)
            .lines()
            .filter(|l| !l.starts_with('{'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        text(&run.stdout).contains("trading now active"),
        "{}",
        text(&run.stdout)
    );
}

/// Found by the crash test (an ERROR line in a killed run): when the first attempt of an
/// exit could not be prepared (a transient -32005 reading the balance), the retry was
/// numbered 2, the exit state machine refused it ("attempt number out of sequence": no
/// attempt 1 was ever submitted) and the exit gave up. With the `node-behind` profile,
/// seed 3, three stop-loss exits of the first three minutes failed so.
#[test]
fn an_exit_whose_first_attempt_cannot_be_prepared_is_retried() {
    let mut prepared_failures = 0;
    // The first paper seeds whose `node-behind` runs fail some preparation.
    for seed in 1..=8 {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("kyzlo-crash.toml"), config_toml()).unwrap();
        std::fs::write(dir.path().join("market.csv"), market_csv(MARKET_SEED, 300)).unwrap();
        let seed = seed.to_string();
        let child = KillOnDrop(
            kyzlo(
                dir.path(),
                &[
                    "paper",
                    "--prices",
                    "market.csv",
                    "--faults",
                    "node-behind",
                    "--seed",
                    &seed,
                    "--duration",
                    "3m",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        );
        let run = wait_with_timeout(child, Duration::from_secs(60));
        let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
        assert!(run.status.success(), "{stderr}");
        prepared_failures += stderr
            .matches("preparation failed; preparing again")
            .count()
            + stderr.matches("attempt could not be prepared").count();
        let refused: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("exit state machine refused a transition"))
            .collect();
        assert!(
            refused.is_empty(),
            "seed {seed}: the engine numbered attempts the exit state machine refuses:\n{}\n{stdout}",
            refused.join("\n")
        );
        // Exits may still fail safely here (a lagging node delays the proof that an
        // attempt expired, and the exit's budget runs out), but never because the engine
        // tripped over its own numbering.
        let unknown: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("execution gave up") && l.contains("Permanent(Unknown)"))
            .collect();
        assert!(
            unknown.is_empty(),
            "seed {seed}: {}\n{stdout}",
            unknown.join("\n")
        );
        if prepared_failures >= 3 {
            return;
        }
    }
    panic!(
        "only {prepared_failures} preparations failed in eight runs: the scenario no longer exercises the retry"
    );
}
