//! Crash safety of the real binary: `kyzlo paper` SIGKILLed at 50+ seeded points while entries and exits are in flight, restarted each time on the same journal and paper wallet, settles every position: no intent lands twice, nothing lands unjournaled, no position is forgotten, and an operator's halt survives restarts and crashes.
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

/// SIGKILLs, each right after an "attempt sent" line.
const KILLS: usize = 54;
/// After this many kills the operator halts the stopped bot, checks the halt holds across
/// a run and a crash, then resumes it.
const HALT_AFTER_KILL: usize = 25;
/// Each run is killed after 1 ..= this many attempts were sent.
const MAX_ATTEMPTS_BEFORE_KILL: u64 = 6;
/// Virtual time runs this many times faster than real time in the killed runs.
const SPEED: &str = "500";
/// A killed run that has not sent its attempts by then is stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
const APPROVAL_KEY: &str = "crash-test-approval-key-7f3a91";
const HALT_REASON: &str = "crash-test operator halt";
/// The kill points' seed; `KYZLO_CRASH_SEED` replays another.
const DEFAULT_SEED: u64 = 0x6b79_7a6c_6f63_7261;
/// The generated market's seed (fixed: the market is part of the fixture).
const MARKET_SEED: u64 = 2021_05_19;

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
    let mut push = |prices: &mut Vec<f64>, p: f64| prices.push(p);
    while prices.len() < seconds {
        for _ in 0..12 {
            p *= 1.0 + (rng.unit() - 0.5) * 0.001;
            push(&mut prices, p);
        }
        for _ in 0..2 {
            p *= 0.985;
            push(&mut prices, p);
        }
        if rng.unit() < 0.5 {
            for _ in 0..4 {
                p *= 0.98;
                push(&mut prices, p);
            }
            for _ in 0..8 {
                p *= 1.012;
                push(&mut prices, p);
            }
        } else {
            for _ in 0..6 {
                p *= 1.012;
                push(&mut prices, p);
            }
        }
        for _ in 0..4 {
            p += (100.0 - p) * 0.3;
            push(&mut prices, p);
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
entry_size = 100.0

[strategy]
window = 10

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kyzlo"));
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

fn tail(lines: &[LogLine]) -> String {
    let from = lines.len().saturating_sub(25);
    lines[from..]
        .iter()
        .map(|l| l.raw.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the paced paper bot and SIGKILLs it right after its `target`-th "attempt sent"
/// line. Returns the attempts it logged (the last is the one the kill interrupted) and
/// its whole stderr.
fn run_and_kill(dir: &Path, fault_seed: u64, target: usize) -> (Vec<SentAttempt>, Vec<LogLine>) {
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
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut sent = Vec::new();
    let mut log = Vec::new();
    while sent.len() < target {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(raw) => {
                let line = LogLine::new(raw);
                if let Some(attempt) = SentAttempt::from_line(&line) {
                    sent.push(attempt);
                    if sent.len() == target {
                        child.0.kill().unwrap();
                    }
                }
                log.push(line);
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "the bot sent {} of {target} attempts in {RUN_TIMEOUT:?}; stderr tail:\n{}",
                sent.len(),
                tail(&log)
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "the bot exited ({:?}) after {} of {target} attempts; stderr tail:\n{}",
                child.0.wait(),
                sent.len(),
                tail(&log)
            ),
        }
    }
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "SIGKILL ended the bot: {status:?}"
    );
    log.extend(lines.into_iter().map(LogLine::new));
    (sent, log)
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

/// Runs the bot unpaced for `duration` of market time to the end; returns its output.
fn run_to_end(dir: &Path, fault_seed: u64, duration: &str) -> Output {
    let seed = fault_seed.to_string();
    let mut child = KillOnDrop(
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
    let stdout = child.0.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut s);
        s
    });
    let err = read_lines(&mut child.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stderr = String::new();
    loop {
        match err.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                stderr.push_str(&line);
                stderr.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the run did not end in 60 s:\n{stderr}"),
        }
    }
    let status = child.0.wait().unwrap();
    Output {
        status,
        stdout: out.join().unwrap().into_bytes(),
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
    ledger: Vec<Landing>,
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len(), 128, "a signature is 64 bytes: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

impl WalletView {
    fn read(dir: &Path) -> Self {
        let file: Value = serde_json::from_slice(
            &std::fs::read(dir.join("kyzlo-data/paper-wallet.json")).unwrap(),
        )
        .unwrap();
        let ledger = file["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Landing {
                signature: bs58::encode(hex_to_bytes(e["signature"].as_str().unwrap()))
                    .into_string(),
                status: e["status"].as_str().unwrap().to_owned(),
                amount_in: e["amount_in"].as_u64().unwrap(),
                amount_out: e["amount_out"].as_u64().unwrap(),
            })
            .collect();
        Self {
            base: file["wallet"]["base"].as_u64().unwrap(),
            ledger,
        }
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

/// After a reconciling run: every intent is resolved and agrees with the chain, every
/// filled entry has its position, every position's remaining is its size less its filled
/// exits, and the wallet holds exactly what the open positions claim.
fn check_reconciled(journal: &JournalView, wallet: &WalletView) -> (usize, u64) {
    let landings = check_no_double_execution(journal, wallet, "after the final run");
    let unresolved: Vec<_> = journal
        .intents
        .iter()
        .filter(|(_, i)| i.outcome.is_none())
        .map(|(id, _)| *id)
        .collect();
    assert!(
        unresolved.is_empty(),
        "intents left unresolved: {unresolved:?}"
    );
    let mut sold: BTreeMap<i64, i64> = BTreeMap::new();
    for (id, intent) in &journal.intents {
        let ok = landings.ok.get(id).map_or(&[][..], Vec::as_slice);
        match intent.outcome.as_deref() {
            Some("filled") => {
                assert_eq!(ok.len(), 1, "intent {id} is filled but landed {ok:?}");
                assert_eq!(
                    (intent.fill_in, intent.fill_out),
                    (
                        Some(i64::try_from(ok[0].amount_in).unwrap()),
                        Some(i64::try_from(ok[0].amount_out).unwrap())
                    ),
                    "intent {id}'s journaled fill differs from its landing"
                );
                if intent.action == "enter" {
                    let position = journal.positions.get(&intent.position).unwrap_or_else(|| {
                        panic!(
                            "position {} forgotten: its entry (intent {id}) filled {:?} but the journal has no position",
                            intent.position, intent.fill_out
                        )
                    });
                    assert_eq!(
                        Some(position.size),
                        intent.fill_out,
                        "position {}'s size is not its entry's fill",
                        intent.position
                    );
                } else {
                    *sold.entry(intent.position).or_default() += intent.fill_in.unwrap();
                }
            }
            Some("failed") => assert!(ok.is_empty(), "intent {id} failed but landed {ok:?}"),
            other => panic!("intent {id} has outcome {other:?}"),
        }
    }
    for (id, p) in &journal.positions {
        let expected = (p.size - sold.get(id).copied().unwrap_or(0)).max(0);
        assert_eq!(
            p.remaining,
            expected,
            "position {id}: remaining {} but size {} less filled exits {:?} is {expected}",
            p.remaining,
            p.size,
            sold.get(id)
        );
    }
    let claimed: i64 = journal.positions.values().map(|p| p.remaining).sum();
    assert_eq!(
        u64::try_from(claimed).unwrap(),
        wallet.base,
        "the wallet's base balance differs from the open positions' remaining"
    );
    let open = journal
        .positions
        .values()
        .filter(|p| p.remaining > 0)
        .count();
    (open, wallet.base)
}

fn state_of(journal: &JournalView) -> String {
    journal
        .trading_state
        .as_ref()
        .map_or_else(|| "active (none journaled)".into(), |s| format!("{s:?}"))
}

/// The operator halts the stopped bot; it starts halted, trades nothing, stays halted
/// through a SIGKILL, refuses a wrong key, and resumes with the right one.
fn check_halt_survives_restarts(dir: &Path, fault_seed: u64) {
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
    let run = run_to_end(dir, fault_seed, "5m");
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
    assert!(
        !stderr.contains("\"attempt sent\""),
        "the halted run sent a transaction: {stderr}"
    );
    let after = (JournalView::read(dir), WalletView::read(dir));
    assert_eq!(
        after.0.intents.len(),
        before.0.intents.len(),
        "the halted run journaled intents"
    );
    assert_eq!(
        after.0.positions.len(),
        before.0.positions.len(),
        "the halted run opened a position"
    );
    assert_eq!(
        after.1.ledger.len(),
        before.1.ledger.len(),
        "a transaction landed while halted"
    );

    // A crash while halted does not lift the halt.
    let mut child = KillOnDrop(
        kyzlo(dir, &["paper", "--prices", "market.csv", "--speed", SPEED])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = read_lines(&mut child.0);
    let mut seen = Vec::new();
    loop {
        let line = LogLine::new(lines.recv_timeout(RUN_TIMEOUT).unwrap_or_else(|e| {
            panic!("no halt reported ({e:?}):\n{}", tail(&seen));
        }));
        let halted = line.message().starts_with("trading is halted");
        seen.push(line);
        if halted {
            break;
        }
    }
    child.0.kill().unwrap();
    assert_eq!(child.0.wait().unwrap().signal(), Some(9));
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
        "a refused resume changed the state: {}",
        state_of(&journal)
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

    let mut killed_in = BTreeMap::<String, usize>::new();
    let mut reconciled_landed = 0;
    let mut reconciled_failed = 0;
    let mut killed_intents = Vec::new();
    for kill in 1..=KILLS {
        let context = format!("seed {seed}, kill {kill}");
        let target = usize::try_from(rng.range(1, MAX_ATTEMPTS_BEFORE_KILL)).unwrap();
        let (sent, log) = run_and_kill(root, rng.next_u64() % 1_000_000, target);
        for line in &log {
            match line.message() {
                "start-up reconciliation settled pending intents" => {
                    reconciled_landed += line.field("landed").and_then(Value::as_u64).unwrap();
                    reconciled_failed += line.field("failed").and_then(Value::as_u64).unwrap();
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
        let journal = JournalView::read(root);
        let wallet = WalletView::read(root);
        check_sent_were_journaled(&journal, &sent, &context);
        check_no_double_execution(&journal, &wallet, &context);
        let last = sent.last().unwrap();
        let action = journal.intents[&last.intent].action.clone();
        *killed_in.entry(action).or_default() += 1;
        killed_intents.push(last.intent);

        if kill == HALT_AFTER_KILL {
            check_halt_survives_restarts(root, rng.next_u64() % 1_000_000);
        }
    }

    // One last run to the end of its duration settles everything.
    let last = run_to_end(root, rng.next_u64() % 1_000_000, "10m");
    let (stdout, stderr) = (text(&last.stdout), text(&last.stderr));
    assert!(last.status.success(), "the final run failed:\n{stderr}");
    assert!(
        stdout.contains("trading now active"),
        "the final run's summary: {stdout}"
    );
    let journal = JournalView::read(root);
    let wallet = WalletView::read(root);
    let (open, base) = check_reconciled(&journal, &wallet);
    for intent in &killed_intents {
        assert!(
            journal.intents[intent].outcome.is_some(),
            "killed intent {intent} unresolved"
        );
    }
    let exits_killed = killed_in.get("exit").copied().unwrap_or(0);
    assert!(
        exits_killed >= KILLS / 4,
        "too few kills landed during exits: {killed_in:?}"
    );
    let filled = journal
        .intents
        .values()
        .filter(|i| i.outcome.as_deref() == Some("filled"))
        .count();
    println!(
        "{KILLS} kills ({killed_in:?}); start-up reconciliation settled {reconciled_landed} landed and {reconciled_failed} dead intents; \
         {} intents ({filled} filled), {} attempts, {} landings; {open} positions open holding {base} base units; {:.1} s",
        journal.intents.len(),
        journal.attempts.len(),
        wallet.ledger.len(),
        started.elapsed().as_secs_f64()
    );
}
