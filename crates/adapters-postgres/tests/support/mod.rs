//! The tests' PostgreSQL: one throwaway cluster per test binary (stopped and removed by
//! its watchdog when the binary exits), a fresh database per test.
#![allow(clippy::unwrap_used, dead_code)] // shared by several test binaries

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kyzlo_adapters_postgres::{Lease, PgDatabase, PgJournal};
use kyzlo_test_postgres::{Durability, PgCluster};

/// The cluster of this test binary.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| PgCluster::start(Durability::Fast).unwrap())
}

/// A fresh, migrated database, and its URL.
pub async fn database(prefix: &str) -> (PgDatabase, String) {
    let url = tokio::task::spawn_blocking({
        let prefix = prefix.to_owned();
        move || cluster().create_database(&prefix).unwrap()
    })
    .await
    .unwrap();
    (PgDatabase::connect(&url, 8).await.unwrap(), url)
}

/// A lease long enough for any test step.
pub const LONG: Duration = Duration::from_secs(600);

/// A wallet name not used before in this process.
pub fn wallet() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("wallet-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A journal on a freshly leased wallet of `db`.
pub async fn leased_journal(db: &PgDatabase, owner: &str) -> (Lease, PgJournal) {
    let lease = db.acquire(&wallet(), owner, LONG).await.unwrap().unwrap();
    let journal = db.journal(&lease, "SOL/USDC");
    (lease, journal)
}
