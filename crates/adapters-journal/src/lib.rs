//! kyzlo's durable journal: the `Journal` port of `kyzlo-application` on one SQLite file.
//!
//! Every write is one transaction, committed in WAL mode with `synchronous=FULL` before the
//! call returns: a crash at any point (the process killed, the machine losing power) loses
//! nothing that a call returned `Ok` for. The schema is versioned with
//! `PRAGMA user_version`; a file written by a newer build is refused untouched.
//!
//! # Tables
//!
//! Plain INTEGER / REAL / TEXT columns, readable with the `sqlite3` CLI. Amounts are
//! base units (lamports, 10^-6 USDC) as INTEGER; prices are REAL; signatures are base58
//! TEXT, ready to paste into an explorer; enums are their stable snake_case names.
//! Columns ending `_us` are the bot's monotonic clock in microseconds; every row has
//! `recorded_at_ms`, the wall-clock unix milliseconds of its latest write.
//!
//! | table | one row per | main columns |
//! |---|---|---|
//! | `positions` | position (updated in place) | `id`, `entry_price`, `size`, `remaining` (0 once closed) |
//! | `intents` | entry or exit intent | `id`, `position_id`, `action` (`enter`/`exit`), `exit_kind`, `side`, `amount_in`, `created_at_us`, `outcome` (NULL while unresolved, `filled`, `failed`, `landed`: filled provisionally at the swap's minimum output until the fill can be read), `landed_signature`, `fill_amount_in`, `fill_amount_out`, `fill_fee_lamports`, `resolved_at_ms` |
//! | `attempts` | transaction of an intent, written before it is sent | `intent_id`, `attempt`, `signature`, `blockhash`, `valid_at_slot` (a slot our node saw the blockhash valid at: where the proof of its death starts), `last_valid_block_height`, `slippage_bps`, `priority_fee_lamports`, `amount_in`, `min_out`, `sent_at_us`, `nonce_account` (the durable nonce it is built on, base58, whose value is then its `blockhash`; NULL on a recent blockhash), `cancel` (1 for a cancel: the nonce's advance alone, swapping nothing), `outcome` (NULL, `landed`, `failed`, `expired`), `outcome_class`, `resolved_at_ms` |
//! | `transitions` | exit-state transition (the audit trail) | `intent_id`, `at_us`, `from_state`, `event`, `to_state`, then the payload of each: `*_attempt`, `*_signature`, `*_exit_kind`, `*_class`, `*_failure`, `event_last_valid_block_height` |
//! | `trading_state` | change of trading state; the latest row is the current one | `state` (`active`, `reduce_only`, `halted`), `cause`, `detail`, `since_us` |
//! | `control` | counter kept across restarts | `key` (`exit_failures`: the exit breaker's run of failed exits; `free_base`: base units the wallet held outside any position), `value` |
//!
//! # Reading it as an operator
//!
//! The file can be read while the bot runs (WAL lets readers and the writer proceed
//! together); open it read-only so nothing is changed by mistake:
//!
//! ```text
//! # the last ten exits, newest first, with how they ended
//! sqlite3 -readonly -header -column kyzlo.db \
//!   "select i.id, i.position_id, i.exit_kind, i.outcome, i.fill_amount_out,
//!           count(a.attempt) as attempts,
//!           datetime(i.recorded_at_ms / 1000, 'unixepoch') as at
//!    from intents i left join attempts a on a.intent_id = i.id
//!    where i.action = 'exit' group by i.id order by i.id desc limit 10"
//!
//! # every transaction that may still land: the attempts without an outcome
//! sqlite3 -readonly kyzlo.db \
//!   "select intent_id, attempt, signature, last_valid_block_height
//!    from attempts where outcome is null"
//!
//! # the current trading state, and why a halt happened
//! sqlite3 -readonly kyzlo.db \
//!   "select state, cause, detail from trading_state order by id desc limit 1"
//!
//! # the audit trail of intent 42
//! sqlite3 -readonly kyzlo.db \
//!   "select at_us, from_state, event, to_state, event_attempt, event_signature
//!    from transitions where intent_id = 42 order by id"
//! ```
//!
//! # Where it differs from `MemoryJournal`
//!
//! `load` and `exit_history` return what `MemoryJournal` returns for the same writes.
//! Two writes it accepts are refused here with a typed error instead: an attempt or a
//! transition naming an intent never journaled ([`JournalError::UnknownIntent`]), and a
//! `u64` above `i64::MAX` ([`JournalError::Overflow`]), which SQLite's INTEGER cannot hold.
#![forbid(unsafe_code)]

mod codec;
pub mod data_dir;
pub mod error;
mod journal;
mod schema;
mod store;
mod transitions;

pub use data_dir::{DataDir, DataDirError};
pub use error::JournalError;
pub use journal::{BUSY_TIMEOUT, Health, SqliteJournal};
pub use schema::SCHEMA_VERSION;
