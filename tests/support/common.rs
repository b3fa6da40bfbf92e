//! Shared helpers of the binary's end-to-end tests (config, paper, api): running `kyzlo`
//! in a temporary directory with a clean environment, a guard that kills a child that is
//! still running, price CSVs, a strict OpenMetrics parser, and, on std alone and on
//! loopback only, a tiny HTTP/1.1 client and a webhook receiver that records requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A config fragment that turns the operator API off, so that runs in parallel never
/// fight over the default port 9464.
pub const NO_API: &str = "[api]\nlisten = \"\"\n";

/// `kyzlo` in `dir`, with no `KYZLO_*` or `JUPITER_*` variable inherited from the
/// environment the tests run in, and no stdin.
pub fn kyzlo(dir: &Path) -> Command {
    let mut command = Command::new(crate::kyzlo_bin());
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

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// A child process that is killed and reaped when dropped if it is still running.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawns `command`.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command.spawn().expect("spawn kyzlo");
        Self { child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout/stderr pipes, when they were asked for.
    pub fn take_pipes(
        &mut self,
    ) -> (
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Its exit status if it exits within `limit`.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGINT (what Ctrl-C sends) with `kill -INT`.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.id().to_string()])
            .status()
            .expect("run kill -INT");
        assert!(status.success(), "kill -INT {} failed", self.id());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Finished {
    /// The exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics unless the run ended without a panic: no "panicked at" on stderr and not
    /// Rust's panic exit code 101.
    pub fn assert_no_panic(&self, what: &str) {
        assert!(
            !self.stderr.contains("panicked at") && self.code() != Some(101),
            "{what}: kyzlo panicked ({:?}):\n{}",
            self.code(),
            self.stderr
        );
    }

    /// Panics unless the run exited 0 without a panic.
    pub fn assert_success(&self, what: &str) {
        self.assert_no_panic(what);
        assert_eq!(
            self.code(),
            Some(0),
            "{what}: expected exit 0\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Runs `command` to its end (killed, and the test failed, after `limit`).
pub fn run(command: &mut Command, limit: Duration) -> Finished {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(command);
    let (out, err) = child.take_pipes();
    let (out, err) = (drain(out), drain(err));
    let Some(status) = child.wait_for(limit) else {
        drop(child);
        panic!(
            "kyzlo did not finish within {limit:?}; stderr:\n{}",
            err.join().unwrap_or_default()
        );
    };
    Finished {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Calls `probe` every 25 ms until it gives a value; panics naming `what` after `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------------------
// Price series.

/// 20 minutes of one-second prices: a wiggle around 100 (its z-score over a 10-second
/// window stays above -2.3), a step down to 99 at 20 s (z = -3: one entry at -2.5), then
/// the same wiggle around 99. Nothing else triggers with the stop 5% away and the
/// strategy's exit out of reach.
pub fn flat_then_dip() -> Vec<f64> {
    (0..1_200u32)
        .map(|i| {
            let level = if i < 20 { 100.0 } else { 99.0 };
            level + 0.02 * (f64::from(i) / 3.0).sin()
        })
        .collect()
}

/// Deterministic noise in `[-1, 1]` for index `i` (SplitMix64 of `i ^ seed`).
pub fn noise(seed: u64, i: u64) -> f64 {
    let mut z = (i ^ seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// `ts_ms,price` rows, one a second from `ts0_ms`.
pub fn price_csv(ts0_ms: u64, prices: &[f64]) -> String {
    let mut out = String::from("ts_ms,price\n");
    for (i, p) in prices.iter().enumerate() {
        out.push_str(&format!("{},{p:.4}\n", ts0_ms + i as u64 * 1_000));
    }
    out
}

/// `ts_ms,open,high,low,close,volume` candles, one a second from `ts0_ms`, closing at
/// `prices`.
pub fn ohlcv_csv(ts0_ms: u64, prices: &[f64]) -> String {
    let mut out = String::from("ts_ms,open,high,low,close,volume\n");
    let mut open = prices.first().copied().unwrap_or(1.0);
    for (i, close) in prices.iter().enumerate() {
        let (high, low) = (open.max(*close) * 1.0005, open.min(*close) * 0.9995);
        out.push_str(&format!(
            "{},{open:.4},{high:.4},{low:.4},{close:.4},{:.3}\n",
            ts0_ms + i as u64 * 1_000,
            1_000.0 + 100.0 * noise(7, i as u64)
        ));
        open = *close;
    }
    out
}

#[allow(unused_imports)] // each test binary uses a different part of these helpers
pub use kyzlo_adapters_telemetry::exposition::{Exposition, parse_openmetrics};

// ---------------------------------------------------------------------------------------
// HTTP/1.1 on std, loopback only.

/// One HTTP message read off a stream.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads one message; `Ok(None)` at a clean end of stream. Without a length, a
/// response's body runs to the end of the stream and a request's is empty.
fn read_message(reader: &mut impl BufRead, response: bool) -> std::io::Result<Option<Message>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("end of stream in the headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad("header without a colon"))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut body = Vec::new();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                let mut trailer = String::new();
                while reader.read_line(&mut trailer)? > 0 && !trailer.trim().is_empty() {
                    trailer.clear();
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = header(&headers, "content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad content-length"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else if response {
        reader.read_to_end(&mut body)?;
    }
    Ok(Some(Message {
        start: start.trim_end().to_owned(),
        headers,
        body,
    }))
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request (`Connection: close`) to `addr` and reads the answer.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let message = read_message(&mut BufReader::new(stream), true)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"))
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    let status = message
        .start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {:?}", message.start));
    HttpResponse {
        status,
        headers: message.headers,
        body: String::from_utf8_lossy(&message.body).into_owned(),
    }
}

/// One request a [`WebhookReceiver`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST /hook HTTP/1.1`
    pub request_line: String,
    /// The body as text.
    pub body: String,
}

/// A local HTTP server that answers 200 to everything and records what it received.
pub struct WebhookReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl WebhookReceiver {
    /// Listens on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve_webhook(stream, &log));
            }
        });
        Self {
            addr,
            received,
            stop,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("webhook log").clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Answers every request on one (keep-alive) connection.
fn serve_webhook(stream: TcpStream, log: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(message)) = read_message(&mut reader, false) {
        log.lock().expect("webhook log").push(Received {
            request_line: message.start,
            body: String::from_utf8_lossy(&message.body).into_owned(),
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
