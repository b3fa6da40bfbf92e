//! The tests' PostgreSQL: one throwaway cluster per test binary (stopped and removed by
//! its watchdog when the binary exits), a fresh database per test.
#![allow(clippy::unwrap_used, dead_code)] // shared by several test binaries

pub mod proxy;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kyzlo_adapters_postgres::{Lease, PgDatabase, PgJournal};
use kyzlo_application::journal::FENCED_CODE;
use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;
use kyzlo_test_postgres::{Durability, PgCluster};

/// The cluster of this test binary.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| PgCluster::start(Durability::Fast).unwrap())
}

/// Where the cluster listens.
pub fn cluster_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster().port()))
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

/// Waits (by the database's clock) until `wallet`'s lease has expired.
pub async fn until_expired(db: &PgDatabase, wallet: &str) {
    loop {
        let view = db.leases().await.unwrap();
        let lease = view.iter().find(|v| v.lease.wallet == wallet).unwrap();
        if lease.expires_in_ms < 0 {
            return;
        }
        let wait = u64::try_from(lease.expires_in_ms).unwrap_or(0) + 5;
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// `result` is the port's refusal of a write whose lease epoch is stale.
pub fn assert_fenced(result: Result<(), PortError>) {
    let error = result.unwrap_err();
    assert_eq!(error.class, ErrorClass::Unknown, "{error}");
    assert_eq!(error.code, Some(FENCED_CODE), "{error}");
}
