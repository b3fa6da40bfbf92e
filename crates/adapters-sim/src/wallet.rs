//! The simulated wallet, and the paper wallet file that keeps it across restarts.
//!
//! The paper wallet file is JSON holding the balances, the ledger of landed transactions
//! (signature, status, slot and fill, so a restarted paper bot can reconcile a
//! transaction that landed before a crash), the genesis time (unix ms) from which paper
//! block heights count, so heights keep increasing across restarts, and a session
//! counter (bumped at every open, so a new process never rebuilds a signature an old one
//! used).
//!
//! The file is JSON lines: a header line holding the whole state (written atomically:
//! temporary file, fsync, rename, directory fsync), then one line per change since (a
//! landing with the balances after it, a new session, a raised blockhash high-water
//! mark), each appended and fsynced before the call returns. What is written per change
//! is one line, whatever the ledger's size; the file is rewritten as one header line
//! once [`LEDGER_LIMIT`] lines have been appended, or after a failed append. A last line
//! without its newline is a write that never returned: it is dropped. Any other line that
//! cannot be parsed is a [`SimError::WalletCorrupt`] naming the path and line: the file
//! is never silently reset. A file in the earlier one-object format is read and
//! rewritten in this one. The ledger keeps the newest [`LEDGER_LIMIT`] landings.
//! Transactions sent but not yet landed are not persisted: they die with the process,
//! as if they had expired.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kyzlo_application::ports::{Balances, Fill, Side};
use kyzlo_domain::{ErrorClass, Lamports, TokenAmount, TxSignature};
use serde::{Deserialize, Serialize};

use crate::error::{SimError, bounded};

/// The most ledger entries the paper wallet file keeps (the newest).
pub const LEDGER_LIMIT: usize = 10_000;
/// The format written: a header line then appended change lines.
const FORMAT_VERSION: u32 = 2;
/// The earlier format, read and rewritten: one pretty-printed JSON object.
const FORMAT_V1: u32 = 1;

/// The simulated wallet's holdings of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimWallet {
    /// Base token, in base units.
    pub base: TokenAmount,
    /// Quote token, in base units.
    pub quote: TokenAmount,
    /// SOL for fees.
    pub fee_lamports: Lamports,
}

impl From<SimWallet> for Balances {
    fn from(w: SimWallet) -> Self {
        Balances {
            base: w.base,
            quote: w.quote,
            fee_lamports: w.fee_lamports,
        }
    }
}

impl From<Balances> for SimWallet {
    fn from(b: Balances) -> Self {
        SimWallet {
            base: b.base,
            quote: b.quote,
            fee_lamports: b.fee_lamports,
        }
    }
}

/// Where the simulated chain's block height comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeightSource {
    /// Run time (tokio's clock since the market's start) divided by the slot time: for
    /// simulations on paused time.
    #[default]
    Virtual,
    /// `base_height` plus run time divided by the slot time: for paper mode on virtual
    /// time. The base is past every last valid height the wallet ever handed out, so
    /// after a restart every transaction built before it is provably expired (a paper
    /// chain dies with its process: nothing in flight survives it).
    Continuing {
        /// The height at run time zero.
        base_height: u64,
    },
}

/// How a landed transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// It succeeded: balances moved.
    Ok,
    /// It failed on chain: the output was below its minimum.
    SlippageExceeded,
    /// It failed on chain: the wallet lacked the input.
    InsufficientFunds,
}

impl LedgerStatus {
    /// The on-chain error, `None` for success.
    #[must_use]
    pub fn error(self) -> Option<ErrorClass> {
        match self {
            LedgerStatus::Ok => None,
            LedgerStatus::SlippageExceeded => Some(ErrorClass::SlippageExceeded),
            LedgerStatus::InsufficientFunds => Some(ErrorClass::InsufficientFunds),
        }
    }
}

