//! kyzlo's fleet journal: the `Journal` port of `kyzlo-application` on PostgreSQL, shared
//! by every instance of a fleet, with one owner per wallet enforced by the database.
//!
//! # Driver
//!
//! `tokio-postgres` (rust-postgres, the long-standing asynchronous driver) with a
//! `deadpool-postgres` pool: a small dependency tree next to `sqlx` (no macros, no JSON,
//! no offline query cache), explicit transactions and prepared-statement caching per
//! connection, and the server's SQLSTATE on every error so that a fencing refusal is
//! recognised by its code, never its text.
//!
//! # Ownership and fencing
//!
//! [`PgDatabase::acquire`] claims a wallet with a row of `leases` and an epoch one above
//! the last (the fencing token); [`PgDatabase::renew`] extends it on a heartbeat, by the
//! database's clock. A [`PgJournal`] is built from a held [`Lease`] and writes every row
//! with its epoch: each write transaction first calls `kyzlo_fence(wallet, epoch, owner)`, which
//! holds the lease row `FOR SHARE` until commit, and each table's trigger checks the row's
//! epoch again. Once the lease has expired or another instance has taken it (with a higher
//! epoch), every write of the old epoch is refused by the database with SQLSTATE `KZ001`,
//! surfaced as [`PgError::Fenced`] and at the port as class `Unknown` with
//! `kyzlo_application::journal::FENCED_CODE`. Nothing is sent that is not journaled
//! first, so a paused or partitioned former owner cannot send after losing its lease
//! either: its `record_attempt` is refused before the send.
//!
//! A former owner stalled in the middle of a write transaction (a partition that drops its
//! packets, a paused process) would keep the lease row locked until TCP gives up, and a
//! takeover would wait on it; every session of the pool is therefore opened with
//! [`IDLE_IN_TRANSACTION_TIMEOUT`], [`LOCK_TIMEOUT`] and [`STATEMENT_TIMEOUT`], so a
//! takeover waits at most [`IDLE_IN_TRANSACTION_TIMEOUT`] past the expiry
//! (`tests/partition.rs`).
//!
//! # Tables
//!
//! The SQLite journal's tables and column names (see `kyzlo-adapters-journal`), each keyed
//! by `(wallet, market)` first and carrying the `epoch` it was written under; wall-clock
//! columns are `TIMESTAMPTZ` (`recorded_at`, `resolved_at`), the bot's monotonic clock
//! stays in `*_us` BIGINT columns. `leases` holds one row per wallet ever claimed (the row
//! is never deleted, so epochs only grow).
//!
//! # Where it differs from `MemoryJournal`
//!
//! As the SQLite journal: an attempt or a transition naming an intent never journaled is
//! refused ([`PgError::UnknownIntent`]), and so is a `u64` above `i64::MAX`
//! ([`PgError::Overflow`]).
#![forbid(unsafe_code)]

mod codec;
mod database;
pub mod error;
mod fleet;
mod journal;
mod read;
mod schema;
mod transitions;

pub use database::{
    CONNECT_TIMEOUT, IDLE_IN_TRANSACTION_TIMEOUT, LOCK_TIMEOUT, Lease, LeaseView, PgDatabase,
    STATEMENT_TIMEOUT,
};
pub use error::{FENCED_SQLSTATE, PgError};
pub use fleet::{
    COMMANDS_CHANNEL, CommandView, FLEET_CHANNEL, FleetCommand, InstanceView, MarketView, PgFleet,
};
pub use journal::PgJournal;
pub use schema::SCHEMA_VERSION;
