//! One `solana-test-validator` per test run, inside a private network namespace.
//!
//! The validator's RPC port listens on every interface whatever `--bind-address` says,
//! so the whole test process runs in a network namespace of its own where only `lo`
//! exists: when started outside one, the test binary re-executes itself under
//! `unshare -n` (with `-r` when not root) after bringing `lo` up, and refuses to start a
//! validator unless `/proc/self/net/dev` lists `lo` alone.
//!
//! The validator runs under a small `sh` watchdog whose standard input is a pipe from
//! this process: when this process ends, however it ends, the pipe closes, the watchdog
//! kills the validator and removes its ledger. Nothing outlives the run.

use std::io::Read as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Set in the re-executed child so it never re-executes again.
const IN_NAMESPACE: &str = "KYZLO_VALIDATOR_NETNS";

/// The binary: `KYZLO_VALIDATOR_BIN`, or where scripts/install-validator.sh puts it.
pub fn validator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KYZLO_VALIDATOR_BIN") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("KYZLO_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/root".into());
            home.join(".cache/kyzlo")
        });
    tools.join("validator-4.2.2/bin/solana-test-validator")
}

/// The interfaces of this process's network namespace.
fn interfaces() -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string("/proc/self/net/dev")
        .map_err(|e| format!("cannot read /proc/self/net/dev: {e}"))?;
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect())
}

/// Whether only loopback can reach this process.
pub fn isolated() -> Result<bool, String> {
    Ok(interfaces()?.iter().all(|name| name == "lo"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Where this run goes on.
pub enum Isolation {
    /// This process is isolated: run the tests here.
    Here,
    /// The tests ran in a re-executed child; exit with its code.
    RanInChild(ExitCode),
}

/// Makes sure the tests run where only loopback exists, re-executing if needed.
pub fn ensure_isolated(args: &[String]) -> Result<Isolation, String> {
    if isolated()? {
        return Ok(Isolation::Here);
    }
    if std::env::var_os(IN_NAMESPACE).is_some() {
        let others: Vec<String> = interfaces()?.into_iter().filter(|i| i != "lo").collect();
        return Err(format!(
            "not isolated: interfaces {others:?} besides lo are visible; refusing to start \
             a validator whose RPC port would listen on them"
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this test binary: {e}"))?;
    let mut command = Command::new("unshare");
    if !is_root() {
        command.arg("-r");
    }
    command
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args(args)
        .env(IN_NAMESPACE, "1");
    let status = command.status().map_err(|e| {
        format!("cannot run `unshare -n` to isolate the validator (util-linux needed): {e}")
    })?;
    let code = status.code().unwrap_or(1);
    Ok(Isolation::RanInChild(ExitCode::from(
        u8::try_from(code).unwrap_or(1),
    )))
}

/// Ports for one validator: RPC (and RPC + 1 for its websocket), faucet, gossip, and a
/// range for everything else.
struct Ports {
    rpc: u16,
    faucet: u16,
    gossip: u16,
    dynamic: (u16, u16),
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn choose_ports() -> Result<Ports, String> {
    for base in [21000_u16, 26000, 31000, 36000, 41000, 46000] {
        if (base..base + 110).all(free) {
            return Ok(Ports {
                rpc: base,
                faucet: base + 2,
                gossip: base + 3,
                dynamic: (base + 10, base + 110),
            });
        }
    }
    Err("no free block of 110 loopback ports".to_owned())
}

/// A running validator.
pub struct Validator {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    ledger: PathBuf,
    /// Its JSON-RPC URL.
    pub rpc_url: reqwest::Url,
}

impl Validator {
    /// Starts a validator with a fresh ledger; `extra` are further arguments.
    pub fn start(extra: &[&str]) -> Result<Validator, String> {
        let binary = validator_binary();
        if !binary.is_file() {
            return Err(format!(
                "solana-test-validator not found at {}: run scripts/install-validator.sh \
                 (or set KYZLO_VALIDATOR_BIN to the binary)",
                binary.display()
            ));
        }
        if !isolated()? {
            return Err("refusing to start a validator outside a private network namespace".into());
        }
        let ports = choose_ports()?;
        let ledger = tempfile::Builder::new()
            .prefix("kyzlo-validator-")
            .tempdir()
            .map_err(|e| format!("cannot create a ledger directory: {e}"))?
            .keep();
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                // The validator in the background; block on our pipe; on EOF (this
                // process ended) or TERM/HUP, kill it and remove the ledger. INT is
                // ignored so a Ctrl-C reaches the cleanup through the pipe.
                "ledger=$1; shift; trap '' INT; \"$@\" & pid=$!; \
                 trap 'kill -9 $pid 2>/dev/null; rm -rf \"$ledger\"; exit 1' TERM HUP; \
                 read _ignored; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; \
                 rm -rf \"$ledger\"",
                "watchdog",
            ])
            .arg(&ledger)
            .arg(&binary)
            .arg("--ledger")
            .arg(&ledger)
            .args(["--reset", "--quiet", "--bind-address", "127.0.0.1"])
            .args(["--rpc-port", &ports.rpc.to_string()])
            .args(["--faucet-port", &ports.faucet.to_string()])
            .args(["--gossip-port", &ports.gossip.to_string()])
            .args([
                "--dynamic-port-range",
                &format!("{}-{}", ports.dynamic.0, ports.dynamic.1),
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut watchdog = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdin = watchdog.stdin.take();
        let rpc_url = reqwest::Url::parse(&format!("http://127.0.0.1:{}/", ports.rpc))
            .map_err(|e| format!("bad URL: {e}"))?;
        Ok(Validator {
            watchdog,
            stdin,
            ledger,
            rpc_url,
        })
    }

    /// The ledger directory (its `validator.log` says why a start failed).
    pub fn ledger(&self) -> &Path {
        &self.ledger
    }

    /// The last lines of the validator's log, for a failed start.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.ledger.join("validator.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the validator and waits until its ledger is gone.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SIGKILL to the watchdog would orphan the validator: ask it with TERM.
        let _ = Command::new("kill")
            .args(["-TERM", &self.watchdog.id().to_string()])
            .status();
        let _ = self.watchdog.wait();
    }
}
