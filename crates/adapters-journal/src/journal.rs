//! [`SqliteJournal`]: the [`Journal`] port on one SQLite file, its SQL run on tokio's
//! blocking threads over one connection behind a `std::sync::Mutex` that is never held
//! across an `.await`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentHistory, IntentOutcome, IntentRecord, Journal,
    JournalSnapshot, PositionRecord,
};
use kyzlo_application::ports::PortError;
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{IntentId, PositionId, TokenAmount};
use rusqlite::Connection;

use crate::error::JournalError;
use crate::{schema, store};

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`SqliteJournal::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Writable, and SQLite's quick check passes.
    Sound,
    /// SQLite opened the file read-only.
    ReadOnly,
    /// SQLite's quick check found damage: its first complaints.
    Damaged(String),
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// The durable journal: one SQLite file in WAL mode with `synchronous=FULL`, so that a
/// write that returned `Ok` survives a crash of the process or of the machine.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct SqliteJournal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Wall-clock unix milliseconds, for the `recorded_at_ms` columns (informational only:
/// nothing is decided on them). A clock before 1970 records 0.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl SqliteJournal {
    /// Opens (or creates) the journal at `path`: creates its directory if missing, sets
    /// `journal_mode=WAL`, `synchronous=FULL`, `foreign_keys=ON` and a
    /// [`BUSY_TIMEOUT`], then applies any missing schema migration.
    ///
    /// This does blocking file I/O: call it at start-up, or from a blocking thread.
    ///
    /// # Errors
    /// [`JournalError::CreateDir`] when the directory cannot be made;
    /// [`JournalError::Open`] when the file cannot be opened as SQLite (including a file
    /// that is not a database) or a setting cannot be applied; [`JournalError::NotWal`];
    /// [`JournalError::SchemaTooNew`] when a newer build wrote the file (it is left
    /// untouched); [`JournalError::Migration`] when a migration step fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open = |step: &'static str| {
            let path = path.clone();
            move |source| JournalError::Open { path, step, source }
        };
        let mut conn = Connection::open(&path).map_err(open("open the file"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(open("set the busy timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(open("switch to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::NotWal { path, mode });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open("set synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open("enable foreign keys"))?;
        schema::migrate(&mut conn, &path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
            }),
        })
    }

    /// Whether the file is fit to trade on: writable (SQLite falls back to read-only
    /// without a word when it may not write) and passing `PRAGMA quick_check`.
    ///
    /// This does blocking I/O over the whole file: call it at start-up.
    ///
    /// # Errors
    /// [`JournalError::Sql`] when SQLite cannot say whether the file is read-only.
    pub fn check(&self) -> Result<Health, JournalError> {
        let conn = self
            .inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|source| JournalError::Sql {
                context: "ask whether the journal is read-only",
                source,
            })?
        {
            return Ok(Health::ReadOnly);
        }
        // SQLite refusing to even run the check is its verdict too.
        let report = match conn
            .prepare("PRAGMA quick_check(5)")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            }) {
            Ok(report) => report,
            Err(e) => vec![e.to_string()],
        };
        if report.len() == 1 && report[0] == "ok" {
            Ok(Health::Sound)
        } else {
            Ok(Health::Damaged(crate::error::truncate(
                report.join("; "),
                crate::error::DETAIL_LIMIT,
            )))
        }
    }

    /// The file this journal writes.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the connection on a blocking thread. The lock is taken and released on
    /// that thread, never across an `.await`. A poisoned lock is taken over: a panic inside
    /// a transaction rolled it back when it unwound.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|source| JournalError::Worker { source })?
    }

    /// Every exit-state transition journaled for `intent`, oldest first: the audit trail.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] for a stored row that does not read back;
    /// [`JournalError::Sql`]; [`JournalError::Worker`].
    pub async fn transitions(&self, intent: IntentId) -> Result<Vec<Transition>, JournalError> {
        self.run(move |c| store::transitions_of(c, intent)).await
    }
}

#[async_trait]
impl Journal for SqliteJournal {
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError> {
        let intent = *intent;
        self.run(move |c| store::record_intent(c, &intent, now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.record_intent"))
    }

    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError> {
        let attempt = *attempt;
        self.run(move |c| store::record_attempt(c, &attempt, now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.record_attempt"))
    }

    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        self.run(move |c| store::record_attempt_outcome(c, intent, attempt, outcome, now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.record_attempt_outcome"))
    }

    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError> {
        let transition = *transition;
        self.run(move |c| store::record_transition(c, intent, &transition, now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.record_transition"))
    }

    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        let outcome = *outcome;
        let position = position.copied();
        self.run(move |c| store::settle_intent(c, intent, &outcome, position.as_ref(), now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.settle_intent"))
    }

    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        let state = state.clone();
        self.run(move |c| store::record_trading_state(c, &state, now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.record_trading_state"))
    }

    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        self.run(move |c| {
            store::record_control(c, "exit_failures", u64::from(consecutive), now_ms())
        })
        .await
        .map_err(|e| e.to_port_error("journal.record_exit_failures"))
    }

    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        self.run(move |c| store::record_control(c, "free_base", free.get(), now_ms()))
            .await
            .map_err(|e| e.to_port_error("journal.record_free_base"))
    }

    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        self.run(move |c| store::position(c, id))
            .await
            .map_err(|e| e.to_port_error("journal.position"))
    }

    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        self.run(store::load)
            .await
            .map_err(|e| e.to_port_error("journal.load"))
    }

    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        self.run(move |c| store::exit_history(c, limit))
            .await
            .map_err(|e| e.to_port_error("journal.exit_history"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sets_durability_pragmas_on_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(dir.path().join("kyzlo.db")).unwrap();
        let conn = journal.inner.conn.lock().unwrap();
        let pragma =
            |name: &str| -> i64 { conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
        // synchronous: 2 is FULL.
        assert_eq!(pragma("synchronous"), 2);
        assert_eq!(pragma("foreign_keys"), 1);
        assert_eq!(pragma("busy_timeout"), 5_000);
        assert_eq!(pragma("user_version"), crate::SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn now_ms_is_wall_clock_unix_milliseconds() {
        // 2020-01-01 and 2200-01-01: a value in seconds or microseconds would fall outside.
        let now = now_ms();
        assert!(
            (1_577_836_800_000..7_258_118_400_000).contains(&now),
            "{now}"
        );
    }
}