/// One landed transaction as the ledger keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its signature.
    pub signature: TxSignature,
    /// How it ended.
    pub status: LedgerStatus,
    /// The slot it landed in.
    pub slot: u64,
    /// Its direction.
    pub side: Side,
    /// What it moved (zero amounts and the fee for a failed one).
    pub fill: Fill,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletFile {
    version: u32,
    genesis_unix_ms: u64,
    session: u64,
    /// The highest last valid height ever handed out (0 in files from before it).
    #[serde(default)]
    max_last_valid: u64,
    wallet: WalletWire,
    ledger: Vec<EntryWire>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletWire {
    base: u64,
    quote: u64,
    fee_lamports: u64,
}

/// One appended change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ChangeWire {
    /// A process opened the wallet.
    Session(u64),
    /// A blockhash valid up to this height was handed out.
    LastValid(u64),
    /// A transaction landed; the balances after it.
    Landing {
        entry: EntryWire,
        wallet: WalletWire,
    },
}

impl WalletWire {
    fn from_wallet(w: SimWallet) -> Self {
        Self {
            base: w.base.get(),
            quote: w.quote.get(),
            fee_lamports: w.fee_lamports.get(),
        }
    }

    fn to_wallet(&self) -> SimWallet {
        SimWallet {
            base: TokenAmount::new(self.base),
            quote: TokenAmount::new(self.quote),
            fee_lamports: Lamports::new(self.fee_lamports),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SideWire {
    Buy,
    Sell,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    signature: String,
    status: LedgerStatus,
    slot: u64,
    side: SideWire,
    amount_in: u64,
    amount_out: u64,
    fee_lamports: u64,
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn signature_from_hex(text: &str) -> Option<TxSignature> {
    if text.len() != 128 || !text.is_ascii() {
        return None;
    }
    let mut sig = [0u8; 64];
    for (i, byte) in sig.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(TxSignature(sig))
}

impl EntryWire {
    fn from_entry(e: &LedgerEntry) -> Self {
        Self {
            signature: to_hex(&e.signature.0),
            status: e.status,
            slot: e.slot,
            side: match e.side {
                Side::Buy => SideWire::Buy,
                Side::Sell => SideWire::Sell,
            },
            amount_in: e.fill.amount_in.get(),
            amount_out: e.fill.amount_out.get(),
            fee_lamports: e.fill.fee.get(),
        }
    }

    fn to_entry(&self) -> Option<LedgerEntry> {
        Some(LedgerEntry {
            signature: signature_from_hex(&self.signature)?,
            status: self.status,
            slot: self.slot,
            side: match self.side {
                SideWire::Buy => Side::Buy,
                SideWire::Sell => Side::Sell,
            },
            fill: Fill {
                amount_in: TokenAmount::new(self.amount_in),
                amount_out: TokenAmount::new(self.amount_out),
                fee: Lamports::new(self.fee_lamports),
            },
        })
    }
}

/// The paper wallet: balances, ledger and genesis, persisted in one JSON-lines file. Not
/// `Clone`: one owner writes the file.
#[derive(Debug)]
pub struct PaperWallet {
    path: PathBuf,
    genesis_ms: u64,
    session: u64,
    max_last_valid: u64,
    wallet: SimWallet,
    ledger: Vec<LedgerEntry>,
    /// The file opened for appending, when its last line is known whole.
    append: Option<File>,
    /// Lines appended since the header.
    appended: usize,
}

/// Unix milliseconds now: the paper wallet's one wall-clock read.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PaperWallet {
    /// Opens the wallet file at `path`, creating it with `initial` balances and genesis
    /// now when it does not exist, and bumps its session counter (written at once).
    ///
    /// # Errors
    /// [`SimError::WalletIo`] when the file cannot be read or written;
    /// [`SimError::WalletCorrupt`] when it exists but is not a valid wallet file.
    pub fn open(path: &Path, initial: SimWallet) -> Result<PaperWallet, SimError> {
        let mut wallet = match fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes)?,
            Err(e) if e.kind() == ErrorKind::NotFound => PaperWallet {
                path: path.to_path_buf(),
                genesis_ms: unix_ms_now(),
                session: 0,
                max_last_valid: 0,
                wallet: initial,
                ledger: Vec::new(),
                append: None,
                appended: 0,
            },
            Err(source) => {
                return Err(SimError::WalletIo {
                    path: path.to_path_buf(),
                    operation: "read",
                    source,
                });
            }
        };
        wallet.session = wallet.session.saturating_add(1);
        wallet.save()?;
        Ok(wallet)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<PaperWallet, SimError> {
        let corrupt = |line, column, message: String| SimError::WalletCorrupt {
            path: path.to_path_buf(),
            line,
            column,
            message: bounded(&message),
        };
        // The earlier format: the whole file is one object.
        if let Ok(file) = serde_json::from_slice::<WalletFile>(bytes)
            && file.version == FORMAT_V1
        {
            return Self::from_header(path, &file)
                .map_err(|(i, message)| corrupt(0, 0, format!("ledger entry {i}: {message}")));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| corrupt(0, 0, format!("not UTF-8 after byte {}", e.valid_up_to())))?;
        let mut lines = text.split_inclusive('\n').enumerate();
        let Some((_, first)) = lines.next() else {
            return Err(corrupt(0, 0, "empty file".to_owned()));
        };
        let file: WalletFile =
            serde_json::from_str(first).map_err(|e| corrupt(1, e.column(), e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(
                1,
                0,
                format!(
                    "format version {} (this build reads {FORMAT_V1} and {FORMAT_VERSION})",
                    file.version
                ),
            ));
        }
        let mut wallet = Self::from_header(path, &file)
            .map_err(|(i, message)| corrupt(1, 0, format!("ledger entry {i}: {message}")))?;
        for (i, line) in lines {
            if !line.ends_with('\n') {
                // A write that never returned: nothing relied on it.
                tracing::warn!(path = %path.display(), line = i + 1, "paper wallet: dropping a torn last line");
                break;
            }
            let change: ChangeWire = serde_json::from_str(line)
                .map_err(|e| corrupt(i + 1, e.column(), e.to_string()))?;
            match change {
                ChangeWire::Session(n) => wallet.session = n,
                ChangeWire::LastValid(n) => wallet.max_last_valid = n,
                ChangeWire::Landing {
                    entry,
                    wallet: after,
                } => {
                    let entry = entry.to_entry().ok_or_else(|| {
                        corrupt(i + 1, 0, "signature is not 128 hex digits".to_owned())
                    })?;
                    wallet.push(after.to_wallet(), entry);
                }
            }
        }
        Ok(wallet)
    }

    fn from_header(path: &Path, file: &WalletFile) -> Result<PaperWallet, (usize, String)> {
        let ledger = file
            .ledger
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.to_entry()
                    .ok_or_else(|| (i, "signature is not 128 hex digits".to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PaperWallet {
            path: path.to_path_buf(),
            genesis_ms: file.genesis_unix_ms,
            session: file.session,
            max_last_valid: file.max_last_valid,
            wallet: file.wallet.to_wallet(),
            ledger,
            append: None,
            appended: 0,
        })
    }

    fn push(&mut self, wallet: SimWallet, entry: LedgerEntry) {
        self.wallet = wallet;
        self.ledger.push(entry);
        if self.ledger.len() > LEDGER_LIMIT {
            let excess = self.ledger.len() - LEDGER_LIMIT;
            self.ledger.drain(..excess);
        }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The balances.
    #[must_use]
    pub fn wallet(&self) -> SimWallet {
        self.wallet
    }

    /// Landed transactions, oldest first.
    #[must_use]
    pub fn ledger(&self) -> &[LedgerEntry] {
        &self.ledger
    }

    /// Unix milliseconds at block height 0.
    #[must_use]
    pub fn genesis_ms(&self) -> u64 {
        self.genesis_ms
    }

    /// This process's session number (1 for a new file, +1 per open).
    #[must_use]
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The wall-clock height source counting from this wallet's genesis.
    #[must_use]
    pub fn height_source(&self) -> HeightSource {
        HeightSource::Continuing {
            base_height: self.max_last_valid.saturating_add(1),
        }
    }

    /// Remembers that a transaction valid up to `last_valid` was handed out, writing the
    /// file when that raises the high-water mark: it must be durable before the
    /// transaction can be sent, so a restart starts past it.
    ///
    /// # Errors
    /// [`SimError::WalletIo`] when the file cannot be written.
    pub fn note_last_valid(&mut self, last_valid: u64) -> Result<(), SimError> {
        if last_valid > self.max_last_valid {
            self.max_last_valid = last_valid;
            self.write(&ChangeWire::LastValid(last_valid))?;
        }
        Ok(())
    }

    /// Records a landing and the balances after it, then appends it to the file.
    ///
    /// # Errors
    /// [`SimError::WalletIo`] when the file cannot be written; the in-memory state is
    /// updated regardless, and [`PaperWallet::save`] may be retried.
    pub fn record_landing(
        &mut self,
        wallet: SimWallet,
        entry: LedgerEntry,
    ) -> Result<(), SimError> {
        self.push(wallet, entry);
        self.write(&ChangeWire::Landing {
            entry: EntryWire::from_entry(&entry),
            wallet: WalletWire::from_wallet(wallet),
        })
    }

    /// Appends `change` as one line and fsyncs it; rewrites the whole file instead when
    /// enough lines have piled up or the last append failed.
    fn write(&mut self, change: &ChangeWire) -> Result<(), SimError> {
        if self.appended >= LEDGER_LIMIT {
            return self.save();
        }
        let Some(file) = self.append.as_mut() else {
            return self.save();
        };
        let mut line = serde_json::to_vec(change).map_err(|e| SimError::WalletIo {
            path: self.path.clone(),
            operation: "serialize",
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        match file.write_all(&line).and_then(|()| file.sync_data()) {
            Ok(()) => {
                self.appended += 1;
                Ok(())
            }
            Err(source) => {
                // A part of the line may be in the file: the next write rewrites it whole.
                self.append = None;
                Err(SimError::WalletIo {
                    path: self.path.clone(),
                    operation: "append",
                    source,
                })
            }
        }
    }

    /// Rewrites the file atomically as one header line holding the whole state: a
    /// temporary file beside it, fsync, rename over it, fsync of the directory; then
    /// appends go after it.
    ///
    /// # Errors
    /// [`SimError::WalletIo`] naming the step that failed.
    pub fn save(&mut self) -> Result<(), SimError> {
        let io = |operation, source| SimError::WalletIo {
            path: self.path.clone(),
            operation,
            source,
        };
        self.append = None;
        let file = WalletFile {
            version: FORMAT_VERSION,
            genesis_unix_ms: self.genesis_ms,
            session: self.session,
            max_last_valid: self.max_last_valid,
            wallet: WalletWire::from_wallet(self.wallet),
            ledger: self.ledger.iter().map(EntryWire::from_entry).collect(),
        };
        let mut json =
            serde_json::to_vec(&file).map_err(|e| io("serialize", std::io::Error::other(e)))?;
        json.push(b'\n');
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);
        let mut out = File::create(&tmp).map_err(|e| io("create", e))?;
        out.write_all(&json).map_err(|e| io("write", e))?;
        out.sync_all().map_err(|e| io("sync", e))?;
        drop(out);
        fs::rename(&tmp, &self.path).map_err(|e| io("rename", e))?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // The rename is durable once the directory is synced; a platform that cannot
        // open a directory still has the renamed file.
        if let Ok(d) = File::open(dir) {
            d.sync_all().map_err(|e| io("sync directory", e))?;
        }
        self.append = Some(
            fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|e| io("open for appending", e))?,
        );
        self.appended = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial() -> SimWallet {
        SimWallet {
            base: TokenAmount::new(5_000_000_000),
            quote: TokenAmount::new(100_000_000),
            fee_lamports: Lamports::new(1_000_000_000),
        }
    }

    fn entry(n: u8) -> LedgerEntry {
        LedgerEntry {
            signature: TxSignature([n; 64]),
            status: if n.is_multiple_of(2) {
                LedgerStatus::Ok
            } else {
                LedgerStatus::SlippageExceeded
            },
            slot: u64::from(n) * 10,
            side: Side::Sell,
            fill: Fill {
                amount_in: TokenAmount::new(u64::from(n)),
                amount_out: TokenAmount::new(7),
                fee: Lamports::new(5_000),
            },
        }
    }

    #[test]
    fn a_new_wallet_file_is_created_and_reopened_with_ledger_genesis_and_next_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.json");
        let mut w = PaperWallet::open(&path, initial()).unwrap();
        assert_eq!(w.session(), 1);
        assert_eq!(w.wallet(), initial());
        assert!(w.genesis_ms() > 1_600_000_000_000);
        let after = SimWallet {
            base: TokenAmount::ZERO,
            ..initial()
        };
        w.record_landing(after, entry(2)).unwrap();
        w.record_landing(after, entry(3)).unwrap();

        let reopened = PaperWallet::open(&path, initial()).unwrap();
        assert_eq!(reopened.session(), 2);
        assert_eq!(reopened.wallet(), after);
        assert_eq!(reopened.genesis_ms(), w.genesis_ms());
        assert_eq!(reopened.ledger(), &[entry(2), entry(3)]);
        assert_eq!(
            reopened.height_source(),
            HeightSource::Continuing { base_height: 1 }
        );
        assert_eq!(
            LedgerStatus::SlippageExceeded.error(),
            Some(ErrorClass::SlippageExceeded)
        );
    }

    #[test]
    fn a_rewrite_is_atomic_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.json");
        let mut w = PaperWallet::open(&path, initial()).unwrap();
        // A crash mid-rewrite leaves a stale temporary file: the real file is untouched
        // and the next rewrite replaces the temporary one.
        std::fs::write(dir.path().join("paper.json.tmp"), b"{ half a wal").unwrap();
        w.record_landing(initial(), entry(4)).unwrap();
        w.save().unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["paper.json"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "one header line after a rewrite");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["ledger"][0]["status"], "ok");
    }

    #[test]
    fn a_change_appends_one_line_whatever_the_ledgers_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.json");
        let mut w = PaperWallet::open(&path, initial()).unwrap();
        for n in 0..200u8 {
            w.record_landing(initial(), entry(n)).unwrap();
        }
        w.save().unwrap();
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        let before = size(&path);
        let mut after = initial();
        after.quote = TokenAmount::new(7);
        w.record_landing(after, entry(201)).unwrap();
        w.note_last_valid(99).unwrap();
        w.note_last_valid(50).unwrap(); // not a new high-water mark: nothing written
        let grown = size(&path) - before;
        assert!(grown < 800, "two changes appended {grown} bytes");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);

        let reopened = PaperWallet::open(&path, initial()).unwrap();
        assert_eq!(reopened.wallet(), after);
        assert_eq!(reopened.ledger().len(), 201);
        assert_eq!(reopened.ledger().last(), Some(&entry(201)));
        assert_eq!(
            reopened.height_source(),
            HeightSource::Continuing { base_height: 100 }
        );
        assert_eq!(reopened.session(), 2, "open, reopen");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.json");
        let mut w = PaperWallet::open(&path, initial()).unwrap();
        w.record_landing(initial(), entry(1)).unwrap();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"landing\":{\"entry\":{\"signa");
        std::fs::write(&path, &bytes).unwrap();
        let reopened = PaperWallet::open(&path, initial()).unwrap();
        assert_eq!(reopened.ledger(), &[entry(1)]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "rewritten whole at open");
    }

    #[test]
    fn a_file_in_the_earlier_format_is_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.json");
        let v1 = format!(
            "{{\n  \"version\": 1,\n  \"genesis_unix_ms\": 5,\n  \"session\": 4,\n  \"max_last_valid\": 9,\n  \"wallet\": {{\"base\": 1, \"quote\": 2, \"fee_lamports\": 3}},\n  \"ledger\": [{{\"signature\": \"{}\", \"status\": \"ok\", \"slot\": 1, \"side\": \"sell\", \"amount_in\": 1, \"amount_out\": 1, \"fee_lamports\": 1}}]\n}}\n",
            "ab".repeat(64)
        );
        std::fs::write(&path, v1).unwrap();
        let w = PaperWallet::open(&path, initial()).unwrap();
        assert_eq!(w.genesis_ms(), 5);
        assert_eq!(w.session(), 5);
        assert_eq!(w.wallet().quote, TokenAmount::new(2));
        assert_eq!(w.ledger().len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"version\":2,"), "{text}");
    }

    #[test]
    fn a_corrupt_wallet_file_is_a_typed_error_naming_the_path_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paper.json");
        let cases: [&[u8]; 8] = [
            b"",
            b"{\"version\":1,",
            b"[1,2,3]",
            b"{\"version\":2,\"genesis_unix_ms\":1,\"session\":1,\"wallet\":{\"base\":1,\"quote\":1,\"fee_lamports\":1},\"ledger\":[]}\n{\"session\":\"x\"}\n{\"session\":3}\n",
            b"{\"version\":2,\"genesis_unix_ms\":1,\"session\":1,\"wallet\":{\"base\":1,\"quote\":1,\"fee_lamports\":1},\"ledger\":[]}\n\xff\n",
            b"{\"version\":3,\"genesis_unix_ms\":1,\"session\":1,\"wallet\":{\"base\":1,\"quote\":1,\"fee_lamports\":1},\"ledger\":[]}",
            b"{\"version\":1,\"genesis_unix_ms\":1,\"session\":1,\"wallet\":{\"base\":-1,\"quote\":1,\"fee_lamports\":1},\"ledger\":[]}",
            b"{\"version\":1,\"genesis_unix_ms\":1,\"session\":1,\"wallet\":{\"base\":1,\"quote\":1,\"fee_lamports\":1},\"ledger\":[{\"signature\":\"zz\",\"status\":\"ok\",\"slot\":1,\"side\":\"sell\",\"amount_in\":1,\"amount_out\":1,\"fee_lamports\":1}]}",
        ];
        for bytes in cases {
            std::fs::write(&path, bytes).unwrap();
            let e = PaperWallet::open(&path, initial()).unwrap_err();
            assert!(
                matches!(&e, SimError::WalletCorrupt { path: p, .. } if p == &path),
                "{e}"
            );
            assert!(e.to_string().contains("paper.json"), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "never silently reset");
        }
    }

    #[test]
    fn an_unreadable_wallet_path_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it fails, but not with NotFound.
        let e = PaperWallet::open(dir.path(), initial()).unwrap_err();
        assert!(
            matches!(
                e,
                SimError::WalletIo {
                    operation: "read",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_ledger_keeps_only_the_newest_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PaperWallet::open(&dir.path().join("w.json"), initial()).unwrap();
        w.ledger = (0..LEDGER_LIMIT).map(|_| entry(0)).collect();
        w.record_landing(initial(), entry(9)).unwrap();
        assert_eq!(w.ledger().len(), LEDGER_LIMIT);
        assert_eq!(w.ledger().last(), Some(&entry(9)));
    }

    #[test]
    fn signatures_round_trip_through_hex() {
        let sig = TxSignature(std::array::from_fn(|i| u8::try_from(i * 3 % 256).unwrap()));
        assert_eq!(signature_from_hex(&to_hex(&sig.0)), Some(sig));
        assert_eq!(signature_from_hex("00"), None);
        assert_eq!(signature_from_hex(&"é".repeat(64)), None);
    }
}
