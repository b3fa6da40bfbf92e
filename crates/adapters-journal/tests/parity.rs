//! The SQLite journal returns what the port's reference `MemoryJournal` returns, and
//! refuses what every durable journal refuses: the port's conformance suite
//! (`kyzlo_application::testing::journal_suite`, shared with the PostgreSQL journal) run
//! on SQLite files.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use kyzlo_adapters_journal::SqliteJournal;
use kyzlo_application::testing::journal_suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_memory_journals_agree_on_every_scenario() {
    let mut dirs = Vec::new();
    journal_suite::check_against_memory(
        async || {
            let dir = tempfile::tempdir().unwrap();
            let journal = SqliteJournal::open(dir.path().join("kyzlo.db")).unwrap();
            dirs.push(dir);
            journal
        },
        async |journal: &SqliteJournal, intent| journal.transitions(intent).await.unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_what_every_durable_journal_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(dir.path().join("kyzlo.db")).unwrap();
    journal_suite::check_durable_refusals(&journal).await;
}
